"""Bedrock, first-class: its requests, its errors (recorded ones, and the 429/503 and in-stream
exceptions modelled from botocore's service model), its grammar for lint and inspect, synth, its
faults, SigV4 secrets, and ``anthropic.AnthropicBedrock`` recorded and replayed end to end.

botocore is the oracle for what Bedrock's bytes mean (its parsers name the error each response and
frame carries). The end-to-end cases are differential: each fault runs once against a real local
server misbehaving on its socket (FIN, RST, silence, or exactly the bytes the fault plan makes),
once replayed by streamtape in process from a recording of the same server (gone by then), and once
served by ``ReplayServer`` (``streamtape serve``); everything the app can observe must be the same,
sync and async, the whole exception chain included.
"""

from __future__ import annotations

import dataclasses
import json
import re
from collections.abc import Callable, Iterator
from contextlib import contextmanager
from pathlib import Path
from types import ModuleType
from typing import Any

import anthropic
import botocore.exceptions
import botocore.model
import botocore.parsers
import pytest
from botocore.eventstream import EventStreamBuffer
from botocore.loaders import Loader

import streamtape
from streamtape import Cassette, Interaction, Request, Response
from streamtape.errors import ConfigError
from streamtape.faults import Context, apply, parse
from streamtape.framing.eventstream import EVENTSTREAM, decode_frame, frame_spans
from streamtape.lint import lint_file
from streamtape.matching import Player, resolve_matchers
from streamtape.providers import get, placeholder_keys, provider_for
from streamtape.providers.bedrock import BEDROCK, EXCEPTIONS, exception_frame
from streamtape.redact import KEY_SHAPES
from streamtape.report import describe_interaction
from streamtape.server import ReplayServer
from streamtape.synth import synthesize
from streamtape.wire import Action, Cut, End, Respond, Send, Stall, expand
from tests.support import bedrock, sdk
from tests.support.wire_server import Reply, WireServer

DATA = bedrock.DATA_DIR
STREAM = (("Content-Type", "application/vnd.amazon.eventstream"),)
CONVERSE = "https://bedrock-runtime.us-east-1.amazonaws.com/model/us.amazon.nova-micro-v1%3A0/converse-stream"
INVOKE = "https://bedrock-runtime.us-east-1.amazonaws.com/model/cohere.command-light-text-v14/invoke-with-response-stream"
_SERVICE = botocore.model.ServiceModel(Loader().load_service_model("bedrock-runtime", "service-2"))


def recorded(name: str, url: str = CONVERSE) -> Interaction:
    body = (DATA / f"{name}.eventstream").read_bytes()
    ends = EVENTSTREAM.event_ends(body)
    timing = tuple((0.3 + 0.01 * n, end - start) for n, (start, end) in enumerate(zip([0, *ends], ends, strict=False), 1))
    return Interaction(Request("POST", url, (("Content-Type", "application/json"),), b"{}"),
                       Response(200, STREAM, body, timing, "OK", 0.3))  # fmt: skip


def botocore_error(status: int, headers: tuple[tuple[str, str], ...], body: bytes, operation: str = "ConverseStream") -> str:
    """The error code botocore's own parser reads from a Bedrock error response."""
    shape = _SERVICE.operation_model(operation).output_shape
    parsed = botocore.parsers.create_parser("rest-json").parse(
        {"status_code": status, "headers": {k.lower(): v for k, v in headers}, "body": body}, shape
    )
    return f"{parsed['Error']['Code']}: {parsed['Error']['Message']}"


def botocore_frames(body: bytes, stream: str = "ConverseStreamOutput") -> list[dict[str, Any]]:
    """Each frame as botocore's event-stream parser gives it to boto3 (errors as ``{"Error": ...}``)."""
    buffer = EventStreamBuffer()
    buffer.add_data(body)
    parser = botocore.parsers.EventStreamJSONParser()
    return [parser.parse(message.to_response_dict(), _SERVICE.shape_for(stream)) for message in buffer]


