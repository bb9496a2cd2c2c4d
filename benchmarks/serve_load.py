"""``streamtape serve`` under abuse: does it stay up, answer correctly, and give its memory back?

Run from the project root (Linux: it reads the server's RSS, threads and descriptors from /proc)::

    python benchmarks/serve_load.py                 # the full run: 1,000 streams, 1,000 slow clients, ...
    python benchmarks/serve_load.py --clients 200   # smaller
    python benchmarks/serve_load.py --json out.json # also write the results as JSON

The server is ``python -m streamtape serve`` in its own process, as users run it, with its default
limits (1,024 connections, 64 KiB heads, 32 MiB bodies, 10 s to send a request). The clients are raw
sockets driven by one selector loop in this process, so they cost the server nothing. Phases:

1. **concurrent streams**: N connections at once each ask for a 20-event stream played at recorded
   timing (20 ms apart); every answer must be a 200 with the recorded body, byte for byte.
2. **slow clients**: N connections send half a request head, then one more byte a second, forever
   (slowloris); each must get a 408 after the request timeout. While they hang on, one normal
   request must be answered, and once the connection cap is full, more connections get a 503.
3. **slow readers**: N connections ask for a 4 MiB stream (64 events of 64 KiB, 5 ms apart) and
   never read it. What the server holds for them must stay bounded (a piece each, and a fixed kernel
   send buffer), a normal request must be answered meanwhile in its recorded time, and once they
   close, memory must come back.
4. **large requests**: three requests announcing 256 MiB bodies (413, not read), three of 30 MiB
   (read, unmatched: 404), then 30 of 30 MiB at once: the bodies received at once are bounded (256
   MiB, ``max_pending_bytes``), so the ones beyond it get a 503 to retry.
5. **descriptor exhaustion**: a second server whose descriptor limit (RLIMIT_NOFILE, set from
   outside with prlimit) leaves room for 64 connections gets N concurrent streams: accept() fails
   with EMFILE, the server backs off and keeps accepting, and every stream must complete.
6. **exhausted, then freed**: servers started with RLIMIT_NOFILE 256 (``--workers 1`` and ``2``)
   get idle connections until they can accept no more; those are closed, and a normal request must
   be answered again at once (the time from the close to its answer is printed; served at speed 0,
   so that time is the recovery's, not the stream's).

After each phase, a normal request must be answered, and the server's RSS (before, peak during,
and after), threads and open descriptors are printed. The script exits 1 if any answer was wrong,
0 otherwise. The functions here are also the load generators of
``tests/test_server_hardening.py``, which runs them scaled down.
"""

from __future__ import annotations

import argparse
import contextlib
import errno
import json
import os
import platform
import resource
import selectors
import signal
import socket
import subprocess
import sys
import tempfile
import threading
import time
from collections.abc import Iterator, Sequence
from contextlib import contextmanager
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

import h11

_ROOT = Path(__file__).resolve().parent.parent
if str(_ROOT) not in sys.path:
    sys.path.insert(0, str(_ROOT))

import streamtape  # noqa: E402
from tests.support.wire_server import DATA_DIR, split_events  # noqa: E402

EVENTS, GAP = 20, 0.02  # each stream: 20 events, 20 ms apart at recorded timing
BODY = b"{}"


def stream_cassette(events: int = EVENTS, gap: float = GAP) -> streamtape.Cassette:
    """One interaction: ``POST /v1/messages`` with body ``{}``, answered by one whole Anthropic
    message stream of ``events`` real SSE events (at least 7: text_basic's, its text delta
    repeated), ``gap`` seconds apart."""
    pieces = split_events((DATA_DIR / "text_basic.sse").read_bytes())
    chosen = pieces[:3] + pieces[3:4] * max(1, events - 6) + pieces[4:]
    timing = tuple((0.01 + gap * i, len(piece)) for i, piece in enumerate(chosen))
    request = streamtape.Request("POST", "http://serve-load/v1/messages", (), BODY)
    response = streamtape.Response(200, (("content-type", "text/event-stream"),), b"".join(chosen), timing, "OK", 0.01)
    return streamtape.Cassette([streamtape.Interaction(request, response)])


BIG_PATH = "/v1/big"


