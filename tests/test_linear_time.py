"""Linear time, kept: SSE parsing, event boundaries, inspect, lint, and planning, applying and playing
every fault kind do work in proportion to the body, measured by counting work, never by a clock.

Two counters, both deterministic:

- **Python work**: the bytecode instructions executed (``sys.settrace`` with opcode events). A loop
  inside a loop over the events (a scan per event, a list rebuilt per piece) shows as n² here.
- **Byte work**: the body is handed in as ``Tracked``, a ``bytes`` whose slices, concatenations,
  line splits and searches count the bytes they touch and hand on ``Tracked`` bytes in turn. Copying
  what is left of a buffer once per line (the first SSE decoder's ``buffer = buffer[end:]``), or
  searching it from its start each time, shows as n² here, though it costs no bytecode.

Each check compares n events with 4n: linear work grows 4x (a fixed part makes it a little less);
quadratic work grows about 16x. The bounds allow 4x plus a quarter.
"""

from __future__ import annotations

import random
import sys
from collections.abc import Callable
from pathlib import Path
from typing import Any

import pytest

import streamtape.cassette as cassette_module
import streamtape.faults._plan as plan_module
from streamtape import Cassette, Interaction, Request, Response
from streamtape.engine.playback import Playback
from streamtape.faults import Context, apply, parse
from streamtape.faults.catalogue import CATALOGUE
from streamtape.framing.sse import SSE
from streamtape.lint import lint_file
from streamtape.report import describe_cassette, timeline
from streamtape.sse import SSEDecoder, event_ends, parse_events
from streamtape.wire import Action, Chunks, Respond
from tests.support.wire_server import DATA_DIR, split_events

N = 150  # events in the smaller body; the larger has 4N
GROWTH = 4 * 1.25  # linear is <= 4x from N to 4N events; quadratic is ~16x

pytestmark = pytest.mark.skipif(sys.gettrace() is not None, reason="a tracer (debugger, coverage) is already active")


# --- counters --------------------------------------------------------------------------------------


def opcodes(func: Callable[[], object]) -> int:
    """Bytecode instructions ``func`` executes (in every Python function it calls)."""
    count = 0

    def local(frame: Any, event: str, arg: Any) -> Any:
        nonlocal count
        if event == "opcode":
            count += 1
        return local

    def start(frame: Any, event: str, arg: Any) -> Any:
        frame.f_trace_opcodes = True
        return local

    sys.settrace(start)
    try:
        func()
    finally:
        sys.settrace(None)
    return count


class Tracked(bytes):
    """Bytes that count the bytes each operation on them copies or scans (in ``Tracked.touched``),
    and whose slices, sums, lines and strips are ``Tracked`` too."""

    touched = 0

    @classmethod
    def _count(cls, size: int) -> None:
        Tracked.touched += size

    def __getitem__(self, key: Any) -> Any:
        value = bytes.__getitem__(self, key)
        if isinstance(key, slice):
            self._count(len(value))
            return Tracked(value)
        return value

    def __add__(self, other: Any) -> Tracked:
        value = bytes.__add__(self, other)
        self._count(len(value))
        return Tracked(value)

    def __radd__(self, other: Any) -> Any:
        if not isinstance(other, bytes):
            return NotImplemented  # bytearray += Tracked: extended in place, as with any bytes
        value = bytes.__add__(other, self)
        self._count(len(value))
        return Tracked(value)

    def _scan(self, name: str, sub: Any, start: int | None = None, *rest: Any) -> int:
        found = getattr(bytes, name)(self, sub, start if start is not None else 0, *rest)
        begin = 0 if start is None else start if start >= 0 else max(len(self) + start, 0)
        self._count((found + 1 - begin) if found >= 0 else max(len(self) - begin, 0))
        return found

    def find(self, sub: Any, *args: Any) -> int:  # type: ignore[override]
        return self._scan("find", sub, *args)

    def rfind(self, sub: Any, *args: Any) -> int:  # type: ignore[override]
        found = bytes.rfind(self, sub, *args)
        self._count(len(self))
        return found

    def splitlines(self, keepends: bool = False) -> list[bytes]:  # type: ignore[override]
        self._count(len(self))
        return [Tracked(line) for line in bytes.splitlines(self, keepends)]

    def split(self, *args: Any, **kwargs: Any) -> list[bytes]:  # type: ignore[override]
        self._count(len(self))
        return [Tracked(part) for part in bytes.split(self, *args, **kwargs)]

    def rstrip(self, *args: Any) -> Tracked:  # type: ignore[override]
        self._count(len(self))
        return Tracked(bytes.rstrip(self, *args))

    def strip(self, *args: Any) -> Tracked:  # type: ignore[override]
        self._count(len(self))
        return Tracked(bytes.strip(self, *args))

    def decode(self, *args: Any, **kwargs: Any) -> str:
        self._count(len(self))
        return bytes.decode(self, *args, **kwargs)

    def count(self, *args: Any) -> int:  # type: ignore[override]
        self._count(len(self))
        return bytes.count(self, *args)


