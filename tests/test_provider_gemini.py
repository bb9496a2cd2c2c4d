"""Gemini, first-class: the provider's bytes are the API's, google-genai records and replays through a tape
byte-exact (sync over httpx2, async over aiohttp), and every catalogue fault on a Gemini stream is what the
app meets from a real server doing the same, proved differentially through google-genai.

The real side is a server on 127.0.0.1 speaking Gemini's wire format from the recordings in
tests/data/gemini (CRLF events, no terminator, bare-JSON errors under ``text/event-stream``) and
misbehaving at the socket level (FIN, RST, silence), or sending exactly the bytes the fault plan makes.
The replay side is the clean stream recorded once from that server, replayed with ``faults=SPEC`` with the
server gone; the served side is the same cassette played by ``ReplayServer`` (``streamtape serve``).
google-genai retries only with ``HttpRetryOptions``: the clients here get one attempt, or three with no
back-off where a case is about retries, so nothing sleeps.
"""

from __future__ import annotations

import dataclasses
import json
import re
from collections.abc import Callable
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import pytest

pytest.importorskip("google.genai", reason="google-genai is not installed")


import streamtape  # noqa: E402
from streamtape import Cassette, ConfigError, Interaction, Request, Response, faults, providers  # noqa: E402
from streamtape.errors import StreamtapeError  # noqa: E402
from streamtape.faults import Context, apply, parse  # noqa: E402
from streamtape.lint import lint_file  # noqa: E402
from streamtape.providers.gemini import ERRORS, GEMINI, error_body  # noqa: E402
from streamtape.redact import REDACTED  # noqa: E402
from streamtape.report import describe_interaction  # noqa: E402
from streamtape.server import ReplayServer  # noqa: E402
from streamtape.sse import parse_events  # noqa: E402
from streamtape.synth import synthesize  # noqa: E402
from streamtape.wire import End  # noqa: E402
from tests.support import gemini as g  # noqa: E402
from tests.support.raw_server import RawServer, blackholed_port, closed_port  # noqa: E402
from tests.support.wire_server import Reply, WireServer  # noqa: E402

pytestmark = [
    pytest.mark.sdk,
    pytest.mark.filterwarnings("ignore:Inheritance class AiohttpClientSession:DeprecationWarning"),
]

TEXT = (g.DATA_DIR / "text.sse").read_bytes()  # 3 events, finishReason STOP on the last
STREAM_URL = "https://generativelanguage.googleapis.com/v1beta/models/gemini-2.5-flash:streamGenerateContent?alt=sse"
SLOW = 0.3  # the client's timeout where a case needs one to fire (or to be beaten)
PATIENT = 5.0


def stream_item(body: bytes = TEXT, url: str = STREAM_URL, *, end: Any = None) -> Interaction:
    events = parse_events(body)
    timing = tuple((round(0.2 + 0.01 * i, 4), e.end - e.start) for i, e in enumerate(events))
    response = Response(200, (("content-type", "text/event-stream"),), body, timing, "OK", 0.1, end or End(0.3))
    return Interaction(Request("POST", url), response)


# --- the provider -------------------------------------------------------------------------------------


class TestChosenPerRequest:
    """Gemini's formats answer Gemini's calls: the API's host, any host with a model call, Vertex's Google models."""

    @pytest.mark.parametrize(
        ("method", "url", "headers"),
        [
            ("POST", STREAM_URL, ()),
            ("POST", "https://generativelanguage.googleapis.com/v1beta/models/gemini-2.5-flash:generateContent", ()),
            ("GET", "https://generativelanguage.googleapis.com/v1beta/models", ()),
            ("POST", "http://127.0.0.1:8080/v1/models/gemini-2.0-flash:streamGenerateContent?alt=sse", ()),
            ("POST", "https://us-central1-aiplatform.googleapis.com/v1/projects/p/locations/us-central1/publishers/"
                     "google/models/gemini-2.5-flash:streamGenerateContent?alt=sse", ()),
            ("POST", "https://proxy.example/files", (("x-goog-api-client", "google-genai-sdk/3.6.1"),)),
        ],
    )  # fmt: skip
    def test_claimed(self, method: str, url: str, headers: tuple) -> None:
        assert providers.provider_for(method, url, headers) is GEMINI

    @pytest.mark.parametrize(
        "url",
        [
            "https://api.anthropic.com/v1/messages",
            "https://us-east5-aiplatform.googleapis.com/v1/projects/p/locations/us-east5/publishers/anthropic/models/"
            "claude-sonnet-4-5:streamRawPredict",
        ],
    )
    def test_not_claimed(self, url: str) -> None:
        assert providers.provider_for("POST", url) is not GEMINI

    def test_faults_shape_its_calls_by_default(self) -> None:
        assert re.search(providers.api_requests(), f"POST {STREAM_URL}")
        assert providers.placeholder_keys()["GEMINI_API_KEY"] == providers.PLACEHOLDER_KEY