def big_cassette(pieces: int = 64, size: int = 64 << 10, gap: float = 0.005) -> streamtape.Cassette:
    """One interaction: ``POST /v1/big`` answered by a chunked event stream of ``pieces`` events of
    ``size`` bytes, ``gap`` seconds apart (by default 4 MiB: more than the server keeps framed for the
    next client, so each connection frames it as it goes)."""
    piece = b"data: " + b"x" * (size - 8) + b"\n\n"
    timing = tuple((gap * i, len(piece)) for i in range(pieces))
    request = streamtape.Request("POST", f"http://serve-load{BIG_PATH}", (), BODY)
    response = streamtape.Response(200, (("content-type", "text/event-stream"),), piece * pieces, timing, "OK", 0.0)
    return streamtape.Cassette([streamtape.Interaction(request, response)])


def body_of(cassette: streamtape.Cassette) -> bytes:
    """The body of the cassette's first response."""
    response = cassette.interactions[0].response
    if response is None:
        raise ValueError("the cassette's first interaction has no response")
    return response.body


def request_bytes(body: bytes = BODY, *, path: str = "/v1/messages", close: bool = True) -> bytes:
    """A whole HTTP/1.1 POST, formatted by h11."""
    client = h11.Connection(our_role=h11.CLIENT)
    headers = [("host", "serve-load"), ("content-type", "application/json"), ("content-length", str(len(body)))]
    if close:
        headers.append(("connection", "close"))
    return b"".join(
        client.send(event) or b""
        for event in (h11.Request(method="POST", target=path, headers=headers), h11.Data(data=body), h11.EndOfMessage())
    )


SLOW_HEAD = b"POST /v1/messages HTTP/1.1\r\nHost: serve-load\r\nContent-Type: application/json\r\n"


@dataclass
class Client:
    """One connection's script: ``send`` at once, then ``trickle`` one byte every ``every`` seconds."""

    send: bytes = b""
    trickle: bytes = b""
    every: float = 1.0


@dataclass
class Reply:
    """What one connection received, until the server closed it (or ``error``)."""

    raw: bytes = b""
    error: str | None = None  # "reset", "refused", "timeout", ... when it did not end with a clean close

    def parse(self) -> tuple[int, dict[str, str], bytes]:
        """``(status, headers, body)``; ``(0, {}, b"")`` when no whole response arrived."""
        client = h11.Connection(our_role=h11.CLIENT)
        client.send(h11.Request(method="POST", target="/", headers=[("host", "x"), ("content-length", "0")]))
        client.send(h11.EndOfMessage())
        client.receive_data(self.raw)
        client.receive_data(b"")
        status, headers, body = 0, {}, bytearray()
        try:
            while True:
                event = client.next_event()
                if isinstance(event, h11.Response):
                    status = event.status_code
                    headers = {k.decode(): v.decode() for k, v in event.headers}
                elif isinstance(event, h11.Data):
                    body += event.data
                elif isinstance(event, h11.EndOfMessage):
                    return status, headers, bytes(body)
                else:
                    return 0, {}, b""
        except h11.RemoteProtocolError:
            return 0, {}, b""

    @property
    def status(self) -> int:
        return self.parse()[0]


@dataclass
class _Conn:
    index: int
    sock: socket.socket
    client: Client
    sent: int = 0
    trickled: int = 0
    next_trickle: float = 0.0
    connected: bool = False
    received: bytearray = field(default_factory=bytearray)


