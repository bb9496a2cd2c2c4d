"""Framers: a response's content type chooses how its body is cut into events, for faults
(``after=N``), ``Response.events``, lint and inspect; NDJSON proves the seam through a real replay."""

from __future__ import annotations

import importlib
import json
from collections.abc import Iterator
from pathlib import Path

import pytest
from hypothesis import given, settings
from hypothesis import strategies as st

import streamtape
from streamtape import Cassette, ConfigError, Interaction, Request, Response, faults, framing
from streamtape.faults import Context, Plan, apply
from streamtape.framing.ndjson import NDJSON
from streamtape.framing.sse import SSE
from streamtape.lint import lint_file
from streamtape.report import describe_interaction
from streamtape.sse import Event, event_ends, parse_events
from streamtape.wire import Cut, End, Send
from tests.support import sdk
from tests.support.wire_server import DATA_DIR

SSE_BODY = (DATA_DIR / "text_basic.sse").read_bytes()
LINES = [
    {"model": "llama3", "message": {"role": "assistant", "content": "Hel"}, "done": False},
    {"model": "llama3", "message": {"role": "assistant", "content": "lo"}, "done": False},
    {"model": "llama3", "message": {"role": "assistant", "content": ""}, "done": True, "eval_count": 2},
]
NDJSON_BODY = b"".join(json.dumps(line).encode() + b"\n" for line in LINES)
URL = "http://localhost:11434/api/chat"  # Ollama's chat endpoint: a model API call, faulted by default
ASK = {"model": "llama3", "messages": [{"role": "user", "content": "Hi"}]}


def ndjson_response(body: bytes = NDJSON_BODY, content_type: str = "application/x-ndjson") -> Response:
    ends = NDJSON.event_ends(body)
    ends += [len(body)] if not ends or ends[-1] < len(body) else []  # an incomplete last line is a chunk too
    sizes = [b - a for a, b in zip([0, *ends], ends, strict=False)]
    timing = tuple((round(0.2 + 0.01 * i, 4), size) for i, size in enumerate(sizes))
    return Response(200, (("content-type", content_type),), body, timing, "OK", 0.1, End(0.3))


def save_ndjson(path: Path) -> Path:
    request = Request("POST", URL, (("content-type", "application/json"),), json.dumps(ASK).encode())
    return Cassette([Interaction(request, ndjson_response())]).save(path)


class TestChoice:
    @pytest.mark.parametrize(
        ("content_type", "expected"),
        [("text/event-stream", SSE), ("text/event-stream; charset=utf-8", SSE), ("Application/X-NDJSON", NDJSON),
         ("application/jsonl", NDJSON), ("application/json", SSE), (None, SSE)],
    )  # fmt: skip
    def test_by_content_type_with_sse_as_the_fallback(self, content_type: str | None, expected: object) -> None:
        headers = (("Content-Type", content_type),) if content_type else ()
        assert framing.framer_for(headers) is expected

    def test_only_a_stream_type_has_a_stream_framer(self) -> None:
        assert framing.stream_framer((("content-type", "application/json"),)) is None
        assert framing.stream_framer(()) is None
        assert framing.stream_framer((("content-type", "application/x-ndjson"),)) is NDJSON

    def test_a_body_without_a_content_type_is_read_as_before(self) -> None:
        """Old cassettes without a content type held SSE or JSON: SSE's events, and none in JSON."""
        assert Response(200, (), SSE_BODY).events == parse_events(SSE_BODY)
        assert Response(200, (), b'{"data": 1}\n\n').events == []
        assert (
            Plan.from_actions(
                Interaction(Request("GET", "http://h/"), Response(200, (), SSE_BODY, ((0.1, len(SSE_BODY)),))).actions()
            ).events
            == 7
        )  # noqa: E501

    def test_the_same_body_has_other_events_under_another_type(self) -> None:
        assert len(ndjson_response().events) == 3
        assert ndjson_response(content_type="text/event-stream").events == []  # no blank line: no SSE event


