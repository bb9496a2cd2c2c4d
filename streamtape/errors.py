"""Every error streamtape raises.

    StreamtapeError                 (BaseException: see below)
     +-- ConfigError                a bad argument: record mode, match_on, speed, ...
     +-- CassetteError              a cassette file cannot be used
     |    +-- CassetteFormatError   not YAML, wrong version, a missing or malformed field
     |    +-- CassetteNotFoundError replay asked for a file that does not exist
     +-- UnmatchedRequestError      a request the cassette cannot answer in this record mode

Why ``BaseException``: streamtape's errors say "the test harness is set up wrong", and they are raised
from deep inside the app's HTTP calls. The SDK wraps every ``Exception`` raised below it as
``APIConnectionError("Connection error.")`` and retries it with real back-off sleeps, and apps often
wrap calls in ``except Exception`` handlers or retry decorators. Deriving from ``BaseException`` (as
pytest's own ``pytest.fail`` outcome does) lets a harness error reach the test as itself, at once.
Catch them with ``except streamtape.StreamtapeError``.
"""

from __future__ import annotations

from pathlib import Path

__all__ = [
    "CassetteError",
    "CassetteFormatError",
    "CassetteNotFoundError",
    "ConfigError",
    "StreamtapeError",
    "UnmatchedRequestError",
]


class StreamtapeError(BaseException):
    """Root of every streamtape error."""


class ConfigError(StreamtapeError, ValueError):
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
        super().__init__(path, f"{place}: {message}" if place else message)


class CassetteNotFoundError(CassetteError):
    """Replay was asked for a cassette file that does not exist."""


class UnmatchedRequestError(StreamtapeError):
    """No recorded interaction answers a request, and the record mode forbids recording it."""
