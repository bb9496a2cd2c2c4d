"""The retry layers apps put around SDKs back off in virtual time while a tape replays.

tenacity (``Retrying``, ``AsyncRetrying``, ``@retry``), backoff (``on_exception``, ``on_predicate``),
botocore's retry handler (legacy and standard modes) and google-genai each sleep through a place of their
own, which a replay-only tape points at its clock (``streamtape.intercept.retry_layers``): each wait is
charged to the next call (``Call.waited``) and, at speed 0, slept for none of it. The tests drive the real
anthropic SDK, google-genai or boto3 through a replayed "rate limited twice, then success" with waits of
seconds, and check the waits the tape recorded and that nobody slept them for real (never the wall clock).
"""

from __future__ import annotations

import asyncio
import datetime
import http.server
import json
import logging
import subprocess
import sys
import textwrap
import threading
import time
from collections.abc import Awaitable, Callable
from pathlib import Path
from typing import Any

import anthropic
import backoff
import pytest
import tenacity

import streamtape
from tests.support import builders
from tests.support.wire_server import WireServer, error_reply, transcript

pytestmark = pytest.mark.sdk

RATE_LIMITED_TWICE = "rate_limit*2 -> ok"
MATCH = ["method", "path"]
OUTCOMES = ["429, complete", "429, complete", "200, complete"]


# --- the app: one streamed Messages call, no SDK retries, wrapped in a retry layer made at import time ---


def ask(base_url: str | None = None) -> str:
    with anthropic.Anthropic(api_key="test-key", base_url=base_url, max_retries=0) as client:
        with client.messages.stream(model="m", max_tokens=5, messages=[]) as stream:
            return str(stream.get_final_message().content[0].text)


async def aask(base_url: str | None = None) -> str:
    async with anthropic.AsyncAnthropic(api_key="test-key", base_url=base_url, max_retries=0) as client:
        async with client.messages.stream(model="m", max_tokens=5, messages=[]) as stream:
            return str((await stream.get_final_message()).content[0].text)


def tenacity_options(seconds: float) -> dict[str, Any]:
    return {"wait": tenacity.wait_fixed(seconds), "stop": tenacity.stop_after_attempt(5), "reraise": True,
            "retry": tenacity.retry_if_exception_type(anthropic.RateLimitError)}  # fmt: skip


def backoff_options(seconds: float) -> dict[str, Any]:
    return {"wait_gen": backoff.constant, "exception": anthropic.RateLimitError, "interval": seconds,
            "jitter": None, "max_tries": 5}  # fmt: skip


def tenacity_loop(options: dict[str, Any]) -> Callable[[str | None], str]:
    """tenacity's iterator form, ``for attempt in Retrying(...)``: its own sleep call site."""

    def run(base_url: str | None = None) -> str:
        for attempt in tenacity.Retrying(**options):
            with attempt:
                return ask(base_url)
        raise AssertionError("unreachable")

    return run


def tenacity_async_loop(options: dict[str, Any]) -> Callable[[str | None], Awaitable[str]]:
    async def run(base_url: str | None = None) -> str:
        async for attempt in tenacity.AsyncRetrying(**options):
            with attempt:
                return await aask(base_url)
        raise AssertionError("unreachable")

    return run


def layers(seconds: float) -> dict[str, Callable[..., Any]]:
    """Each retry layer wrapped around the app the way apps write it, waiting ``seconds`` between tries."""
    return {
        "tenacity @retry": tenacity.retry(**tenacity_options(seconds))(ask),
        "tenacity @retry async": tenacity.retry(**tenacity_options(seconds))(aask),
        "tenacity Retrying loop": tenacity_loop(tenacity_options(seconds)),
        "tenacity AsyncRetrying loop": tenacity_async_loop(tenacity_options(seconds)),
        "backoff.on_exception": backoff.on_exception(**backoff_options(seconds))(ask),
        "backoff.on_exception async": backoff.on_exception(**backoff_options(seconds))(aask),
        "backoff.on_predicate": until_text(seconds)(lambda: _or_none(ask)),
        "backoff.on_predicate async": until_text(seconds)(_aor_none),
    }


