"""streamtape: record and replay streaming HTTP (Server-Sent Events) byte-exact, for apps built on
the Anthropic SDK, with faithful replay of the network failures that cut real streams."""

from __future__ import annotations

from .cassette import Cassette, Interaction, Request, Response
from .errors import (
    AmbiguousTapeError,
    CassetteError,
    CassetteFormatError,
    CassetteNotFoundError,
    ConfigError,
    HarnessError,
    IncompleteRecordingError,
    NetworkBlockedError,
    RecordingFailedError,
    StreamtapeError,
    UnmatchedRequestError,
)
from .sse import Event
from .starters import starter
from .tape import Call, RecordMode, Tape, use_cassette

__version__ = "0.1.0"

__all__ = [
    "AmbiguousTapeError",
    "Call",
    "Cassette",
    "CassetteError",
    "CassetteFormatError",
    "CassetteNotFoundError",
    "ConfigError",
    "Event",
    "HarnessError",
    "IncompleteRecordingError",
    "Interaction",
    "NetworkBlockedError",
    "RecordMode",
    "RecordingFailedError",
    "Request",
    "Response",
    "StreamtapeError",
    "Tape",
    "UnmatchedRequestError",
    "starter",
    "use_cassette",
]