class TestRequests:
    """Bedrock Runtime's model calls are Bedrock's, under any host; nothing else is."""

    @pytest.mark.parametrize("path", ["converse-stream", "converse", "invoke-with-response-stream", "invoke"])
    @pytest.mark.parametrize("host", ["https://bedrock-runtime.eu-west-1.amazonaws.com", "http://127.0.0.1:8123/proxy"])
    def test_claimed(self, host: str, path: str) -> None:
        assert provider_for("POST", f"{host}/model/anthropic.claude-3-haiku-20240307-v1:0/{path}") is BEDROCK
        assert provider_for("POST", f"{host}/model/arn%3Aaws%3Abedrock%3Aus-east-1%3A1%3Afoo%2Fbar/{path}?x=1") is BEDROCK

    @pytest.mark.parametrize("request_line", ["GET https://bedrock-runtime.us-east-1.amazonaws.com/model/m/invoke",
                                              "POST https://api.anthropic.com/v1/messages",
                                              "POST https://bedrock.us-east-1.amazonaws.com/anthropic/v1/messages",
                                              "POST https://x/model/m/invoke-agent"])  # fmt: skip
    def test_not_claimed(self, request_line: str) -> None:
        assert provider_for(*request_line.split(" ")).name != "bedrock"

    def test_faults_shape_bedrock_calls_by_default(self) -> None:
        from streamtape.providers import api_requests

        assert re.search(api_requests(), f"POST {CONVERSE}") and re.search(api_requests(), f"POST {INVOKE}")


class TestErrors:
    """HTTP errors are Bedrock's own: recorded bodies where a recording exists, botocore reads each."""

    @pytest.mark.parametrize(("status", "name"), [(400, "http_400_invalid_model_converse_stream"),
                                                  (403, "http_403_expired_token"), (500, "http_500_internal_error")])  # fmt: skip
    def test_the_recorded_bodies(self, status: int, name: str) -> None:
        headers, body = BEDROCK.http_error(status)
        assert body == (DATA / f"{name}.body.json").read_bytes()
        assert dict(headers)["Content-Length"] == str(len(body))

    def test_the_recorded_403_headers(self) -> None:
        recorded = json.loads((DATA / "http_403_expired_token.headers.json").read_text())["headers"]
        headers = dict(BEDROCK.http_error(403)[0])
        assert headers["x-amzn-ErrorType"] == recorded["x-amzn-ErrorType"][0]

    @pytest.mark.parametrize(
        ("status", "code"),
        [(400, "ValidationException"), (403, "ExpiredTokenException"), (404, "ResourceNotFoundException"),
         (408, "ModelTimeoutException"), (429, "ThrottlingException"), (500, "InternalServerException"),
         (503, "ServiceUnavailableException"), (502, "InternalServerException")],
    )  # fmt: skip
    def test_botocore_reads_each_as_its_exception(self, status: int, code: str) -> None:
        headers, body = BEDROCK.http_error(status, number=7)
        assert botocore_error(status, headers, body).startswith(f"{code}: ")
        assert dict(headers)["x-amzn-RequestId"] == "00000007-5354-4150-8000-73747265616d"

    def test_429_as_reported(self) -> None:
        headers, body = BEDROCK.http_error(429)
        assert body == b'{"message":"Too many tokens, please wait before trying again."}' and len(body) == 63
        assert dict(headers)["x-amzn-ErrorType"] == "ThrottlingException:http://internal.amazon.com/coral/com.amazon.bedrock/"

    def test_options(self) -> None:
        headers, body = BEDROCK.http_error(503, error_type="ModelNotReadyException", message="warming up",
                                           retry_after=2, request_id=False, headers=[("x-extra", "1")])  # fmt: skip
        assert botocore_error(503, headers, body) == "ModelNotReadyException: warming up"
        assert ("Retry-After", "2") in headers and ("x-extra", "1") in headers
        assert "x-amzn-RequestId" not in dict(headers)
        raw_headers, raw = BEDROCK.http_error(502, body="<html>bad gateway</html>", content_type="text/html")
        assert raw == b"<html>bad gateway</html>" and "x-amzn-ErrorType" not in dict(raw_headers)

    def test_overloaded_is_bedrocks_503(self) -> None:
        (respond, *_) = apply(parse("overloaded").faults_for(0), recorded("converse_stream_text").actions(),
                              Context(provider=BEDROCK))  # fmt: skip
        assert isinstance(respond, Respond) and respond.status == 503

    def test_harness_errors(self) -> None:
        headers, body = BEDROCK.harness_error(404, "not_found_error", "no recorded match", retry=False)
        assert botocore_error(404, headers, body) == "ResourceNotFoundException: no recorded match"
        assert dict(headers)["x-should-retry"] == "false"


class TestInStreamExceptions:
    """An in-stream exception is an exception frame: modelled (none was recorded), read by botocore."""

    @pytest.mark.parametrize("kind", list(EXCEPTIONS))
    def test_botocore_raises_each(self, kind: str) -> None:
        frame = exception_frame(kind)
        headers = decode_frame(frame).headers
        assert headers == ((":exception-type", kind), (":content-type", "application/json"),
                           (":message-type", "exception"))  # fmt: skip
        stream = "ConverseStreamOutput" if kind != "modelTimeoutException" else "ResponseStream"
        (parsed,) = botocore_frames(frame, stream)
        assert parsed["Error"] == {"Code": kind, "Message": EXCEPTIONS[kind]}

    def test_error_event_on_bedrock_is_an_exception_frame(self) -> None:
        assert BEDROCK.error_event() == exception_frame("throttlingException")
        assert BEDROCK.error_event("internalServerException", "boom") == exception_frame("internalServerException", "boom")
        (parsed,) = botocore_frames(BEDROCK.error_event(data="not json", event="validationException"))
        assert parsed["Error"]["Code"] == "validationException"


