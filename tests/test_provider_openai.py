"""OpenAI's Chat Completions and Responses, first-class: recorded from a local server speaking the real
wire format (tests/data/openai, copies of real recordings), replayed byte-exact with the server gone,
and every fault replayed differentially against the same failure from a real server.

The differential cases run two ways and compare everything the app can observe through the openai SDK
(``tests.support.openai_sdk``): REAL, a server on 127.0.0.1 misbehaving at the socket level (a true
FIN, an RST, silence, refused or never-accepted connections) or sending over the socket exactly the
bytes streamtape's fault plan makes of the recording (``streamtape.faults.apply`` with the OpenAI
provider); REPLAY, streamtape's in-process replayer with the clean recording and ``faults=SPEC``.
Compared: the exception's class, message, ``__cause__`` and the whole chain (``sdk.chain``), the HTTP
status, the text the app printed, every chunk or event the SDK yielded, the final completion or
response (the helpers' ``get_final_*``), the requests made and how often the SDK backed off. Sync
(``OpenAI``) and async (``AsyncOpenAI``); ``create(stream=True)`` everywhere, the ``stream()``
helpers where a case says so.

The SDK's retry back-off would sleep real seconds on the REAL side only (a tape makes it virtual):
there ``openai._base_client``'s ``time`` / ``anyio`` sleep at once (and note the wait).
"""

from __future__ import annotations

import dataclasses
import json
import re
import ssl
import subprocess
import sys
from collections.abc import Callable, Iterator
from contextlib import contextmanager
from dataclasses import dataclass, field
from pathlib import Path
from types import ModuleType
from typing import Any

import httpx2
import openai
import pytest
from openai._models import construct_type

import streamtape
from streamtape import Cassette, ConfigError, Interaction, faults, providers
from streamtape.faults import Context, apply, parse
from streamtape.lint import lint_file
from streamtape.providers.openai import CHAT, RESPONSES
from streamtape.report import describe_interaction
from streamtape.sse import parse_events
from streamtape.wire import Action, Cut, End, Respond, Send, Stall, expand
from streamtape.wire import Raw as NotHttp
from tests.support import openai_sdk as oa
from tests.support.raw_server import RawServer, blackholed_port, closed_port
from tests.support.wire_server import Reply, WireServer

pytestmark = pytest.mark.sdk

ATTEMPTS = 3  # max_retries=2
QUICK = 0.15  # the read / connect timeout of the cases where one must fire
PATIENT = 5.0  # everywhere else: only a guard against a hang
FOREVER = 30.0  # a "stall forever" on the real side; the server's stop() ends it at once
MAIN = {"chat": "text_with_usage", "responses": "text"}  # 14 and 18 events; the text delta 4 is event 5

#: One TLS context for every client: building one per client (the SDK's default) costs ~20 ms.
_TLS = ssl.create_default_context()


# --- the real side ----------------------------------------------------------------------------------


@dataclass(frozen=True)
class Wire:
    replies: list[Reply]


@dataclass(frozen=True)
class Raw:
    mode: str  # fin / rst / silence, before any response


@dataclass(frozen=True)
class Refused:
    pass


@dataclass(frozen=True)
class Blackholed:
    pass


Real = Wire | Raw | Refused | Blackholed


@dataclass(frozen=True)
class Case:
    spec: str
    real: Callable[[Case, Interaction], Real]
    #: what the app sees on the real side, per API (``api:style`` where a style differs): an exception
    #: class (last dotted part, or the cause's), None for success, "*" for anything; a missing API:
    #: the case is not run for it
    expect: dict[str, str | None]
    requests: int = 1
    name: str | None = None  # the recording; default the API's MAIN
    timeout: float = PATIENT
    styles: tuple[str, ...] = ("create",)

    def recording(self, api: str) -> str:
        return self.name or MAIN[api]


def natural(**reply: Any) -> Callable[[Case, Interaction], Real]:
    """The recording served with a WireServer misbehaviour (fin_after, rst_after, stall_after, ...)."""
    return lambda case, item: Wire([_transcript(item, **reply)])


def raw(mode: str) -> Callable[[Case, Interaction], Real]:
    return lambda case, item: Raw(mode)


def refused(case: Case, item: Interaction) -> Real:
    return Refused()


def blackholed(case: Case, item: Interaction) -> Real:
    return Blackholed()


def planned(case: Case, item: Interaction) -> Real:
    """Each attempt gets exactly what the fault plan makes of the recording, over the socket; a clean
    attempt the recording itself. The plan asks the request's provider, as a tape does."""
    schedule = parse(case.spec)
    provider = providers.provider_for(item.request.method, item.request.url, item.request.headers)
    replies = []
    for attempt in range(ATTEMPTS):
        steps = schedule.faults_for(attempt)
        if not steps:
            replies.append(_transcript(item))
            continue
        replies.append(_reply(apply(steps, item.actions(), Context(number=attempt + 1, provider=provider))))
    return Wire(replies)


def _transcript(item: Interaction, **reply: Any) -> Reply:
    """The recorded response, one piece per recorded chunk, chunked."""
    response = item.response
    assert response is not None
    pieces, start = [], 0
    for _, size in response.timing:
        pieces.append(response.body[start : start + size])
        start += size
    headers = [(k, v) for k, v in response.headers if k.lower() not in ("content-length", "transfer-encoding")]
    return Reply(status=response.status, reason=response.reason, headers=headers, events=pieces, **reply)


def _reply(actions: list[Action]) -> Reply:
    """A WireServer reply playing these actions on a socket: the Respond's head, one piece per Send
    when due, then the end: clean, FIN, RST, endless silence, or bytes that are not HTTP."""
    respond, *body = list(expand(actions))
    if isinstance(respond, NotHttp):
        return Reply(raw=respond.data, raw_after=-1)
    assert isinstance(respond, Respond), actions
    sends = [a for a in body if isinstance(a, Send)]
    (ending,) = [a for a in body if not isinstance(a, Send)]
    delays, now = [], respond.at
    for action in [*sends, ending]:
        due = max(action.at, now)
        delays.append(due - now if due - now >= 0.005 else 0.0)
        now = due
    fault: dict[str, Any] = {}
    if isinstance(ending, Cut):
        fault = {{"RemoteProtocolError": "fin_after", "ReadError": "rst_after"}[ending.error]: len(sends)}
    elif isinstance(ending, Stall):
        fault = {"stall_after": len(sends), "stall_seconds": FOREVER}
    elif isinstance(ending, NotHttp):
        fault = {"raw": ending.data, "raw_after": len(sends)}
    headers = {name.lower(): value for name, value in respond.headers}
    framing = "content-length" if "content-length" in headers and isinstance(ending, End) else "chunked"
    if "content-encoding" in headers:
        fault["content_encoding"] = headers["content-encoding"]
    return Reply(status=respond.status, reason=respond.reason, headers=list(respond.headers),
                 events=[a.data for a in sends], framing=framing, piece_delays=delays,  # type: ignore[arg-type]
                 **fault)  # fmt: skip


