"""The urllib3 stack (requests, boto3): recorded from real sockets, replayed byte-exact in the recorded
chunk boundaries with the server gone, and every fault raising what a real misbehaving server makes
urllib3 and requests raise: the same classes, messages and ``__cause__``/``__context__`` chains."""

from __future__ import annotations

import re
import socket
import threading
import time
from collections.abc import Callable, Iterator
from contextlib import contextmanager
from pathlib import Path
from typing import Any

import pytest

import streamtape
from streamtape import UnmatchedRequestError
from streamtape.wire import End
from tests.support import builders
from tests.support.raw_server import closed_port
from tests.support.wire_server import Reply, WireServer, error_reply, transcript

requests = pytest.importorskip("requests")
urllib3 = pytest.importorskip("urllib3")
if int(urllib3.__version__.split(".")[0]) < 2:
    pytest.skip("the urllib3 adapter needs urllib3 2.x", allow_module_level=True)

BODY = {"model": "m", "max_tokens": 5, "messages": []}


def chain(exc: BaseException | None, depth: int = 0) -> list[tuple[str, str, bool]]:
    """The exception and everything under it: class, text (ports made neutral) and suppression."""
    out: list[tuple[str, str, bool]] = []
    seen: set[int] = set()

    def walk(e: BaseException | None, via: str, level: int) -> None:
        if e is None or id(e) in seen or level > 8:
            return
        seen.add(id(e))
        text = re.sub(r"port=\d+|127\.0\.0\.1:\d+", "PORT", repr(e))
        out.append((f"{via}{type(e).__module__}.{type(e).__qualname__}", text, e.__suppress_context__))
        walk(e.__cause__, "cause:", level + 1)
        walk(e.__context__, "context:", level + 1)

    walk(exc, "", depth)
    return out


def outcome(fn: Callable[[], Any]) -> tuple[Any, list[tuple[str, str, bool]]]:
    try:
        return fn(), []
    except Exception as exc:  # noqa: BLE001 - the point is to compare it
        return None, chain(exc)


def via_requests(base_url: str, *, timeout: float = 5.0) -> Callable[[], Any]:
    def run() -> Any:
        response = requests.post(f"{base_url}/v1/messages", json=BODY, stream=True, timeout=timeout)
        return response.status_code, list(response.iter_lines())

    return run


def via_urllib3(base_url: str, *, timeout: float = 5.0, retries: Any = False) -> Callable[[], Any]:
    def run() -> Any:
        http = urllib3.PoolManager()
        response = http.request("POST", f"{base_url}/v1/messages", json=BODY, preload_content=False,
                                timeout=timeout, retries=retries)  # fmt: skip
        return response.status, list(response.stream())

    return run


def record(server: WireServer, path: Path, reply: Reply, run: Callable[[str], Callable[[], Any]]) -> Any:
    server.queue(reply)
    with streamtape.use_cassette(path, record_mode="once") as tape:
        result = run(server.base_url)()
    assert [call.source for call in tape.calls] == ["recorded"]
    return result


# --- record and replay ---------------------------------------------------------------------------------


def test_requests_stream_records_live_and_replays_byte_exact_with_the_server_gone(
    server: WireServer, tmp_path: Path
) -> None:
    reply = transcript("text_basic")
    path = tmp_path / "c.yaml"

    def chunks(base_url: str) -> Callable[[], Any]:
        def run() -> Any:
            response = requests.post(f"{base_url}/v1/messages", json=BODY, stream=True, timeout=5)
            return list(response.iter_content(None))

        return run

    recorded = record(server, path, reply, chunks)
    assert recorded == reply.events  # one chunk per server write, handed on as it came
    saved = streamtape.Cassette.load(path).interactions[0].response
    assert saved.body == reply.body and [size for _, size in saved.timing] == [len(e) for e in reply.events]
    server.stop()
    with streamtape.use_cassette(path) as tape:
        assert chunks(server.base_url)() == reply.events  # the same bytes in the same boundaries
        lines = via_requests(server.base_url)()
    assert lines == (200, reply.body.splitlines())
    assert [call.source for call in tape.calls] == ["replayed", "replayed"]


