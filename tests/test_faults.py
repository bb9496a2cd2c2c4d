"""The fault catalogue, specs and schedules: what each fault does to the bytes and timing of a
real recorded response, and how faults are chosen per attempt."""

from __future__ import annotations

import re
from pathlib import Path

import pytest

import streamtape
from streamtape import Cassette, ConfigError, Interaction, Request, Response, faults
from streamtape.faults import Context, apply
from streamtape.faults._plan import Plan
from streamtape.sse import parse_events
from streamtape.wire import Chunks, Cut, End, Respond, Send, Stall
from tests.support import builders
from tests.support.wire_server import DATA_DIR

BODY = (DATA_DIR / "text_basic.sse").read_bytes()  # 7 events: start, block start, ping, delta, stop x3
EVENTS = parse_events(BODY)


def recorded(body: bytes = BODY, end: End | Cut | None = None) -> list:
    """A real recording's actions: one chunk per event, 10 ms apart, headers at 0.1 s."""
    timing = tuple((round(0.2 + 0.01 * i, 4), e.end - e.start) for i, e in enumerate(parse_events(body)))
    response = Response(200, (("content-type", "text/event-stream"),), body, timing, "OK", 0.1, end or End(0.3))
    return Interaction(Request("POST", "http://h/v1/messages"), response).actions()


def run(*specs: str, actions: list | None = None) -> list:
    return apply([faults.parse_fault(s) for s in specs], actions or recorded(), Context(number=1))


def body_of(actions: list) -> bytes:
    return b"".join(a.data for a in actions if isinstance(a, Send))


class TestPlan:
    """Body pieces keep the recording's event numbers and byte offsets."""

    def test_pieces_are_tagged(self) -> None:
        plan = Plan.from_actions(recorded())
        assert plan.events == 7 and [p.event for p in plan.pieces] == [1, 2, 3, 4, 5, 6, 7]
        assert [p.offset for p in plan.pieces] == [e.start for e in EVENTS]

    def test_chunks_spanning_events_are_split(self) -> None:
        one_chunk = Interaction(Request("GET", "http://h/"), Response(200, (), BODY, ((0.5, len(BODY)),))).actions()
        plan = Plan.from_actions(one_chunk)
        assert [p.event for p in plan.pieces] == [1, 2, 3, 4, 5, 6, 7] and all(p.at == 0.5 for p in plan.pieces)

    def test_no_faults_is_no_work(self) -> None:
        actions = recorded()
        assert apply([], actions, Context()) is actions and isinstance(actions[1], Chunks)