def work(func: Callable[[], object]) -> dict[str, int]:
    """The bytecode ``func`` executes and the bytes it copies or scans through ``Tracked`` operations."""
    Tracked.touched = 0
    count = opcodes(func)
    return {"bytecode": count, "bytes touched": Tracked.touched}


MEASURES = ("bytecode", "bytes touched")


def assert_linear(
    setup: Callable[[int], Callable[[], object]], what: str, *, measures: tuple[str, ...] = MEASURES
) -> None:
    """``setup(n)`` gives the work for ``n`` events; it must grow linearly from N to 4N events."""
    setup(N)()  # once first, uncounted: what runs only the first time (imports, caches) is not the work
    small, large = work(setup(N)), work(setup(4 * N))
    for measure in measures:
        assert small[measure] > 0, f"{what}: no {measure} was counted"
        assert large[measure] <= GROWTH * small[measure], (
            f"{what}: {measure} grows {large[measure] / small[measure]:.1f}x from {N} to {4 * N} events "
            f"({small[measure]:,} -> {large[measure]:,}); linear work grows at most {GROWTH}x, quadratic about 16x"
        )


# --- bodies and cassettes ----------------------------------------------------------------------------

_EVENTS = split_events((DATA_DIR / "text_multi_delta.sse").read_bytes())


def _named(name: str) -> bytes:
    return next(e for e in _EVENTS if e.startswith(f"event: {name}\n".encode()))


_DELTAS = [e for e in _EVENTS if e.startswith(b"event: content_block_delta\n")]
NEWLINES = {"lf": b"\n", "crlf": b"\r\n", "cr": b"\r"}


def stream_events(n: int, newline: bytes = b"\n", *, accented: bool = False) -> list[bytes]:
    """An Anthropic stream of ``n`` events made of real event bytes (as benchmarks/run.py builds it);
    ``accented``: each text delta begins with an "é" (two UTF-8 bytes: what split_utf8 splits)."""
    head = [_named("message_start"), _named("content_block_start"), _named("ping")]
    tail = [_named("content_block_stop"), _named("message_delta"), _named("message_stop")]
    middle = [_DELTAS[i % len(_DELTAS)] for i in range(n - len(head) - len(tail))]
    if accented:
        middle = [event.replace(b'"text":"', '"text":"é'.encode(), 1) for event in middle]
    return [event.replace(b"\n", newline) for event in head + middle + tail]


def interaction(n: int, *, chunking: str = "event", newline: bytes = b"\n", body_type: type = bytes,
                accented: bool = False) -> Interaction:  # fmt: skip
    events = stream_events(n, newline, accented=accented)
    body = body_type(b"".join(events))
    if chunking == "event":
        sizes = [len(e) for e in events]
    elif chunking == "one":
        sizes = [len(body)]
    else:  # small random chunks, a CR often at a chunk's end
        rng, sizes, left = random.Random(n), [], len(body)
        while left:
            sizes.append(min(left, rng.randint(1, 40)))
            left -= sizes[-1]
    timing = tuple((round(0.4 + 0.002 * i, 4), size) for i, size in enumerate(sizes))
    headers = (("content-type", "text/event-stream"),)
    response = Response(200, headers, body, timing, "OK", 0.4)
    request = Request("POST", "https://api.anthropic.com/v1/messages", (("content-type", "application/json"),),
                      b'{"model":"claude-test","max_tokens":1024,"stream":true}')  # fmt: skip
    return Interaction(request, response)


def fault_specs(n: int, size: int) -> dict[str, str]:
    """Every fault kind in the catalogue, positioned mid-stream where it takes a position."""
    mid = n // 2
    specs = {
        "refuse": "refuse", "timeout": "timeout", "http_error": "http_error:status=503",
        "rate_limit": "rate_limit", "overloaded": "overloaded", "server_error": "server_error",
        "reset": f"reset:after={mid}", "disconnect": f"disconnect:at_byte={size // 2}",
        "stall": f"stall:after={mid},seconds=5", "error_event": f"error_event:after={mid}", "truncate": "truncate",
        "delay": "delay:per_event=0.001,jitter=0.0005", "rechunk": "rechunk:size=64",
        "corrupt": f"corrupt:event={mid}", "duplicate": f"duplicate:event={mid}", "drop": f"drop:event={mid}",
        "ping": "ping:every=10", "connect_timeout": "connect_timeout", "write_timeout": "write_timeout", "pool_timeout": "pool_timeout", "bad_status": "bad_status", "bad_chunk": f"bad_chunk:after={mid}", "corrupt_gzip": "corrupt_gzip", "bom": "bom", "json_body": "json_body", "linger": "linger",
        "split": f"split:at_byte={size // 2}", "split_crlf": "split_crlf", "split_utf8": "split_utf8",
    }  # fmt: skip
    # a fault of one provider's streams only is checked on that provider's stream (tests/test_provider_<name>.py)
    every = {name for name, cls in CATALOGUE.items() if not getattr(cls, "providers", ())}
    assert set(specs) == every, "a new fault kind: add it here so its cost is checked too"
    return specs