class TestLintAndInspect:
    """The recorded streams are well-formed by Bedrock's grammar; inspect reads usage, stop and tools."""

    @pytest.mark.parametrize("name", ["converse_stream_text", "converse_stream_tool_use",
                                      "converse_stream_guardrail_intervened"])  # fmt: skip
    def test_recorded_converse_streams_lint_clean(self, name: str, tmp_path: Path) -> None:
        path = Cassette([recorded(name)]).save(tmp_path / "c.yaml")
        assert [str(p) for p in lint_file(path)] == []

    def test_recorded_invoke_stream_lints_clean(self, tmp_path: Path) -> None:
        path = Cassette([recorded("invoke_with_response_stream_cohere", INVOKE)]).save(tmp_path / "c.yaml")
        assert [str(p) for p in lint_file(path)] == []

    @pytest.mark.parametrize(
        ("name", "tokens", "stop", "tools"),
        [
            ("converse_stream_text", {"input_tokens": 13, "output_tokens": 82, "total_tokens": 95}, "end_turn", []),
            ("converse_stream_tool_use", {"input_tokens": 259, "output_tokens": 64, "total_tokens": 323}, "tool_use",
             ['fetch_concept({"concept": "distributed tracing"})']),
            ("converse_stream_guardrail_intervened", None, "guardrail_intervened", []),
        ],
    )  # fmt: skip
    def test_inspect(self, name: str, tokens: dict[str, int] | None, stop: str, tools: list[str]) -> None:
        item = recorded(name)
        summary = describe_interaction(0, item)
        assert summary["stop_reason"] == stop and summary["ended"] == "clean"
        if tokens is not None:
            assert summary["tokens"] == tokens
        assert BEDROCK.tool_calls(item.events) == tools == summary.get("tool_calls", tools)
        assert summary["events"]["messageStart"] == 1

    def test_inspect_an_invoke_stream(self) -> None:
        item = recorded("invoke_with_response_stream_cohere", INVOKE)
        summary = describe_interaction(0, item)
        assert summary["tokens"] == {"input_tokens": 20, "output_tokens": 10}
        assert summary["stop_reason"] == "MAX_TOKENS" and summary["events"] == {"chunk": 11}

    def test_an_anthropic_model_on_invoke(self) -> None:
        body = b"".join(bedrock.frames("tool_use"))
        events = EVENTSTREAM.events(body)
        assert BEDROCK.lint(events, broke=False) == []
        assert BEDROCK.stop_reason(events) == "tool_use" and BEDROCK.tool_calls(events)[0].startswith("get_weather({")
        assert BEDROCK.tokens(events)["output_tokens"] > 0
        early = EVENTSTREAM.events(b"".join(bedrock.frames("tool_use")[:-1]))
        assert BEDROCK.lint(early, broke=False) and BEDROCK.ending(early) == "clean, but early (no message_stop)"
        whole = json.loads(BEDROCK.whole_message(events))
        assert whole["stop_reason"] == "tool_use" and whole["content"][-1]["name"] == "get_weather"

    def test_grammar_problems_are_named(self) -> None:
        events = recorded("converse_stream_text").events
        assert BEDROCK.lint(events[1:], broke=False)[0].startswith("the first frame is 'contentBlockDelta'")
        assert "not metadata" in BEDROCK.lint(events[:-1], broke=False)[-1]
        assert BEDROCK.lint(events[:-1], broke=True) == []
        assert BEDROCK.ending(events[:-2]) == "clean, but early (no messageStop)"
        swapped = [*events[:-2], events[-1], events[-2]]
        assert any("metadata before messageStop" in p for p in BEDROCK.lint(swapped, broke=False))

    def test_an_exception_ends_the_stream(self) -> None:
        body = b"".join(recorded("converse_stream_text").body[a:b] for a, b in list(frame_spans(
            recorded("converse_stream_text").body))[:3]) + exception_frame()  # fmt: skip
        events = EVENTSTREAM.events(body)
        assert BEDROCK.lint(events, broke=False) == []
        assert BEDROCK.ending(events) == "in-stream exception: throttlingException"

    def test_whole_message_is_the_converse_output(self) -> None:
        whole = json.loads(BEDROCK.whole_message(recorded("converse_stream_tool_use").events))
        content = whole["output"]["message"]["content"]
        assert content[1]["toolUse"]["input"] == {"concept": "distributed tracing"} and whole["stopReason"] == "tool_use"
        assert whole["usage"]["totalTokens"] == 323

    def test_key_variables(self) -> None:
        keys = placeholder_keys()
        assert keys["AWS_ACCESS_KEY_ID"] and keys["AWS_SECRET_ACCESS_KEY"]
        assert "AWS_BEARER_TOKEN_BEDROCK" not in keys and "AWS_SESSION_TOKEN" not in keys
        assert set(BEDROCK.secret_variables) >= {"AWS_SESSION_TOKEN", "AWS_BEARER_TOKEN_BEDROCK"}


