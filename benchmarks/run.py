"""streamtape benchmarks: what replay and recording cost an app, measured against a fair floor.

Run from the project root::

    python benchmarks/run.py [--quick] [--json PATH]
    python -m benchmarks.run [--quick] [--json PATH]
    python benchmarks/run.py --scale [--quick] [--million]   # benchmarks/scale.py: growth with size

Every number printed is measured in the run that prints it. Variants are interleaved round by round
(the order rotates every round) so that machine noise lands on all of them alike; one warm-up
sample of every variant is taken and thrown away; the tables report medians. The heap that exists
before measuring is frozen (``gc.freeze``) and a collection runs before each sample, outside its
timing, so a garbage collection costs the same whichever variant happens to trigger it.

(a) Replay overhead. A 10,000-event Anthropic stream is consumed through the real SDK in two usage
    styles: ``client.messages.stream(...)`` + ``"".join(stream.text_stream)``, and
    ``client.messages.create(stream=True, ...)`` iterated to the end. The stream is built from real
    event bytes (tests/data/sse/text_multi_delta.sse, server padding included): message_start,
    content_block_start, the early ping, its four real text_delta events repeated in turn, then
    content_block_stop, message_delta, message_stop.

    *streamtape*: a cassette holding that one interaction (one chunk per event) is entered with
    ``streamtape.use_cassette(path)`` and a default ``anthropic.Anthropic`` client streams from it.
    The timing covers the SDK call only; entering the cassette (which loads it) is (b)'s subject and
    happens before the clock starts.

    *floor*: the same bytes, in the same chunks, with the same headers, from an
    ``httpx2.MockTransport`` whose handler returns an ``httpx2.Response`` streaming a
    ``SyncByteStream`` that does nothing but ``yield from`` the chunk list. This is a fair floor
    because it is the least any in-process replay can do: the SDK, httpx2's client, its response
    decoding and the SSE parser all run exactly as under streamtape, and the bytes cost nothing to
    produce. Everything streamtape adds (pool-layer interception, request matching, the replay
    stream and its pacer, httpx2's transport wrapper around a core response) shows up as the
    difference. Ratio = median(streamtape) / median(floor). Target: <= 1.05.

(b) Cassette load. ``streamtape.Cassette.load(path)`` of that 10,000-event cassette, divided by the
    floor's consume time for the same stream (text_stream style): how much of a replayed test's time
    goes to reading its cassette rather than to the app's own stream handling. Target: <= 0.05.

(c) Time to first event while recording. A real ``tests.support.wire_server.WireServer`` on
    127.0.0.1 serves the ``text_basic`` transcript over TCP. Time to first event (TTFE) runs from
    just before ``client.messages.stream(...).__enter__`` (which sends the request) to the first
    event yielded by iterating the stream; the whole-stream time runs to the last event. *direct*
    uses a plain SDK client; *recording* uses another one inside
    ``streamtape.use_cassette(tmp, record_mode="all")`` (entered and left, so saved, every round,
    outside the timing). Each variant keeps one client for the whole run, so after the warm-up
    both stream over an already open keep-alive connection. Target: recording adds < 1 ms.

(d) Fault scenarios at speed 0, (e) ``streamtape serve`` under 100 concurrent streams: see their
    functions below. (f) Replay through aiohttp and urllib3, each against a floor at its own layer
    (the same bytes from a minimal fake connection): ``benchmarks/stacks.py``. Target: <= 1.10.
"""

from __future__ import annotations

import argparse
import gc
import json
import os
import platform
import statistics
import sys
import tempfile
import time
from collections.abc import Callable, Iterator, Mapping, Sequence
from contextlib import contextmanager
from dataclasses import asdict, dataclass
from pathlib import Path
from typing import Any

# `python benchmarks/run.py` puts benchmarks/ (not the project root) first on sys.path; the wire
# server lives in the project's tests/support package.
_ROOT = Path(__file__).resolve().parent.parent
if str(_ROOT) not in sys.path:
    sys.path.insert(0, str(_ROOT))