def test_urllib3_preload_false_stream_records_and_replays_in_the_recorded_chunks(
    server: WireServer, tmp_path: Path
) -> None:
    reply = transcript("text_multi_delta")
    path = tmp_path / "c.yaml"
    assert record(server, path, reply, via_urllib3) == (200, reply.events)
    server.stop()
    with streamtape.use_cassette(path):
        assert via_urllib3(server.base_url)() == (200, reply.events)
        response = urllib3.PoolManager().request("POST", f"{server.base_url}/v1/messages", json=BODY)
        assert isinstance(response, urllib3.HTTPResponse) and response.data == reply.body  # preloaded


def test_a_content_length_body_replays_as_urllib3_reads_it(server: WireServer, tmp_path: Path) -> None:
    reply = transcript("text_basic", framing="content-length")
    path = tmp_path / "c.yaml"
    real = record(server, path, reply, via_urllib3)
    server.stop()
    with streamtape.use_cassette(path):
        assert via_urllib3(server.base_url)() == real


def test_a_cassette_recorded_through_httpx2_replays_through_requests(server: WireServer, tmp_path: Path) -> None:
    import httpx2

    reply = transcript("text_basic")
    server.queue(reply)
    path = tmp_path / "c.yaml"
    with streamtape.use_cassette(path, record_mode="once"):
        with httpx2.Client() as client, client.stream("POST", f"{server.base_url}/v1/messages", json=BODY) as r:
            assert b"".join(r.iter_bytes()) == reply.body
    server.stop()
    with streamtape.use_cassette(path, match_on=["method", "path"]):
        response = requests.post(f"{server.base_url}/v1/messages", json=BODY, stream=True, timeout=5)
        assert list(response.iter_content(None)) == reply.events


def test_replay_never_touches_the_network_and_unmatched_requests_raise(tmp_path: Path) -> None:
    port = closed_port()  # a request that reached the network would be refused, not unmatched
    with streamtape.use_cassette(streamtape.starter("text")):
        with pytest.raises(UnmatchedRequestError, match=rf"No interaction .* matches GET http://127.0.0.1:{port}/x"):
            requests.get(f"http://127.0.0.1:{port}/x", timeout=1)
        with pytest.raises(UnmatchedRequestError):
            urllib3.PoolManager().request("GET", f"http://127.0.0.1:{port}/x")


def test_allow_hosts_passes_through_unrecorded(server: WireServer) -> None:
    server.queue(error_reply("http_429_rate_limit"))
    with streamtape.use_cassette(streamtape.starter("text"), allow_hosts=["127.0.0.1"]) as tape:
        assert requests.post(f"{server.base_url}/v1/messages", json=BODY, timeout=5).status_code == 429
    assert tape.calls == [] and len(server.requests) == 1


def test_urllib3s_own_retries_run_as_in_production(tmp_path: Path) -> None:
    """``Retry`` wraps each attempt: a refused first attempt is retried, the second replays."""
    with streamtape.use_cassette(streamtape.starter("text"), faults="refuse -> ok", match_on=["method", "path"]) as tape:
        status, chunks = via_urllib3("https://api.anthropic.com", retries=urllib3.Retry(total=2))()
    assert status == 200 and b"message_stop" in b"".join(chunks)
    assert [call.attempt for call in tape.calls] == [1, 2] and tape.calls[0].faults == ("refuse",)
    with streamtape.use_cassette(streamtape.starter("text"), faults="refuse", match_on=["method", "path"]) as tape:
        _, error = outcome(via_urllib3("https://api.anthropic.com", retries=urllib3.Retry(total=2)))
    assert error[0][0] == "urllib3.exceptions.MaxRetryError" and "NewConnectionError" in error[0][1]
    assert len(tape.calls) == 3