class TestSynth:
    def test_a_converse_stream_botocore_reads(self, tmp_path: Path) -> None:
        item = synthesize(text="Paris is the capital.", thinking="Easy.", tools=[("lookup", {"q": "x"})],
                          model="us.amazon.nova-micro-v1:0", provider="bedrock", seed=3)  # fmt: skip
        assert item.response is not None
        frames = botocore_frames(item.response.body)
        assert list(frames[0]) == ["messageStart"] and list(frames[-1]) == ["metadata"]
        assert provider_for(item.request.method, item.request.url) is BEDROCK
        assert [str(p) for p in lint_file(Cassette([item]).save(tmp_path / "s.yaml"))] == []
        assert BEDROCK.stop_reason(item.events) == "tool_use" and BEDROCK.tool_calls(item.events) == ['lookup({"q": "x"})']
        again = synthesize(text="Paris is the capital.", thinking="Easy.", tools=[("lookup", {"q": "x"})],
                           model="us.amazon.nova-micro-v1:0", provider="bedrock", seed=3)  # fmt: skip
        assert again == item


class TestFaults:
    """Every catalogue fault means something on an event stream, and Bedrock's own are named by it."""

    def run(self, spec: str, item: Interaction | None = None, provider: Any = BEDROCK) -> list[Action]:
        item = item or recorded("converse_stream_text")
        return list(expand(apply(parse(spec).faults_for(0), item.actions(), Context(provider=provider))))

    def body(self, actions: list[Action]) -> bytes:
        return b"".join(a.data for a in actions if isinstance(a, Send))

    def test_exception_frame(self) -> None:
        actions = self.run("exception_frame:after=3,type=modelStreamErrorException")
        frames = botocore_frames(self.body(actions))
        assert len(frames) == 4 and frames[-1]["Error"]["Code"] == "modelStreamErrorException"
        assert isinstance(actions[-1], End)
        assert isinstance(self.run("exception_frame:after=3,then=cut")[-1], Cut)

    def test_exception_frame_refuses_other_streams_in_one_sentence(self) -> None:
        sse = Interaction(Request("POST", "https://api.anthropic.com/v1/messages"),
                          Response(200, (("content-type", "text/event-stream"),), b"data: {}\n\n", ((0.1, 10),)))  # fmt: skip
        with pytest.raises(ConfigError) as info:
            self.run("exception_frame", sse, get("anthropic"))
        message = str(info.value)
        assert message == ("exception_frame is a fault of Bedrock streams, but this request is answered in the "
                           "anthropic provider's formats; use error_event for its in-stream errors, or "
                           "exception_frame on a Bedrock recording")  # fmt: skip
        assert message.count(". ") == 0
        with pytest.raises(ConfigError, match="not an exception a Bedrock stream declares; valid: throttlingException"):
            parse("exception_frame:type=overloaded")
        with pytest.raises(ConfigError, match="the HTTP error's name; in a stream it is type=throttlingException"):
            parse("exception_frame:type=ThrottlingException")

    def test_bad_crc(self) -> None:
        item = recorded("converse_stream_text")
        for spec in ("bad_crc:event=2", "bad_crc:event=2,which=prelude"):
            body = self.body(self.run(spec))
            start, end = list(frame_spans(body))[1]
            assert body[:start] == item.body[:start] and body[end:] == item.body[end:]
            assert body[start:end] != item.body[start:end] and len(body) == len(item.body)
            assert not EVENTSTREAM.events(body)[1].event.endswith("Exception")
            with pytest.raises(Exception, match="Checksum mismatch"):
                botocore_frames(body)
        with pytest.raises(ConfigError, match="not one .its content type is text/event-stream"):
            self.run("bad_crc", Interaction(Request("POST", CONVERSE), Response(
                200, (("content-type", "text/event-stream"),), b"data: {}\n\n", ((0.1, 10),))))  # fmt: skip

    def test_corrupt_damages_the_payload_and_keeps_the_frame_valid(self) -> None:
        for spec in ("corrupt:event=2", "corrupt:event=2,how=truncate", "corrupt:event=2,how=escape",
                     "corrupt:event=2,how=utf8,at=3"):  # fmt: skip
            body = self.body(self.run(spec))
            payloads = [decode_frame(body[a:b]).payload for a, b in frame_spans(body)]  # every CRC valid
            assert len(payloads) == 33, spec
            with pytest.raises(ValueError):
                json.loads(payloads[1])

    def test_error_event_truncate_json_body(self) -> None:
        frames = botocore_frames(self.body(self.run("error_event:after=2")))
        assert frames[-1]["Error"]["Code"] == "throttlingException"
        assert len(botocore_frames(self.body(self.run("truncate:after=4")))) == 4
        (respond, send, _) = self.run("json_body")
        assert isinstance(respond, Respond) and isinstance(send, Send)
        assert json.loads(send.data)["output"]["message"]["content"][0]["text"].startswith("The capital of France")

    def test_ping_has_nothing_to_send(self) -> None:
        with pytest.raises(ConfigError, match="no keep-alive event, so ping cannot be used on it"):
            self.run("ping")