class TestCuts:
    @pytest.mark.parametrize(("spec", "error"), [("disconnect", "RemoteProtocolError"), ("reset", "ReadError")])
    def test_mid_stream_after_an_event(self, spec: str, error: str) -> None:
        out = run(f"{spec}:after=4")
        assert body_of(out) == BODY[: EVENTS[3].end]
        assert out[-1] == Cut(error, None, 0.23)  # right after event 4 arrived; the message is the stack's

    def test_at_a_byte_inside_a_utf8_character(self) -> None:
        body = 'data: {"t":"caf\u00e9"}\n\n'.encode()
        inside = body.index(b"\xa9")  # the second byte of the two-byte e-acute
        out = run(f"disconnect:at_byte={inside}", actions=recorded(body))
        assert body_of(out) == body[:inside] and body_of(out).endswith(b"\xc3")

    @pytest.mark.parametrize("spec", ["disconnect", "reset", "refuse", "timeout"])
    def test_before_headers(self, spec: str) -> None:
        expected = {"disconnect": Cut("RemoteProtocolError"), "reset": Cut("ReadError"),
                    "refuse": Cut("ConnectError"), "timeout": Stall(None)}  # fmt: skip
        assert run(spec) == [expected[spec]]

    def test_stall_forever_and_for_a_while(self) -> None:
        assert run("stall:after=2")[-1] == Stall(None, 0.21)
        out = run("stall:after=2,seconds=5")
        assert [a.at for a in out if isinstance(a, Send)] == pytest.approx([0.2, 0.21, 5.22, 5.23, 5.24, 5.25, 5.26])
        assert body_of(out) == BODY and out[-1].at == pytest.approx(5.3)

    def test_error_event_then_the_close(self) -> None:
        out = run("error_event:after=2")
        assert body_of(out) == BODY[: EVENTS[1].end] + (DATA_DIR / "error_overloaded_in_stream.sse").read_bytes()
        assert isinstance(out[-1], End)
        alone = run("error_event")
        assert [e.event for e in parse_events(body_of(alone))] == ["error"]

    def test_error_event_data_name_and_what_comes_after(self) -> None:
        upstream = "upstream connect error or disconnect/reset before headers. reset reason: connection failure"
        out = run(f"error_event:after=2,data={upstream},then=cut")
        assert body_of(out) == BODY[: EVENTS[1].end] + f"event: error\ndata: {upstream}\n\n".encode()
        assert out[-1] == Cut("fin", None, 0.21)  # a FIN right after the event, as some servers do
        named = body_of(run("error_event:event=overloaded,error_type=api_error,message=boom"))
        assert named == (b'event: overloaded\ndata: {"type":"error","error":{"details":null,"type":"api_error",'
                         b'"message":"boom"}              }\n\n')  # fmt: skip
        lines = faults.error_event(data="first\nsecond", event="oops")
        assert body_of(apply([lines], recorded(), Context())) == b"event: oops\ndata: first\ndata: second\n\n"
        assert run("error_event:after=2,then=end") == run("error_event:after=2")  # end is the default

    def test_error_event_then_cut_keeps_the_announced_length(self) -> None:
        """A Content-Length body: a clean end announces what is sent; a cut breaks the announcement."""
        response = Response(200, (("content-type", "text/event-stream"), ("content-length", str(len(BODY)))),
                            BODY, ((0.2, len(BODY)),), "OK", 0.1)  # fmt: skip
        actions = Interaction(Request("POST", "http://h/v1/messages"), response).actions()
        ended, cut = run("error_event:after=2", actions=actions), run("error_event:after=2,then=cut", actions=actions)
        assert dict(ended[0].headers)["content-length"] == str(len(body_of(ended)))
        assert dict(cut[0].headers)["content-length"] == str(len(BODY)) and body_of(cut) == body_of(ended)

    def test_truncate_drops_message_stop(self) -> None:
        assert body_of(run("truncate")) == BODY[: EVENTS[5].end]
        assert body_of(run("truncate:after=3")) == BODY[: EVENTS[2].end]

    @pytest.mark.parametrize(
        ("spec", "message"),
        [
            ("disconnect:after=8", "after=8, but the recorded response has 7 SSE events; use after=0..7"),
            ("disconnect:at_byte=99999", "at_byte=99999, but the recorded body has 1159 bytes"),
            ("drop:event=9", "the recorded response has 7 SSE events; use event=1..7"),
        ],
    )
    def test_positions_beyond_the_recording(self, spec: str, message: str) -> None:
        with pytest.raises(ConfigError, match=message):
            run(spec)


