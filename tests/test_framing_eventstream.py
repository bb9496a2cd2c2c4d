"""The AWS event-stream framer and codec, and event-stream bodies in cassettes.

botocore's own parser (``botocore.eventstream.EventStreamBuffer``) is the oracle for the codec: what
streamtape encodes, botocore decodes to the same headers and payload, CRCs checked. The recorded
Bedrock streams in tests/data/bedrock (see its SOURCES.md) must survive a cassette byte for byte,
whole and cut anywhere, and so must any generated frames (Hypothesis), bad CRCs included.
"""

from __future__ import annotations

import base64
import struct
import uuid
import zlib
from pathlib import Path

import pytest
from botocore.eventstream import ChecksumMismatch, EventStreamBuffer
from hypothesis import HealthCheck, given, settings
from hypothesis import strategies as st

from streamtape import Cassette, Interaction, Request, Response
from streamtape.errors import CassetteFormatError
from streamtape.faults import Context, apply, parse
from streamtape.faults._plan import Plan
from streamtape.framing import framer_for, get, stream_framer
from streamtape.framing.eventstream import (
    EVENTSTREAM,
    Frame,
    FrameError,
    Typed,
    crc_ok,
    decode_frame,
    encode_frame,
    frame_spans,
)
from streamtape.wire import Chunks, End, Respond, Send
from tests.test_linear_time import assert_linear

DATA = Path(__file__).resolve().parent / "data" / "bedrock"
RECORDED = sorted(DATA.glob("*.eventstream"))
HEADERS = (("Content-Type", "application/vnd.amazon.eventstream"),)
EVENT = ((":event-type", "contentBlockDelta"), (":content-type", "application/json"), (":message-type", "event"))


def botocore_frames(body: bytes) -> list[tuple[dict[str, object], bytes]]:
    buffer = EventStreamBuffer()
    buffer.add_data(body)
    return [(message.headers, message.payload) for message in buffer]


def saved_and_loaded(body: bytes, tmp_path: Path | None = None) -> tuple[bytes, str]:
    """The body after a cassette save and load, and the cassette's text."""
    timing = ((0.1, len(body)),) if body else ()
    item = Interaction(Request("POST", "https://bedrock-runtime.us-east-1.amazonaws.com/model/m/converse-stream"),
                       Response(200, HEADERS, body, timing, "OK", 0.05))  # fmt: skip
    text = Cassette([item]).dumps()
    (loaded,) = Cassette.loads(text).interactions
    assert loaded.response is not None
    return loaded.response.body, text


class TestCodec:
    """Frames encode as AWS specifies, and decode back; botocore reads what streamtape writes."""

    def test_every_header_type_round_trips_and_botocore_agrees(self) -> None:
        headers = (
            (":event-type", "chunk"), ("yes", True), ("no", False), ("b", Typed("int8", -5)),
            ("s", Typed("int16", 300)), ("i", Typed("int32", -70000)), ("l", Typed("int64", 2**40)),
            ("raw", b"\x00\xff"), ("t", Typed("timestamp", 1_700_000_000_000)),
            ("u", Typed("uuid", uuid.UUID("12345678-1234-5678-1234-567812345678").bytes)),
        )  # fmt: skip
        frame = encode_frame(headers, b'{"a":1}')
        assert decode_frame(frame) == Frame(headers, b'{"a":1}')
        ((seen, payload),) = botocore_frames(frame)
        assert payload == b'{"a":1}' and seen[":event-type"] == "chunk" and seen["yes"] is True
        assert seen["b"] == -5 and seen["l"] == 2**40 and seen["raw"] == b"\x00\xff"

    def test_prelude_and_message_crcs(self) -> None:
        frame = encode_frame(EVENT, b"{}")
        total, size, prelude = struct.unpack(">III", frame[:12])
        assert total == len(frame) and prelude == zlib.crc32(frame[:8])
        assert struct.unpack(">I", frame[-4:])[0] == zlib.crc32(frame[:-4])
        assert crc_ok(frame)
        for at in (9, len(frame) - 1, 20):
            damaged = bytearray(frame)
            damaged[at] ^= 1
            assert not crc_ok(bytes(damaged))
            with pytest.raises(ChecksumMismatch):
                botocore_frames(bytes(damaged))

    @pytest.mark.parametrize(
        ("data", "message"),
        [
            (b"\x00" * 8, "at least 16"),
            (struct.pack(">II", 99, 0) + b"\x00" * 8, "prelude says 99"),
            (encode_frame((), b"x")[:-4] + b"\x00\x00\x00\x00", "message CRC"),
        ],
    )
    def test_what_is_not_a_frame_is_said(self, data: bytes, message: str) -> None:
        with pytest.raises(FrameError, match=message):
            decode_frame(data)

    def test_a_header_name_or_value_that_does_not_fit_is_refused(self) -> None:
        with pytest.raises(FrameError, match="1 to 255 bytes"):
            encode_frame((("x" * 256, "v"),), b"")
        with pytest.raises(FrameError, match="does not fit in int8"):
            encode_frame((("n", Typed("int8", 300)),), b"")


