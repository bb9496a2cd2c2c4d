"""The fault catalogue: each fault a small frozen value that reshapes one response's ``Plan``.

Faults run in phases, whatever order they are listed in: replacements (refuse, reset/disconnect
before headers, timeout, HTTP errors), then content (corrupt, duplicate, drop, ping), then cuts
(disconnect, reset, stall, error_event, truncate), then timing (delay), then rechunk. Positions
(``after=N``, ``event=N``, ``at_byte=B``) always refer to the original recording.
"""

from __future__ import annotations

import random
import types
import typing
from dataclasses import dataclass, fields, replace
from http import HTTPStatus
from typing import Any, ClassVar

from ..errors import ConfigError
from ..wire import Cut, End, Respond, Stall
from . import _templates
from ._plan import Piece, Plan, later

__all__ = [
    "Corrupt", "Delay", "Disconnect", "Drop", "Duplicate", "ErrorEvent", "Fault", "HttpError", "Overloaded", "Ping",
    "RateLimit", "Rechunk", "Refuse", "Reset", "ServerError", "Stall_", "Timeout", "Truncate",
]  # fmt: skip

REPLACE, CONTENT, CUT, TIMING, RECHUNK = range(5)
_PING = b'event: ping\ndata: {"type": "ping"}\n\n'


@dataclass(frozen=True)
class Context:
    """What a fault may know about the request it shapes."""

    number: int = 1  # the request's number on this tape, for request ids
    seed: int = 0


class _FaultType(type):
    """Checks a fault's parameters before the dataclass sees them, so ``faults.disconnect(aftr=3)``
    and ``"disconnect:aftr=3"`` get the same one-sentence ``ConfigError`` listing the valid names
    (not a bare ``TypeError``), and a value of the wrong type names the parameter and its type."""

    def __call__(cls, *args: Any, **kwargs: Any) -> Any:
        name = getattr(cls, "name", "") or cls.__name__
        if args:
            raise ConfigError(f"{name} takes keyword parameters only ({_valid(cls)}); got {len(args)} positional")
        check_params(cls, kwargs)
        return super().__call__(**kwargs)


def _valid(cls: type) -> str:
    names = [f.name for f in fields(cls)]  # type: ignore[arg-type]
    return "valid: " + ", ".join(names) if names else "it takes no parameters"


def check_params(cls: type, kwargs: dict[str, Any]) -> None:
    """Raise ``ConfigError`` for a parameter ``cls`` does not have or a value of the wrong type."""
    name = getattr(cls, "name", "") or cls.__name__
    known = {f.name for f in fields(cls)}  # type: ignore[arg-type]
    for key in kwargs:
        if key not in known:
            raise ConfigError(f"{name} has no parameter {key!r}; {_valid(cls)}")
    hints = typing.get_type_hints(cls)
    for key, value in kwargs.items():
        expected = _kinds(hints.get(key, Any))
        if expected is not None and not _is(value, expected):
            wanted = " or ".join("none" if k is type(None) else k.__name__ for k in expected)
            raise ConfigError(f"{name}: {key}={value!r} is not valid; expected {wanted}")


def _kinds(hint: Any) -> tuple[type, ...] | None:
    if hint is Any:
        return None
    if typing.get_origin(hint) in (typing.Union, types.UnionType):
        return tuple(arg for arg in typing.get_args(hint))
    return (hint,) if isinstance(hint, type) else None


def _is(value: Any, kinds: tuple[type, ...]) -> bool:
    if isinstance(value, bool):
        return bool in kinds
    if isinstance(value, int) and float in kinds:
        return True
    return isinstance(value, kinds)


@dataclass(frozen=True, kw_only=True)
class Fault(metaclass=_FaultType):
    """A change to what one request meets on the wire.

    A fault of your own: subclass it as a frozen, keyword-only dataclass with a ``name`` and a
    ``__call__(plan, context) -> plan`` (see the catalogue below), and register it in ``CATALOGUE``
    to use it in spec strings."""

    name: ClassVar[str] = ""

    @property
    def phase(self) -> int:
        return CONTENT

    def __call__(self, plan: Plan, context: Context) -> Plan:
        raise NotImplementedError

    def spec(self) -> str:
        """The string form, e.g. ``disconnect:after=5``."""
        params = [
            f"{f.name}={_show(getattr(self, f.name))}" for f in fields(self) if getattr(self, f.name) != f.default
        ]
        return self.name + (":" + ",".join(params) if params else "")

    def __str__(self) -> str:
        return self.spec()


def _show(value: Any) -> str:
    return "none" if value is None else str(value).lower() if isinstance(value, bool) else str(value)