class TestTheApisBytes:
    """Error responses, the in-stream error and the whole-message body are the API's (recorded where recorded)."""

    @pytest.mark.parametrize(("status", "name"), [(404, "http_404_model_not_found_stream"),
                                                   (429, "http_429_resource_exhausted")])  # fmt: skip
    def test_recorded_errors_byte_exact(self, status: int, name: str) -> None:
        headers, body = GEMINI.http_error(status)
        assert body == (g.DATA_DIR / f"{name}.body.json").read_bytes()
        assert headers[:2] == (("content-type", "text/event-stream"), ("content-length", str(len(body))))
        assert ("server", "scaffolding on HTTPServer2") in headers and not any(k == "retry-after" for k, _ in headers)

    def test_recorded_error_layout(self) -> None:
        """The recorded 400 (a bad key, with details) is the layout every error body is written in."""
        recorded = (g.DATA_DIR / "http_400_api_key_invalid_stream.body.json").read_bytes()
        error = json.loads(recorded)["error"]
        assert error_body(400, error["status"], error["message"], details=error["details"]) == recorded

    @pytest.mark.parametrize(("status", "word"), [(500, "INTERNAL"), (503, "UNAVAILABLE"), (529, "UNAVAILABLE"),
                                                  (400, "INVALID_ARGUMENT"), (418, "UNKNOWN")])  # fmt: skip
    def test_other_statuses(self, status: int, word: str) -> None:
        error = json.loads(GEMINI.http_error(status)[1])["error"]
        assert (error["code"], error["status"]) == (status, word)
        assert error["message"] == ERRORS.get(status, ("", "I'm a Teapot"))[1]

    def test_overloaded_is_the_apis_503(self) -> None:
        item = stream_item()
        out = apply([faults.overloaded()], item.actions(), Context(provider=GEMINI))
        assert (out[0].status, json.loads(out[1].data)["error"]["status"]) == (503, "UNAVAILABLE")

    def test_retry_delay_goes_where_the_api_puts_it(self) -> None:
        headers, body = GEMINI.http_error(429, retry_after=2, should_retry=False, request_id="x")
        assert json.loads(body)["error"]["details"] == [
            {"@type": "type.googleapis.com/google.rpc.RetryInfo", "retryDelay": "2s"}
        ]
        assert not {"retry-after", "x-should-retry", "request-id"} & {k for k, _ in headers}
        assert json.loads(GEMINI.http_error(429, retry_after_ms=500)[1])["error"]["details"][0]["retryDelay"] == "0.5s"
        assert dict(GEMINI.http_error(503, retry_after_date=5)[0])["retry-after"].endswith(" GMT")

    def test_raw_bodies_and_headers_as_given(self) -> None:
        headers, body = GEMINI.http_error(502, body="<html>bad gateway</html>", content_type="text/html",
                                          headers=(("vary", "Accept"),))  # fmt: skip
        assert body == b"<html>bad gateway</html>" and ("content-type", "text/html") in headers
        assert [v for k, v in headers if k == "vary"] == ["Accept"]

    def test_error_type_is_a_status_word(self) -> None:
        assert json.loads(GEMINI.http_error(429, error_type="RESOURCE_EXHAUSTED", message="slow down")[1]) == {
            "error": {"code": 429, "message": "slow down", "status": "RESOURCE_EXHAUSTED"}
        }
        with pytest.raises(ConfigError, match="not a Google status word"):
            GEMINI.http_error(429, error_type="rate_limit_error")

    def test_the_in_stream_error_is_bare_json_after_the_events(self) -> None:
        assert GEMINI.error_event() == GEMINI.http_error(503)[1]
        assert json.loads(GEMINI.error_event("RESOURCE_EXHAUSTED"))["error"]["code"] == 429
        framed = GEMINI.error_event(data='{"error": {"code": 500}}')
        assert framed == b'data: {"error": {"code": 500}}\r\n\r\n'
        assert GEMINI.error_event(event="error").startswith(b"event: error\r\ndata: {")

    def test_no_keep_alive(self) -> None:
        with pytest.raises(ConfigError, match="Gemini sends no keep-alive event"):
            GEMINI.keep_alive()

    def test_whole_message(self) -> None:
        body = json.loads(GEMINI.whole_message(parse_events(TEXT)))
        assert body["candidates"][0]["content"] == {"parts": [{"text": "The capital of France is Paris.\n"}],
                                                    "role": "model"}  # fmt: skip
        assert body["candidates"][0]["finishReason"] == "STOP"
        assert body["usageMetadata"]["candidatesTokenCount"] == 8 and body["responseId"] == "w1peaMz6INOvnvgPgYfPiQY"

    def test_harness_error(self) -> None:
        headers, body = providers.error_response(404, "not_found_error", "no match", provider=GEMINI, close=True)
        assert json.loads(body) == {"error": {"code": 404, "message": "no match", "status": "NOT_FOUND"}}
        assert headers[0] == ("content-type", "application/json; charset=UTF-8") and headers[-1] == (
            "connection",
            "close",
        )