# --- faults: the same failure as from a real misbehaving server ---------------------------------------------


CASES = {
    # fault: (what the real server does, the client's read timeout)
    "disconnect:after=3": (dict(fin_after=3), 5.0),
    "reset:after=3": (dict(rst_after=3), 5.0),
    "stall:after=3": (dict(stall_after=3, stall_seconds=3.0), 0.5),
}
CLIENTS = {"requests": via_requests, "urllib3": via_urllib3}


@pytest.mark.parametrize("framing", ["chunked", "content-length"])
@pytest.mark.parametrize("client", sorted(CLIENTS))
@pytest.mark.parametrize("fault", sorted(CASES))
def test_a_mid_stream_fault_raises_what_a_real_socket_gives(
    server: WireServer, tmp_path: Path, fault: str, client: str, framing: str
) -> None:
    misbehaviour, timeout = CASES[fault]
    run = CLIENTS[client]
    server.queue(transcript("text_basic", framing=framing, **misbehaviour))
    _, real = outcome(run(server.base_url, timeout=timeout))
    assert real, "the real server's failure"
    path = tmp_path / "c.yaml"
    record(server, path, transcript("text_basic", framing=framing), run)
    server.stop()
    started = time.monotonic()
    with streamtape.use_cassette(path, faults=fault):
        _, replayed = outcome(run(server.base_url, timeout=timeout))
    assert replayed == real
    assert time.monotonic() - started < timeout  # virtual time: the stall raised at once


@pytest.mark.parametrize("client", sorted(CLIENTS))
def test_refuse_raises_what_a_closed_port_gives(client: str) -> None:
    base_url = f"http://127.0.0.1:{closed_port()}"
    _, real = outcome(CLIENTS[client](base_url))
    with streamtape.use_cassette(streamtape.starter("text"), faults="refuse", match_on=["method", "path"]):
        _, replayed = outcome(CLIENTS[client](base_url))
    assert replayed == real and real[-1][0].endswith("ConnectionRefusedError")


@pytest.mark.parametrize("client", sorted(CLIENTS))
def test_rate_limit_answers_as_a_real_429(server: WireServer, client: str) -> None:
    server.queue(error_reply("http_429_rate_limit"))
    (status, _), _ = outcome(CLIENTS[client](server.base_url))
    with streamtape.use_cassette(streamtape.starter("text"), faults="rate_limit", match_on=["method", "path"]):
        (replayed_status, body), _ = outcome(CLIENTS[client](server.base_url))
        response = requests.post(f"{server.base_url}/v1/messages", json=BODY, timeout=5)
    assert replayed_status == status == 429 and b"rate_limit_error" in b"".join(body)
    assert response.json()["error"]["type"] == "rate_limit_error"  # requests decodes the API's own error body


@pytest.mark.parametrize(
    ("client", "spec", "raised"),
    [
        # requests words a read timeout mid-body as a ConnectionError (iter_content maps ReadTimeoutError so)
        ("requests", "stall:after=3", "requests.exceptions.ConnectionError"),
        ("requests", "timeout", "requests.exceptions.ReadTimeout"),
        ("urllib3", "stall:after=3", "urllib3.exceptions.ReadTimeoutError"),
        ("urllib3", "timeout", "urllib3.exceptions.ReadTimeoutError"),
    ],
)
def test_at_speed_0_a_stall_raises_the_stacks_own_read_timeout_at_once(client: str, spec: str, raised: str) -> None:
    with streamtape.use_cassette(streamtape.starter("text"), faults=spec, match_on=["method", "path"]) as tape:
        started = time.monotonic()
        _, error = outcome(CLIENTS[client]("https://api.anthropic.com", timeout=30))
    assert time.monotonic() - started < 5 and tape.clock.now() >= 30
    assert error[0][0] == raised
    assert any(name.endswith("urllib3.exceptions.ReadTimeoutError") for name, _, _ in error)
    assert error[-1][0].endswith("builtins.TimeoutError")  # the socket's own "timed out", deepest


