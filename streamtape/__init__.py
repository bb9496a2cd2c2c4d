"""streamtape: record and replay streaming HTTP (Server-Sent Events, AWS event streams) byte-exact, for
apps built on the Anthropic, OpenAI, Gemini and Bedrock SDKs, with faithful replay of the network
failures that cut real streams."""

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
    StaleCassetteError,
    StaleCassetteWarning,
    StreamtapeError,
    UnmatchedRequestError,
)
from .sse import Event
from .starters import starter
from .tape import Call, RecordMode, Tape, use_cassette

__version__ = "0.2.0"

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
    "StaleCassetteError",
    "StaleCassetteWarning",
    "StreamtapeError",
    "Tape",
    "UnmatchedRequestError",
    "starter",
    "use_cassette",
]