class TestHttpErrors:
    def test_rate_limit_is_faithful(self) -> None:
        out = run("rate_limit:retry_after=2,should_retry=true")
        head = out[0]
        assert isinstance(head, Respond) and head.status == 429 and head.reason == "Too Many Requests"
        headers = dict(head.headers)
        assert headers["retry-after"] == "2" and headers["x-should-retry"] == "true"
        assert headers["request-id"] == "req_011CStreamtape0000000001"
        assert headers["anthropic-ratelimit-requests-remaining"] == "0"
        assert body_of(out) == (
            b'{"type":"error","error":{"type":"rate_limit_error","message":"This request would exceed your '
            b'account\'s rate limit. Please try again later."},"request_id":"req_011CStreamtape0000000001"}'
        )
        assert headers["content-length"] == str(len(body_of(out)))

    @pytest.mark.parametrize(
        ("spec", "status", "kind"),
        [("overloaded", 529, "overloaded_error"), ("server_error", 500, "api_error"),
         ("http_error:status=404", 404, "not_found_error")],
    )  # fmt: skip
    def test_shorthands(self, spec: str, status: int, kind: str) -> None:
        out = run(spec)
        assert out[0].status == status and f'"type":"{kind}"'.encode() in body_of(out)
        assert "retry-after" not in dict(out[0].headers) and "x-should-retry" not in dict(out[0].headers)

    def test_request_id_false_string_and_default(self) -> None:
        def parts(spec: str) -> tuple[dict[str, str], bytes]:
            out = run(spec)
            return dict(out[0].headers), body_of(out)

        headers, body = parts("http_error:status=400,request_id=false")
        assert b"request_id" not in body and "request-id" not in headers
        assert (
            body
            == b'{"type":"error","error":{"type":"invalid_request_error","message":"Your request was malformed or invalid."}}'
        )
        headers, body = parts("http_error:status=400,request_id=req_01BjwuzUpsYgKjQJguJyvKb3")
        assert body.endswith(b',"request_id":"req_01BjwuzUpsYgKjQJguJyvKb3"}')
        assert headers["request-id"] == "req_01BjwuzUpsYgKjQJguJyvKb3"
        assert parts("http_error:status=400,request_id=true") == parts("http_error:status=400")

    def test_a_raw_body_is_sent_as_given(self) -> None:
        page = "<html><body><h1>502 Bad Gateway</h1></body></html>"
        out = apply([faults.http_error(502, body=page, content_type="text/html")], recorded(), Context(number=1))
        assert (out[0].status, out[0].reason, body_of(out)) == (502, "Bad Gateway", page.encode())
        assert out[0].headers == (("content-type", "text/html"), ("content-length", str(len(page))))  # no request id
        out = run("http_error:status=503,body='café, closed',request_id=true")
        assert body_of(out) == "café, closed".encode() and dict(out[0].headers)["content-length"] == "13"
        assert dict(out[0].headers)["content-type"] == "application/json"  # the default: say content_type= otherwise
        assert dict(out[0].headers)["request-id"] == "req_011CStreamtape0000000001"

    def test_headers_replace_the_defaults_of_their_names(self) -> None:
        fault = faults.rate_limit(retry_after=2, headers=[("Retry-After", "7"), ("x-extra", "1"), ("x-extra", "2"),
                                                          ("Request-Id", "req_mine")])  # fmt: skip
        headers = apply([fault], recorded(), Context())[0].headers
        names = [name.lower() for name, _ in headers]
        assert names.index("request-id") == 2 and ("Request-Id", "req_mine") in headers  # in the default's place
        assert [v for k, v in headers if k.lower() == "retry-after"] == ["7"] and headers[-2:] == (("x-extra", "1"),
                                                                                                  ("x-extra", "2"))  # fmt: skip
        assert faults.rate_limit(headers={"x-a": "1"}) == faults.rate_limit(headers=[("x-a", "1")])
        assert faults.parse_fault("""rate_limit:headers='{"x-a": "1"}'""") == faults.rate_limit(headers={"x-a": "1"})

    def test_retry_after_date(self) -> None:
        import email.utils
        import time

        out = run("rate_limit:retry_after_date=30")
        value = dict(out[0].headers)["retry-after"]
        assert email.utils.parsedate_to_datetime(value).timestamp() == pytest.approx(time.time() + 30, abs=1.5)
        assert [name for name, _ in out[0].headers].count("retry-after") == 1
        from streamtape.providers.anthropic import http_date

        assert http_date(30, now=1711483169.6) == "Tue, 26 Mar 2024 20:00:00 GMT"  # to the nearest second
        assert http_date(30, now=1711483169.4) == "Tue, 26 Mar 2024 19:59:59 GMT"


