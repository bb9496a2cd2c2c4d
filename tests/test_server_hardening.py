"""`serve` stays up under abuse: many concurrent streams, slow clients, descriptor exhaustion, a full
connection table, oversized requests; and a finished connection leaves nothing behind.

These are scaled-down runs of benchmarks/serve_load.py (same load generators: raw sockets in one
selector loop). Nothing here asserts how long anything took; waits poll for a condition and give up
only as a guard against hanging.
"""

from __future__ import annotations

import errno
import json
import socket
import sys
import threading
import time
import tracemalloc
from collections.abc import Callable, Iterator
from pathlib import Path
from typing import Any

import h11
import pytest

import streamtape
from benchmarks.serve_load import (
    SLOW_HEAD,
    Client,
    Reply,
    body_of,
    exchange,
    request_bytes,
    serve,
    slow_clients,
    stream_cassette,
    streams,
)
from streamtape.errors import ConfigError
from streamtape.server import ReplayServer
from tests.support import sdk

CASSETTE = stream_cassette(events=10, gap=0.005)  # 10 events, 5 ms apart: 200 streams overlap at speed 1
BODY = body_of(CASSETTE)


def eventually(condition: Callable[[], bool], what: str, guard: float = 30.0) -> None:
    """Wait until ``condition()`` holds (polling); fail only if it never does (a hang guard)."""
    deadline = time.monotonic() + guard
    while not condition():
        if time.monotonic() > deadline:
            pytest.fail(f"never happened: {what}")
        time.sleep(0.005)


def address(server: ReplayServer) -> tuple[str, int]:
    return ("127.0.0.1", server.port)


def idle(server: ReplayServer) -> bool:
    """No connection open, being served or being closed after a 503."""
    return server.connections == 0 and server.lingering == 0


def read_until_closed(sock: socket.socket) -> bytes:
    received = b""
    while data := sock.recv(65536):
        received += data
    return received


def error_message(reply: Reply) -> str:
    """The one-sentence message of an Anthropic-shaped error answer."""
    body = json.loads(reply.parse()[2])
    assert body["type"] == "error"
    message = body["error"]["message"]
    assert message.startswith("streamtape serve: ") and message.endswith(".") and message.count(". ") == 0
    return message


@pytest.fixture
def hold() -> Iterator[Callable[[tuple[str, int], int], list[socket.socket]]]:
    """Open connections that send half a request head and wait; closed at the end."""
    held: list[socket.socket] = []

    def open_(to: tuple[str, int], count: int) -> list[socket.socket]:
        for _ in range(count):
            sock = socket.create_connection(to)
            sock.sendall(SLOW_HEAD)
            held.append(sock)
        return held[-count:]

    yield open_
    for sock in held:
        sock.close()


def test_concurrent_streams_all_complete_byte_exact_and_leave_nothing_behind() -> None:
    threads_before = threading.active_count()
    with ReplayServer(CASSETTE, speed=1) as server:
        threads: list[int] = []
        watcher = threading.Thread(target=lambda: eventually(lambda: server.connections >= 100 and not threads.append(
            threading.active_count()), "streams being served at once"))  # fmt: skip
        watcher.start()
        replies = streams(address(server), 200)
        watcher.join()
        assert threads == [threads_before + 2]  # the loop's thread and the watcher: no thread per connection
        assert [reply.error for reply in replies] == [None] * 200
        assert all(reply.parse()[:3:2] == (200, BODY) for reply in replies)
        eventually(lambda: idle(server), "every connection's thread and socket released")
        assert server.request_count == 200 and len(server.requests) == 200
    assert threading.active_count() == threads_before


def test_slow_clients_get_a_408_and_the_server_goes_on() -> None:
    with ReplayServer(CASSETTE, speed=1, request_timeout=0.2) as server:
        replies = slow_clients(address(server), 200, every=0.05)  # a byte every 50 ms, never finishing
        assert {reply.error for reply in replies} == {None}  # each closed by the server, cleanly
        assert {reply.status for reply in replies} == {408}
        assert "did not arrive whole within 0.2 s (request_timeout)" in error_message(replies[0])
        assert replies[0].parse()[1]["x-should-retry"] == "false"
        eventually(lambda: idle(server), "the slow clients' threads released")
        assert server.request_count == 0  # none of them reached the cassette
        assert streams(address(server), 1)[0].parse()[2] == BODY


