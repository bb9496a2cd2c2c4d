"""``streamtape serve`` at scale: inter-event jitter and throughput against a minimal asyncio server.

Run from the project root (Linux: it reads the servers' RSS and CPU time from /proc)::

    python benchmarks/serve_scale.py                        # 100, 500 and 1,000 clients, 3 rounds
    python benchmarks/serve_scale.py --clients 100 500 --rounds 5 --json out.json
    python benchmarks/serve_scale.py --workers 2            # streamtape serve --workers 2

Two servers run side by side, each in its own process, for the whole run:

- *streamtape*: ``python -m streamtape serve CASSETTE --speed 1`` (recorded timing), as users run it;
- *baseline*: a minimal asyncio server (``asyncio.start_server``, in this file): it reads the
  request (up to the blank line, then its Content-Length), then writes the very bytes streamtape
  writes (the same head, each event in its chunked framing, prepared once), each at its recorded
  time (``asyncio.sleep`` until it is due), then closes. It is the least an asyncio server can do to
  serve the same stream; every client gets the same response, nothing is matched or planned.

The stream is 20 real Anthropic SSE events 20 ms apart (``serve_load.stream_cassette``). For each
client count, N raw connections request it at once from a third process (this one: one selector
loop, so the clients cost the servers nothing) and every event's arrival is timed. Per stream, each
event's arrival counted from that stream's first event is compared with its recorded offset: the
p50, p99 and max of those differences is the inter-event jitter. Throughput is events delivered per
second, from the first connect to the last stream's end. Every response must be a 200 with the
recorded body, byte for byte, and the same raw bytes from both servers (else it counts as an
error). The streamtape server's RSS is read before the first run and after each run, once its
connections are gone (``memory flat``: what it holds after the clients leave).

Rounds alternate which server goes first; the figures are medians over rounds. The servers share
the machine with the clients and with whatever else runs there: run it on a quiet machine.
"""

from __future__ import annotations

import argparse
import asyncio
import errno
import json
import os
import platform
import resource
import selectors
import signal
import socket
import statistics
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
from benchmarks.serve_load import EVENTS, GAP, body_of, request_bytes, stream_cassette  # noqa: E402

CLIENTS = (100, 500, 1000)
TARGET = 1.5  # streamtape's p99 jitter at most 1.5x the baseline's, its throughput at least 1/1.5 of it
QUIET = 0.25  # CPUs the rest of the machine may keep busy for it to count as quiet (--quiet)
MARKER = b"event: "  # one per SSE event


# --- what both servers write ----------------------------------------------------------------------


def wire_plan(cassette: streamtape.Cassette, request: bytes) -> list[tuple[float, bytes]]:
    """``(at, bytes)``: what a server writes for the cassette's first interaction in answer to
    ``request``, and when (seconds after the request): the head as h11 formats it for this request
    (as streamtape serve does), each recorded piece in chunked framing, then the last chunk."""
    item = cassette.interactions[0]
    response = item.response
    assert response is not None and response.end is not None
    server = h11.Connection(our_role=h11.SERVER)
    server.receive_data(request)
    while not isinstance(server.next_event(), h11.EndOfMessage):
        pass
    headers = [(k, v) for k, v in response.headers if k.lower() not in ("connection", "transfer-encoding")]
    plan = [(response.headers_at, server.send(h11.Response(status_code=response.status, headers=headers,
                                                           reason=response.reason)) or b"")]  # fmt: skip
    offset = 0
    for at, size in response.timing:
        plan.append((at, server.send(h11.Data(data=response.body[offset : offset + size])) or b""))
        offset += size
    plan.append((response.end.at, server.send(h11.EndOfMessage()) or b""))
    return plan


# --- the baseline server ----------------------------------------------------------------------------


