"""`serve` stays up under abuse: many concurrent streams, slow clients, descriptor exhaustion, a full
connection table, oversized requests; and a finished connection leaves nothing behind.

These are scaled-down runs of benchmarks/serve_load.py (same load generators: raw sockets in one
selector loop). Nothing here asserts how long anything took; waits poll for a condition and give up
only as a guard against hanging.
"""

from __future__ import annotations

import errno
import json
import signal
import socket
import subprocess
import sys
import textwrap
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
    BIG_PATH,
    SLOW_HEAD,
    Client,
    Reply,
    big_cassette,
    body_of,
    exchange,
    request_bytes,
    serve,
    slow_clients,
    stream_cassette,
    streams,
)
from streamtape import server as server_module
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
    assert (defaults["max_connections"], defaults["request_timeout"], defaults["max_body_bytes"],
            defaults["max_pending_bytes"]) == (server.MAX_CONNECTIONS, server.REQUEST_TIMEOUT, server.MAX_BODY_BYTES,
                                               server.MAX_PENDING_BYTES)  # fmt: skip


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


def test_serve_takes_the_bound_on_bodies_being_received_as_an_option(tmp_path: Path) -> None:
    path = CASSETTE.save(tmp_path / "stream.yaml")
    with serve(path, "--speed", "0", "--max-body-bytes", "600", "--max-pending-bytes", "1000",
               "--request-timeout", "30") as server:  # fmt: skip
        head = request_bytes(b"x" * 600).split(b"\r\n\r\n")[0] + b"\r\n\r\n"
        with socket.create_connection(server.address) as first:
            first.sendall(head + b"x" * 100)  # 600 announced: counted whole
            eventually(lambda: exchange(server.address, [Client(request_bytes(b"y" * 600))])[0].status == 503,
                       "a second body over the bound told to retry")  # fmt: skip
            fits = exchange(server.address, [Client(request_bytes(b"w" * 300))])[0]  # 900: read, then matched
            assert fits.status == 404 and b"no recorded interaction matches" in fits.parse()[2]
            first.sendall(b"x" * 500)
            assert Reply(read_until_closed(first)).status == 404
        err = server.stop()
    assert "Traceback" not in err


# --- what a client can make it hold, all clients together ------------------------------------------


