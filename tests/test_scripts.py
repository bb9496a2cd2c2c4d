"""The project's scripts keep working: they generate docs and starter cassettes."""

from __future__ import annotations

import subprocess
import sys
from pathlib import Path

from streamtape.faults import CATALOGUE

ROOT = Path(__file__).resolve().parent.parent


def test_fault_table_covers_the_catalogue() -> None:
    result = subprocess.run(
        [sys.executable, "scripts/fault_table.py"], cwd=ROOT, capture_output=True, text=True, timeout=300
    )
    assert result.returncode == 0, result.stderr
    rows = [line for line in result.stdout.splitlines() if line.startswith("| `")]
    covered = {row.split("`")[1].split(":")[0].split(" ")[0] for row in rows}
    assert set(CATALOGUE) <= covered


def test_starter_cassettes_are_reproducible(tmp_path: Path) -> None:
    """The committed starters are exactly what the script builds from the real transcripts."""
    command = [sys.executable, "scripts/build_starters.py", "--out", str(tmp_path)]
    result = subprocess.run(command, cwd=ROOT, capture_output=True, text=True, timeout=120)
    assert result.returncode == 0, result.stderr
    committed = {path.name: path.read_bytes() for path in (ROOT / "cassettes" / "anthropic").glob("*.yaml")}
    assert {path.name: path.read_bytes() for path in tmp_path.glob("*.yaml")} == committed
