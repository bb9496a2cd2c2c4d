"""Saving and loading one streamed response: streamtape, vcrpy and cassetter side by side.

Run from the project root::

    python benchmarks/persist.py [--quick] [--million] [--rounds N] [--json PATH]
    python -m benchmarks.persist
    python benchmarks/scale.py --persist      # after the scaling report, with its sizes

Each size (10,000 and 100,000 events; ``--million`` adds 1,000,000) is one interaction made as
``benchmarks/run.py`` makes its stream (``build_stream(n)``: real event bytes from
tests/data/sse/text_multi_delta.sse, one chunk per event, an event every 2 ms), written and read by:

- **streamtape**: ``Cassette([interaction]).save(path)`` (render, the check that every body loads back
  byte-exact, and the atomic write with its ``fsync``), and ``Cassette.load(path)`` on the cold path
  (the cache of unchanged files off: ``streamtape.cassette._LOADED.LIMIT = 0``), which checks
  everything it reads;
- **vcrpy**: its YAML serializer and filesystem persister, as ``vcr.cassette.Cassette`` saves and
  loads them (and so pytest-recording, whose defaults they are):
  ``FilesystemPersister.save_cassette(path, {"requests": [...], "responses": [...]}, yamlserializer)``
  and ``FilesystemPersister.load_cassette(path, yamlserializer)``;
- **cassetter** (when installed): ``cassetter.Cassette(path, record_mode=ALL)``, ``.load()``,
  ``.record(...)`` (untimed), then ``.save()`` timed; and ``Cassette(path, record_mode=NONE).load()``.

Every library is first checked to give the body back byte for byte. Then, in each round, every size
(in an order that rotates from round to round) has each library (rotating too) save and then load
once, so that a slow spell of this shared machine lands on all of them alike. Each sample's CPU time
(``time.process_time``: all threads) and wall time are kept; the report gives medians, the ratio of
streamtape's to each peer's, and the growth per 10x events (linear work: about 10x). Before the
rounds the heap is frozen and every sample starts after a ``gc.collect()`` (as in ``run.py``).

Memory, measured once per size after the rounds, as a multiple of the body's size:

- **Python heap**: ``tracemalloc``'s peak while the operation runs, and what the loaded cassette
  still holds after a load. cassetter keeps its data in Rust, out of ``tracemalloc``'s sight: its
  figures are only its Python objects.
- **RSS**: the rise of the peak resident set size over the operation, in a fresh interpreter per
  measurement (``ru_maxrss``), which sees every allocator.

The targets (issue 16) are checked on CPU-time medians: save at most 1.5x vcrpy's at 10k and 100k
events; load at most cassetter's at 100k; what a loaded cassette holds at most 1.2x the body plus a
constant. It is a report, not a test: it exits 0 whatever it finds.
"""

from __future__ import annotations

import argparse
import contextlib
import ctypes
import gc
import json
import math
import statistics
import subprocess
import sys
import tempfile
import time
import tracemalloc
from collections.abc import Callable, Sequence
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

_ROOT = Path(__file__).resolve().parent.parent
if str(_ROOT) not in sys.path:
    sys.path.insert(0, str(_ROOT))

import streamtape  # noqa: E402
import streamtape.cassette as cassette_module  # noqa: E402

try:
    from vcr.persisters.filesystem import FilesystemPersister
    from vcr.request import Request as VcrRequest
    from vcr.serializers import yamlserializer
except ImportError:  # pragma: no cover - vcrpy is a dev dependency
    FilesystemPersister = None  # type: ignore[assignment, misc]

try:
    import cassetter
except ImportError:  # pragma: no cover - an optional peer
    cassetter = None  # type: ignore[assignment]

SIZES = (10_000, 100_000)
QUICK_SIZES = (1_000, 10_000)
MILLION = 1_000_000
ROUNDS, QUICK_ROUNDS, MILLION_ROUNDS = 7, 3, 3
SAVE_LIMIT = 1.5  # streamtape's save time at most this many times vcrpy's
HELD_LIMIT = 1.2  # what a loaded cassette holds, at most this many times its body (plus a constant)
HELD_CONSTANT = 1 << 20
OPS = ("save", "load")
URL = "http://bench.invalid/v1/messages"  # benchmarks/run.py's BASE_URL


