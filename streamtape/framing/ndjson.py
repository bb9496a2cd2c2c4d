"""The NDJSON framer: one JSON text per line (``application/x-ndjson``), as Ollama streams.

An event is a line that has its line end: a last line without one is incomplete (a stream cut
mid-object), as an SSE event without its blank line is. Blank lines are not events. An event is
named by its JSON object's ``type`` when that is text (OpenAI-style objects), else ``message``
(SSE's name for an event without one), so ``inspect`` can count them by type.
"""

from __future__ import annotations

import json
from collections.abc import Iterator
from typing import Any

from ..sse import Event

__all__ = ["NDJSON", "NDJSONFramer"]


class NDJSONFramer:
    name: str = "ndjson"
    content_types: tuple[str, ...] = ("application/x-ndjson", "application/ndjson", "application/jsonl", "application/x-jsonlines",
                     "application/jsonlines")  # fmt: skip
    unit: str = "event"

    def event_ends(self, body: bytes) -> list[int]:
        return [end for start, end in _lines(body) if body[start:end].strip()]

    def events(self, body: bytes) -> list[Event]:
        events = []
        for start, end in _lines(body):
            raw = body[start:end].strip()
            if raw:
                data = raw.decode("utf-8", errors="replace")
                name, value = _parsed(data)
                events.append(Event(name, data, start, end, None, value))
        return events

    def payload_start(self, event: bytes) -> int:
        return len(event) - len(event.lstrip())

    def __repr__(self) -> str:
        return "<framer ndjson>"


def _lines(body: bytes) -> Iterator[tuple[int, int]]:
    """The span of each line that has its line end (an LF; a CR before it is part of the line)."""
    start = 0
    while (stop := body.find(b"\n", start)) >= 0:
        yield start, stop + 1
        start = stop + 1


def _parsed(data: str) -> tuple[str, Any]:
    """The event's name and its JSON (``None`` when it is not JSON)."""
    try:
        value = json.loads(data)
    except (ValueError, RecursionError):
        return "message", None
    kind = value.get("type") if isinstance(value, dict) else None
    return (kind if isinstance(kind, str) and kind else "message"), value


NDJSON = NDJSONFramer()
