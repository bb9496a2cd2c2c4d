"""The aiohttp stack (streamtape.stacks.aiohttp): recorded from a real server, replayed with the server
gone, byte-exact and in the recorded chunks, and every fault compared with the same failure from a real
misbehaving server on 127.0.0.1, differentially: through plain aiohttp and through the anthropic SDK's
aiohttp transport (``DefaultAioHttpClient``), everything the app can observe (class, message, the whole
``__cause__`` / ``__context__`` chain, the text and events so far).
"""

from __future__ import annotations

import time
from collections.abc import Iterator
from contextlib import contextmanager
from pathlib import Path
from typing import Any

import anthropic
import pytest

import streamtape
from streamtape.engine.clock import VirtualClock
from tests.support import sdk
from tests.support.builders import TEXT_BASIC
from tests.support.builders import save as save_cassette
from tests.support.raw_server import RawServer, closed_port
from tests.support.wire_server import WireServer, error_reply, transcript

aiohttp = pytest.importorskip("aiohttp")

#: the SDK vendors an aiohttp transport (anthropic >= 1); under 0.x only plain aiohttp is tested here
SDK_AIOHTTP = hasattr(anthropic, "DefaultAioHttpClient") and sdk.SDK_MAJOR >= 1
needs_sdk = pytest.mark.skipif(not SDK_AIOHTTP, reason="this SDK has no vendored aiohttp transport")

SLOW = 0.3  # the client's read timeout where a stall must fire it
#: a transcript sent one event per write, 20 ms apart: each event is its own chunk on the wire
PACED = {"piece_delay": 0.02}


# --- the two kinds of app -------------------------------------------------------------------------------


async def plain(url: str, *, read_timeout: float | None = None,
                total: float | None = None) -> tuple[int | None, list[bytes], list[sdk.Level]]:  # fmt: skip
    """Plain aiohttp: status, the chunks as ``iter_any`` hands them on, and the whole error chain."""
    status, chunks = None, []
    try:
        async with aiohttp.ClientSession(timeout=aiohttp.ClientTimeout(sock_read=read_timeout, total=total)) as session:
            async with session.post(f"{url}/v1/messages", json={**sdk.PARAMS, "stream": True}) as response:
                status = response.status
                async for chunk in response.content.iter_any():
                    chunks.append(chunk)
    except Exception as exc:  # noqa: BLE001 - what the app sees is the point
        return status, chunks, sdk.chain(exc)
    return status, chunks, []


async def through_sdk(url: str, *, read_timeout: float | None = None, retries: int = 0) -> sdk.Outcome:
    """The anthropic SDK over its aiohttp transport, streaming events."""
    timeout: Any = sdk.HTTP.Timeout(10.0, read=read_timeout) if read_timeout else 10.0
    client = anthropic.AsyncAnthropic(base_url=url, api_key="test-key-not-a-secret", max_retries=retries,
                                      timeout=timeout, http_client=anthropic.DefaultAioHttpClient())  # fmt: skip
    async with client:
        return await sdk._aconsume(client, "events", dict(sdk.PARAMS))  # noqa: SLF001


def origin(path: Path) -> str:
    """The scheme, host and port the cassette's first request went to (its server is gone now)."""
    return streamtape.Cassette.load(path).interactions[0].request.url.rsplit("/v1/", 1)[0]


def seen(outcome: sdk.Outcome) -> dict[str, Any]:
    return {"error": outcome.error, "chain": outcome.chain, "events": outcome.events, "final": outcome.final,
            "snapshot": outcome.snapshot, "status": outcome.status}  # fmt: skip


@contextmanager
def no_backoff() -> Iterator[list[float]]:
    """The real side's SDK back-off, noted instead of slept (a tape makes it virtual on its side)."""
    sleeps: list[float] = []
    base = anthropic._base_client
    real = base.anyio

    class _Anyio:
        def __getattr__(self, name: str) -> Any:
            return getattr(real, name)

        async def sleep(self, seconds: float) -> None:
            sleeps.append(seconds)
            await real.sleep(0)

    with pytest.MonkeyPatch.context() as patch:
        patch.setattr(base, "anyio", _Anyio())
        yield sleeps