def _non_negative(fault: str, **values: float | None) -> None:
    for key, value in values.items():
        if value is not None and (isinstance(value, bool) or not isinstance(value, (int, float)) or value < 0):
            raise ConfigError(f"{fault}: {key}={value!r} must be a number >= 0")


# --- before headers ------------------------------------------------------------------------------


@dataclass(frozen=True, kw_only=True)
class Refuse(Fault):
    """The connection is refused: no response at all."""

    name: ClassVar[str] = "refuse"

    @property
    def phase(self) -> int:
        return REPLACE

    def __call__(self, plan: Plan, context: Context) -> Plan:
        return Plan([Cut("ConnectError")])


@dataclass(frozen=True, kw_only=True)
class Timeout(Fault):
    """The response headers take longer than the request's read timeout."""

    name: ClassVar[str] = "timeout"

    @property
    def phase(self) -> int:
        return REPLACE

    def __call__(self, plan: Plan, context: Context) -> Plan:
        return Plan([Stall(None)])


@dataclass(frozen=True, kw_only=True)
class _Positioned(Fault):
    after: int | None = None
    at_byte: int | None = None

    def __post_init__(self) -> None:
        for key in ("after", "at_byte"):
            value = getattr(self, key)
            if value is not None and (isinstance(value, bool) or not isinstance(value, int) or value < 0):
                raise ConfigError(f"{self.name}: {key}={value!r} must be a whole number >= 0")
        if self.after is not None and self.at_byte is not None:
            raise ConfigError(f"{self.name}: give after=N (an SSE event) or at_byte=B (a byte), not both")

    @property
    def positioned(self) -> bool:
        return self.after is not None or self.at_byte is not None

    @property
    def phase(self) -> int:
        return CUT

    def _cut_index(self, plan: Plan) -> int:
        return plan.position(self.spec(), after=self.after, at_byte=self.at_byte)


@dataclass(frozen=True, kw_only=True)
class _Break(_Positioned):
    """The connection breaks: before the headers, or mid-body at ``after``/``at_byte``."""

    error: ClassVar[str] = ""

    @property
    def phase(self) -> int:
        return CUT if self.positioned else REPLACE

    def __call__(self, plan: Plan, context: Context) -> Plan:
        if not self.positioned:
            return Plan([Cut(self.error)])
        plan.tail = [Cut(self.error, None, plan.keep(self._cut_index(plan)))]
        return plan


@dataclass(frozen=True, kw_only=True)
class Disconnect(_Break):
    """The server closes the connection (FIN); mid-body, or before any response without a position."""

    name: ClassVar[str] = "disconnect"
    error: ClassVar[str] = "RemoteProtocolError"


@dataclass(frozen=True, kw_only=True)
class Reset(_Break):
    """The connection is reset (RST); mid-body, or before any response without a position."""

    name: ClassVar[str] = "reset"
    error: ClassVar[str] = "ReadError"


@dataclass(frozen=True, kw_only=True)
class HttpError(Fault):
    """A faithful Anthropic error response instead of the stream; the SDK's own retry logic decides."""

    name: ClassVar[str] = "http_error"
    status: int = 500
    error_type: str | None = None
    message: str | None = None
    retry_after: float | None = None
    retry_after_ms: float | None = None
    should_retry: bool | None = None

    def __post_init__(self) -> None:
        if isinstance(self.status, bool) or not isinstance(self.status, int) or not 400 <= self.status <= 599:
            raise ConfigError(f"{self.name}: status={self.status!r} must be an HTTP error status, 400..599")
        _non_negative(self.name, retry_after=self.retry_after, retry_after_ms=self.retry_after_ms)

    @property
    def phase(self) -> int:
        return REPLACE

    def __call__(self, plan: Plan, context: Context) -> Plan:
        at = plan.respond.at if plan.respond else 0.0
        body = _templates.error_body(self.status, self.error_type, self.message, context.number)
        headers = _templates.error_headers(
            self.status, body, context.number,
            retry_after=self.retry_after, retry_after_ms=self.retry_after_ms, should_retry=self.should_retry,
        )  # fmt: skip
        reason = HTTPStatus(self.status).phrase if self.status in HTTPStatus._value2member_map_ else ""
        return Plan([Respond(self.status, headers, reason, at)], [Piece(body, at)], [End(at)])


@dataclass(frozen=True, kw_only=True)
class RateLimit(HttpError):
    """429 ``rate_limit_error``, with the rate-limit headers of a real one."""

    name: ClassVar[str] = "rate_limit"
    status: int = 429


@dataclass(frozen=True, kw_only=True)
class Overloaded(HttpError):
    """529 ``overloaded_error``."""

    name: ClassVar[str] = "overloaded"
    status: int = 529