def big_stream(size: int = 6 << 20, piece: int = 64 << 10) -> streamtape.Cassette:
    """A chunked stream larger than the server keeps framed for the next client (4 MiB)."""
    return big_cassette(pieces=size // piece, size=piece, gap=0.0)


def stalled(to: tuple[str, int], count: int, path: str = BIG_PATH) -> list[socket.socket]:
    """Connections that ask for ``path`` and never read the answer."""
    socks = []
    for _ in range(count):
        sock = socket.socket()
        sock.setsockopt(socket.SOL_SOCKET, socket.SO_RCVBUF, 4096)
        sock.connect(to)
        sock.sendall(request_bytes(path=path))
        socks.append(sock)
    return socks


def test_clients_that_stop_reading_a_large_stream_hold_a_piece_each_not_the_recording() -> None:
    """Measured before: each such client framed the whole 6 MiB run for itself (60 MiB for 10)."""
    with ReplayServer(big_stream(), speed=0, match_on=["method", "path"]) as server:
        exchange(address(server), [Client(request_bytes(path=BIG_PATH))])  # warm
        eventually(lambda: idle(server), "warm-up done")
        tracemalloc.start()
        try:
            before = tracemalloc.get_traced_memory()[0]
            socks = stalled(address(server), 10)
            eventually(lambda: server.request_count == 11 and all(conn.out for conn in list(server._conns)),
                       "every response stalled on a full socket")  # fmt: skip
            held = tracemalloc.get_traced_memory()[0] - before
        finally:
            tracemalloc.stop()
        if sys.platform.startswith("linux"):  # the kernel's buffer is fixed too (Linux reports it doubled)
            assert {conn.sock.getsockopt(socket.SOL_SOCKET, socket.SO_SNDBUF) for conn in server._conns} == {
                2 * server_module._SEND_BUFFER
            }  # fmt: skip
        for sock in socks:
            sock.close()
        eventually(lambda: idle(server), "the stalled connections released")
    assert held < 10 * (64 << 10) + (1 << 20), held  # at most about a piece each


def test_a_stalled_large_stream_is_still_whole_when_the_client_reads_it() -> None:
    cassette = big_stream()
    with ReplayServer(cassette, speed=0, match_on=["method", "path"]) as server:
        (sock,) = stalled(address(server), 1)
        eventually(lambda: bool(server._conns) and all(conn.out for conn in list(server._conns)), "stalled")
        with sock:
            reply = Reply(read_until_closed(sock))
    assert reply.parse()[2] == body_of(cassette)


def test_request_bodies_received_at_once_are_bounded_and_the_rest_told_to_retry() -> None:
    """``max_pending_bytes`` (256 MiB by default) bounds the bodies being received, all connections
    together: 30 clients sending 30 MiB at once held 1 GB before."""
    with ReplayServer(CASSETTE, speed=0, max_body_bytes=600, max_pending_bytes=1000, request_timeout=30,
                      match_on=["method", "path"]) as server:  # fmt: skip
        head = request_bytes(b"x" * 600).split(b"\r\n\r\n")[0] + b"\r\n\r\n"
        with socket.create_connection(address(server)) as first:
            first.sendall(head + b"x" * 100)  # 600 announced: counted whole, though 100 came so far
            eventually(lambda: server._pending_bytes == 600, "the first body counted")
            busy = exchange(address(server), [Client(request_bytes(b"y" * 600))])[0]
            status, headers, _ = busy.parse()
            assert (status, headers["retry-after"], headers["x-should-retry"]) == (503, "1", "true")
            assert "(max_pending_bytes), so this one was not read; retry in a second" in error_message(busy)
            chunked = h11.Connection(our_role=h11.CLIENT)
            events = (h11.Request(method="POST", target="/v1/messages", headers=[("host", "x"),
                      ("transfer-encoding", "chunked")]), *[h11.Data(data=b"z" * 100)] * 5, h11.EndOfMessage())  # fmt: skip
            assert (
                exchange(address(server), [Client(b"".join(chunked.send(e) or b"" for e in events))])[0].status == 503
            )
            assert exchange(address(server), [Client(request_bytes(b"w" * 300))])[0].parse()[2] == BODY  # 900: fits
            first.sendall(b"x" * 500)
            assert Reply(read_until_closed(first)).parse()[2] == BODY
        assert exchange(address(server), [Client(request_bytes(b"v" * 600))])[0].parse()[2] == BODY
        eventually(lambda: idle(server), "the connections released")
        assert server._pending_bytes == 0


@pytest.mark.parametrize("how", ["answered", "413", "408", "client gone", "400"])
def test_the_count_of_bodies_being_received_comes_back_to_zero(how: str) -> None:
    with ReplayServer(CASSETTE, speed=0, max_body_bytes=1000, request_timeout=0.2) as server:
        half = request_bytes(b"x" * 500).split(b"\r\n\r\n")[0] + b"\r\n\r\nxx"
        send = {"answered": request_bytes(), "413": request_bytes(b"x" * 2000), "408": half, "client gone": half,
                "400": half.replace(b"\r\n\r\n", b"\r\nTransfer-Encoding: chunked\r\n\r\n")}[how]  # fmt: skip
        if how == "client gone":
            with socket.create_connection(address(server)) as sock:
                sock.sendall(send)
                eventually(lambda: server._pending_bytes == 500, "the body counted")
        else:
            exchange(address(server), [Client(send)])
        eventually(lambda: idle(server), "the connection released")
        assert server._pending_bytes == 0


def test_a_connection_keeps_no_request_body_while_its_answer_plays() -> None:
    cassette = stream_cassette(events=10, gap=0.05)
    with ReplayServer(cassette, speed=1, match_on=["method", "path"], history=0) as server:
        with socket.create_connection(address(server)) as sock:
            sock.sendall(request_bytes(b"x" * (1 << 20)))
            eventually(lambda: server.request_count == 1 and any(conn.request for conn in list(server._conns)),
                       "the answer playing")  # fmt: skip
            assert [conn.request.body for conn in server._conns if conn.request] == [b""]
            assert Reply(read_until_closed(sock)).parse()[2] == body_of(cassette)


@pytest.mark.parametrize(
    ("path", "provider"),
    [("/v1/messages", "anthropic"), ("/v1/chat/completions", "openai"), ("/v1/responses", "openai-responses"),
     ("/v1beta/models/gemini-2.0-flash:streamGenerateContent?alt=sse", "gemini"),
     ("/model/anthropic.claude-3-5-sonnet/converse-stream", "bedrock"), (None, None)],
)  # fmt: skip
def test_the_503_over_the_cap_has_the_shape_of_the_requests_provider(
    path: str | None, provider: str | None, hold: Callable[..., list[socket.socket]]
) -> None:
    """Each SDK reads (and retries) its own provider's error: boto3 wants ``x-amzn-ErrorType``,
    google-genai a ``code``. A client that sends nothing at once gets the default (Anthropic's)."""
    from streamtape.providers import error_response, get

    with ReplayServer(CASSETTE, speed=0, max_connections=2) as server:
        hold(address(server), 2)
        eventually(lambda: server.connections == 2, "the connections admitted")
        reply = exchange(address(server), [Client(b"" if path is None else request_bytes(path=path))])[0]
        status, headers, body = reply.parse()
        expected_headers, expected_body = error_response(
            503, "overloaded_error", json.loads(body).get("error", {}).get("message") or json.loads(body)["message"],
            retry=True, close=True, provider=None if provider is None else get(provider),
        )  # fmt: skip
        assert status == 503 and body == expected_body
        assert headers == {k.lower(): v for k, v in expected_headers}
        assert "2 connections are already open" in body.decode()
        assert server.connections == 2 and server.request_count == 0


def test_closing_a_connection_resumes_accepting_at_once_after_descriptors_ran_out(
    monkeypatch: pytest.MonkeyPatch, hold: Callable[..., list[socket.socket]], capfd: pytest.CaptureFixture[str]
) -> None:
    """The back-off (up to 1 s) is not waited out when a descriptor is freed meanwhile."""
    server = ReplayServer(CASSETTE, speed=0)
    real_accept = server._accept
    failing = [True]

    def accept() -> tuple[socket.socket, object]:
        if failing[0]:
            raise OSError(errno.EMFILE, "simulated")
        return real_accept()

    monkeypatch.setattr(server, "_accept", accept)
    with server:
        failing[0] = False
        (held,) = hold(address(server), 1)
        eventually(lambda: server.connections == 1, "one connection admitted")
        failing[0] = True
        waiting = socket.create_connection(address(server))  # accept() fails: paused for the back-off
        eventually(lambda: server._resume is not None, "accepting paused")
        server._resume.cancel()  # a back-off that would never end: only the freed descriptor resumes it
        failing[0] = False
        held.close()
        with waiting:
            waiting.settimeout(10)  # a hang guard: without the resume, nothing would ever answer
            waiting.sendall(request_bytes())
            assert Reply(read_until_closed(waiting)).parse()[2] == BODY
    assert "cannot accept connections (simulated)" in capfd.readouterr().err


# --- Ctrl-C always stops it ------------------------------------------------------------------------


def _blocked_signals(native_id: int) -> int:
    """The signal mask (``SigBlk``) of one of this process's threads, as a bit set."""
    status = Path(f"/proc/self/task/{native_id}/status").read_text()
    return int(next(line.split()[1] for line in status.splitlines() if line.startswith("SigBlk:")), 16)


@pytest.mark.skipif(not sys.platform.startswith("linux"), reason="per-thread signal masks read from /proc: Linux")
def test_the_servers_threads_leave_ctrl_c_to_the_main_thread() -> None:
    """The kernel gives a signal sent to the process to any thread that does not block it, and Python acts on
    it in the main thread only: one taken by the loop's thread (or the log's, started just then) left
    ``streamtape serve`` running after Ctrl-C, for good (1 stop in 10 under load)."""
    wanted = (1 << (signal.SIGINT - 1)) | (1 << (signal.SIGTERM - 1))
    with ReplayServer(CASSETTE, speed=0, log=lambda line: None) as server:
        assert exchange(address(server), [Client(request_bytes())])[0].parse()[2] == BODY  # the log thread starts
        eventually(lambda: server._log_lines.thread is not None and server._log_lines.thread.native_id is not None,
                   "the log thread started")  # fmt: skip
        threads = {thread.name: thread.native_id for thread in threading.enumerate()}
        for name in ("streamtape-serve", "streamtape-serve-log"):
            native_id = threads[name]
            assert native_id is not None and _blocked_signals(native_id) & wanted == wanted, name
        assert _blocked_signals(threading.main_thread().native_id or 0) & wanted == 0  # the caller's is its own


@pytest.mark.skipif(not hasattr(signal, "pthread_kill"), reason="POSIX")
def test_serve_stops_on_ctrl_c_taken_by_another_thread() -> None:
    """The backstop: a signal some other thread took (one not streamtape's) is still acted on within half a
    second, where an untimed wait in the main thread slept through it."""
    code = textwrap.dedent("""
        import signal, threading, time
        from streamtape.cli.serve import _wait_for_ctrl_c
        taker = threading.Timer(0.2, lambda: signal.pthread_kill(threading.get_ident(), signal.SIGINT))
        taker.start()
        began = time.monotonic()
        try:
            _wait_for_ctrl_c()
        except KeyboardInterrupt:
            print(f"stopped after {time.monotonic() - began:.2f} s")
    """)
    root = Path(__file__).resolve().parent.parent
    done = subprocess.run([sys.executable, "-c", code], capture_output=True, text=True, timeout=30, cwd=root)
    assert done.stdout.startswith("stopped after "), done.stderr
    assert float(done.stdout.split()[2]) < 5


def _serve_process(path: Path, *args: str) -> tuple[subprocess.Popen[str], str]:
    """``streamtape serve`` in a process of its own, once it says where it listens: (process, first line)."""
    process = subprocess.Popen([sys.executable, "-m", "streamtape", "serve", str(path), "--speed", "0", *args],
                               stdout=subprocess.PIPE, stderr=subprocess.PIPE, text=True,
                               cwd=Path(__file__).resolve().parent.parent)  # fmt: skip
    assert process.stdout is not None
    return process, process.stdout.readline()


@pytest.mark.skipif(not hasattr(signal, "SIGTERM") or sys.platform == "win32", reason="POSIX signals")
@pytest.mark.parametrize(("how", "workers"), [("SIGTERM", "1"), ("SIGTERM", "2"), ("SIGINT", "1"), ("SIGINT", "2"),
                                              ("SIGINT twice", "2")])  # fmt: skip
def test_serve_stops_cleanly_on_a_stop_signal_from_its_first_line_on(tmp_path: Path, how: str, workers: str) -> None:
    """SIGTERM (``docker stop``, a supervisor) stops it as Ctrl-C does, with one worker too (it killed the
    process, losing its log lines); a signal while it is still starting, or a second one while it stops,
    ends it the same way (they gave click's "Aborted!", exit 1, or death by SIGINT)."""
    if workers != "1" and not sys.platform.startswith("linux"):
        pytest.skip("--workers: Linux")
    process, line = _serve_process(CASSETTE.save(tmp_path / "stream.yaml"), "--workers", workers)
    assert " at http://" in line
    process.send_signal(signal.SIGTERM if how == "SIGTERM" else signal.SIGINT)  # the banner is still coming
    if how == "SIGINT twice":
        time.sleep(0.02)
        process.send_signal(signal.SIGINT)
    out, err = process.communicate(timeout=60)
    assert (process.returncode, out.splitlines()[-1:], err) == (0, ["streamtape: stopped"], "")


def test_serve_goes_on_when_its_output_is_no_longer_read(tmp_path: Path) -> None:
    """``streamtape serve ... | head -1``, or a script that reads the address and closes the pipe: the
    log lines go nowhere and it serves on (rich's broken-pipe handling exited with status 1, silently)."""
    process, line = _serve_process(CASSETTE.save(tmp_path / "stream.yaml"))
    assert process.stdout is not None
    process.stdout.close()  # the reader is gone
    where = line.rsplit(" at http://", 1)[1].strip().rsplit(":", 1)
    for _ in range(3):  # each answer is logged on the closed pipe
        assert exchange((where[0], int(where[1])), [Client(request_bytes())])[0].parse()[2] == BODY
    process.send_signal(signal.SIGINT)
    _, err = process.communicate(timeout=60)
    assert (process.returncode, err) == (0, "")


@pytest.mark.parametrize("target", [b"/v1/messages", b"http://[zz/v1/messages"])
def test_a_request_whose_url_cannot_be_split_gets_a_400_in_one_sentence(target: bytes) -> None:
    """``Host: [`` or an absolute target ``http://[zz/``: the connection closed with a traceback on stderr,
    or a 500 that said streamtape was misconfigured."""
    with ReplayServer(CASSETTE, speed=0) as server:
        head = b"POST " + target + b" HTTP/1.1\r\nHost: [\r\nContent-Length: 2\r\nConnection: close\r\n\r\n{}"
        reply = exchange(address(server), [Client(head)])[0]
        assert reply.status == 400 and "is not a valid URL" in error_message(reply)
        assert exchange(address(server), [Client(request_bytes())])[0].parse()[2] == BODY


@pytest.mark.skipif(not sys.platform.startswith("linux"), reason="RLIMIT_NOFILE and --workers: Linux")
@pytest.mark.parametrize("workers", [1, 2])
def test_serve_out_of_descriptors_answers_again_once_they_are_freed(tmp_path: Path, workers: int) -> None:
    """`streamtape serve` started with RLIMIT_NOFILE 64 gets idle connections until it accepts no
    more, then they close: a normal request is answered again (before: never, the port listening)."""
    path = CASSETTE.save(tmp_path / "stream.yaml")
    with serve(path, "--speed", "0", "--workers", str(workers), nofile=64, drain=True) as server:
        held = [socket.create_connection(server.address) for _ in range(64 * workers + 50)]
        eventually(lambda: server.status()["fds"] >= 60 * workers, "the descriptors used up")
        for sock in held:
            sock.close()
        eventually(lambda: streams(server.address, 1, timeout=5)[0].parse()[2] == BODY, "a normal answer again")
        assert [reply.parse()[2] == BODY for reply in streams(server.address, 20)] == [True] * 20
        err = server.stop()
    assert "cannot accept connections (Too many open files)" in err and "Traceback" not in err, err


# --- what HTTP/1.1 cannot carry ----------------------------------------------------------------------


@pytest.mark.parametrize(
    ("request_", "status", "words"),
    [(b"PRI * HTTP/2.0\r\n\r\nSM\r\n\r\n", 505, "is not HTTP/1.1"),
     (b"GET / HTTP/3.0\r\nHost: x\r\n\r\n", 505, "is not HTTP/1.1"),
     (b"CONNECT example.com:443 HTTP/1.1\r\nHost: example.com:443\r\n\r\n", 400, "it is not a proxy"),
     (b"OPTIONS * HTTP/1.1\r\nHost: x\r\n\r\n", 400, "it is not a proxy"),
     (b"POST /v1/messages HTTP/1.1\r\nHost: x\r\nContent-Length: 2\r\nTransfer-Encoding: chunked\r\n\r\n2\r\n{}\r\n0"
      b"\r\n\r\n", 400, "both Transfer-Encoding and Content-Length"),
     (b"P@ST /v1/messages HTTP/1.1\r\nHost: x\r\n\r\n", 400, "not valid HTTP/1.1"),
     (b"GET /v1/\xc3\xa9 HTTP/1.1\r\nHost: x\r\n\r\n", 400, "not valid HTTP/1.1")],
    ids=["http2-preface", "http3", "connect", "options-asterisk", "te-and-cl", "bad-method", "non-ascii-path"],
)  # fmt: skip
def test_what_http_1_1_cannot_carry_is_refused_in_one_sentence(
    request_: bytes, status: int, words: str, capfd: pytest.CaptureFixture[str], caplog: pytest.LogCaptureFixture
) -> None:
    with ReplayServer(CASSETTE, speed=0) as server:
        reply = exchange(address(server), [Client(request_)])[0]
        assert reply.status == status and reply.error is None
        assert words in error_message(reply)
        assert server.request_count == 0
        eventually(lambda: idle(server), "the connection released")
    assert "Traceback" not in capfd.readouterr().err and not caplog.records  # the loop reports its errors by logging


def test_an_absolute_form_target_is_served_as_its_path() -> None:
    """What a client sends to a proxy, and an HTTP/1.1 server must accept (the host is not matched)."""
    with ReplayServer(CASSETTE, speed=0) as server:
        request = request_bytes().replace(b"POST /v1/messages ", b"POST http://elsewhere.example/v1/messages ")
        assert exchange(address(server), [Client(request)])[0].parse()[2] == BODY
        assert server.requests[-1].url == "http://elsewhere.example/v1/messages"


@pytest.mark.parametrize("announced", [None, "999999999999"])
def test_a_head_request_gets_error_answers_without_a_body(
    announced: str | None, capfd: pytest.CaptureFixture[str], caplog: pytest.LogCaptureFixture
) -> None:
    """Before: an unmatched HEAD was a traceback (h11 refuses a body there), an oversized one no answer."""
    length = b"" if announced is None else b"Content-Length: %s\r\n" % announced.encode()
    with ReplayServer(CASSETTE, speed=0) as server:
        reply = exchange(address(server), [Client(b"HEAD /v1/messages HTTP/1.1\r\nHost: x\r\n%bConnection: close\r\n"
                                                  b"\r\n" % length)])[0]  # fmt: skip
        head, _, rest = reply.raw.partition(b"\r\n\r\n")
        assert head.startswith(b"HTTP/1.1 404 " if announced is None else b"HTTP/1.1 413 ") and rest == b""
        eventually(lambda: idle(server), "the connection released")
    assert "Traceback" not in capfd.readouterr().err and not caplog.records  # the loop reports its errors by logging
