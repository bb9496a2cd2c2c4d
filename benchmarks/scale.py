"""streamtape scaling benchmark: does the work grow linearly with the number of events?

Run from the project root::

    python benchmarks/scale.py [--quick] [--million] [--json PATH]
    python -m benchmarks.scale [--quick] [--million] [--json PATH]
    python benchmarks/run.py --scale [--quick] [--million]    # the same, from the main runner
    python benchmarks/scale.py --persist --serve              # and save/load vs vcrpy and cassetter, and
                                                              # serve vs a minimal asyncio server: all of it
    python benchmarks/scale.py --persist                      # then save and load against vcrpy and cassetter
    python benchmarks/scale.py --framing eventstream          # the Bedrock road: AWS event-stream frames, boto3

It builds Anthropic-shaped cassettes of 10,000 and 100,000 events (``--million`` adds 1,000,000),
each one interaction made exactly as ``benchmarks/run.py`` makes its 10k stream (real event bytes
from tests/data/sse/text_multi_delta.sse, one chunk per event), and measures, side by side in one
run, what a user waits for:

- ``Cassette.save(path)`` of the cassette a recording of it makes, and ``Cassette.load(path)``
  (``--persist`` adds ``benchmarks/persist.py``'s comparison of both with vcrpy and cassetter);
- ``streamtape inspect PATH`` and ``streamtape lint PATH``, the commands themselves, run in-process
  (click's test runner), so each includes its own load;
- a plain replay: ``streamtape.use_cassette(path)`` entered (which loads the cassette) and a real
  ``anthropic.Anthropic`` client's ``messages.create(stream=True)`` iterated to the end;
- faulted replays through the same SDK call: ``disconnect:after=5`` (the app sees five events, then
  the cut) and ``disconnect:after=<90% of the events>`` (a late cut);
- fault planning for every fault kind in the catalogue: ``streamtape.faults.apply`` (what a tape does
  per faulted request: split the response at its events, then apply the fault) on the loaded
  interaction.

``--framing eventstream`` measures the Bedrock road instead: ConverseStream cassettes of as many AWS
event-stream frames (``streamtape synth --provider bedrock``: word-sized text deltas, one chunk per frame,
stored as one decoded frame per cassette entry and encoded again on load), replayed through boto3's
``bedrock-runtime`` ``converse_stream`` (urllib3 underneath; its ``stream`` iterated to the end), and
the plan+apply rows for every fault that applies to an event stream (``ping`` does not: Bedrock has no
keep-alive event; ``split_utf8`` finds no multi-byte character in ASCII text), Bedrock's own
``bad_crc`` and ``exception_frame`` included.

The SDK is driven with ``create(stream=True)``, not ``messages.stream(...).text_stream``: the SDK's own
snapshot accumulation (``content.text += delta``) is quadratic in the text's length, which would
measure the SDK, not streamtape.

The sizes below a million are measured together: in each round every size's stages run once, the
order of the sizes rotating from round to round; a million events get one round of their own, after
them. The heap that exists before measuring is frozen and a collection runs before every sample,
outside its timing (as in ``run.py``). Each stage's time is the fastest of its rounds: the work is
deterministic, and whatever else the machine does only adds to it (on the 2-vCPU VM these figures
come from, shared with other work, a stage's median moved by up to 74 % over four runs, its fastest
round by up to 19 %). Every sample, and the garbage collector's share of it, is in the JSON output.

The growth ratio is time(10n) / time(n): linear work gives about 10x; quadratic gives about 100x.
A ratio up to 13x is a PASS. In brackets, the same ratio for the time outside CPython's garbage
collector: a larger heap costs more per object (caches, and full collections, which CPython runs
every ~70,000 new objects while few have survived). It is a report, not a test: it exits 0
whatever it finds.
"""

from __future__ import annotations

import argparse
import gc
import json
import statistics
import sys
import tempfile
import time
from collections.abc import Callable, Sequence
from dataclasses import dataclass, field
from functools import partial
from pathlib import Path
from typing import Any

_ROOT = Path(__file__).resolve().parent.parent
if str(_ROOT) not in sys.path:
    sys.path.insert(0, str(_ROOT))

import anthropic  # noqa: E402
from click.testing import CliRunner  # noqa: E402