class TestSecrets:
    """SigV4: the key id, the signature and the session token never reach a cassette; matching ignores
    the signature and its date."""

    def test_a_signed_request_is_recorded_without_them(self, tmp_path: Path) -> None:
        token = "IQoJb3JpZ2luX2VjEStreamtapeSessionToken0123456789abcdefABCDEF"
        reply = bedrock.error_reply("http_403_expired_token")
        reply.events = [b'{"message":"The security token included in the request is expired: ' + token.encode()
                        + b" for " + bedrock.ACCESS_KEY.encode() + b'"}']  # fmt: skip
        with WireServer() as server:
            server.queue(reply)
            with streamtape.use_cassette(tmp_path / "c.yaml", record_mode="all", record_failures=True):
                with bedrock.client(server.base_url, aws_session_token=token) as client:
                    with pytest.raises(anthropic.PermissionDeniedError):
                        client.messages.create(**bedrock.PARAMS)
            sent = server.requests[0]
        assert sent.header("x-amz-security-token") == token
        assert bedrock.ACCESS_KEY in (sent.header("authorization") or "")
        signature = (sent.header("authorization") or "").rsplit("Signature=", 1)[1]
        text = (tmp_path / "c.yaml").read_text()
        for secret in (token, bedrock.ACCESS_KEY, signature, bedrock.SECRET_KEY, "AWS4-HMAC-SHA256"):
            assert secret not in text
        assert not KEY_SHAPES.search(text) and "REDACTED" in text and "X-Amz-Date" in text

    def test_matching_ignores_the_signature_and_its_date(self) -> None:
        def signed(date: str, signature: str) -> Request:
            return Request("POST", CONVERSE, (("X-Amz-Date", date), ("Authorization", f"AWS4-HMAC-SHA256 Signature={signature}"),
                                              ("amz-sdk-invocation-id", signature)), b'{"messages":[]}')  # fmt: skip

        player = Player([Interaction(signed("20250101T000000Z", "aa"), recorded("converse_stream_text").response)],
                        resolve_matchers(None))  # fmt: skip
        assert player.choose(signed("20261207T011308Z", "bb")) == 0


# --- end to end: AnthropicBedrock against a real local server, and replayed --------------------------

ATTEMPTS = 3  # max_retries=2
SLOW = 0.3  # the read timeout where a stall must fire
FOREVER = 30.0
STYLES = ("text_stream", "events")


@dataclasses.dataclass(frozen=True)
class Case:
    spec: str
    real: Callable[[Case, Interaction], list[Reply]]
    requests: int = 1
    timeout: float = 5.0

    @property
    def id(self) -> str:
        return self.spec.replace(" ", "")


def natural(**misbehaviour: Any) -> Callable[[Case, Interaction], list[Reply]]:
    """The recorded stream served by a server that misbehaves on its socket (FIN, RST, silence)."""
    return lambda case, item: [bedrock.invoke_reply(**misbehaviour)]


def planned(case: Case, item: Interaction) -> list[Reply]:
    """Each attempt gets exactly the bytes the fault plan makes of the recording, over the socket."""
    schedule = parse(case.spec)
    replies = []
    for attempt in range(ATTEMPTS):
        faults = schedule.faults_for(attempt)
        actions = item.actions() if not faults else apply(faults, item.actions(), Context(attempt + 1, provider=BEDROCK))
        replies.append(_reply(list(expand(actions))))
    return replies


