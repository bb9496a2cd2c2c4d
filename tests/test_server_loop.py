"""`serve` on one event loop: what h11 decides is what goes on the wire, written pre-framed; a log
that nobody reads never stalls the streams; `--workers N` shares the port between processes.

Nothing here asserts how long anything took; waits poll for a condition and give up only as a
guard against hanging.
"""

from __future__ import annotations

import signal
import socket
import subprocess
import sys
import threading
from pathlib import Path

import h11
import pytest
from click.testing import CliRunner

import streamtape
from benchmarks.serve_load import Client, Reply, body_of, exchange, request_bytes, serve, stream_cassette, streams
from benchmarks.serve_scale import wire_plan
from streamtape.server import ReplayServer
from tests.test_server_hardening import eventually, idle, read_until_closed

CASSETTE = stream_cassette(events=10, gap=0.002)
BODY = body_of(CASSETTE)


def address(server: ReplayServer) -> tuple[str, int]:
    return ("127.0.0.1", server.port)


def one_response(cassette: streamtape.Cassette, request: bytes, **options: object) -> bytes:
    with ReplayServer(cassette, speed=0, match_on=["method", "path"], **options) as server:  # type: ignore[arg-type]
        return exchange(address(server), [Client(request)])[0].raw


@pytest.mark.parametrize("close", [True, False], ids=["connection-close", "keep-alive"])
def test_the_bytes_are_what_h11_frames_for_the_same_request(close: bool) -> None:
    """Pre-framed chunks: byte for byte what h11 writes, event by event, for this request."""
    request = request_bytes(close=close)
    plan = wire_plan(CASSETTE, request)
    with ReplayServer(CASSETTE, speed=0) as server, socket.create_connection(address(server)) as sock:
        sock.sendall(request)
        expected = b"".join(data for _, data in plan)
        received = b""
        while len(received) < len(expected) and (data := sock.recv(65536)):
            received += data
    assert received == expected


def test_two_clients_get_the_same_bytes_from_the_framed_run_kept_for_them() -> None:
    with ReplayServer(CASSETTE, speed=0) as server:
        first, second = (streams(address(server), 1)[0].raw for _ in range(2))
        assert first == second and Reply(first).parse()[2] == BODY
        assert len(server._runs) == 1  # framed once, for the first client


def test_a_long_recording_loaded_from_its_file_is_served_byte_for_byte(tmp_path: Path) -> None:
    """A long run's timing comes back from the file packed (not a tuple of pairs): served the same."""
    long = streamtape.Cassette.load(stream_cassette(events=1500, gap=0.0).save(tmp_path / "long.yaml"))
    with ReplayServer(long, speed=0) as server:
        replies = streams(address(server), 2)
    assert [reply.parse()[2] for reply in replies] == [body_of(long)] * 2


def test_a_content_length_body_keeps_its_length() -> None:
    body = b'{"type":"message","content":[]}'
    response = streamtape.Response(200, (("content-type", "application/json"), ("content-length", str(len(body)))),
                                   body, ((0.0, 10), (0.001, len(body) - 10)))  # fmt: skip
    cassette = streamtape.Cassette([streamtape.Interaction(streamtape.Request("POST", "http://h/v1/messages"),
                                                           response)])  # fmt: skip
    raw = one_response(cassette, request_bytes())
    head, _, sent = raw.partition(b"\r\n\r\n")
    assert f"content-length: {len(body)}".encode() in head.lower() and b"chunked" not in head.lower()
    assert sent == body


def test_a_body_shorter_than_its_content_length_is_cut_as_before(capfd: pytest.CaptureFixture[str]) -> None:
    """h11 still checks the end of a body written past it: fewer bytes than the Content-Length
    says cannot end it, so the connection closes after them (the client expects the rest)."""
    response = streamtape.Response(200, (("content-type", "application/json"), ("content-length", "100")), b"{}",
                                   ((0.0, 2),))  # fmt: skip
    cassette = streamtape.Cassette([streamtape.Interaction(streamtape.Request("POST", "http://h/v1/messages"),
                                                           response)])  # fmt: skip
    raw = one_response(cassette, request_bytes())
    assert raw.endswith(b"\r\n\r\n{}") and b"content-length: 100" in raw.lower()
    err = capfd.readouterr().err
    assert "cannot send the recorded response (Too little data for declared Content-Length)" in err