class TestFramer:
    """Events are frames: counted by walking total lengths, named by their type headers."""

    def test_it_is_chosen_by_content_type(self) -> None:
        assert framer_for(HEADERS) is EVENTSTREAM is get("eventstream") is stream_framer(HEADERS)
        assert EVENTSTREAM.unit == "frame"

    @pytest.mark.parametrize("path", RECORDED, ids=lambda p: p.stem)
    def test_recorded_streams_frame_as_botocore_reads_them(self, path: Path) -> None:
        body = path.read_bytes()
        events = EVENTSTREAM.events(body)
        expected = botocore_frames(body)
        assert [e.event for e in events] == [h[":event-type"] for h, _ in expected]
        assert [e.data.encode() for e in events] == [payload for _, payload in expected]
        assert EVENTSTREAM.event_ends(body) == [e.end for e in events] and events[-1].end == len(body)
        assert [e.start for e in events[1:]] == [e.end for e in events[:-1]]

    def test_an_incomplete_last_frame_is_not_an_event(self) -> None:
        body = (DATA / "converse_stream_text.eventstream").read_bytes()
        ends = EVENTSTREAM.event_ends(body)
        for cut in (ends[4] - 1, ends[4] + 3, ends[4] + 11):
            assert EVENTSTREAM.event_ends(body[:cut]) == ends[: 4 if cut < ends[4] else 5]
        assert EVENTSTREAM.event_ends(b"\x00\x00\x00\x05garbage") == []

    def test_exception_frames_are_named_by_their_exception_type(self) -> None:
        frame = encode_frame(((":exception-type", "throttlingException"), (":content-type", "application/json"),
                              (":message-type", "exception")), b'{"message":"slow down"}')  # fmt: skip
        (event,) = EVENTSTREAM.events(frame)
        assert (event.event, event.json) == ("throttlingException", {"message": "slow down"})
        (nameless,) = EVENTSTREAM.events(encode_frame((), b"{}"))
        assert nameless.event == "message"

    def test_a_frame_with_a_bad_crc_is_still_the_frame_it_says_it_is(self) -> None:
        frame = bytearray(encode_frame(EVENT, b"{}"))
        frame[-1] ^= 0xFF
        assert [e.event for e in EVENTSTREAM.events(bytes(frame))] == ["contentBlockDelta"]

    def test_payload_and_with_payload_keep_the_frame_valid(self) -> None:
        frame = encode_frame(EVENT, b'{"delta":{"text":"Hi"}}')
        assert frame[EVENTSTREAM.payload_start(frame) :].startswith(b'{"delta"')
        assert EVENTSTREAM.payload(frame) == b'{"delta":{"text":"Hi"}}'
        edited = EVENTSTREAM.with_payload(frame, b'{"delta":{"text":"Hi",}}')
        assert decode_frame(edited) == Frame(EVENT, b'{"delta":{"text":"Hi",}}')

    @settings(max_examples=60, deadline=None)
    @given(sizes=st.lists(st.integers(1, 300), min_size=1, max_size=30))
    def test_the_same_events_however_the_body_is_chunked(self, sizes: list[int]) -> None:
        body = (DATA / "converse_stream_tool_use.eventstream").read_bytes()
        timing, left, at = [], len(body), 0.1
        for size in sizes * (len(body) // sum(sizes) + 1):
            if not left:
                break
            timing.append((at, min(size, left)))
            left -= timing[-1][1]
        plan = Plan.from_actions([Respond(200, HEADERS, "OK", 0.0), Chunks(body, tuple(timing)), End(1.0)])
        by_event: dict[int, bytes] = {}
        for piece in plan.pieces:
            assert piece.event is not None
            by_event[piece.event] = by_event.get(piece.event, b"") + piece.data
        assert plan.events == 32 and [by_event[n] for n in sorted(by_event)] == [
            body[a:b] for a, b in frame_spans(body)
        ]

    def test_linear_in_the_body(self) -> None:
        frames = [encode_frame(EVENT, b'{"contentBlockIndex":0,"delta":{"text":"word "},"p":"abcdefghij"}')]

        def setup(n: int) -> object:
            body = frames[0] * n
            return lambda: (EVENTSTREAM.events(body), EVENTSTREAM.event_ends(body))

        assert_linear(setup, "the event-stream framer", measures=("bytecode",))  # type: ignore[arg-type]


class TestCassette:
    """An event-stream body is stored one decoded frame per entry, and loads back byte-exact."""

    @pytest.mark.parametrize("path", RECORDED, ids=lambda p: p.stem)
    def test_every_recorded_stream_round_trips_whole_and_cut(self, path: Path) -> None:
        body = path.read_bytes()
        for cut in (len(body), len(body) - 1, len(body) // 2, 13, 3):
            assert saved_and_loaded(body[:cut])[0] == body[:cut]

    def test_frames_are_readable(self) -> None:
        _, text = saved_and_loaded((DATA / "converse_stream_text.eventstream").read_bytes())
        assert "    encoding: eventstream\n    body:\n    - headers:\n        :event-type: messageStart\n" in text
        assert "      payload: '{\"contentBlockIndex\":0,\"delta\":{\"text\":\"The\"},\"p\"" in text
        assert "raw:" not in text

    def test_invoke_chunks_show_the_model_json(self) -> None:
        _, text = saved_and_loaded((DATA / "invoke_with_response_stream_cohere.eventstream").read_bytes())
        assert """      bytes: '{"is_finished":false,"text":" I"}'\n""" in text
        assert "eyJ" not in text  # no base64 left

    def test_a_frame_whose_crc_was_bad_is_kept_raw(self) -> None:
        body = bytearray((DATA / "converse_stream_text.eventstream").read_bytes())
        body[EVENTSTREAM.event_ends(bytes(body))[2] - 1] ^= 0xFF  # frame 3's message CRC
        loaded, text = saved_and_loaded(bytes(body))
        assert loaded == bytes(body)
        assert text.count("raw:") == 1 and "note: 'kept as recorded: the message CRC does not match'" in text

    def test_a_cut_body_keeps_its_incomplete_frame(self) -> None:
        body = (DATA / "converse_stream_text.eventstream").read_bytes()[:1000]
        loaded, text = saved_and_loaded(body)
        assert loaded == body and "an incomplete frame: the body ends inside it" in text

    def test_a_hand_edited_frame_is_encoded_with_valid_crcs(self) -> None:
        body = (DATA / "converse_stream_text.eventstream").read_bytes()
        _, text = saved_and_loaded(body)
        edited = text.replace('"text":"The"', '"text":"A"')
        with pytest.raises(CassetteFormatError, match="chunk sizes add up"):
            Cassette.loads(edited)  # the body is 2 bytes shorter: lint --fix re-derives the chunks
        repaired: list[str] = []
        (item,) = Cassette.loads(edited, repair=repaired).interactions
        assert item.response is not None and repaired
        assert [h[":event-type"] for h, _ in botocore_frames(item.response.body)][:2] == [
            "messageStart", "contentBlockDelta"]  # fmt: skip
        assert botocore_frames(item.response.body)[1][1].startswith(b'{"contentBlockIndex":0,"delta":{"text":"A"}')

    @pytest.mark.parametrize(
        ("old", "new", "field", "message"),
        [
            ("      payload: '{\"p\"", "      payload_base64: AAAA\n      payload: '{\"p\"", "body[0].payload",
             "give the payload once"),
            ("        :message-type: event\n", "        :message-type: 5\n", "body[0].headers.:message-type",
             "needs its type"),
            ("        :message-type: event\n", "        :message-type: {int128: 5}\n",
             "body[0].headers.:message-type", "not a header type"),
            ("      payload: '{\"p\"", "      oops: 1\n      payload: '{\"p\"", "body[0].oops", "unknown field"),
            ("    - headers:\n", "    - raw: '!!!'\n    - headers:\n", "body[0].raw", "not valid base64"),
        ],
        ids=["twice", "number", "kind", "unknown", "base64"],
    )  # fmt: skip
    def test_a_malformed_frame_is_refused_with_its_field(self, old: str, new: str, field: str, message: str) -> None:
        _, text = saved_and_loaded((DATA / "converse_stream_text.eventstream").read_bytes())
        assert old in text
        with pytest.raises(CassetteFormatError, match=message) as info:
            Cassette.loads(text.replace(old, new, 1), check_lines=False)
        assert f"interactions[0].response.{field}" in str(info.value) and "line " in str(info.value)

    @settings(max_examples=150, deadline=None, suppress_health_check=[HealthCheck.too_slow])
    @given(frames=st.lists(st.tuples(
        st.lists(st.tuples(st.text(min_size=1, max_size=12), st.one_of(
            st.text(max_size=30), st.booleans(), st.binary(max_size=10),
            st.builds(Typed, st.just("int8"), st.integers(-128, 127)),
            st.builds(Typed, st.just("int64"), st.integers(-(2**63), 2**63 - 1)),
            st.builds(Typed, st.just("timestamp"), st.integers(0, 2**50)),
            st.builds(Typed, st.just("uuid"), st.binary(min_size=16, max_size=16)),
        )), max_size=4),
        st.one_of(st.binary(max_size=60), st.text(max_size=60).map(str.encode),
                  st.text(max_size=40).map(lambda t: b'{"bytes":"' + base64.b64encode(t.encode()) + b'"}')),
        st.sampled_from(["ok", "ok", "ok", "prelude", "message"]),
    ), max_size=6), tail=st.binary(max_size=20))  # fmt: skip
    def test_any_frames_round_trip_byte_exact(
        self, frames: list[tuple[list[tuple[str, object]], bytes, str]], tail: bytes
    ) -> None:
        body = b""
        for headers, payload, damage in frames:
            try:
                frame = bytearray(encode_frame(headers, payload))  # type: ignore[arg-type]
            except FrameError:
                continue  # a name over 255 bytes of UTF-8
            if damage != "ok":
                frame[8 if damage == "prelude" else -1] ^= 0x5A
            body += bytes(frame)
        body += tail
        assert saved_and_loaded(body)[0] == body

    def test_other_bodies_are_unchanged(self) -> None:
        item = Interaction(Request("POST", "https://x/v1/messages"),
                           Response(200, (("content-type", "text/event-stream"),), b"data: {}\n\n", ((0.1, 10),)))  # fmt: skip
        assert "encoding" not in Cassette([item]).dumps()


def test_faults_count_frames_and_cut_between_them() -> None:
    body = (DATA / "converse_stream_text.eventstream").read_bytes()
    actions = [Respond(200, HEADERS, "OK", 0.0), Chunks(body, ((0.1, len(body)),)), End(0.2)]
    cut = apply(parse("disconnect:after=5").faults_for(0), actions, Context())
    sent = b"".join(a.data for a in cut if isinstance(a, Send))
    assert sent == body[: EVENTSTREAM.event_ends(body)[4]] and len(botocore_frames(sent)) == 5


@pytest.mark.parametrize("spec", ["exception_frame:after=10", "bad_crc:event=10", "corrupt:event=10",
                                  "disconnect:after=10", "error_event:after=10", "truncate"])  # fmt: skip
def test_faults_on_an_event_stream_are_linear(spec: str) -> None:
    from streamtape.providers import get as provider

    frame = encode_frame(EVENT, b'{"contentBlockIndex":0,"delta":{"text":"word "},"p":"abcdefghij"}')
    faults = parse(spec).faults_for(0)

    def setup(n: int) -> object:
        actions = [Respond(200, HEADERS, "OK", 0.0), Chunks(frame * n, tuple((0.1, len(frame)) for _ in range(n))),
                   End(0.2)]  # fmt: skip
        return lambda: apply(faults, actions, Context(provider=provider("bedrock")))

    assert_linear(setup, spec, measures=("bytecode",))  # type: ignore[arg-type]


def test_a_cassette_of_frames_saves_and_loads_in_linear_time() -> None:
    frame = encode_frame(EVENT, b'{"contentBlockIndex":0,"delta":{"text":"word "},"p":"abcdefghij"}')

    def setup(n: int) -> object:
        return lambda: saved_and_loaded(frame * n)

    assert_linear(setup, "an event-stream cassette", measures=("bytecode",))  # type: ignore[arg-type]