class TestShaping:
    def test_delay(self) -> None:
        out = run("delay:first_byte=1,per_event=0.5")
        assert out[0].at == pytest.approx(1.1)
        assert [a.at for a in out if isinstance(a, Send)] == pytest.approx([1.7, 2.21, 2.72, 3.23, 3.74, 4.25, 4.76])

    def test_delay_jitter_is_reproducible(self) -> None:
        first = run("delay:per_event=0.1,jitter=0.05,seed=3")
        assert first == run("delay:per_event=0.1,jitter=0.05,seed=3") != run("delay:per_event=0.1,jitter=0.05,seed=4")

    @pytest.mark.parametrize("spec", ["rechunk:size=7", "rechunk", "rechunk:seed=9"])
    def test_rechunk_keeps_the_bytes(self, spec: str) -> None:
        out = run(spec)
        sizes = [len(a.data) for a in out if isinstance(a, Send)]
        assert body_of(out) == BODY and len(sizes) > 7
        if spec == "rechunk:size=7":
            assert set(sizes[:-1]) == {7}

    def test_corrupt(self) -> None:
        broken = parse_events(body_of(run("corrupt:event=4")))[3]
        assert broken.json is None and broken.data.endswith(",}")
        assert b"data: \xff" in body_of(run("corrupt:event=4,how=utf8"))

    @pytest.mark.parametrize(
        ("spec", "data"),
        [
            ("corrupt:event=4,how=truncate,at=39", b'{"type":"content_block_delta","index":0'),
            ("corrupt:event=4,how=truncate", b'{"type":"content_block_delta","index":0,"delta":{"'),
            ("corrupt:event=4,how=escape", b'{"\\xtype":"content_block_delta","index":0,"delta":{"type":"text_delta",'
                                           b'"text":"Hello"}               }'),
            ("corrupt:event=4,how=utf8,at=3", b'{"t\xffype":"content_block_delta","index":0,"delta":{"type":'
                                              b'"text_delta","text":"Hello"}               }'),
            ("corrupt:event=4,how=utf8,at=100", b'{"type":"content_block_delta","index":0,"delta":{"type":"text_delta",'
                                                b'"text":"Hello"}               }\xff'),
        ],
    )  # fmt: skip
    def test_corrupt_how_and_where(self, spec: str, data: bytes) -> None:
        """``at`` counts the event's data from its first byte (after ``data:`` and its space); the rest
        of the event (its line end and blank line) still follows."""
        assert body_of(run(spec)) == BODY[: EVENTS[3].start] + b"event: content_block_delta\ndata: " + data + (
            b"\n\n" + BODY[EVENTS[3].end :]
        )

    def test_corrupt_defaults_are_what_they_were(self) -> None:
        """Without ``at``, ``json`` and ``utf8`` give the bytes they always gave."""
        event = BODY[EVENTS[3].start : EVENTS[3].end]
        start = event.index(b"data:") + 5
        assert body_of(run("corrupt:event=4,how=utf8")) == BODY.replace(event, event[:start] + b" \xff" + event[start:])
        end = event.rindex(b"}")
        assert body_of(run("corrupt:event=4")) == BODY.replace(event, event[:end] + b",}" + event[end + 1 :])

    @pytest.mark.parametrize(
        ("spec", "message"),
        [
            ("corrupt:event=4,how=truncate,at=100", "event 4's data has 100 bytes; use at=0..99"),
            ("corrupt:event=4,how=utf8,at=101", "event 4's data has 100 bytes; use at=0..100"),
            (
                "corrupt:event=4,how=escape,at=0",
                "event 4's data has 100 bytes; at=0 is not inside a JSON string: use at= in 2..6, 9..28, 31..36",
            ),
        ],
    )
    def test_corrupt_positions_name_the_valid_range(self, spec: str, message: str) -> None:
        with pytest.raises(ConfigError, match=re.escape(f"{spec}: {message}")):
            run(spec)

    def test_an_escape_never_lands_right_after_a_backslash(self) -> None:
        """``\\`` + ``x`` would be a valid escape: that offset is not offered, and is refused."""
        from streamtape.faults.catalogue import _strings

        body = b'event: content_block_delta\ndata: {"text":"a\\nb"}\n\n'
        assert _strings(body[body.index(b"{") : -2]) == [(2, 6), (9, 10), (12, 13)]  # not 11, after the backslash
        with pytest.raises(ConfigError, match=r"at=11 is not inside a JSON string: use at= in 2..6, 9..10, 12..13"):
            run("corrupt:event=1,how=escape,at=11", actions=recorded(body))
        assert body_of(run("corrupt:event=1,how=escape,at=12", actions=recorded(body))).endswith(b'a\\n\\xb"}\n\n')

    def test_duplicate_drop_ping(self) -> None:
        names = lambda out: [e.event for e in parse_events(body_of(out))]  # noqa: E731
        assert names(run("duplicate:event=4")).count("content_block_delta") == 2
        assert "content_block_delta" not in names(run("drop:event=4"))
        assert names(run("ping:every=3")).count("ping") == 1 + 2

    def test_phases_keep_positions_on_the_recording(self) -> None:
        """Listed in any order, a cut still lands after the recording's 4th event."""
        out = run("disconnect:after=4", "ping:every=1", "delay:per_event=1")
        events = [e.event for e in parse_events(body_of(out))]
        assert events == ["message_start", "ping", "content_block_start", "ping", "ping", "ping",
                          "content_block_delta", "ping"]  # fmt: skip
        assert isinstance(out[-1], Cut) and out[-1].at == out[-2].at

    def test_faults_compose_on_a_recorded_failure(self) -> None:
        cut = Cut("RemoteProtocolError", "peer closed connection without sending complete message body", 0.3)
        out = run("delay:first_byte=2", actions=recorded(BODY[: EVENTS[4].end], end=cut))
        assert (out[-1].error, out[-1].message) == (cut.error, cut.message)
        assert out[-1].at == pytest.approx(2.3) and out[0].at == pytest.approx(2.1)