def exchange(address: tuple[str, int], clients: Sequence[Client], *, timeout: float = 120.0) -> list[Reply]:
    """Open one connection per client, all at once, play each client's script, and read what
    the server sends until it closes each connection. One thread, one selector loop."""
    selector = selectors.DefaultSelector()
    replies = [Reply() for _ in clients]
    open_count = 0
    now = time.monotonic()
    for index, client in enumerate(clients):
        sock = socket.socket(socket.AF_INET, socket.SOCK_STREAM)
        sock.setblocking(False)
        code = sock.connect_ex(address)
        if code not in (0, errno.EINPROGRESS):
            replies[index].error = errno.errorcode.get(code, str(code))
            sock.close()
            continue
        conn = _Conn(index, sock, client, next_trickle=now + client.every)
        selector.register(sock, selectors.EVENT_READ | selectors.EVENT_WRITE, conn)
        open_count += 1
    deadline = time.monotonic() + timeout

    def finish(conn: _Conn, error: str | None) -> None:
        nonlocal open_count
        selector.unregister(conn.sock)
        conn.sock.close()
        replies[conn.index] = Reply(bytes(conn.received), error)
        open_count -= 1

    while open_count:
        now = time.monotonic()
        if now >= deadline:
            for key in list(selector.get_map().values()):
                finish(key.data, "timeout")
            break
        trickling = [
            key.data for key in selector.get_map().values() if key.data.trickled < len(key.data.client.trickle)
        ]
        wake = min([conn.next_trickle for conn in trickling] + [deadline])
        for key, mask in selector.select(timeout=max(0.0, wake - now)):
            conn = key.data
            if mask & selectors.EVENT_WRITE:
                if not conn.connected:
                    code = conn.sock.getsockopt(socket.SOL_SOCKET, socket.SO_ERROR)
                    if code:
                        finish(conn, errno.errorcode.get(code, str(code)))
                        continue
                    conn.connected = True
                try:
                    conn.sent += conn.sock.send(memoryview(conn.client.send)[conn.sent : conn.sent + (1 << 20)])
                except BlockingIOError:
                    pass
                except OSError:  # the server closed while we were sending (a 413, say): read its answer
                    conn.sent = len(conn.client.send)
                if conn.sent >= len(conn.client.send):
                    selector.modify(conn.sock, selectors.EVENT_READ, conn)
            if mask & selectors.EVENT_READ:
                try:
                    data = conn.sock.recv(1 << 20)
                except BlockingIOError:
                    continue
                except ConnectionResetError:
                    finish(conn, "reset")
                    continue
                if not data:
                    finish(conn, None)
                    continue
                conn.received += data
        now = time.monotonic()
        for conn in trickling:
            if (
                conn.sock.fileno() >= 0
                and conn.connected
                and conn.sent >= len(conn.client.send)
                and now >= conn.next_trickle
            ):
                with_error = None
                try:
                    conn.sock.send(conn.client.trickle[conn.trickled : conn.trickled + 1])
                    conn.trickled += 1
                except BlockingIOError:
                    pass
                except OSError as exc:
                    with_error = exc
                conn.next_trickle = now + conn.client.every
                if with_error is not None:
                    conn.trickled = len(conn.client.trickle)  # stop trickling; read what the server said
    selector.close()
    return replies


def streams(address: tuple[str, int], count: int, **kwargs: Any) -> list[Reply]:
    """``count`` concurrent requests for the stream, each on its own connection."""
    return exchange(address, [Client(request_bytes())] * count, **kwargs)


def slow_clients(address: tuple[str, int], count: int, every: float = 1.0, **kwargs: Any) -> list[Reply]:
    """``count`` slowloris connections: half a request head, then a byte every ``every`` seconds."""
    return exchange(address, [Client(SLOW_HEAD, b"X-Slow: " + b"a" * 100_000, every)] * count, **kwargs)


# --- the server process ----------------------------------------------------------------------------


@dataclass
class ServeProcess:
    """``python -m streamtape serve`` in its own process."""

    process: subprocess.Popen[str]
    address: tuple[str, int]

    @property
    def url(self) -> str:
        return f"http://{self.address[0]}:{self.address[1]}"

    def pids(self) -> list[int]:
        """The server's process, and its workers' (``--workers``)."""
        try:
            children = Path(f"/proc/{self.process.pid}/task/{self.process.pid}/children").read_text().split()
        except OSError:
            children = []
        return [self.process.pid, *map(int, children)]

    def status(self) -> dict[str, int]:
        """RSS and peak RSS (KiB), threads, and open descriptors, from /proc (workers included)."""
        fields = {"VmRSS": 0, "VmHWM": 0, "Threads": 0, "fds": 0}
        for pid in self.pids():
            with contextlib.suppress(OSError):
                for line in Path(f"/proc/{pid}/status").read_text().splitlines():
                    name, _, value = line.partition(":")
                    if name in ("VmRSS", "VmHWM", "Threads"):
                        fields[name] += int(value.split()[0])
                fields["fds"] += len(os.listdir(f"/proc/{pid}/fd"))
        return fields

    def limit_descriptors(self, room: int) -> int:
        """Lower the server's RLIMIT_NOFILE so that only ``room`` more descriptors fit; returns it."""
        _, hard = resource.prlimit(self.process.pid, resource.RLIMIT_NOFILE)
        soft = self.status()["fds"] + room
        resource.prlimit(self.process.pid, resource.RLIMIT_NOFILE, (soft, hard))
        return soft

    def stop(self) -> str:
        """Stop it as a user does (Ctrl-C); returns what it wrote to stderr."""
        self.process.send_signal(signal.SIGINT)
        _, err = self.process.communicate(timeout=60)
        return err


