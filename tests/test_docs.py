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
        pytester.makepyfile(test_docs_example=PRELUDE + code)
        result = pytester.runpytest("--collect-only", "-q")
        assert result.ret == 0, result.stdout.str()
        return
    write_cassettes(tmp_path)
    monkeypatch.chdir(tmp_path)
    exec(compile(PRELUDE + code, "<docs>", "exec"), {"__name__": "docs"})  # noqa: S102 - our own docs