class _Clock:
    """The SDK's ``time`` / ``anyio`` on the real side: everything real but ``sleep``."""

    def __init__(self, real: Any) -> None:
        self._real = real
        self.sleeps: list[float] = []

    def __getattr__(self, name: str) -> Any:
        return getattr(self._real, name)

    def sleep(self, seconds: float) -> None:
        self.sleeps.append(seconds)


class _AsyncClock(_Clock):
    async def sleep(self, seconds: float) -> None:  # type: ignore[override]
        self.sleeps.append(seconds)
        await self._real.sleep(0)


@dataclass
class RealRun:
    attempts: int = 0
    sleeps: list[float] = field(default_factory=list)


@contextmanager
def real_side() -> Iterator[RealRun]:
    """No back-off sleeps in the SDK (noted instead), and a count of the requests its transport sends."""
    run = RealRun()
    sync_send, async_send = httpx2.HTTPTransport.handle_request, httpx2.AsyncHTTPTransport.handle_async_request

    def handle_request(self: Any, request: Any) -> Any:
        run.attempts += 1
        return sync_send(self, request)

    async def handle_async_request(self: Any, request: Any) -> Any:
        run.attempts += 1
        return await async_send(self, request)

    base = openai._base_client
    assert isinstance(base.time, ModuleType), "a tape is entered: the real side must run without one"
    clock, async_clock = _Clock(base.time), _AsyncClock(base.anyio)
    with pytest.MonkeyPatch.context() as patch:
        patch.setattr(base, "time", clock)
        patch.setattr(base, "anyio", async_clock)
        patch.setattr(httpx2.HTTPTransport, "handle_request", handle_request)
        patch.setattr(httpx2.AsyncHTTPTransport, "handle_async_request", handle_async_request)
        try:
            yield run
        finally:
            run.sleeps = [*clock.sleeps, *async_clock.sleeps]


async def _run(url: str, api: str, style: str, mode: str, timeout: float) -> Any:
    options: dict[str, Any] = {"max_retries": 2, "timeout": timeout}
    if mode == "sync":
        return oa.consume(url, api, style, options={**options, "http_client": openai.DefaultHttpxClient(verify=_TLS)})
    http_client = openai.DefaultAsyncHttpxClient(verify=_TLS)
    return await oa.aconsume(url, api, style, options={**options, "http_client": http_client})


# --- the recordings -----------------------------------------------------------------------------------


@dataclass(frozen=True)
class Recorded:
    path: Path
    url: str
    interaction: Interaction


def _record(directory: Path, api: str, name: str) -> Recorded:
    """The real recording served by a WireServer and recorded through the SDK (create style), the server
    stopped; its chunks kept with the timing a quiet loopback gives (1 ms apart), so a loaded machine
    cannot push a recorded gap to the quick cases' read timeout."""
    path = directory / f"{api}-{name}.yaml"
    with WireServer() as server:
        server.queue(oa.transcript(api, name))
        with streamtape.use_cassette(path, record_mode="all") as tape:
            outcome = oa.consume(server.base_url, api, "create")
        url = server.base_url
    assert [c.source for c in tape.calls] == ["recorded"], tape.calls
    (item,) = Cassette.load(path).interactions
    assert item.response is not None and item.response.body == oa.path(api, name, ".sse").read_bytes()
    assert outcome.error is None or api == "compatible", outcome.error
    timing = tuple((n * 0.001, size) for n, (_, size) in enumerate(item.response.timing, 1))
    quiet = dataclasses.replace(item.response, timing=timing, headers_at=0.0005, end=End(timing[-1][0]))
    item = Interaction(item.request, quiet)
    Cassette([item]).save(path)
    return Recorded(path, url, item)


@pytest.fixture(scope="module")
def recordings(tmp_path_factory: pytest.TempPathFactory) -> Callable[[str, str], Recorded]:
    cache: dict[tuple[str, str], Recorded] = {}
    directory = tmp_path_factory.mktemp("openai")

    def get(api: str, name: str) -> Recorded:
        if (api, name) not in cache:
            cache[(api, name)] = _record(directory, api, name)
        return cache[(api, name)]

    return get


# --- the cases ----------------------------------------------------------------------------------------

BOTH = ("create", "stream")
CONNECTION = "APIConnectionError"
TIMEOUT = "APITimeoutError"