def baseline_server(plan_path: Path, port: int = 0) -> None:
    """A minimal asyncio server: read the request, write the planned bytes at their times, close.
    Prints its address, then serves until SIGINT/SIGTERM."""
    plan = [(at, bytes.fromhex(data)) for at, data in json.loads(plan_path.read_text())]

    async def handle(reader: asyncio.StreamReader, writer: asyncio.StreamWriter) -> None:
        loop = asyncio.get_running_loop()
        try:
            head = await reader.readuntil(b"\r\n\r\n")
            length = 0
            for line in head.split(b"\r\n"):
                name, _, value = line.partition(b":")
                if name.strip().lower() == b"content-length":
                    length = int(value)
            await reader.readexactly(length)
            start = loop.time()
            for at, data in plan:
                delay = start + at - loop.time()
                if delay > 0:
                    await asyncio.sleep(delay)
                writer.write(data)
                await writer.drain()
        except (OSError, asyncio.IncompleteReadError, asyncio.LimitOverrunError):
            pass
        finally:
            writer.close()

    async def main() -> None:
        server = await asyncio.start_server(handle, "127.0.0.1", port, backlog=socket.SOMAXCONN)
        host, bound = server.sockets[0].getsockname()[:2]
        print(f"baseline at http://{host}:{bound}", flush=True)
        stop = asyncio.Event()
        for signum in (signal.SIGINT, signal.SIGTERM):
            asyncio.get_running_loop().add_signal_handler(signum, stop.set)
        async with server:
            await stop.wait()

    asyncio.run(main())


# --- the servers' processes ---------------------------------------------------------------------------


@dataclass
class Process:
    name: str
    process: subprocess.Popen[str]
    address: tuple[str, int]
    lines: list[str] = field(default_factory=list)  # what it printed after its address (its log)

    def status(self) -> dict[str, int]:
        """RSS (KiB), threads and open descriptors, from /proc."""
        fields = {}
        for line in Path(f"/proc/{self.process.pid}/status").read_text().splitlines():
            name, _, value = line.partition(":")
            if name in ("VmRSS", "Threads"):
                fields[name] = int(value.split()[0])
        fields["fds"] = len(os.listdir(f"/proc/{self.process.pid}/fd"))
        return fields

    def cpu(self) -> float:
        """CPU seconds (user + system) the process and its waited-for children used so far."""
        total = 0.0
        for pid in [self.process.pid, *_children(self.process.pid)]:
            with open(f"/proc/{pid}/stat") as stat:
                values = stat.read().rsplit(")", 1)[1].split()
            total += (int(values[11]) + int(values[12])) / os.sysconf("SC_CLK_TCK")
        return total


def busy() -> float:
    """CPU seconds all CPUs spent busy (not idle, not waiting for I/O) since boot, from /proc/stat."""
    values = [int(v) for v in Path("/proc/stat").read_text().split("\n", 1)[0].split()[1:]]
    return (sum(values) - values[3] - values[4]) / os.sysconf("SC_CLK_TCK")


def own_cpu() -> float:
    """CPU seconds this process (the clients) used so far."""
    times = os.times()
    return times.user + times.system


def others(servers: Sequence[Process], seconds: float = 0.5) -> float:
    """How many CPUs everything but this run (the clients and the servers) keeps busy, over ``seconds``."""
    before = busy(), own_cpu(), sum(server.cpu() for server in servers)
    time.sleep(seconds)
    after = busy(), own_cpu(), sum(server.cpu() for server in servers)
    return max(0.0, (after[0] - before[0]) - (after[1] - before[1]) - (after[2] - before[2])) / seconds


def _children(pid: int) -> list[int]:
    try:
        return [int(child) for child in Path(f"/proc/{pid}/task/{pid}/children").read_text().split()]
    except OSError:
        return []


@contextmanager
def running(name: str, command: list[str]) -> Iterator[Process]:
    process = subprocess.Popen(command, stdout=subprocess.PIPE, stderr=subprocess.PIPE, text=True, cwd=_ROOT)
    line = process.stdout.readline() if process.stdout else ""
    if " at http://" not in line:
        process.kill()
        raise RuntimeError(f"{name} did not start: {line!r} {process.communicate()[1]}")
    host, port = line.rsplit(" at http://", 1)[1].strip().rsplit(":", 1)
    server = Process(name, process, (host, int(port)))

    def drain() -> None:  # the log is read, as a terminal would: a full pipe would stall the server
        assert process.stdout is not None
        for out in process.stdout:
            if len(server.lines) < 100:
                server.lines.append(out.rstrip("\n"))

    reader = threading.Thread(target=drain, daemon=True)
    reader.start()
    try:
        yield server
    finally:
        process.send_signal(signal.SIGINT)
        try:
            process.wait(timeout=30)
        except subprocess.TimeoutExpired:
            process.kill()
            process.wait()
        reader.join(5)