class TestSpecs:
    @pytest.mark.parametrize(
        ("text", "expected"),
        [
            ("disconnect:after=5", "disconnect:after=5"),
            ("rate_limit*2 -> ok", "rate_limit -> rate_limit -> ok"),
            (
                "delay:first_byte=2.5,per_event=0.05 + stall:after=10",
                "delay:first_byte=2.5,per_event=0.05 + stall:after=10",
            ),
            (
                "overloaded:retry_after_ms=1*2 -> none",
                "overloaded:retry_after_ms=1 -> overloaded:retry_after_ms=1 -> ok",
            ),
            ("stall:after=3,seconds=forever", "stall:after=3"),
            ("http_error:status=503,message='busy'", "http_error:status=503,message=busy"),
        ],
    )
    def test_round_trip(self, text: str, expected: str) -> None:
        assert faults.parse(text).spec() == expected

    @pytest.mark.parametrize(
        ("text", "message"),
        [
            ("disconect", "unknown fault 'disconect'; valid: refuse, reset, disconnect, timeout, http_error"),
            ("disconnect:aftr=5", "disconnect has no parameter 'aftr'; valid: after, at_byte"),
            ("refuse:after=1", "refuse has no parameter 'after'; it takes no parameters"),
            ("stall:after", "stall parameter 'after' needs a value: key=value"),
            ("rate_limit*0", "N must be 1 or more"),
            ("disconnect:after=2,at_byte=9", "give after=N (an SSE event) or at_byte=B (a byte), not both"),
            ("corrupt:event=2,how=bits", "how='bits'; valid: json, truncate, escape, utf8"),
            ("corrupt:event=2,how=json,at=3", "at= places how=truncate, escape or utf8"),
            ("corrupt:event=2,how=utf8,at=-1", "at=-1 must be a whole number >= 0"),
            ("error_event:then=later", "then='later'; valid: end (the server ends the stream cleanly), cut"),
            ("error_event:data=x,message=y", "data= is the event's data, sent as given"),
            ("http_error:status=502,body=x,error_type=api_error", "body= is the whole body, sent as given"),
            ("rate_limit:retry_after=1,retry_after_date=2", "give retry_after=N (seconds) or retry_after_date=N"),
            ("http_error:request_id=5", "request_id=5 is not valid; expected str or bool or none"),
            ("http_error:headers=nope", "headers='nope' is not JSON; in a spec string give a JSON object in quotes"),
            ("http_error:body='<p>", "the value quoted at \"'<p>\" has no closing '"),
            ("http_error:body='a'b", "'b' follows the quoted value 'a'; quote the whole value"),
            ("http_error:status=200", "must be an HTTP error status"),
            ("delay:per_event=-1", "per_event=-1 must be a number >= 0"),
            ("chaos:p=2", "p=2 must be a probability between 0 and 1"),
        ],
    )
    def test_errors_name_the_spec_and_list_what_is_valid(self, text: str, message: str) -> None:
        with pytest.raises(ConfigError, match=message.replace("(", r"\(").replace(")", r"\)").replace("*", r"\*")):
            faults.parse(text)

    @pytest.mark.parametrize(
        ("text", "value"),
        [
            ("http_error:status=503,body='a, b -> c + d*2'", "a, b -> c + d*2"),
            ('http_error:status=503,body="it\'s"', "it's"),
            ("http_error:status=503,body='it''s'", "it's"),
            ("http_error:status=503,body = '  5 '", "  5 "),
            ("http_error:status=503,body=''", ""),
            ('http_error:status=503,body=\'{"a":1,"b":"\\u00e9"}\'', '{"a":1,"b":"\\u00e9"}'),  # backslashes as written
        ],
    )
    def test_quoted_values_hold_separators(self, text: str, value: str) -> None:
        schedule = faults.parse(f"{text} -> ok")
        (fault,) = schedule.steps[0]
        assert fault.body == value and schedule.steps[1] == ()  # type: ignore[attr-defined]
        assert faults.parse(schedule.spec()) == schedule  # spec() quotes what needs it

    @pytest.mark.parametrize(
        "fault",
        [
            faults.http_error(502, body="<html>\"quoted\" and 'single', sep + -> *</html>", content_type="text/html"),
            faults.http_error(400, message="5", request_id="true"),
            faults.http_error(400, request_id=False, headers={"x-a": "1, 2", "x-b": "'q'"}),
            faults.error_event(after=1, data="upstream: 502, bad", event="oops", then="cut"),
            faults.corrupt(event=2, how="truncate", at=7),
        ],
    )
    def test_every_fault_reads_back_from_its_spec(self, fault: faults.Fault) -> None:
        assert faults.parse_fault(fault.spec()) == fault

    def test_python_and_string_forms_agree(self) -> None:
        made = faults.sequence(faults.rate_limit(), [faults.delay(first_byte=1), faults.disconnect(after=5)], None)
        assert made == faults.parse("rate_limit -> delay:first_byte=1 + disconnect:after=5 -> ok")
        assert faults.http_error(503) == faults.parse_fault("http_error:status=503")

    def test_not_a_fault(self) -> None:
        with pytest.raises(ConfigError, match="is not a fault"):
            faults.resolve(42)