def until_text(seconds: float) -> Any:
    """backoff's other decorator: retry while the result says so (here: ``None``, a rate limit)."""
    return backoff.on_predicate(backoff.constant, lambda text: text is None, interval=seconds, jitter=None,
                                max_tries=5)  # fmt: skip


def _or_none(call: Callable[[], str]) -> str | None:
    """A predicate-style API: a rate limit is ``None`` (retry), anything else the text."""
    try:
        return call()
    except anthropic.RateLimitError:
        return None


async def _aor_none() -> str | None:
    try:
        return await aask()
    except anthropic.RateLimitError:
        return None


#: made at import, long before any tape is entered (as an app's module-level decorators are)
TWO_SECONDS = layers(2.0)


def run(layer: Callable[..., Any]) -> Any:
    result = layer()
    return asyncio.run(result) if asyncio.iscoroutine(result) else result


@pytest.fixture
def slept(monkeypatch: pytest.MonkeyPatch) -> list[float]:
    """Every real ``time.sleep`` and ``asyncio.sleep`` during the test: where an unshimmed retry layer's
    wait would show up (the waits still happen, so a shim that leaks costs the test its seconds)."""
    seen: list[float] = []
    real_sleep, real_asleep = time.sleep, asyncio.sleep

    def sleep(seconds: float) -> None:
        seen.append(seconds)
        real_sleep(seconds)

    async def asleep(delay: float, result: Any = None) -> Any:
        seen.append(delay)
        return await real_asleep(delay, result)

    monkeypatch.setattr(time, "sleep", sleep)
    monkeypatch.setattr(asyncio, "sleep", asleep)
    return seen


@pytest.fixture
def cassette(tmp_path: Path) -> Path:
    return builders.save(tmp_path / "c.yaml")  # the text_basic stream, answering POST /v1/messages


# --- replay: virtual waits, charged to the calls ---------------------------------------------------------


@pytest.mark.parametrize("name", list(TWO_SECONDS))
def test_a_retry_layer_made_before_the_tape_backs_off_in_virtual_time(name: str, cassette: Path,
                                                                      slept: list[float]) -> None:  # fmt: skip
    with streamtape.use_cassette(cassette, faults=RATE_LIMITED_TWICE, match_on=MATCH) as tape:
        assert run(TWO_SECONDS[name]) == "Hello"
    assert [call.outcome for call in tape.calls] == OUTCOMES
    assert [call.waited for call in tape.calls] == [0.0, 2.0, 2.0]  # each wait, on the call it preceded
    assert tape.clock.now() >= 4.0 and [w for w in tape.clock.waits if w == 2.0] == [2.0, 2.0]  # type: ignore[attr-defined]
    assert [s for s in slept if s >= 1] == []  # and nobody slept them


def test_the_wait_is_reported_in_the_call_log(cassette: Path) -> None:
    with streamtape.use_cassette(cassette, faults=RATE_LIMITED_TWICE, match_on=MATCH) as tape:
        run(TWO_SECONDS["tenacity @retry"])
    assert "after 2s back-off" in repr(tape.calls[1]) and "back-off" not in repr(tape.calls[0])