# --- the clients -------------------------------------------------------------------------------------


@dataclass
class Stream:
    """One client's connection: what it received, and when each event arrived (perf_counter)."""

    raw: bytearray = field(default_factory=bytearray)
    arrivals: list[float] = field(default_factory=list)
    error: str | None = None
    scanned: int = 0  # where the search for the next event marker starts
    sent: int = 0
    connected: bool = False


def drive(address: tuple[str, int], count: int, request: bytes, timeout: float = 120.0) -> tuple[list[Stream], float]:
    """``count`` connections at once, each sending ``request`` and reading until the server closes;
    returns the streams and the seconds from the first connect to the last close."""
    selector = selectors.DefaultSelector()
    streams = [Stream() for _ in range(count)]
    sockets: list[socket.socket] = []
    start = time.perf_counter()
    open_count = 0
    for index in range(count):
        sock = socket.socket(socket.AF_INET, socket.SOCK_STREAM)
        sock.setblocking(False)
        code = sock.connect_ex(address)
        if code not in (0, errno.EINPROGRESS):
            streams[index].error = errno.errorcode.get(code, str(code))
            sock.close()
            continue
        sockets.append(sock)
        selector.register(sock, selectors.EVENT_WRITE, index)
        open_count += 1
    deadline = start + timeout

    def finish(sock: socket.socket, stream: Stream, error: str | None) -> None:
        nonlocal open_count
        selector.unregister(sock)
        sock.close()
        stream.error = stream.error or error
        open_count -= 1

    while open_count:
        remaining = deadline - time.perf_counter()
        if remaining <= 0:
            for key in list(selector.get_map().values()):
                finish(key.fileobj, streams[key.data], "timeout")  # type: ignore[arg-type]
            break
        for key, mask in selector.select(timeout=remaining):
            now = time.perf_counter()
            client, stream = key.fileobj, streams[key.data]
            assert isinstance(client, socket.socket)
            sock = client
            if mask & selectors.EVENT_WRITE:
                if not stream.connected:
                    code = sock.getsockopt(socket.SOL_SOCKET, socket.SO_ERROR)
                    if code:
                        finish(sock, stream, errno.errorcode.get(code, str(code)))
                        continue
                    stream.connected = True
                try:
                    stream.sent += sock.send(request[stream.sent :])
                except BlockingIOError:
                    continue
                except OSError as exc:
                    finish(sock, stream, type(exc).__name__)
                    continue
                if stream.sent >= len(request):
                    selector.modify(sock, selectors.EVENT_READ, key.data)
                continue
            try:
                data = sock.recv(1 << 16)
            except BlockingIOError:
                continue
            except OSError as exc:
                finish(sock, stream, type(exc).__name__)
                continue
            if not data:
                finish(sock, stream, None)
                continue
            stream.raw += data
            while (found := stream.raw.find(MARKER, stream.scanned)) >= 0:
                stream.arrivals.append(now)
                stream.scanned = found + len(MARKER)
            stream.scanned = max(stream.scanned, len(stream.raw) - len(MARKER) + 1)
    selector.close()
    return streams, time.perf_counter() - start


def parse(raw: bytes | bytearray) -> tuple[int, bytes]:
    """``(status, body)`` of one whole response, ``(0, b"")`` if it is not one."""
    client = h11.Connection(our_role=h11.CLIENT)
    client.send(h11.Request(method="POST", target="/", headers=[("host", "x"), ("content-length", "0")]))
    client.send(h11.EndOfMessage())
    client.receive_data(bytes(raw))
    client.receive_data(b"")
    status, body = 0, bytearray()
    try:
        while True:
            event = client.next_event()
            if isinstance(event, h11.Response):
                status = event.status_code
            elif isinstance(event, h11.Data):
                body += event.data
            elif isinstance(event, h11.EndOfMessage):
                return status, bytes(body)
            else:
                return 0, b""
    except h11.RemoteProtocolError:
        return 0, b""


