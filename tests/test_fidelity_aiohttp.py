"""The stack axis of the differential fidelity suite: every catalogue fault through aiohttp.

Each case runs twice and compares everything the app can observe (the whole exception chain, status,
events, text, the final message, the snapshot after a mid-stream error, the requests made and the
back-off waits):

- REAL: a real server on 127.0.0.1 misbehaving at the socket level (the same machinery, case list and
  planned replies as tests/test_fault_fidelity.py, which proves the same for httpx2);
- REPLAY: streamtape's in-process replay of the clean recording with ``use_cassette(path, faults=SPEC)``,
  through the aiohttp stack adapter (``streamtape.stacks.aiohttp``).

Through five apps (tests/support/aiohttp_apps.py): anthropic over ``DefaultAioHttpClient`` streaming
events (every case of the httpx2 suite) and one non-stream ``messages.create``; openai over its
``DefaultAioHttpClient``, a streamed chat completion from a server speaking OpenAI's SSE (transport-level
faults only: the provider-specific ones belong with an OpenAI provider); and plain aiohttp, reading
with ``iter_any()`` and line by line.

Where aiohttp's outcome depends on how the kernel splits the stream into reads (a mangled chunk-size line,
a damaged gzip piece, a split fault), the real server sends each piece 20 ms apart, as a live stream's
events arrive (``APART``). An app that neither ends nor fails is stopped and its outcome says ``hung``:
aiohttp never ends a body whose chunk framing broke after the head arrived, over a socket or replayed.
The faults no server can cause are compared with their real counterparts: ``pool_timeout`` with a pool of
one connection held by another request, ``write_timeout`` with a server that never reads.

Known streamtape mismatches are in ``KNOWN`` (strict xfails): remove an entry when streamtape is fixed.
"""

from __future__ import annotations

import dataclasses
from collections.abc import Callable, Iterator
from pathlib import Path
from typing import Any

import pytest

import streamtape
from streamtape.cassette import Cassette, Interaction
from streamtape.faults import Context, apply, parse
from streamtape.providers import provider_for
from streamtape.wire import End
from tests import test_fault_fidelity as ff
from tests.support import sdk
from tests.support.raw_server import RawServer, blackholed_port, closed_port
from tests.support.wire_server import Reply, WireServer, transcript

aiohttp = pytest.importorskip("aiohttp")

from tests.support import aiohttp_apps as apps  # noqa: E402 - needs aiohttp

pytestmark = pytest.mark.sdk

Case, Wire, Raw = ff.Case, ff.Wire, ff.Raw
ATTEMPTS, SLOW, QUICK, FOREVER, PATIENT = ff.ATTEMPTS, ff.SLOW, ff.QUICK, ff.FOREVER, ff.PATIENT
raw, refused, blackholed = ff.raw, ff.refused, ff.blackholed


# --- the replies, by transcript: the anthropic corpus, a non-stream message, an OpenAI chat stream ------------


def base_reply(name: str, framing: str = "chunked") -> Reply:
    if name == "chat":
        return apps.chat_reply(framing=framing)
    if name == "message":
        return message_reply()
    return transcript(name, framing=framing)


def message_reply() -> Reply:
    """The Messages API's non-stream answer with the text of ``text_basic``, Content-Length framed."""
    from streamtape.framing import framer_for
    from streamtape.providers import fallback

    events = framer_for((("content-type", "text/event-stream"),)).events(transcript("text_basic").body)
    body = fallback().whole_message(events)
    headers = [("content-type", "application/json"), ("request-id", "req_test_message")]
    return Reply(status=200, headers=headers, events=[body[:200], body[200:]], framing="content-length")


def natural(**reply: Any) -> Callable[[ff.Case, Interaction], ff.Real]:
    return lambda case, _: Wire([dataclasses.replace(base_reply(case.name, case.framing), **reply)])


def then_clean(**reply: Any) -> Callable[[ff.Case, Interaction], ff.Real]:
    def build(case: ff.Case, _: Interaction) -> ff.Real:
        return Wire([Reply(**reply) for _ in range(case.requests - 1)] + [base_reply(case.name, case.framing)])

    return build


