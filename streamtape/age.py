"""How old a recording is, and what recorded it: the ``recorded`` field of an interaction, ages such as
``30d``, and which interactions are older than a tape's ``max_age``.

Each interaction the recorder saves says when it was recorded (UTC), by which SDK and version and
through which HTTP stack (``Recorded``). The SDK is read from the request's own headers (the
``User-Agent`` and ``X-Stainless-*`` headers the SDKs send), else from the SDK of the request's
provider when the app imported it; nothing else about the machine (no host names, no paths, no
secrets) is kept. Interactions recorded before streamtape dated them have no ``recorded`` field:
their age is unknown, which is said wherever an age is asked for, and never taken for "fresh" or
"stale".

Imports nothing but ``streamtape.errors`` at module level (``cassette`` imports it).
"""

from __future__ import annotations

import re
import sys
from collections.abc import Iterable, Sequence
from dataclasses import dataclass
from datetime import UTC, datetime, timedelta
from typing import TYPE_CHECKING, Any

from .errors import ConfigError, StaleCassetteError, StaleCassetteWarning

if TYPE_CHECKING:
    from .cassette import Interaction, Request

__all__ = [
    "ON_STALE",
    "Recorded",
    "StaleCassetteError",
    "StaleCassetteWarning",
    "Staleness",
    "describe_age",
    "parse_age",
    "parse_on_stale",
    "real_failure",
    "recorded_now",
    "sdk_of",
    "staleness",
]

#: what a tape does when its cassette holds interactions older than ``max_age``
ON_STALE = ("warn", "fail", "rerecord")

_AT_FORMAT = "%Y-%m-%dT%H:%M:%SZ"


@dataclass(frozen=True)
class Recorded:
    """When an interaction was recorded (``at``: ISO 8601 UTC text, kept as written so a re-save is
    byte-identical), with which SDK (``"anthropic 2.17.0"``) and HTTP stack (``"httpx2"``)."""

    at: str
    sdk: str | None = None
    stack: str | None = None

    @property
    def when(self) -> datetime | None:
        """``at`` as an aware UTC datetime, or ``None`` when it is not a time stamp."""
        return parse_time(self.at)

    def as_dict(self) -> dict[str, str]:
        out = {"at": self.at}
        if self.sdk:
            out["sdk"] = self.sdk
        if self.stack:
            out["stack"] = self.stack
        return out


def parse_time(text: str) -> datetime | None:
    """An ISO 8601 time stamp (``2026-12-07T01:40:00Z``; a time without a zone is read as UTC) as an
    aware datetime in UTC, or ``None``."""
    value = text.strip()
    if value.endswith(("Z", "z")):
        value = value[:-1] + "+00:00"
    try:
        moment = datetime.fromisoformat(value)
        if moment.tzinfo is None:
            moment = moment.replace(tzinfo=UTC)
        return moment.astimezone(UTC)
    except (ValueError, OverflowError):  # not a time stamp, or a zone offset beyond year 1 or 9999
        return None


def format_time(moment: datetime) -> str:
    return moment.astimezone(UTC).strftime(_AT_FORMAT)


def utc_now() -> datetime:
    return datetime.now(UTC)


def recorded_now(request: Request | None, stack: str = "", moment: datetime | None = None) -> Recorded:
    """What the recorder writes for an exchange that started at ``moment`` (default: now)."""
    return Recorded(format_time(moment or utc_now()), sdk_of(request) if request is not None else None, stack or None)


# --- which SDK sent a request ---------------------------------------------------------------------

_VERSION = r"(?P<version>\d+(?:\.[0-9A-Za-z]+){0,4}(?:[-+][0-9A-Za-z.]+)?)"
#: ``User-Agent`` forms the SDKs send, first match wins; ``name`` is then lower-cased
_AGENTS = (
    re.compile(rf"^(?:Async)?(?P<name>[A-Za-z][A-Za-z0-9]*)/Python {_VERSION}(?:\s|$)"),  # Stainless SDKs
    re.compile(rf"(?:^|\s)(?P<name>google-genai)-sdk/{_VERSION}(?:\s|$)"),
    re.compile(rf"(?:^|\s)(?P<name>Boto3|Botocore)/{_VERSION}(?:\s|$)"),
)
#: the SDK each provider's requests come from, when the headers do not say (provider -> module)
_PROVIDER_SDKS = {"anthropic": "anthropic", "openai": "openai", "openai-responses": "openai", "generic": "openai",
                  "gemini": "google.genai", "bedrock": "boto3"}  # fmt: skip
_SAFE = re.compile(r"[A-Za-z0-9][A-Za-z0-9.+_-]{0,63}")


def sdk_from_headers(headers: Iterable[tuple[str, str]]) -> str | None:
    """``"anthropic 2.17.0"`` from the request's ``User-Agent`` or ``X-Stainless-*`` headers, or ``None``."""
    lowered = {name.lower(): value for name, value in headers}
    agent = lowered.get("user-agent", "")
    for pattern in _AGENTS:
        match = pattern.search(agent)
        if match:
            return _sdk(match.group("name").lower(), match.group("version"))
    version = lowered.get("x-stainless-package-version")
    if version:  # a Stainless SDK whose User-Agent was filtered: its package is not named, its version is
        return _sdk("stainless-sdk", version)
    return None