@dataclass(frozen=True)
class Stream:
    """What is saved: the response's events (its body, one chunk each) and headers, and the request's
    body (``benchmarks/run.py``'s, whose import costs seconds: fresh interpreters read it back)."""

    events: tuple[bytes, ...]
    headers: tuple[tuple[str, str], ...]
    request_body: bytes

    @property
    def body(self) -> bytes:
        return b"".join(self.events)


def build(n_events: int) -> Stream:
    from benchmarks.run import build_stream, request_params

    stream = build_stream(n_events)
    return Stream(stream.events, stream.headers, json.dumps({**request_params(), "stream": True}).encode())


def make_cassette(stream: Stream) -> streamtape.Cassette:
    """The one-interaction cassette ``benchmarks/run.py``'s ``write_cassette`` saves: the headers at
    0.4 s, then an event every 2 ms."""
    request = streamtape.Request("POST", URL, (("content-type", "application/json"),), stream.request_body)
    timing = tuple((0.4 + 0.002 * i, len(event)) for i, event in enumerate(stream.events))
    response = streamtape.Response(200, stream.headers, stream.body, timing, reason="OK", headers_at=0.4)
    return streamtape.Cassette([streamtape.Interaction(request, response)])


def read_back(path: Path) -> Stream:
    """The stream a streamtape cassette of this benchmark holds."""
    item = streamtape.Cassette.load(path).interactions[0]
    assert item.response is not None
    body, events, at = item.response.body, [], 0
    for _, size in item.response.timing:
        events.append(body[at : at + size])
        at += size
    return Stream(tuple(events), item.response.headers, item.request.body)


# --- the libraries -------------------------------------------------------------------------------------


class Library:
    """One library's save and load of one size's stream, at ``path``."""

    name = ""

    def __init__(self, stream: Stream | None, path: Path) -> None:
        self.stream = stream  # None: only to load
        self.path = path

    def save(self) -> None:
        raise NotImplementedError

    def load(self) -> object:
        raise NotImplementedError

    def body(self, loaded: Any) -> bytes:
        raise NotImplementedError

    def prepare_save(self) -> None:
        """What the save needs that is not timed (cassetter: recording the interaction)."""


class Streamtape(Library):
    name = "streamtape"

    def __init__(self, stream: Stream | None, path: Path) -> None:
        super().__init__(stream, path)
        self.cassette = make_cassette(stream) if stream is not None else None

    def save(self) -> None:
        assert self.cassette is not None
        self.cassette.save(self.path)

    def load(self) -> object:
        return streamtape.Cassette.load(self.path)

    def body(self, loaded: Any) -> bytes:
        return bytes(loaded.interactions[0].response.body)


class Vcrpy(Library):
    name = "vcrpy"

    def __init__(self, stream: Stream | None, path: Path) -> None:
        super().__init__(stream, path)
        if stream is None:
            return
        request = VcrRequest("POST", URL, stream.request_body, {"content-type": "application/json"})
        response = {
            "status": {"code": 200, "message": "OK"},
            "headers": {name: [value] for name, value in stream.headers},
            "body": {"string": stream.body},
        }
        self.data = {"requests": [request], "responses": [response]}

    def save(self) -> None:
        FilesystemPersister.save_cassette(self.path, self.data, serializer=yamlserializer)

    def load(self) -> object:
        return FilesystemPersister.load_cassette(self.path, serializer=yamlserializer)

    def body(self, loaded: Any) -> bytes:
        body = loaded[1][0]["body"]["string"]
        return body if isinstance(body, bytes) else body.encode()


class Cassetter(Library):
    name = "cassetter"

    def __init__(self, stream: Stream | None, path: Path) -> None:
        super().__init__(stream, path)
        self.recorded: Any = None

    def prepare_save(self) -> None:
        assert self.stream is not None
        recorded = cassetter.Cassette(str(self.path), record_mode=cassetter.RecordMode.ALL)
        recorded.load()
        headers = {name: [value] for name, value in self.stream.headers}
        recorded.record("POST", URL, {"content-type": ["application/json"]}, self.stream.request_body, 200,
                        headers, self.stream.body)  # fmt: skip
        self.recorded = recorded

    def save(self) -> None:
        self.recorded.save()

    def load(self) -> object:
        loaded = cassetter.Cassette(str(self.path), record_mode=cassetter.RecordMode.NONE)
        loaded.load()
        return loaded

    def body(self, loaded: Any) -> bytes:
        content = loaded.interactions[0].response.body.content
        return content if isinstance(content, bytes) else content.encode()


