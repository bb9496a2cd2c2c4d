"""The built-in faults: each a small frozen value that reshapes one response's ``Plan``.

Faults run in phases, whatever order they are listed in: replacements (refuse, reset/disconnect
before headers, timeout, HTTP errors), then content (corrupt, duplicate, drop, ping), then cuts
(disconnect, reset, stall, error_event, truncate), then timing (delay), then rechunk. Positions
(``after=N``, ``event=N``, ``at_byte=B``) always refer to the original recording. Each registers
itself by its ``name`` when defined (``streamtape.faults.base``), in the order of this module, which
is the order error messages list them in. What the API says (error bodies, the in-stream error,
the keep-alive) comes from the request's provider (``context.provider``), never from here.
"""

from __future__ import annotations

import random
from dataclasses import dataclass, replace
from http import HTTPStatus
from typing import ClassVar

from ..errors import ConfigError
from ..wire import Cut, End, Respond, Stall
from ._plan import Piece, Plan, later
from .base import CATALOGUE, CUT, RECHUNK, REPLACE, TIMING, Context, Fault, check_params

__all__ = [
    "CATALOGUE", "Context", "Corrupt", "Delay", "Disconnect", "Drop", "Duplicate", "ErrorEvent", "Fault", "HttpError",
    "Overloaded", "Ping", "RateLimit", "Rechunk", "Refuse", "Reset", "ServerError", "Stall_", "Timeout", "Truncate",
    "check_params",
]  # fmt: skip


def _non_negative(fault: str, **values: float | None) -> None:
    for key, value in values.items():
        if value is not None and (isinstance(value, bool) or not isinstance(value, (int, float)) or value < 0):
            raise ConfigError(f"{fault}: {key}={value!r} must be a number >= 0")


# --- positions and breaks (no names: the bases of the faults below) ------------------------------


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
class Reset(_Break):
    """The connection is reset (RST); mid-body, or before any response without a position."""

    name: ClassVar[str] = "reset"
    error: ClassVar[str] = "ReadError"


@dataclass(frozen=True, kw_only=True)
class Disconnect(_Break):
    """The server closes the connection (FIN); mid-body, or before any response without a position."""

    name: ClassVar[str] = "disconnect"
    error: ClassVar[str] = "RemoteProtocolError"


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
class HttpError(Fault):
    """The API's own error response instead of the stream (from ``context.provider``: its body,
    request id and headers); the SDK's own retry logic decides what happens next."""

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
        headers, body = context.provider.http_error(
            self.status, number=context.number, error_type=self.error_type, message=self.message,
            retry_after=self.retry_after, retry_after_ms=self.retry_after_ms, should_retry=self.should_retry,
        )  # fmt: skip
        reason = HTTPStatus(self.status).phrase if self.status in HTTPStatus._value2member_map_ else ""
        return Plan([Respond(self.status, headers, reason, at)], [Piece(body, at)], [End(at)])


@dataclass(frozen=True, kw_only=True)
class RateLimit(HttpError):
    """429, the API's rate limit, with the rate-limit headers of a real one."""

    name: ClassVar[str] = "rate_limit"
    status: int = 429


@dataclass(frozen=True, kw_only=True)
class Overloaded(HttpError):
    """529, the API's overload."""

    name: ClassVar[str] = "overloaded"
    status: int = 529


@dataclass(frozen=True, kw_only=True)
class ServerError(HttpError):
    """500, the API's internal error."""

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
    """An error reported inside the stream, in the API's own bytes (``error_type`` ``None``: its usual
    one, for Anthropic the overload report), then the clean close the API does."""

    name: ClassVar[str] = "error_event"
    error_type: str | None = None
    message: str | None = None

    def __call__(self, plan: Plan, context: Context) -> Plan:
        index = self._cut_index(plan) if self.positioned else 0  # alone, as the API sends it
        at = plan.keep(index)
        plan.pieces.append(Piece(context.provider.error_event(self.error_type, self.message), at))
        plan.announce_length()  # the API closes cleanly after it: it sends what it announces
        plan.tail = [End(at)]
        return plan


@dataclass(frozen=True, kw_only=True)
class Truncate(_Positioned):
    """The body ends cleanly early: no closing event, no error (without a position: just before
    the last event)."""

    name: ClassVar[str] = "truncate"

    def __call__(self, plan: Plan, context: Context) -> Plan:
        index = (
            self._cut_index(plan) if self.positioned else plan.position(self.name, after=plan.events - 1, at_byte=None)
        )
        at = plan.keep(index)
        plan.announce_length()  # a clean, early end: the length announced is the length sent
        plan.tail = [End(at)]
        return plan


# --- timing and chunks ---------------------------------------------------------------------------


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


# --- shaping events ------------------------------------------------------------------------------


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
                f"{self.spec()}: the recorded response has {plan.events} {plan.unit}s; use event=1..{plan.events}"
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
    """Event ``event`` arrives malformed: invalid JSON in its payload, or an invalid UTF-8 byte
    (where the payload starts, the response's framer says)."""

    name: ClassVar[str] = "corrupt"
    how: str = "json"

    def __post_init__(self) -> None:
        super().__post_init__()
        if self.how not in ("json", "utf8"):
            raise ConfigError(f"corrupt: how={self.how!r}; valid: json, utf8")

    def __call__(self, plan: Plan, context: Context) -> Plan:
        index, piece = self._joined(plan)
        data = piece.data
        start = plan.framer.payload_start(data)
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
    """The API's keep-alive event (``context.provider``'s) after every ``every`` events, as the API
    sends while the model thinks."""

    name: ClassVar[str] = "ping"
    every: int = 1

    def __post_init__(self) -> None:
        if isinstance(self.every, bool) or not isinstance(self.every, int) or self.every < 1:
            raise ConfigError(f"ping: every={self.every!r} must be a whole number >= 1")

    def __call__(self, plan: Plan, context: Context) -> Plan:
        out: list[Piece] = []
        keep_alive = context.provider.keep_alive()
        for i, piece in enumerate(plan.pieces):
            out.append(piece)
            following = plan.pieces[i + 1].event if i + 1 < len(plan.pieces) else None
            if piece.event and piece.event % self.every == 0 and following != piece.event:
                out.append(Piece(keep_alive, piece.at))
        plan.pieces = out
        return plan


def _plus(offset: int | None, delta: int) -> int | None:
    return None if offset is None else offset + delta