@pytest.mark.parametrize("misbehaviour", [dict(fin_after=3), dict(rst_after=3)])
def test_a_real_cut_is_recorded_as_a_neutral_cut_and_replays_as_it_happened(
    server: WireServer, tmp_path: Path, misbehaviour: dict[str, int]
) -> None:
    path = tmp_path / "c.yaml"
    server.queue(transcript("text_basic", **misbehaviour))
    with streamtape.use_cassette(path, record_mode="once", record_failures=True):
        _, live = outcome(via_urllib3(server.base_url))
    end = streamtape.Cassette.load(path).interactions[0].response.end
    assert live and end.kind == ("fin" if "fin_after" in misbehaviour else "reset") and end.message is None
    server.stop()
    with streamtape.use_cassette(path):
        _, replayed = outcome(via_urllib3(server.base_url))
    assert replayed == live


def test_urllib3_retry_back_off_runs_on_the_tapes_clock(tmp_path: Path) -> None:
    """urllib3's own ``Retry`` (what requests and boto3 retry with) backs off through the tape: a
    replay-only tape charges the wait to the call and, at speed 0, sleeps for none of it."""
    import requests
    from requests.adapters import HTTPAdapter
    from urllib3.util.retry import Retry

    builders.save(tmp_path / "c.yaml", "http://h/v1/messages", method="GET", request_body=b"", body=b"ok",
                  headers=(("content-type", "text/plain"),))  # fmt: skip
    session = requests.Session()
    retry = Retry(total=3, backoff_factor=4, status_forcelist=[429], respect_retry_after_header=False)
    session.mount("http://", HTTPAdapter(max_retries=retry))
    schedule = streamtape.faults.parse("rate_limit*2 -> ok", when="^GET ")  # a GET: not a model API call
    with streamtape.use_cassette(tmp_path / "c.yaml", faults=schedule, match_on=["method", "path"]) as tape:
        assert session.get("http://h/v1/messages", timeout=5).content == b"ok"
    # urllib3 2.x: no wait before the first retry, then backoff_factor * 2 ** (retries - 1)
    assert [call.outcome for call in tape.calls] == ["429, complete", "429, complete", "200, complete"]
    assert [call.waited for call in tape.calls] == [0.0, 0.0, 8.0] and tape.clock.now() >= 8.0


# --- explicit wiring: one client, nothing patched -------------------------------------------------------------


def test_an_explicit_transport_records_and_replays_one_requests_session(server: WireServer, tmp_path: Path) -> None:
    """``tape.transport(stack="urllib3")`` mounted on one Session, the tape loaded but never entered:
    that session records and replays; every other client in the process goes to the network as before."""
    reply = transcript("text_basic")
    path = tmp_path / "c.yaml"
    server.queue(reply)
    tape = streamtape.Tape(path, record_mode="once").load()
    session = requests.Session()
    session.mount("http://", tape.transport(stack="urllib3"))
    response = session.post(f"{server.base_url}/v1/messages", json=BODY, stream=True, timeout=5)
    assert list(response.iter_content(None)) == reply.events  # handed on live, chunk by chunk
    tape.save()
    assert [(call.source, call.stack) for call in tape.calls] == [("recorded", "urllib3")]
    saved = streamtape.Cassette.load(path).interactions[0].response
    assert saved.body == reply.body and [size for _, size in saved.timing] == [len(e) for e in reply.events]
    server.queue(error_reply("http_429_rate_limit"))
    assert requests.post(f"{server.base_url}/v1/messages", json=BODY, timeout=5).status_code == 429  # untouched
    assert len(server.requests) == 2
    server.stop()

    tape = streamtape.Tape(path).load()
    session = requests.Session()
    session.mount("http://", tape.transport(stack="urllib3"))
    with session.post(f"{server.base_url}/v1/messages", json=BODY, stream=True, timeout=5) as response:
        assert list(response.iter_content(None)) == reply.events  # the server is gone: replayed
    assert [(call.source, call.stack) for call in tape.calls] == [("replayed", "urllib3")]
    _, error = outcome(lambda: requests.post(f"{server.base_url}/v1/messages", json=BODY, timeout=1))
    assert error[0][0] == "requests.exceptions.ConnectionError"  # nothing global: the plain call is refused
    session.close()