CASES = [
    # before any response: the SDK retries each, twice
    Case("refuse", refused, {"chat": CONNECTION, "responses": CONNECTION}, ATTEMPTS),
    Case("reset", raw("rst"), {"chat": CONNECTION, "responses": CONNECTION}, ATTEMPTS),
    Case("disconnect", raw("fin"), {"chat": CONNECTION, "responses": CONNECTION}, ATTEMPTS),
    # (the two that take three read / connect timeouts run once: no byte of the API is involved)
    Case("timeout", raw("silence"), {"chat": TIMEOUT}, ATTEMPTS, timeout=QUICK),
    Case("connect_timeout", blackholed, {"responses": TIMEOUT}, ATTEMPTS, timeout=QUICK),
    Case("bad_status", planned, {"chat": CONNECTION, "responses": CONNECTION}, ATTEMPTS),
    # the API's own errors, from the OpenAI provider: retried as the SDK retries them
    Case("rate_limit", planned, {"chat": "RateLimitError", "responses": "RateLimitError"}, ATTEMPTS),
    Case("rate_limit:retry_after=2", planned, {"chat": "RateLimitError"}, ATTEMPTS),
    Case("rate_limit:should_retry=false", planned, {"chat": "RateLimitError", "responses": "RateLimitError"}),
    Case("rate_limit:retry_after_ms=1 -> ok", planned, {"chat": None, "responses": None}, 2),
    Case("overloaded", planned, {"chat": "InternalServerError", "responses": "InternalServerError"}, ATTEMPTS),
    Case("server_error", planned, {"chat": "InternalServerError", "responses": "InternalServerError"}, ATTEMPTS),
    Case("server_error -> ok", planned, {"chat": None, "responses": None}, 2),
    Case("http_error:status=400", planned, {"chat": "BadRequestError", "responses": "BadRequestError"}),
    Case("http_error:status=401", planned, {"chat": "AuthenticationError"}),
    Case("http_error:status=409", planned, {"responses": "ConflictError"}, ATTEMPTS),
    Case("http_error:status=400,should_retry=true", planned, {"chat": "BadRequestError"}, ATTEMPTS),
    # mid-stream: transport errors are wrapped, and never retried
    Case("disconnect:after=4", natural(fin_after=4), {"chat": CONNECTION, "responses": CONNECTION}, styles=BOTH),
    Case("disconnect:after=0", natural(fin_after=0), {"chat": CONNECTION, "responses": CONNECTION}),
    Case("disconnect:after=14", natural(fin_after=14), {"chat": None}, styles=BOTH),  # after [DONE]: never read
    Case("reset:after=4", natural(rst_after=4), {"chat": CONNECTION, "responses": CONNECTION}),
    Case("stall:after=4", natural(stall_after=4, stall_seconds=FOREVER), {"chat": TIMEOUT, "responses": TIMEOUT},
         timeout=QUICK),  # fmt: skip
    Case("stall:after=4,seconds=0.05", natural(stall_after=4, stall_seconds=0.05), {"chat": None, "responses": None},
         timeout=0.3),  # fmt: skip
    Case("delay:per_event=0.01", natural(piece_delay=0.01), {"chat": None, "responses": None}, timeout=0.3),
    Case("bad_chunk:after=3", planned, {"chat": CONNECTION, "responses": CONNECTION}),
    Case("linger", planned, {"chat": None, "responses": TIMEOUT}, timeout=QUICK, styles=BOTH),  # [DONE] ends it
    # the provider's in-stream error: raised by Chat Completions, yielded by Responses
    Case("error_event:after=4", planned, {"chat": "APIError", "responses": None, "responses:stream": "RuntimeError"},
         styles=BOTH),  # fmt: skip
    Case("error_event:after=0", planned, {"chat": "APIError", "responses": None}),
    Case("error_event:after=4,then=cut", planned, {"chat": "APIError", "responses": CONNECTION}),
    Case("error_event:after=4,error_type=invalid_request_error,message=Tool call validation failed", planned,
         {"chat": "APIError"}),  # fmt: skip
    # clean ends that look like success
    Case("truncate", planned, {"chat": None, "responses": None, "responses:stream": "RuntimeError"}, styles=BOTH),
    Case("truncate:after=4", planned, {"chat": None, "responses": None}),
    Case("done_early", planned, {"chat": None}, styles=BOTH),
    Case("done_early:after=4", planned, {"chat": None}),
    Case("response_failed", planned, {"responses": None, "responses:stream": "RuntimeError"}, styles=BOTH),
    Case("response_failed:after=6,code=rate_limit_exceeded,message=slow down", planned, {"responses": None}),
    # the bytes themselves
    Case("corrupt:event=4", planned, {"chat": "JSONDecodeError", "responses": "JSONDecodeError"}),
    Case("corrupt:event=4,how=utf8", planned, {"chat": "UnicodeDecodeError", "responses": "UnicodeDecodeError"}),
    Case("corrupt:event=14", planned, {"chat": "JSONDecodeError"}),  # [DONE] damaged
    Case("duplicate:event=5", planned, {"chat": None, "responses": None}),
    Case("drop:event=5", planned, {"chat": None, "responses": None}),
    Case("drop:event=1", planned, {"chat": None, "responses": None, "responses:stream": "RuntimeError"},
         styles=BOTH),  # fmt: skip
    Case("ping:every=2", planned, {"chat": None, "responses": None}),
    Case("rechunk:size=7", planned, {"chat": None, "responses": None}),
    Case("bom", planned, {"chat": None, "responses": None}),
    Case("corrupt_gzip", planned, {"chat": "DecodingError", "responses": "DecodingError"}),
    Case("json_body", planned, {"chat": None, "chat:stream": "AssertionError", "responses": None,
                                "responses:stream": "RuntimeError"}, styles=BOTH),  # fmt: skip
    # a Responses stream whose events are numbered (2025-10): inserted events follow the numbering
    Case("error_event:after=4", planned, {"responses": None}, name="incomplete_max_output_tokens"),
    Case("response_failed", planned, {"responses": None}, name="incomplete_max_output_tokens"),
    Case("drop:event=6", planned, {"responses": None}, name="incomplete_max_output_tokens"),
]

#: Faults no server can be the oracle for (tests/test_protocol_faults.py checks their real counterpart).
CLIENT_SIDE = {"pool_timeout", "write_timeout"}


def _params() -> Iterator[Any]:
    for case in CASES:
        for api in ("chat", "responses"):
            if api not in case.expect:  # "api:style" keys say what differs in a style
                continue
            for style in case.styles:
                for mode in ("sync", "async"):
                    ident = f"{api}-{case.spec.replace(' ', '')}{'@' + case.name if case.name else ''}-{style}-{mode}"
                    yield pytest.param(case, api, style, mode, id=ident)


async def run_real(case: Case, api: str, recorded: Recorded, style: str, mode: str) -> tuple[Any, int, list[float]]:
    real = case.real(case, recorded.interaction)
    with real_side() as run:
        if isinstance(real, Refused):
            outcome = await _run(f"http://127.0.0.1:{closed_port()}", api, style, mode, case.timeout)
        elif isinstance(real, Blackholed):
            with blackholed_port() as port:
                outcome = await _run(f"http://127.0.0.1:{port}", api, style, mode, case.timeout)
        elif isinstance(real, Raw):
            with RawServer(real.mode) as raw_server:  # type: ignore[arg-type]
                outcome = await _run(raw_server.base_url, api, style, mode, case.timeout)
            assert raw_server.connections == run.attempts
        else:
            with WireServer() as server:
                server.queue(*real.replies)
                outcome = await _run(server.base_url, api, style, mode, case.timeout)
            assert not server.errors and len(server.requests) == run.attempts
    return outcome, run.attempts, run.sleeps


async def run_replay(case: Case, api: str, recorded: Recorded, style: str, mode: str) -> tuple[Any, int, list[float]]:
    async with streamtape.use_cassette(recorded.path, faults=case.spec) as tape:
        outcome = await _run(recorded.url, api, style, mode, case.timeout)
    assert all(call.source == "replayed" for call in tape.calls), tape.calls
    return outcome, len(tape.calls), [call.waited for call in tape.calls[1:]]


def seen(outcome: Any, requests: int) -> dict[str, Any]:
    return {"error": outcome.error, "cause_message": outcome.cause_message, "chain": outcome.chain,
            "status": outcome.status, "text": outcome.text, "events": outcome.events, "final": outcome.final,
            "requests": requests}  # fmt: skip


@pytest.mark.parametrize(("case", "api", "style", "mode"), list(_params()))
async def test_fault_is_faithful(
    case: Case, api: str, style: str, mode: str, recordings: Callable[[str, str], Recorded]
) -> None:
    recorded = recordings(api, case.recording(api))
    real, real_requests, real_sleeps = await run_real(case, api, recorded, style, mode)
    replayed, replay_requests, replay_waits = await run_replay(case, api, recorded, style, mode)
    replay_saw, real_saw = seen(replayed, replay_requests), seen(real, real_requests)
    headline = ("error", "cause_message", "status", "text", "requests")
    assert {k: replay_saw[k] for k in headline} == {k: real_saw[k] for k in headline}
    assert replay_saw == real_saw
    assert len(replay_waits) == len(real_sleeps)  # the SDK backed off as often ...
    if "retry_after" in case.spec:
        assert replay_waits == real_sleeps  # ... and as long, where the response said how long
    assert real_requests == case.requests  # the real side did what the case is about
    expect = case.expect.get(f"{api}:{style}", case.expect[api])
    if expect is None:
        assert real.error is None, real.error
    elif expect != "*":
        assert real.error is not None and expect in {n.rsplit(".", 1)[1] for n in real.error[::2] if n}, real.error


