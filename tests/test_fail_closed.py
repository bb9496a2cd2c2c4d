"""A test never passes by accident: every harness mistake reaches the test as itself, no request
escapes a tape, a failed recording is not a cassette, a damaged cassette never loads as a valid one,
and what the app did not read while recording is still the truth.

Each test makes the mistake a user would make, through the real SDK, real sockets and real pytest runs.
"""

from __future__ import annotations

import asyncio
import contextlib
import os
import socket
import threading
import time
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import anthropic
import pytest
from hypothesis import given, settings
from hypothesis import strategies as st

import streamtape
from streamtape import (
    Cassette,
    CassetteFormatError,
    ConfigError,
    IncompleteRecordingError,
    NetworkBlockedError,
    RecordingFailedError,
    StreamtapeError,
    faults,
)
from tests.support import sdk
from tests.support.wire_server import Reply, WireServer, error_reply, transcript

THINKING = streamtape.starter("thinking")
PARAMS = {"model": "claude-sonnet-4-5", "max_tokens": 1024, "messages": [{"role": "user", "content": "hi"}]}


@contextlib.contextmanager
def listener() -> Iterator[tuple[socket.socket, str]]:
    """A listening socket nobody serves: afterwards, ``attempted(sock)`` says whether anything connected."""
    sock = socket.create_server(("127.0.0.1", 0))
    sock.setblocking(False)
    try:
        yield sock, f"http://127.0.0.1:{sock.getsockname()[1]}"
    finally:
        sock.close()


def attempted(sock: socket.socket) -> bool:
    try:
        conn, _ = sock.accept()
    except BlockingIOError:
        return False
    conn.close()
    return True


# --- 1. harness errors reach the test as themselves -------------------------------------------------


def test_no_streamtape_error_is_an_exception() -> None:
    errors = [cls for cls in vars(streamtape.errors).values() if isinstance(cls, type) and issubclass(cls, StreamtapeError)]
    assert len(errors) >= 8 and not [cls for cls in errors if issubclass(cls, Exception)]


def test_a_position_past_the_end_is_refused_when_the_tape_is_entered() -> None:
    with pytest.raises(ConfigError, match=r"asks for after=500, but the longest response .* use after=0\.\.17"):
        streamtape.use_cassette(THINKING, faults="disconnect:after=500").__enter__()
    assert streamtape.guard._GUARD.undo == []  # nothing was left installed


def test_an_app_that_catches_everything_still_fails(tmp_path: Path) -> None:
    """The app's `except Exception` and the SDK's retries never see a harness error."""
    two = Cassette([Cassette.load(THINKING).interactions[0], Cassette.load(streamtape.starter("text")).interactions[0]])
    path = two.save(tmp_path / "two.yaml")  # thinking has 17 events, text 7: after=12 cuts only the first
    # the first request gets the cut (an ordinary connection error); the second interaction (7 events)
    # answers the next one, where the fault cannot apply: the harness error escapes the app's handler
    with streamtape.use_cassette(path, faults="disconnect:after=12", match_on=["path"]):
        client = anthropic.Anthropic(max_retries=2)
        with client.messages.stream(**PARAMS) as stream:
            with contextlib.suppress(Exception):
                stream.get_final_message()  # the first, cut: an ordinary (caught) connection error
        with pytest.raises(ConfigError, match=r"interaction #1 .*after=12, but the recorded response has 7"):
            try:
                with client.messages.stream(**PARAMS) as stream:
                    stream.get_final_message()
            except Exception:  # noqa: BLE001
                pytest.fail("the harness error was caught as an Exception")


@pytest.mark.parametrize(
    ("make", "message"),
    [
        (lambda: faults.disconnect(aftr=3), "disconnect has no parameter 'aftr'; valid: after, at_byte"),
        (lambda: faults.stall(seconds="long"), "stall: seconds='long' is not valid; expected float or none"),
        (lambda: faults.rechunk(8), "rechunk takes keyword parameters only"),
        (lambda: faults.parse("disconnect:aftr=3"), "fault spec 'disconnect:aftr=3': disconnect has no parameter"),
    ],
)
def test_fault_constructors_say_what_is_valid(make, message: str) -> None:
    with pytest.raises(ConfigError) as info:
        make()
    assert message in str(info.value)