@contextmanager
def serve(cassette_path: Path, *args: str, nofile: int | None = None, drain: bool = False) -> Iterator[ServeProcess]:
    """``streamtape serve`` in its own process; ``nofile``: its RLIMIT_NOFILE (from its start);
    ``drain``: read what it prints from a thread (else the caller reads it)."""
    command = [sys.executable, "-m", "streamtape", "serve", str(cassette_path), *args]

    def limit() -> None:
        if nofile is not None:
            resource.setrlimit(resource.RLIMIT_NOFILE, (nofile, nofile))

    process = subprocess.Popen(command, stdout=subprocess.PIPE, stderr=subprocess.PIPE, text=True, cwd=_ROOT,
                               preexec_fn=limit if nofile is not None else None)  # fmt: skip
    line = process.stdout.readline() if process.stdout else ""
    if " at http://" not in line:
        process.kill()
        raise RuntimeError(f"streamtape serve did not start: {line!r} {process.communicate()[1]}")
    host, port = line.rsplit(" at http://", 1)[1].strip().rsplit(":", 1)
    server = ServeProcess(process, (host, int(port)))
    if drain:  # a pipe nobody reads fills up: its log thread would then hold the lines, and the RSS count them
        # the thread is then stdout's only reader: communicate() (stop) reading it too could block in a
        # read the thread emptied, past its timeout
        out, process.stdout = process.stdout, None
        threading.Thread(target=lambda: [None for _ in out or ()], daemon=True).start()
    try:
        yield server
    finally:
        if process.poll() is None:
            process.kill()
            process.communicate()


# --- the run ----------------------------------------------------------------------------------------

CAP = 1024  # streamtape serve's default --max-connections
IDLE_THREADS = 3  # an idle server: the main thread (waiting for Ctrl-C), the event loop's, and the log's


@dataclass
class Phase:
    """One phase's outcome, and the server's state before it and once idle again after it."""

    name: str
    wanted: dict[str, int]
    got: dict[str, int]
    seconds: float
    before: dict[str, int]
    after: dict[str, int]
    normal_after: int  # the status of a normal request once the phase is over
    note: str = ""
    peak_rss: int = 0  # KiB, sampled during the phase

    @property
    def ok(self) -> bool:
        return self.got == self.wanted and self.normal_after == 200


def tally(replies: Sequence[Reply], body: bytes | None = None) -> dict[str, int]:
    """How many replies had each status (``200 exact`` when ``body`` is given and matched)."""
    counts: dict[str, int] = {}
    for reply in replies:
        status, _, got = reply.parse()
        key = reply.error or (str(status) if status else "no answer")
        if status == 200 and body is not None:
            key = "200 exact" if got == body else "200 differs"
        counts[key] = counts.get(key, 0) + 1
    return counts


def settle(server: ServeProcess, fds: int = 1 << 30, timeout: float = 15.0) -> dict[str, int]:
    """The server's status once it is idle again: back to its idle threads (however many
    connections it served: it has no thread per connection) and at most ``fds`` open descriptors
    (after ``timeout`` regardless: then the numbers show what it still holds), and a moment more
    for the memory freed to be given back (the server trims its heap a second after connections close)."""
    deadline = time.monotonic() + timeout
    while True:
        now = server.status()
        if (now["Threads"] <= IDLE_THREADS * len(server.pids()) and now["fds"] <= fds) or time.monotonic() > deadline:
            time.sleep(1.2)
            return server.status()
        time.sleep(0.05)


