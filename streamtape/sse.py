"""Server-Sent Events: finding event boundaries in bytes and parsing events for inspection.

``SSEDecoder`` is incremental in the style of httpx's decoders (``decode(chunk) -> list``,
``flush() -> list``), so it gives the same events under any chunking. Each event keeps the byte span
it occupies in the body, which is what faults positioned "after event N" cut at. Replay never parses:
it plays bytes.
"""

from __future__ import annotations

import json
from dataclasses import dataclass, field
from typing import Any

__all__ = ["Event", "SSEDecoder", "parse_events"]

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
            except ValueError:
                value = None
            object.__setattr__(self, "_json", value)
        return self._json


class SSEDecoder:
    """Turns body bytes, fed in any chunking, into ``Event``s (WHATWG event-stream rules)."""

    def __init__(self) -> None:
        self._buffer = b""
        self._offset = 0  # body offset of self._buffer[0]
        self._event_start: int | None = None
        self._name = ""
        self._data: list[str] = []
        self._id: str | None = None

    def decode(self, chunk: bytes) -> list[Event]:
        self._buffer += chunk
        events: list[Event] = []
        while True:
            line_end, next_start = self._find_line_end()
            if line_end < 0:
                return events
            line = self._buffer[:line_end]
            line_offset = self._offset
            self._buffer = self._buffer[next_start:]
            self._offset += next_start
            event = self._feed_line(line, line_offset)
            if event is not None:
                events.append(event)

    def flush(self) -> list[Event]:
        """End of body: a trailing event without its blank line is dropped, as browsers and the SDK do."""
        events = []
        if self._buffer.endswith(b"\r"):  # held back in case an LF followed; none will
            line, offset = self._buffer[:-1], self._offset
            self._buffer, self._offset = b"", self._offset + len(line) + 1
            event = self._feed_line(line, offset)
            events = [event] if event is not None else []
        self._buffer = b""
        self._reset_event()
        return events

    def _find_line_end(self) -> tuple[int, int]:
        buf = self._buffer
        lf, cr = buf.find(b"\n"), buf.find(b"\r")
        if cr < 0 or (0 <= lf < cr):
            return (lf, lf + 1) if lf >= 0 else (-1, -1)
        if cr == len(buf) - 1:
            return -1, -1  # a CR at the end may be the first half of a CRLF
        return (cr, cr + 2) if buf[cr + 1 : cr + 2] == b"\n" else (cr, cr + 1)

    def _feed_line(self, line: bytes, offset: int) -> Event | None:
        if not line:
            return self._dispatch()
        if self._event_start is None:
            self._event_start = offset
        text = line.decode("utf-8", errors="replace")
        if text.startswith(":"):
            return None
        name, _, value = text.partition(":")
        value = value[1:] if value.startswith(" ") else value
        if name == "event":
            self._name = value
        elif name == "data":
            self._data.append(value)
        elif name == "id" and "\0" not in value:
            self._id = value
        return None

    def _dispatch(self) -> Event | None:
        event = None
        if self._event_start is not None and self._data:
            # self._offset is just past the blank line that ends the event
            event = Event(self._name or "message", "\n".join(self._data), self._event_start, self._offset, self._id)
        self._reset_event()
        return event

    def _reset_event(self) -> None:
        self._event_start = None
        self._name = ""
        self._data = []


def parse_events(body: bytes) -> list[Event]:
    """All complete events in ``body``."""
    decoder = SSEDecoder()
    return decoder.decode(body) + decoder.flush()