def _sdk(name: str, version: str) -> str | None:
    if not _SAFE.fullmatch(name) or not _SAFE.fullmatch(version):
        return None
    return f"{name} {version}"


def sdk_of(request: Request) -> str | None:
    """The SDK that sent ``request``: from its headers, else the provider's SDK when the app imported it."""
    found = sdk_from_headers(request.headers)
    if found is not None:
        return found
    from .providers import provider_for

    module_name = _PROVIDER_SDKS.get(provider_for(request.method, request.url, request.headers).name)
    module = sys.modules.get(module_name or "")
    if module is None:
        return None
    version = getattr(module, "__version__", None)
    if not isinstance(version, str):
        version = getattr(getattr(module, "version", None), "__version__", None)  # google.genai.version
    return _sdk(module_name.replace(".", "-"), version) if isinstance(version, str) else None  # type: ignore[union-attr]


# --- ages ------------------------------------------------------------------------------------------

_UNITS = {"s": 1, "m": 60, "h": 3600, "d": 86400, "w": 7 * 86400}
_AGE = re.compile(r"(\d+(?:\.\d+)?)\s*([smhdw])")
_AGE_HELP = "use a number and a unit, e.g. 30d, 12h, 2w, 1w3d (s, m, h, d, w)"


def parse_age(value: Any, what: str = "max_age") -> float:
    """An age in seconds, from ``"30d"``, ``"12h"``, ``"2w"``, ``"1w3d"``, a number of seconds, or a
    ``timedelta``. Refused with one sentence naming ``what``."""
    if isinstance(value, timedelta):
        seconds = value.total_seconds()
    elif isinstance(value, (int, float)) and not isinstance(value, bool):
        seconds = float(value)
    elif isinstance(value, str):
        text = value.strip().lower()
        parts = _AGE.findall(text)
        if not parts or _AGE.sub("", text).strip():
            raise ConfigError(f"{what}: {value!r} is not an age; {_AGE_HELP}")
        seconds = sum(float(number) * _UNITS[unit] for number, unit in parts)
    else:
        raise ConfigError(f"{what}: {value!r} is not an age; {_AGE_HELP}")
    if seconds != seconds or seconds <= 0 or seconds == float("inf"):
        raise ConfigError(f"{what}: {value!r} is not an age greater than zero; {_AGE_HELP}")
    return seconds


def describe_age(seconds: float) -> str:
    """``"45 days"``, ``"3 hours"``, ``"2 minutes"``: the largest whole unit, days at most."""
    for name, size in (("day", 86400), ("hour", 3600), ("minute", 60)):
        if seconds >= size * 2 or (name == "minute" and seconds >= size):
            count = int(seconds // size)
            return f"{count} {name}{'s' if count != 1 else ''}"
    count = max(int(seconds), 0)
    return f"{count} second{'s' if count != 1 else ''}"


def parse_on_stale(value: Any) -> str:
    text = value.strip().lower() if isinstance(value, str) else value
    if text not in ON_STALE:
        raise ConfigError(f"on_stale: {value!r} is not valid; use {', '.join(repr(v) for v in ON_STALE)}")
    return str(text)


# --- which interactions are stale -------------------------------------------------------------------


def real_failure(item: Interaction) -> bool:
    """The recording captured a real failure: no response at all, an error status, or a connection cut
    mid-body (the app closing a response early is not one). Such interactions are never re-sent or
    re-recorded by ``drift`` and ``rewrite_stale``: the live API would most likely answer them cleanly,
    and the failure would be lost."""
    response = item.response
    if response is None:
        return True
    if response.status >= 400:
        return True
    end = response.end
    return getattr(end, "kind", None) not in (None, "client_closed")


@dataclass(frozen=True)
class Staleness:
    """What ``max_age`` says of a cassette's interactions at a moment."""

    #: indices of interactions recorded longer ago than ``max_age``
    stale: tuple[int, ...]
    #: indices of interactions with no (readable) ``recorded`` time: their age is unknown
    undated: tuple[int, ...]
    #: the age in seconds of each dated interaction, by index
    ages: dict[int, float]

    @property
    def oldest(self) -> float | None:
        return max((self.ages[i] for i in self.stale), default=None)


def staleness(interactions: Sequence[Interaction], max_age: float, now: datetime | None = None) -> Staleness:
    now = now or utc_now()
    stale: list[int] = []
    undated: list[int] = []
    ages: dict[int, float] = {}
    for index, item in enumerate(interactions):
        when = item.recorded.when if item.recorded is not None else None
        if when is None:
            undated.append(index)
            continue
        ages[index] = age = (now - when).total_seconds()
        if age > max_age:
            stale.append(index)
    return Staleness(tuple(stale), tuple(undated), ages)


def indices(numbers: Sequence[int]) -> str:
    """``#0, #2-4``: interaction numbers, runs collapsed."""
    runs: list[list[int]] = []
    for number in numbers:
        if runs and number == runs[-1][-1] + 1:
            runs[-1].append(number)
        else:
            runs.append([number])
    return ", ".join(f"#{run[0]}" if len(run) == 1 else f"#{run[0]}-{run[-1]}" for run in runs)