def at_byte(position: int, fault: str) -> Callable[[ff.Case, Interaction], ff.Real]:
    """The reply with the piece holding byte ``position`` split there, and ``fault`` right before it."""

    def build(case: ff.Case, _: Interaction) -> ff.Real:
        reply = base_reply(case.name, case.framing)
        pieces, offset = [], 0
        for piece in reply.events:
            cut = position - offset
            pieces += [piece[:cut], piece[cut:]] if 0 < cut < len(piece) else [piece]
            offset += len(piece)
        index = next(i for i in range(len(pieces) + 1) if sum(map(len, pieces[:i])) == position)
        options: dict[str, Any] = {fault: index, "events": pieces}
        if fault == "stall_after":
            options["stall_seconds"] = FOREVER
        return Wire([dataclasses.replace(reply, **options)])

    return build


def planned(case: ff.Case, item: Interaction) -> ff.Real:
    """Each attempt gets exactly what the fault plan makes of the recording, with the provider the tape
    chooses for the request (tests/test_fault_fidelity.py's ``planned``, for any transcript)."""
    schedule = parse(case.spec)
    provider = provider_for(item.request.method, item.request.url, item.request.headers)
    replies = []
    for attempt in range(ATTEMPTS):
        faults = schedule.faults_for(attempt)
        if not faults:
            replies.append(base_reply(case.name, case.framing))
            continue
        actions = apply(faults, item.actions(), Context(number=attempt + 1, provider=provider))
        replies.append(ff._reply(actions, case.framing))  # noqa: SLF001 - the shared plan-to-socket reply
    return Wire(replies)


# --- the cases, per app ----------------------------------------------------------------------------------

#: faults that only move chunk boundaries (streamtape.faults.splits), where the httpx2 suite has no case yet
_SPLITS = [
    Case("split:at_byte=700", planned, None),
    Case("split_crlf", planned, None),
    Case("split_utf8", planned, None, name="thinking"),  # its text has multi-byte characters
]
_IN_HTTPX2_SUITE = {fault.name for case in ff.CASES for step in parse(case.spec).steps for fault in step}
SPLITS = [
    case for case in _SPLITS
    if case.spec.split(":")[0] in streamtape.faults.CATALOGUE and case.spec.split(":")[0] not in _IN_HTTPX2_SUITE
]  # fmt: skip

#: anthropic over DefaultAioHttpClient, streaming: every case of the httpx2 suite (its real sides as they are)
STREAM_CASES = [*ff.CASES, *SPLITS]

#: one non-stream messages.create: the JSON body arrives in two pieces under a Content-Length
CREATE_CASES = [
    Case("refuse", refused, "*", ATTEMPTS, name="message"),
    Case("disconnect", raw("fin"), "*", ATTEMPTS, name="message"),
    Case("reset", raw("rst"), "*", ATTEMPTS, name="message"),
    Case("timeout", raw("silence"), "*", ATTEMPTS, name="message", timeout=QUICK),
    Case("connect_timeout", blackholed, "*", ATTEMPTS, name="message", timeout=QUICK),
    Case("disconnect:at_byte=100", at_byte(100, "fin_after"), "*", name="message"),
    Case("reset:at_byte=100", at_byte(100, "rst_after"), "*", name="message"),
    Case("stall:at_byte=100", at_byte(100, "stall_after"), "*", name="message", timeout=QUICK),
    Case("delay:first_byte=0.5", planned, "*", ATTEMPTS, name="message", timeout=QUICK),
    Case("rechunk:size=7", planned, None, name="message"),
    Case("http_error:status=400", planned, "*", 1, name="message"),
    Case("rate_limit", planned, "*", ATTEMPTS, name="message"),
    Case("overloaded", planned, "*", ATTEMPTS, name="message"),
    Case("server_error", planned, "*", ATTEMPTS, name="message"),
    Case("rate_limit:retry_after_ms=1 -> ok", planned, None, 2, name="message"),
    Case("reset -> ok", then_clean(before_head="rst"), None, 2, name="message"),
    Case("bad_status", planned, "*", ATTEMPTS, name="message"),
    Case("corrupt_gzip", planned, "*", name="message"),
    Case("bom", planned, None, name="message"),  # the SDK decodes JSON with utf-8-sig
]