def _reply(actions: list[Action]) -> Reply:
    respond, *body = actions
    assert isinstance(respond, Respond)
    sends = [a.data for a in body if isinstance(a, Send)]
    ending = body[-1]
    misbehaviour: dict[str, Any] = {}
    if isinstance(ending, Cut):
        misbehaviour = {{"fin": "fin_after", "RemoteProtocolError": "fin_after"}.get(ending.error, "rst_after"): len(sends)}
    elif isinstance(ending, Stall):
        misbehaviour = {"stall_after": len(sends), "stall_seconds": FOREVER}
    headers = [(k, v) for k, v in respond.headers if k.lower() not in ("content-length", "transfer-encoding")]
    framing = "content-length" if any(k.lower() == "content-length" for k, _ in respond.headers) else "chunked"
    return Reply(status=respond.status, reason=respond.reason, headers=headers, events=sends, framing=framing,  # type: ignore[arg-type]
                 **misbehaviour)  # fmt: skip


CASES = [
    Case("disconnect:after=0", natural(fin_after=0)),
    Case("disconnect:after=4", natural(fin_after=4)),
    Case("disconnect:after=7", natural(fin_after=7)),  # every frame arrived, the body's end did not
    Case("reset:after=4", natural(rst_after=4)),
    Case("stall:after=4", natural(stall_after=4, stall_seconds=FOREVER), timeout=SLOW),
    Case("exception_frame:after=4", planned),
    Case("exception_frame:after=0,type=serviceUnavailableException", planned),
    Case("exception_frame:after=4,type=modelStreamErrorException,then=cut", planned),
    Case("error_event:after=4", planned),
    Case("bad_crc:event=4", planned),
    Case("bad_crc:event=1,which=prelude", planned),
    Case("corrupt:event=4", planned),
    Case("truncate:after=4", planned),
    Case("drop:event=4", planned),
    Case("json_body", planned),
    Case("rate_limit", planned, ATTEMPTS),
    Case("overloaded", planned, ATTEMPTS),
    Case("server_error", planned, ATTEMPTS),
    Case("http_error:status=400", planned, 1),
    Case("rate_limit -> ok", planned, 2),
    Case("overloaded -> ok", planned, 2),
]


@pytest.fixture(scope="module")
def recording(tmp_path_factory: pytest.TempPathFactory) -> tuple[Path, str, Interaction]:
    """The clean stream recorded once through AnthropicBedrock from the local server, then stopped."""
    path = tmp_path_factory.mktemp("bedrock") / "invoke.yaml"
    with WireServer() as server:
        server.queue(bedrock.invoke_reply())
        with streamtape.use_cassette(path, record_mode="all") as tape:
            outcome = bedrock.consume(server.base_url, "create")
        assert outcome.error is None and [c.source for c in tape.calls] == ["recorded"]
        url = server.base_url
    (item,) = Cassette.load(path).interactions
    assert item.response is not None
    # the loopback's chunks, 1 ms apart: a loaded machine's gap must not reach the cases' read timeout
    timing = tuple((n * 0.001, size) for n, (_, size) in enumerate(item.response.timing, 1))
    item = Interaction(item.request, dataclasses.replace(item.response, timing=timing, headers_at=0.0005,
                                                         end=End(timing[-1][0])))  # fmt: skip
    Cassette([item]).save(path)
    return path, url, item


class _NoSleep:
    """The SDK's ``time`` / ``anyio`` on the real side: everything real but ``sleep`` (noted instead)."""

    def __init__(self, real: Any, waits: list[float]) -> None:
        self._real, self.waits = real, waits

    def __getattr__(self, name: str) -> Any:
        return getattr(self._real, name)

    def sleep(self, seconds: float) -> Any:
        self.waits.append(seconds)
        if isinstance(self._real, ModuleType) and self._real.__name__ == "anyio":
            return self._real.sleep(0)
        return None


@contextmanager
def no_back_off() -> Iterator[list[float]]:
    waits: list[float] = []
    base = anthropic._base_client
    with pytest.MonkeyPatch.context() as patch:
        patch.setattr(base, "time", _NoSleep(base.time, waits))
        patch.setattr(base, "anyio", _NoSleep(base.anyio, waits))
        yield waits


async def _consume(url: str, style: str, mode: str, timeout: float) -> sdk.Outcome:
    options = {"max_retries": 2, "timeout": timeout}
    if mode == "sync":
        return bedrock.consume(url, style, options=options)
    return await bedrock.aconsume(url, style, options=options)


def seen(outcome: sdk.Outcome, requests: int) -> dict[str, Any]:
    return {"error": outcome.error, "cause_message": outcome.cause_message, "chain": outcome.chain,
            "status": outcome.status, "text": outcome.text, "events": outcome.events, "final": outcome.final,
            "snapshot": outcome.snapshot, "requests": requests}  # fmt: skip