class TestLintAndInspect:
    """lint checks Gemini's grammar; inspect reads the last chunk's usage, the finish and the function calls."""

    def lint(self, tmp_path: Path, item: Interaction) -> list[str]:
        path = Cassette([item]).save(tmp_path / "c.yaml")
        return [p.message for p in lint_file(path) if p.kind == "sse"]

    @pytest.mark.parametrize("name", ["text", "max_tokens", "function_call_parallel"])
    def test_the_recordings_are_clean(self, tmp_path: Path, name: str) -> None:
        assert self.lint(tmp_path, stream_item((g.DATA_DIR / f"{name}.sse").read_bytes())) == []

    def test_a_clean_early_end_is_flagged(self, tmp_path: Path) -> None:
        early = TEXT[: parse_events(TEXT)[1].end]
        (problem,) = self.lint(tmp_path, stream_item(early))
        assert "ends without a finishReason" in problem
        assert describe_interaction(0, stream_item(early))["ended"].startswith("clean, but early (no finishReason")

    def test_a_cut_stream_may_end_anywhere(self, tmp_path: Path) -> None:
        from streamtape.wire import Cut

        early = TEXT[: parse_events(TEXT)[1].end]
        assert self.lint(tmp_path, stream_item(early, end=Cut("RemoteProtocolError", None, 0.3))) == []

    def test_grammar(self, tmp_path: Path) -> None:
        events = TEXT.split(b"\r\n\r\n")
        finished = events[2].replace(b'"role": "model"}}]', b'"role": "model"},"finishReason": "STOP"}]')
        body = (events[0] + b"\n\n" + b"event: chunk\r\n" + events[1].replace(b"w1pea", b"other") + b"\r\n\r\n"
                + finished + b"\r\n\r\n" + events[2] + b"\r\n\r\n")  # fmt: skip
        problems = self.lint(tmp_path, stream_item(body))
        assert any("named 'chunk'" in p and "UnknownApiResponseError" in p for p in problems)
        assert any("responseId" in p and "spliced" in p for p in problems)
        assert any("event 4 carries a candidate after the finishReason in event 3" in p for p in problems)
        assert any(p.startswith("line ends are mixed (LF in events 1; CRLF in events 3-4)") for p in problems), problems

    def test_inspect(self) -> None:
        text = describe_interaction(0, stream_item())
        assert text["tokens"] == {"input_tokens": 13, "output_tokens": 8, "total_tokens": 21}  # the LAST chunk's
        assert (text["stop_reason"], text["ended"], text["events"]) == ("STOP", "clean", {"message": 3})
        calls = parse_events((g.DATA_DIR / "function_call_parallel.sse").read_bytes())
        assert GEMINI.tool_calls(calls) == ["secret_retrieval_tool", "secret_retrieval_tool"]
        assert GEMINI.tokens(calls)["thoughts_tokens"] == 61
        maxed = describe_interaction(0, stream_item((g.DATA_DIR / "max_tokens.sse").read_bytes()))
        assert maxed["stop_reason"] == "MAX_TOKENS"

    def test_inspect_says_how_a_faulted_stream_ended(self) -> None:
        item = stream_item()
        for spec, ended, reason in [
            ("error_event:after=1,data='{\"error\": {\"code\": 503, \"status\": \"UNAVAILABLE\"}}'",
             "in-stream error: UNAVAILABLE", None),
            ("prompt_blocked", "prompt blocked: SAFETY", "blocked: SAFETY"),
            ("candidate_finish:after=1,reason=RECITATION", "clean", "RECITATION"),
        ]:  # fmt: skip
            actions = apply(parse(spec).faults_for(0), item.actions(), Context(provider=GEMINI))
            body = b"".join(getattr(a, "data", b"") for a in actions[1:])
            events = parse_events(body)
            assert (GEMINI.ending(events) or "clean", GEMINI.stop_reason(events)) == (ended, reason), spec
            assert GEMINI.lint(events, broke=False) == [], spec


class TestSynth:
    """A synthesized Gemini stream is framed as the API frames one, and google-genai reads it."""

    def test_synth_replays_through_google_genai(self, tmp_path: Path) -> None:
        item = synthesize(text="Paris is the capital.", thinking="Think first.", tools=[("lookup", {"q": "x"})],
                          model="gemini-2.5-flash", prompt=g.PROMPT, provider="gemini", seed=3)  # fmt: skip
        assert b"\r\n\r\n" in item.response.body and b"\n\n" not in item.response.body.replace(b"\r\n\r\n", b"")
        path = Cassette([item]).save(tmp_path / "synth.yaml")
        assert [p for p in lint_file(path) if p.kind == "sse"] == []
        with streamtape.use_cassette(path, match_on=["method", "path"]):
            out = g.consume("https://generativelanguage.googleapis.com", model="gemini-2.5-flash", api_version="v1beta")
        assert out.error is None and out.text == "Paris is the capital."
        assert out.chunks[-1]["candidates"][0]["content"]["parts"][0]["function_call"]["name"] == "lookup"
        assert GEMINI.tokens(item.response.events)["thoughts_tokens"] == 3