async def test_litellms_async_retry_is_virtual(cassette: Path, slept: list[float]) -> None:
    """LiteLLM's ``acompletion(num_retries=N)``: the first attempt fails outside any retry layer, then
    ``acompletion_with_retries`` builds a ``tenacity.AsyncRetrying`` per call with the default sleep and,
    after a rate limit, ``wait_exponential(multiplier=1, max=10)`` (litellm/main.py). That is the ~1 s a
    replayed ``rate_limit*2 -> ok`` slept for real; now it is virtual."""
    with streamtape.use_cassette(cassette, faults=RATE_LIMITED_TWICE, match_on=MATCH) as tape:
        with pytest.raises(anthropic.RateLimitError):
            await aask()
        retryer = tenacity.AsyncRetrying(wait=tenacity.wait_exponential(multiplier=1, max=10),
                                         stop=tenacity.stop_after_attempt(2), reraise=True)  # fmt: skip
        assert await retryer(aask) == "Hello"
    assert [call.waited for call in tape.calls] == [0.0, 0.0, 1.0]
    assert [s for s in slept if s >= 1] == []


@pytest.mark.parametrize("asynchronous", [False, True], ids=["sync", "async"])
def test_google_genais_retries_are_virtual(asynchronous: bool, tmp_path: Path, slept: list[float]) -> None:
    """google-genai retries with tenacity objects its client makes (here before the tape), with the
    default sleep; the async client goes over aiohttp."""
    genai = pytest.importorskip("google.genai")
    url = "https://generativelanguage.googleapis.com/v1/models/gemini-2.0-flash:generateContent"
    answer = {"candidates": [{"content": {"parts": [{"text": "Hello"}], "role": "model"}, "finishReason": "STOP"}]}
    path = builders.save(tmp_path / "g.yaml", url, body=json.dumps(answer).encode(),
                         headers=(("content-type", "application/json"),))  # fmt: skip
    retry = genai.types.HttpRetryOptions(attempts=3, initial_delay=2, exp_base=2, jitter=0)
    client = genai.Client(api_key="test-key", http_options=genai.types.HttpOptions(retry_options=retry))
    faults = streamtape.faults.parse(RATE_LIMITED_TWICE, when="generateContent")
    with streamtape.use_cassette(path, faults=faults, match_on=MATCH) as tape:
        if asynchronous:
            reply = asyncio.run(client.aio.models.generate_content(model="gemini-2.0-flash", contents="hi"))
        else:
            reply = client.models.generate_content(model="gemini-2.0-flash", contents="hi")
    assert reply.text == "Hello"
    assert [call.waited for call in tape.calls] == [0.0, 2.0, 4.0]  # wait_exponential_jitter, no jitter
    assert [s for s in slept if s >= 1] == []


@pytest.mark.parametrize("fault", ["refuse", "disconnect"])
def test_google_genais_own_aiohttp_retry_is_virtual(fault: str, tmp_path: Path, slept: list[float]) -> None:
    """Without retry options, google-genai's async client retries an aiohttp connection error once by
    itself, after ``asyncio.sleep(1 + randint(0, 9))``: up to 10 s of real sleep per replay before."""
    genai = pytest.importorskip("google.genai")
    pytest.importorskip("aiohttp")
    url = "https://generativelanguage.googleapis.com/v1/models/gemini-2.0-flash:generateContent"
    answer = {"candidates": [{"content": {"parts": [{"text": "Hello"}], "role": "model"}, "finishReason": "STOP"}]}
    path = builders.save(tmp_path / "g.yaml", url, body=json.dumps(answer).encode(),
                         headers=(("content-type", "application/json"),))  # fmt: skip
    client = genai.Client(api_key="test-key")
    with streamtape.use_cassette(path, faults=streamtape.faults.parse(f"{fault} -> ok", when="generateContent"),
                                 match_on=MATCH) as tape:  # fmt: skip
        reply = asyncio.run(client.aio.models.generate_content(model="gemini-2.0-flash", contents="hi"))
    assert reply.text == "Hello" and [call.stack for call in tape.calls] == ["aiohttp", "aiohttp"]
    waited = tape.calls[1].waited
    assert tape.calls[0].waited == 0 and 1 <= waited <= 10 and waited == int(waited)
    assert waited not in slept


# --- giving up by time: the retry layer reads the tape's time too ----------------------------------------


