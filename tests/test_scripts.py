"""The project's scripts keep working: they generate docs and starter cassettes."""

from __future__ import annotations

import importlib.util
import subprocess
import sys
from pathlib import Path
from types import ModuleType

import anthropic
import pytest

from streamtape.faults import CATALOGUE

ROOT = Path(__file__).resolve().parent.parent


TABLES = [("--stack", "httpx2"), ("--stack", "httpx"), ("--stack", "aiohttp"), ("--stack", "requests"),
          ("--provider", "openai-chat"), ("--provider", "openai-responses"), ("--provider", "gemini"),
          ("--provider", "bedrock"), ("--provider", "bedrock-httpx")]  # fmt: skip


@pytest.mark.parametrize(("axis", "name"), TABLES, ids=[name for _, name in TABLES])
def test_the_committed_fidelity_tables_hold_for_the_installed_stacks(axis: str, name: str) -> None:
    """Each CI environment regenerates the table of every stack and provider SDK it installs (the SDK's
    default transport, the SDK over aiohttp where it has one, plain requests, OpenAI, Gemini, Bedrock):
    a release that changes what apps meet fails here until the table is regenerated (and its diff
    read). One table per test, so parallel workers share them."""
    default = "httpx2" if int(anthropic.__version__.split(".")[0]) >= 1 else "httpx"
    aiohttp = importlib.util.find_spec("aiohttp") is not None and default == "httpx2"
    stacks = {default, "requests"} | ({"aiohttp"} if aiohttp else set())
    providers = {"openai-chat", "openai-responses", "gemini", "bedrock" if default == "httpx2" else "bedrock-httpx"}
    if name not in stacks | providers:
        pytest.skip(f"not this environment's table (anthropic {anthropic.__version__} on {default})")
    result = subprocess.run([sys.executable, "scripts/fault_table.py", "--check", axis, name], cwd=ROOT,
                            capture_output=True, text=True, timeout=300)  # fmt: skip
    assert result.returncode == 0, result.stderr
    assert f"docs/fidelity/{name}.md holds" in result.stdout
    if axis == "--stack":
        script = _load_script("fault_table")
        general = {n for n in CATALOGUE if not getattr(CATALOGUE[n], "providers", ())} - set(script.NOT_HERE)
        rows = [line for line in (ROOT / "docs" / "fidelity" / f"{name}.md").read_text().splitlines()
                if line.startswith("| `")]  # fmt: skip
        covered = {row.split("`")[1].split(":")[0].split(" ")[0] for row in rows}
        assert general <= covered, name


def _load_script(name: str) -> ModuleType:
    spec = importlib.util.spec_from_file_location(f"scripts_{name}", ROOT / "scripts" / f"{name}.py")
    assert spec is not None and spec.loader is not None
    module = importlib.util.module_from_spec(spec)
    sys.modules[spec.name] = module  # dataclasses look their module up while the script runs
    spec.loader.exec_module(module)
    return module


def test_starter_cassettes_are_reproducible(tmp_path: Path) -> None:
    """The committed starters are exactly what the script builds from the real transcripts."""
    command = [sys.executable, "scripts/build_starters.py", "--out", str(tmp_path)]
    result = subprocess.run(command, cwd=ROOT, capture_output=True, text=True, timeout=120)
    assert result.returncode == 0, result.stderr
    committed = {path.name: path.read_bytes() for path in (ROOT / "cassettes" / "anthropic").glob("*.yaml")}
    assert {path.name: path.read_bytes() for path in tmp_path.glob("*.yaml")} == committed
    for provider in ("openai", "gemini", "bedrock"):  # each provider's, from its own real recordings
        committed = {path.name: path.read_bytes() for path in (ROOT / "cassettes" / provider).glob("*.yaml")}
        built = {path.name: path.read_bytes() for path in (tmp_path / provider).glob("*.yaml")}
        assert committed and built == committed, provider