def test_a_head_request_gets_the_head_and_never_a_body(capfd: pytest.CaptureFixture[str]) -> None:
    """h11 decides: a HEAD response has no body, so not one byte of it is written."""
    request = b"HEAD /v1/messages HTTP/1.1\r\nHost: x\r\n\r\n"
    head = streamtape.Request("HEAD", "http://h/v1/messages")
    cassette = streamtape.Cassette([streamtape.Interaction(head, CASSETTE.interactions[0].response)])
    raw = one_response(cassette, request)
    assert raw.startswith(b"HTTP/1.1 200 ") and raw.endswith(b"\r\n\r\n") and raw.count(b"\r\n\r\n") == 1
    assert "Too much data for declared Content-Length" in capfd.readouterr().err


def test_an_http_1_0_client_gets_a_close_delimited_body() -> None:
    request = b"POST /v1/messages HTTP/1.0\r\nHost: x\r\nContent-Length: 2\r\n\r\n{}"
    raw = one_response(CASSETTE, request)
    head, _, sent = raw.partition(b"\r\n\r\n")
    assert b"chunked" not in head.lower() and b"content-length" not in head.lower() and sent == BODY


def test_a_log_nobody_reads_never_stalls_the_streams() -> None:
    """The log is written from a thread of its own: a callback that blocks (a full pipe, a stopped
    terminal) holds its lines back, not the server."""
    release = threading.Event()
    lines: list[str] = []

    def log(line: str) -> None:
        release.wait()
        lines.append(line)

    with ReplayServer(CASSETTE, speed=1, log=log) as server:
        replies = streams(address(server), 20)
        assert [reply.parse()[2] for reply in replies] == [BODY] * 20
        assert lines == []
        release.set()
        eventually(lambda: len(lines) == 20, "the held-back lines written")
    assert set(lines) == {"POST /v1/messages -> #0: 200, complete"}


def test_calls_are_bounded_as_requests_are() -> None:
    with ReplayServer(CASSETTE, speed=0, match_on=["method", "path"], history=5) as server:
        for n in range(12):
            exchange(address(server), [Client(request_bytes(b'{"n": %d}' % n))])
        assert [call.request for call in server.calls] == server.requests
        assert [r.body for r in server.requests] == [b'{"n": %d}' % n for n in range(7, 12)]


def test_a_pipelined_request_is_answered_after_the_first() -> None:
    with ReplayServer(CASSETTE, speed=0) as server, socket.create_connection(address(server)) as sock:
        sock.sendall(request_bytes(close=False) + request_bytes(close=True))
        raw = read_until_closed(sock)
    client = h11.Connection(our_role=h11.CLIENT)
    client.receive_data(raw)
    bodies: list[bytes] = []
    for number in range(2):
        if number:
            client.start_next_cycle()
        client.send(h11.Request(method="POST", target="/", headers=[("host", "x"), ("content-length", "0")]))
        client.send(h11.EndOfMessage())
        body = b""
        while not isinstance(event := client.next_event(), h11.EndOfMessage):
            body += event.data if isinstance(event, h11.Data) else b""
        bodies.append(body)
    assert bodies == [BODY, BODY]


# --- --workers N: processes sharing the port ----------------------------------------------------------


@pytest.mark.skipif(not sys.platform.startswith("linux"), reason="SO_REUSEPORT spreads connections on Linux")
def test_workers_share_the_port_each_with_its_own_session(tmp_path: Path) -> None:
    path = CASSETTE.save(tmp_path / "stream.yaml")
    with serve(path, "--speed", "0", "--workers", "2") as server:
        assert server.process.stdout is not None  # (read line by line: what readline buffers, communicate misses)
        assert server.process.stdout.readline().startswith("2 worker processes share the port (SO_REUSEPORT)")
        assert server.process.stdout.readline() == "press Ctrl-C to stop\n"
        children = Path(f"/proc/{server.process.pid}/task/{server.process.pid}/children").read_text().split()
        assert len(children) == 1  # the second worker; the first is the process itself
        replies = streams(server.address, 60)
        assert [reply.parse()[2] for reply in replies] == [BODY] * 60
        server.process.send_signal(signal.SIGINT)
        out, err = server.process.communicate(timeout=60)
    workers = {line.split(":", 1)[0] for line in out.splitlines() if line.endswith("-> #0: 200, complete")}
    assert workers == {"worker 1", "worker 2"}  # both answered (60 connections: the kernel spreads them)
    assert out.endswith("streamtape: stopped\n") and err == ""
    assert not Path(f"/proc/{children[0]}").exists() or "Z" in Path(f"/proc/{children[0]}/stat").read_text().split()[2]


@pytest.mark.parametrize("value", ["0", "-1", "two", "65"])
def test_a_bad_worker_count_is_one_sentence(value: str) -> None:
    from streamtape.cli import main

    result = CliRunner().invoke(main, ["serve", "starter:text", "--workers", value])
    assert result.exit_code == 2
    assert f"--workers {value}: give a whole number of processes from 1 to 64" in result.output