def test_an_explicit_transport_is_a_pool_manager_and_faults_apply(tmp_path: Path) -> None:
    tape = streamtape.Tape(streamtape.starter("text"), faults="reset:after=3", match_on=["method", "path"]).load()
    http = tape.transport(stack="urllib3")
    assert isinstance(http, urllib3.PoolManager)
    response = http.request("POST", "https://api.anthropic.com/v1/messages", json=BODY, preload_content=False,
                            retries=False)  # fmt: skip
    with pytest.raises(urllib3.exceptions.ProtocolError, match="Connection reset by peer"):
        list(response.stream())
    assert [call.faults for call in tape.calls] == [("reset:after=3",)]


def test_urllib3_has_no_async_transport(tmp_path: Path) -> None:
    with pytest.raises(streamtape.ConfigError, match=r"^stack 'urllib3' is synchronous and has no async transport"):
        streamtape.Tape(tmp_path / "c.yaml").async_transport(stack="urllib3")


# --- recording: what the app did not read is still read -------------------------------------------------------


@pytest.mark.parametrize("how", ["with", "close", "urllib3"])
def test_a_stream_closed_early_while_recording_is_read_to_its_end(how: str, server: WireServer,
                                                                  tmp_path: Path) -> None:  # fmt: skip
    """The app leaves ``with requests.post(...)`` after one event (or closes the response, or a urllib3
    response): the rest is read in the background, so the cassette holds the whole stream and its end."""
    gate = [threading.Event() for _ in range(6)]  # the server sends event 2 only once the app has closed
    reply = transcript("text_basic", gate=gate, gate_timeout=5.0)
    server.queue(reply)
    path = tmp_path / "c.yaml"
    url = f"{server.base_url}/v1/messages"
    with streamtape.use_cassette(path, record_mode="once"):
        if how == "urllib3":
            response = urllib3.PoolManager().request("POST", url, json=BODY, preload_content=False)
            first = next(response.stream())
            response.close()
        elif how == "with":
            with requests.post(url, json=BODY, stream=True, timeout=5) as response:
                first = next(response.iter_content(None))
        else:
            response = requests.post(url, json=BODY, stream=True, timeout=5)
            first = next(response.iter_content(None))
            response.close()
        assert first == reply.events[0]
        for event in gate:
            event.set()
    assert not server.errors
    saved = streamtape.Cassette.load(path).interactions[0].response
    assert saved.body == reply.body and isinstance(saved.end, End)
    assert [size for _, size in saved.timing] == [len(e) for e in reply.events]


def test_a_stream_closed_early_that_then_breaks_records_the_break(server: WireServer, tmp_path: Path) -> None:
    server.queue(transcript("text_basic", rst_after=4))
    path = tmp_path / "c.yaml"
    with streamtape.use_cassette(path, record_mode="once", record_failures=True):
        with requests.post(f"{server.base_url}/v1/messages", json=BODY, stream=True, timeout=5) as response:
            next(response.iter_content(None))
    saved = streamtape.Cassette.load(path).interactions[0].response
    assert saved.end.kind == "reset" and len(saved.timing) == 4