def test_cases_cover_the_catalogue() -> None:
    """Every fault of every stream, and OpenAI's own, on both APIs where it applies."""
    covered = {fault.name for case in CASES for step in parse(case.spec).steps for fault in step}
    others = {name for name, cls in streamtape.faults.CATALOGUE.items()
              if cls.__module__.startswith("streamtape.faults.") and cls.__module__.rsplit(".", 1)[1] not in
              ("catalogue", "protocol", "openai")}  # fmt: skip  # another provider's own faults
    assert covered | CLIENT_SIDE | others == set(streamtape.faults.CATALOGUE)


def test_a_fault_of_one_api_refuses_the_other_s_stream_in_one_sentence(
    recordings: Callable[[str, str], Recorded],
) -> None:
    chat, responses = recordings("chat", MAIN["chat"]), recordings("responses", MAIN["responses"])
    for recorded, spec, api in ((chat, "response_failed", "OpenAI Responses"),
                                (responses, "done_early", "OpenAI Chat Completions")):  # fmt: skip
        with streamtape.use_cassette(recorded.path, faults=spec):
            with pytest.raises(ConfigError) as caught:
                oa.consume(recorded.url, "chat" if recorded is chat else "responses")
        message = str(caught.value)
        assert f"{spec}: a fault of {api} streams, but this request is answered by the " in message
        assert message.count(". ") == 0 and str(recorded.path) in message
    anthropic_stream = Interaction(chat.interaction.request.__class__("POST", "https://api.anthropic.com/v1/messages"),
                                   chat.interaction.response)  # fmt: skip
    with pytest.raises(ConfigError, match="done_early: a fault of OpenAI Chat Completions streams, but this request "
                                          "is answered by the 'anthropic' provider"):  # fmt: skip
        apply([faults.parse_fault("done_early")], anthropic_stream.actions(), Context())


# --- recorded, then replayed with the server gone -------------------------------------------------------

ROUND_TRIPS = [
    ("chat", "text_with_usage"), ("chat", "tool_calls_parallel"), ("responses", "text"), ("responses", "function_call"),
    ("compatible", "groq_in_stream_error_tool_use_failed"), ("compatible", "openrouter_in_stream_error_length"),
    ("compatible", "evroc_eof_without_finish_reason"),
]  # fmt: skip


@pytest.mark.parametrize(("api", "name"), ROUND_TRIPS)
async def test_recorded_through_the_sdk_and_replayed_byte_exact(api: str, name: str, tmp_path: Path) -> None:
    """Both usage styles recorded from the real wire format, then replayed sync and async with the
    server gone: the cassette holds the recorded bytes, and the app sees what it saw live."""
    path = tmp_path / "c.yaml"
    with WireServer() as server:
        server.queue(oa.transcript(api, name))
        with streamtape.use_cassette(path, record_mode="all") as tape:
            live = {style: oa.consume(server.base_url, api, style) for style in oa.STYLES}
        url = server.base_url
    assert [call.source for call in tape.calls] == ["recorded", "recorded"]
    body = oa.path(api, name, ".sse").read_bytes()
    assert [item.response.body for item in Cassette.load(path).interactions if item.response] == [body, body]
    for style, outcome in live.items():
        with streamtape.use_cassette(path) as tape:
            assert seen(oa.consume(url, api, style), 1) == seen(outcome, 1)
        async with streamtape.use_cassette(path):
            assert seen(await oa.aconsume(url, api, style), 1) == seen(outcome, 1)
        assert [call.source for call in tape.calls] == ["replayed"]
    if api == "compatible":  # what the real SDK makes of the OpenAI-compatible servers' streams
        errors = {"groq_in_stream_error_tool_use_failed": "openai.APIError",
                  "openrouter_in_stream_error_length": "openai.APIError", "evroc_eof_without_finish_reason": None}  # fmt: skip
        assert {style: (o.error or (None,))[0] for style, o in live.items()} == dict.fromkeys(oa.STYLES, errors[name])


@pytest.mark.parametrize("name", ["groq_in_stream_error_tool_use_failed", "openrouter_in_stream_error_length"])
async def test_the_rest_after_an_in_stream_error_is_recorded_though_the_app_closes_its_client_at_once(
    name: str, tmp_path: Path
) -> None:
    """The SDK raises at an in-stream error and the app's ``with OpenAI()`` closes the client before the
    rest (``data: [DONE]``, the body's end) arrives: the recording still holds all the server sent and
    its clean end, sync and async; never a clean end after missing bytes, nor a reset that did not happen."""
    body = oa.path("compatible", name, ".sse").read_bytes()
    for sync in (True, False):
        path = tmp_path / f"{sync}.yaml"
        with WireServer() as server:
            reply = oa.transcript("compatible", name)
            reply.piece_delays = [0.0] * (len(reply.events) - 1) + [0.1, 0.0]  # the last piece comes late
            server.queue(reply)
            if sync:
                with streamtape.use_cassette(path, record_mode="all"):
                    outcome = oa.consume(server.base_url, "compatible", "stream")
            else:
                async with streamtape.use_cassette(path, record_mode="all"):
                    outcome = await oa.aconsume(server.base_url, "compatible", "stream")
        assert outcome.error and outcome.error[0] == "openai.APIError"
        (saved,) = Cassette.load(path).interactions
        assert saved.response is not None and saved.response.body == body, sync
        assert isinstance(saved.response.end, streamtape.wire.End), (sync, saved.response.end)


async def test_the_aiohttp_client_meets_what_it_meets_from_a_real_server(
    recordings: Callable[[str, str], Recorded],
) -> None:
    """``AsyncOpenAI(http_client=DefaultAioHttpClient())``: the same faults, through the aiohttp stack."""
    recorded = recordings("chat", MAIN["chat"])
    for spec, real in (("disconnect:after=4", Wire([_transcript(recorded.interaction, fin_after=4)])),
                       ("error_event:after=4", planned(Case("error_event:after=4", planned, {}), recorded.interaction)),
                       ("rate_limit:retry_after_ms=1 -> ok", planned(Case("rate_limit:retry_after_ms=1 -> ok", planned,
                                                                          {}), recorded.interaction))):  # fmt: skip
        assert isinstance(real, Wire)
        with WireServer() as server:
            server.queue(*real.replies)
            async with oa.async_client(server.base_url, http_client=openai.DefaultAioHttpClient(),
                                       max_retries=2) as client:  # fmt: skip
                expected = await oa._aconsume(client, "chat", "create")
            requests = len(server.requests)
        async with streamtape.use_cassette(recorded.path, faults=spec) as tape:
            async with oa.async_client(recorded.url, http_client=openai.DefaultAioHttpClient(),
                                       max_retries=2) as client:  # fmt: skip
                got = await oa._aconsume(client, "chat", "create")
        assert seen(got, len(tape.calls)) == seen(expected, requests), spec
        assert {call.stack for call in tape.calls} == {"aiohttp"}