#: openai over its DefaultAioHttpClient: a Chat Completions stream (8 events, the last ``[DONE]``), the
#: faults of the transport (provider-specific ones belong with an OpenAI provider)
OPENAI_CASES = [
    Case("refuse", refused, "*", ATTEMPTS, name="chat"),
    Case("disconnect", raw("fin"), "*", ATTEMPTS, name="chat"),
    Case("reset", raw("rst"), "*", ATTEMPTS, name="chat"),
    Case("timeout", raw("silence"), "*", ATTEMPTS, name="chat", timeout=QUICK),
    Case("connect_timeout", blackholed, "*", ATTEMPTS, name="chat", timeout=QUICK),
    Case("disconnect:after=3", natural(fin_after=3), "*", name="chat"),
    Case("disconnect:after=7", natural(fin_after=7), "*", name="chat"),  # everything but [DONE]
    Case("disconnect:after=3", natural(fin_after=3), "*", name="chat", framing="content-length"),
    Case("disconnect:after=3", natural(fin_after=3), None, name="chat", framing="close"),
    Case("reset:after=3", natural(rst_after=3), "*", name="chat"),
    Case("stall:after=3", natural(stall_after=3, stall_seconds=FOREVER), "*", name="chat", timeout=QUICK),
    Case("delay:per_event=0.02", natural(piece_delay=0.02), None, name="chat", timeout=SLOW),
    Case("http_error:status=400", planned, "*", 1, name="chat"),
    Case("http_error:status=404", planned, "*", 1, name="chat"),
    Case("rate_limit", planned, "*", ATTEMPTS, name="chat"),
    Case("server_error", planned, "*", ATTEMPTS, name="chat"),
    Case("rate_limit:retry_after_ms=1 -> ok", planned, None, 2, name="chat"),
    Case("disconnect -> ok", then_clean(before_head="fin"), None, 2, name="chat"),
    Case("bad_status", planned, "*", ATTEMPTS, name="chat"),
    Case("bad_chunk:after=2", planned, "*", name="chat"),
    Case("rechunk:size=7", planned, None, name="chat"),
    Case("linger", planned, None, name="chat", timeout=QUICK),  # the SDK stops reading at [DONE]
]

#: plain aiohttp: what the socket does, and bytes that are not HTTP (content faults are only bytes to it)
_PLAIN = {"disconnect", "reset", "stall", "timeout", "refuse", "connect_timeout", "bad_status", "bad_chunk",
          "corrupt_gzip", "linger", "delay", "truncate", "rechunk", "rate_limit", "http_error", "split", "split_crlf",
          "split_utf8"}  # fmt: skip
PLAIN_CASES = [
    case for case in STREAM_CASES
    if {fault.name for step in parse(case.spec).steps for fault in step} <= _PLAIN and "->" not in case.spec
]  # fmt: skip

APP_CASES: dict[str, list[ff.Case]] = {
    "anthropic": STREAM_CASES,
    "anthropic-create": CREATE_CASES,
    "openai": OPENAI_CASES,
    "iter_any": PLAIN_CASES,
    "readline": PLAIN_CASES,
}

#: Mismatches that are streamtape bugs, by (app, case id): the reason.
_GZIP_LENGTH = (
    "streamtape gap (as for httpx2): a gzip body with Content-Length is recorded decoded, without its "
    "Content-Length, so a disconnect replays as chunked (TransferEncodingError 'Not enough data to satisfy "
    "transfer length header.'); the wire says ContentLengthError '(received 519 of 1478 bytes)', counting "
    "compressed bytes"
)
KNOWN: dict[tuple[str, str], str] = {
    (app, "disconnect:after=5@thinking@content-length"): _GZIP_LENGTH for app in ("anthropic", "iter_any", "readline")
}


def _params() -> Iterator[Any]:
    for app, cases in APP_CASES.items():
        for case in cases:
            marks = []
            if app.startswith("anthropic") and not apps.SDK_AIOHTTP:
                marks.append(pytest.mark.skip(reason="this anthropic SDK has no vendored aiohttp transport"))
            if app == "openai" and not apps.OPENAI_AIOHTTP:
                marks.append(pytest.mark.skip(reason="this openai SDK has no vendored aiohttp transport"))
            if (app, case.id) in KNOWN:
                marks.append(pytest.mark.xfail(strict=True, reason=KNOWN[(app, case.id)]))
            yield pytest.param(app, case, id=f"{app}-{case.id}", marks=marks)