def test_play_exits_2_for_a_harness_error() -> None:
    from tests.test_cli import streamtape as cli

    result = cli("play", "starter:text", "--speed", "0", "--fault", "disconnect:after=500")
    assert result.returncode == 2 and "Traceback" not in result.stderr
    assert "after=500" in result.stderr and "use after=0..7" in result.stderr


def test_serve_answers_a_harness_error_with_one_clear_non_retried_error(capfd: pytest.CaptureFixture[str]) -> None:
    from streamtape.server import ReplayServer

    two = Cassette([Cassette.load(THINKING).interactions[0], Cassette.load(streamtape.starter("text")).interactions[0]])
    with ReplayServer(two, speed=0, faults="disconnect:after=12", match_on=["method", "path"]) as replay:
        client = anthropic.Anthropic(base_url=replay.base_url, api_key="k", max_retries=2)
        with contextlib.suppress(Exception), client.messages.stream(**PARAMS) as stream:  # the cut itself
            stream.get_final_message()
        with pytest.raises(anthropic.InternalServerError) as info:
            client.messages.create(**PARAMS)
        assert len(replay.requests) == 2  # x-should-retry: false
    assert "after=12, but the recorded response has 7 SSE events" in str(info.value)
    err = capfd.readouterr().err
    assert err.count("streamtape serve:") == 1 and "Traceback" not in err


# --- 2. no request escapes ---------------------------------------------------------------------------


def test_a_raw_socket_never_connects_while_a_tape_is_entered() -> None:
    with listener() as (sock, _), streamtape.use_cassette(THINKING):
        with pytest.raises(NetworkBlockedError, match=r"a connection to 127\.0\.0\.1:\d+: streamtape blocked"):
            socket.create_connection(sock.getsockname(), timeout=1)
        assert not attempted(sock)
    with listener() as (sock, _), streamtape.use_cassette(THINKING, allow_hosts=["localhost"]):
        socket.create_connection(sock.getsockname(), timeout=1).close()  # allowed: a test's own service
        assert attempted(sock)


def test_requests_and_urllib3_never_reach_the_network_in_replay(server: WireServer) -> None:
    """urllib3 is a recorded stack (streamtape.stacks.urllib3): in replay a request is answered or refused
    by the tape, never sent, whatever urllib3's retries; allow_hosts still lets a test's own service through."""
    requests = pytest.importorskip("requests")
    urllib3 = pytest.importorskip("urllib3")
    if int(urllib3.__version__.split(".")[0]) < 2:
        pytest.skip("urllib3 1.x is blocked, not taped")
    with listener() as (sock, url), streamtape.use_cassette(THINKING) as tape:
        with pytest.raises(streamtape.UnmatchedRequestError, match=rf"matches GET {url}/health"):
            try:
                requests.get(f"{url}/health", timeout=1)
            except Exception:  # noqa: BLE001 - neither requests nor the app can swallow it
                pytest.fail("caught as an Exception")
        with pytest.raises(streamtape.UnmatchedRequestError):
            urllib3.PoolManager(retries=urllib3.Retry(3)).request("GET", f"{url}/health")
        assert not attempted(sock) and [call.source for call in tape.calls] == ["unmatched", "unmatched"]
    server.queue(error_reply("http_429_rate_limit"))
    with streamtape.use_cassette(THINKING, allow_hosts=["127.0.0.1"]) as tape:
        assert requests.post(f"{server.base_url}/v1/messages", json={}, timeout=5).status_code == 429
    assert tape.calls == [] and len(server.requests) == 1