import streamtape  # noqa: E402
import streamtape.faults._plan  # noqa: E402
from benchmarks.persist import Stream, make_cassette  # noqa: E402
from benchmarks.run import (  # noqa: E402
    API_KEY,
    BASE_URL,
    build_stream,
    environment,
    frozen_heap,
    request_params,
    write_cassette,
)
from streamtape.cli import main as cli  # noqa: E402
from streamtape.faults import apply, parse  # noqa: E402
from streamtape.faults.catalogue import CATALOGUE, Context, Fault  # noqa: E402

SIZES = (10_000, 100_000)
MILLION = 1_000_000
QUICK_SIZES = (1_000, 10_000)
ROUNDS, QUICK_ROUNDS, MILLION_ROUNDS = 5, 3, 2
LIMIT = 13.0  # the most growth per 10x events a PASS allows (linear work grows about 10x)
EARLY_CUT = 5


def late_cut(n_events: int) -> int:
    return n_events * 9 // 10


def fault_specs(n_events: int, n_bytes: int) -> dict[str, str]:
    """One spec per fault kind in the catalogue, positioned mid-stream where it takes a position."""
    mid = n_events // 2
    specs = {
        "refuse": "refuse",
        "reset": f"reset:after={mid}",
        "disconnect": f"disconnect:at_byte={n_bytes // 2}",
        "timeout": "timeout",
        "http_error": "http_error:status=503",
        "rate_limit": "rate_limit",
        "overloaded": "overloaded",
        "server_error": "server_error",
        "stall": f"stall:after={mid},seconds=5",
        "error_event": f"error_event:after={mid}",
        "truncate": "truncate",
        "delay": "delay:per_event=0.001,jitter=0.0005",
        "rechunk": "rechunk:size=64",
        "corrupt": f"corrupt:event={mid}",
        "duplicate": f"duplicate:event={mid}",
        "drop": f"drop:event={mid}",
        "ping": "ping:every=10",
        "connect_timeout": "connect_timeout",
        "write_timeout": "write_timeout",
        "pool_timeout": "pool_timeout",
        "bad_status": "bad_status",
        "bad_chunk": f"bad_chunk:after={mid}",
        "corrupt_gzip": "corrupt_gzip",
        "bom": "bom",
        "json_body": "json_body",
        "linger": "linger",
        "split": f"split:at_byte={n_bytes // 2}",
        "split_crlf": "split_crlf",
    }
    # not measured here: faults of another provider's streams (each provider's tests check their
    # cost), and split_utf8, which this ASCII stream gives nothing to split
    missing = {name for name, cls in CATALOGUE.items() if not cls.providers} - set(specs) - {"split_utf8"}
    if missing:  # a new fault kind: measure it too
        raise RuntimeError(f"scale.py has no spec for fault kinds {sorted(missing)}; add one to fault_specs()")
    return specs


# --- what is measured ------------------------------------------------------------------------------


def consume(client: anthropic.Anthropic, seen: list[str]) -> None:
    """``create(stream=True)`` iterated to the end (or to the error), noting each event's type."""
    with client.messages.create(stream=True, **request_params()) as events:
        for event in events:
            seen.append(event.type)


def replay(path: Path, client: anthropic.Anthropic, faults: str | None, expect: int) -> None:
    """The whole ``with use_cassette(...)`` block: entering (loading the cassette, checking fault
    positions), the SDK call, and leaving."""
    events: list[str] = []
    error = None
    with streamtape.use_cassette(path, faults=faults) as tape:
        try:
            consume(client, events)
        except Exception as exc:  # anthropic >= 2.17: APIConnectionError; before: httpx2.RemoteProtocolError
            error = exc
    seen = len(events)
    if [call.source for call in tape.calls] != ["replayed"]:
        raise RuntimeError(f"{faults or 'plain replay'}: expected one replayed call, got {tape.calls}")
    if (error is None) != (faults is None) or seen != expect:
        what = faults or "plain replay"
        raise RuntimeError(f"{what}: the app saw {seen} events (expected {expect}), error {error!r}")


def plan(faults: Sequence[Fault], item: streamtape.Interaction, context: Context | None = None) -> None:
    """What a tape does to a faulted request's recorded answer: split it at its events, apply the faults."""
    apply(faults, item.actions(), context or Context())


# --- the Bedrock road (--framing eventstream) ---------------------------------------------------------