# --- what the provider says: real bytes ----------------------------------------------------------------


class TestErrorResponses:
    @pytest.mark.parametrize(
        ("api", "name", "options"),
        [
            ("chat", "http_429_rate_limit_rpm", {}),
            ("chat", "http_401_invalid_api_key_stream", {}),
            ("chat", "http_404_model_not_found_stream", {"message": "The model `this-model-does-not-exist-12345` "
                                                                    "does not exist or you do not have access to it."}),
            ("chat", "http_500_server_error", {"request_id": "req_d1781c6246541ff51e4ac6863d214877"}),
            ("responses", "http_401_invalid_api_key_stream", {}),
        ],
    )  # fmt: skip
    def test_the_real_bodies_from_the_status_alone(self, api: str, name: str, options: dict[str, Any]) -> None:
        """Each recorded body comes back byte for byte from its status (and the words the request chose),
        in the layout the API uses for that status, with the real content type and rate-limit headers."""
        real = oa.path(api, name, ".body.json").read_bytes()
        status = int(name.split("_")[1])
        recorded = {k.lower(): v for k, v in json.loads(oa.path(api, name, ".headers.json").read_text())["headers"].items()}
        headers, body = (RESPONSES if api == "responses" else CHAT).http_error(status, **options)
        assert body == real
        assert dict(headers)["content-type"] == recorded["content-type"][0]
        assert dict(headers)["x-request-id"] == options.get("request_id", "req_streamtape000000000000000001")
        assert [(k, [v]) for k, v in headers if k.startswith("x-ratelimit-")] == [
            (k, v) for k, v in recorded.items() if k.startswith("x-ratelimit-") and status == 429]

    @pytest.mark.parametrize(("api", "name"), [(api, path.name.removesuffix(".body.json")) for api in ("chat", "responses")
                                               for path in sorted((oa.DATA_DIR / api).glob("http_*.body.json"))])  # fmt: skip
    def test_every_status_in_the_layout_recorded_for_it(self, api: str, name: str) -> None:
        """Four-space JSON and a final LF from the edge (Chat Completions' 401, 404, 429), two-space JSON
        from the API (its 400 and 500, every Responses error)."""

        def layout(body: bytes) -> tuple[bool, bool]:
            return body.startswith(b'{\n    "error"'), body.endswith(b"\n")

        _, body = (RESPONSES if api == "responses" else CHAT).http_error(int(name.split("_")[1]))
        assert layout(body) == layout(oa.path(api, name, ".body.json").read_bytes())

    def test_retry_headers_only_when_asked_and_the_request_id(self) -> None:
        headers, _ = CHAT.http_error(429, number=3, retry_after=20, retry_after_ms=20000, should_retry=True)
        assert [(k, v) for k, v in headers if k.startswith(("retry", "x-should", "x-request"))] == [
            ("x-request-id", "req_streamtape000000000000000003"), ("retry-after", "20"), ("retry-after-ms", "20000"),
            ("x-should-retry", "true")]  # fmt: skip
        assert "retry-after" not in dict(CHAT.http_error(429)[0])
        headers, body = CHAT.http_error(500, request_id=False)
        assert "x-request-id" not in dict(headers) and b"request ID" not in body
        _, body = CHAT.http_error(429, error_type="insufficient_quota", message="You exceeded your current quota.")
        assert json.loads(body)["error"] == {"message": "You exceeded your current quota.", "type": "insufficient_quota",
                                             "param": None, "code": "insufficient_quota"}  # fmt: skip

    def test_overloaded_is_a_503_and_the_sdk_retries_it(self, recordings: Callable[[str, str], Recorded]) -> None:
        out = apply([faults.overloaded()], recordings("chat", MAIN["chat"]).interaction.actions(),
                    Context(provider=CHAT))  # fmt: skip
        assert isinstance(out[0], Respond) and out[0].status == 503 and out[0].reason == "Service Unavailable"
        assert json.loads(b"".join(a.data for a in out if isinstance(a, Send)))["error"]["message"] == (
            "The server is overloaded or not ready yet.")
        assert apply([faults.overloaded(status=529)], recordings("chat", MAIN["chat"]).interaction.actions(),
                     Context(provider=CHAT))[0].status == 503  # fmt: skip
        assert apply([faults.overloaded(status=502)], recordings("chat", MAIN["chat"]).interaction.actions(),
                     Context(provider=CHAT))[0].status == 502  # fmt: skip

    def test_the_harness_error_reads_as_an_openai_error(self) -> None:
        """What streamtape answers itself, in OpenAI's shape, read by the real SDK's error mapping."""
        headers, body = providers.error_response(404, "not_found_error", "no recorded interaction matches",
                                                  provider=CHAT)  # fmt: skip
        response = httpx2.Response(404, headers=list(headers), content=body,
                                   request=httpx2.Request("POST", "https://api.openai.com/v1/chat/completions"))  # fmt: skip
        error = openai.OpenAI(api_key="k")._make_status_error_from_response(response)
        assert isinstance(error, openai.NotFoundError)
        assert error.body == {"message": "no recorded interaction matches", "type": "not_found_error", "param": None,
                              "code": None}  # fmt: skip
        assert dict(headers)["x-should-retry"] == "false"


def test_the_in_stream_errors() -> None:
    assert CHAT.error_event() == (
        b'data: {"error":{"message":"The server had an error processing your request. Sorry about that! You can '
        b'retry your request, or contact us through our help center at help.openai.com if you keep seeing this '
        b'error.","type":"server_error","param":null,"code":null}}\n\n')  # fmt: skip
    groq = oa.path("compatible", "groq_in_stream_error_tool_use_failed", ".sse").read_bytes()
    last = groq[groq.rindex(b"event: error") :]
    assert CHAT.error_event(data=last.decode()[len("event: error\ndata: ") : -2], event="error") == last  # Groq's bytes
    assert RESPONSES.error_event("rate_limit_exceeded", "slow down") == (
        b'event: error\ndata: {"type":"error","code":"rate_limit_exceeded","message":"slow down","param":null}\n\n')
    assert CHAT.keep_alive() == RESPONSES.keep_alive() == b": keep-alive\n\n"
    assert parse_events(CHAT.keep_alive()) == []  # a comment: no event, for the SDK or for after=N