@pytest.fixture(scope="module")
def recorded(tmp_path_factory: pytest.TempPathFactory) -> Path:
    """The clean text_basic stream, recorded through the SDK's aiohttp transport from a real server
    (through plain aiohttp where the SDK has none)."""
    path = tmp_path_factory.mktemp("aiohttp") / "clean.yaml"

    async def record() -> None:
        with WireServer() as server:
            server.queue(transcript("text_basic", **PACED))
            async with streamtape.use_cassette(path, record_mode="all"):
                if SDK_AIOHTTP:
                    assert (await through_sdk(server.base_url)).error is None
                else:
                    assert (await plain(server.base_url))[2] == []

    import asyncio

    asyncio.run(record())
    return path


# --- recording and replay ----------------------------------------------------------------------------------


async def test_plain_aiohttp_records_live_and_replays_byte_exact_in_its_chunks(tmp_path: Path) -> None:
    path = tmp_path / "plain.yaml"
    with WireServer() as server:
        server.queue(transcript("text_basic", **PACED))
        async with streamtape.use_cassette(path, record_mode="once") as tape:
            status, live, error = await plain(server.base_url)
        url = server.base_url
    assert (status, error, b"".join(live)) == (200, [], TEXT_BASIC) and len(live) == 7  # one event per chunk
    assert [call.source for call in tape.calls] == ["recorded"]
    for speed in (0, 1):  # the server is gone: virtual time, then recorded time
        async with streamtape.use_cassette(path, speed=speed) as tape:
            assert await plain(url) == (200, live, [])
        assert [call.source for call in tape.calls] == ["replayed"]
    interaction = streamtape.Cassette.load(path).interactions[0]
    assert interaction.request.url == f"{url}/v1/messages" and len(interaction.response.timing) == 7


@pytest.mark.parametrize("reply", [{"fin_after": 3}, {"rst_after": 3}, {"fin_after": 3, "framing": "content-length"}])
async def test_a_real_cut_is_recorded_as_its_kind_and_replays_as_aiohttp_raised_it(reply: dict[str, Any],
                                                                                   tmp_path: Path) -> None:  # fmt: skip
    path = tmp_path / "cut.yaml"
    with WireServer() as server:
        server.queue(transcript("text_basic", **PACED, **reply))
        async with streamtape.use_cassette(path, record_mode="once"):
            live = await plain(server.base_url)
        url = server.base_url
    end = streamtape.Cassette.load(path).interactions[0].response.end
    assert end.kind == ("reset" if "rst_after" in reply else "fin") and live[2]
    async with streamtape.use_cassette(path):
        assert await plain(url) == live


async def test_replay_is_paced_by_the_tapes_clock(tmp_path: Path) -> None:
    timing = ((0.25, 100), (0.5, 200), (1.0, len(TEXT_BASIC) - 300))
    path = save_cassette(tmp_path / "c.yaml", "http://api.test/v1/messages", timing=timing)
    clock = VirtualClock(paced=True)
    async with streamtape.use_cassette(path, clock=clock, match_on=["method", "path"]):
        assert await plain("http://api.test") == (200, [TEXT_BASIC[:100], TEXT_BASIC[100:300], TEXT_BASIC[300:]], [])
    assert clock.waits == pytest.approx([0.25, 0.25, 0.5])


@needs_sdk
async def test_the_sdks_aiohttp_transport_records_and_replays(recorded: Path) -> None:
    with WireServer() as server:
        server.queue(transcript("text_basic", **PACED))
        live = await through_sdk(server.base_url)
    async with streamtape.use_cassette(recorded) as tape:  # the recorded server is gone
        replayed = await through_sdk(origin(recorded))
    assert seen(replayed) == seen(live) and replayed.error is None
    assert [call.source for call in tape.calls] == ["replayed"]


