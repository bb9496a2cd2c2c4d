"""Every Python code block in README.md and docs/ runs, so the docs cannot rot.

A plain block runs in a fresh directory holding the cassettes the docs name (`story.yaml`,
`tests/cassettes/story.yaml`), with the names the docs assume imported. A block that defines pytest
tests runs for real, as a downstream project runs it: in a pytester directory holding `my_app` (the
reader's own code the cookbook calls), a cassette for each of its tests (the path its marker names,
or the default `cassettes/<module>/<test>.yaml`), and the outcome the example is meant to have is
asserted (`EXPECTED`): how many tests pass, and which fail where the example shows a failure.

Every cassette holds the same real recording (`text_multi_delta`, claude-sonnet-4-5: 10 events, one
chunk each) answering the request the docs send: the README's, or `my_app.answer`'s for each prompt
the block passes it.
"""

from __future__ import annotations

import contextlib
import importlib
import json
import re
from dataclasses import dataclass
from pathlib import Path

import anthropic
import pytest

import streamtape
from tests.support import builders, sdk
from tests.support.wire_server import DATA_DIR, split_events

pytestmark = pytest.mark.skipif(
    sdk.SDK_MAJOR < 1, reason="the docs are written for the httpx2-based SDK (anthropic >= 1)"
)

# pytester's in-process runs drop modules first imported inside a run, and httpx2 caches its map of
# httpcore2 exceptions on first use: import the HTTP cores here, so every run shares one of each
for _core in ("httpcore2", "httpcore"):
    with contextlib.suppress(ImportError):
        importlib.import_module(_core)

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

# --- the recording every cassette holds ------------------------------------------------------------

RECORDING = "text_multi_delta"
EVENTS = split_events((DATA_DIR / f"{RECORDING}.sse").read_bytes())
BODY = b"".join(EVENTS)
_recorded_headers = json.loads((DATA_DIR / f"{RECORDING}.headers.json").read_text(encoding="utf-8"))["headers"]
HEADERS = tuple((name, _recorded_headers[name][0]) for name in ("Content-Type", "Cache-Control", "request-id"))
TIMING = tuple((round(0.4 + 0.03 * number, 3), len(event)) for number, event in enumerate(EVENTS))
README_REQUEST = {"model": "claude-sonnet-4-5", "max_tokens": 1024}  # what the README and my_app send


def story(prompt: str = "Write a story") -> streamtape.Interaction:
    """The recording, answering a streamed Messages request for ``prompt``."""
    request = {**README_REQUEST, "messages": [{"role": "user", "content": prompt}], "stream": True}
    return builders.interaction(body=BODY, request_body=json.dumps(request).encode(), headers=HEADERS, timing=TIMING,
                                reason="OK", headers_at=0.35)  # fmt: skip


def write_cassettes(folder: Path) -> None:
    """The cassettes the docs name, holding a stream for the README's request."""
    for path in (folder / "story.yaml", folder / "tests" / "cassettes" / "story.yaml"):
        streamtape.Cassette([story()]).save(path)


# --- pytest examples ---------------------------------------------------------------------------------

MY_APP = '''
"""The reader's own code, as the docs' examples call it: ``my_app.answer(client, prompt)`` streams one
answer. It handles no error yet (docs/pytest.md, "A mid-stream disconnect"): what goes wrong on the
way reaches its caller."""

from dataclasses import dataclass


@dataclass
class Reply:
    text: str
    interrupted: bool = False
    error_shown_to_user: str = ""


def answer(client, prompt):
    with client.messages.stream(model="claude-sonnet-4-5", max_tokens=1024,
                                messages=[{"role": "user", "content": prompt}]) as stream:
        return Reply("".join(stream.text_stream))
'''
# The same app once it handles a broken stream (as docs/cookbook.md's `ask` does): the partial
# answer, and a message for the user.
MY_APP_HANDLING_CUTS = MY_APP.replace(
    '''    with client.messages.stream(model="claude-sonnet-4-5", max_tokens=1024,
                                messages=[{"role": "user", "content": prompt}]) as stream:
        return Reply("".join(stream.text_stream))
''',
    '''    import anthropic, httpx2

    parts = []
    try:
        with client.messages.stream(model="claude-sonnet-4-5", max_tokens=1024,
                                    messages=[{"role": "user", "content": prompt}]) as stream:
            for text in stream.text_stream:
                parts.append(text)
    except (anthropic.APIConnectionError, httpx2.TransportError):
        return Reply("".join(parts), interrupted=True, error_shown_to_user="The answer broke off; please retry.")
    return Reply("".join(parts))
''',
)
assert MY_APP_HANDLING_CUTS != MY_APP
PYTEST_PRELUDE = """
import my_app


@pytest.fixture(name="my_app")
def _my_app():
    # ``my_app`` stands for the reader's own code, asked for as a fixture or imported
    return my_app
"""
MODULE = "test_docs_example"

# anthropic >= 2.17 wraps a mid-stream failure in the SDK's own exception (APIConnectionError,
# APITimeoutError); older SDKs let the httpx2 error escape. The docs write for 2.17 and say so.
WRAPS_STREAM_ERRORS = tuple(int(part) for part in anthropic.__version__.split(".")[:2]) >= (2, 17)
SWEEP = len(EVENTS) + 1  # after=0 .. after=N: one test per event boundary


