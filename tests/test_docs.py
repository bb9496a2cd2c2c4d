"""Every Python code block in README.md and docs/ runs, so the docs cannot rot.

Each block runs in a fresh directory holding the cassettes the docs name (`story.yaml`,
`tests/cassettes/story.yaml`: a stream for the README's request), with the names the docs assume
imported. Blocks that define pytest tests are run for real through pytester.
"""

from __future__ import annotations

import re
from pathlib import Path

import pytest

import streamtape
from streamtape.synth import synthesize
from tests.support import sdk

pytestmark = pytest.mark.skipif(
    sdk.SDK_MAJOR < 1, reason="the docs are written for the httpx2-based SDK (anthropic >= 1)"
)

ROOT = Path(__file__).resolve().parent.parent
PAGES = [ROOT / "README.md", *sorted((ROOT / "docs").glob("*.md"))]
BLOCKS = [
    pytest.param(code, id=f"{page.name}-{number}")
    for page in PAGES
    for number, code in enumerate(re.findall(r"```python\n(.*?)```", page.read_text(encoding="utf-8"), re.S), 1)
]
PRELUDE = """
import anthropic, httpx2, pytest, streamtape
from streamtape import faults, use_cassette
"""
PYTEST_PRELUDE = """
@pytest.fixture
def my_app():
    return None
"""


def write_cassettes(folder: Path) -> None:
    """The cassettes the docs name, holding a stream for the README's request."""
    story = synthesize(text="Once upon a time, a pelican.", model="claude-sonnet-4-5", prompt="Write a story", seed=1)
    for path in (folder / "story.yaml", folder / "tests" / "cassettes" / "story.yaml"):
        streamtape.Cassette([story]).save(path)


@pytest.mark.filterwarnings("ignore:The model .* is deprecated:DeprecationWarning")
@pytest.mark.parametrize("code", BLOCKS)
def test_block_runs(code: str, request: pytest.FixtureRequest, tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setenv("ANTHROPIC_API_KEY", "docs-placeholder-key")
    if "def test_" in code:  # pytest examples: collected as a downstream project would collect them
        pytester: pytest.Pytester = request.getfixturevalue("pytester")
        write_cassettes(pytester.path)
        # ``my_app`` stands for the reader's own code; every other fixture an example asks for must exist
        pytester.makepyfile(test_docs_example=PRELUDE + PYTEST_PRELUDE + code)
        result = pytester.runpytest("--setup-plan", "-q", "-p", "no:randomly")
        assert result.ret == 0, result.stdout.str()
        return
    write_cassettes(tmp_path)
    monkeypatch.chdir(tmp_path)
    exec(compile(PRELUDE + code, "<docs>", "exec"), {"__name__": "docs"})  # noqa: S102 - our own docs


YAML_BLOCKS = [
    pytest.param(code, id=f"{page.name}-yaml-{number}")
    for page in PAGES
    for number, code in enumerate(re.findall(r"```yaml\n(.*?)```", page.read_text(encoding="utf-8"), re.S), 1)
]


@pytest.mark.parametrize("code", YAML_BLOCKS)
def test_yaml_block_is_valid(code: str, tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    """A cassette in the docs loads; a scenario in the docs parses."""
    if re.search(r"^version: \d", code, re.M):
        streamtape.Cassette.loads(code)
    else:
        (tmp_path / "docs-example.yaml").write_text(code)
        monkeypatch.setenv("STREAMTAPE_SCENARIOS", str(tmp_path))
        streamtape.faults.parse("scenario:docs-example")


COMMANDS = [
    pytest.param(line, id=line[:60])
    for page in PAGES
    for block in re.findall(r"```sh\n(.*?)```", page.read_text(encoding="utf-8"), re.S)
    for line in block.splitlines()
    if line.startswith("streamtape ")
]


@pytest.mark.parametrize("line", COMMANDS)
def test_shell_commands_name_real_options(line: str) -> None:
    """Every `streamtape ...` line in the docs names a real command with options it takes."""
    import shlex

    from click.testing import CliRunner

    from streamtape.cli import main

    words = shlex.split(line.split("  #")[0])[1:]
    command = main.commands[words[0]]
    known = {opt for param in command.params for opt in getattr(param, "opts", [])}
    assert all(word in known for word in words if word.startswith("--")), (line, sorted(known))
    assert CliRunner().invoke(main, [words[0], "--help"]).exit_code == 0
