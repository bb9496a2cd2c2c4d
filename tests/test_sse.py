"""SSE decoding: same events under any chunking, with byte spans."""

from __future__ import annotations

import random

import pytest
from hypothesis import given, settings
from hypothesis import strategies as st

from streamtape import sse
from streamtape.sse import Event, SSEDecoder, event_ends, parse_events
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


# --- any chunking, any line ends: the decoder, the window it splits a large body in, event_ends -------

_ATOMS = [b"\n", b"\r", b"\r\n", b"\n\n", b"\r\r", b"\r\n\r\n", b"data: x", b"data:", b"data", b"dat", b"datax: 1",
          b"data : 1", b"event: e", b"event:", b"id: 7", b"id: a\0b", b":c", b": data", b"retry: 3", b" ", b"\xc3\xa9",
          b"\xff", b"\xe2\x82", b"\xac", b"\xef\xbb\xbfdata: bom", b'data: {"type": "ping"}']  # fmt: skip
_bodies = st.lists(st.sampled_from(_ATOMS), max_size=40).map(b"".join)


def _spans(events: list[Event]) -> list[tuple[str, str, int, int, str | None]]:
    return [(e.event, e.data, e.start, e.end, e.id) for e in events]


def _fed(body: bytes, cuts: list[int]) -> list[Event]:
    decoder, events, pos = SSEDecoder(), [], 0
    for cut in [*sorted(cuts), len(body)]:
        events += decoder.decode(body[pos:cut])
        pos = max(pos, cut)
    return events + decoder.flush()


@settings(max_examples=400, deadline=None)
@given(body=_bodies, data=st.data())
def test_any_chunking_gives_the_same_events(body: bytes, data: st.DataObject) -> None:
    cuts = data.draw(st.lists(st.integers(0, len(body)), max_size=12))
    whole = _spans(parse_events(body))
    assert _spans(_fed(body, cuts)) == whole
    assert _spans(_fed(body, list(range(len(body))))) == whole  # a byte at a time
    assert event_ends(body) == [end for *_, end, _ in whole]


@settings(max_examples=200, deadline=None)
@given(body=_bodies, window=st.integers(1, 9))
def test_a_body_larger_than_the_window_gives_the_same_events(body: bytes, window: int) -> None:
    whole, ends = _spans(parse_events(body)), event_ends(body)
    with pytest.MonkeyPatch.context() as patch:
        patch.setattr(sse, "_WINDOW", window)
        assert _spans(parse_events(body)) == whole
        assert event_ends(body) == ends


def test_spans_with_every_kind_of_line_end() -> None:
    """Byte offsets are the body's, whatever ends its lines; a BOM is not skipped (nor was it before)."""
    body = (b": hi\r\nevent: a\r\ndata: 1\r\rdata: 2\ndata:3\r\n\nid: 7\ndata\n\n\xef\xbb\xbfdata: bom\n\n"
            b"data: \xff\xfe\r\n\r\ndata: tail\r")  # fmt: skip
    assert _spans(parse_events(body)) == [
        ("a", "1", 0, 25, None),
        ("message", "2\n3", 25, 42, None),
        ("message", "", 42, 54, "7"),
        ("message", "\ufffd\ufffd", 68, 80, "7"),
    ]
    assert event_ends(body) == [25, 42, 54, 80]


def test_a_cr_at_a_chunk_end() -> None:
    """A CR ending a chunk may be the first half of a CRLF: the line end is decided by the next chunk
    (or by the end of the body)."""
    decoder = SSEDecoder()
    assert decoder.decode(b"data: x\r") == [] and decoder.decode(b"\r") == []
    assert _spans(decoder.flush()) == [("message", "x", 0, 9, None)]
    decoder = SSEDecoder()
    assert decoder.decode(b"data: x\r") == [] and decoder.decode(b"\n\r") == []
    assert _spans(decoder.decode(b"\ndata: y\r\r")) == [("message", "x", 0, 11, None)]
    assert _spans(decoder.flush()) == [("message", "y", 11, 20, None)]