# --- recording and replaying through google-genai -----------------------------------------------------------


@pytest.fixture(scope="module")
def recordings(tmp_path_factory: pytest.TempPathFactory) -> Callable[[str], tuple[Path, str, Interaction]]:
    """A stream recorded once through google-genai from a server speaking Gemini's wire format: ``text`` (the
    recording) or ``utf8`` (a synthesized one with multi-byte characters); the chunks 1 ms apart, as a quiet
    loopback gives them, so the cases are about the faults and not about a loaded machine."""
    directory = tmp_path_factory.mktemp("gemini")
    cache: dict[str, tuple[Path, str, Interaction]] = {}

    def get(name: str) -> tuple[Path, str, Interaction]:
        if name not in cache:
            path = directory / f"{name}.yaml"
            with WireServer() as server:
                server.queue(stream(name))
                with streamtape.use_cassette(path, record_mode="all") as tape:
                    out = g.consume(server.base_url)
                assert out.error is None and [c.source for c in tape.calls] == ["recorded"]
                url = server.base_url
            (item,) = Cassette.load(path).interactions
            assert item.response is not None
            timing = tuple((n * 0.001, size) for n, (_, size) in enumerate(item.response.timing, 1))
            quiet = dataclasses.replace(item.response, timing=timing, headers_at=0.0005, end=End(timing[-1][0]))
            item = Interaction(item.request, quiet)
            Cassette([item]).save(path)
            cache[name] = (path, url, item)
        return cache[name]

    return get


@pytest.fixture
def recorded(recordings: Callable[[str], tuple[Path, str, Interaction]]) -> tuple[Path, str, Interaction]:
    return recordings("text")


def stream(name: str, **options: Any) -> Reply:
    """The stream ``name`` from a server: a recording, or ``utf8``, synthesized with multi-byte characters."""
    if name != "utf8":
        return g.stream_reply(name, **options)
    item = synthesize(text="Paris, naturellement: la capitale de la France. \U0001f5fc", model=g.MODEL,
                      prompt=g.PROMPT, provider="gemini")  # fmt: skip
    assert item.response is not None
    return Reply(headers=list(item.response.headers), events=[e.data for e in _events(item)], **options)


def _events(item: Interaction) -> list[Any]:
    from streamtape.wire import Send, expand

    return [a for a in expand(item.actions()) if isinstance(a, Send)]


class TestRecordAndReplay:
    """Recorded through the SDK (sync over httpx2, async over aiohttp), replayed byte-exact with the server gone."""

    async def test_byte_exact_sync_and_async(self, tmp_path: Path) -> None:
        for mode in ("sync", "async"):
            path = tmp_path / f"{mode}.yaml"
            with WireServer() as server:
                server.queue(g.stream_reply("function_call_parallel"))
                async with streamtape.use_cassette(path, record_mode="all"):
                    live = await run(server.base_url, mode)
                url = server.base_url
            (item,) = Cassette.load(path).interactions
            assert (
                item.response is not None
                and item.response.body == (g.DATA_DIR / "function_call_parallel.sse").read_bytes()
            )
            assert item.request.url.endswith(":streamGenerateContent?alt=sse")
            async with streamtape.use_cassette(path) as tape:
                again = await run(url, mode)
            assert [c.source for c in tape.calls] == ["replayed"] and tape.calls[0].stack == (
                "httpx2" if mode == "sync" else "aiohttp"
            )
            assert again == live and live.error is None and len(live.chunks) == 1
            assert [p["function_call"]["args"] for p in live.chunks[0]["candidates"][0]["content"]["parts"]] == [
                {"password": "mellon"},
                {"password": "radiance"},
            ]

    @pytest.mark.parametrize("name", ["http_400_api_key_invalid_stream", "http_404_model_not_found_stream",
                                      "http_429_resource_exhausted"])  # fmt: skip
    async def test_recorded_errors_replay_as_the_same_api_error(self, tmp_path: Path, name: str) -> None:
        for mode in ("sync", "async"):
            path = tmp_path / f"{mode}.yaml"
            with WireServer() as server:
                server.queue(g.error_reply(name))
                async with streamtape.use_cassette(path, record_mode="all"):
                    live = await run(server.base_url, mode)
                url = server.base_url
            async with streamtape.use_cassette(path):
                assert await run(url, mode) == live
            assert live.kind == "ClientError" and live.code == int(name[5:8])

    def test_keys_never_reach_the_cassette(self, tmp_path: Path) -> None:
        key = "AIza" + "k" * 35
        path = tmp_path / "keys.yaml"
        with WireServer() as server:
            server.queue(g.stream_reply("text"))
            with streamtape.use_cassette(path, record_mode="all"):
                sdk = g.client(server.base_url)
                sdk._api_client.api_key = key
                sdk._api_client._http_options.headers["x-goog-api-key"] = key
                list(sdk.models.generate_content_stream(model=g.MODEL, contents=g.PROMPT))
                import httpx2

                httpx2.post(f"{server.base_url}/v1beta/models/m:generateContent?key={key}&alt=sse", json={})
            assert [r.header("x-goog-api-key") for r in server.requests[:1]] == [key]
        text = path.read_text()
        assert key not in text and "x-goog-api-key" not in text.lower() and f"key={REDACTED}&alt=sse" in text
        assert [p for p in lint_file(path) if p.kind == "secret"] == []


