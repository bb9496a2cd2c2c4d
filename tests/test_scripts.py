"""The project's scripts keep working: they generate docs and starter cassettes."""

from __future__ import annotations

import subprocess
import sys
from pathlib import Path

import anthropic

from streamtape.faults import CATALOGUE

ROOT = Path(__file__).resolve().parent.parent


def test_the_committed_fidelity_table_holds_for_the_installed_sdk() -> None:
    """Each CI environment regenerates its stack's table with the SDK it installed: a release that
    changes what apps meet fails here until the table is regenerated (and its diff read)."""
    result = subprocess.run(
        [sys.executable, "scripts/fault_table.py", "--check"], cwd=ROOT, capture_output=True, text=True, timeout=300
    )
    assert result.returncode == 0, result.stderr
    stack = "httpx2" if int(anthropic.__version__.split(".")[0]) >= 1 else "httpx"
    rows = [line for line in (ROOT / "docs" / "fidelity" / f"{stack}.md").read_text().splitlines()
            if line.startswith("| `")]  # fmt: skip
    covered = {row.split("`")[1].split(":")[0].split(" ")[0] for row in rows}
    assert set(CATALOGUE) <= covered


def test_starter_cassettes_are_reproducible(tmp_path: Path) -> None:
    """The committed starters are exactly what the script builds from the real transcripts."""
    command = [sys.executable, "scripts/build_starters.py", "--out", str(tmp_path)]
    result = subprocess.run(command, cwd=ROOT, capture_output=True, text=True, timeout=120)
    assert result.returncode == 0, result.stderr
    committed = {path.name: path.read_bytes() for path in (ROOT / "cassettes" / "anthropic").glob("*.yaml")}
    assert {path.name: path.read_bytes() for path in tmp_path.glob("*.yaml")} == committed