# --- one measurement ------------------------------------------------------------------------------


@dataclass
class Run:
    server: str
    clients: int
    p50_ms: float
    p99_ms: float
    max_ms: float
    events_per_s: float
    seconds: float
    errors: int
    cpu_s: float  # the server's CPU time during the run
    others: float = 0.0  # CPUs kept busy by everything else on the machine during the run
    rss_before_kb: int = 0
    rss_after_kb: int = 0


def percentile(ordered: Sequence[float], fraction: float) -> float:
    return ordered[min(len(ordered) - 1, int(len(ordered) * fraction))] if ordered else float("nan")


def measure(server: Process, clients: int, request: bytes, offsets: Sequence[float], body: bytes,
            raw: bytes) -> Run:  # fmt: skip
    """``clients`` concurrent streams from ``server``; jitter, throughput, errors, the server's CPU."""
    before = server.status()
    cpu, machine, mine = server.cpu(), busy(), own_cpu()
    streams, seconds = drive(server.address, clients, request)
    cpu = server.cpu() - cpu
    elsewhere = max(0.0, busy() - machine - cpu - (own_cpu() - mine)) / seconds
    jitter: list[float] = []
    errors = 0
    delivered = 0
    for stream in streams:
        status, got = parse(stream.raw)
        delivered += len(stream.arrivals)
        if stream.error or status != 200 or got != body or bytes(stream.raw) != raw:
            errors += 1
            continue
        if len(stream.arrivals) != len(offsets):
            errors += 1
            continue
        first = stream.arrivals[0]
        jitter += [abs((arrived - first) - offset) for arrived, offset in zip(stream.arrivals[1:], offsets[1:],
                                                                             strict=True)]  # fmt: skip
    after = settle(server, before["fds"])
    ordered = sorted(jitter)
    return Run(server.name, clients, percentile(ordered, 0.5) * 1000, percentile(ordered, 0.99) * 1000,
               (ordered[-1] if ordered else float("nan")) * 1000, delivered / seconds, seconds, errors, cpu,
               elsewhere, before["VmRSS"], after["VmRSS"])  # fmt: skip


def settle(server: Process, fds: int, timeout: float = 15.0) -> dict[str, int]:
    """The server's status once its connections are gone (at most ``fds`` descriptors open)."""
    deadline = time.monotonic() + timeout
    while True:
        now = server.status()
        if now["fds"] <= fds or time.monotonic() > deadline:
            return now
        time.sleep(0.05)


# --- the run ----------------------------------------------------------------------------------------------