def libraries() -> list[type[Library]]:
    found: list[type[Library]] = [Streamtape]
    if FilesystemPersister is not None:
        found.append(Vcrpy)
    if cassetter is not None:
        found.append(Cassetter)
    return found


# --- measuring -----------------------------------------------------------------------------------------


@dataclass
class Size:
    events: int
    body_bytes: int
    file_bytes: dict[str, int] = field(default_factory=dict)
    cpu: dict[tuple[str, str], list[float]] = field(default_factory=dict)  # (library, op) -> seconds
    wall: dict[tuple[str, str], list[float]] = field(default_factory=dict)
    heap_peak: dict[tuple[str, str], int] = field(default_factory=dict)  # bytes
    heap_held: dict[str, int] = field(default_factory=dict)  # bytes the loaded cassette holds
    rss_peak: dict[tuple[str, str], int] = field(default_factory=dict)
    failed: dict[str, str] = field(default_factory=dict)  # a library that could not save and load it: why

    def median(self, library: str, op: str, clock: str = "cpu") -> float:
        return statistics.median((self.cpu if clock == "cpu" else self.wall)[(library, op)])

    def has(self, library: str, op: str) -> bool:
        return (library, op) in self.cpu


def sample(func: Callable[[], object]) -> tuple[float, float]:
    gc.collect()
    wall, cpu = time.perf_counter(), time.process_time()
    func()
    return time.process_time() - cpu, time.perf_counter() - wall


def prepare(n_events: int, workdir: Path) -> tuple[Size, list[Library]]:
    stream = build(n_events)
    size = Size(n_events, len(stream.body))
    libs = []
    for kind in libraries():  # each gives the body back byte for byte, or it is left out of this size
        lib = kind(stream, workdir / f"{kind.name}-{n_events}.yaml")
        try:
            lib.prepare_save()
            lib.save()
            size.file_bytes[lib.name] = lib.path.stat().st_size
            same = lib.body(lib.load()) == stream.body
        except Exception as exc:  # noqa: BLE001 - a peer's limit (cassetter refuses scalars over ~100 MB)
            size.failed[lib.name] = f"{type(exc).__name__}: {str(exc).splitlines()[0][:160]}"
            continue
        if not same:
            raise RuntimeError(f"{lib.name} does not give back the {n_events:,}-event body it saved")
        libs.append(lib)
    return size, libs


def measure(prepared: Sequence[tuple[Size, list[Library]]], rounds: int) -> None:
    for r in range(rounds):
        shift = r % len(prepared)
        for size, libs in [*prepared[shift:], *prepared[:shift]]:
            turn = r % len(libs)
            for lib in [*libs[turn:], *libs[:turn]]:
                lib.prepare_save()
                for op in OPS:
                    cpu, wall = sample(lib.save if op == "save" else lib.load)
                    size.cpu.setdefault((lib.name, op), []).append(cpu)
                    size.wall.setdefault((lib.name, op), []).append(wall)


def measure_heap(size: Size, libs: Sequence[Library]) -> None:
    """tracemalloc's peak over each operation (only what it allocates), and what a load leaves held."""
    for lib in libs:
        lib.prepare_save()
        for op in OPS:
            gc.collect()
            tracemalloc.start()
            loaded = lib.load() if op == "load" else lib.save()  # type: ignore[func-returns-value]
            held, peak = tracemalloc.get_traced_memory()
            tracemalloc.stop()
            size.heap_peak[(lib.name, op)] = peak
            if op == "load":
                size.heap_held[lib.name] = held
            del loaded