class Records:
    """A made-up binary framing, length-prefixed like AWS's event stream: a 1-byte length, then
    ``name=payload``. Shows that registering a framer is all a new format needs."""

    name = "records"
    content_types = ("application/x-records",)
    unit = "record"

    def event_ends(self, body: bytes) -> list[int]:
        return [event.end for event in self.events(body)]

    def events(self, body: bytes) -> list[Event]:
        out, pos = [], 0
        while pos < len(body) and pos + 1 + body[pos] <= len(body):
            end = pos + 1 + body[pos]
            name, _, data = body[pos + 1 : end].decode().partition("=")
            out.append(Event(name, data, pos, end))
            pos = end
        return out

    def payload_start(self, event: bytes) -> int:
        return event.index(b"=") + 1


def record(text: str) -> bytes:
    return bytes([len(text)]) + text.encode()


@pytest.fixture
def records() -> Iterator[Records]:
    framer = framing.register(Records())
    yield framer  # type: ignore[misc]
    framing.unregister("records")


class TestAFramerOfYourOwn:
    def test_chosen_for_its_type_and_used_by_events_and_faults(self, records: Records) -> None:
        body = record("a=1") + record("b=22") + record("c=333") + b"\x09part"  # the last record is incomplete
        response = Response(200, (("content-type", "application/x-records"),), body, ((0.1, len(body)),))
        assert framing.framer_for(response.headers) is records
        assert [(e.event, e.data) for e in response.events] == [("a", "1"), ("b", "22"), ("c", "333")]
        actions = Interaction(Request("POST", "http://h/v1/messages"), response).actions()
        out = apply([faults.disconnect(after=2)], actions, Context())
        assert b"".join(a.data for a in out if isinstance(a, Send)) == record("a=1") + record("b=22")
        with pytest.raises(ConfigError, match=r"after=5, but the recorded response has 3 records; use after=0\.\.3"):
            apply([faults.disconnect(after=5)], actions, Context())

    def test_gone_when_unregistered(self) -> None:
        framing.register(Records())
        framing.unregister("records")
        assert framing.framer_for((("content-type", "application/x-records"),)) is SSE

    def test_a_content_type_has_one_framer(self, records: Records) -> None:
        class Other(Records):
            name = "other"

        with pytest.raises(ConfigError, match="application/x-records is already read by the 'records' framer"):
            framing.register(Other())
        with pytest.raises(ConfigError, match="a framer named 'records' is already registered"):
            framing.register(Records())
        with pytest.raises(ConfigError, match="the sse framer is the fallback"):
            framing.unregister("sse")
        with pytest.raises(ConfigError, match="is not a framer"):
            framing.register(object())  # type: ignore[arg-type]


class TestNDJSON:
    def test_events_are_lines_named_by_their_type(self) -> None:
        body = b'{"type":"delta","text":"a"}\r\n\n  \n{"done":true}\n[1,2]\n{"cut'
        events = NDJSON.events(body)
        assert [(e.event, e.data) for e in events] == [("delta", '{"type":"delta","text":"a"}'),
                                                       ("message", '{"done":true}'), ("message", "[1,2]")]  # fmt: skip
        assert events[1].json == {"done": True} and body[events[2].start : events[2].end] == b"[1,2]\n"
        assert NDJSON.event_ends(body) == [e.end for e in events]

    @settings(max_examples=200, deadline=None)
    @given(st.lists(st.sampled_from([b'{"a":1}', b"", b" ", b"x", b"\r", b'{"type":"t"}', b"\xff"]), max_size=8),
           st.sampled_from([b"", b"\n", b"\r\n", b'{"b"']))  # fmt: skip
    def test_boundaries_are_the_events_ends(self, lines: list[bytes], tail: bytes) -> None:
        body = b"\n".join(lines) + tail
        events = NDJSON.events(body)
        assert NDJSON.event_ends(body) == [e.end for e in events]
        assert all(body[e.start : e.end].endswith(b"\n") and body[e.start : e.end].strip() for e in events)
        assert len(events) == sum(1 for line in body.split(b"\n")[:-1] if line.strip())

    def test_the_sse_framer_is_the_sse_parser(self) -> None:
        assert SSE.events(SSE_BODY) == parse_events(SSE_BODY) and SSE.event_ends(SSE_BODY) == event_ends(SSE_BODY)

    def test_faults_count_lines(self) -> None:
        actions = Interaction(Request("POST", URL), ndjson_response()).actions()
        lines = NDJSON_BODY.splitlines(keepends=True)
        run = lambda spec: apply(faults.parse(spec).faults_for(0), actions, Context())  # noqa: E731
        sent = lambda out: b"".join(a.data for a in out if isinstance(a, Send))  # noqa: E731
        assert sent(run("drop:event=2")) == lines[0] + lines[2]
        assert sent(run("duplicate:event=1")) == lines[0] * 2 + lines[1] + lines[2]
        corrupted = NDJSON.events(sent(run("corrupt:event=2")))[1]
        assert corrupted.json is None and corrupted.data.endswith(",}")
        with pytest.raises(ConfigError, match=r"after=4, but the recorded response has 3 events; use after=0\.\.3"):
            run("disconnect:after=4")
        with pytest.raises(ConfigError, match=r"the recorded response has 3 events; use event=1\.\.3"):
            run("drop:event=4")