@contextmanager
def sampling(server: ServeProcess) -> Iterator[list[int]]:
    """The server's peak RSS (KiB) while the block runs, sampled every 20 ms: ``[peak]``."""
    peak = [0]
    done = threading.Event()

    def sample() -> None:
        while not done.is_set():
            with contextlib.suppress(OSError):
                peak[0] = max(peak[0], server.status()["VmRSS"])
            done.wait(0.02)

    sampler = threading.Thread(target=sample, daemon=True)
    sampler.start()
    try:
        yield peak
    finally:
        done.set()
        sampler.join()


def normal(server: ServeProcess) -> int:
    """The status of one ordinary request for the stream."""
    return exchange(server.address, [Client(request_bytes())], timeout=30)[0].status


def measure(server: ServeProcess, name: str, wanted: dict[str, int], load: Any, body: bytes | None = None) -> Phase:
    """Run ``load()`` (which returns replies, or replies and a note) against an idle server."""
    before = settle(server)
    start = time.monotonic()
    with sampling(server) as peak:
        result = load()
    replies, note = result if isinstance(result, tuple) else (result, "")
    seconds = time.monotonic() - start
    after = settle(server, before["fds"])
    return Phase(name, wanted, tally(replies, body), seconds, before, after, normal(server), note, peak[0])


def phase_streams(server: ServeProcess, clients: int, body: bytes) -> Phase:
    return measure(server, f"{clients:,} concurrent streams", {"200 exact": clients},
                   lambda: streams(server.address, clients), body)  # fmt: skip


def phase_slow(server: ServeProcess, slow: int) -> Phase:
    """``slow`` slowloris clients; one second in, a normal request, then enough more slow clients
    to fill the connection cap and go 100 past it."""
    extra = CAP - slow + 100
    during: dict[str, Any] = {}

    def meanwhile() -> None:
        time.sleep(1.0)  # the slow clients are all connected and trickling by now
        start = time.monotonic()
        during["normal"] = normal(server)
        during["normal_ms"] = (time.monotonic() - start) * 1000
        during["more"] = tally(slow_clients(server.address, extra))

    def load() -> tuple[list[Reply], str]:
        helper = threading.Thread(target=meanwhile)
        helper.start()
        replies = slow_clients(server.address, slow)
        helper.join()
        more = during.get("more", {})
        ok = during.get("normal") == 200 and more == {"408": extra - 100, "503": 100}
        note = (f"meanwhile: a normal request got {during.get('normal')} in {during.get('normal_ms', 0):.0f} ms, "
                f"and {extra} more slow clients got {more}{'' if ok else '  <- FAIL'}")  # fmt: skip
        return replies, note

    phase = measure(server, f"{slow:,} slow clients (slowloris)", {"408": slow}, load)
    if "FAIL" in phase.note:
        phase.got = {**phase.got, "meanwhile": 0}
    return phase


def phase_bodies(server: ServeProcess) -> Phase:
    huge, big = b"x" * (256 << 20), b"y" * (30 << 20)
    announced = request_bytes(huge)  # a head announcing 256 MiB, then the body

    def load() -> list[Reply]:
        return exchange(server.address, [Client(announced)] * 3 + [Client(request_bytes(big))] * 3)

    return measure(server, "3 x 256 MiB and 3 x 30 MiB request bodies", {"413": 3, "404": 3}, load)


def phase_many_bodies(server: ServeProcess, count: int = 30) -> Phase:
    """``count`` requests of 30 MiB at once: as many as fit in 256 MiB (``max_pending_bytes``) are read
    (unmatched: 404), the others get a 503 to retry; none is lost or reset."""
    big = request_bytes(b"y" * (30 << 20))
    fits = (256 << 20) // len(b"y" * (30 << 20))

    def load() -> tuple[list[Reply], str]:
        replies = exchange(server.address, [Client(big)] * count)
        got = tally(replies)
        ok = set(got) <= {"404", "503"} and got.get("404", 0) >= fits
        return replies, f"{got.get('404', 0)} read (at least {fits} fit at once), {got.get('503', 0)} told to retry" + (
            "" if ok else "  <- FAIL")  # fmt: skip

    phase = measure(server, f"{count} x 30 MiB request bodies at once", {}, load)
    phase.wanted = {key: phase.got[key] for key in phase.got if key in ("404", "503")} or {"404": count}
    if "FAIL" in phase.note:
        phase.got = {**phase.got, "bounded": 0}
    return phase