@pytest.mark.parametrize(
    ("name", "waits"),
    [
        # tries at 0, 2, 4 and 6 s; after the one at 6 s, 6 >= 5: stop (tenacity checks after a failure)
        ("tenacity", [0.0, 2.0, 2.0, 2.0]),
        ("tenacity async", [0.0, 2.0, 2.0, 2.0]),
        # tries at 0, 2 and 4 s, then the wait is cut to the 1 s left; at 5 s, 5 >= 5: give up
        ("backoff", [0.0, 2.0, 2.0, 1.0]),
        ("backoff async", [0.0, 2.0, 2.0, 1.0]),
    ],
)
def test_a_layer_that_gives_up_after_five_seconds_gives_up_after_five_virtual_seconds(
    name: str, waits: list[float], cassette: Path, slept: list[float]
) -> None:
    """Rate limited on every attempt: ``stop_after_delay(5)`` / ``max_time=5`` give up as in production,
    where with real time standing still they would retry forever."""
    app = aask if name.endswith("async") else ask
    if name.startswith("tenacity"):
        layer = tenacity.retry(wait=tenacity.wait_fixed(2), stop=tenacity.stop_after_delay(5), reraise=True)(app)
    else:
        layer = backoff.on_exception(backoff.constant, anthropic.RateLimitError, interval=2, jitter=None,
                                     max_time=5)(app)  # fmt: skip
    with streamtape.use_cassette(cassette, faults="rate_limit", match_on=MATCH) as tape:
        with pytest.raises(anthropic.RateLimitError):
            run(layer)
    assert [call.waited for call in tape.calls] == pytest.approx(waits, abs=1e-3)
    assert [s for s in slept if s >= 1] == []


# --- what is left alone ----------------------------------------------------------------------------------


def test_a_sleep_the_app_passes_to_tenacity_is_the_apps(cassette: Path) -> None:
    mine: list[float] = []
    retrying = tenacity.Retrying(sleep=mine.append, **tenacity_options(2.0))
    with streamtape.use_cassette(cassette, faults=RATE_LIMITED_TWICE, match_on=MATCH) as tape:
        assert retrying(ask) == "Hello"
    assert mine == [2.0, 2.0]  # the app's own sleep got every wait,
    assert [call.waited for call in tape.calls] == [0.0, 0.0, 0.0] and tape.clock.now() < 2  # the tape none


async def test_an_async_sleep_the_app_passes_to_tenacity_is_the_apps(cassette: Path) -> None:
    mine: list[float] = []

    async def my_sleep(seconds: float) -> None:
        mine.append(seconds)

    decorated = tenacity.retry(sleep=my_sleep, **tenacity_options(2.0))(aask)
    with streamtape.use_cassette(cassette, faults=RATE_LIMITED_TWICE, match_on=MATCH) as tape:
        assert await decorated() == "Hello"
        assert await tenacity.AsyncRetrying(sleep=my_sleep, **tenacity_options(3.0))(aask) == "Hello"
    assert mine == [2.0, 2.0]  # the second call replays the last answer: a success at once
    assert [call.waited for call in tape.calls] == [0.0, 0.0, 0.0, 0.0] and tape.clock.now() < 2


@pytest.mark.parametrize("name", ["tenacity @retry", "tenacity @retry async", "backoff.on_exception",
                                  "backoff.on_exception async"])  # fmt: skip
def test_recording_waits_in_real_time_and_charges_nothing(name: str, tmp_path: Path, slept: list[float]) -> None:
    """Online, the real API is on the other end: the layer's back-off is real, as without a tape."""
    layer = layers(0.05)[name]
    with WireServer() as server:
        server.queue(error_reply("http_429_rate_limit"), error_reply("http_429_rate_limit"), transcript("text_basic"))
        with streamtape.use_cassette(tmp_path / "live.yaml", record_mode="once", record_failures=True) as tape:
            result = layer(server.base_url)
            assert (asyncio.run(result) if asyncio.iscoroutine(result) else result) == "Hello"
    assert [call.source for call in tape.calls] == ["recorded"] * 3
    assert [call.waited for call in tape.calls] == [0.0, 0.0, 0.0] and tape.clock.now() == 0  # untouched
    assert slept.count(0.05) == 2  # both waits really slept