async def test_a_cassette_recorded_through_httpx2_replays_through_aiohttp(tmp_path: Path) -> None:
    path = tmp_path / "httpx2.yaml"
    with WireServer() as server:
        server.queue(transcript("text_basic", **PACED))
        async with streamtape.use_cassette(path, record_mode="once"):
            by_httpx2 = await sdk.aconsume(server.base_url)  # the SDK's default transport: httpx2
        url = server.base_url
    async with streamtape.use_cassette(path) as tape:
        status, chunks, error = await plain(url)
        if SDK_AIOHTTP:
            by_aiohttp = await through_sdk(url)
            assert seen(by_aiohttp) == seen(by_httpx2) and by_aiohttp.error is None
    assert (status, b"".join(chunks), error) == (200, TEXT_BASIC, [])
    assert [call.source for call in tape.calls] == ["replayed"] * (1 + SDK_AIOHTTP)


async def test_an_unmatched_request_raises_as_itself_and_never_reaches_the_network(recorded: Path) -> None:
    port = closed_port()
    async with streamtape.use_cassette(recorded) as tape:
        with pytest.raises(streamtape.UnmatchedRequestError):
            async with aiohttp.ClientSession() as session:
                await session.get(f"http://127.0.0.1:{port}/v1/models")
    assert [call.source for call in tape.calls] == ["unmatched"]


# --- faults, differentially -----------------------------------------------------------------------------

#: (fault spec, the real server's misbehaviour, the client's read timeout)
MID_BODY = {
    "disconnect:after=3": ({"fin_after": 3}, None),
    "reset:after=3": ({"rst_after": 3}, None),
    "stall:after=3": ({"stall_after": 3, "stall_seconds": 5.0}, SLOW),
}
BEFORE_HEADERS = {"disconnect": ("fin", None), "reset": ("rst", None), "timeout": ("silence", SLOW)}


@needs_sdk
@pytest.mark.parametrize("spec", list(MID_BODY))
async def test_a_mid_body_fault_through_the_sdk_is_what_a_real_socket_gives(spec: str, recorded: Path) -> None:
    reply, timeout = MID_BODY[spec]
    with WireServer() as server:
        server.queue(transcript("text_basic", **PACED, **reply))
        real = await through_sdk(server.base_url, read_timeout=timeout)
    url = origin(recorded)
    async with streamtape.use_cassette(recorded, faults=spec):
        replayed = await through_sdk(url, read_timeout=timeout)
    assert real.error is not None and len(real.events) > 0
    assert seen(replayed) == seen(real)


@pytest.mark.parametrize("spec", list(MID_BODY))
async def test_a_mid_body_fault_through_plain_aiohttp_is_what_a_real_socket_gives(spec: str, recorded: Path) -> None:
    reply, timeout = MID_BODY[spec]
    with WireServer() as server:
        server.queue(transcript("text_basic", **reply))
        real = await plain(server.base_url, read_timeout=timeout)
    url = origin(recorded)
    async with streamtape.use_cassette(recorded, faults=spec, match_on=["method", "path"]):
        replayed = await plain(url, read_timeout=timeout)
    assert real[2] and replayed[0] == real[0] and replayed[2] == real[2]
    assert b"".join(replayed[1]) == b"".join(real[1])


