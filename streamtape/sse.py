"""Server-Sent Events: finding event boundaries in bytes and parsing events for inspection.

``SSEDecoder`` is incremental in the style of httpx's decoders (``decode(chunk) -> list``,
``flush() -> list``), so it gives the same events under any chunking. Each event keeps the byte span
it occupies in the body, which is what faults positioned "after event N" cut at. Replay never parses:
it plays bytes. The rest of streamtape reaches this parser through the SSE framer
(``streamtape.framing.sse``), chosen by a response's content type.
"""

from __future__ import annotations

import json
import re
from dataclasses import dataclass, field
from typing import Any

__all__ = ["Event", "SSEDecoder", "event_ends", "parse_events"]

_NO_JSON = object()


@dataclass(frozen=True, slots=True)
class Event:
    """One dispatched SSE event and the byte span ``[start, end)`` it occupies in the body."""

    event: str
    data: str
    start: int
    end: int
    id: str | None = None
    _json: Any = field(default=_NO_JSON, repr=False, compare=False)

    @property
    def json(self) -> Any:
        """``data`` parsed as JSON, or ``None`` when it is not JSON."""
        if self._json is _NO_JSON:
            try:
                value = json.loads(self.data)
            except (ValueError, RecursionError):  # not JSON, or nested past what json can read
                value = None
            object.__setattr__(self, "_json", value)
        return self._json


class SSEDecoder:
    """Turns body bytes, fed in any chunking, into ``Event``s (WHATWG event-stream rules).

    Linear in the bytes fed, however they are chunked: each chunk is split into lines once (in
    windows of at most ``_WINDOW`` bytes, so a whole body fed at once needs no second copy of
    itself in line objects), and only the one incomplete line at a chunk's end is kept, in a
    ``bytearray`` that grows in place, until its end arrives."""

    def __init__(self) -> None:
        self._pending = bytearray()  # an incomplete line: no CR or LF, except perhaps a CR at its end
        self._offset = 0  # body offset of self._pending[0]
        self._event_start: int | None = None
        self._name = ""
        self._data: list[str] = []
        self._id: str | None = None

    def decode(self, chunk: bytes) -> list[Event]:
        events: list[Event] = []
        if not isinstance(chunk, (bytes, bytearray)):
            chunk = bytes(chunk)  # a memoryview, say
        if len(chunk) <= _WINDOW:
            self._decode(chunk, events)
        else:
            for start in range(0, len(chunk), _WINDOW):
                self._decode(chunk[start : start + _WINDOW], events)
        return events

    def flush(self) -> list[Event]:
        """End of body: a trailing event without its blank line is dropped, as browsers and the SDK do."""
        events: list[Event] = []
        pending, self._pending = self._pending, bytearray()
        if pending.endswith(b"\r"):  # held back in case an LF followed; none will
            self._lines([bytes(pending)], events)
        self._reset_event()
        return events

    def _decode(self, chunk: bytes, events: list[Event]) -> None:
        if not chunk:
            return
        if self._pending:
            chunk = self._complete_pending(chunk, events)
            if not chunk:
                return
        lines = chunk.splitlines(keepends=True)  # bytes split at CR, LF and CRLF only
        if not lines[-1].endswith(b"\n"):
            # no line end yet, or a CR that may be the first half of a CRLF: wait for more
            self._pending = bytearray(lines.pop())
        self._lines(lines, events)

    def _complete_pending(self, chunk: bytes, events: list[Event]) -> bytes:
        """Ends the pending line with ``chunk``'s first line end, if it has one; returns the rest."""
        pending = self._pending
        if pending.endswith(b"\r"):  # a held-back CR ends the line; an LF after it belongs to it
            take = 1 if chunk.startswith(b"\n") else 0
            self._pending = bytearray()
            self._lines([bytes(pending) + chunk[:take]], events)
            return chunk[take:]
        found = _LINE_END.search(chunk)
        if found is None or (found.end() == len(chunk) and found.group() == b"\r"):
            pending.extend(chunk)  # still incomplete (or ends in a CR that may be half a CRLF)
            return b""
        self._pending = bytearray()
        self._lines([bytes(pending) + chunk[: found.end()]], events)
        return chunk[found.end() :]

    def _lines(self, lines: list[bytes], events: list[Event]) -> None:
        """Feeds complete lines, each with its line end (CR, LF or CRLF), from ``self._offset`` on."""
        offset, start, name, data, id_ = self._offset, self._event_start, self._name, self._data, self._id
        for raw in lines:
            line = raw.rstrip(b"\r\n")  # the line end alone: a line holds no other CR or LF
            line_offset = offset
            offset += len(raw)
            if not line:  # a blank line dispatches; offset is just past it
                if start is not None and data:
                    events.append(Event(name or "message", "\n".join(data), start, offset, id_))
                start, name, data = None, "", []
                continue
            if start is None:
                start = line_offset
            if line.startswith(b":"):
                continue
            field_name, _, value = line.decode("utf-8", errors="replace").partition(":")
            if value.startswith(" "):
                value = value[1:]
            if field_name == "data":
                data.append(value)
            elif field_name == "event":
                name = value
            elif field_name == "id" and "\0" not in value:
                id_ = value
        self._offset, self._event_start, self._name, self._data, self._id = offset, start, name, data, id_

    def _reset_event(self) -> None:
        self._event_start = None
        self._name = ""
        self._data = []


_WINDOW = 1 << 20  # bytes split into lines at a time
_LINE_END = re.compile(rb"\r\n|\r|\n")


def parse_events(body: bytes) -> list[Event]:
    """All complete events in ``body``."""
    decoder = SSEDecoder()
    return decoder.decode(body) + decoder.flush()


def event_ends(body: bytes) -> list[int]:
    """Where each complete event in ``body`` ends: ``[e.end for e in parse_events(body)]``, found
    without decoding a field (what faults positioned by event need, a few times faster).

    An event is dispatched at a blank line when a ``data`` field came before it since the last
    blank line; the field name is what comes before the line's first colon, and no byte of a
    multi-byte UTF-8 character (nor U+FFFD, which replaces an invalid one) is a colon or spells
    ``data``, so the raw bytes decide as the decoded text would."""
    ends: list[int] = []
    offset, has_data, size, start = 0, False, len(body), 0
    while start < size:
        # a window of whole lines: it ends just past an LF (nothing after an LF belongs to its line)
        stop = body.find(b"\n", start + _WINDOW)
        stop = size if stop < 0 else stop + 1
        for raw in body[start:stop].splitlines(keepends=True):
            offset += len(raw)
            first = raw[0]
            if first == 10 or first == 13:  # a blank line: the line end alone
                if has_data:
                    ends.append(offset)
                    has_data = False
            elif first == 100 and not has_data and raw.startswith(b"data") and raw[4:5] in _AFTER_NAME:  # "d"
                has_data = True
        start = stop
    return ends


_AFTER_NAME = (b":", b"\r", b"\n")  # what may follow a field name that is all of its line's start