# --- the two sides ---------------------------------------------------------------------------------------


@pytest.fixture(scope="module")
def recordings(tmp_path_factory: pytest.TempPathFactory) -> Callable[[str, str], ff.Recorded]:
    return recorder(tmp_path_factory.mktemp("fidelity-aiohttp"))


def recorder(directory: Path) -> Callable[[str, str], ff.Recorded]:
    """The clean answer, recorded once per (transcript, framing) from a WireServer through the SDK's default
    transport, server stopped, then given the timing of a quiet loopback (1 ms apart), as in the httpx2 suite."""
    cache: dict[tuple[str, str], ff.Recorded] = {}

    def get(name: str, framing: str) -> ff.Recorded:
        if (name, framing) not in cache:
            path = directory / f"{name}-{framing}.yaml"
            with WireServer() as server:
                server.queue(base_reply(name, framing))
                with streamtape.use_cassette(path, record_mode="all") as tape:
                    _record_clean(name, server.base_url)
                assert [c.source for c in tape.calls] == ["recorded"]
                url = server.base_url
            (item,) = Cassette.load(path).interactions
            assert item.response is not None and item.response.end == End(item.response.end.at)
            timing = tuple((n * 0.001, size) for n, (_, size) in enumerate(item.response.timing, 1))
            quiet = dataclasses.replace(item.response, timing=timing, headers_at=0.0005,
                                        end=End(timing[-1][0] if timing else 0.0))  # fmt: skip
            item = Interaction(item.request, quiet)
            Cassette([item]).save(path)
            cache[(name, framing)] = ff.Recorded(path, url, item)
        return cache[(name, framing)]

    return get


def _record_clean(name: str, url: str) -> None:
    if name == "chat":  # the body the openai SDK sends, read to its end (the SDK stops reading at [DONE])
        with sdk.HTTP.Client() as http:
            http.post(f"{url}/v1/chat/completions", json={**apps.CHAT_PARAMS, "stream": True}).raise_for_status()
    elif name == "message":
        with sdk.client(url) as client:
            client.messages.create(**sdk.PARAMS)
    else:
        assert sdk.consume(url, "create").error is None


#: how long an app may neither end nor fail: aiohttp never ends a body whose chunk framing breaks after
#: the head arrived (the parser's error reaches neither the body's reader nor its read timeout)
HANG, HANG_EXPECTED = 10.0, 0.5


def _hang(case: ff.Case) -> float:
    return HANG_EXPECTED if "bad_chunk" in case.spec else HANG


#: faults whose outcome through aiohttp depends on where the kernel splits the stream into reads
APART = ("bad_chunk", "corrupt_gzip", "split")


def apart(case: ff.Case) -> bool:
    return any(name in case.spec for name in APART)


def _apart(case: ff.Case, reply: Reply) -> Reply:
    """For the faults in ``APART``: each piece sent 20 ms after the one before, so each arrives in a read of
    its own, as a live stream's events do. Sent back to back, the kernel may hand aiohttp several in one
    read: its parser then fails a mangled chunk-size line before handing on the head that came with it, the
    SDK decodes a gzip body's damaged piece together with the good ones before it, and ``iter_any()`` hands
    on pieces joined that a split fault put apart."""
    if not apart(case):
        return reply
    count = len(reply.events) + 1
    delays = [max(delay, 0.02) for delay in (reply.piece_delays or [])]
    return dataclasses.replace(reply, piece_delays=delays + [0.02] * (count - len(delays)))