def test_workers_need_linux(monkeypatch: pytest.MonkeyPatch) -> None:
    from streamtape.cli import main

    monkeypatch.setattr(sys, "platform", "darwin")
    result = CliRunner().invoke(main, ["serve", "starter:text", "--workers", "2"])
    assert result.exit_code == 2 and "--workers 2 needs Linux" in result.output and "darwin" in result.output


@pytest.mark.skipif(not sys.platform.startswith("linux"), reason="--workers needs Linux")
@pytest.mark.parametrize("fault", ["refuse", "refuse -> ok", "connect_timeout", "chaos:p=0.5"])
def test_workers_refuse_faults_that_close_the_port(fault: str) -> None:
    from streamtape.cli import main

    result = CliRunner().invoke(main, ["serve", "starter:text", "--workers", "2", "--fault", fault])
    assert result.exit_code == 2 and "use it with --workers 1" in result.output, result.output


@pytest.mark.skipif(not sys.platform.startswith("linux"), reason="--workers needs Linux")
def test_a_worker_ends_with_the_process_that_started_it(tmp_path: Path) -> None:
    path = CASSETTE.save(tmp_path / "stream.yaml")
    process = subprocess.Popen([sys.executable, "-m", "streamtape", "serve", str(path), "--workers", "2"],
                               stdout=subprocess.PIPE, stderr=subprocess.PIPE, text=True)  # fmt: skip
    try:
        assert process.stdout is not None and " at http://" in process.stdout.readline()
        children = Path(f"/proc/{process.pid}/task/{process.pid}/children").read_text().split()
        process.kill()  # no chance to stop its workers itself
        process.wait()
        eventually(lambda: all(not Path(f"/proc/{pid}").exists() or
                               Path(f"/proc/{pid}/stat").read_text().rsplit(")", 1)[1].split()[0] == "Z"
                               for pid in children), "the worker ended too")  # fmt: skip
    finally:
        if process.poll() is None:
            process.kill()
        process.communicate()


def test_stop_from_the_log_callback_does_not_hang() -> None:
    stopped = threading.Event()
    server: ReplayServer

    def log(line: str) -> None:
        server.stop()
        stopped.set()

    server = ReplayServer(CASSETTE, speed=0, log=log).start()
    streams(address(server), 1)
    eventually(stopped.is_set, "stopped from the log thread")
    assert idle(server)


@pytest.mark.skipif(not sys.platform.startswith("linux"), reason="the benchmark reads /proc")
def test_the_scale_benchmark_runs_and_reports_every_figure() -> None:
    """benchmarks/serve_scale.py, tiny: both servers answer every stream byte for byte, and every
    figure is there (the figures themselves are this machine's, under its load: not asserted)."""
    from benchmarks.serve_scale import report, run

    result = run((5,), rounds=1, verbose=False)
    row = result["summary"]["5"]
    assert row["streamtape"]["errors"] == row["baseline"]["errors"] == 0
    assert {"p99_ratio", "throughput_ratio", "cpu_ratio"} <= set(row) and result["memory_kb"]["idle_after"] > 0
    assert "p99 jitter streamtape / baseline" in report(result)


@pytest.mark.parametrize("framing", ["chunked", "content-length"])
def test_a_run_too_large_to_keep_is_framed_as_it_goes_byte_for_byte(framing: str) -> None:
    """A run over 4 MiB is not kept framed for the next client: each connection frames a piece when
    it is due (small pieces copied with their framing, large ones sent as views of the recording). A
    Content-Length body is handed over piece by piece by the playback itself: the same bytes either way."""
    sizes = [3000, 20_000, 0, 70_000, 1] * 80  # 7.4 MiB, chunks on both sides of the copy threshold
    data = bytes(i % 251 for i in range(sum(sizes)))
    headers = [("content-type", "application/octet-stream")]
    if framing == "content-length":
        headers.append(("content-length", str(len(data))))
    response = streamtape.Response(200, tuple(headers), data, tuple((0.0, size) for size in sizes))
    request = streamtape.Request("POST", "http://h/v1/messages", (), b"{}")
    cassette = streamtape.Cassette([streamtape.Interaction(request, response)])
    wire = request_bytes()
    plan = wire_plan(cassette, wire)
    with ReplayServer(cassette, speed=0, match_on=["method", "path"]) as server:
        first, second = (exchange(address(server), [Client(wire)])[0] for _ in range(2))
        assert len(server._runs) == 0  # too large to keep
    assert first.raw == second.raw == b"".join(piece for _, piece in plan)
    assert first.parse()[2] == data