async def run(url: str, mode: str, **options: Any) -> g.Outcome:
    return g.consume(url, **options) if mode == "sync" else await g.aconsume(url, **options)


# --- every fault, differentially ---------------------------------------------------------------------------


@dataclass(frozen=True)
class Case:
    spec: str
    real: Callable[[Case, Interaction], Any]  # a WireServer's replies, or a RawServer mode, or "refused"/"blackholed"
    expect: str  # what the app meets: sync|async exception class names ("ok": no exception)
    requests: int | tuple[int, int] = 1  # requests made (sync, async)
    attempts: int = 1
    timeout: float = PATIENT
    stream: str = "text"  # the recording the case faults

    @property
    def id(self) -> str:
        return self.spec.replace(" ", "") + ("" if self.stream == "text" else f"@{self.stream}")


def planned(case: Case, item: Interaction) -> list[Reply]:
    """Each attempt gets exactly what the fault plan makes of the recording, over the socket."""
    schedule = parse(case.spec)
    replies = []
    for attempt in range(max(case.attempts, 1)):
        plan = schedule.faults_for(attempt)
        replies.append(g.planned_reply(apply(plan, item.actions(), Context(number=attempt + 1, provider=GEMINI)))
                       if plan else stream(case.stream))  # fmt: skip
    return replies


def natural(**options: Any) -> Callable[[Case, Interaction], Any]:
    return lambda case, _: [stream(case.stream, **options)]


def raw(mode: str) -> Callable[[Case, Interaction], Any]:
    return lambda case, _: mode


def then_clean(**options: Any) -> Callable[[Case, Interaction], Any]:
    return lambda case, _: [Reply(**options), stream(case.stream)]


