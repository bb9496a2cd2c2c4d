"""The benchmark runner keeps working: a smoke run measures every row and writes its report.

Only that the runner works is checked here. Its verdicts (PASS / MISS against the targets) are
numbers on this machine under this load, read in benchmarks/README.md; a smoke run's few rounds
say nothing about them, so this test neither passes nor fails on them.
"""

from __future__ import annotations

import json
import math
import subprocess
import sys
from pathlib import Path
from typing import Any

import pytest

from tests.support import sdk

ROOT = Path(__file__).resolve().parent.parent
pytestmark = pytest.mark.skipif(
    sdk.SDK_MAJOR < 1, reason="the benchmarks measure the httpx2-based SDK (anthropic >= 1)"
)
ROUNDS, TTFE_ROUNDS = 2, 3


def _finite(value: Any) -> bool:
    return isinstance(value, (int, float)) and not isinstance(value, bool) and math.isfinite(value)


def test_quick_run_measures_every_row(tmp_path: Path) -> None:
    from benchmarks.run import VARIANT_LABELS

    out = tmp_path / "bench.json"
    command = [sys.executable, "benchmarks/run.py", "--quick", "--rounds", str(ROUNDS),
               "--ttfe-rounds", str(TTFE_ROUNDS), "--json", str(out)]  # fmt: skip
    result = subprocess.run(command, cwd=ROOT, capture_output=True, text=True, timeout=300)
    assert result.returncode == 0, result.stderr
    assert f"JSON written to {out}" in result.stdout
    report = json.loads(out.read_text(encoding="utf-8"))

    assert set(report) >= {"environment", "stream", "rounds", "summaries_ms", "checks", "samples_s", "seconds"}
    assert report["rounds"] == {"replay_and_load": ROUNDS, "ttfe": TTFE_ROUNDS}
    assert report["stream"]["events"] == 10_000 and report["stream"]["bytes"] > 0
    assert all(isinstance(value, str) and value for value in report["environment"].values())
    assert _finite(report["seconds"]) and report["seconds"] > 0

    # every row of the table was measured: each variant's samples, as many as its rounds, all finite
    rows = [key for key, _ in VARIANT_LABELS]
    assert set(report["summaries_ms"]) == set(rows) == set(report["samples_s"])
    rounds = {"direct": TTFE_ROUNDS, "recording": TTFE_ROUNDS, "serve": 1}  # (c) has its own rounds; (e) one run
    for key in rows:
        samples, summary = report["samples_s"][key], report["summaries_ms"][key]
        assert len(samples) == rounds.get(key.split(".")[0], ROUNDS), key
        assert all(_finite(seconds) and seconds >= 0 for seconds in samples), (key, samples)
        assert summary["n"] == len(samples) and all(_finite(summary[stat]) for stat in
                                                    ("median", "p25", "p75", "minimum")), (key, summary)  # fmt: skip
        assert summary["minimum"] <= summary["p25"] <= summary["median"] <= summary["p75"], (key, summary)

    # every check was computed: a finite value, and its target where it has one (the verdicts are not read)
    checks = {check["key"]: check for check in report["checks"]}
    assert set(checks) == {"a.text_stream", "a.create", "b.load", "b.load_vs_create", "c.ttfe", "c.total",
                           "d.retry", "d.stall", "e.serve", "f.aiohttp.sdk", "f.aiohttp.plain", "f.urllib3.requests",
                           "f.urllib3.plain"}  # fmt: skip
    for key, check in checks.items():
        assert _finite(check["value"]) and check["unit"] in ("ratio", "ms") and check["label"], (key, check)
        assert check["limit"] is None or _finite(check["limit"]), (key, check)