def test_a_connection_that_sends_nothing_is_closed_without_an_answer() -> None:
    with ReplayServer(CASSETTE, speed=0, request_timeout=0.1) as server:
        reply = exchange(address(server), [Client()])[0]
        assert (reply.raw, reply.error) == (b"", None)
        eventually(lambda: idle(server), "the idle connection released")


def test_keep_alive_connections_serve_request_after_request() -> None:
    with ReplayServer(CASSETTE, speed=0) as server:
        with socket.create_connection(address(server)) as sock:
            client = h11.Connection(our_role=h11.CLIENT)
            headers = [("host", "x"), ("content-length", "2")]
            for _ in range(3):
                events = (h11.Request(method="POST", target="/v1/messages", headers=headers), h11.Data(data=b"{}"),
                          h11.EndOfMessage())  # fmt: skip
                sock.sendall(b"".join(client.send(event) or b"" for event in events))
                statuses, body = [], b""
                while True:
                    event = client.next_event()
                    if event is h11.NEED_DATA:
                        client.receive_data(sock.recv(65536))
                    elif isinstance(event, h11.Response):
                        statuses.append(event.status_code)
                    elif isinstance(event, h11.Data):
                        body += event.data
                    elif isinstance(event, h11.EndOfMessage):
                        break
                assert (statuses, body) == ([200], BODY)
                client.start_next_cycle()
        assert server.request_count == 3


def test_accept_failing_for_lack_of_descriptors_backs_off_and_keeps_accepting(
    monkeypatch: pytest.MonkeyPatch, capfd: pytest.CaptureFixture[str]
) -> None:
    server = ReplayServer(CASSETTE, speed=0)
    real_accept = server._accept
    failures = [errno.EMFILE, errno.ENFILE, errno.ENOBUFS, errno.ENOMEM, *[errno.EMFILE] * 6]
    script = [*failures, None, errno.EMFILE]  # None: a real accept (this test's first request)
    pauses: list[float] = []

    def accept() -> tuple[socket.socket, object]:
        code = script.pop(0) if script else None
        if code is not None:
            raise OSError(code, "simulated")
        return real_accept()

    real_pause = server._pause

    def pause(seconds: float) -> None:
        pauses.append(seconds)
        real_pause(0)  # note the back-off instead of waiting it

    monkeypatch.setattr(server, "_accept", accept)
    monkeypatch.setattr(server, "_pause", pause)
    with server:
        assert streams(address(server), 1)[0].parse()[2] == BODY
        assert streams(address(server), 1)[0].parse()[2] == BODY
    # 10 ms, doubling up to 1 s; reset by the success
    assert pauses == [0.01, 0.02, 0.04, 0.08, 0.16, 0.32, 0.64, 1.0, 1.0, 1.0, 0.01]
    err = capfd.readouterr().err
    assert err.count("\n") == 1 and "cannot accept connections (simulated)" in err and "Traceback" not in err


@pytest.mark.skipif(not sys.platform.startswith("linux"), reason="sets another process's RLIMIT_NOFILE (prlimit)")
def test_real_descriptor_exhaustion_in_a_child_process(tmp_path: Path) -> None:
    """`streamtape serve` with room for only 16 more descriptors gets 100 concurrent streams: accept()
    fails with EMFILE, and every stream still completes, byte for byte."""
    path = CASSETTE.save(tmp_path / "stream.yaml")
    with serve(path, "--speed", "1") as server:
        assert streams(server.address, 1)[0].parse()[2] == BODY  # warm: nothing left to import lazily
        server.limit_descriptors(16)
        replies = streams(server.address, 100)
        assert [reply.parse()[2] == BODY for reply in replies] == [True] * 100
        assert streams(server.address, 1)[0].parse()[2] == BODY
        err = server.stop()
    assert err.count("\n") == 1 and "cannot accept connections (Too many open files)" in err, err


def test_one_connection_over_the_cap_gets_a_503_to_retry(hold: Callable[..., list[socket.socket]]) -> None:
    with ReplayServer(CASSETTE, speed=0, max_connections=4) as server:
        held = hold(address(server), 4)
        eventually(lambda: server.connections == 4, "the four connections admitted")
        reply = streams(address(server), 1)[0]
        status, headers, _ = reply.parse()
        assert (status, headers["retry-after"], headers["x-should-retry"], headers["connection"]) == (
            503, "1", "true", "close"
        )  # fmt: skip
        assert "4 connections are already open" in error_message(reply) and "(max_connections)" in error_message(reply)
        assert server.refused_count == 1 and server.request_count == 0  # it never reached the cassette
        for sock in held:
            sock.close()
        eventually(lambda: idle(server), "the held connections released")
        assert streams(address(server), 1)[0].parse()[2] == BODY