@pytest.mark.parametrize("spec", list(BEFORE_HEADERS))
async def test_a_fault_before_the_headers_is_what_a_real_socket_gives(spec: str, recorded: Path) -> None:
    mode, timeout = BEFORE_HEADERS[spec]
    with RawServer(mode) as server:  # type: ignore[arg-type]
        real_plain = await plain(server.base_url, read_timeout=timeout)
        real_sdk = await through_sdk(server.base_url, read_timeout=timeout) if SDK_AIOHTTP else None
    url = origin(recorded)
    async with streamtape.use_cassette(recorded, faults=spec, match_on=["method", "path"]):
        assert await plain(url, read_timeout=timeout) == real_plain
        if real_sdk is not None:
            assert real_sdk.error is not None
            assert seen(await through_sdk(url, read_timeout=timeout)) == seen(real_sdk)
    assert real_plain[2]


async def test_a_refused_connection_is_what_a_real_refusal_gives(recorded: Path) -> None:
    url = f"http://127.0.0.1:{closed_port()}"
    real_plain = await plain(url)
    real_sdk = await through_sdk(url) if SDK_AIOHTTP else None
    async with streamtape.use_cassette(recorded, faults="refuse", match_on=["method", "path"]):
        assert await plain(url) == real_plain
        if real_sdk is not None:
            assert seen(await through_sdk(url)) == seen(real_sdk)
    assert "ClientConnectorError" in str(real_plain[2])


@needs_sdk
async def test_rate_limit_then_ok_retries_through_the_sdk_as_against_a_real_server(recorded: Path) -> None:
    with WireServer() as server, no_backoff() as sleeps:
        server.queue(error_reply("http_429_rate_limit"), transcript("text_basic", **PACED))
        real = await through_sdk(server.base_url, retries=2)
        attempts = len(server.requests)
    url = origin(recorded)
    async with streamtape.use_cassette(recorded, faults="rate_limit -> ok") as tape:
        replayed = await through_sdk(url, retries=2)
    assert seen(replayed) == seen(real) and real.error is None and attempts == 2 and len(sleeps) == 1
    assert [call.source for call in tape.calls] == ["replayed", "replayed"] and tape.calls[1].waited > 0


async def test_at_speed_zero_a_stall_raises_at_once(recorded: Path) -> None:
    url = origin(recorded)
    started = time.monotonic()
    async with streamtape.use_cassette(recorded, faults="stall:after=3", match_on=["method", "path"]):
        status, _, error = await plain(url, read_timeout=30.0)
        outcome = await through_sdk(url, read_timeout=30.0) if SDK_AIOHTTP else None
    assert time.monotonic() - started < 5.0
    assert status == 200 and error[0][1] == "aiohttp.client_exceptions.SocketTimeoutError"
    assert outcome is None or (outcome.error is not None and outcome.error[0] == "anthropic.APITimeoutError")


# --- explicit wiring: one session, nothing patched ---------------------------------------------------------


def test_a_sync_transport_for_aiohttp_is_refused_in_one_sentence(recorded: Path) -> None:
    tape = streamtape.use_cassette(recorded)
    with pytest.raises(streamtape.ConfigError, match="async-only") as raised:
        tape.transport(stack="aiohttp")
    message = str(raised.value)
    assert "tape.async_transport(stack='aiohttp')" in message and message.count(". ") == 0