@dataclass(frozen=True)
class Expected:
    """What a pytest example is meant to show when run against ``my_app``."""

    outcomes: dict[str, int]
    #: lines (fnmatch patterns) the run's output shows
    shown: tuple[str, ...] = ()
    #: the outcomes once the app handles a broken stream (``MY_APP_HANDLING_CUTS``), for an example
    #: that tells the two apps apart
    handling_cuts: dict[str, int] | None = None


EXPECTED: dict[str, Expected] = {
    # test_story, and the sweep: disconnect at every boundary, rate_limit*3, error_event:after=4, stall:after=2
    "README.md-3": Expected({"passed": 1 + SWEEP + 3}),
    "pytest.md-1": Expected({"passed": 1 + SWEEP + 3}),
    "getting-started.md-4": Expected({"passed": 1}),
    "pytest.md-2": Expected({"passed": 1}),
    # disconnect at every boundary, a reset every 64 bytes (0 included), rate_limit*3, stall:after=2
    "pytest.md-4": Expected({"passed": SWEEP + len(range(0, len(BODY) + 1, 64)) + 2}),
    "pytest.md-5": Expected({"passed": 1}),  # two 429s then the stream; the back-off on a virtual clock
    "pytest.md-6": Expected({"passed": 1} if WRAPS_STREAM_ERRORS else {"failed": 1}),  # APIConnectionError
    "pytest.md-7": Expected({"passed": 1}),  # the overload arrives as APIStatusError with status 200
    # the stall times out at once (APITimeoutError from 2.17); no headers: three attempts, then the timeout
    "pytest.md-8": Expected({"passed": 2} if WRAPS_STREAM_ERRORS else {"passed": 1, "failed": 1}),
    # The sweep finds what an app does not handle: every cut, after the last event too (the chunked
    # body never ended), escapes my_app.answer and fails its test. Once the app handles a broken
    # stream, every cut point passes.
    "pytest.md-9": Expected(
        {"failed": 2 * SWEEP},
        ("*my_app.py:*: in answer", "FAILED *test_every_cut_point_is_handled?disconnect:after=0?*",
         f"FAILED *test_every_cut_point_is_handled?reset:after={SWEEP - 1}?*"),
        handling_cuts={"passed": 2 * SWEEP},
    ),
}  # fmt: skip


def test_every_pytest_example_has_its_expected_outcome() -> None:
    examples = {param.id for param in BLOCKS if "def test_" in param.values[0]}
    assert examples == set(EXPECTED), "a pytest example in the docs needs its outcome in EXPECTED, and only one"


def cassettes_for(code: str, folder: Path) -> list[Path]:
    """Each test's cassette, as the plugin finds it: the marker's path, else the default path."""
    named = re.findall(r"""@pytest\.mark\.tape\(\s*["']([^"']+)["']""", code)
    tests = re.findall(r"^def (test_\w+)", code, re.M)
    return [folder / name for name in named] + [folder / "cassettes" / MODULE / f"{test}.yaml" for test in tests]


def run_pytest_example(code: str, pytester: pytest.Pytester, app: str = MY_APP) -> pytest.RunResult:
    """``code`` as a test module beside ``my_app``, each of its tests with its cassette, run by pytest."""
    prompts = re.findall(r"""my_app\.answer\([^,()]+,\s*["']([^"']+)["']""", code) or ["Write a story"]
    for path in cassettes_for(code, pytester.path):
        streamtape.Cassette([story(prompt) for prompt in dict.fromkeys(prompts)]).save(path)
    pytester.makepyfile(my_app=app)
    pytester.makepyfile(**{MODULE: PRELUDE + PYTEST_PRELUDE + code})
    return pytester.runpytest("-p", "no:randomly", "-p", "no:cacheprovider", "-rf")


@pytest.mark.filterwarnings("ignore:The model .* is deprecated:DeprecationWarning")
@pytest.mark.parametrize("code", BLOCKS)
def test_block_runs(code: str, request: pytest.FixtureRequest, tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setenv("ANTHROPIC_API_KEY", "docs-placeholder-key")
    name = request.node.callspec.id
    if "def test_" in code:  # a pytest example: run as a downstream project runs it
        expected, pytester = EXPECTED[name], request.getfixturevalue("pytester")
        result = run_pytest_example(code, pytester)
        result.assert_outcomes(**expected.outcomes)
        result.stdout.fnmatch_lines(list(expected.shown))
        result.stdout.no_fnmatch_line("*UnmatchedRequestError*")  # failures are the example's, not the harness's
        if expected.handling_cuts is not None:
            run_pytest_example(code, pytester, MY_APP_HANDLING_CUTS).assert_outcomes(**expected.handling_cuts)
        return
    write_cassettes(tmp_path)
    monkeypatch.chdir(tmp_path)
    # dont_inherit: the example runs as a user's file would, without this module's __future__ imports
    exec(compile(PRELUDE + code, "<docs>", "exec", dont_inherit=True), {"__name__": "docs"})  # noqa: S102


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

