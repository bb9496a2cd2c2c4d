"""Every error streamtape raises.

    StreamtapeError                 (BaseException: see below)
     +-- ConfigError                a bad argument: record mode, match_on, speed, a fault, a position
     +-- CassetteError              a cassette file cannot be used
     |    +-- CassetteFormatError   not YAML, wrong version, a missing or malformed field, cut short
     |    +-- CassetteNotFoundError replay asked for a file that does not exist
     +-- UnmatchedRequestError      a request the cassette cannot answer in this record mode
     +-- NetworkBlockedError        a request streamtape cannot intercept tried to reach the network
     +-- RecordingFailedError       a recording only shows that recording went wrong; nothing was saved
     +-- IncompleteRecordingError   replay read past the point where the app stopped reading while recording
     +-- AmbiguousTapeError         a thread/task with no tape made a request while several are entered
     +-- HarnessError               answering a request raised: a bug in streamtape, or in a matcher,
                                    hook or fault given to it (the original is the ``__cause__``)

Why ``BaseException``: streamtape's errors say "the test harness is set up wrong", and they are raised
from deep inside the app's HTTP calls. The SDK wraps every ``Exception`` raised below it as
``APIConnectionError("Connection error.")`` and retries it with real back-off sleeps, and apps often
wrap calls in ``except Exception`` handlers or retry decorators. Deriving from ``BaseException`` (as
pytest's own ``pytest.fail`` outcome does) lets a harness error reach the test as itself, at once.
Catch them with ``except streamtape.StreamtapeError``. None of them is also an ``Exception`` (not even
``ConfigError``): a class that derived from ``ValueError`` too would be caught by ``except Exception``.
"""

from __future__ import annotations

from pathlib import Path
from typing import Any

__all__ = [
    "AmbiguousTapeError",
    "StaleCassetteError",
    "StaleCassetteWarning",
    "HarnessError",
    "CassetteError",
    "CassetteFormatError",
    "CassetteNotFoundError",
    "ConfigError",
    "IncompleteRecordingError",
    "NetworkBlockedError",
    "RecordingFailedError",
    "StreamtapeError",
    "UnmatchedRequestError",
]


class StreamtapeError(BaseException):
    """Root of every streamtape error."""


class ConfigError(StreamtapeError):
    """An argument streamtape was given is not valid; the message lists what is."""


class CassetteError(StreamtapeError):
    """A cassette file cannot be used."""

    def __init__(self, path: str | Path | None, message: str) -> None:
        self.path = None if path is None else Path(path)
        where = f"{self.path}: " if self.path is not None else ""
        super().__init__(f"{where}{message}")


class CassetteFormatError(CassetteError):
    """The file is not a valid streamtape cassette (not YAML, wrong version, bad field)."""

    def __init__(self, path: str | Path | None, place: str, message: str) -> None:
        self.place = place
        self.detail = message
        super().__init__(path, f"{place}: {message}" if place else message)


class CassetteNotFoundError(CassetteError):
    """Replay was asked for a cassette file that does not exist."""


class UnmatchedRequestError(StreamtapeError):
    """No recorded interaction answers a request, and the record mode forbids recording it."""


class NetworkBlockedError(StreamtapeError):
    """While a tape is entered, a request that streamtape does not record or replay (aiohttp, urllib3 /
    requests, a raw socket) tried to reach a host that is not allowed (``allow_hosts``)."""


class RecordingFailedError(StreamtapeError):
    """A recording run got no response at all, or only an authentication failure: nothing was saved."""


class IncompleteRecordingError(StreamtapeError):
    """The app stopped reading a response while it was recorded, the rest could not be read, and a
    replay read past that point."""


class AmbiguousTapeError(StreamtapeError):
    """A request came from a thread or task that entered no tape while several tapes are entered in
    other threads or tasks: streamtape will not guess which one it belongs to."""

    def __init__(self, tapes: list[Any], what: str | None = None) -> None:
        names = ", ".join(str(getattr(tape, "path", tape)) for tape in tapes)
        request = f"{what}: this request was made" if what else "a request was made"
        super().__init__(
            f"{request} from a thread or task that entered no tape, while {len(tapes)} tapes are "
            f"entered elsewhere ({names}); enter the tape in the code that makes the request (or start that "
            "thread with contextvars.copy_context().run), or wire it into the client with tape.transport()"
        )


class HarnessError(StreamtapeError):
    """Answering a request raised an ordinary exception inside the harness: a bug in streamtape, or in
    a matcher, hook or fault given to it. It is raised as a ``StreamtapeError`` (never wrapped by the
    SDK as a connection error, never retried), with the original exception as its ``__cause__``."""


class StaleCassetteError(CassetteError):
    """A cassette holds interactions older than the tape's ``max_age``, and ``on_stale="fail"``."""


class StaleCassetteWarning(UserWarning):
    """A cassette holds interactions older than the tape's ``max_age`` (``on_stale="warn"``), or
    interactions of unknown age."""