def test_json_body_is_the_api_s_non_streaming_body() -> None:
    """``whole_message`` of each recording parses as the SDK's own non-streaming type, with what the
    stream said."""
    text = parse_events(oa.path("chat", "text_with_usage", ".sse").read_bytes())
    completion = openai.types.chat.ChatCompletion.model_validate_json(CHAT.whole_message(text))
    assert completion.choices[0].message.content == "4200 + 42 equals 4242."
    assert completion.choices[0].finish_reason == "stop" and completion.usage and completion.usage.total_tokens == 26
    tools = parse_events(oa.path("chat", "tool_calls_parallel", ".sse").read_bytes())
    calls = openai.types.chat.ChatCompletion.model_validate_json(CHAT.whole_message(tools)).choices[0].message.tool_calls
    assert [(c.function.name, json.loads(c.function.arguments)) for c in calls or []] == [  # type: ignore[union-attr]
        ("secret_retrieval_tool", {"password": "mellon"}), ("secret_retrieval_tool", {"password": "radiance"})]
    for name in ("text", "incomplete_max_output_tokens"):
        events = parse_events(oa.path("responses", name, ".sse").read_bytes())
        # built as the SDK builds what the API sends (its types ask for fields these 2025 recordings lack)
        response = construct_type(type_=openai.types.responses.Response, value=json.loads(RESPONSES.whole_message(events)))
        assert response.output_text == "".join(e.json.get("delta", "") for e in events
                                               if e.event == "response.output_text.delta")  # fmt: skip


# --- lint and inspect ------------------------------------------------------------------------------------


def _cassette(tmp_path: Path, api: str, name: str, body: bytes | None = None) -> Path:
    """The recording as a cassette answering its recorded request (one chunk per event)."""
    request = json.loads(oa.path(api, name, ".request.json").read_text())
    body = oa.path(api, name, ".sse").read_bytes() if body is None else body
    ends = [e.end for e in parse_events(body)]
    ends += [len(body)] if not ends or ends[-1] < len(body) else []
    spans = zip([0, *ends], ends, strict=False)
    timing = tuple((round(0.3 + 0.01 * n, 4), end - start) for n, (start, end) in enumerate(spans))
    item = Interaction(streamtape.Request("POST", request["url"], (("content-type", "application/json"),),
                                          json.dumps(request["body"]).encode()),
                       streamtape.Response(200, (("content-type", "text/event-stream; charset=utf-8"),), body, timing,
                                           "OK", 0.3))  # fmt: skip
    return Cassette([item]).save(tmp_path / f"{api}-{name}.yaml")


def _stream_problems(path: Path) -> list[str]:
    return [problem.message for problem in lint_file(path) if problem.kind == "sse"]


@pytest.mark.parametrize(("api", "name"), [(api, path.stem) for api in ("chat", "responses", "compatible")
                                           for path in sorted((oa.DATA_DIR / api).glob("*.sse"))])  # fmt: skip
def test_every_real_recording_is_lint_clean_but_the_cut_one(api: str, name: str, tmp_path: Path) -> None:
    """Groq's and OpenRouter's in-stream errors are recognised as errors (no [DONE] is owed after one);
    the vLLM stream that ended without a finish_reason or [DONE] is what lint is for."""
    problems = _stream_problems(_cassette(tmp_path, api, name))
    if name == "evroc_eof_without_finish_reason":
        assert problems == ["the stream ends without data: [DONE], and the recording does not say it broke (the SDK "
                            "takes it for a complete answer)", "the last choice chunk (event 548) has no finish_reason"]  # fmt: skip
    else:
        assert problems == []


def test_lint_finds_what_faults_make(tmp_path: Path) -> None:
    def faulted(api: str, name: str, spec: str) -> list[str]:
        path = _cassette(tmp_path, api, name)
        item = Cassette.load(path).interactions[0]
        provider = CHAT if api == "chat" else RESPONSES
        actions = apply([faults.parse_fault(spec)], item.actions(), Context(provider=provider))
        body = b"".join(a.data for a in expand(actions) if isinstance(a, Send))
        return _stream_problems(_cassette(tmp_path, api, name, body))

    assert faulted("chat", "text_with_usage", "done_early") == ["the last choice chunk (event 11) has no finish_reason"]
    assert faulted("chat", "text_with_usage", "truncate:after=4") == [
        "the stream ends without data: [DONE], and the recording does not say it broke (the SDK takes it for a "
        "complete answer)", "the last choice chunk (event 4) has no finish_reason"]
    assert faulted("chat", "text_with_usage", "duplicate:event=14") == ["event 15 comes after data: [DONE]; the SDK "
                                                                       "never reads it"]  # fmt: skip
    assert faulted("chat", "text_with_usage", "error_event:after=4") == []  # an error ends a stream
    assert faulted("responses", "incomplete_max_output_tokens", "drop:event=6") == [
        "event 6: sequence_number jumps from 4 to 6 (1 events missing)"]
    assert faulted("responses", "incomplete_max_output_tokens", "response_failed") == []
    assert faulted("responses", "incomplete_max_output_tokens", "error_event:after=9") == []
    assert faulted("responses", "text", "truncate") == [
        "the stream ends with 'response.output_item.done', not response.completed / response.incomplete / "
        "response.failed, and the recording does not say it broke"]
    assert faulted("responses", "text", "duplicate:event=18") == [
        "event 19 (response.completed) comes after the terminal event 18"]
    two = b"".join(b'data: {"choices":[{"index":%d,"delta":{},"finish_reason":%s}]}\n\n' % choice
                   for choice in ((0, b"null"), (1, b"null"), (1, b'"stop"')))  # n=2, choice 0 never finished
    assert CHAT.lint(parse_events(two + b"data: [DONE]\n\n"), broke=False) == ["choice 0 never got a finish_reason"]
    swapped = _cassette(tmp_path, "chat", "text_with_usage",
                        oa.path("chat", "text_with_usage", ".sse").read_bytes().replace(b'"choices":[],', b""))  # fmt: skip
    assert _stream_problems(swapped) == []  # a usage chunk without "choices" is an ordinary chunk ...
    moved = oa.path("chat", "tool_calls_parallel", ".sse").read_bytes().split(b"\n\n")
    moved.insert(1, moved.pop(-3))  # ... but one with empty choices must come after the last choice chunk
    assert "event 2: the usage chunk (empty choices) comes before choice chunks" in _stream_problems(
        _cassette(tmp_path, "chat", "tool_calls_parallel", b"\n\n".join(moved)))