@pytest.mark.sdk
class TestAnthropicBedrock:
    """AnthropicBedrock ``messages.stream`` over invoke-with-response-stream: recorded, replayed with
    the server gone, and under faults exactly what the same failure from a real server gives, in
    process and from ``streamtape serve`` (``ReplayServer``) over a socket."""

    @pytest.mark.parametrize("mode", ["sync", "async"])
    async def test_replays_with_the_server_gone(self, recording: tuple[Path, str, Interaction], mode: str) -> None:
        path, url, item = recording
        async with streamtape.use_cassette(path) as tape:
            outcome = await _consume(url, "text_stream", mode, 5.0)
        assert outcome.error is None and outcome.text == "Hello"
        assert [c.source for c in tape.calls] == ["replayed"]
        text = path.read_text()
        assert "encoding: eventstream" in text and '"text_delta","text":"Hello"' in text

    @pytest.mark.parametrize("mode", ["sync", "async"])
    @pytest.mark.parametrize("style", STYLES)
    @pytest.mark.parametrize("case", CASES, ids=lambda c: c.id)
    async def test_fault_is_faithful(self, recording: tuple[Path, str, Interaction], case: Case, style: str,
                                     mode: str) -> None:  # fmt: skip
        path, url, item = recording
        with no_back_off() as waits, WireServer() as server:
            server.queue(*case.real(case, item))
            real = await _consume(server.base_url, style, mode, case.timeout)
            real_requests = len(server.requests)
        async with streamtape.use_cassette(path, faults=case.spec) as tape:
            replayed = await _consume(url, style, mode, case.timeout)
        assert all(call.source == "replayed" for call in tape.calls)
        with no_back_off(), ReplayServer(Cassette.load(path), faults=case.spec, speed=1) as replay_server:
            served = await _consume(replay_server.base_url, style, mode, case.timeout)  # streamtape serve
            served_requests = len(replay_server.calls)
        headline = ("error", "cause_message", "status", "text", "requests")
        real_saw, replay_saw = seen(real, real_requests), seen(replayed, len(tape.calls))
        assert {k: replay_saw[k] for k in headline} == {k: real_saw[k] for k in headline}
        assert replay_saw == real_saw
        served_saw = seen(served, served_requests)
        assert {k: served_saw[k] for k in headline} == {k: real_saw[k] for k in headline}, "streamtape serve"
        assert served_saw == real_saw, "streamtape serve"
        assert real_requests == case.requests and len(waits) == case.requests - 1


# --- boto3: what the docs say it does, measured against a real server and replayed -------------------

boto3 = pytest.importorskip("boto3")
_TEXT_FRAMES = [
    (DATA / "converse_stream_text.eventstream").read_bytes()[a:b]
    for a, b in frame_spans((DATA / "converse_stream_text.eventstream").read_bytes())
]


def _boto3_stream(url: str) -> tuple[str, list[str], str | None]:
    """``converse_stream`` as an app reads it: the text, the event kinds, and the error (class: message)."""
    from botocore.config import Config

    client = boto3.client("bedrock-runtime", region_name="us-east-1", endpoint_url=url,
                          aws_access_key_id=bedrock.ACCESS_KEY, aws_secret_access_key=bedrock.SECRET_KEY,
                          config=Config(read_timeout=SLOW, retries={"max_attempts": 1, "mode": "standard"}))  # fmt: skip
    text, kinds = "", []
    try:
        response = client.converse_stream(modelId="us.amazon.nova-micro-v1:0",
                                          messages=[{"role": "user", "content": [{"text": "Hi"}]}])  # fmt: skip
        for event in response["stream"]:
            kinds.append(next(iter(event)))
            text += event["contentBlockDelta"]["delta"]["text"] if "contentBlockDelta" in event else ""
    except Exception as exc:  # noqa: BLE001 - what the app meets is the point
        message = re.sub(r"port=\d+", "port=PORT", str(exc))
        return text, kinds, f"{type(exc).__module__}.{type(exc).__name__}: {message}"
    return text, kinds, None


BOTO3_CASES = {
    # spec: (the real server's reply, what the app meets: its error class, or None)
    "disconnect:after=3": (dict(events=_TEXT_FRAMES, fin_after=3), "urllib3.exceptions.ProtocolError"),
    "reset:after=3": (dict(events=_TEXT_FRAMES, rst_after=3), "urllib3.exceptions.ProtocolError"),
    "stall:after=3": (dict(events=_TEXT_FRAMES, stall_after=3, stall_seconds=FOREVER),
                      "urllib3.exceptions.ReadTimeoutError"),
    "exception_frame:after=3": (dict(events=[*_TEXT_FRAMES[:3], exception_frame()]),
                                "botocore.exceptions.EventStreamError"),
    "bad_crc:event=4": (None, "botocore.eventstream.ChecksumMismatch"),
    "corrupt:event=4": (None, "builtins.KeyError"),  # botocore hands on an empty contentBlockDelta
    "truncate:after=5": (dict(events=_TEXT_FRAMES[:5]), None),  # silence about the missing end
}  # fmt: skip