async def run_real(app: str, case: ff.Case, recorded: ff.Recorded) -> tuple[apps.Outcome, int, list[float]]:
    """The real side: the outcome, the requests aiohttp sent, the SDK's back-off waits."""
    real = case.real(case, recorded.interaction)
    hang = _hang(case)
    with apps.counting() as run:
        if isinstance(real, ff.Refused):
            outcome = await apps.run(app, f"http://127.0.0.1:{closed_port()}", case.timeout, hang=hang)
        elif isinstance(real, ff.Blackholed):
            with blackholed_port() as port:
                outcome = await apps.run(app, f"http://127.0.0.1:{port}", case.timeout, hang=hang)
        elif isinstance(real, ff.Raw):
            with RawServer(real.mode) as raw_server:  # type: ignore[arg-type]
                outcome = await apps.run(app, raw_server.base_url, case.timeout, hang=hang)
            assert raw_server.connections == run.requests
        else:
            with WireServer() as server:
                server.queue(*[_apart(case, reply) for reply in real.replies])
                outcome = await apps.run(app, server.base_url, case.timeout, hang=hang)
            assert not server.errors
            assert len(server.requests) == run.requests
    return outcome, run.requests, run.sleeps


async def run_replay(app: str, case: ff.Case, recorded: ff.Recorded) -> tuple[apps.Outcome, int, list[float]]:
    """The replay side: the outcome, ``len(tape.calls)``, and the back-off the tape charged to each retry."""
    async with streamtape.use_cassette(recorded.path, faults=case.spec) as tape:
        outcome = await apps.run(app, recorded.url, case.timeout, hang=_hang(case))
    assert all(call.source == "replayed" and call.stack == "aiohttp" for call in tape.calls), tape.calls
    assert not tape.calls or tape.calls[0].waited == 0
    return outcome, len(tape.calls), [call.waited for call in tape.calls[1:]]


@pytest.mark.parametrize(("app", "case"), list(_params()))
async def test_fault_is_faithful_through_aiohttp(app: str, case: ff.Case,
                                                 recordings: Callable[[str, str], ff.Recorded]) -> None:  # fmt: skip
    recorded = recordings(case.name, case.framing)
    real, real_requests, real_sleeps = await run_real(app, case, recorded)
    replayed, replay_requests, replay_waits = await run_replay(app, case, recorded)

    boundaries = app != "iter_any" or apart(case)  # else the kernel may join pieces sent back to back
    real_saw = {**real.seen(boundaries=boundaries), "requests": real_requests}
    replay_saw = {**replayed.seen(boundaries=boundaries), "requests": replay_requests}
    headline = ("error", "cause_message", "status", "text", "requests")  # first, for a readable diff
    assert {k: replay_saw[k] for k in headline} == {k: real_saw[k] for k in headline}
    assert replay_saw == real_saw
    # the SDK backed off as often, and as long where the response said how long (else it draws at random)
    assert len(replay_waits) == len(real_sleeps)
    if "retry_after" in case.spec:
        assert replay_waits == real_sleeps
    # ... and the real side did what the case is about, where the case is this suite's own
    if app in ("anthropic-create", "openai"):
        assert (real.error is None) == (case.expect is None), real.error


# --- the harness itself ------------------------------------------------------------------------------------


def test_every_catalogue_fault_meets_aiohttp() -> None:
    """Every fault of the catalogue but those of one provider's streams only (their own suites prove them)."""
    covered = {fault.name for case in STREAM_CASES for step in parse(case.spec).steps for fault in step}
    catalogue = streamtape.faults.CATALOGUE
    general = {name for name in catalogue if not getattr(catalogue[name], "providers", ())}
    assert covered | set(ff.CLIENT_SIDE) >= general


@pytest.mark.skipif(not apps.OPENAI_AIOHTTP, reason="this openai SDK has no vendored aiohttp transport")
async def test_the_local_chat_stream_is_one_the_openai_sdk_reads_whole() -> None:
    events = apps.chat_events()
    with WireServer() as server:
        server.queue(apps.chat_reply())
        outcome = await apps.run("openai", server.base_url, PATIENT)
    assert outcome.error is None and outcome.text == apps.CHAT_TEXT == "Hello, world!"
    assert len(outcome.items) == len(events) - 1 and events[-1] == b"data: [DONE]\n\n"  # [DONE] is no chunk
    assert outcome.items[-1]["usage"]["total_tokens"] == 13 and outcome.items[-2]["choices"][0]["finish_reason"] == "stop"


# --- the faults no server can cause, against their real counterparts ------------------------------------------