async def test_one_session_records_and_replays_through_its_connector_with_nothing_patched(tmp_path: Path) -> None:
    path = tmp_path / "explicit.yaml"
    original = aiohttp.connector.BaseConnector.connect
    with WireServer() as server:
        server.queue(transcript("text_basic", **PACED), transcript("text_basic"))
        tape = streamtape.use_cassette(path, record_mode="once").load()  # loaded, never entered
        connector = tape.async_transport(stack="aiohttp")
        assert isinstance(connector, aiohttp.TCPConnector) and aiohttp.connector.BaseConnector.connect is original
        async with aiohttp.ClientSession(connector=connector) as session:
            async with session.post(f"{server.base_url}/v1/messages", json={**sdk.PARAMS, "stream": True}) as response:
                live = [chunk async for chunk in response.content.iter_any()]
        tape.save()
        status, body, error = await plain(server.base_url)  # another session: the network, untaped
        assert (status, b"".join(body), error) == (200, TEXT_BASIC, [])
        url = server.base_url
    assert b"".join(live) == TEXT_BASIC and len(live) == 7
    assert [(call.source, call.stack) for call in tape.calls] == [("recorded", "aiohttp")]
    assert len(server.requests) == 2 and len(streamtape.Cassette.load(path).interactions) == 1

    replay = streamtape.use_cassette(path, faults="disconnect:after=3").load()
    async with aiohttp.ClientSession(connector=replay.async_transport(stack="aiohttp")) as session:
        async with session.post(f"{url}/v1/messages", json={**sdk.PARAMS, "stream": True}) as response:
            chunks = []
            with pytest.raises(aiohttp.ClientPayloadError, match="TransferEncodingError"):
                async for chunk in response.content.iter_any():
                    chunks.append(chunk)
    assert chunks == live[:3] and aiohttp.connector.BaseConnector.connect is original
    assert [(call.source, call.faults) for call in replay.calls] == [("replayed", ("disconnect:after=3",))]


@needs_sdk
async def test_the_sdks_aiohttp_transport_takes_a_session_wired_to_one_tape(recorded: Path) -> None:
    from anthropic._vendor.httpx_aiohttp import AiohttpTransport

    tape = streamtape.use_cassette(recorded, faults="rate_limit -> ok").load()
    session = aiohttp.ClientSession(connector=tape.async_transport(stack="aiohttp"))
    http_client = anthropic.DefaultAioHttpClient(transport=AiohttpTransport(client=session))
    client = anthropic.AsyncAnthropic(base_url=origin(recorded), api_key="test-key-not-a-secret", max_retries=2,
                                      http_client=http_client)  # fmt: skip
    with no_backoff() as sleeps:  # not entered: the SDK's back-off is the app's own (here: noted, not slept)
        async with client:
            outcome = await sdk._aconsume(client, "events", dict(sdk.PARAMS))  # noqa: SLF001
    assert outcome.error is None and len(sleeps) == 1
    assert [call.source for call in tape.calls] == ["replayed", "replayed"]


# --- recording: what the app did not read is still read ----------------------------------------------------


async def _read_two_then_let_go(url: str) -> tuple[list[bytes], float]:
    """Plain aiohttp that reads two chunks of the stream, releases the response and closes its session; the
    chunks, and the seconds from the second chunk to the session's end."""
    async with aiohttp.ClientSession() as session:
        async with session.post(f"{url}/v1/messages", json={**sdk.PARAMS, "stream": True}) as response:
            chunks = []
            async for chunk in response.content.iter_any():
                chunks.append(chunk)
                if len(chunks) == 2:
                    break
            read = time.monotonic()
    return chunks, time.monotonic() - read


@pytest.mark.parametrize(("reply", "end"), [({}, "End"), ({"fin_after": 5}, "fin"), ({"rst_after": 5}, "reset")])
async def test_a_stream_the_app_let_go_of_is_read_to_its_real_end_in_the_background(
    reply: dict[str, Any], end: str, tmp_path: Path
) -> None:
    path = tmp_path / "abandoned.yaml"
    with WireServer() as server:
        served = transcript("text_basic", piece_delay=0.1, **reply)
        server.queue(served)
        async with streamtape.use_cassette(path, record_mode="once"):
            chunks, let_go = await _read_two_then_let_go(server.base_url)
    # the app is not held up by the read that goes on (0.3 s or more of the stream is still to come)
    assert b"".join(chunks) == served.body[: len(b"".join(chunks))] and let_go < 0.25
    response = streamtape.Cassette.load(path).interactions[0].response
    kept = served.events if not reply else served.events[:5]
    assert response.body == b"".join(kept) and len(response.timing) == len(kept)
    assert (type(response.end).__name__ if end == "End" else response.end.kind) == end