def bedrock_interaction(n_events: int) -> streamtape.Interaction:
    """A ConverseStream answer of about ``n_events`` frames, as ``streamtape synth --provider bedrock`` writes
    it (text deltas of 1-4 words, a frame every 2 ms)."""
    from streamtape.synth import Timing, synthesize

    words = ("the", "quick", "brown", "fox", "jumps", "over", "a", "lazy", "dog", "and", "then", "some")
    text = " ".join(words[i % len(words)] for i in range(n_events * 5 // 2))  # a delta is 2.5 words on average
    return synthesize(text=text, provider="bedrock", timing=Timing(per_event=0.002, jitter=0.0))


class BotoReplay:
    """boto3's ``converse_stream`` for the recorded request, with a client made once (as the SDK's is)."""

    def __init__(self, request: streamtape.Request) -> None:
        import boto3

        from streamtape.cli._sdks import PLAY_KEY, BedrockDriver

        self.call = BedrockDriver().from_recording(request)
        self.client = boto3.session.Session().client(
            "bedrock-runtime", endpoint_url=self.call.base_url, region_name=self.call.options.get("region", "us-east-1"),
            aws_access_key_id=PLAY_KEY, aws_secret_access_key=PLAY_KEY)  # fmt: skip

    def __call__(self, path: Path, faults: str | None, expect: int) -> None:
        seen, error = 0, None
        with streamtape.use_cassette(path, faults=faults) as tape:
            try:
                for _ in getattr(self.client, self.call.operation)(**self.call.params)["stream"]:
                    seen += 1
            except Exception as exc:  # botocore's error for the cut
                error = exc
        if [call.source for call in tape.calls] != ["replayed"]:
            raise RuntimeError(f"{faults or 'plain replay'}: expected one replayed call, got {tape.calls}")
        if (error is None) != (faults is None) or seen != expect:
            raise RuntimeError(
                f"{faults or 'plain replay'}: boto3 saw {seen} frames (expected {expect}), error {error!r}"
            )

    def close(self) -> None:
        self.client.close()


def prepare_eventstream(n_events: int, workdir: Path, plan_faults: bool) -> tuple[Size, Stages]:
    """``prepare`` for the Bedrock road: a ConverseStream cassette and its stages, replayed through boto3."""
    from streamtape.providers import get as provider

    item = bedrock_interaction(n_events)
    path = workdir / f"scale-eventstream-{n_events}.yaml"
    recorded = streamtape.Cassette([item])
    recorded.save(path)
    frames = len(item.response.timing) if item.response is not None else 0
    size = Size(n_events, len(item.body), path.stat().st_size)
    boto = BotoReplay(item.request)
    late = late_cut(frames)
    stages: Stages = {
        "save": lambda: recorded.save(workdir / f"saved-eventstream-{n_events}.yaml"),
        "load": lambda: streamtape.Cassette.load(path),
        "inspect": lambda: run_cli("inspect", str(path)),
        "lint": lambda: run_cli("lint", str(path)),
        "replay": lambda: boto(path, None, frames),
        "fault.early": lambda: boto(path, f"disconnect:after={EARLY_CUT}", EARLY_CUT),
        "fault.late": lambda: boto(path, f"disconnect:after={late}", late),
    }
    if plan_faults:
        loaded = streamtape.Cassette.load(path).interactions[0]
        specs = {kind: spec for kind, spec in fault_specs(frames, len(item.body)).items() if kind != "ping"}
        specs |= {"bad_crc": f"bad_crc:event={frames // 2}", "exception_frame": f"exception_frame:after={frames // 2}"}
        context = Context(provider=provider("bedrock"))
        for kind, spec in specs.items():
            stages[f"plan.{kind}"] = partial(plan, parse(spec).faults_for(0), loaded, context)
    return size, stages


def run_cli(*args: str) -> None:
    result = CliRunner().invoke(cli, list(args), catch_exceptions=False)
    if result.exit_code not in (0, 1):  # lint exits 1 when it reports problems; anything else is a failure
        raise RuntimeError(f"streamtape {' '.join(args)} exited {result.exit_code}: {result.output[-2000:]}")


class CollectorClock:
    """The time CPython's cyclic garbage collector runs (``gc.callbacks``), to tell it apart."""

    def __init__(self) -> None:
        self.seconds = 0.0
        self._start = 0.0

    def __call__(self, phase: str, info: dict[str, int]) -> None:
        if phase == "start":
            self._start = time.perf_counter()
        else:
            self.seconds += time.perf_counter() - self._start


COLLECTOR = CollectorClock()


def timed(func: Callable[[], object]) -> tuple[float, float]:
    """``func``'s wall time, and how much of it the garbage collector took."""
    gc.collect()
    COLLECTOR.seconds = 0.0
    start = time.perf_counter()
    func()
    return time.perf_counter() - start, COLLECTOR.seconds


Stages = dict[str, Callable[[], object]]


@dataclass
class Size:
    """One cassette size: what it holds, and every stage's samples (seconds)."""

    events: int
    body_bytes: int
    file_bytes: int
    samples: dict[str, list[float]] = field(default_factory=dict)
    collector: dict[str, list[float]] = field(default_factory=dict)  # of which the garbage collector's

    def median(self, stage: str) -> float:
        return statistics.median(self.samples[stage])

    def best(self, stage: str) -> float:
        return min(self.samples[stage])

    def best_without_collector(self, stage: str) -> float:
        return min(total - gc for total, gc in zip(self.samples[stage], self.collector[stage], strict=True))


STAGES = (
    ("save", "Cassette.save"),
    ("load", "Cassette.load"),
    ("inspect", "streamtape inspect"),
    ("lint", "streamtape lint"),
    ("replay", "replay, create(stream=True)"),
    ("fault.early", f"replay, disconnect:after={EARLY_CUT}"),
    ("fault.late", "replay, disconnect:after=90%"),
)


def prepare(n_events: int, workdir: Path, client: anthropic.Anthropic, plan_faults: bool) -> tuple[Size, Stages]:
    """Write the ``n_events`` cassette; return its ``Size`` and the stages that measure it."""
    stream = build_stream(n_events)
    path = workdir / f"scale-{n_events}.yaml"
    write_cassette(stream, path)
    size = Size(n_events, len(stream.body), path.stat().st_size)
    names = [event.split(b"\n", 1)[0].removeprefix(b"event: ") for event in stream.events]

    def seen_before(cut: int) -> int:
        return sum(name != b"ping" for name in names[:cut])  # the SDK does not hand pings to the app

    late = late_cut(n_events)
    request_body = json.dumps({**request_params(), "stream": True}).encode()
    recorded = make_cassette(Stream(stream.events, stream.headers, request_body))
    stages: Stages = {
        "save": lambda: recorded.save(workdir / f"saved-{n_events}.yaml"),
        "load": lambda: streamtape.Cassette.load(path),
        "inspect": lambda: run_cli("inspect", str(path)),
        "lint": lambda: run_cli("lint", str(path)),
        "replay": lambda: replay(path, client, None, seen_before(n_events)),
        "fault.early": lambda: replay(path, client, f"disconnect:after={EARLY_CUT}", seen_before(EARLY_CUT)),
        "fault.late": lambda: replay(path, client, f"disconnect:after={late}", seen_before(late)),
    }
    if plan_faults:
        item = streamtape.Cassette.load(path).interactions[0]
        for kind, spec in fault_specs(n_events, len(stream.body)).items():
            stages[f"plan.{kind}"] = partial(plan, parse(spec).faults_for(0), item)
    return size, stages


def measure(prepared: Sequence[tuple[Size, Stages]], rounds: int) -> None:
    """``rounds`` rounds; in each, every size's stages once, the order of the sizes rotating from
    round to round, so that a slow spell of the machine lands on all of them alike."""
    gc.callbacks.append(COLLECTOR)
    try:
        for r in range(rounds):
            shift = r % len(prepared)
            for size, stages in [*prepared[shift:], *prepared[:shift]]:
                for stage, func in stages.items():
                    seconds, collecting = timed(func)
                    size.samples.setdefault(stage, []).append(seconds)
                    size.collector.setdefault(stage, []).append(collecting)
    finally:
        gc.callbacks.remove(COLLECTOR)


# --- the report ------------------------------------------------------------------------------------


def _seconds(value: float) -> str:
    return f"{value * 1000:.1f} ms" if value < 1 else f"{value:.2f} s"


def _events(n: int) -> str:
    if n >= 1_000_000 and n % 1_000_000 == 0:
        return f"{n // 1_000_000}M"
    return f"{n // 1000}k" if n % 1000 == 0 else str(n)


@dataclass(frozen=True)
class Growth:
    stage: str
    smaller: int
    larger: int
    ratio: float
    without_collector: float  # the same ratio for the time the garbage collector did not take

    @property
    def verdict(self) -> str:
        return "PASS" if self.ratio <= LIMIT * (self.larger / self.smaller) / 10 else "MISS"


def growths(sizes: Sequence[Size], stages: Sequence[str]) -> list[Growth]:
    return [
        Growth(
            stage,
            a.events,
            b.events,
            b.best(stage) / a.best(stage),
            b.best_without_collector(stage) / a.best_without_collector(stage),
        )
        for stage in stages
        for a, b in zip(sizes, sizes[1:], strict=False)
    ]


def render(sizes: Sequence[Size], rounds: dict[int, int], seconds: float, framing: str = "sse") -> str:
    env = environment()
    labels = dict(STAGES)
    if framing == "eventstream":
        labels |= {"replay": "replay, boto3 converse_stream", "fault.early": f"  ... disconnect:after={EARLY_CUT}",
                   "fault.late": "  ... disconnect:after=90%"}  # fmt: skip
    stage_labels = list(labels.items()) + [
        (stage, f"plan+apply {stage.removeprefix('plan.')}") for stage in sizes[0].samples if stage.startswith("plan.")
    ]
    results = growths(sizes, [stage for stage, _ in stage_labels])
    by_key = {(g.stage, g.larger): g for g in results}
    lines = [
        f"streamtape scaling benchmark, {'Bedrock ConverseStream (AWS event-stream frames, boto3)' if framing == 'eventstream' else 'Anthropic SSE (anthropic SDK)'}",
        "  (time against events; linear = 10x per 10x events, PASS <= 13x;",
        "  in brackets: the same ratio for the time CPython's garbage collector did not take)",
        "  " + " | ".join(f"{key} {value}" for key, value in env.items() if key != "platform"),
        f"  platform {env['platform']}",
    ]
    for size in sizes:
        lines.append(
            f"  {_events(size.events):>4}: {size.events:,} events, {size.body_bytes:,} body bytes, "
            f"{size.file_bytes:,} bytes of YAML; fastest of {rounds[size.events]} round(s)"
        )
    header = f"  {'stage':<34}" + "".join(f"{_events(s.events):>11}" for s in sizes)
    pairs = list(zip(sizes, sizes[1:], strict=False))
    header += "".join(f"  {_events(b.events) + '/' + _events(a.events):>21}" for a, b in pairs)
    lines += ["", header]
    for stage, label in stage_labels:
        row = f"  {label:<34}" + "".join(f"{_seconds(s.best(stage)):>11}" for s in sizes)
        for size in sizes[1:]:
            growth = by_key[(stage, size.events)]
            row += f"  {growth.ratio:>5.1f}x {growth.verdict} ({growth.without_collector:4.1f}x)"
        lines.append(row)
    misses = [g for g in results if g.verdict == "MISS"]
    lines += ["", f"  {len(results) - len(misses)} PASS, {len(misses)} MISS"]
    lines += [f"  MISS: {g.stage} {_events(g.larger)}/{_events(g.smaller)} = {g.ratio:.1f}x" for g in misses]
    lines.append(f"  total benchmark time: {seconds:.1f} s")
    return "\n".join(lines)


def to_json(sizes: Sequence[Size], rounds: dict[int, int], seconds: float, framing: str = "sse") -> dict[str, Any]:
    stages = list(sizes[0].samples)
    return {
        "framing": framing,
        "environment": environment(),
        "sizes": [
            {
                "events": s.events,
                "body_bytes": s.body_bytes,
                "file_bytes": s.file_bytes,
                "rounds": rounds[s.events],
                "best_s": {k: s.best(k) for k in s.samples},
                "median_s": {k: s.median(k) for k in s.samples},
                "samples_s": s.samples,
                "collector_s": s.collector,
            }
            for s in sizes
        ],  # fmt: skip
        "growth": [{**g.__dict__, "verdict": g.verdict} for g in growths(sizes, stages)],
        "limit": LIMIT,
        "seconds": seconds,
    }


def parse_args(argv: Sequence[str] | None) -> argparse.Namespace:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0] if __doc__ else None)
    parser.add_argument(
        "--quick", action="store_true", help=f"sizes {QUICK_SIZES}, {QUICK_ROUNDS} rounds: a smoke test"
    )
    parser.add_argument(
        "--million", action="store_true", help=f"add 1,000,000 events, {MILLION_ROUNDS} rounds (several minutes)"
    )
    parser.add_argument(
        "--sizes", help="comma-separated event counts (default 10000,100000); PASS scales with the step"
    )
    parser.add_argument("--rounds", type=int, help=f"rounds below 1M events (default {ROUNDS}, quick {QUICK_ROUNDS})")
    parser.add_argument("--no-plan", action="store_true", help="skip the plan+apply rows (every fault kind)")
    parser.add_argument("--framing", choices=("sse", "eventstream"), default="sse",
                        help="sse: Anthropic's SSE through the anthropic SDK (default); eventstream: Bedrock's "
                        "ConverseStream frames through boto3")  # fmt: skip
    parser.add_argument("--persist", action="store_true", help="then save and load against vcrpy and cassetter "
                        "(benchmarks/persist.py), at the same sizes")  # fmt: skip
    parser.add_argument("--serve", action="store_true", help="then streamtape serve at 100, 500 and 1,000 concurrent "
                        "streams against a minimal asyncio server (benchmarks/serve_scale.py)")  # fmt: skip
    parser.add_argument("--json", type=Path, metavar="PATH", help="also write the results as JSON to PATH")
    args = parser.parse_args(argv)
    sizes = [int(n) for n in args.sizes.split(",")] if args.sizes else list(QUICK_SIZES if args.quick else SIZES)
    if args.million and MILLION not in sizes:
        sizes.append(MILLION)
    if len(sizes) < 2 or any(n < 10 for n in sizes):
        parser.error("give at least two sizes of 10 events or more")
    args.sizes = sorted(sizes)
    args.rounds = args.rounds or (QUICK_ROUNDS if args.quick else ROUNDS)
    return args