def test_the_shims_are_in_place_only_while_a_tape_is_entered(cassette: Path) -> None:
    import backoff._async
    import backoff._sync
    import botocore.endpoint
    import tenacity.nap

    def originals() -> list[bool]:
        return [tenacity.nap.time is time, tenacity.__dict__["time"] is time, "sleep" not in vars(tenacity.AsyncRetrying),
                backoff._sync.time is time, backoff._sync.datetime is datetime, backoff._async.asyncio is asyncio,
                backoff._async.datetime is datetime, botocore.endpoint.time is time]  # fmt: skip

    assert all(originals())
    with streamtape.use_cassette(cassette):
        assert not any(originals())
    assert all(originals())


def test_retry_layers_imported_after_the_tape_was_entered_are_virtual_too(cassette: Path) -> None:
    """A fresh interpreter: the tape is entered first, then the app imports the SDK and its retry layers
    (the import hook shims each as it is imported)."""
    script = f"""
        import streamtape
        with streamtape.use_cassette({str(cassette)!r}, faults={RATE_LIMITED_TWICE!r}, match_on={MATCH!r}) as tape:
            import anthropic, backoff, botocore.endpoint, tenacity, time
            assert botocore.endpoint.time is not time
            client = anthropic.Anthropic(api_key="k", max_retries=0)

            @backoff.on_exception(backoff.constant, anthropic.RateLimitError, interval=2, jitter=None, max_tries=2)
            def once():
                with client.messages.stream(model="m", max_tokens=5, messages=[]) as stream:
                    return stream.get_final_message().content[0].text

            retrying = tenacity.Retrying(wait=tenacity.wait_fixed(3), stop=tenacity.stop_after_attempt(2),
                                         retry=tenacity.retry_if_exception_type(anthropic.RateLimitError))
            assert retrying(once) == "Hello"
        print([call.waited for call in tape.calls])
    """
    done = subprocess.run([sys.executable, "-c", textwrap.dedent(script)], capture_output=True, text=True,
                          timeout=120, cwd=Path(__file__).resolve().parent.parent)  # fmt: skip
    assert done.returncode == 0, done.stderr
    # backoff's 2 s between the first two tries, tenacity's 3 s before its second go
    assert done.stdout.strip() == "[0.0, 2.0, 3.0]"


# --- boto3: botocore's retry handler ----------------------------------------------------------------------

OK_BODY = {"output": {"message": {"role": "assistant", "content": [{"text": "Hello"}]}}, "stopReason": "end_turn",
           "usage": {"inputTokens": 1, "outputTokens": 1, "totalTokens": 2}, "metrics": {"latencyMs": 1}}  # fmt: skip
REPLIES = [
    (503, "ServiceUnavailableException", {"message": "Bedrock is unable to process your request."}),
    (429, "ThrottlingException", {"message": "Too many requests, please wait before trying again."}),
    (200, None, OK_BODY),
]


class _Bedrock(http.server.BaseHTTPRequestHandler):
    """``POST /model/{id}/converse`` answered from the server's queue, JSON with a Content-Length."""

    protocol_version = "HTTP/1.1"

    def do_POST(self) -> None:  # noqa: N802 - http.server's naming
        self.rfile.read(int(self.headers.get("content-length", 0)))
        status, error, body = self.server.replies.pop(0)  # type: ignore[attr-defined]
        data = json.dumps(body).encode()
        self.send_response(status)
        self.send_header("content-type", "application/json")
        if error:
            self.send_header("x-amzn-ErrorType", error)
        self.send_header("content-length", str(len(data)))
        self.end_headers()
        self.wfile.write(data)

    def log_message(self, *args: Any) -> None:
        pass