@needs_sdk
async def test_an_sdk_stream_broken_off_early_is_recorded_whole(tmp_path: Path) -> None:
    path = tmp_path / "sdk-abandoned.yaml"
    with WireServer() as server:
        server.queue(transcript("text_basic", piece_delay=0.03))
        async with streamtape.use_cassette(path, record_mode="once"):
            client = anthropic.AsyncAnthropic(base_url=server.base_url, api_key="test-key-not-a-secret",
                                              http_client=anthropic.DefaultAioHttpClient())  # fmt: skip
            async with client:
                async with client.messages.stream(**sdk.PARAMS) as stream:
                    async for event in stream:
                        if event.type == "content_block_start":
                            break
        url = server.base_url
    response = streamtape.Cassette.load(path).interactions[0].response
    assert response.body == TEXT_BASIC and type(response.end).__name__ == "End"
    async with streamtape.use_cassette(path):
        assert (await through_sdk(url)).final["stop_reason"] == "end_turn"


async def test_the_background_read_stops_at_its_bound(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    from streamtape.intercept import recorder

    monkeypatch.setattr(recorder, "DRAIN_BYTES", 100)
    path = tmp_path / "bounded.yaml"
    with WireServer() as server:
        server.queue(transcript("text_basic", piece_delay=0.02))
        async with streamtape.use_cassette(path, record_mode="once"):
            chunks, _ = await _read_two_then_let_go(server.base_url)
    response = streamtape.Cassette.load(path).interactions[0].response
    assert response.end.kind == "client_closed" and len(chunks) <= len(response.timing) < 7


# --- virtual time ------------------------------------------------------------------------------------------


@pytest.mark.parametrize("spec", ["stall:after=3", "timeout"])
async def test_a_stall_replays_at_once_on_the_virtual_clock_and_fires_aiohttps_own_timeout(
    spec: str, recorded: Path
) -> None:
    url, clock = origin(recorded), VirtualClock(paced=True)
    started = time.monotonic()
    async with streamtape.use_cassette(recorded, faults=spec, match_on=["method", "path"], clock=clock):
        status, _, error = await plain(url, read_timeout=30.0)
        outcome = await through_sdk(url, read_timeout=30.0) if SDK_AIOHTTP else None
    assert time.monotonic() - started < 5.0 and clock.now() >= 30.0  # 30 s of silence, none of it waited
    assert status == (200 if spec != "timeout" else None)
    assert error[0][1] == "aiohttp.client_exceptions.SocketTimeoutError"
    assert error[0][2] == "Timeout on reading data from socket"
    assert issubclass(aiohttp.SocketTimeoutError, aiohttp.ServerTimeoutError)
    if outcome is not None:
        chain = [level[1] for level in outcome.chain[:3]]
        assert chain == ["anthropic.APITimeoutError", "httpx2.ReadTimeout", error[0][1]]


# --- a total deadline (ClientTimeout(total=...), no sock_read: what google-genai's async client sets) ----------

#: (fault spec, the real server's misbehaviour: a WireServer reply or a RawServer mode)
TOTAL_ONLY: dict[str, Any] = {
    "stall:after=3": {"stall_after": 3, "stall_seconds": 5.0},
    "linger": {"stall_after": 7, "stall_seconds": 5.0},  # every event, then the body does not end
    "timeout": "silence",
}


async def _real_total(spec: str, **timeouts: float | None) -> tuple[int | None, list[bytes], list[sdk.Level]]:
    misbehaviour = TOTAL_ONLY[spec]
    if isinstance(misbehaviour, str):
        with RawServer(misbehaviour) as raw_server:  # type: ignore[arg-type]
            return await plain(raw_server.base_url, **timeouts)
    with WireServer() as server:
        server.queue(transcript("text_basic", **misbehaviour))
        return await plain(server.base_url, **timeouts)


@pytest.mark.parametrize("spec", list(TOTAL_ONLY))
async def test_silence_past_a_total_deadline_is_what_a_real_socket_gives(spec: str, recorded: Path) -> None:
    """aiohttp's own TimeoutHandle fires in the tape's time: TimeoutError from CancelledError, as for real,
    and at speed 0 none of the deadline is waited."""
    real = await _real_total(spec, total=SLOW)
    url, clock = origin(recorded), VirtualClock(paced=True)
    started = time.monotonic()
    async with streamtape.use_cassette(recorded, faults=spec, match_on=["method", "path"], clock=clock):
        replayed = await plain(url, total=SLOW)
    elapsed = time.monotonic() - started
    assert [level[1] for level in real[2]] == ["builtins.TimeoutError", "asyncio.exceptions.CancelledError",
                                               "= cause"]  # fmt: skip
    assert replayed[0] == real[0] and replayed[2] == real[2] and b"".join(replayed[1]) == b"".join(real[1])
    assert elapsed < SLOW and clock.now() == pytest.approx(SLOW)  # the deadline passed on the tape only


async def test_the_first_of_sock_read_and_total_fires(recorded: Path) -> None:
    url = origin(recorded)
    for timeouts in ({"read_timeout": SLOW, "total": 30.0}, {"read_timeout": 30.0, "total": SLOW}):
        real = await _real_total("stall:after=3", **timeouts)
        async with streamtape.use_cassette(recorded, faults="stall:after=3", match_on=["method", "path"]):
            replayed = await plain(url, **timeouts)
        assert replayed[0] == real[0] and replayed[2] == real[2] and b"".join(replayed[1]) == b"".join(real[1])
        expected = "SocketTimeoutError" if timeouts["total"] == 30.0 else "TimeoutError"
        assert real[2][0][1].endswith(f".{expected}")


async def test_a_stall_forever_with_no_timeout_at_all_is_still_refused(recorded: Path) -> None:
    with pytest.raises(streamtape.ConfigError, match="has no read timeout"):
        async with streamtape.use_cassette(recorded, faults="stall:after=3", match_on=["method", "path"]):
            await plain(origin(recorded))


async def test_a_silence_shorter_than_what_is_left_of_the_deadline_only_delays(recorded: Path) -> None:
    clean, clock = await _clean(recorded), VirtualClock(paced=True)
    spec = "stall:after=3,seconds=20"
    async with streamtape.use_cassette(recorded, faults=spec, match_on=["method", "path"], clock=clock):
        assert await plain(origin(recorded), total=30.0) == (200, clean, [])
    assert 20.0 <= clock.now() < 30.0


async def _clean(recorded: Path) -> list[bytes]:
    async with streamtape.use_cassette(recorded, match_on=["method", "path"]):
        status, chunks, error = await plain(origin(recorded))
    assert (status, error) == (200, [])
    return chunks


async def test_at_speed_zero_the_real_deadline_never_fires_in_wall_clock_time(tmp_path: Path) -> None:
    """A replay at speed 0 takes none of the recording's time, so a loaded CPU (here: the app blocking its
    own loop between reads for longer than the whole deadline) cannot make aiohttp's real timer cut off a
    stream the tape delivers within it (10 ms of a 50 ms deadline)."""
    timing = ((0.0, 100), (0.005, 200), (0.01, len(TEXT_BASIC) - 300))
    path = save_cassette(tmp_path / "c.yaml", "http://api.test/v1/messages", timing=timing)
    chunks = []
    async with streamtape.use_cassette(path, match_on=["method", "path"]):
        async with aiohttp.ClientSession(timeout=aiohttp.ClientTimeout(total=0.05)) as session:
            async with session.post("http://api.test/v1/messages", json={}) as response:
                async for chunk in response.content.iter_any():
                    chunks.append(chunk)
                    time.sleep(0.06)  # noqa: ASYNC251 - the point: the wall clock passes the deadline
    assert chunks == [TEXT_BASIC[:100], TEXT_BASIC[100:300], TEXT_BASIC[300:]]