# --- SSE parsing and event boundaries ----------------------------------------------------------------


@pytest.mark.parametrize("newline", list(NEWLINES))
@pytest.mark.parametrize("chunking", ["whole", "event", "small"])
def test_sse_decoding_is_linear(newline: str, chunking: str) -> None:
    def decode(n: int) -> Callable[[], object]:
        item = interaction(n, chunking="event" if chunking == "whole" else chunking, newline=NEWLINES[newline],
                           body_type=Tracked)  # fmt: skip
        assert item.response is not None
        chunks = [Tracked(chunk.data) for chunk in item.chunks] if chunking != "whole" else [item.body]

        def run() -> None:
            decoder = SSEDecoder()
            events = [event for chunk in chunks for event in decoder.decode(chunk)] + decoder.flush()
            assert len(events) == n

        return run

    assert_linear(decode, f"SSEDecoder, {chunking} chunks, {newline}")


def test_a_long_line_in_tiny_chunks_is_linear() -> None:
    """One line of many bytes fed a byte or two at a time is kept growing in place, not re-copied."""

    def feed(n: int) -> Callable[[], object]:
        body = b"data: " + b"x" * (50 * n) + b"\r\n\r\n"
        pieces = [Tracked(body[i : i + 2]) for i in range(0, len(body), 2)]

        def run() -> None:
            decoder = SSEDecoder()
            events = [event for piece in pieces for event in decoder.decode(piece)] + decoder.flush()
            assert [len(e.data) for e in events] == [50 * n]

        return run

    assert_linear(feed, "one long line in 2-byte chunks")


@pytest.mark.parametrize("newline", list(NEWLINES))
def test_event_boundaries_are_linear(newline: str) -> None:
    def bodies(n: int) -> Callable[[], object]:
        body = Tracked(b"".join(stream_events(n, NEWLINES[newline])))
        return lambda: event_ends(body)

    assert_linear(bodies, f"event_ends, {newline}")
    body = b"".join(stream_events(N, NEWLINES[newline]))
    assert event_ends(body) == [event.end for event in parse_events(body)]


# --- inspect and lint ------------------------------------------------------------------------------


def test_inspect_is_linear() -> None:
    def inspect(n: int) -> Callable[[], object]:
        cassette = Cassette([interaction(n, body_type=Tracked)])

        def run() -> None:
            (report,) = describe_cassette(cassette)["interactions"]
            timeline(report["arrivals"], report["duration"])

        return run

    assert_linear(inspect, "inspect (describe_cassette and its timeline)")