@pytest.mark.parametrize(
    ("api", "name", "tokens", "stop", "calls", "ended"),
    [
        ("chat", "text_with_usage", {"prompt_tokens": 16, "completion_tokens": 10, "total_tokens": 26,
                                     "cached_tokens": 0, "reasoning_tokens": 0}, "stop", [], "clean"),
        ("chat", "tool_calls_parallel", {"prompt_tokens": 75, "completion_tokens": 53, "total_tokens": 128,
                                         "cached_tokens": 0, "reasoning_tokens": 0}, "tool_calls",
         ['secret_retrieval_tool({"password": "mellon"})', 'secret_retrieval_tool({"password": "radiance"})'], "clean"),
        ("chat", "length_max_tokens", {"prompt_tokens": 14, "completion_tokens": 50, "total_tokens": 64,
                                       "cached_tokens": 0, "reasoning_tokens": 0}, "length", [], "clean"),
        ("responses", "function_call", {"input_tokens": 75, "output_tokens": 23, "total_tokens": 98,
                                        "cached_tokens": 0, "reasoning_tokens": 0}, "completed",
         ['get_current_weather({"location":"Boston, MA","unit":"celsius"})'], "clean"),
        ("responses", "incomplete_max_output_tokens", {"input_tokens": 14, "output_tokens": 50, "total_tokens": 64,
                                                       "cached_tokens": 0, "reasoning_tokens": 0},
         "max_output_tokens", [], "clean"),
        ("compatible", "groq_in_stream_error_tool_use_failed", {}, None, [], "in-stream error: tool_use_failed"),
        ("compatible", "openrouter_in_stream_error_length", {"prompt_tokens": 43, "completion_tokens": 10,
                                                            "total_tokens": 53, "cached_tokens": 0,
                                                            "reasoning_tokens": 11}, "length", [],
         "in-stream error: 400"),
        ("compatible", "evroc_eof_without_finish_reason", {}, None, [],
         "clean, but early (no [DONE]: the SDK takes it for a complete answer)"),
    ],
)  # fmt: skip
def test_inspect_reads_tokens_stop_reason_tool_calls_and_the_end(
    api: str, name: str, tokens: dict[str, int], stop: str | None, calls: list[str], ended: str, tmp_path: Path
) -> None:
    report = describe_interaction(0, Cassette.load(_cassette(tmp_path, api, name)).interactions[0])
    assert (report["tokens"], report["stop_reason"], report["tool_calls"], report["ended"]) == (
        tokens, stop, calls, ended)


def test_inspect_names_the_failures_faults_make(recordings: Callable[[str, str], Recorded]) -> None:
    def ended(api: str, spec: str) -> str:
        item = recordings(api, MAIN[api]).interaction
        actions = apply([faults.parse_fault(spec)], item.actions(), Context(provider=CHAT if api == "chat" else RESPONSES))
        body = b"".join(a.data for a in expand(actions) if isinstance(a, Send))
        response = dataclasses.replace(item.response, body=body, timing=((0.1, len(body)),))  # type: ignore[arg-type]
        return str(describe_interaction(0, Interaction(item.request, response))["ended"])

    assert ended("chat", "done_early") == "clean, but early ([DONE] before any finish_reason)"
    assert ended("chat", "error_event:after=3") == "in-stream error: server_error"
    assert ended("responses", "error_event:after=3") == "in-stream error: server_error"
    assert ended("responses", "response_failed:code=rate_limit_exceeded") == "response.failed: rate_limit_exceeded"
    assert ended("responses", "truncate") == "clean, but early (no response.completed)"


# --- synth -------------------------------------------------------------------------------------------------