class TestNDJSONReplay:
    """Through ``use_cassette`` and the HTTP stack the SDKs use: the cut falls after the Nth line."""

    def post_lines(self, path: Path, spec: str) -> tuple[list[dict], BaseException | None]:
        http = importlib.import_module(sdk.STACK)
        received: list[dict] = []
        with streamtape.use_cassette(path, faults=spec), http.Client() as client:
            try:
                with client.stream("POST", URL, json=ASK) as response:
                    assert response.headers["content-type"] == "application/x-ndjson"
                    for line in response.iter_lines():  # each line as it arrives, up to the cut
                        received.append(json.loads(line))
            except http.HTTPError as exc:
                return received, exc
        return received, None

    def test_a_disconnect_after_the_second_line(self, tmp_path: Path) -> None:
        received, error = self.post_lines(save_ndjson(tmp_path / "ollama.yaml"), "disconnect:after=2")
        assert received == LINES[:2]
        assert type(error).__name__ == "RemoteProtocolError"

    def test_truncate_ends_before_the_last_line_and_ok_plays_it_all(self, tmp_path: Path) -> None:
        path = save_ndjson(tmp_path / "ollama.yaml")
        assert self.post_lines(path, "truncate") == (LINES[:2], None)
        assert self.post_lines(path, "ok") == (LINES, None)

    def test_a_position_past_the_lines_is_refused_on_entering(self, tmp_path: Path) -> None:
        path = save_ndjson(tmp_path / "ollama.yaml")
        with pytest.raises(ConfigError, match=r"asks for after=4, but the longest response it applies to has 3 "):
            streamtape.use_cassette(path, faults="disconnect:after=4").__enter__()


class TestLintAndInspect:
    def test_lint_checks_a_stream_by_its_framer(self, tmp_path: Path) -> None:
        good = save_ndjson(tmp_path / "good.yaml")
        assert [p for p in lint_file(good) if p.kind == "sse"] == []  # Anthropic's grammar is for SSE streams
        empty = Interaction(Request("POST", URL), ndjson_response(b'{"cut'))
        path = Cassette([empty]).save(tmp_path / "empty.yaml")
        assert [p.message for p in lint_file(path) if p.kind == "sse"] == [
            "an x-ndjson response with no complete event"
        ]

    def test_inspect_counts_lines_by_type(self) -> None:
        body = b'{"type":"delta"}\n{"type":"delta"}\n{"type":"done"}\n'
        report = describe_interaction(0, Interaction(Request("POST", URL), ndjson_response(body)))
        assert report["events"] == {"delta": 2, "done": 1} and len(report["arrivals"]) == 3
        assert report["ended"] == "clean"


def test_a_cut_recording_keeps_its_cut() -> None:
    """The plan takes the framer from the recorded headers even when the recording broke."""
    response = Response(200, (("content-type", "application/x-ndjson"),), NDJSON_BODY[:-5],
                        ((0.1, len(NDJSON_BODY) - 5),), "OK", 0.05, Cut("RemoteProtocolError", None, 0.2))  # fmt: skip
    plan = Plan.from_actions(Interaction(Request("POST", URL), response).actions())
    assert plan.framer is NDJSON and plan.events == 2 and isinstance(plan.tail[-1], Cut)