class _Forgetful(dict):  # type: ignore[type-arg]
    def __setitem__(self, key: Any, value: Any) -> None:
        pass


def main(argv: Sequence[str] | None = None) -> int:
    args = parse_args(argv)
    # every load parses, as the first of a run does (the cache of unchanged files is what a sweep
    # gains: benchmarks/sweep.py)
    streamtape.cassette._LOADED.LIMIT = 0
    # and every plan maps the recording's events, as the first plan of a recording does (the map is kept
    # per recorded run for a sweep's next fault; kept here, a row would time a lookup for some sizes)
    streamtape.faults._plan._MAPPED = _Forgetful()
    began = time.perf_counter()
    rounds = {n: (MILLION_ROUNDS if n >= MILLION else args.rounds) for n in args.sizes}
    client = anthropic.Anthropic(api_key=API_KEY, base_url=BASE_URL, max_retries=0)
    measured: list[Size] = []
    with frozen_heap(), tempfile.TemporaryDirectory(prefix="streamtape-scale-") as tmp:
        # sizes below a million are measured together, interleaved; a million alone, after them
        groups = [[n for n in args.sizes if n < MILLION], [n for n in args.sizes if n >= MILLION]]
        for group in filter(None, groups):
            print(f"  measuring {', '.join(f'{n:,}' for n in group)} events ...", file=sys.stderr, flush=True)
            if args.framing == "eventstream":
                prepared = [prepare_eventstream(n, Path(tmp), not args.no_plan) for n in group]
            else:
                prepared = [prepare(n, Path(tmp), client, not args.no_plan) for n in group]
            measure(prepared, rounds[group[0]])
            measured += [size for size, _ in prepared]
            del prepared
    client.close()
    seconds = time.perf_counter() - began
    print(render(measured, rounds, seconds, args.framing))
    if args.json is not None:
        report = to_json(measured, rounds, seconds, args.framing)
        args.json.write_text(json.dumps(report, indent=2) + "\n", encoding="utf-8")
        print(f"  JSON written to {args.json}")
    if args.persist:
        from benchmarks import persist

        print()
        persist.run(args.sizes, args.rounds)
    if args.serve:
        from benchmarks import serve_scale

        print()
        print(serve_scale.report(serve_scale.run(rounds=args.rounds)))
    return 0  # a report, not a test


if __name__ == "__main__":
    sys.exit(main())