async def test_an_aiohttp_session_is_taped_and_allow_hosts_lets_it_through(server: WireServer) -> None:
    """aiohttp is a recorded stack now (streamtape.stacks.aiohttp): a session made before the tape is
    replayed or refused by the tape, never sent; allow_hosts still lets a test's own service through."""
    aiohttp = pytest.importorskip("aiohttp")
    async with aiohttp.ClientSession() as session:  # made before the tape: still taped
        with listener() as (sock, url):
            async with streamtape.use_cassette(THINKING, match_on=["method", "path"]) as tape:
                with pytest.raises(streamtape.UnmatchedRequestError, match=r"GET .*/v1/models"):
                    await session.get(f"{url}/v1/models")
                async with session.post(f"{url}/v1/messages", json=PARAMS) as response:
                    assert response.status == 200 and b"event: message_stop" in await response.read()
            assert not attempted(sock) and [call.source for call in tape.calls] == ["unmatched", "replayed"]
        server.queue(error_reply("http_429_rate_limit"))
        async with streamtape.use_cassette(THINKING, allow_hosts=["127.0.0.1"]) as tape:
            async with session.post(f"{server.base_url}/v1/messages", json={}) as response:
                assert response.status == 429  # reached the real server, unrecorded
        assert tape.calls == [] and len(server.requests) == 1


async def test_the_sdks_aiohttp_transport_never_reaches_the_network_in_replay() -> None:
    if not hasattr(anthropic, "DefaultAioHttpClient"):
        pytest.skip("this SDK has no aiohttp transport")
    pytest.importorskip("aiohttp")
    try:
        http_client = anthropic.DefaultAioHttpClient()
    except RuntimeError as exc:  # anthropic 0.x needs the separate httpx-aiohttp package
        pytest.skip(str(exc))
    with listener() as (sock, url):
        async with streamtape.use_cassette(THINKING, match_on=["method", "path"]) as tape:
            client = anthropic.AsyncAnthropic(base_url=url, api_key="test", http_client=http_client)
            async with client.messages.stream(**PARAMS) as stream:  # replayed through aiohttp
                assert (await stream.get_final_message()).stop_reason == "end_turn"
            with pytest.raises(streamtape.UnmatchedRequestError, match=r"GET .*/v1/models"):
                try:
                    await client.get("/v1/models", cast_to=object)
                except Exception:  # noqa: BLE001 - the SDK and the app cannot swallow it
                    pytest.fail("caught as an Exception")
            await client.close()
        assert not attempted(sock) and [call.source for call in tape.calls] == ["replayed", "unmatched"]


# --- 3. the marker works alone, keyless replay everywhere --------------------------------------------