def measure_rss(size: Size, libs: Sequence[Library], workdir: Path) -> None:
    """The rise of the peak RSS over each operation, each in a fresh interpreter (Linux: it resets
    the peak with /proc/self/clear_refs)."""
    if not Path("/proc/self/clear_refs").exists():
        return
    for lib in libs:
        for op in OPS:
            command = [sys.executable, str(Path(__file__).resolve()), "--rss", lib.name, op, str(size.events),
                       str(workdir)]  # fmt: skip
            result = subprocess.run(command, capture_output=True, text=True, timeout=600, cwd=_ROOT)
            if result.returncode == 0 and result.stdout.strip().isdigit():
                size.rss_peak[(lib.name, op)] = int(result.stdout.strip())


def _cold() -> None:
    """Every load parses: the cold path (the cache of unchanged files off)."""
    cache = getattr(cassette_module, "_LOADED", None)
    if cache is not None:
        cache.LIMIT = 0


def rss_child(name: str, op: str, n_events: int, workdir: Path) -> int:
    """In a fresh interpreter: set up as the rounds do, then one ``op``; how far the peak RSS rose
    above the RSS before it (the peak reset to it first: /proc/self/clear_refs)."""
    _cold()
    kind = next(kind for kind in libraries() if kind.name == name)
    stream = read_back(workdir / f"streamtape-{n_events}.yaml") if op == "save" else None
    lib = kind(stream, workdir / f"{name}-{n_events}.yaml")
    if op == "save":
        lib.prepare_save()
    del stream
    gc.collect()
    with contextlib.suppress(OSError, AttributeError):  # what the set-up freed goes back to the system
        ctypes.CDLL("libc.so.6").malloc_trim(0)
    Path("/proc/self/clear_refs").write_text("5")
    before = _status("VmRSS")
    if op == "save":
        lib.save()
    else:
        lib.load()
    return _status("VmHWM") - before


def _status(field: str) -> int:
    """A field of /proc/self/status, in bytes."""
    for line in Path("/proc/self/status").read_text().splitlines():
        if line.startswith(field + ":"):
            return int(line.split()[1]) * 1024
    raise RuntimeError(f"no {field} in /proc/self/status")


# --- the report ----------------------------------------------------------------------------------------


def _ms(seconds: float) -> str:
    return f"{seconds * 1000:.1f} ms" if seconds < 10 else f"{seconds:.1f} s"


def _events(n: int) -> str:
    if n >= 1_000_000 and n % 1_000_000 == 0:
        return f"{n // 1_000_000}M"
    return f"{n // 1000}k" if n % 1000 == 0 else str(n)


@dataclass(frozen=True)
class Check:
    name: str
    value: float
    limit: float
    detail: str

    @property
    def verdict(self) -> str:
        return "PASS" if self.value <= self.limit else "MISS"


def checks(sizes: Sequence[Size]) -> list[Check]:
    out: list[Check] = []
    for size in sizes:
        if size.events not in (10_000, 100_000):
            continue
        if size.has("vcrpy", "save"):
            ratio = size.median("streamtape", "save") / size.median("vcrpy", "save")
            out.append(Check(f"save {_events(size.events)}: streamtape / vcrpy (CPU)", ratio, SAVE_LIMIT,
                             f"{_ms(size.median('streamtape', 'save'))} vs {_ms(size.median('vcrpy', 'save'))}"))  # fmt: skip
        if size.events == 100_000 and size.has("cassetter", "load"):
            ratio = size.median("streamtape", "load") / size.median("cassetter", "load")
            out.append(Check(f"load {_events(size.events)}: streamtape / cassetter (CPU)", ratio, 1.0,
                             f"{_ms(size.median('streamtape', 'load'))} vs {_ms(size.median('cassetter', 'load'))}"))  # fmt: skip
        if size.events == 100_000 and "streamtape" in size.heap_held:
            held = size.heap_held["streamtape"]
            out.append(Check(f"load {_events(size.events)}: what the loaded cassette holds / body", held / size.body_bytes,
                             HELD_LIMIT + HELD_CONSTANT / size.body_bytes,
                             f"{held:,} bytes for a {size.body_bytes:,}-byte body (limit 1.2x + 1 MiB)"))  # fmt: skip
    return out