@pytest.mark.sdk
def test_the_sdk_retries_the_503_after_a_second_and_gets_the_stream(
    hold: Callable[..., list[socket.socket]],
) -> None:
    """What a client SDK does with the 503: waits Retry-After (1 s) and retries (x-should-retry)."""
    with ReplayServer(CASSETTE, speed=0, max_connections=1, match_on=["method", "path"]) as server:
        (held,) = hold(address(server), 1)
        eventually(lambda: server.connections == 1, "the connection admitted")

        def free_the_slot() -> None:
            eventually(lambda: server.refused_count == 1, "the SDK's first try refused")
            held.close()

        helper = threading.Thread(target=free_the_slot)
        helper.start()
        outcome = sdk.consume(server.base_url, "text_stream", options={"max_retries": 2})
        helper.join()
        assert outcome.error is None and outcome.text
        assert server.refused_count == 1 and server.request_count == 1


def test_a_body_over_the_cap_gets_a_413_unread() -> None:
    with ReplayServer(CASSETTE, speed=0, max_body_bytes=1000, match_on=["method", "path"]) as server:
        big = exchange(address(server), [Client(request_bytes(b"x" * (4 << 20)))])[0]
        assert big.status == 413
        assert error_message(big) == (
            "streamtape serve: the request body is larger than 1000 bytes (max_body_bytes), so it was not read."
        )
        client = h11.Connection(our_role=h11.CLIENT)  # no length announced: counted as it arrives
        head = h11.Request(
            method="POST", target="/v1/messages", headers=[("host", "x"), ("transfer-encoding", "chunked")]
        )
        chunked = b"".join(client.send(e) or b"" for e in (head, *[h11.Data(data=b"y" * 300)] * 4, h11.EndOfMessage()))
        assert exchange(address(server), [Client(chunked)])[0].status == 413
        assert server.request_count == 0
        assert exchange(address(server), [Client(request_bytes(b"z" * 1000))])[0].status == 200  # at the cap: fine
        assert server.requests[-1].body == b"z" * 1000


def test_a_client_that_expects_100_continue_gets_it() -> None:
    """curl asks before sending a body over 1 MiB; without an answer it would wait a second."""
    with ReplayServer(CASSETTE, speed=0) as server, socket.create_connection(address(server)) as sock:
        head, body = request_bytes().split(b"\r\n\r\n", 1)
        sock.sendall(head + b"\r\nExpect: 100-continue\r\n\r\n")
        assert sock.recv(65536).startswith(b"HTTP/1.1 100 Continue\r\n")
        sock.sendall(body)
        assert Reply(read_until_closed(sock)).parse()[2] == BODY


def test_a_head_over_the_cap_gets_a_431() -> None:
    with ReplayServer(CASSETTE, speed=0, max_header_bytes=4096) as server:
        request = SLOW_HEAD + b"X-Big: " + b"a" * 20_000 + b"\r\n\r\n"
        reply = exchange(address(server), [Client(request)])[0]
        assert reply.status == 431
        assert "larger than 4096 bytes (max_header_bytes)" in error_message(reply)


def test_broken_http_gets_a_400_in_one_sentence(capfd: pytest.CaptureFixture[str]) -> None:
    with ReplayServer(CASSETTE, speed=0) as server:
        replies = exchange(
            address(server), [Client(b"NOT HTTP AT ALL\r\n\r\n"), Client(b"\x00\xff" * 100 + b"\r\n\r\n")]
        )
        assert [reply.status for reply in replies] == [400, 400]
        assert error_message(replies[0]).endswith("the request is not valid HTTP/1.1 (illegal request line).")
        eventually(lambda: idle(server), "the connections released")
    assert "Traceback" not in capfd.readouterr().err