import anthropic  # noqa: E402
import httpcore2  # noqa: E402
import httpx2  # noqa: E402
import yaml  # noqa: E402

import streamtape  # noqa: E402
from streamtape.redact import SECRET_HEADERS  # noqa: E402
from tests.support.wire_server import DATA_DIR, WireServer, split_events, transcript  # noqa: E402

N_EVENTS = 10_000
SOURCE = "text_multi_delta"  # the real transcript the 10k-event stream is built from
TTFE_TRANSCRIPT = "text_basic"
BASE_URL = "http://bench.invalid"
API_KEY = "x"
FULL_ROUNDS, QUICK_ROUNDS = 40, 3  # (a) and (b): at 15, one slow round moved a median by 5 %
FULL_TTFE_ROUNDS, QUICK_TTFE_ROUNDS = 40, 8  # (c)

Samples = dict[str, list[float]]
Variant = Callable[[], Mapping[str, float]]  # runs once, returns named durations in seconds


def request_params() -> dict[str, Any]:
    """The SDK call's parameters (a fresh dict each time: nothing module-level is mutable)."""
    return {"model": "claude-test", "max_tokens": 1024, "messages": [{"role": "user", "content": "Tell a story"}]}


# --- the 10,000-event stream ---------------------------------------------------------------------


@dataclass(frozen=True)
class Stream:
    """An SSE response: its events (one wire chunk each) and its headers."""

    events: tuple[bytes, ...]
    headers: tuple[tuple[str, str], ...]

    @property
    def body(self) -> bytes:
        return b"".join(self.events)

    def describe(self) -> str:
        deltas = sum(1 for event in self.events if b'"text_delta"' in event)
        return (
            f"{len(self.events):,} events from {SOURCE}.sse ({deltas:,} text deltas, 1 ping), "
            f"{len(self.body):,} bytes, one chunk per event"
        )


def _event_name(event: bytes) -> str:
    first_line = event.split(b"\n", 1)[0]
    return first_line.removeprefix(b"event: ").decode("ascii")


def build_stream(n_events: int = N_EVENTS) -> Stream:
    """Real events from the source transcript, byte for byte; its text deltas repeat in turn."""
    events = split_events((DATA_DIR / f"{SOURCE}.sse").read_bytes())

    def single(name: str) -> bytes:
        (event,) = [e for e in events if _event_name(e) == name]
        return event

    deltas = [e for e in events if _event_name(e) == "content_block_delta" and b'"text_delta"' in e]
    head = [single("message_start"), single("content_block_start"), single("ping")]
    tail = [single("content_block_stop"), single("message_delta"), single("message_stop")]
    middle = [deltas[i % len(deltas)] for i in range(n_events - len(head) - len(tail))]
    return Stream(tuple(head + middle + tail), _recorded_headers(SOURCE))


def _recorded_headers(name: str) -> tuple[tuple[str, str], ...]:
    """The transcript's real response headers, minus the secrets a cassette never stores.

    streamtape and the floor then hand the SDK the very same headers.
    """
    recorded = json.loads((DATA_DIR / f"{name}.headers.json").read_text(encoding="utf-8"))["headers"]
    return tuple(
        (key, value) for key, values in recorded.items() for value in values if key.lower() not in SECRET_HEADERS
    )


def write_cassette(stream: Stream, path: Path) -> None:
    """Save the one-interaction cassette that answers the benchmark's request with ``stream``."""
    request = streamtape.Request(
        method="POST",
        url=f"{BASE_URL}/v1/messages",
        headers=(("content-type", "application/json"),),
        body=json.dumps({**request_params(), "stream": True}).encode(),
    )
    # Arrival offsets: headers at 0.4 s, then an event every 2 ms (at speed 0 replay never waits).
    timing = tuple((0.4 + 0.002 * i, len(event)) for i, event in enumerate(stream.events))
    response = streamtape.Response(200, stream.headers, stream.body, timing, reason="OK", headers_at=0.4)
    streamtape.Cassette([streamtape.Interaction(request, response)]).save(path)


# --- clients and usage styles ----------------------------------------------------------------------