def test_use_cassette_replays_without_a_key_and_restores_the_environment(monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.delenv("ANTHROPIC_API_KEY", raising=False)
    with streamtape.use_cassette(THINKING, match_on=["method", "path"]):
        with anthropic.Anthropic().messages.stream(**PARAMS) as stream:
            assert stream.get_final_message().stop_reason == "end_turn"
    assert "ANTHROPIC_API_KEY" not in os.environ
    monkeypatch.setenv("ANTHROPIC_API_KEY", "mine")
    with streamtape.use_cassette(THINKING):
        assert os.environ["ANTHROPIC_API_KEY"] == "mine"


PLUGIN_CASES = """
import anthropic, pytest, streamtape

THINKING = streamtape.starter("thinking")
PARAMS = {"model": "m", "max_tokens": 5, "messages": []}

@pytest.fixture
def client():
    return anthropic.Anthropic()  # reads the key now: before the tape, it would have none

@pytest.mark.tape(THINKING, match_on=["method", "path"])
def test_marker_without_the_fixture(client):
    with client.messages.stream(**PARAMS) as stream:
        assert stream.get_final_message().stop_reason == "end_turn"

@pytest.mark.tape(THINKING, match_on=["method", "path"])
def test_fixture_order_does_not_matter(client, tape):
    with client.messages.stream(**PARAMS) as stream:
        assert stream.get_final_message().stop_reason == "end_turn" and len(tape.calls) == 1

@pytest.mark.tape("missing.yaml")
def test_marker_alone_blocks_the_network(client):
    client.messages.create(**PARAMS)

@pytest.mark.tape(THINKING, faults="disconnect:after=500", match_on=["method", "path"])
def test_careless_app_with_a_bad_position(client):
    try:
        client.messages.create(**PARAMS)
    except Exception:
        pass
"""


def test_the_marker_works_alone_and_fixture_order_never_matters(
    pytester: pytest.Pytester, monkeypatch: pytest.MonkeyPatch
) -> None:
    monkeypatch.delenv("ANTHROPIC_API_KEY", raising=False)
    pytester.makepyfile(PLUGIN_CASES)
    result = pytester.runpytest("-p", "no:cacheprovider")
    result.assert_outcomes(passed=2, errors=2)
    result.stdout.fnmatch_lines(["*missing.yaml: no such cassette, and record mode 'none' never records*"])
    result.stdout.fnmatch_lines(["*asks for after=500*use after=0..17*"])
    assert "Traceback" not in result.stdout.str()


# --- 4. a failed recording is not a cassette ---------------------------------------------------------


def test_a_refused_recording_saves_nothing_and_says_what_happened(tmp_path: Path) -> None:
    with listener() as (sock, url):
        pass  # closed: connections to it are refused
    path = tmp_path / "story.yaml"
    with pytest.raises(RecordingFailedError) as info:
        with streamtape.use_cassette(path, record_mode="once"):
            outcome = sdk.consume(url)
    assert outcome.error is not None and not path.exists()
    assert f"recording failed, so nothing was saved to {path}" in str(info.value)
    assert "got no response (ConnectError" in str(info.value) and "record_failures=True" in str(info.value)


def test_an_auth_failure_is_not_saved_unless_asked(server: WireServer, tmp_path: Path) -> None:
    path = tmp_path / "story.yaml"
    server.queue(error_reply("http_401_authentication"))
    with pytest.raises(RecordingFailedError, match="got 401"), streamtape.use_cassette(path, record_mode="once"):
        assert sdk.consume(server.base_url).status == 401
    assert not path.exists()
    server.queue(error_reply("http_401_authentication"))
    with streamtape.use_cassette(path, record_mode="once", record_failures=True):
        sdk.consume(server.base_url)
    from streamtape.lint import lint_file

    assert [p.kind for p in lint_file(path)] == ["recording"]


def test_a_real_mid_stream_failure_is_still_recorded(server: WireServer, tmp_path: Path) -> None:
    server.queue(transcript("text_basic", fin_after=3))
    with streamtape.use_cassette(tmp_path / "c.yaml", record_mode="once"):
        sdk.consume(server.base_url)
    assert Cassette.load(tmp_path / "c.yaml").interactions[0].response.end.error == "RemoteProtocolError"


# --- 5. sweeps record themselves ---------------------------------------------------------------------


def test_a_sweep_records_its_cassette_then_expands(pytester: pytest.Pytester, server: WireServer) -> None:
    server.queue(transcript("text_basic"))
    pytester.makepyfile(f"""
        import anthropic, pytest

        @pytest.mark.tape_faults("disconnect:after=*")
        def test_story():
            client = anthropic.Anthropic(base_url="{server.base_url}", api_key="k", max_retries=0)
            try:
                with client.messages.stream(model="m", max_tokens=5, messages=[]) as stream:
                    stream.get_final_message()
            except Exception:  # the cut: wrapped by anthropic >= 2.17, raw httpx(2) before
                pass
    """)
    first = pytester.runpytest("--tape-record-mode=once", "-p", "no:cacheprovider", "-rA")
    first.assert_outcomes(passed=1)
    first.stdout.fnmatch_lines(["*test_story?record?: recorded the clean stream to *; run again to sweep*"])
    assert "record it first" not in first.stdout.str()
    server.stop()
    second = pytester.runpytest("--tape-record-mode=once", "-p", "no:cacheprovider")
    second.assert_outcomes(passed=8)  # after=0..7: every cut point, replayed


# --- 6. a damaged cassette never loads as a valid one ------------------------------------------------

_WRITTEN = Cassette.load(THINKING).dumps()
_LINES = _WRITTEN.splitlines(keepends=True)


@settings(max_examples=300, deadline=None)
@given(start=st.integers(0, len(_LINES)), length=st.integers(0, len(_LINES)), cut=st.integers(0, len(_WRITTEN)))
def test_truncations_and_deleted_lines_load_exactly_or_are_refused(start: int, length: int, cut: int) -> None:
    original = Cassette.loads(_WRITTEN).interactions
    for text in ("".join(_LINES[:start] + _LINES[start + length :]), _WRITTEN[:cut]):
        try:
            loaded = Cassette.loads(text, path=Path("story.yaml"))
        except CassetteFormatError as exc:
            assert str(exc).startswith("story.yaml: ") and ("line" in str(exc) or "empty" in str(exc))
            continue
        assert loaded.interactions == original


def test_every_truncation_of_a_real_cassette_is_refused() -> None:
    refused = 0
    for cut in range(len(_WRITTEN) - 1):
        with contextlib.suppress(CassetteFormatError):
            Cassette.loads(_WRITTEN[:cut])
            continue
        refused += 1
    assert refused == len(_WRITTEN) - 1


def test_format_v1_still_loads() -> None:
    v1 = "version: 1\ninteractions:\n- request: {method: GET, url: 'http://x/'}\n  response: {status: 200, body: hi}\n"
    assert Cassette.loads(v1).interactions[0].body == b"hi"


# --- 7. what the app did not read is still the truth -------------------------------------------------


def _first_words(base_url: str) -> str:
    client = anthropic.Anthropic(base_url=base_url, api_key="k", max_retries=0)
    with client.messages.stream(**PARAMS) as stream:
        for text in stream.text_stream:
            return text  # stops reading after the first words, as a preview would
    return ""


def test_an_early_close_while_recording_still_saves_the_whole_stream(server: WireServer, tmp_path: Path) -> None:
    reply = transcript("text_multi_delta")
    server.queue(reply)
    with streamtape.use_cassette(tmp_path / "c.yaml", record_mode="once"):
        assert _first_words(server.base_url)
    saved = Cassette.load(tmp_path / "c.yaml").interactions[0].response
    assert saved.body == b"".join(reply.events) and saved.end == streamtape.wire.End(saved.end.at)
    server.stop()
    with streamtape.use_cassette(tmp_path / "c.yaml", match_on=["method", "path"]):  # read it all in replay
        with anthropic.Anthropic(max_retries=0).messages.stream(**PARAMS) as stream:
            assert stream.get_final_message().stop_reason == "end_turn"


async def test_an_early_close_while_recording_async(server: WireServer, tmp_path: Path) -> None:
    reply = transcript("text_multi_delta")
    server.queue(reply)
    async with streamtape.use_cassette(tmp_path / "c.yaml", record_mode="once"):
        client = anthropic.AsyncAnthropic(base_url=server.base_url, api_key="k", max_retries=0)
        async with client.messages.stream(**PARAMS) as stream:
            async for _ in stream.text_stream:
                break
        await asyncio.sleep(0)
    await client.close()  # after the tape waited for the rest of the stream
    assert Cassette.load(tmp_path / "c.yaml").interactions[0].response.body == b"".join(reply.events)


def _late_tail() -> Reply:
    """A stream whose last piece comes a while after the others: an app that stops early and closes its
    client at once has closed it before the rest arrives."""
    reply = transcript("text_multi_delta")
    reply.piece_delays = [0.0] * (len(reply.events) - 1) + [0.1, 0.0]
    return reply


def test_an_early_close_then_closing_the_client_still_saves_the_whole_stream(
    server: WireServer, tmp_path: Path
) -> None:
    """The pool's close leaves the connection to the background read; before, the cassette kept what had
    arrived with a clean end (or, on httpx, a reset that never happened)."""
    reply = _late_tail()
    server.queue(reply)
    with streamtape.use_cassette(tmp_path / "c.yaml", record_mode="once"), sdk.HTTP.Client() as http:
        with http.stream("POST", f"{server.base_url}/v1/messages", json=PARAMS) as response:
            next(response.iter_raw())
    saved = Cassette.load(tmp_path / "c.yaml").interactions[0].response
    assert saved.body == b"".join(reply.events) and isinstance(saved.end, streamtape.wire.End)


async def test_an_early_close_then_closing_the_client_still_saves_the_whole_stream_async(
    server: WireServer, tmp_path: Path
) -> None:
    reply = _late_tail()
    server.queue(reply)
    async with streamtape.use_cassette(tmp_path / "c.yaml", record_mode="once"):
        async with sdk.async_client(server.base_url) as client, client.messages.stream(**PARAMS) as stream:
            async for _ in stream.text_stream:
                break
    saved = Cassette.load(tmp_path / "c.yaml").interactions[0].response
    assert saved.body == b"".join(reply.events) and isinstance(saved.end, streamtape.wire.End)


def test_a_stream_left_open_when_the_client_closes_is_saved_as_closed_by_the_client(
    server: WireServer, tmp_path: Path
) -> None:
    """The app closes its client under a response it neither read nor closed: the client ended it, so the
    recording ends as ``client_closed`` (not as the reset reading a closed socket would look like)."""
    server.queue(_late_tail())
    with streamtape.use_cassette(tmp_path / "c.yaml", record_mode="once"):
        http = sdk.HTTP.Client()
        response = http.send(http.build_request("POST", f"{server.base_url}/v1/messages", json=PARAMS), stream=True)
        chunks = response.iter_raw()
        first = next(chunks)
        http.close()
    saved = Cassette.load(tmp_path / "c.yaml").interactions[0].response
    assert saved.body.startswith(first) and saved.end.error == "ClientClosed", saved.end
    del chunks, response


async def test_a_read_cancelled_by_the_app_is_never_saved_as_a_clean_end(server: WireServer, tmp_path: Path) -> None:
    """A timeout of the app's own (``asyncio.wait_for``) cancels the read mid-stream: the stream did not
    end, and the connection is gone with the cancelled read, so the recording ends as ``client_closed``."""
    server.queue(transcript("text_multi_delta", stall_after=2, stall_seconds=0.5))

    async def read_all(response: Any) -> None:
        async for _ in response.aiter_raw():
            pass

    async with streamtape.use_cassette(tmp_path / "c.yaml", record_mode="once"):
        async with sdk.HTTP.AsyncClient() as http:
            async with http.stream("POST", f"{server.base_url}/v1/messages", json=PARAMS) as response:
                with pytest.raises(asyncio.TimeoutError):
                    await asyncio.wait_for(read_all(response), 0.1)
    saved = Cassette.load(tmp_path / "c.yaml").interactions[0].response
    assert saved.end.error == "ClientClosed", saved.end


def test_a_ctrl_c_between_reading_a_chunk_and_noting_it_never_leaves_a_clean_end_with_a_gap(
    server: WireServer, tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    """A KeyboardInterrupt landing after a chunk was read, before the recording noted it: the app catches
    it and leaves the stream. Before, the background read went on from the next chunk and saved a clean
    end with that chunk missing (2 of 60 real Ctrl-Cs on a long stream)."""
    from streamtape.intercept import recorder

    noted, real_chunk = [], recorder.Recording.chunk

    def chunk(self: Any, data: bytes) -> None:
        noted.append(data)
        if len(noted) == 3:
            raise KeyboardInterrupt
        real_chunk(self, data)

    monkeypatch.setattr(recorder.Recording, "chunk", chunk)
    reply = transcript("text_multi_delta")
    server.queue(reply)
    with streamtape.use_cassette(tmp_path / "c.yaml", record_mode="once"), sdk.HTTP.Client() as http:
        with contextlib.suppress(KeyboardInterrupt):
            with http.stream("POST", f"{server.base_url}/v1/messages", json=PARAMS) as response:
                for _ in response.iter_raw():
                    pass
    saved = Cassette.load(tmp_path / "c.yaml").interactions[0].response
    assert saved.end.error == "ClientClosed" and b"".join(reply.events).startswith(saved.body), saved.end


def test_the_tapes_exit_waits_no_longer_than_its_bound_for_a_server_gone_silent(
    server: WireServer, tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    """The server goes silent after the app stopped reading: whether the app closed the response and its
    client (the pool left the connection to the background read) or left the response open, the tape's
    exit waits ``DRAIN_SECONDS``, not the client's read timeout, and no reading thread outlives it."""
    from streamtape.intercept import recorder

    monkeypatch.setattr(recorder, "DRAIN_SECONDS", 0.2)
    for closes in (True, False):
        server.queue(transcript("text_multi_delta", stall_after=3, stall_seconds=60))
        http = sdk.HTTP.Client(timeout=60)
        began = time.monotonic()
        with streamtape.use_cassette(tmp_path / f"{closes}.yaml", record_mode="all"):
            response = http.send(http.build_request("POST", f"{server.base_url}/v1/messages", json=PARAMS),
                                 stream=True)  # fmt: skip
            next(response.iter_raw())
            if closes:
                response.close()
                http.close()
        assert time.monotonic() - began < 30, closes  # before: the 60 s read timeout
        saved = Cassette.load(tmp_path / f"{closes}.yaml").interactions[0].response
        assert saved.end.error == "ClientClosed", (closes, saved.end)
        deadline = time.monotonic() + 10
        while any(thread.name == "streamtape-drain" for thread in threading.enumerate()):
            assert time.monotonic() < deadline, f"a background read outlived the tape (closes={closes})"
            time.sleep(0.01)
        http.close()


def test_a_urllib3_background_read_never_outlives_the_tape(
    server: WireServer, tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    """requests and urllib3 read the rest of a closed response in the background too: on a server gone
    silent, that read stopped only at the client's read timeout (none by default), long after the tape."""
    urllib3 = pytest.importorskip("urllib3")
    from streamtape.intercept import recorder

    monkeypatch.setattr(recorder, "DRAIN_SECONDS", 0.2)
    server.queue(transcript("text_multi_delta", stall_after=3, stall_seconds=60))
    began = time.monotonic()
    with streamtape.use_cassette(tmp_path / "c.yaml", record_mode="once"):
        http = urllib3.PoolManager(timeout=urllib3.Timeout(read=60))
        response = http.request("POST", f"{server.base_url}/v1/messages", json=PARAMS, preload_content=False)
        response.read(10)
        response.close()  # the rest is read in the background
    assert time.monotonic() - began < 30
    assert Cassette.load(tmp_path / "c.yaml").interactions[0].response.end.error == "ClientClosed"
    deadline = time.monotonic() + 10
    while any(thread.name == "streamtape-drain" for thread in threading.enumerate()):
        assert time.monotonic() < deadline, "the background read outlived the tape"
        time.sleep(0.01)


async def test_the_tapes_async_exit_waits_no_longer_than_its_bound(
    server: WireServer, tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    from streamtape.intercept import recorder

    monkeypatch.setattr(recorder, "DRAIN_SECONDS", 0.2)
    server.queue(transcript("text_multi_delta", stall_after=3, stall_seconds=60))
    async with sdk.HTTP.AsyncClient(timeout=60) as http:
        began = time.monotonic()
        async with streamtape.use_cassette(tmp_path / "c.yaml", record_mode="once"):
            response = await http.send(http.build_request("POST", f"{server.base_url}/v1/messages", json=PARAMS),
                                       stream=True)  # fmt: skip
            chunks = response.aiter_raw()
            await chunks.__anext__()  # then neither reads on nor closes it
        assert time.monotonic() - began < 30  # before: the 60 s read timeout
        await response.aclose()
        del chunks
    assert Cassette.load(tmp_path / "c.yaml").interactions[0].response.end.error == "ClientClosed"


def test_a_closing_pool_leaves_a_shared_connection_to_background_reads_only_when_it_is_all_they_use() -> None:
    """HTTP/2: streams share a connection. One the app still holds keeps the pool's close as it is (each
    stream on it ends ``client_closed``); one only background reads use stays open, and the last of them
    closes it. Before, the first background stream took the connection out of the list, and the others on
    it were then skipped: neither spared nor ended, and the first one's read closed it under them."""
    from streamtape.cassette import Request
    from streamtape.intercept import recorder
    from streamtape.redact import Redactor

    def stream(connection: object, background: bool) -> recorder.RecordingStream:
        recording = recorder.Recording(Request("POST", "https://api.test/v1/messages", (), b""), Redactor(()))
        recording.respond(200, b"OK", [])
        made = recorder.RecordingStream(iter(()), recording, lambda exc: None, False, sync=True)
        made.connection, made.background = connection, background
        return made

    shared = object()
    held, abandoned = stream(shared, False), stream(shared, True)
    connections = [shared]
    recorder.spare(connections)
    assert connections == [shared] and not abandoned.spared
    assert held.recording.end.kind == abandoned.recording.end.kind == "client_closed"

    shared = object()
    first, second = stream(shared, True), stream(shared, True)
    connections = [shared]
    recorder.spare(connections)
    assert connections == [] and first.spared and second.spared
    assert first.recording.end is None and second.recording.end is None  # read on
    assert [first._background_done(), second._background_done()] == [False, True]  # the last one closes it


def test_a_stream_that_could_not_be_read_to_the_end_is_saved_as_closed_by_the_client(
    server: WireServer, tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    from streamtape.intercept import recorder

    monkeypatch.setattr(recorder, "DRAIN_SECONDS", 0.0)  # the bound runs out at once
    server.queue(transcript("text_multi_delta", stall_after=4, stall_seconds=0.5))
    with streamtape.use_cassette(tmp_path / "c.yaml", record_mode="once"):
        _first_words(server.base_url)
    saved = Cassette.load(tmp_path / "c.yaml").interactions[0].response
    assert saved.end.error == "ClientClosed"
    with streamtape.use_cassette(tmp_path / "c.yaml", match_on=["method", "path"]):
        assert _first_words("https://api.anthropic.com")  # reads no further than the recording: fine
        with pytest.raises(IncompleteRecordingError, match=r"interaction #0 .*stops at byte \d+, where the app"):
            with anthropic.Anthropic(max_retries=0).messages.stream(**PARAMS) as stream:
                stream.get_final_message()


def test_a_recorded_exception_never_quotes_the_key(server: WireServer, tmp_path: Path) -> None:
    """h11 quotes a header value it rejects: a key with a trailing newline must not reach the file."""
    import httpx2

    key = "fake-key-for-redaction-0123456789"
    with streamtape.use_cassette(tmp_path / "c.yaml", record_mode="all", record_failures=True):
        with pytest.raises(httpx2.LocalProtocolError, match="Illegal header value"):
            httpx2.post(f"{server.base_url}/v1/messages", headers={"Authorization": f"Bearer {key}\n"}, json={})
    text = (tmp_path / "c.yaml").read_text()
    assert "Illegal header value" in text and key not in text


@pytest.mark.parametrize("stack", ["httpx2", "requests", "aiohttp"])
def test_a_host_allowed_by_name_does_not_let_its_address_through_unrecorded(
    server: WireServer, tmp_path: Path, stack: str
) -> None:
    """allow_hosts=["localhost"] is for a health check; the API faked on 127.0.0.1 is still recorded. (The
    socket guard accepts the name's addresses; a request's URL must name an allowed host itself.)"""
    path = tmp_path / "api.yaml"
    server.queue(error_reply("http_429_rate_limit"))
    url = f"{server.base_url}/v1/messages"
    with streamtape.use_cassette(path, record_mode="once", record_failures=True, allow_hosts=["localhost"]) as tape:
        if stack == "httpx2":
            status = sdk.HTTP.post(url, json={}).status_code
        elif stack == "requests":
            status = pytest.importorskip("requests").post(url, json={}, timeout=5).status_code
        else:
            aiohttp = pytest.importorskip("aiohttp")

            async def post() -> int:
                async with aiohttp.ClientSession() as session, session.post(url, json={}) as response:
                    await response.read()
                    return response.status

            status = asyncio.run(post())
    assert status == 429 and [call.source for call in tape.calls] == ["recorded"]
    assert len(Cassette.load(path).interactions) == 1