def slow_readers(server: ServeProcess, count: int) -> tuple[list[socket.socket], str]:
    """``count`` connections that ask for the 4 MiB stream and never read it (a receive buffer of 4
    KiB); returns them (open) and what a normal request met meanwhile."""
    readers = []
    for _ in range(count):
        sock = socket.socket(socket.AF_INET, socket.SOCK_STREAM)
        sock.setsockopt(socket.SOL_SOCKET, socket.SO_RCVBUF, 4096)
        sock.connect(server.address)
        sock.sendall(request_bytes(path=BIG_PATH))
        readers.append(sock)
    time.sleep(1.0)  # each has been sent what its buffers take
    start = time.monotonic()
    status = normal(server)
    took = (time.monotonic() - start) * 1000
    return readers, f"meanwhile a normal request ({EVENTS * GAP * 1000:.0f} ms recorded) got {status} in {took:.0f} ms"


def phase_slow_readers(server: ServeProcess, count: int) -> Phase:
    def load() -> tuple[list[Reply], str]:
        readers, note = slow_readers(server, count)
        held = server.status()
        for sock in readers:
            sock.close()
        note += f"; while they waited: RSS {held['VmRSS'] / 1024:.1f} MB, {held['fds']} descriptors"
        return [Reply(b"", None)] * count, note

    phase = measure(server, f"{count:,} slow readers of a 4 MiB stream", {"no answer": count}, load)
    if " got 200 " not in phase.note:
        phase.got = {**phase.got, "meanwhile": 0}
    return phase


def exhaust_and_free(path: Path, workers: int, nofile: int = 256) -> Phase:
    """A server (``workers`` processes) with RLIMIT_NOFILE ``nofile`` gets idle connections until it
    accepts no more; they are closed, and a normal request must be answered again at once."""
    with serve(
        path, "--speed", "0", "--workers", str(workers), nofile=nofile, drain=True
    ) as server:  # the answer: at once
        if normal(server) != 200:
            raise RuntimeError("the server does not answer a normal request")
        before = settle(server)
        held = []
        with sampling(server) as peak:
            for _ in range(nofile * workers + 200):  # more than it can hold: the rest wait in the backlog
                held.append(socket.create_connection(server.address))
            full = server.status()
            stuck = exchange(server.address, [Client(request_bytes())], timeout=0.5)[0].error
            start = time.monotonic()
            for sock in held:
                sock.close()
            status, waited = 0, 0.0
            while status != 200 and time.monotonic() - start < 30:
                status = normal(server)
                waited = time.monotonic() - start
        after = settle(server, before["fds"])
        note = (f"{len(held)} idle connections: {full['fds']} descriptors held, a normal request meanwhile: "
                f"{stuck or 'answered'}; closed: a normal request answered again {waited * 1000:.0f} ms later")  # fmt: skip
        phase = Phase(f"descriptors exhausted then freed (RLIMIT_NOFILE {nofile}, --workers {workers})",
                      {"200": 1}, {str(status): 1}, waited, before, after, normal(server), note, peak[0])  # fmt: skip
        server.stop()
        return phase


def phase_exhaustion(server: ServeProcess, clients: int, body: bytes) -> Phase:
    """``clients`` concurrent streams against a server left room for 64 more descriptors."""
    settle(server)
    limit = server.limit_descriptors(64)
    return measure(server, f"{clients:,} concurrent streams, the server's descriptor limit lowered to {limit}",
                   {"200 exact": clients}, lambda: streams(server.address, clients), body)  # fmt: skip