CASES = [
    # mid-stream: FIN, RST, silence, slowness
    Case("disconnect:after=1", natural(fin_after=1), "RemoteProtocolError|ClientPayloadError"),
    Case("disconnect:after=0", natural(fin_after=0), "RemoteProtocolError|ClientPayloadError"),
    Case("disconnect:after=3", natural(fin_after=3), "RemoteProtocolError|ClientPayloadError"),  # every event arrived
    Case("reset:after=2", natural(rst_after=2), "ReadError|ClientPayloadError"),
    Case("stall:after=1", natural(stall_after=1, stall_seconds=30), "ReadTimeout|TimeoutError", timeout=SLOW),
    Case("stall:after=1,seconds=0.05", natural(stall_after=1, stall_seconds=0.05), "ok|ok", timeout=SLOW),
    Case("delay:per_event=0.02", natural(piece_delay=0.02), "ok|ok", timeout=SLOW),
    Case("linger", planned, "ReadTimeout|TimeoutError", timeout=SLOW),
    # other bytes, exactly as the plan makes them
    Case("truncate", planned, "ok|ok"),  # no finishReason, no error: looks like success
    Case("truncate:after=1", planned, "ok|ok"),
    Case("error_event:after=1", planned, "ServerError|ServerError"),
    Case("error_event:after=0", planned, "ServerError|ServerError"),
    Case("error_event:after=3", planned, "ServerError|ServerError"),  # after the STOP chunk (vercel/ai#5217)
    Case("error_event:after=1,error_type=RESOURCE_EXHAUSTED,message=quota", planned, "ClientError|ClientError"),
    Case("error_event:after=1,then=cut", planned, "ServerError|ServerError"),
    Case(
        'error_event:after=1,data=\'{"error": {"code": 500, "message": "boom", "status": "INTERNAL"}}\'',
        planned,
        "ServerError|ServerError",
    ),  # fmt: skip
    Case("corrupt:event=2", planned, "UnknownApiResponseError|UnknownApiResponseError"),
    Case("corrupt:event=2,how=utf8", planned, "UnknownApiResponseError|UnicodeDecodeError"),
    Case("corrupt:event=1,how=truncate", planned, "UnknownApiResponseError|UnknownApiResponseError"),
    Case("duplicate:event=2", planned, "ok|ok"),
    Case("drop:event=3", planned, "ok|ok"),  # the finishReason chunk never arrives
    Case("rechunk:size=7", planned, "ok|ok"),
    Case("rechunk", planned, "ok|ok"),
    Case("delay:first_byte=0.05,per_event=0.01", planned, "ok|ok", timeout=SLOW),
    # before the headers
    Case("refuse", raw("refused"), "ConnectError|ClientConnectorError"),
    Case("disconnect", raw("fin"), "RemoteProtocolError|ServerDisconnectedError"),
    Case("reset", raw("rst"), "ReadError|ClientOSError"),
    Case("timeout", raw("silence"), "ReadTimeout|TimeoutError", timeout=SLOW),
    # async: google-genai sets only aiohttp's total deadline, which cancels the connect: a bare TimeoutError
    Case("connect_timeout", raw("blackholed"), "ConnectTimeout|TimeoutError", timeout=SLOW),
    # HTTP errors: google-genai raises ClientError / ServerError; it retries by status when told to
    Case("rate_limit", planned, "ClientError|ClientError"),
    Case("overloaded", planned, "ServerError|ServerError"),
    Case("server_error", planned, "ServerError|ServerError"),
    Case("http_error:status=400", planned, "ClientError|ClientError"),
    Case("http_error:status=404", planned, "ClientError|ClientError"),
    Case("http_error:status=429,content_type=application/json", planned, "ClientError|ClientError"),
    Case("rate_limit", planned, "ClientError|ClientError", 3, attempts=3),
    Case("http_error:status=400", planned, "ClientError|ClientError", 1, attempts=3),
    Case("rate_limit -> ok", planned, "ok|ok", 2, attempts=3),
    Case("overloaded*2 -> ok", planned, "ok|ok", 3, attempts=3),
    Case("disconnect -> ok", then_clean(before_head="fin"), "RemoteProtocolError|ok", (1, 2), attempts=3),
    Case("reset -> ok", then_clean(before_head="rst"), "ReadError|ok", (1, 2), attempts=3),
    Case("disconnect:after=1 -> ok", planned, "RemoteProtocolError|ClientPayloadError", attempts=3),
    # below the stream
    Case("bad_status", planned, "RemoteProtocolError|ClientResponseError"),
    Case("bad_chunk:after=1", planned, "RemoteProtocolError|ClientResponseError", timeout=SLOW),
    # the gap lets the app read the first chunk before the damaged one arrives, on a socket as on the tape
    Case("delay:per_event=0.02 + corrupt_gzip", planned, "DecodingError|ClientPayloadError"),
    Case("bom", planned, "UnknownApiResponseError|UnknownApiResponseError"),
    Case("json_body", planned, "ok|ok"),  # google-genai reads a whole JSON body as one chunk
    # chunk boundaries where parsers break: between each CR and its LF, inside an event
    Case("split_crlf", planned, "ok|ok"),
    Case("split:at_byte=150", planned, "ok|ok"),
    Case("split", planned, "ok|ok"),
    Case("split_utf8", planned, "ok|ok", stream="utf8"),
    Case("corrupt:event=2,how=utf8", planned, "UnknownApiResponseError|UnicodeDecodeError", stream="utf8"),
    # Gemini's own
    Case("candidate_finish", planned, "ok|ok"),
    Case("candidate_finish:after=1,reason=RECITATION", planned, "ok|ok"),
    Case("prompt_blocked", planned, "ok|ok"),
]

#: Faults no server can be the oracle for, or that Gemini has no bytes for, and where they are checked instead.
ELSEWHERE = {
    "pool_timeout": "the client's own pool: tests/test_protocol_faults.py",
    "write_timeout": "a server that never reads a large request: tests/test_protocol_faults.py",
    "ping": "Gemini has no keep-alive: test_ping_says_gemini_has_none",
}

#: streamtape mismatches, by (case id, mode): the reason. Strict xfails: remove an entry when it is fixed.
KNOWN: dict[tuple[str, str], str] = {
    ("bad_chunk:after=1", "async"): ("streamtape gap (stacks/aiohttp): a bad chunk-size line after the first chunk is "
                                     "not met by aiohttp's parser on replay, which then waits for the total timeout; "
                                     "over a socket aiohttp raises ClientResponseError (Invalid character in chunk size)"),
}  # fmt: skip


def _params() -> Any:
    for case in CASES:
        for mode in ("sync", "async"):
            reason = KNOWN.get((case.id, mode))
            marks = [pytest.mark.xfail(strict=True, reason=reason)] if reason else []
            yield pytest.param(case, mode, id=f"{case.id}-{mode}", marks=marks)