def test_requests_keeps_a_bounded_recent_history() -> None:
    with ReplayServer(CASSETTE, speed=0, match_on=["method", "path"], history=5, history_bytes=5000) as server:
        for n in range(12):
            exchange(address(server), [Client(request_bytes(b'{"n": %d}' % n))])
        assert server.request_count == 12
        assert [r.body for r in server.requests] == [b'{"n": %d}' % n for n in range(7, 12)]  # the newest 5
        for letter in b"abc":
            exchange(address(server), [Client(request_bytes(bytes([letter]) * 2000))])
        assert [r.body[:1] for r in server.requests] == [b"b", b"c"]  # bodies, URLs, headers within 5,000 bytes
        exchange(address(server), [Client(request_bytes(b"d" * 6000))])
        assert [r.body[:1] for r in server.requests] == [b"d"]  # the newest is kept even when larger
        server.requests.clear()  # tests may clear it between phases
        exchange(address(server), [Client(request_bytes(b"e"))])
        assert [r.body for r in server.requests] == [b"e"] and server.request_count == 17


def test_finished_requests_bodies_are_released() -> None:
    """20 bodies of 512 KiB: what stays allocated is the history's bound, not the 10 MiB received."""
    with ReplayServer(CASSETTE, speed=0, match_on=["method", "path"], history_bytes=1200 << 10) as server:
        exchange(address(server), [Client(request_bytes(b"{}"))])  # warm
        eventually(lambda: idle(server), "warm-up done")
        tracemalloc.start()
        try:
            before = tracemalloc.get_traced_memory()[0]
            for _ in range(4):
                replies = exchange(address(server), [Client(request_bytes(b"x" * (512 << 10)))] * 5)
                assert {reply.status for reply in replies} == {200}
            eventually(lambda: idle(server), "the connections released")
            grown = tracemalloc.get_traced_memory()[0] - before
        finally:
            tracemalloc.stop()
        assert server.request_count == 21 and len(server.requests) == 2  # 2 x 512 KiB fit in 1,200 KiB
        assert grown < (1200 << 10) + (512 << 10), grown  # the history, and less than one more body


def test_a_client_that_stops_reading_is_disconnected() -> None:
    big = streamtape.Response(200, (("content-type", "application/octet-stream"),), b"x" * (32 << 20))
    request = streamtape.Request("POST", "http://h/v1/messages", (), b"{}")
    cassette = streamtape.Cassette([streamtape.Interaction(request, big)])
    with ReplayServer(cassette, speed=0, send_timeout=0.2) as server:
        with socket.socket() as sock:
            sock.setsockopt(socket.SOL_SOCKET, socket.SO_RCVBUF, 4096)
            sock.connect(address(server))
            sock.sendall(request_bytes())
            eventually(lambda: server.request_count == 1, "the request received")
            eventually(lambda: idle(server), "the stalled response given up")


def test_stop_ends_every_connection_at_once(hold: Callable[..., list[socket.socket]]) -> None:
    threads_before = threading.active_count()
    server = ReplayServer(CASSETTE, speed=0, request_timeout=3600).start()
    hold(address(server), 50)
    eventually(lambda: server.connections == 50, "the connections admitted")
    server.stop()
    assert threading.active_count() == threads_before and server.connections == 0


@pytest.mark.parametrize(
    ("option", "value"),
    [("max_connections", 0), ("max_body_bytes", -1), ("request_timeout", 0), ("send_timeout", float("inf")),
     ("history", 1.5), ("max_header_bytes", True)],
)  # fmt: skip
def test_bad_limits_are_one_sentence(option: str, value: object) -> None:
    limits: dict[str, Any] = {option: value}
    with pytest.raises(ConfigError, match=rf"^ReplayServer {option}=.*: give a"):
        ReplayServer(CASSETTE, **limits)


def test_serve_option_defaults_are_the_servers() -> None:
    from streamtape import server
    from streamtape.cli import main

    defaults = {param.name: param.default for param in main.commands["serve"].params}
    assert (defaults["max_connections"], defaults["request_timeout"], defaults["max_body_bytes"]) == (
        server.MAX_CONNECTIONS, server.REQUEST_TIMEOUT, server.MAX_BODY_BYTES
    )  # fmt: skip


def test_serve_takes_the_limits_as_options(tmp_path: Path, hold: Callable[..., list[socket.socket]]) -> None:
    path = CASSETTE.save(tmp_path / "stream.yaml")
    with serve(path, "--speed", "0", "--max-connections", "1", "--request-timeout", "0.3") as server:
        (held,) = hold(server.address, 1)  # accepted first: connections are accepted in the order they came
        assert streams(server.address, 1)[0].status == 503
        assert Reply(read_until_closed(held)).status == 408
        held.close()
        eventually(lambda: streams(server.address, 1)[0].parse()[2] == BODY, "the slot freed, and a normal answer")
        err = server.stop()
    assert "1 connections open (max_connections, --max-connections)" in err and "Traceback" not in err