def bedrock(endpoint: str, mode: str, attempts: int) -> Any:
    import boto3
    from botocore.config import Config

    config = Config(retries={"mode": mode, "total_max_attempts": attempts})
    return boto3.client("bedrock-runtime", endpoint_url=endpoint, region_name="us-east-1", aws_access_key_id="test",
                        aws_secret_access_key="test", config=config)  # fmt: skip


def converse(client: Any) -> Any:
    return client.converse(modelId="m", messages=[{"role": "user", "content": [{"text": "hi"}]}])


@pytest.fixture(scope="module")
def bedrock_tape(tmp_path_factory: pytest.TempPathFactory) -> tuple[Path, str]:
    """A 503, a throttling error and a success, recorded from a server on 127.0.0.1 one call each (no
    retries while recording); the server is gone afterwards. Returns the cassette and the endpoint."""
    botocore = pytest.importorskip("botocore.exceptions")
    path = tmp_path_factory.mktemp("bedrock") / "converse.yaml"
    server = http.server.ThreadingHTTPServer(("127.0.0.1", 0), _Bedrock)
    server.replies = list(REPLIES)  # type: ignore[attr-defined]
    thread = threading.Thread(target=server.serve_forever, daemon=True)
    thread.start()
    endpoint = f"http://127.0.0.1:{server.server_address[1]}"
    try:
        with streamtape.use_cassette(path, record_mode="once", record_failures=True) as tape:
            client = bedrock(endpoint, "standard", 1)
            for _status, error, _body in REPLIES:
                if error is None:
                    assert converse(client)["output"]["message"]["content"] == [{"text": "Hello"}]
                else:
                    with pytest.raises(botocore.ClientError, match=error):
                        converse(client)
        assert [call.outcome for call in tape.calls] == ["503, complete", "429, complete", "200, complete"]
    finally:
        server.shutdown()
        server.server_close()
    return path, endpoint


@pytest.mark.parametrize("mode", ["standard", "legacy"])
def test_boto3_retries_back_off_in_virtual_time(mode: str, bedrock_tape: tuple[Path, str], slept: list[float],
                                               caplog: pytest.LogCaptureFixture) -> None:  # fmt: skip
    """botocore computes each delay (jittered) in its retry handler and sleeps it in
    ``Endpoint._needs_retry``; replayed, each delay is charged to the call it preceded and slept for
    none of it."""
    path, endpoint = bedrock_tape
    caplog.set_level(logging.DEBUG, logger="botocore.endpoint")
    with streamtape.use_cassette(path, match_on=MATCH) as tape:
        assert converse(bedrock(endpoint, mode, 5))["output"]["message"]["content"] == [{"text": "Hello"}]
    delays = [record.args[0] for record in caplog.records if record.msg.startswith("Response received to retry")]  # type: ignore[index]
    assert [call.outcome for call in tape.calls] == ["503, complete", "429, complete", "200, complete"]
    assert len(delays) == 2 and 0 < delays[0] <= 1 and 0 < delays[1] <= 2  # base 2, full jitter
    assert [call.waited for call in tape.calls] == [0.0, *delays]
    assert not set(delays) & set(slept)  # nobody slept them


def test_a_shim_stands_in_for_the_sleep_and_nothing_else(cassette: Path) -> None:
    """Everything else a module uses from the name a shim stands in for is the real thing."""
    import backoff._async
    import backoff._sync
    import tenacity.nap

    with streamtape.use_cassette(cassette):
        assert tenacity.nap.time.monotonic is time.monotonic
        assert backoff._async.asyncio.iscoroutinefunction is asyncio.iscoroutinefunction
        assert backoff._sync.datetime.timedelta is datetime.timedelta