def render(sizes: Sequence[Size], rounds: dict[int, int], seconds: float) -> str:
    from benchmarks.run import environment

    env = environment()
    names = [kind.name for kind in libraries()]
    peers = [name for name in names if name != "streamtape"]
    lines = [
        "persist benchmark: save and load of one streamed response (medians; CPU time, wall time in brackets)",
        "  " + " | ".join(f"{key} {value}" for key, value in env.items() if key != "platform"),
        f"  platform {env['platform']}",
        "  " + " | ".join(_version(name) for name in names),
    ]
    for size in sizes:
        files = ", ".join(f"{name} {size.file_bytes[name]:,}" for name in names if name in size.file_bytes)
        lines.append(f"  {_events(size.events):>4}: {size.events:,} events, {size.body_bytes:,} body bytes; "
                     f"file bytes: {files}; {rounds[size.events]} rounds")  # fmt: skip
        lines += [f"        {name} left out: {why}" for name, why in size.failed.items()]
    width = 22
    header = f"  {'':<13}" + "".join(f"{name:>{width}}" for name in names)
    header += "".join(f"{'streamtape/' + peer:>{width}}" for peer in peers)
    lines += ["", header]
    for op in OPS:
        for size in sizes:
            row = f"  {op + ' ' + _events(size.events):<13}"
            for name in names:
                cell = (
                    f"{_ms(size.median(name, op))} ({_ms(size.median(name, op, 'wall'))})"
                    if size.has(name, op)
                    else "-"
                )
                row += f"{cell:>{width}}"
            for peer in peers:
                if not size.has(peer, op):
                    row += f"{'-':>{width}}"
                    continue
                cpu = size.median("streamtape", op) / size.median(peer, op)
                wall = size.median("streamtape", op, "wall") / size.median(peer, op, "wall")
                row += f"{f'{cpu:.2f}x ({wall:.2f}x)':>{width}}"
            lines.append(row)
    if len(sizes) > 1:
        lines += ["", "  growth per 10x events (CPU medians; linear = about 10x)"]
        for op in OPS:
            for a, b in zip(sizes, sizes[1:], strict=False):
                step = b.events / a.events
                growth = ", ".join(f"{name} {(b.median(name, op) / a.median(name, op)) ** (1 / math.log10(step)):.1f}x"
                                   for name in names if a.has(name, op) and b.has(name, op))  # fmt: skip
                lines.append(f"  {op} {_events(a.events)} -> {_events(b.events)}: {growth}")
    lines += ["", "  memory, x the body: Python heap (tracemalloc) peak / held after; RSS peak rise (fresh process)"]
    for size in sizes:
        for op in OPS:
            cells = []
            for name in names:
                if not size.has(name, op):
                    continue
                peak = size.heap_peak.get((name, op))
                held = size.heap_held.get(name) if op == "load" else None
                rss = size.rss_peak.get((name, op))
                cell = f"{name} {peak / size.body_bytes:.2f}x" if peak is not None else f"{name} -"
                if held is not None:
                    cell += f" / {held / size.body_bytes:.2f}x"
                cell += f", RSS {rss / size.body_bytes:.2f}x" if rss is not None else ""
                cells.append(cell)
            lines.append(f"  {op} {_events(size.events):>4}: " + "; ".join(cells))
    if "cassetter" in names:
        lines.append("  (cassetter holds its data in Rust: tracemalloc sees only its Python objects; RSS sees all)")
    found = checks(sizes)
    if found:
        lines += ["", "  targets (issue 16)"]
        lines += [f"  {c.verdict}  {c.name}: {c.value:.2f} (limit {c.limit:.2f}); {c.detail}" for c in found]
    lines.append(f"  total benchmark time: {seconds:.1f} s")
    return "\n".join(lines)


def _version(name: str) -> str:
    if name == "streamtape":
        from importlib.metadata import version

        try:
            return f"streamtape {version('pytest-streamtape')}"
        except Exception:  # noqa: BLE001 - an uninstalled checkout
            return "streamtape (checkout)"
    module = {"vcrpy": "vcr", "cassetter": "cassetter"}[name]
    return f"{name} {getattr(sys.modules[module], '__version__', '?')}"