class ChunkStream(httpx2.SyncByteStream):
    """The floor's response body: the chunks, and nothing else."""

    def __init__(self, chunks: Sequence[bytes]) -> None:
        self.chunks = chunks

    def __iter__(self) -> Iterator[bytes]:
        yield from self.chunks


def floor_client(stream: Stream) -> anthropic.Anthropic:
    def handler(request: httpx2.Request) -> httpx2.Response:
        return httpx2.Response(200, headers=list(stream.headers), stream=ChunkStream(stream.events))

    http_client = httpx2.Client(transport=httpx2.MockTransport(handler))
    return anthropic.Anthropic(api_key=API_KEY, base_url=BASE_URL, http_client=http_client)


def consume_text_stream(client: anthropic.Anthropic) -> str:
    with client.messages.stream(**request_params()) as stream:
        return "".join(stream.text_stream)


def consume_create(client: anthropic.Anthropic) -> list[str]:
    with client.messages.create(stream=True, **request_params()) as events:
        return [event.type for event in events]


# --- measuring -------------------------------------------------------------------------------------


@contextmanager
def frozen_heap() -> Iterator[None]:
    """Move everything alive now (modules, the SDK's classes) out of the collector's sight.

    A full collection of this process's ~150k startup objects costs tens of milliseconds; left
    alone, one would land at random inside some variant's sample. Frozen, a collection costs the
    same few microseconds whichever variant triggers it, and the per-sample ``gc.collect()`` below
    is cheap enough to run before every sample.
    """
    gc.collect()
    gc.freeze()
    try:
        yield
    finally:
        gc.unfreeze()


def timed(func: Callable[[], object]) -> float:
    gc.collect()
    start = time.perf_counter()
    func()
    return time.perf_counter() - start


def interleave(variants: Mapping[str, Variant], rounds: int) -> Samples:
    """One warm-up of each variant (discarded), then ``rounds`` rounds, the order rotating."""
    for variant in variants.values():
        variant()
    names = list(variants)
    samples: Samples = {}
    for r in range(rounds):
        shift = r % len(names)
        for name in names[shift:] + names[:shift]:
            for metric, seconds in variants[name]().items():
                samples.setdefault(metric, []).append(seconds)
    return samples


def replay_variant(
    path: Path, client: anthropic.Anthropic, consume: Callable[[anthropic.Anthropic], object], metric: str
) -> Variant:
    def run() -> dict[str, float]:
        with streamtape.use_cassette(path) as tape:  # loads the cassette: not timed here, see (b)
            seconds = timed(lambda: consume(client))
        if [call.source for call in tape.calls] != ["replayed"]:
            raise RuntimeError(f"{metric}: expected one replayed call, got {tape.calls}")
        return {metric: seconds}

    return run


def check_same_output(floor: anthropic.Anthropic, replay: anthropic.Anthropic, path: Path, stream: Stream) -> None:
    """Both sides give the app the same thing, or the comparison would mean nothing."""
    with streamtape.use_cassette(path):
        replayed_text, replayed_events = consume_text_stream(replay), consume_create(replay)
    floor_text, floor_events = consume_text_stream(floor), consume_create(floor)
    if replayed_text != floor_text or replayed_events != floor_events:
        raise RuntimeError("streamtape and the floor disagree on the stream's content")
    if len(floor_events) != len(stream.events) - 1:  # the SDK skips the ping
        raise RuntimeError(f"expected {len(stream.events) - 1} SDK events, got {len(floor_events)}")
    loaded = streamtape.Cassette.load(path).interactions[0].response
    assert loaded is not None
    if loaded.body != stream.body or loaded.headers != stream.headers or len(loaded.timing) != len(stream.events):
        raise RuntimeError("the cassette does not hold the floor's bytes, headers and chunking")