def run(clients_list: Sequence[int] = CLIENTS, *, rounds: int = 3, events: int = EVENTS, gap: float = GAP,
        workers: int = 1, quiet: float = 0.0, verbose: bool = True) -> dict[str, Any]:  # fmt: skip
    """Measure streamtape serve and the baseline side by side at each client count, ``rounds``
    times; returns the medians, every run, and the streamtape server's memory. ``quiet``: before
    each pair of runs, wait up to that many seconds for the rest of the machine to keep less than
    a quarter of a CPU busy."""
    soft, hard = resource.getrlimit(resource.RLIMIT_NOFILE)
    need = max(clients_list) + 256
    if soft < need:
        if hard < need:
            raise RuntimeError(f"RLIMIT_NOFILE hard limit {hard} is too low for {max(clients_list)} clients")
        resource.setrlimit(resource.RLIMIT_NOFILE, (hard, hard))  # the servers inherit it
    cassette = stream_cassette(events, gap)
    body = body_of(cassette)
    request = request_bytes()
    plan = wire_plan(cassette, request)
    raw = b"".join(data for _, data in plan)
    response = cassette.interactions[0].response
    assert response is not None
    offsets = [at - response.timing[0][0] for at, _ in response.timing]
    runs: list[Run] = []
    started = time.monotonic()
    with tempfile.TemporaryDirectory(prefix="serve-scale-") as tmp:
        path = cassette.save(Path(tmp) / "stream.yaml")
        plan_path = Path(tmp) / "plan.json"
        plan_path.write_text(json.dumps([(at, data.hex()) for at, data in plan]))
        streamtape_command = [sys.executable, "-m", "streamtape", "serve", str(path), "--speed", "1",
                              "--max-connections", str(max(1024, max(clients_list) + 64))]  # fmt: skip
        if workers > 1:
            streamtape_command += ["--workers", str(workers)]
        baseline_command = [sys.executable, str(Path(__file__).resolve()), "--baseline-server", str(plan_path)]
        with running("streamtape", streamtape_command) as ours, running("baseline", baseline_command) as base:
            for server in (ours, base):  # warm: nothing left to import or allocate lazily
                streams, _ = drive(server.address, 10, request)
                if any(stream.error or bytes(stream.raw) != raw for stream in streams):
                    raise RuntimeError(f"{server.name} does not answer with the planned bytes")
            idle = settle(ours, 1 << 30)
            for number in range(rounds):
                for clients in clients_list:
                    order = (ours, base) if number % 2 == 0 else (base, ours)
                    waited = time.monotonic() + quiet
                    while others((ours, base)) > QUIET and time.monotonic() < waited:
                        time.sleep(1.0)
                    for server in order:
                        result = measure(server, clients, request, offsets, body, raw)
                        runs.append(result)
                        if verbose:
                            print(f"  round {number + 1} {server.name:10} {clients:5} clients: p99 "
                                  f"{result.p99_ms:7.2f} ms, {result.events_per_s:8.0f} events/s, "
                                  f"{result.errors} errors, server CPU {result.cpu_s:.2f} s, the rest of the "
                                  f"machine {result.others:.2f} CPUs", flush=True)  # fmt: skip
            last = settle(ours, idle["fds"])
    summary: dict[str, Any] = {}
    for clients in clients_list:
        row: dict[str, Any] = {}
        for name in ("streamtape", "baseline"):
            mine = [r for r in runs if r.server == name and r.clients == clients]
            row[name] = {key: statistics.median(getattr(r, key) for r in mine)
                         for key in ("p50_ms", "p99_ms", "max_ms", "events_per_s", "cpu_s", "others")}  # fmt: skip
            row[name]["errors"] = sum(r.errors for r in mine)
        # each round's two runs ran back to back, under the same conditions: the ratios are taken per
        # round, then their median (the "quiet" ones: only rounds where the rest of the machine kept
        # less than QUIET CPUs busy during both runs)
        pairs = list(zip([r for r in runs if r.server == "streamtape" and r.clients == clients],
                         [r for r in runs if r.server == "baseline" and r.clients == clients], strict=True))  # fmt: skip
        calm = [(a, b) for a, b in pairs if a.others < QUIET and b.others < QUIET]
        for label, chosen in (("", pairs), ("quiet_", calm)):
            row[f"{label}rounds"] = len(chosen)
            if chosen:
                row[f"{label}p99_ratio"] = statistics.median(_ratio(a.p99_ms, b.p99_ms) for a, b in chosen)
                row[f"{label}throughput_ratio"] = statistics.median(_ratio(a.events_per_s, b.events_per_s)
                                                                    for a, b in chosen)  # fmt: skip
                row[f"{label}cpu_ratio"] = statistics.median(_ratio(a.cpu_s, b.cpu_s) for a, b in chosen)
        row["rss_kb"] = [(r.rss_before_kb, r.rss_after_kb) for r in runs if r.server == "streamtape" and
                         r.clients == clients]  # fmt: skip
        summary[str(clients)] = row
    return {
        "environment": {"python": platform.python_version(), "h11": h11.__version__, "cpus": str(os.cpu_count()),
                        "platform": platform.platform()},  # fmt: skip
        "stream": {"events": events, "gap_s": gap, "bytes": len(raw)},
        "rounds": rounds,
        "workers": workers,
        "summary": summary,
        "memory_kb": {"idle_before": idle["VmRSS"], "idle_after": last["VmRSS"]},
        "runs": [run.__dict__ for run in runs],
        "seconds": time.monotonic() - started,
    }


def _ratio(a: float, b: float) -> float:
    return a / b if b else float("nan")  # CPU time is counted in clock ticks: a tiny run may have none