def test_synth_writes_both_apis_as_the_sdk_reads_them(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    """``synthesize(provider="openai")`` / ``"openai-responses"``: lint-clean streams the SDK's helpers
    turn back into exactly what was asked for, replayed with no key set (the tape puts a placeholder
    in ``OPENAI_API_KEY``), the same arguments giving the same bytes."""
    from streamtape.synth import synthesize

    monkeypatch.delenv("OPENAI_API_KEY", raising=False)
    asked = {"text": "Let me check the weather in Paris for you.", "tools": [("get_weather", {"city": "Paris"})],
             "model": "gpt-4o", "prompt": "Weather in Paris?", "seed": 7}  # fmt: skip
    chat = synthesize(provider="openai", **asked)  # type: ignore[arg-type]
    assert chat.body == synthesize(provider="openai", **asked).body  # type: ignore[arg-type]
    responses = synthesize(provider="openai-responses", thinking="The user wants the weather.", **asked)  # type: ignore[arg-type]
    for name, item in (("chat", chat), ("responses", responses)):
        path = Cassette([item]).save(tmp_path / f"{name}.yaml")
        assert [p.message for p in lint_file(path)] == []
        with streamtape.use_cassette(path, match_on=["method", "path"]):
            client = openai.OpenAI(max_retries=0)
            if name == "chat":
                with client.chat.completions.stream(model="gpt-4o", messages=[]) as stream:
                    message = stream.get_final_completion().choices[0]
                assert message.message.content == asked["text"] and message.finish_reason == "tool_calls"
                calls = [(c.function.name, json.loads(c.function.arguments)) for c in message.message.tool_calls or []]
            else:
                with client.responses.stream(model="gpt-4o", input="Weather in Paris?") as rstream:
                    response = rstream.get_final_response()
                assert response.output_text == asked["text"]
                assert response.output[0].summary[0].text == "The user wants the weather."  # type: ignore[union-attr]
                calls = [(o.name, json.loads(o.arguments)) for o in response.output if o.type == "function_call"]
        assert calls == [("get_weather", {"city": "Paris"})]
    report = describe_interaction(0, responses)
    assert report["stop_reason"] == "completed" and report["tool_calls"] == ['get_weather({"city": "Paris"})']
    with pytest.raises(ConfigError, match="OpenAI Chat Completions streams carry no reasoning text"):
        synthesize(provider="openai", thinking="hmm", text="hi")


# --- the pytest plugin ----------------------------------------------------------------------------------------


def test_the_plugin_sweeps_faults_over_an_openai_recording(
    pytester: pytest.Pytester, monkeypatch: pytest.MonkeyPatch, recordings: Callable[[str, str], Recorded]
) -> None:
    """``@pytest.mark.tape_faults`` on an app test that calls OpenAI: one run per fault, OpenAI's own
    included, each meeting OpenAI's bytes, with no key set."""
    monkeypatch.delenv("OPENAI_API_KEY", raising=False)
    recorded = recordings("chat", MAIN["chat"])
    item = recorded.interaction
    request = dataclasses.replace(item.request, url="https://api.openai.com/v1/chat/completions")
    Cassette([Interaction(request, item.response)]).save(pytester.path / "c.yaml")
    pytester.makepyfile(
        test_openai_app="""
        import openai, pytest

        @pytest.mark.tape("c.yaml", match_on=["method", "path"])
        @pytest.mark.tape_faults("disconnect:after=*", "done_early", "rate_limit*3", "error_event:after=5")
        def test_app_survives(tape, tape_fault):
            client = openai.OpenAI(max_retries=2)
            text, error = "", None
            try:
                with client.chat.completions.stream(model="gpt-4o", messages=[]) as stream:
                    for event in stream:
                        if event.type == "content.delta":
                            text += event.delta
            except openai.APIError as exc:
                error = exc
            assert tape.calls and all(call.source == "replayed" for call in tape.calls)
            if tape_fault.startswith("rate_limit"):
                assert isinstance(error, openai.RateLimitError) and len(tape.calls) == 3
            elif tape_fault == "error_event:after=5":
                assert type(error) is openai.APIError and text == "4200 + "
            elif tape_fault == "done_early":
                assert error is None and text == "4200 + 42 equals 4242."
        """
    )
    result = pytester.runpytest("-p", "no:randomly", "-v")
    result.assert_outcomes(passed=15 + 3)
    result.stdout.fnmatch_lines(["*test_app_survives?disconnect:after=14?*PASSED*", "*test_app_survives?done_early?*"])


# --- the starters ---------------------------------------------------------------------------------------------

ROOT = Path(__file__).resolve().parent.parent
STARTERS = ROOT / "cassettes" / "openai"


def test_the_starters_are_what_the_script_builds_from_the_recordings(tmp_path: Path) -> None:
    command = [sys.executable, "scripts/build_starters.py", "--out", str(tmp_path)]
    result = subprocess.run(command, cwd=ROOT, capture_output=True, text=True, timeout=120)
    assert result.returncode == 0, result.stderr
    built = {path.name: path.read_bytes() for path in (tmp_path / "openai").glob("*.yaml")}
    assert built == {path.name: path.read_bytes() for path in STARTERS.glob("*.yaml")} and len(built) == 11


@pytest.mark.parametrize(
    ("name", "expected"),
    [
        ("chat_text", ("stop", "4200 + 42 equals 4242.")),
        ("chat_tool_calls", ("tool_calls", "")),
        ("chat_max_tokens", ("LengthFinishReasonError", 1)),  # the helper raises for a max_tokens cut-off
        ("chat_refusal", ("stop", "")),
        ("chat_rate_limited", ("RateLimitError", 3)),
        ("responses_text", ("completed", "Hello! 🌍 How can I assist you today?")),
        ("responses_function_call", ("completed", "")),
        ("responses_incomplete", ("incomplete", None)),
        ("responses_refusal", ("completed", "")),
        ("groq_in_stream_error", ("APIError", 1)),
        ("openrouter_in_stream_error", ("APIError", 1)),
    ],
)  # fmt: skip
def test_each_starter_replays_through_the_sdk(name: str, expected: tuple[str, Any], monkeypatch: pytest.MonkeyPatch) -> None:
    """With no key and no server: the finish reason (or status) and text each was recorded with, or
    the error (and how many attempts the SDK made)."""
    monkeypatch.delenv("OPENAI_API_KEY", raising=False)
    path = STARTERS / f"{name}.yaml"
    (item,) = Cassette.load(path).interactions
    base_url = item.request.url.rsplit("/", 2 if item.request.url.endswith("/chat/completions") else 1)[0]
    with streamtape.use_cassette(path, match_on=["method", "path"]) as tape:
        client = openai.OpenAI(base_url=base_url, max_retries=2)
        try:
            if name.startswith("responses"):
                events = list(client.responses.create(model="m", input="x", stream=True))
                final = events[-1].response  # type: ignore[union-attr]
                outcome, text = final.status, "".join(e.delta for e in events if e.type == "response.output_text.delta")
            else:
                with client.chat.completions.stream(model="m", messages=[]) as stream:
                    completion = stream.get_final_completion()
                outcome, text = completion.choices[0].finish_reason, completion.choices[0].message.content or ""
        except openai.OpenAIError as exc:
            assert (type(exc).__name__, len(tape.calls)) == expected
            return
    assert outcome == expected[0] and (expected[1] is None or text == expected[1]), (outcome, text)


# --- linear in the stream ---------------------------------------------------------------------------------------


def _long(api: str, n: int) -> Interaction:
    """A stream of ``n`` events made of a real recording's events: its head, its deltas repeated, its
    tail (Responses: renumbered, as a longer stream is numbered)."""
    name = {"chat": "text_with_usage", "responses": "incomplete_max_output_tokens"}[api]
    events = [e + b"\n\n" for e in oa.path(api, name, ".sse").read_bytes().split(b"\n\n") if e]
    head, deltas, tail = (events[:1], events[1:11], events[11:]) if api == "chat" else (events[:4], events[4:54],
                                                                                          events[54:])  # fmt: skip
    body = head + [deltas[i % len(deltas)] for i in range(n - len(head) - len(tail))] + tail
    if api == "responses":
        body = [re.sub(rb'"sequence_number":\d+', f'"sequence_number":{i}'.encode(), e, count=1)
                for i, e in enumerate(body)]  # fmt: skip
    timing = tuple((round(0.4 + 0.002 * i, 4), len(e)) for i, e in enumerate(body))
    url = "https://api.openai.com/v1/" + ("chat/completions" if api == "chat" else "responses")
    return Interaction(streamtape.Request("POST", url),
                       streamtape.Response(200, (("content-type", "text/event-stream"),), b"".join(body), timing))  # fmt: skip


_UNTRACED = pytest.mark.skipif(sys.gettrace() is not None, reason="a tracer (debugger, coverage) is already active")


@_UNTRACED
@pytest.mark.parametrize(("api", "spec"), [("chat", "done_early"), ("chat", "error_event:after=HALF"),
                                           ("responses", "response_failed"), ("responses", "error_event:after=HALF"),
                                           ("chat", "json_body"), ("responses", "json_body")])  # fmt: skip
def test_openai_faults_are_linear(api: str, spec: str) -> None:
    from tests.test_linear_time import assert_linear

    def plan(n: int) -> Callable[[], object]:
        item = _long(api, n)
        steps = parse(spec.replace("HALF", str(n // 2))).faults_for(0)
        return lambda: apply(steps, item.actions(), Context(provider=CHAT if api == "chat" else RESPONSES))

    assert_linear(plan, f"{api}: {spec}", measures=("bytecode",))


@_UNTRACED
@pytest.mark.parametrize("api", ["chat", "responses"])
def test_openai_lint_and_inspect_are_linear(api: str, tmp_path: Path) -> None:
    from tests.test_linear_time import assert_linear

    def read(n: int) -> Callable[[], object]:
        item = _long(api, n)
        path = Cassette([item]).save(tmp_path / f"{n}.yaml")
        problems = lint_file(path)
        assert [p.message for p in problems if p.kind == "sse"] == []
        return lambda: (lint_file(path), describe_interaction(0, item))

    assert_linear(read, f"{api}: lint and inspect", measures=("bytecode",))


def test_serve_plays_openai_faults_as_the_tape_does(recordings: Callable[[str, str], Recorded]) -> None:
    """``streamtape serve`` (``ReplayServer``) answers an OpenAI SDK pointed at it with OpenAI's bytes."""
    from streamtape.server import ReplayServer

    for api, spec in (("chat", "error_event:after=4"), ("chat", "rate_limit:retry_after_ms=1 -> done_early"),
                      ("responses", "response_failed:after=6")):  # fmt: skip
        recorded = recordings(api, MAIN[api])
        with streamtape.use_cassette(recorded.path, faults=spec) as tape:
            replayed = oa.consume(recorded.url, api, "stream", options={"max_retries": 2})
        with ReplayServer(Cassette.load(recorded.path), faults=spec, speed=0) as server:
            served = oa.consume(server.base_url, api, "stream", options={"max_retries": 2})
        assert seen(served, 0) == seen(replayed, 0), spec
        assert len(tape.calls) == (2 if "->" in spec else 1)