def bench_replay(stream: Stream, rounds: int, workdir: Path) -> Samples:
    """(a) and (b): floor vs streamtape replay in both styles, and Cassette.load."""
    path = workdir / "stream-10k.yaml"
    write_cassette(stream, path)
    floor = floor_client(stream)
    replay = anthropic.Anthropic(api_key=API_KEY, base_url=BASE_URL)
    check_same_output(floor, replay, path, stream)
    variants: dict[str, Variant] = {
        "floor.text_stream": lambda: {"floor.text_stream": timed(lambda: consume_text_stream(floor))},
        "replay.text_stream": replay_variant(path, replay, consume_text_stream, "replay.text_stream"),
        "floor.create": lambda: {"floor.create": timed(lambda: consume_create(floor))},
        "replay.create": replay_variant(path, replay, consume_create, "replay.create"),
        "load": lambda: {"load": timed(lambda: streamtape.Cassette.load(path))},
    }
    try:
        return interleave(variants, rounds)
    finally:
        floor.close()
        replay.close()


def time_first_event(client: anthropic.Anthropic, prefix: str) -> dict[str, float]:
    manager = client.messages.stream(**request_params())
    gc.collect()
    start = time.perf_counter()
    first: float | None = None
    with manager as stream:
        for _ in stream:
            if first is None:
                first = time.perf_counter()
        end = time.perf_counter()
    if first is None:
        raise RuntimeError("the stream yielded no event")
    return {f"{prefix}.ttfe": first - start, f"{prefix}.total": end - start}


def bench_ttfe(rounds: int, workdir: Path) -> Samples:
    """(c): TTFE and whole-stream time against a real local server, direct vs recording."""
    path = workdir / "ttfe.yaml"

    def recording_round(client: anthropic.Anthropic) -> dict[str, float]:
        with streamtape.use_cassette(path, record_mode="all") as tape:
            result = time_first_event(client, "recording")
        if [call.source for call in tape.calls] != ["recorded"]:
            raise RuntimeError(f"recording: expected one recorded call, got {tape.calls}")
        return result

    with WireServer() as server:
        server.queue(transcript(TTFE_TRANSCRIPT))  # the last queued reply repeats
        direct = anthropic.Anthropic(api_key=API_KEY, base_url=server.base_url, max_retries=0)
        recording = anthropic.Anthropic(api_key=API_KEY, base_url=server.base_url, max_retries=0)
        try:
            samples = interleave(
                {"direct": lambda: time_first_event(direct, "direct"), "recording": lambda: recording_round(recording)},
                rounds,
            )
        finally:
            direct.close()
            recording.close()
        if server.errors:
            raise RuntimeError(f"wire server errors: {server.errors}")
    return samples


# --- results ---------------------------------------------------------------------------------------


def fault_variant(path: Path, spec: str, metric: str, expect: str) -> Variant:
    """One SDK call through ``spec`` at speed 0: its wall time, and the time a real client would spend."""

    def run() -> dict[str, float]:
        client = anthropic.Anthropic(api_key=API_KEY, base_url="https://api.anthropic.com", max_retries=2)
        outcome = "ok"
        with streamtape.use_cassette(path, faults=spec, match_on=["method", "path"]) as tape:
            gc.collect()
            start = time.perf_counter()
            try:
                with client.messages.stream(**request_params()) as stream:
                    stream.get_final_message()
            except (httpx2.ReadTimeout, anthropic.APITimeoutError):  # anthropic >= 2.17 wraps it
                outcome = "ReadTimeout"
            seconds = time.perf_counter() - start
        client.close()
        if outcome != expect:
            raise RuntimeError(f"{spec}: expected {expect}, got {outcome} ({tape.calls})")
        stalled = 600.0 if outcome == "ReadTimeout" else 0.0  # the SDK's default read timeout
        return {metric: seconds, f"{metric}.real": sum(call.waited for call in tape.calls) + stalled}

    return run


