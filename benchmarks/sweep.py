"""A cut sweep: what share of a 1,000-test fault sweep goes to planning the faults.

Run from the project root::

    python benchmarks/sweep.py [--tests 1000] [--events 500] [--json PATH]

What a ``@pytest.mark.tape_faults("disconnect:after=*")`` sweep does, test by test, without pytest's
own overhead: each test enters ``streamtape.use_cassette(path, faults="disconnect:after=K")`` (which
loads the cassette, as every test does), streams through the real SDK (``messages.stream`` +
``text_stream``) and meets the cut. K walks every event boundary of a real Anthropic stream
(``run.py``'s, ``--events`` long), round and round until ``--tests`` tests have run.

Planning is everything ``streamtape.faults.apply`` does for a test (turning the recording into the
faulted wire actions): its time is summed with a wrapper around it, and reported as a share of the
sweep's total time. Target (issue 16): under 5 %.
"""

from __future__ import annotations

import argparse
import json
import sys
import tempfile
import time
from collections.abc import Sequence
from pathlib import Path
from typing import Any

_ROOT = Path(__file__).resolve().parent.parent
if str(_ROOT) not in sys.path:
    sys.path.insert(0, str(_ROOT))

import anthropic  # noqa: E402

import streamtape  # noqa: E402
import streamtape.faults.schedule as schedule  # noqa: E402
from benchmarks.run import API_KEY, BASE_URL, build_stream, frozen_heap, request_params, write_cassette  # noqa: E402

TARGET = 0.05


def sweep(tests: int, events: int, workdir: Path) -> dict[str, Any]:
    stream = build_stream(events)
    path = workdir / "sweep.yaml"
    write_cassette(stream, path)
    client = anthropic.Anthropic(api_key=API_KEY, base_url=BASE_URL, max_retries=0)
    planning = [0.0]
    original = schedule.apply

    def timed_apply(*args: Any, **kwargs: Any) -> Any:
        start = time.perf_counter()
        try:
            return original(*args, **kwargs)
        finally:
            planning[0] += time.perf_counter() - start

    schedule.apply = timed_apply  # the session imports it from streamtape.faults at call time
    import streamtape.faults as faults_package

    faults_package.apply = timed_apply  # type: ignore[assignment]
    failed = 0
    began = time.perf_counter()
    try:
        for test in range(tests):
            with streamtape.use_cassette(path, faults=f"disconnect:after={test % (events + 1)}"):
                try:
                    with client.messages.stream(**request_params()) as live:
                        "".join(live.text_stream)
                except (anthropic.APIError, Exception):  # noqa: BLE001 - the cut is the point
                    failed += 1
    finally:
        schedule.apply = original
        faults_package.apply = original  # type: ignore[assignment]
        client.close()
    total = time.perf_counter() - began
    return {"tests": tests, "events": events, "failed": failed, "total_s": total, "planning_s": planning[0],
            "planning_share": planning[0] / total}  # fmt: skip


def main(argv: Sequence[str] | None = None) -> int:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0] if __doc__ else None)
    parser.add_argument("--tests", type=int, default=1000)
    parser.add_argument("--events", type=int, default=500)
    parser.add_argument("--json", type=Path, metavar="PATH")
    args = parser.parse_args(argv)
    if args.tests < 1 or args.events < 10:
        parser.error("--tests must be at least 1 and --events at least 10")
    with frozen_heap(), tempfile.TemporaryDirectory(prefix="streamtape-sweep-") as tmp:
        result = sweep(args.tests, args.events, Path(tmp))
    verdict = "PASS" if result["planning_share"] < TARGET else "MISS"
    print(f"cut sweep: {result['tests']} tests over a {result['events']}-event stream "
          f"({result['failed']} met the cut), {result['total_s']:.2f} s")
    print(f"  planning (faults.apply): {result['planning_s'] * 1000:.0f} ms = {result['planning_share']:.1%} "
          f"of the sweep  (target < {TARGET:.0%}: {verdict})")  # fmt: skip
    if args.json is not None:
        args.json.write_text(json.dumps(result, indent=2) + "\n", encoding="utf-8")
    return 0


if __name__ == "__main__":
    sys.exit(main())