class TestSchedules:
    def test_sequence_then_clean(self) -> None:
        schedule = faults.parse("rate_limit*2 -> disconnect:after=1")
        assert [len(schedule.faults_for(i)) for i in range(5)] == [1, 1, 1, 0, 0]

    def test_every_request(self) -> None:
        schedule = faults.resolve([faults.disconnect(after=1)])
        assert all(schedule.faults_for(i) == (faults.disconnect(after=1),) for i in range(3))

    def test_when(self) -> None:
        schedule = faults.sequence(faults.refuse(), when="POST .*/v1/messages")
        assert schedule.applies_to("POST", "https://api.anthropic.com/v1/messages")
        assert schedule.applies_to(
            "POST", "https://api.anthropic.com/v1/messages/count_tokens"
        )  # searched, as re.search
        assert not schedule.applies_to("GET", "https://api.anthropic.com/v1/models")

    def test_chaos_is_reproducible(self) -> None:
        draws = lambda seed: [faults.chaos(0.5, seed=seed).faults_for(i) for i in range(40)]  # noqa: E731
        assert draws(1) == draws(1) != draws(2)
        assert 5 < sum(1 for d in draws(1) if d) < 35

    def test_scenarios(self, tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> None:
        assert faults.parse("scenario:flaky-network").spec() == (
            "rate_limit:retry_after=1 -> rate_limit -> disconnect:after=5 -> ok"
        )
        (tmp_path / "mine.yaml").write_text("faults: [refuse, ok]\nwhen: POST\n")
        (tmp_path / "bad.yaml").write_text("faults: refuze\n")
        (tmp_path / "odd.yaml").write_text("fault: refuse\n")
        monkeypatch.setenv("STREAMTAPE_SCENARIOS", str(tmp_path))
        assert faults.parse("scenario:mine").spec() == "refuse -> ok"
        with pytest.raises(streamtape.CassetteFormatError, match=r"bad.yaml: faults: .*unknown fault 'refuze'"):
            faults.parse("scenario:bad")
        with pytest.raises(
            streamtape.CassetteFormatError, match=r"odd.yaml: top level: expected a mapping with 'faults'"
        ):
            faults.parse("scenario:odd")
        with pytest.raises(ConfigError, match="scenario 'nope' not found in .*known scenarios: .*flaky-network"):
            faults.parse("scenario:nope")


def save_text_basic(path: Path) -> None:
    builders.save(path)  # the text_basic stream in one chunk at 0.1 s, answering POST /v1/messages {"a":1}


def test_calls_say_what_each_attempt_met(tmp_path: Path) -> None:
    """tape.calls: the interaction, the attempt, the faults, the outcome, and the SDK's (virtual) wait."""
    import anthropic

    path = tmp_path / "c.yaml"
    save_text_basic(path)
    with streamtape.use_cassette(path, faults="rate_limit*2 -> ok", match_on=["method", "path"]) as tape:
        with anthropic.Anthropic(api_key="test-key", max_retries=2) as client:
            with client.messages.stream(model="m", max_tokens=5, messages=[]) as stream:
                assert stream.get_final_message().content[0].text == "Hello"
    assert [(c.index, c.attempt, c.faults, c.outcome) for c in tape.calls] == [
        (0, 1, ("rate_limit",), "429, complete"),
        (0, 2, ("rate_limit",), "429, complete"),
        (0, 3, (), "200, complete"),
    ]
    assert tape.calls[0].waited == 0 and tape.calls[1].waited > 0 and tape.calls[2].waited > tape.calls[1].waited


def test_a_stall_of_ten_minutes_times_out_at_once_in_virtual_time(tmp_path: Path) -> None:
    import time

    import anthropic

    path = tmp_path / "c.yaml"
    save_text_basic(path)
    started = time.monotonic()
    with streamtape.use_cassette(path, faults="stall:after=3,seconds=600", match_on=["path"]):
        with (
            anthropic.Anthropic(api_key="test-key") as client,
            client.messages.stream(model="m", max_tokens=5, messages=[]) as s,
        ):
            with pytest.raises(Exception) as info:  # noqa: PT011 - the class is the stack's, checked below
                s.get_final_message()
    names = {type(info.value).__name__, type(info.value.__cause__).__name__}  # anthropic >= 2.17 wraps it
    assert "ReadTimeout" in names and time.monotonic() - started < 60


def test_faults_compose_with_a_real_recorded_disconnect(tmp_path: Path) -> None:
    """A recording of a real FIN still takes a sequence: a 429 the SDK retries, then the recorded cut."""
    from tests.support import sdk
    from tests.support.wire_server import WireServer, transcript

    path = tmp_path / "c.yaml"
    with WireServer() as server:
        server.queue(transcript("text_basic", fin_after=4))
        with streamtape.use_cassette(path, record_mode="all"):
            recorded = sdk.consume(server.base_url, "text_stream")
    with streamtape.use_cassette(path, faults="rate_limit -> delay:first_byte=3") as tape:
        replayed = sdk.consume(server.base_url, "text_stream", options={"max_retries": 2})
    assert replayed == recorded and "RemoteProtocolError" in sdk.raised(recorded.error) and recorded.text == "Hello"
    assert [c.outcome for c in tape.calls] == ["429, complete", "200, then RemoteProtocolError"]


def test_real_time_mode_paces_injected_delays(tmp_path: Path) -> None:
    """A paced clock waits what the faults say (measured on an injected virtual clock); speed 0 waits for nothing."""
    import importlib

    from streamtape.engine.clock import VirtualClock
    from tests.support import sdk

    save_text_basic(tmp_path / "c.yaml")
    clocks = {0: VirtualClock(10.0), 1: VirtualClock(10.0, paced=True)}
    for speed, clock in clocks.items():
        with streamtape.use_cassette(tmp_path / "c.yaml", faults="delay:first_byte=2,per_event=0.5", speed=speed,
                                     clock=clock if speed else None) as tape:  # fmt: skip
            with importlib.import_module(sdk.STACK).Client() as client:
                assert client.post("https://api.anthropic.com/v1/messages", json={"a": 1}).content == BODY
        if not speed:
            assert not tape.clock.paced and tape.clock.now() == 0.0 + sum(tape.clock.waits)  # type: ignore[attr-defined]
    # headers at 0 + 2 s; the one recorded chunk at 0.1 s, + 0.5 s per event
    assert [round(w, 6) for w in clocks[1].waits] == [2.0, 0.6] + [0.5] * 6


def test_back_off_is_real_while_recording(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    """Only a replay-only tape makes the SDK's back-off virtual; recording waits as the SDK asks."""
    import anthropic._base_client as base

    slept: list[float] = []
    monkeypatch.setattr(base.time, "sleep", slept.append)  # the real module, under the tape's shim
    save_text_basic(tmp_path / "c.yaml")
    for mode, expected in (("none", []), ("new_episodes", [1.5])):
        with streamtape.use_cassette(tmp_path / "c.yaml", record_mode=mode) as tape:
            base.time.sleep(1.5)  # what the SDK's _sleep_for_retry does
        assert slept == expected and tape.offline == (mode == "none")
        slept.clear()


def test_a_fault_that_cannot_apply_names_the_cassette_and_request(tmp_path: Path) -> None:
    import importlib

    from tests.support import sdk

    # a position no interaction reaches is refused when the tape is entered ...
    save_text_basic(tmp_path / "c.yaml")
    with pytest.raises(ConfigError) as entered:
        streamtape.use_cassette(tmp_path / "c.yaml", faults="disconnect:after=9").__enter__()
    assert str(entered.value) == (
        f"cassette {tmp_path / 'c.yaml'}: fault 'disconnect:after=9' asks for after=9, but the longest response "
        "it applies to has 7 SSE events; use after=0..7"
    )
    # ... and one the answering interaction cannot reach, when it is applied: BaseException, so an
    # `except Exception` in the app (or the SDK's retry loop) cannot swallow it
    short = Cassette.load(tmp_path / "c.yaml").interactions[0]
    long_body = BODY * 2
    longer = Interaction(Request("POST", "https://api.anthropic.com/v1/other/messages"),
                         Response(200, (("content-type", "text/event-stream"),), long_body, ((0.1, len(long_body)),)))  # fmt: skip
    Cassette([short, longer]).save(tmp_path / "two.yaml")
    swallowed = []
    with streamtape.use_cassette(tmp_path / "two.yaml", faults="disconnect:after=9", match_on=["path"]):
        with importlib.import_module(sdk.STACK).Client() as client, pytest.raises(ConfigError) as info:
            try:
                client.post("https://api.anthropic.com/v1/messages", json={})
            except Exception as exc:  # noqa: BLE001 - what a careless app does
                swallowed.append(exc)
    assert not swallowed and not isinstance(info.value, Exception)
    assert str(info.value) == (
        f"cassette {tmp_path / 'two.yaml'}, interaction #0 (POST https://api.anthropic.com/v1/messages): "
        "disconnect:after=9: after=9, but the recorded response has 7 SSE events; use after=0..7"
    )


def _with_background(path: Path) -> None:
    """A recording where the app fetched a price list before its model call."""
    stream = Cassette.load(path).interactions[0]
    prices = Interaction(Request("GET", "https://prices.example/v1/models.json"),
                         Response(200, (("content-type", "application/json"),), b"{}", ((0.0, 2),)))  # fmt: skip
    Cassette([prices, stream]).save(path)


def test_faults_shape_the_api_calls_not_the_apps_background_requests(tmp_path: Path) -> None:
    import importlib

    from tests.support import sdk

    path = tmp_path / "c.yaml"
    save_text_basic(path)
    _with_background(path)
    stack = importlib.import_module(sdk.STACK)
    with streamtape.use_cassette(path, faults="rate_limit*2 -> ok", match_on=["method", "path"]) as tape:
        with stack.Client() as client:
            assert client.get("https://prices.example/v1/models.json").status_code == 200  # not the first 429
            statuses = [client.post("https://api.anthropic.com/v1/messages", json={}).status_code for _ in range(3)]
    assert statuses == [429, 429, 200]
    assert [call.faults for call in tape.calls] == [(), ("rate_limit",), ("rate_limit",), ()]
    # when= still chooses: every request counts
    with streamtape.use_cassette(path, faults=faults.sequence("rate_limit", when=".*"), match_on=["method", "path"]):
        with stack.Client() as client:
            assert client.get("https://prices.example/v1/models.json").status_code == 429


def test_faults_that_shape_no_request_fail_the_test(tmp_path: Path) -> None:
    import importlib

    from tests.support import sdk

    path = tmp_path / "c.yaml"
    save_text_basic(path)
    _with_background(path)
    stack = importlib.import_module(sdk.STACK)
    with pytest.raises(ConfigError, match=r"shaped no request: 1 were replayed \(GET https://prices.example"):
        with streamtape.use_cassette(path, faults="disconnect:after=2", match_on=["method", "path"]):
            with stack.Client() as client:
                client.get("https://prices.example/v1/models.json")