@pytest.mark.parametrize("app", ["anthropic", "iter_any"])
async def test_pool_timeout_is_what_an_exhausted_real_pool_gives(app: str,
                                                                 recordings: Callable[[str, str], ff.Recorded]) -> None:  # fmt: skip
    """The pool's only connection is busy (a request the server never answers): the next one waits for it
    longer than its pool timeout (aiohttp's ``ClientTimeout.connect``, the SDK's ``pool``)."""
    if app == "anthropic" and not apps.SDK_AIOHTTP:
        pytest.skip("this anthropic SDK has no vendored aiohttp transport")
    recorded = recordings("message", "chunked")  # a non-stream create
    with RawServer("silence") as server, apps.counting() as run:
        real = await _one_connection_pool(app, server.base_url)
    async with streamtape.use_cassette(recorded.path, faults="pool_timeout") as tape:
        replayed = await _one_connection_pool(app, recorded.url, busy=False)
    assert replayed.seen() == real.seen() and real.error is not None
    assert "Connection timeout to host" in real.error[1] or "Connection timeout to host" in str(real.cause_message)
    assert len(tape.calls) == run.requests - 1  # the real side's first request only held the connection


async def _one_connection_pool(app: str, url: str, *, busy: bool = True) -> apps.Outcome:
    """``app``'s request through a pool of one connection, which another request holds when ``busy``."""
    import asyncio

    out = apps.Outcome()
    if app == "anthropic":
        limits = sdk.HTTP.Limits(max_connections=1)
        client = apps.anthropic.AsyncAnthropic(base_url=url, api_key="test-key-not-a-secret", max_retries=2,
                                               http_client=apps.anthropic.DefaultAioHttpClient(limits=limits))  # fmt: skip
        async with client:
            holder = asyncio.create_task(client.with_options(timeout=FOREVER, max_retries=0).messages.create(
                **sdk.PARAMS)) if busy else None  # fmt: skip
            await asyncio.sleep(0.1 if busy else 0)
            try:
                await client.with_options(timeout=QUICK).messages.create(**sdk.PARAMS)
            except Exception as exc:  # noqa: BLE001
                out.fail(exc)
            if holder is not None:
                holder.cancel()
                await asyncio.gather(holder, return_exceptions=True)
        return out
    connector = aiohttp.TCPConnector(limit=1)
    async with aiohttp.ClientSession(connector=connector, timeout=aiohttp.ClientTimeout(connect=QUICK)) as session:
        holder = asyncio.create_task(session.post(f"{url}/v1/messages", json=sdk.PARAMS,
                                                  timeout=aiohttp.ClientTimeout(total=FOREVER))) if busy else None  # fmt: skip
        await asyncio.sleep(0.1 if busy else 0)
        try:
            async with session.post(f"{url}/v1/messages", json=sdk.PARAMS) as response:
                out.status = response.status
        except Exception as exc:  # noqa: BLE001
            out.fail(exc)
        if holder is not None:
            holder.cancel()
            await asyncio.gather(holder, return_exceptions=True)
    return out


@pytest.mark.parametrize("app", ["anthropic", "readline"])
async def test_write_timeout_is_what_a_server_that_never_reads_gives(app: str,
                                                                     recordings: Callable[[str, str], ff.Recorded]) -> None:  # fmt: skip
    """aiohttp has no write timeout: a request the kernel's buffers take (any ordinary one) is sent, and then
    the silence is the read timeout's, which aiohttp starts once the request is written. (A request larger
    than those buffers, to a server that stops reading, hangs until a total timeout.)"""
    import socket

    if app == "anthropic" and not apps.SDK_AIOHTTP:
        pytest.skip("this anthropic SDK has no vendored aiohttp transport")
    recorded = recordings("text_basic", "chunked")
    with socket.create_server(("127.0.0.1", 0), backlog=8) as listener, apps.counting() as run:  # never accepted
        real = await apps.run(app, f"http://127.0.0.1:{listener.getsockname()[1]}", QUICK)
    async with streamtape.use_cassette(recorded.path, faults="write_timeout") as tape:
        replayed = await apps.run(app, recorded.url, QUICK)
    assert replayed.seen() == real.seen() and len(tape.calls) == run.requests
    assert "aiohttp.client_exceptions.SocketTimeoutError" in {level[1] for level in real.chain}
