"""The benchmark runner keeps working (a smoke run; its numbers are read in benchmarks/README.md)."""

from __future__ import annotations

import json
import subprocess
import sys
from pathlib import Path

import pytest

from tests.support import sdk

ROOT = Path(__file__).resolve().parent.parent
pytestmark = pytest.mark.skipif(
    sdk.SDK_MAJOR < 1, reason="the benchmarks measure the httpx2-based SDK (anthropic >= 1)"
)


def test_quick_run_measures_every_row(tmp_path: Path) -> None:
    out = tmp_path / "bench.json"
    command = [
        sys.executable,
        "benchmarks/run.py",
        "--quick",
        "--rounds",
        "2",
        "--ttfe-rounds",
        "3",
        "--json",
        str(out),
    ]
    result = subprocess.run(command, cwd=ROOT, capture_output=True, text=True, timeout=300)
    assert result.returncode == 0, result.stderr
    checks = json.loads(out.read_text())["checks"]
    import math

    assert {c["key"].split(".")[0] for c in checks} == {"a", "b", "c", "d", "e"}
    assert all(math.isfinite(c["value"]) and c["verdict"] in ("PASS", "MISS", "info") for c in checks)