def bench_faults(rounds: int, workdir: Path) -> Samples:
    """(d): fault scenarios cost no wall time they did not ask for (virtual time, speed 0)."""
    path = workdir / "text_basic.yaml"
    body = (DATA_DIR / f"{TTFE_TRANSCRIPT}.sse").read_bytes()
    pieces = split_events(body)
    timing = tuple((0.4 + 0.03 * i, len(piece)) for i, piece in enumerate(pieces))
    request = streamtape.Request("POST", "https://api.anthropic.com/v1/messages", (), b"{}")
    response = streamtape.Response(200, (("content-type", "text/event-stream"),), body, timing, "OK", 0.4)
    streamtape.Cassette([streamtape.Interaction(request, response)]).save(path)
    variants: dict[str, Variant] = {
        "fault.retry": fault_variant(path, "rate_limit*2 -> ok", "fault.retry", "ok"),
        "fault.stall": fault_variant(path, "stall:after=3,seconds=600", "fault.stall", "ReadTimeout"),
    }
    return interleave(variants, rounds)


SERVE_STREAMS, SERVE_EVENTS, SERVE_GAP = 100, 20, 0.02  # (e): 100 streams of 20 events, 20 ms apart


def _read_streams(url: str, count: int) -> list[list[float]]:
    """Open ``count`` raw connections, send the request on each, and note when each SSE event
    arrives, with one selector loop: cheap enough that the clients do not blur what they measure."""
    import selectors
    import socket

    host, port = url.removeprefix("http://").split(":")
    request = f"POST /v1/messages HTTP/1.1\r\nHost: {host}\r\nContent-Length: 2\r\nConnection: close\r\n\r\n{{}}"
    selector = selectors.DefaultSelector()
    arrivals: list[list[float]] = [[] for _ in range(count)]
    for index in range(count):
        sock = socket.create_connection((host, int(port)))
        sock.setblocking(False)
        selector.register(sock, selectors.EVENT_READ, index)
    for key in list(selector.get_map().values()):
        key.fileobj.sendall(request.encode())  # type: ignore[union-attr]
    open_count = count
    while open_count:
        for key, _ in selector.select(timeout=30):
            data = key.fileobj.recv(65536)  # type: ignore[union-attr]
            now = time.perf_counter()
            if not data:
                selector.unregister(key.fileobj)
                key.fileobj.close()  # type: ignore[union-attr]
                open_count -= 1
                continue
            arrivals[key.data] += [now] * data.count(b"event: ")
    return arrivals