async def run_real(case: Case, item: Interaction, mode: str) -> tuple[g.Outcome, int | None]:
    real = case.real(case, item)
    options = {"timeout": case.timeout, "attempts": case.attempts}
    if real == "refused":
        return await run(f"http://127.0.0.1:{closed_port()}", mode, **options), None
    if real == "blackholed":
        with blackholed_port() as port:
            return await run(f"http://127.0.0.1:{port}", mode, **options), None
    if isinstance(real, str):
        with RawServer(real) as raw_server:  # type: ignore[arg-type]
            outcome = await run(raw_server.base_url, mode, **options)
        return outcome, raw_server.connections
    with WireServer() as server:
        server.queue(*real)
        outcome = await run(server.base_url, mode, **options)
    assert not server.errors
    return outcome, len(server.requests)


async def run_replay(case: Case, path: Path, url: str, mode: str) -> tuple[g.Outcome, int]:
    tape = streamtape.use_cassette(path, faults=case.spec)
    try:
        async with tape:
            outcome = await run(url, mode, timeout=case.timeout, attempts=case.attempts)
    except StreamtapeError as exc:  # streamtape refusing what it cannot play: compared like any outcome
        outcome = g.Outcome()
        outcome.fail(exc)
    assert all(call.source == "replayed" for call in tape.calls), tape.calls
    return outcome, len(tape.calls)


async def run_served(case: Case, path: Path, mode: str) -> tuple[g.Outcome, int]:
    with ReplayServer(Cassette.load(path), faults=case.spec, speed=1) as server:
        outcome = await run(server.base_url, mode, timeout=case.timeout, attempts=case.attempts)
    return outcome, server.request_count


def seen(outcome: g.Outcome) -> dict[str, Any]:
    return {"error": outcome.error, "code": outcome.code, "chain": outcome.chain, "text": outcome.text,
            "chunks": outcome.chunks}  # fmt: skip


@pytest.mark.parametrize(("case", "mode"), list(_params()))
async def test_fault_is_faithful(
    case: Case, mode: str, recordings: Callable[[str], tuple[Path, str, Interaction]]
) -> None:
    path, url, item = recordings(case.stream)
    real, real_requests = await run_real(case, item, mode)
    replayed, replay_requests = await run_replay(case, path, url, mode)
    headline = ("error", "code", "text")
    assert {k: seen(replayed)[k] for k in headline} == {k: seen(real)[k] for k in headline}
    assert seen(replayed) == seen(real)
    served, _ = await run_served(case, path, mode)
    assert {k: seen(served)[k] for k in headline} == {k: seen(real)[k] for k in headline}, "streamtape serve"
    assert seen(served) == seen(real), "streamtape serve"
    # ... the real side did what the case is about, and the SDK made as many requests on both sides
    expected = case.requests if isinstance(case.requests, int) else case.requests[mode == "async"]
    assert real_requests in (None, expected) and replay_requests == expected
    assert real.kind in case.expect.split("|")[mode == "async"].split("/"), real.error


@pytest.mark.parametrize(
    ("spec", "sync", "asynchronous"),
    [
        ("refuse -> ok", (2, "ok"), (2, "ok")),  # ConnectError / ClientConnectorError: transient to google-genai
        ("connect_timeout -> ok", (2, "ok"), (1, "TimeoutError")),  # async: the total deadline's bare TimeoutError
        ("timeout -> ok", (2, "ok"), (1, "TimeoutError")),  # ReadTimeout is retried; the TimeoutError is not
        ("server_error*2 -> ok", (3, "ok"), (3, "ok")),
        ("http_error:status=504 -> ok", (2, "ok"), (2, "ok")),
        ("http_error:status=502 -> ok", (2, "ok"), (2, "ok")),
        ("http_error:status=401 -> ok", (1, "ClientError"), (1, "ClientError")),
        ("http_error:status=409 -> ok", (1, "ClientError"), (1, "ClientError")),
        ("reset:after=1 -> ok", (1, "ReadError"), (1, "ClientPayloadError")),  # mid-stream: never retried
        ("error_event:after=1 -> ok", (1, "ServerError"), (1, "ServerError")),  # raised while iterating: too late
    ],
)
async def test_what_google_genai_retries(
    spec: str, sync: tuple[int, str], asynchronous: tuple[int, str] | None, recorded: tuple[Path, str, Interaction]
) -> None:
    """HttpRetryOptions retries by status (408, 429, 500, 502, 503, 504) and by connect and timeout errors, and
    only until the response is returned: nothing raised while the stream is read is retried."""
    path, url, _ = recorded
    for mode, expect in (("sync", sync), ("async", asynchronous)):
        if expect is None:
            continue
        async with streamtape.use_cassette(path, faults=spec) as tape:
            out = await run(url, mode, attempts=3, timeout=SLOW)
        assert (len(tape.calls), out.kind) == expect, (mode, out.error)