def report(result: dict[str, Any]) -> str:
    lines = ["streamtape serve at scale, against a minimal asyncio server writing the same bytes",
             f"  python {result['environment']['python']} | h11 {result['environment']['h11']} | cpus "
             f"{result['environment']['cpus']} | {result['environment']['platform']}",
             f"  stream: {result['stream']['events']} events {result['stream']['gap_s'] * 1000:.0f} ms apart "
             f"({result['stream']['bytes']:,} bytes) at recorded timing; medians of {result['rounds']} round(s); "
             f"streamtape serve --workers {result['workers']}",
             "",
             "  (ratios: the median of each round's streamtape / baseline, the two run back to back)",
             "",
             f"  {'clients':>7}  {'p99 jitter streamtape / baseline':>34}  {'ratio':>6}  "
             f"{'events/s streamtape / baseline':>32}  {'ratio':>6}  {'CPU ratio':>9}  errors  "
             "the rest of the machine"]  # fmt: skip
    for clients, row in result["summary"].items():
        ours, base = row["streamtape"], row["baseline"]
        ok = row["p99_ratio"] <= TARGET and row["throughput_ratio"] >= 1 / TARGET and ours["errors"] == 0
        lines.append(f"  {clients:>7}  {ours['p99_ms']:>14.2f} ms / {base['p99_ms']:>9.2f} ms  "
                     f"{row['p99_ratio']:>5.2f}x  {ours['events_per_s']:>14.0f} / {base['events_per_s']:>13.0f}  "
                     f"{row['throughput_ratio']:>5.2f}x  {row['cpu_ratio']:>8.2f}x  {ours['errors']} / "
                     f"{base['errors']}  {'PASS' if ok else 'MISS'}  {ours['others']:.2f} / {base['others']:.2f} "
                     "CPUs")  # fmt: skip
        if row["quiet_rounds"]:
            lines.append(f"  {'':>7}  quiet rounds only ({row['quiet_rounds']} of {row['rounds']}): p99 ratio "
                         f"{row['quiet_p99_ratio']:.2f}x, throughput ratio {row['quiet_throughput_ratio']:.2f}x, "
                         f"CPU ratio {row['quiet_cpu_ratio']:.2f}x")  # fmt: skip
    memory = result["memory_kb"]
    lines += ["",
              f"  streamtape serve RSS, idle: {memory['idle_before'] / 1024:.1f} MB before the first run, "
              f"{memory['idle_after'] / 1024:.1f} MB after the last (the clients gone)",
              f"  target: p99 jitter within {TARGET}x the baseline's, throughput at least 1/{TARGET} of it, 0 errors",
              f"  total time: {result['seconds']:.1f} s"]  # fmt: skip
    return "\n".join(lines)


def main(argv: Sequence[str] | None = None) -> int:
    parser = argparse.ArgumentParser(description=(__doc__ or "").split("\n\n")[0])
    parser.add_argument("--clients", type=int, nargs="+", default=list(CLIENTS), help="concurrent streams per run")
    parser.add_argument("--rounds", type=int, default=3, help="runs per client count and server (medians)")
    parser.add_argument("--workers", type=int, default=1, help="streamtape serve --workers N")
    parser.add_argument("--quiet", type=float, default=0.0, metavar="SECONDS",
                        help=f"before each pair of runs, wait up to this long for the rest of the machine to keep "
                             f"under {QUIET} CPUs busy")  # fmt: skip
    parser.add_argument("--json", type=Path, help="also write the results here")
    parser.add_argument("--baseline-server", type=Path, help=argparse.SUPPRESS)  # the baseline's own process
    args = parser.parse_args(argv)
    if args.baseline_server is not None:
        baseline_server(args.baseline_server)
        return 0
    if args.rounds < 1 or min(args.clients) < 1 or args.workers < 1:
        parser.error("--clients, --rounds and --workers must be at least 1")
    result = run(args.clients, rounds=args.rounds, workers=args.workers, quiet=args.quiet)
    print()
    print(report(result))
    if args.json is not None:
        args.json.write_text(json.dumps(result, indent=2))
    return 0 if all(row["streamtape"]["errors"] == 0 for row in result["summary"].values()) else 1


if __name__ == "__main__":
    sys.exit(main())