def test_lint_is_linear(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    # the body a loaded cassette parses into events, as Tracked bytes
    monkeypatch.setattr(SSE, "events", lambda body: parse_events(Tracked(body)))

    def lint(n: int) -> Callable[[], object]:
        path = Cassette([interaction(n)]).save(tmp_path / f"lint-{n}.yaml")
        return lambda: lint_file(path)

    assert_linear(lint, "lint_file (load, SSE checks, secrets)")


# --- faults: planning, applying, playing ---------------------------------------------------------------


@pytest.fixture(autouse=True)
def cold(monkeypatch: pytest.MonkeyPatch) -> None:
    """Every load parses and every plan maps its events, as the first one does: the work counted is
    the work itself, not a cache hit (the caches are what a sweep gains, measured in benchmarks/sweep.py)."""
    monkeypatch.setattr(cassette_module._LOADED, "LIMIT", 0)  # noqa: SLF001
    monkeypatch.setattr(plan_module, "_MAPPED", _Forgetful())


class _Forgetful(dict):  # type: ignore[type-arg]
    def __setitem__(self, key: Any, value: Any) -> None:
        pass


@pytest.fixture
def tracked_planning(monkeypatch: pytest.MonkeyPatch) -> None:
    """The body a plan joins from its sends is searched for event boundaries as ``Tracked`` bytes."""
    monkeypatch.setattr(SSE, "event_ends", lambda body: event_ends(Tracked(body)))


@pytest.mark.usefixtures("tracked_planning")
@pytest.mark.parametrize("chunking", ["event", "one", "small"])
@pytest.mark.parametrize("kind", sorted(name for name, cls in CATALOGUE.items() if not getattr(cls, "providers", ())))
def test_every_fault_is_linear(kind: str, chunking: str) -> None:
    """Planning (splitting the response at its events) and applying each fault kind, on a recording in
    one chunk per event, in one chunk, and in chunks of a few bytes."""

    def plan(n: int) -> Callable[[], object]:
        item = interaction(n, chunking=chunking, body_type=Tracked, accented=kind == "split_utf8")
        faults = parse(fault_specs(n, len(item.body))[kind]).faults_for(0)
        return lambda: apply(faults, item.actions(), Context())

    assert_linear(plan, f"{kind}, {chunking} chunks")


@pytest.mark.usefixtures("tracked_planning")
def test_rechunking_into_large_chunks_is_linear() -> None:
    """A chunk is gathered from many pieces once, not by concatenating the growing chunk per piece."""

    def plan(n: int) -> Callable[[], object]:
        item = interaction(n, body_type=Tracked)
        faults = parse(f"rechunk:size={len(item.body)}").faults_for(0)
        return lambda: apply(faults, item.actions(), Context())

    assert_linear(plan, "rechunk into one chunk")


def _play(actions: list[Action]) -> int:
    playback = Playback(actions, read_timeout=None, instant=True)
    if not isinstance(playback.head()[1], Respond):
        return 0
    received = 0
    for _, item in playback.body():  # bytes, a recorded run, then the end or the fault's cut
        if isinstance(item, bytes | Chunks):
            received += len(item) if isinstance(item, bytes) else len(item.data)
    return received


@pytest.mark.parametrize("spec", ["disconnect:after=5", "disconnect:after=LATE", "stall:after=LATE,seconds=1",
                                  "ping:every=3", "rechunk:size=7"])  # fmt: skip
@pytest.mark.usefixtures("tracked_planning")
def test_faulted_replay_is_linear(spec: str) -> None:
    """A faulted response, planned and played to the app (the in-process executor)."""

    def replay(n: int) -> Callable[[], object]:
        item = interaction(n, body_type=Tracked)
        faults = parse(spec.replace("LATE", str(n * 9 // 10))).faults_for(0)
        return lambda: _play(apply(faults, item.actions(), Context()))

    assert_linear(replay, f"{spec}, planned and played")


# --- the counters themselves ---------------------------------------------------------------------------


def test_the_counters_see_quadratic_work() -> None:
    """What these tests would miss, they must not: the first SSE decoder's way of consuming its buffer
    (copy the rest after every line; search the whole rest for a CR) counts as quadratic."""

    def quadratic(n: int) -> Callable[[], object]:
        body = Tracked(b"".join(stream_events(n)))

        def run() -> None:
            buffer = b"" + body
            while (end := buffer.find(b"\n")) >= 0:
                buffer.find(b"\r")
                buffer = buffer[end + 1 :]

        return run

    with pytest.raises(AssertionError, match="quadratic about 16x"):
        assert_linear(quadratic, "the first decoder's buffer handling", measures=("bytes touched",))

    def nested(n: int) -> Callable[[], object]:
        items = list(range(n))
        return lambda: [next(i for i in items if i >= j) for j in items]

    with pytest.raises(AssertionError, match="quadratic about 16x"):
        assert_linear(nested, "a scan per item", measures=("bytecode",))


# --- the scaling benchmark keeps working -----------------------------------------------------------------


def test_the_scaling_benchmark_runs(tmp_path: Path) -> None:
    """A smoke run of benchmarks/scale.py (its numbers are read in benchmarks/README.md)."""
    import json
    import subprocess

    from tests.support import sdk

    if sdk.SDK_MAJOR < 1:
        pytest.skip("the benchmarks measure the httpx2-based SDK (anthropic >= 1)")
    out = tmp_path / "scale.json"
    command = [sys.executable, "benchmarks/scale.py", "--sizes", "100,1000", "--rounds", "1", "--json", str(out)]
    root = Path(__file__).resolve().parent.parent
    result = subprocess.run(command, cwd=root, capture_output=True, text=True, timeout=300)
    assert result.returncode == 0, result.stderr
    report = json.loads(out.read_text())
    stages = {growth["stage"] for growth in report["growth"]}
    assert {"load", "inspect", "lint", "replay", "fault.early", "fault.late"} <= stages
    measured = {kind for kind, cls in CATALOGUE.items() if not cls.providers} - {"split_utf8"}  # as scale.py says
    assert {f"plan.{kind}" for kind in measured} <= stages
    assert all(growth["verdict"] in ("PASS", "MISS") for growth in report["growth"])