async def test_the_retry_delay_the_api_asks_for_is_ignored(recorded: tuple[Path, str, Interaction]) -> None:
    """A 429 saying ``retryDelay: 30s`` is retried after tenacity's own back-off (about 1 s, charged to the tape)."""
    path, url, _ = recorded
    for mode in ("sync", "async"):
        async with streamtape.use_cassette(path, faults="rate_limit:retry_after=30 -> ok") as tape:
            out = await run(url, mode, attempts=3, backoff=True)
        assert out.error is None and len(tape.calls) == 2, mode
        assert 0.5 <= tape.calls[1].waited <= 3.0, (mode, tape.calls[1].waited)  # 1 s and jitter, not 30 s


@pytest.mark.parametrize("spec", ["prompt_blocked", "candidate_finish"])
def test_a_stopped_answer_has_no_text(spec: str, recorded: tuple[Path, str, Interaction]) -> None:
    """No error, and the last chunk's ``text`` is ``None``: ``answer += chunk.text`` raises TypeError."""
    path, url, _ = recorded
    with streamtape.use_cassette(path, faults=spec):
        sdk = g.client(url)
        chunks = list(sdk.models.generate_content_stream(model=g.MODEL, contents=g.PROMPT))
    assert chunks[-1].text is None
    if spec == "prompt_blocked":
        assert chunks[-1].prompt_feedback.block_reason == "SAFETY" and not chunks[-1].candidates
    else:
        assert chunks[-1].candidates[0].finish_reason == "SAFETY"


@pytest.mark.parametrize(
    ("name", "edit"),
    [
        ("an SSE comment (a proxy's keep-alive)", lambda events: [events[0], b": keep-alive\r\n\r\n", *events[1:]]),
        ("an event: line", lambda events: [events[0], b"event: message\r\n" + events[1], *events[2:]]),
        ("data: without its space", lambda events: [events[0], events[1].replace(b"data: ", b"data:"), *events[2:]]),
    ],
)
async def test_google_genai_reads_only_data_lines(name: str, edit: Any, tmp_path: Path) -> None:
    """Any line but ``data: `` is read as raw JSON (how Gemini's bare error documents arrive), so valid SSE
    that Gemini itself never sends raises UnknownApiResponseError after the first chunk; replayed the same."""
    events = edit(g.split_events(TEXT))
    for mode in ("sync", "async"):
        path = tmp_path / f"{mode}.yaml"
        with WireServer() as server:
            server.queue(Reply(headers=[("content-type", "text/event-stream")], events=events))
            async with streamtape.use_cassette(path, record_mode="all"):
                live = await run(server.base_url, mode)
            url = server.base_url
        assert (live.kind, live.text) == ("UnknownApiResponseError", "The"), (name, mode)
        async with streamtape.use_cassette(path):
            assert await run(url, mode) == live


async def test_async_timeout_is_a_total_deadline(recorded: tuple[Path, str, Interaction]) -> None:
    """Over aiohttp google-genai's timeout bounds the whole stream: a slow but steady one is cut off."""
    for mode, expect in (
        ("sync", ("ok", "The capital of France is Paris.\n")),
        ("async", ("TimeoutError", "The capital of France")),
    ):
        with WireServer() as server:
            server.queue(g.stream_reply("text", piece_delay=0.2))
            live = await run(server.base_url, mode, timeout=0.5)
        assert (live.kind, live.text) == expect, mode


async def test_async_total_deadline_replayed(recorded: tuple[Path, str, Interaction]) -> None:
    path, url, _ = recorded
    out, _ = await run_replay(Case("delay:per_event=0.2", planned, "", timeout=0.5), path, url, "async")
    assert (out.kind, out.text) == ("TimeoutError", "The capital of France")


def test_ping_says_gemini_has_none(recorded: tuple[Path, str, Interaction]) -> None:
    path, url, _ = recorded
    with pytest.raises(ConfigError, match="Gemini sends no keep-alive event"):
        with streamtape.use_cassette(path, faults="ping"):
            g.consume(url)


def test_gemini_faults_refuse_other_apis() -> None:
    item = Interaction(Request("POST", "https://api.anthropic.com/v1/messages"), stream_item().response)
    with pytest.raises(ConfigError, match="a Gemini fault, but this request goes to the 'anthropic' API"):
        apply(parse("prompt_blocked").faults_for(0), item.actions(), Context())


def test_cases_cover_the_catalogue() -> None:
    """Every fault that applies to Gemini streams (all but other providers' own) has a case."""
    covered = {fault.name for case in CASES for step in parse(case.spec).steps for fault in step}
    ours = {
        name for name, cls in faults.CATALOGUE.items() if "gemini" in (getattr(cls, "providers", ()) or ("gemini",))
    }
    assert ours - covered == {"pool_timeout", "write_timeout", "ping"} == set(ELSEWHERE) - covered