@dataclass(frozen=True, kw_only=True)
class ServerError(HttpError):
    """500 ``api_error``."""

    name: ClassVar[str] = "server_error"
    status: int = 500


# --- mid-stream ----------------------------------------------------------------------------------


@dataclass(frozen=True, kw_only=True)
class Stall_(_Positioned):  # noqa: N801 - ``Stall`` is the wire action; this is the fault
    """Silence mid-body: for ``seconds``, or forever (the read timeout then fires)."""

    name: ClassVar[str] = "stall"
    seconds: float | None = None

    def __post_init__(self) -> None:
        super().__post_init__()
        _non_negative(self.name, seconds=self.seconds)

    def __call__(self, plan: Plan, context: Context) -> Plan:
        index = self._cut_index(plan) if self.positioned else 0
        if self.seconds is None:
            plan.tail = [Stall(None, plan.keep(index))]
            return plan
        plan.shift(index, self.seconds)
        return plan


@dataclass(frozen=True, kw_only=True)
class ErrorEvent(_Positioned):
    """An in-stream ``event: error`` (the API's overload report), then the close the API does."""

    name: ClassVar[str] = "error_event"
    error_type: str = "overloaded_error"
    message: str | None = None

    def __call__(self, plan: Plan, context: Context) -> Plan:
        index = self._cut_index(plan) if self.positioned else 0  # alone, as the API sends it
        at = plan.keep(index)
        plan.pieces.append(Piece(_templates.error_event_bytes(self.error_type, self.message), at))
        plan.announce_length()  # the API closes cleanly after it: it sends what it announces
        plan.tail = [End(at)]
        return plan


@dataclass(frozen=True, kw_only=True)
class Truncate(_Positioned):
    """The body ends cleanly early: no ``message_stop``, no error."""

    name: ClassVar[str] = "truncate"

    def __call__(self, plan: Plan, context: Context) -> Plan:
        index = (
            self._cut_index(plan) if self.positioned else plan.position(self.name, after=plan.events - 1, at_byte=None)
        )
        at = plan.keep(index)
        plan.announce_length()  # a clean, early end: the length announced is the length sent
        plan.tail = [End(at)]
        return plan


# --- shaping -------------------------------------------------------------------------------------


@dataclass(frozen=True, kw_only=True)
class _EventFault(Fault):
    event: int = 1

    def __post_init__(self) -> None:
        if isinstance(self.event, bool) or not isinstance(self.event, int) or self.event < 1:
            raise ConfigError(f"{self.name}: event={self.event!r} must be a whole number >= 1 (events count from 1)")

    def _indexes(self, plan: Plan) -> list[int]:
        found = [i for i, piece in enumerate(plan.pieces) if piece.event == self.event]
        if not found:
            raise ConfigError(
                f"{self.spec()}: the recorded response has {plan.events} SSE events; use event=1..{plan.events}"
            )
        return found

    def _joined(self, plan: Plan) -> tuple[int, Piece]:
        """The event's pieces merged into one, in its first piece's place."""
        indexes = self._indexes(plan)
        first = plan.pieces[indexes[0]]
        merged = replace(first, data=b"".join(plan.pieces[i].data for i in indexes))
        plan.pieces[indexes[0] : indexes[-1] + 1] = [merged]
        return indexes[0], merged


@dataclass(frozen=True, kw_only=True)
class Corrupt(_EventFault):
    """Event ``event`` arrives malformed: invalid JSON in its data, or an invalid UTF-8 byte."""

    name: ClassVar[str] = "corrupt"
    how: str = "json"

    def __post_init__(self) -> None:
        super().__post_init__()
        if self.how not in ("json", "utf8"):
            raise ConfigError(f"corrupt: how={self.how!r}; valid: json, utf8")

    def __call__(self, plan: Plan, context: Context) -> Plan:
        index, piece = self._joined(plan)
        data = piece.data
        start = data.find(b"data:") + len(b"data:")
        if self.how == "utf8":
            data = data[:start] + b" \xff" + data[start:]
        else:
            end = data.rfind(b"}")
            data = data[:end] + b",}" + data[end + 1 :] if end > start else data[:start] + b" {" + data[start:]
        plan.pieces[index] = replace(piece, data=data)
        return plan


@dataclass(frozen=True, kw_only=True)
class Duplicate(_EventFault):
    """Event ``event`` arrives twice."""

    name: ClassVar[str] = "duplicate"

    def __call__(self, plan: Plan, context: Context) -> Plan:
        indexes = self._indexes(plan)
        copies = [plan.pieces[i] for i in indexes]
        plan.pieces[indexes[-1] + 1 : indexes[-1] + 1] = copies
        return plan