def run(clients: int, slow: int, rounds: int, out: Path | None) -> int:
    soft, hard = resource.getrlimit(resource.RLIMIT_NOFILE)
    if soft < hard:  # this process holds every client socket; the server inherits the limit too
        resource.setrlimit(resource.RLIMIT_NOFILE, (hard, hard))
    if hard < max(clients, CAP + 100) + 64:
        print(
            f"RLIMIT_NOFILE hard limit {hard} is too low for {max(clients, CAP + 100)} connections: raise `ulimit -Hn`"
        )
        return 2
    cassette = stream_cassette()
    body = body_of(cassette)
    served = streamtape.Cassette([*cassette.interactions, *big_cassette().interactions])
    phases: list[Phase] = []
    stderr: list[str] = []
    started = time.monotonic()
    with tempfile.TemporaryDirectory(prefix="serve-load-") as tmp:
        path = served.save(Path(tmp) / "stream.yaml")
        with serve(path, "--speed", "1", drain=True) as server:
            if normal(server) != 200:
                raise RuntimeError("the server does not answer a normal request")
            first = settle(server)
            for number in range(1, rounds + 1):
                for phase in (phase_streams(server, clients, body), phase_slow(server, slow),
                              phase_slow_readers(server, slow), phase_bodies(server), phase_many_bodies(server)):  # fmt: skip
                    phase.name = f"round {number}: {phase.name}"
                    phases.append(phase)
            last = settle(server)
            stderr.append(server.stop())
        with serve(path, "--speed", "1", drain=True) as server:
            if normal(server) != 200:
                raise RuntimeError("the second server does not answer a normal request")
            phases.append(phase_exhaustion(server, clients, body))
            stderr.append(server.stop())
        for workers in (1, 2):
            phases.append(exhaust_and_free(path, workers))

    print("streamtape serve under load")
    print(
        f"  python {platform.python_version()} | h11 {h11.__version__} | cpus {os.cpu_count()} | {platform.platform()}"
    )
    print(f"  stream: {EVENTS} events {GAP * 1000:.0f} ms apart ({len(body):,} bytes), at recorded timing; "
          "server: `streamtape serve` with its default limits")  # fmt: skip
    print()
    for phase in phases:
        print(f"{'PASS' if phase.ok else 'FAIL'}  {phase.name}  ({phase.seconds:.1f} s)")
        print(f"      wanted {phase.wanted}; got {phase.got}")
        if phase.note:
            print(f"      {phase.note}")
        b, a = phase.before, phase.after
        print(f"      server RSS {b['VmRSS'] / 1024:.1f} -> peak {phase.peak_rss / 1024:.1f} -> {a['VmRSS'] / 1024:.1f} MB, "
              f"threads {b['Threads']} -> {a['Threads']}, open descriptors {b['fds']} -> {a['fds']}; a normal request "
              f"afterwards: {phase.normal_after}")  # fmt: skip
    print()
    print(f"  first server, idle: RSS {first['VmRSS'] / 1024:.1f} MB at the start, {last['VmRSS'] / 1024:.1f} MB "
          f"after {rounds} round(s); threads {first['Threads']} -> {last['Threads']}, descriptors {first['fds']} -> "
          f"{last['fds']}")  # fmt: skip
    for which, err in zip(("first", "second"), stderr, strict=True):  # the last phases' servers: in their notes
        lines = [line for line in err.splitlines() if line.strip()]
        print(f"  stderr of the {which} server ({len(lines)} line(s)): {lines}")
    tracebacks = sum("Traceback" in err for err in stderr)
    failed = [phase for phase in phases if not phase.ok]
    print(f"  total time: {time.monotonic() - started:.1f} s")
    print(f"  {len(phases) - len(failed)} PASS, {len(failed)} FAIL, {tracebacks} server(s) with a traceback")
    if out is not None:
        out.write_text(json.dumps({"phases": [phase.__dict__ for phase in phases], "stderr": stderr}, indent=2))
    return 1 if failed or tracebacks else 0


def main(argv: Sequence[str] | None = None) -> int:
    parser = argparse.ArgumentParser(description=(__doc__ or "").split("\n\n")[0])
    parser.add_argument("--clients", type=int, default=1000, help="concurrent streams (default: 1000)")
    parser.add_argument("--slow", type=int, default=1000, help=f"slow clients, at most {CAP} (default: 1000)")
    parser.add_argument("--rounds", type=int, default=2, help="how many times to run the first server's phases")
    parser.add_argument("--json", type=Path, help="also write the results here")
    args = parser.parse_args(argv)
    if args.clients < 1 or not 1 <= args.slow <= CAP or args.rounds < 1:
        parser.error(f"--clients and --rounds must be at least 1, --slow between 1 and {CAP} (the connection cap)")
    return run(args.clients, args.slow, args.rounds, args.json)


if __name__ == "__main__":
    sys.exit(main())