def to_json(sizes: Sequence[Size], rounds: dict[int, int], seconds: float) -> dict[str, Any]:
    def keyed(table: dict[tuple[str, str], Any]) -> dict[str, Any]:
        return {f"{name}.{op}": value for (name, op), value in table.items()}

    from benchmarks.run import environment

    return {
        "environment": environment(),
        "sizes": [
            {
                "events": s.events,
                "body_bytes": s.body_bytes,
                "file_bytes": s.file_bytes,
                "rounds": rounds[s.events],
                "median_cpu_s": {key: statistics.median(v) for key, v in keyed(s.cpu).items()},
                "median_wall_s": {key: statistics.median(v) for key, v in keyed(s.wall).items()},
                "samples_cpu_s": keyed(s.cpu),
                "samples_wall_s": keyed(s.wall),
                "heap_peak_bytes": keyed(s.heap_peak),
                "heap_held_bytes": s.heap_held,
                "rss_peak_bytes": keyed(s.rss_peak),
            }
            for s in sizes
        ],
        "checks": [{**c.__dict__, "verdict": c.verdict} for c in checks(sizes)],
        "seconds": seconds,
    }


def parse_args(argv: Sequence[str] | None) -> argparse.Namespace:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0] if __doc__ else None)
    parser.add_argument("--quick", action="store_true", help=f"sizes {QUICK_SIZES}, {QUICK_ROUNDS} rounds")
    parser.add_argument("--million", action="store_true", help=f"add 1,000,000 events ({MILLION_ROUNDS} rounds)")
    parser.add_argument("--sizes", help="comma-separated event counts (default 10000,100000)")
    parser.add_argument("--rounds", type=int, help=f"rounds below 1M events (default {ROUNDS})")
    parser.add_argument("--no-rss", action="store_true", help="skip the RSS measurements (a process each)")
    parser.add_argument("--json", type=Path, metavar="PATH", help="also write the results as JSON to PATH")
    parser.add_argument("--rss", nargs=4, metavar=("LIBRARY", "OP", "EVENTS", "DIR"), help=argparse.SUPPRESS)
    args = parser.parse_args(argv)
    sizes = [int(n) for n in args.sizes.split(",")] if args.sizes else list(QUICK_SIZES if args.quick else SIZES)
    if args.million and MILLION not in sizes:
        sizes.append(MILLION)
    args.sizes = sorted(sizes)
    args.rounds = args.rounds or (QUICK_ROUNDS if args.quick else ROUNDS)
    return args


def run(sizes: Sequence[int], rounds: int, *, rss: bool = True, json_path: Path | None = None) -> int:
    from benchmarks.run import frozen_heap

    began = time.perf_counter()
    _cold()
    per_size = {n: (min(rounds, MILLION_ROUNDS) if n >= MILLION else rounds) for n in sizes}
    measured: list[Size] = []
    with frozen_heap(), tempfile.TemporaryDirectory(prefix="streamtape-persist-") as tmp:
        workdir = Path(tmp)
        groups = [[n for n in sizes if n < MILLION], [n for n in sizes if n >= MILLION]]
        for group in filter(None, groups):
            print(f"  measuring {', '.join(f'{n:,}' for n in group)} events ...", file=sys.stderr, flush=True)
            prepared = [prepare(n, workdir) for n in group]
            measure(prepared, per_size[group[0]])
            for size, libs in prepared:
                measure_heap(size, libs)
                if rss:
                    measure_rss(size, libs, workdir)
            measured += [size for size, _ in prepared]
            del prepared
    seconds = time.perf_counter() - began
    print(render(measured, per_size, seconds))
    if json_path is not None:
        json_path.write_text(json.dumps(to_json(measured, per_size, seconds), indent=2) + "\n", encoding="utf-8")
        print(f"  JSON written to {json_path}")
    return 0  # a report, not a test


def main(argv: Sequence[str] | None = None) -> int:
    args = parse_args(argv)
    if args.rss:
        name, op, events, workdir = args.rss
        print(rss_child(name, op, int(events), Path(workdir)))
        return 0
    return run(args.sizes, args.rounds, rss=not args.no_rss, json_path=args.json)


if __name__ == "__main__":
    sys.exit(main())