@pytest.fixture(scope="module")
def converse_recording(tmp_path_factory: pytest.TempPathFactory) -> tuple[Path, str, Interaction]:
    path = tmp_path_factory.mktemp("boto3") / "converse.yaml"
    with WireServer() as server:
        server.queue(Reply(headers=list(bedrock.EVENTSTREAM_HEADERS[:2]), events=_TEXT_FRAMES))
        with streamtape.use_cassette(path, record_mode="all"):
            assert _boto3_stream(server.base_url)[2] is None
        url = server.base_url
    (item,) = Cassette.load(path).interactions
    return path, url, item


@pytest.mark.parametrize("spec", list(BOTO3_CASES))
def test_boto3_meets_what_the_docs_say_live_and_replayed(spec: str, converse_recording: tuple[Path, str, Interaction]) -> None:
    path, url, item = converse_recording
    reply, expected = BOTO3_CASES[spec]
    if reply is None:
        actions = list(expand(apply(parse(spec).faults_for(0), item.actions(), Context(provider=BEDROCK))))
        reply = dict(events=[a.data for a in actions if isinstance(a, Send)])
    with WireServer() as server:
        server.queue(Reply(headers=list(bedrock.EVENTSTREAM_HEADERS[:2]), **reply))
        real = _boto3_stream(server.base_url)
    with streamtape.use_cassette(path, faults=spec):
        replayed = _boto3_stream(url)
    assert replayed == real
    assert (real[2] or "").split(":")[0] == (expected or "")
    assert "metadata" not in real[1]


# --- the starters ------------------------------------------------------------------------------------

STARTERS = Path(__file__).resolve().parent.parent / "cassettes" / "bedrock"


@pytest.mark.parametrize("path", sorted(STARTERS.glob("*.yaml")), ids=lambda p: p.stem)
def test_starters_are_lint_clean_reproducible_and_replay_through_boto3(path: Path) -> None:
    import importlib.util
    import sys

    spec = importlib.util.spec_from_file_location("build_starters", path.parent.parent.parent / "scripts" / "build_starters.py")
    assert spec is not None and spec.loader is not None
    script = importlib.util.module_from_spec(spec)
    sys.modules.setdefault("build_starters", script)
    spec.loader.exec_module(script)
    assert Cassette([script.build_bedrock(path.stem, script.BEDROCK_STARTERS[path.stem])]).dumps().encode() == \
        path.read_bytes()  # fmt: skip
    assert [str(p) for p in lint_file(path)] == []
    (item,) = Cassette.load(path).interactions
    assert item.response is not None
    sent = json.loads(item.request.body)
    model = item.request.url.split("/model/")[1].split("/")[0].replace("%3A", ":")
    with streamtape.use_cassette(path) as tape:
        client = boto3.client("bedrock-runtime", region_name="us-east-1")
        try:
            if item.request.url.endswith("/converse"):
                seen: Any = client.converse(modelId=model, **sent)["stopReason"]
            elif item.request.url.endswith("/invoke-with-response-stream"):
                stream = client.invoke_model_with_response_stream(modelId=model, body=item.request.body)["body"]
                seen = json.loads(list(stream)[-1]["chunk"]["bytes"])["finish_reason"]
            else:
                seen = [e["messageStop"]["stopReason"] for e in client.converse_stream(modelId=model, **sent)["stream"]
                        if "messageStop" in e][0]  # fmt: skip
        except botocore.exceptions.ClientError as exc:
            seen = exc.response["ResponseMetadata"]["HTTPStatusCode"]
    expected = item.response.status if item.response.status >= 400 else BEDROCK.stop_reason(item.events)
    assert seen == expected and all(call.source == "replayed" for call in tape.calls)


def test_botocore_can_be_imported_first_inside_a_tape(tmp_path: Path) -> None:
    """AnthropicBedrock imports botocore (so urllib3, a stack streamtape adapts) at its first request:
    an app whose first Bedrock call is inside a tape imports it there."""
    import subprocess
    import sys

    cassette = str(tmp_path / "c.yaml")
    code = f"import streamtape\nwith streamtape.use_cassette({cassette!r}, record_mode='all'):\n    import botocore.auth\n"
    result = subprocess.run([sys.executable, "-c", code], capture_output=True, text=True, timeout=60)
    assert result.returncode == 0, result.stderr.splitlines()[-1]