@dataclass(frozen=True, kw_only=True)
class Drop(_EventFault):
    """Event ``event`` never arrives."""

    name: ClassVar[str] = "drop"

    def __call__(self, plan: Plan, context: Context) -> Plan:
        dropped = set(self._indexes(plan))
        plan.pieces = [p for i, p in enumerate(plan.pieces) if i not in dropped]
        return plan


@dataclass(frozen=True, kw_only=True)
class Ping(Fault):
    """A ``ping`` event after every ``every`` events, as the API sends while it thinks."""

    name: ClassVar[str] = "ping"
    every: int = 1

    def __post_init__(self) -> None:
        if isinstance(self.every, bool) or not isinstance(self.every, int) or self.every < 1:
            raise ConfigError(f"ping: every={self.every!r} must be a whole number >= 1")

    def __call__(self, plan: Plan, context: Context) -> Plan:
        out: list[Piece] = []
        for i, piece in enumerate(plan.pieces):
            out.append(piece)
            following = plan.pieces[i + 1].event if i + 1 < len(plan.pieces) else None
            if piece.event and piece.event % self.every == 0 and following != piece.event:
                out.append(Piece(_PING, piece.at))
        plan.pieces = out
        return plan


@dataclass(frozen=True, kw_only=True)
class Delay(Fault):
    """Later arrivals: ``first_byte`` before the headers, ``per_event`` (± ``jitter``) before each event."""

    name: ClassVar[str] = "delay"
    first_byte: float = 0.0
    per_event: float = 0.0
    jitter: float = 0.0
    seed: int = 0

    def __post_init__(self) -> None:
        _non_negative(self.name, first_byte=self.first_byte, per_event=self.per_event, jitter=self.jitter)

    @property
    def phase(self) -> int:
        return TIMING

    def __call__(self, plan: Plan, context: Context) -> Plan:
        rng = random.Random(self.seed)
        plan.head = [later(a, self.first_byte) for a in plan.head]
        extra, previous, pieces = self.first_byte, None, []
        for piece in plan.pieces:
            if piece.event != previous:
                # each event waits per_event +/- jitter, never less than nothing: time never runs backwards
                extra += max(0.0, self.per_event + (rng.uniform(-self.jitter, self.jitter) if self.jitter else 0.0))
                previous = piece.event
            pieces.append(Piece(piece.data, piece.at + extra, piece.event, piece.offset))
        plan.pieces = pieces
        plan.tail = [later(a, extra) for a in plan.tail]
        return plan


@dataclass(frozen=True, kw_only=True)
class Rechunk(Fault):
    """The same bytes in other chunks: ``size`` bytes each, or random sizes (1..64) from ``seed``."""

    name: ClassVar[str] = "rechunk"
    size: int | None = None
    seed: int = 0

    def __post_init__(self) -> None:
        if self.size is not None and (isinstance(self.size, bool) or not isinstance(self.size, int) or self.size < 1):
            raise ConfigError(f"rechunk: size={self.size!r} must be a whole number >= 1")

    @property
    def phase(self) -> int:
        return RECHUNK

    def __call__(self, plan: Plan, context: Context) -> Plan:
        rng = random.Random(self.seed)
        out: list[Piece] = []
        # the chunk being filled: its parts (joined once, when it is complete), its size so far, and
        # the piece and position its first byte came from (it keeps their event and offset)
        parts: list[bytes] = []
        filled, first, start, target = 0, None, 0, self._next_size(rng)
        for piece in plan.pieces:
            data, pos, size = piece.data, 0, len(piece.data)
            while pos < size:
                if first is None:
                    first, start = piece, pos
                take = min(target - filled, size - pos)
                parts.append(data[pos : pos + take])
                filled, pos = filled + take, pos + take
                if filled == target:  # a chunk is complete when its last byte arrives
                    out.append(Piece(b"".join(parts), piece.at, first.event, _plus(first.offset, start)))
                    parts, filled, first, target = [], 0, None, self._next_size(rng)
        if first is not None:
            out.append(Piece(b"".join(parts), plan.pieces[-1].at, first.event, _plus(first.offset, start)))
        plan.pieces = out
        return plan

    def _next_size(self, rng: random.Random) -> int:
        return self.size or rng.randint(1, 64)


def _plus(offset: int | None, delta: int) -> int | None:
    return None if offset is None else offset + delta


CATALOGUE: dict[str, type[Fault]] = {
    cls.name: cls
    for cls in (
        Refuse,
        Reset,
        Disconnect,
        Timeout,
        HttpError,
        RateLimit,
        Overloaded,
        ServerError,
        Stall_,
        ErrorEvent,
        Truncate,
        Delay,
        Rechunk,
        Corrupt,
        Duplicate,
        Drop,
        Ping,
    )  # fmt: skip
}