def bench_serve(workdir: Path) -> Samples:
    """(e): ``streamtape serve`` (its own process, as users run it) holding 100 concurrent streams at
    recorded timing. Inter-event jitter: for each stream, how far each event's arrival, counted from
    that stream's first event, is from its recorded offset. Measured by 100 real clients."""
    import subprocess

    pieces = split_events((DATA_DIR / f"{TTFE_TRANSCRIPT}.sse").read_bytes())
    events = (pieces * (SERVE_EVENTS // len(pieces) + 1))[:SERVE_EVENTS]
    timing = tuple((0.05 + SERVE_GAP * i, len(piece)) for i, piece in enumerate(events))
    request = streamtape.Request("POST", "http://bench/v1/messages", (), b"{}")
    response = streamtape.Response(200, (("content-type", "text/event-stream"),), b"".join(events), timing, "OK", 0.05)
    path = streamtape.Cassette([streamtape.Interaction(request, response)]).save(workdir / "serve.yaml")
    command = [sys.executable, "-m", "streamtape", "serve", str(path), "--speed", "1"]
    server = subprocess.Popen(command, stdout=subprocess.PIPE, text=True)
    try:
        url = (server.stdout.readline() if server.stdout else "").rsplit(" at ", 1)[-1].strip()
        arrivals = _read_streams(url, SERVE_STREAMS)
    finally:
        server.terminate()
        server.wait(timeout=30)
    jitter = []
    for arrived in arrivals:
        offsets = [(a - arrived[0]) - (at - timing[0][0]) for a, (at, _) in zip(arrived, timing, strict=False)]
        jitter += [abs(offset) for offset in offsets[1:]]
    if len(jitter) != SERVE_STREAMS * (SERVE_EVENTS - 1):
        raise RuntimeError(f"(e): expected {SERVE_STREAMS * (SERVE_EVENTS - 1)} gaps, got {len(jitter)}")
    ordered = sorted(jitter)
    return {"serve.p50": [ordered[len(ordered) // 2]], "serve.p99": [ordered[int(len(ordered) * 0.99)]],
            "serve.max": [ordered[-1]]}  # fmt: skip


@dataclass(frozen=True)
class Summary:
    """One variant's samples, in milliseconds."""

    median: float
    p25: float
    p75: float
    minimum: float
    n: int

    @classmethod
    def of(cls, seconds: Sequence[float]) -> Summary:
        ms = sorted(s * 1000 for s in seconds)
        if len(ms) == 1:
            return cls(ms[0], ms[0], ms[0], ms[0], 1)
        p25, _, p75 = statistics.quantiles(ms, n=4, method="inclusive")
        return cls(statistics.median(ms), p25, p75, ms[0], len(ms))


@dataclass(frozen=True)
class Check:
    """A measured value against its target (``limit``), or reported for information (no limit)."""

    key: str
    label: str
    value: float
    unit: str  # "ratio" or "ms"
    note: str = ""
    limit: float | None = None
    strict: bool = False  # True: value < limit; False: value <= limit

    @property
    def verdict(self) -> str:
        if self.limit is None:
            return "info"
        passed = self.value < self.limit if self.strict else self.value <= self.limit
        return "PASS" if passed else "MISS"

    def cells(self) -> tuple[str, str]:
        value = f"{self.value:+.3f} ms" if self.unit == "ms" else f"{self.value:.3f}"
        if self.limit is None:
            return value, "-"
        unit = " ms" if self.unit == "ms" else ""
        return value, f"{'<' if self.strict else '<='} {self.limit:g}{unit}"


VARIANT_LABELS = (
    ("floor.text_stream", "(a) floor      stream() + text_stream"),
    ("replay.text_stream", "(a) streamtape stream() + text_stream"),
    ("floor.create", "(a) floor      create(stream=True)"),
    ("replay.create", "(a) streamtape create(stream=True)"),
    ("load", "(b) Cassette.load, 10k-event cassette"),
    ("direct.ttfe", "(c) direct     time to first event"),
    ("recording.ttfe", "(c) recording  time to first event"),
    ("direct.total", "(c) direct     whole stream"),
    ("recording.total", "(c) recording  whole stream"),
    ("fault.retry", "(d) '429 twice, then success'"),
    ("fault.retry.real", "    a real client would spend"),
    ("fault.stall", "(d) 'stall 10 minutes' (timeout 600 s)"),
    ("fault.stall.real", "    a real client would spend"),
    ("serve.p50", "(e) serve, 100 streams: inter-event jitter p50"),
    ("serve.p99", "    p99"),
    ("serve.max", "    max"),
    ("aiohttp.floor.sdk", "(f) aiohttp floor      SDK text_stream"),
    ("aiohttp.replay.sdk", "(f) aiohttp streamtape SDK text_stream"),
    ("aiohttp.floor.plain", "(f) aiohttp floor      iter_chunks()"),
    ("aiohttp.replay.plain", "(f) aiohttp streamtape iter_chunks()"),
    ("urllib3.floor.requests", "(f) requests floor      iter_lines()"),
    ("urllib3.replay.requests", "(f) requests streamtape iter_lines()"),
    ("urllib3.floor.plain", "(f) urllib3 floor      stream()"),
    ("urllib3.replay.plain", "(f) urllib3 streamtape stream()"),
)


def checks(s: Mapping[str, Summary], n_events: int) -> list[Check]:
    """The targets, computed on medians, plus two rows given for information only."""

    def replay_vs_floor(style: str, label: str) -> Check:
        replay, floor = s[f"replay.{style}"].median, s[f"floor.{style}"].median
        note = f"{replay - floor:+.2f} ms = {(replay - floor) * 1000 / n_events:+.2f} us/event"
        return Check(f"a.{style}", label, replay / floor, "ratio", note, limit=1.05)

    def load_vs_floor(style: str, key: str, label: str, limit: float | None) -> Check:
        load, floor = s["load"].median, s[f"floor.{style}"].median
        return Check(key, label, load / floor, "ratio", f"{load:.2f} ms / {floor:.1f} ms", limit=limit)

    def recording_vs_direct(metric: str, key: str, label: str, limit: float | None) -> Check:
        recording, direct = s[f"recording.{metric}"].median, s[f"direct.{metric}"].median
        note = f"{recording:.3f} vs {direct:.3f} ms"
        return Check(key, label, recording - direct, "ms", note, limit=limit, strict=True)

    return [
        replay_vs_floor("text_stream", "(a) streamtape / floor, stream() + text_stream"),
        replay_vs_floor("create", "(a) streamtape / floor, create(stream=True)"),
        load_vs_floor("text_stream", "b.load", "(b) Cassette.load / floor consume (text_stream)", 0.05),
        load_vs_floor("create", "b.load_vs_create", "    same, against create(stream=True) instead", None),
        recording_vs_direct("ttfe", "c.ttfe", "(c) TTFE added by recording (median diff)", 1.0),
        recording_vs_direct("total", "c.total", "    whole stream added by recording", None),
        Check("d.retry", "(d) '429 twice, then success': wall time", s["fault.retry"].median, "ms",
              f"SDK back-off charged to the tape: {s['fault.retry.real'].median / 1000:.2f} s", limit=1000.0,
              strict=True),
        Check("d.stall", "(d) 'stall 10 minutes': wall time", s["fault.stall"].median, "ms",
              "ReadTimeout raised at once in virtual time", limit=1000.0, strict=True),
        Check("e.serve", "(e) serve, 100 concurrent streams: p99 jitter", s["serve.p99"].median, "ms",
              f"{SERVE_STREAMS} x {SERVE_EVENTS} events {SERVE_GAP * 1000:.0f} ms apart; max "
              f"{s['serve.max'].median:.1f} ms", limit=10.0, strict=True),
    ]  # fmt: skip


def environment() -> dict[str, str]:
    affinity = len(os.sched_getaffinity(0)) if hasattr(os, "sched_getaffinity") else os.cpu_count()
    return {
        "python": f"{platform.python_implementation()} {platform.python_version()}",
        "anthropic": anthropic.__version__,
        "httpx2": httpx2.__version__,
        "httpcore2": httpcore2.__version__,
        "pyyaml": yaml.__version__,
        "libyaml": "on" if yaml.__with_libyaml__ else "off (pure-Python YAML: slow loads)",
        "cpus": f"{os.cpu_count()} (usable: {affinity})",
        "platform": platform.platform(),
    }


@dataclass(frozen=True)
class Report:
    """Everything one run measured, with what it was measured on."""

    environment: dict[str, str]
    stream: Stream
    rounds: int
    ttfe_rounds: int
    samples: Samples
    summaries: dict[str, Summary]
    checks: list[Check]
    seconds: float

    def render(self) -> str:
        env = self.environment
        lines = [
            "streamtape benchmarks",
            "  " + " | ".join(f"{key} {value}" for key, value in env.items() if key != "platform"),
            f"  platform {env['platform']}",
            f"  (a, b) stream: {self.stream.describe()}",
            f"  rounds: {self.rounds} for (a) and (b), {self.ttfe_rounds} for (c); interleaved, order rotating",
            "  (c) one SDK client per variant, reused: after the warm-up both stream over an open keep-alive",
            "",
            f"  {'variant':<40} {'median':>10} {'p25':>10} {'p75':>10} {'min':>10}",
        ]
        for key, label in VARIANT_LABELS:
            v = self.summaries[key]
            lines.append(f"  {label:<40} {v.median:>7.3f} ms {v.p25:>7.3f} ms {v.p75:>7.3f} ms {v.minimum:>7.3f} ms")
        lines += ["", f"  {'check (medians)':<50} {'value':>10} {'target':>9}  {'result':<6}  detail"]
        for check in self.checks:
            value, target = check.cells()
            lines.append(f"  {check.label:<50} {value:>10} {target:>9}  {check.verdict:<6}  {check.note}")
        misses = [check.label.strip() for check in self.checks if check.verdict == "MISS"]
        passes = sum(check.verdict == "PASS" for check in self.checks)
        lines += ["", f"  {passes} PASS, {len(misses)} MISS"]
        lines += [f"  MISS: {label}" for label in misses]
        lines.append(f"  total benchmark time: {self.seconds:.1f} s")
        return "\n".join(lines)

    def to_json(self) -> dict[str, Any]:
        return {
            "environment": self.environment,
            "stream": {"events": len(self.stream.events), "bytes": len(self.stream.body), "source": f"{SOURCE}.sse"},
            "rounds": {"replay_and_load": self.rounds, "ttfe": self.ttfe_rounds},
            "summaries_ms": {key: asdict(value) for key, value in self.summaries.items()},
            "checks": [{**asdict(check), "verdict": check.verdict} for check in self.checks],
            "samples_s": self.samples,  # per metric, in round order (paired across variants by index)
            "seconds": self.seconds,
        }


def parse_args(argv: Sequence[str] | None) -> argparse.Namespace:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0] if __doc__ else None)
    parser.add_argument("--quick", action="store_true", help="few rounds (a smoke test), not for numbers")
    parser.add_argument("--json", type=Path, metavar="PATH", help="also write the results as JSON to PATH")
    parser.add_argument(
        "--rounds", type=int, help=f"rounds for (a) and (b) (default {FULL_ROUNDS}, quick {QUICK_ROUNDS})"
    )
    parser.add_argument(
        "--ttfe-rounds", type=int, help=f"rounds for (c) (default {FULL_TTFE_ROUNDS}, quick {QUICK_TTFE_ROUNDS})"
    )
    parser.add_argument(
        "--scale", action="store_true",
        help="run the scaling benchmark (benchmarks/scale.py, 10k/100k[/1M] events) instead, with the other options",
    )  # fmt: skip
    args = parser.parse_args(argv)
    args.rounds = args.rounds or (QUICK_ROUNDS if args.quick else FULL_ROUNDS)
    args.ttfe_rounds = args.ttfe_rounds or (QUICK_TTFE_ROUNDS if args.quick else FULL_TTFE_ROUNDS)
    if args.rounds < 1 or args.ttfe_rounds < 1:
        parser.error("rounds must be at least 1")
    return args


def main(argv: Sequence[str] | None = None) -> int:
    argv = list(sys.argv[1:] if argv is None else argv)
    from benchmarks.stacks import bench_stacks
    from benchmarks.stacks import checks as stack_checks

    if "--scale" in argv:  # growth with the number of events: its own runner and options
        from benchmarks.scale import main as scale

        return scale([arg for arg in argv if arg != "--scale"])
    args = parse_args(argv)
    # (b) measures a cold load, as a test's first use of a cassette does: no parsed copy is kept
    # (benchmarks/sweep.py measures what keeping one saves a thousand-test sweep)
    streamtape.cassette._LOADED.LIMIT = 0  # noqa: SLF001
    began = time.perf_counter()
    stream = build_stream()
    with frozen_heap(), tempfile.TemporaryDirectory(prefix="streamtape-bench-") as tmp:
        samples = {
            **bench_replay(stream, args.rounds, Path(tmp)),
            **bench_ttfe(args.ttfe_rounds, Path(tmp)),
            **bench_faults(args.rounds, Path(tmp)),
            **bench_serve(Path(tmp)),
            **bench_stacks(stream, args.rounds, Path(tmp)),
        }
    summaries = {key: Summary.of(values) for key, values in samples.items()}
    report = Report(environment(), stream, args.rounds, args.ttfe_rounds, samples, summaries,
                    checks(summaries, len(stream.events)) + stack_checks(summaries),
                    time.perf_counter() - began)  # fmt: skip
    print(report.render())
    if args.json is not None:
        args.json.write_text(json.dumps(report.to_json(), indent=2) + "\n", encoding="utf-8")
        print(f"  JSON written to {args.json}")
    return 0  # a report, not a test: a MISS is printed, never an exit status


if __name__ == "__main__":
    sys.exit(main())
