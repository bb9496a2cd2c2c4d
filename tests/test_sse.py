"""SSE decoding: same events under any chunking, with byte spans."""

from __future__ import annotations

import random

import pytest

from streamtape.sse import SSEDecoder, parse_events
from tests.support.wire_server import DATA_DIR, list_transcripts


@pytest.mark.parametrize("name", list_transcripts())
def test_chunking_does_not_change_events(name: str) -> None:
    body = (DATA_DIR / f"{name}.sse").read_bytes()
    whole = parse_events(body)
    rng = random.Random(name)
    decoder, pieces, pos = SSEDecoder(), [], 0
    while pos < len(body):
        step = rng.randint(1, 40)
        pieces += decoder.decode(body[pos : pos + step])
        pos += step
    assert pieces + decoder.flush() == whole
    assert body[whole[-1].end :].count(b"\n\n") == 0  # nothing complete is left after the last event
    assert all(e.event == e.json["type"] for e in whole)


def test_spans_cover_the_body() -> None:
    body = (DATA_DIR / "text_basic.sse").read_bytes()
    events = parse_events(body)
    assert [body[e.start : e.end].split(b"\n")[0] for e in events][:2] == [
        b"event: message_start",
        b"event: content_block_start",
    ]
    assert all(a.end == b.start for a, b in zip(events, events[1:], strict=False))


@pytest.mark.parametrize("newline", ["\n", "\r\n", "\r"])
def test_line_endings(newline: str) -> None:
    body = newline.join(["event: a", "data: 1", "", ": comment", "data: 2", "data: 3", "", ""]).encode()
    events = parse_events(body)
    assert [(e.event, e.data) for e in events] == [("a", "1"), ("message", "2\n3")]


def test_a_trailing_event_without_blank_line_is_dropped() -> None:
    assert [e.data for e in parse_events(b"data: 1\n\ndata: 2\n")] == ["1"]


def test_non_json_data() -> None:
    assert parse_events(b"data: not json\n\n")[0].json is None
