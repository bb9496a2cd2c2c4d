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

import json
import random
import re
from collections.abc import Mapping, Sequence
from dataclasses import dataclass, replace
from http import HTTPStatus
from typing import Any, ClassVar

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
    request id and headers); the SDK's own retry logic decides what happens next.

    What the real world sends beyond the API's usual: ``request_id`` (``False``: none, as in the
    API's 2024 bodies; a string: that id; default a generated one, none with a raw ``body``),
    ``body`` (the whole body, sent as given: a proxy's HTML page, a plain-text 503) with its
    ``content_type``, ``headers`` (a mapping or ``(name, value)`` pairs, replacing the defaults of
    their names; in a spec string a JSON object in quotes) and ``retry_after_date`` (``retry-after``
    as an HTTP date that many seconds after the fault is applied)."""

    name: ClassVar[str] = "http_error"
    status: int = 500
    error_type: str | None = None
    message: str | None = None
    retry_after: float | None = None
    retry_after_ms: float | None = None
    should_retry: bool | None = None
    request_id: str | bool | None = None
    body: str | None = None
    content_type: str | None = None
    headers: Mapping[str, str] | Sequence[tuple[str, str]] | str = ()
    retry_after_date: float | None = None

    def __post_init__(self) -> None:
        if isinstance(self.status, bool) or not isinstance(self.status, int) or not 400 <= self.status <= 599:
            raise ConfigError(f"{self.name}: status={self.status!r} must be an HTTP error status, 400..599")
        _non_negative(self.name, retry_after=self.retry_after, retry_after_ms=self.retry_after_ms,
                      retry_after_date=self.retry_after_date)  # fmt: skip
        if self.retry_after is not None and self.retry_after_date is not None:
            raise ConfigError(f"{self.name}: give retry_after=N (seconds) or retry_after_date=N (a date N seconds "
                              "ahead), not both: each is the retry-after header")  # fmt: skip
        if self.body is not None and (self.error_type is not None or self.message is not None):
            raise ConfigError(f"{self.name}: body= is the whole body, sent as given; error_type= and message= word "
                              "the API's JSON body instead: give one or the other")  # fmt: skip
        if isinstance(self.request_id, str) and not _header_value(self.request_id):
            raise ConfigError(f"{self.name}: request_id={self.request_id!r}; give an id, false (none), or leave it "
                              "out (a generated one)")  # fmt: skip
        if self.content_type is not None and not _header_value(self.content_type):
            raise ConfigError(f"{self.name}: content_type={self.content_type!r} is not a header value")
        object.__setattr__(self, "headers", _header_pairs(self.name, self.headers))

    @property
    def phase(self) -> int:
        return REPLACE

    def __call__(self, plan: Plan, context: Context) -> Plan:
        at = plan.respond.at if plan.respond else 0.0
        # what came after should_retry only when given: a provider written before them still works
        given = {key: getattr(self, key) for key in ("request_id", "body", "content_type", "retry_after_date")
                 if getattr(self, key) is not None}  # fmt: skip
        if self.headers:
            given["headers"] = self.headers
        status = self._status(context)
        headers, body = context.provider.http_error(
            status, number=context.number, error_type=self.error_type, message=self.message,
            retry_after=self.retry_after, retry_after_ms=self.retry_after_ms, should_retry=self.should_retry, **given,
        )  # fmt: skip
        reason = HTTPStatus(status).phrase if status in HTTPStatus._value2member_map_ else ""
        return Plan([Respond(status, headers, reason, at)], [Piece(body, at)], [End(at)])

    def _status(self, context: Context) -> int:
        return self.status


def _header_value(text: str) -> bool:
    return bool(text) and not any(char in text for char in "\r\n\0")


def _header_pairs(fault: str, headers: object) -> tuple[tuple[str, str], ...]:
    """``headers`` as ``(name, value)`` pairs: from a mapping, pairs, or (spec strings) JSON text."""
    given = headers
    if isinstance(headers, str):
        try:
            headers = json.loads(headers) if headers.strip() else ()
        except ValueError:
            raise ConfigError(f"{fault}: headers={given!r} is not JSON; in a spec string give a JSON object in "
                              'quotes, e.g. headers=\'{"retry-after": "2"}\'') from None  # fmt: skip
    pairs = list(headers.items()) if isinstance(headers, Mapping) else headers
    if not isinstance(pairs, (list, tuple)):
        raise ConfigError(f"{fault}: headers={given!r}; give a mapping or (name, value) pairs")
    out = []
    for pair in pairs:
        if (
            not isinstance(pair, (list, tuple))
            or len(pair) != 2
            or not all(isinstance(p, str) for p in pair)
            or not re.fullmatch(r"[!#$%&'*+.^_`|~0-9A-Za-z-]+", pair[0])
            or "\r" in pair[1]
            or "\n" in pair[1]
        ):
            raise ConfigError(f"{fault}: headers: {pair!r} is not a (name, value) pair of header text")  # fmt: skip
        out.append((pair[0], pair[1]))
    return tuple(out)


@dataclass(frozen=True, kw_only=True)
class RateLimit(HttpError):
    """429, the API's rate limit, with the rate-limit headers of a real one."""

    name: ClassVar[str] = "rate_limit"
    status: int = 429


@dataclass(frozen=True, kw_only=True)
class Overloaded(HttpError):
    """529, the API's overload; an API that overloads with another status says so as its provider's
    ``overloaded_status`` (OpenAI's 503), used unless another ``status`` is given."""

    name: ClassVar[str] = "overloaded"
    status: int = 529

    def _status(self, context: Context) -> int:
        return context.provider.overloaded_status if self.status == 529 else self.status


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
    one, for Anthropic the overload report), then the clean close the API does (``then="end"``), or
    a cut connection (``then="cut"``: a FIN right after it, as some servers do). ``data``: the event's
    data text instead of the API's JSON, sent as given (a proxy's ``upstream connect error ...``);
    ``event``: the event's name."""

    name: ClassVar[str] = "error_event"
    error_type: str | None = None
    message: str | None = None
    data: str | None = None
    event: str = "error"
    then: str = "end"

    def __post_init__(self) -> None:
        super().__post_init__()
        if self.then not in ("end", "cut"):
            raise ConfigError(f"{self.name}: then={self.then!r}; valid: end (the server ends the stream cleanly), "
                              "cut (it closes the connection: a FIN)")  # fmt: skip
        if self.data is not None and (self.error_type is not None or self.message is not None):
            raise ConfigError(f"{self.name}: data= is the event's data, sent as given; error_type= and message= word "
                              "the API's JSON instead: give one or the other")  # fmt: skip
        if not self.event or any(char in self.event for char in "\r\n"):
            raise ConfigError(f"{self.name}: event={self.event!r} must be an event name (one line of text)")

    def __call__(self, plan: Plan, context: Context) -> Plan:
        index = self._cut_index(plan) if self.positioned else 0  # alone, as the API sends it
        at = plan.keep(index)
        given: dict[str, str] = {} if self.data is None else {"data": self.data}
        if self.event != "error":
            given["event"] = self.event  # only when given: a provider written before them still works
        event = context.provider.error_event(self.error_type, self.message, **given)
        if self.data is None:  # an API whose events carry the stream's state (OpenAI Responses'
            # sequence_number) fits it to what was sent
            event = context.provider.fit_event(event, plan.framer.events(b"".join(p.data for p in plan.pieces)))
        plan.pieces.append(Piece(event, at))
        if self.then == "cut":
            plan.tail = [Cut("fin", None, at)]  # what was announced stays announced: the cut breaks it
            return plan
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
    """Event ``event`` arrives malformed (where its payload starts, the response's framer says):

    - ``how="json"``: a comma before its JSON's last brace (no ``at``);
    - ``how="truncate"``: its data cut short at byte ``at`` of the data (default the middle), the
      line end and the rest of the event still following, as a real truncated event reads;
    - ``how="escape"``: an invalid JSON escape (``\\x``) at byte ``at``, which must fall inside a JSON
      string (default: inside the first one);
    - ``how="utf8"``: an invalid UTF-8 byte (``0xff``) at byte ``at`` (default: before the data).

    ``at`` counts bytes of the event's data: ``at=0`` is its first byte, after ``data:`` and its space.
    In an AWS event stream the data is a frame's payload, and the frame stays valid (its lengths and
    CRCs recomputed: a checksum error is ``bad_crc``)."""

    name: ClassVar[str] = "corrupt"
    how: str = "json"
    at: int | None = None

    _HOWS: ClassVar[tuple[str, ...]] = ("json", "truncate", "escape", "utf8")

    def __post_init__(self) -> None:
        super().__post_init__()
        if self.how not in self._HOWS:
            raise ConfigError(f"corrupt: how={self.how!r}; valid: {', '.join(self._HOWS)}")
        if self.at is not None and (isinstance(self.at, bool) or not isinstance(self.at, int) or self.at < 0):
            raise ConfigError(f"corrupt: at={self.at!r} must be a whole number >= 0 (a byte of the event's data)")
        if self.at is not None and self.how == "json":
            raise ConfigError("corrupt: at= places how=truncate, escape or utf8; how=json always breaks the "
                              "JSON's last brace")  # fmt: skip

    def __call__(self, plan: Plan, context: Context) -> Plan:
        index, piece = self._joined(plan)
        # a binary framer (AWS event streams) has payload/with_payload: the payload is damaged and the
        # frame made whole again (lengths, CRCs), so the app meets bad JSON, not a checksum error
        unwrap: Any = getattr(plan.framer, "payload", None)
        rewrap: Any = getattr(plan.framer, "with_payload", None)
        binary = unwrap is not None and rewrap is not None
        data = unwrap(piece.data) if binary else piece.data
        start = 0 if binary else plan.framer.payload_start(data)
        if self.how == "utf8" and self.at is None:
            data = data[:start] + b" \xff" + data[start:]
        elif self.how == "json":
            end = data.rfind(b"}")
            data = data[:end] + b",}" + data[end + 1 :] if end > start else data[:start] + b" {" + data[start:]
        else:
            begin = start + 1 if data[start : start + 1] == b" " else start  # the data, after the field's space
            stop = min((i for i in (data.find(b"\n", begin), data.find(b"\r", begin)) if i >= 0), default=len(data))
            at = begin + self._offset(data[begin:stop])
            damage = {"truncate": b"", "escape": b"\\x", "utf8": b"\xff"}[self.how]
            data = data[:at] + damage + (data[stop:] if self.how == "truncate" else data[at:])
        plan.pieces[index] = replace(piece, data=rewrap(piece.data, data) if binary else data)
        return plan

    def _offset(self, value: bytes) -> int:
        """Where in the event's data (``value``) the damage goes, checked against what the data holds."""
        size = len(value)
        where = f"{self.spec()}: event {self.event}'s data has {size} bytes"
        if self.how == "truncate":
            if size == 0:
                raise ConfigError(f"{where}; there is nothing to cut short")
            if self.at is not None and self.at >= size:
                raise ConfigError(f"{where}; use at=0..{size - 1} (where the data stops)")
            return size // 2 if self.at is None else self.at
        if self.how == "utf8":
            if self.at is not None and self.at > size:
                raise ConfigError(f"{where}; use at=0..{size} (the byte before which 0xff goes)")
            return self.at or 0
        spans = _strings(value)  # escape: inside a JSON string, or it is no escape
        if not spans:
            raise ConfigError(f"{where} and no JSON string, where an escape could go")
        if self.at is None:
            return spans[0][0]
        if not any(low <= self.at <= high for low, high in spans):
            shown = ", ".join(f"{low}..{high}" for low, high in spans[:6]) + (", ..." if len(spans) > 6 else "")
            raise ConfigError(f"{where}; at={self.at} is not inside a JSON string: use at= in {shown}")
        return self.at


def _strings(value: bytes) -> list[tuple[int, int]]:
    """The offsets where an escape inserted into ``value`` lands inside a JSON string, as ranges
    (both ends included): from just after a string's opening quote to its closing quote, but never
    right after a backslash (``\\`` + ``x`` would be a valid escape)."""
    spans: list[tuple[int, int]] = []
    low, escaped = -1, False  # low: the first allowed offset of the open string's current range
    for index, byte in enumerate(value):
        if low < 0:
            if byte == 0x22:  # "
                low = index + 1
        elif escaped:
            escaped = False
        elif byte == 0x5C:  # backslash: the offset after it is the escape's own
            spans.append((low, index))
            low, escaped = index + 2, True
        elif byte == 0x22:
            spans.append((low, index))
            low = -1
    return [(a, b) for a, b in spans if a <= b]


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
