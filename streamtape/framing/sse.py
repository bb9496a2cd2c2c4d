"""The SSE framer: ``text/event-stream`` bodies, read by ``streamtape.sse`` (which stays the one
parser: the decoder gives byte spans, ``event_ends`` finds boundaries without decoding a field)."""

from __future__ import annotations

from ..sse import Event, event_ends, parse_events

__all__ = ["SSE", "SSEFramer"]


class SSEFramer:
    name: str = "sse"
    content_types: tuple[str, ...] = ("text/event-stream",)
    unit: str = "SSE event"

    def event_ends(self, body: bytes) -> list[int]:
        return event_ends(body)

    def events(self, body: bytes) -> list[Event]:
        return parse_events(body)

    def payload_start(self, event: bytes) -> int:
        """Just past the first ``data:``. An event whose only data line is a bare ``data`` has no
        colon: 4 then, inside that line, which damages it all the same."""
        return event.find(b"data:") + len(b"data:")

    def __repr__(self) -> str:
        return "<framer sse>"


SSE = SSEFramer()