def test_the_background_read_stops_at_drain_bytes(server: WireServer, tmp_path: Path,
                                                  monkeypatch: pytest.MonkeyPatch) -> None:  # fmt: skip
    from streamtape.intercept import recorder

    monkeypatch.setattr(recorder, "DRAIN_BYTES", 100)
    reply = transcript("text_basic", piece_delay=0.01)  # one event per read
    server.queue(reply)
    path = tmp_path / "c.yaml"
    with streamtape.use_cassette(path, record_mode="once", record_failures=True):
        with requests.post(f"{server.base_url}/v1/messages", json=BODY, stream=True, timeout=5) as response:
            next(response.iter_content(None))
    saved = streamtape.Cassette.load(path).interactions[0].response
    assert saved.end.kind == "client_closed" and saved.body == reply.body[: len(saved.body)]
    assert len(reply.events[0]) <= len(saved.body) < len(reply.body)


# --- HTTPS through a proxy: the CONNECT tunnel is the attempt's ------------------------------------------------


@contextmanager
def refusing_proxy() -> Iterator[tuple[str, list[bytes]]]:
    """A proxy on 127.0.0.1 that answers every CONNECT with 403 (what a proxy's ACL does)."""
    listener = socket.create_server(("127.0.0.1", 0))
    listener.settimeout(0.05)
    seen: list[bytes] = []
    stop = threading.Event()

    def serve() -> None:
        while not stop.is_set():
            try:
                sock, _ = listener.accept()
            except OSError:
                continue
            with sock:
                sock.settimeout(2)
                data = b""
                while b"\r\n\r\n" not in data and (chunk := sock.recv(4096)):
                    data += chunk
                seen.append(data.split(b"\r\n", 1)[0])
                sock.sendall(b"HTTP/1.1 403 Forbidden\r\nContent-Length: 0\r\n\r\n")

    thread = threading.Thread(target=serve, daemon=True)
    thread.start()
    try:
        yield f"http://127.0.0.1:{listener.getsockname()[1]}", seen
    finally:
        stop.set()
        thread.join()
        listener.close()


def test_https_through_a_proxy_replays_without_reaching_the_proxy() -> None:
    """``urlopen`` opens a CONNECT tunnel before an attempt reaches the tape: a replay needs none."""
    with refusing_proxy() as (proxy, seen):
        with streamtape.use_cassette(streamtape.starter("text"), match_on=["method", "path"]) as tape:
            response = requests.post("https://api.anthropic.com/v1/messages", json=BODY, timeout=5,
                                     proxies={"https": proxy})  # fmt: skip
            assert response.status_code == 200 and b"message_stop" in response.content
        explicit = streamtape.Tape(streamtape.starter("text"), match_on=["method", "path"]).load()
        session = requests.Session()
        session.mount("https://", explicit.transport(stack="urllib3"))
        assert session.post("https://api.anthropic.com/v1/messages", json=BODY, timeout=5,
                            proxies={"https": proxy}).status_code == 200  # fmt: skip
    assert seen == [] and [c.source for c in tape.calls + explicit.calls] == ["replayed", "replayed"]


def test_https_through_a_proxy_records_through_its_tunnel(tmp_path: Path) -> None:
    """A recorded attempt opens the tunnel itself, and fails as without streamtape when the proxy refuses."""

    def post(proxy: str) -> Callable[[], Any]:
        return lambda: requests.post("https://api.anthropic.com/v1/messages", json=BODY, timeout=5,
                                     proxies={"https": proxy})  # fmt: skip

    with refusing_proxy() as (proxy, seen):
        _, real = outcome(post(proxy))
        with streamtape.use_cassette(tmp_path / "c.yaml", record_mode="once", record_failures=True) as tape:
            _, recorded = outcome(post(proxy))
    assert recorded == real and real[0][0] == "requests.exceptions.ProxyError" and "403 Forbidden" in real[0][1]
    assert seen == [b"CONNECT api.anthropic.com:443 HTTP/1.0"] * 2 and [c.source for c in tape.calls] == ["recorded"]
