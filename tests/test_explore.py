"""``pytest --tape-explore`` and ``--tape-report``, as a downstream project runs them: real pytest runs
(pytester) of apps with planted handling bugs, each one found only by a specific short sequence of
faults. Exploration must find each within its default budget and shrink it to that sequence."""

from __future__ import annotations

import contextlib
import importlib
import json
import textwrap
from pathlib import Path

import pytest

import streamtape
from streamtape.engine.session import Call
from streamtape.explore import DEFAULT_BUDGET, classify
from streamtape.wire import Cut, End, Respond, Send
from tests.support import builders, sdk
from tests.support.wire_server import DATA_DIR, split_events

pytest.importorskip("hypothesis")
pytestmark = pytest.mark.skipif(
    sdk.SDK_MAJOR < 1, reason="the planted apps are written for the httpx2-based SDK (anthropic >= 1)"
)

# pytester's in-process runs drop modules first imported inside a run, and httpx2 caches its map of
# httpcore2 exceptions on first use: import the HTTP cores here, so every run shares one of each
for _core in ("httpcore2", "httpcore"):
    with contextlib.suppress(ImportError):
        importlib.import_module(_core)

# --- the recording: a real stream's frame, a story with multi-byte characters in it ----------------------------

_REAL = split_events((DATA_DIR / "text_multi_delta.sse").read_bytes())  # start, block start, ping, 4 deltas, stops
PIECES = ["Once upon a time, ", "a café ", "served ☕ ", "to a pelican", " — who paid ", "in crumbs."]
STORY = "".join(PIECES)


def delta(text: str) -> bytes:
    payload = {"type": "content_block_delta", "index": 0, "delta": {"type": "text_delta", "text": text}}
    return b"event: content_block_delta\ndata: " + json.dumps(payload, ensure_ascii=False,
                                                               separators=(",", ":")).encode() + b"\n\n"  # fmt: skip


#: 12 events: message_start, content_block_start, ping, six text deltas (events 4-9), the three stops
BODY = b"".join([*_REAL[:3], *(delta(text) for text in PIECES), *_REAL[7:]])


def save_story(path: Path) -> Path:
    """The story as a cassette, one chunk per event (it matches any POST to the Messages API)."""
    timing = []
    for number, event in enumerate(split_events(BODY)):
        timing.append((round(0.3 + 0.02 * number, 3), len(event)))
    return builders.save(path, body=BODY, timing=tuple(timing))


# --- the apps: one careful, four with a planted bug each ------------------------------------------------------

APPS = '''
"""Apps that stream a story, each with one way of handling failures."""

import json
from dataclasses import dataclass

import anthropic
import httpx2

MODEL = "claude-sonnet-4-5"


@dataclass
class Answer:
    text: str
    complete: bool


def _stream(client, prompt):
    """One attempt: the text, and whether the stream's start and end (message_stop) both arrived."""
    parts, seen = [], set()
    with client.messages.stream(model=MODEL, max_tokens=1024, messages=[{"role": "user", "content": prompt}]) as s:
        for event in s:
            if event.type == "text":
                parts.append(event.text)
            seen.add(event.type)
    return Answer("".join(parts), {"message_start", "message_stop"} <= seen)


def careful(client, prompt):
    """No bug: whatever goes wrong, the answer says it is not complete."""
    try:
        return _stream(client, prompt)
    except Exception:
        return Answer("", False)


def trusts_the_end(client, prompt):
    """BUG: a stream that ends early without an error is taken as complete."""
    parts = []
    try:
        with client.messages.stream(model=MODEL, max_tokens=1024,
                                    messages=[{"role": "user", "content": prompt}]) as s:
            for text in s.text_stream:
                parts.append(text)
    except Exception:
        return Answer("".join(parts), False)
    return Answer("".join(parts), True)


def retries_rate_limits(client, prompt):
    """BUG: it retries a 429 once itself, and that retry only expects another 429."""
    client = client.with_options(max_retries=0)
    try:
        return _stream(client, prompt)
    except anthropic.RateLimitError:
        try:
            return _stream(client, prompt)
        except anthropic.RateLimitError:
            return Answer("", False)
    except Exception:
        return Answer("", False)


def resumes_cut_streams(client, prompt):
    """BUG: it retries a broken stream, keeping the text the broken attempt had already given."""
    parts = []
    for _ in range(2):
        try:
            with client.messages.stream(model=MODEL, max_tokens=1024,
                                        messages=[{"role": "user", "content": prompt}]) as s:
                done = False
                for event in s:
                    if event.type == "text":
                        parts.append(event.text)
                    elif event.type == "message_stop":
                        done = True
            return Answer("".join(parts), done)
        except anthropic.APIConnectionError:
            continue
        except Exception:
            break
    return Answer("".join(parts), False)


def reads_raw_sse(prompt):
    """BUG: it parses the stream itself and decodes each chunk on its own, so a character split across
    two chunks comes out as U+FFFD."""
    parts, done = [], False
    body = {"model": MODEL, "max_tokens": 1024, "stream": True, "messages": [{"role": "user", "content": prompt}]}
    try:
        with httpx2.Client() as http, http.stream("POST", "https://api.anthropic.com/v1/messages", json=body) as r:
            if r.status_code != 200:
                return Answer("", False)
            buffer = ""
            for chunk in r.iter_bytes():
                buffer += chunk.decode("utf-8", errors="replace")
                while "\\n\\n" in buffer:
                    block, buffer = buffer.split("\\n\\n", 1)
                    data = [line[6:] for line in block.splitlines() if line.startswith("data: ")]
                    event = json.loads(data[0]) if data else {}
                    if event.get("type") == "content_block_delta":
                        parts.append(event["delta"]["text"])
                    elif event.get("type") == "message_stop":
                        done = True
    except Exception:
        return Answer("".join(parts), False)
    return Answer("".join(parts), done)
'''


def module_for(app: str, *, story: str = STORY) -> str:
    """A test a downstream project writes: a complete answer is the whole story."""
    call = "apps.reads_raw_sse('Write a story')" if app == "reads_raw_sse" else f"apps.{app}(anthropic_client, 'Write a story')"
    uses = "" if app == "reads_raw_sse" else "anthropic_client"
    return textwrap.dedent(f'''
        import pytest
        import apps

        @pytest.mark.tape("story.yaml", match_on=["method", "path"])
        def test_story({uses}):
            answer = {call}
            if answer.complete:
                assert answer.text == {story!r}
        ''')


def explore(pytester: pytest.Pytester, app: str, *args: str) -> pytest.RunResult:
    save_story(pytester.path / "story.yaml")
    pytester.makepyfile(apps=APPS, test_app=module_for(app))
    return pytester.runpytest("-p", "no:randomly", "--tape-explore", *args)


@pytest.fixture(autouse=True)
def _clean_environment(monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.delenv("STREAMTAPE_RECORD_MODE", raising=False)
    monkeypatch.delenv("ANTHROPIC_API_KEY", raising=False)


# --- the planted bugs -----------------------------------------------------------------------------------------


def summary(result: pytest.RunResult) -> list[str]:
    """The shrunk schedules the explore summary lists (the section at the end of the run)."""
    lines = result.outlines
    start = next(i for i, line in enumerate(lines) if "streamtape explore" in line and line.startswith("="))
    return [line.split("tape_faults(", 1)[1].rsplit(")", 1)[0].split(")    #")[0].strip("'\"")
            for line in lines[start:] if line.startswith("    @pytest.mark.tape_faults(")]  # fmt: skip


def test_a_careful_app_passes_exploration(pytester: pytest.Pytester) -> None:
    result = explore(pytester, "careful", "-p", "no:cacheprovider")
    result.assert_outcomes(passed=2)
    assert "streamtape explore" not in result.stdout.str()


def test_a_truncated_stream_taken_as_complete(pytester: pytest.Pytester) -> None:
    """Only a stream that ends cleanly, early, breaks it: the simplest is one ended before any event."""
    result = explore(pytester, "trusts_the_end", "-p", "no:cacheprovider")
    result.assert_outcomes(passed=1, failed=1)
    assert summary(result) == ["truncate:after=0"]
    result.stdout.fnmatch_lines([
        "*streamtape explore*",
        "1 failing fault schedule(s) found (* runs in *, seed *), each shrunk; paste one to keep it:",
        '    @pytest.mark.tape_faults("truncate:after=0")    # AssertionError: *',
        'FAILED test_app.py::test_story[[]explore[]] - [[]tape_faults("truncate:after=0")[]]*',
    ])  # fmt: skip


def test_a_retry_that_expects_only_another_429(pytester: pytest.Pytester) -> None:
    """A 429 alone is retried; a 429 on every attempt is given up gracefully; a cut alone is handled.
    Only a 429 followed by another failure breaks it: a two-attempt sequence."""
    result = explore(pytester, "retries_rate_limits", "-p", "no:cacheprovider")
    result.assert_outcomes(passed=1, failed=1)
    schedules = summary(result)
    assert schedules[0] == "rate_limit -> disconnect"
    assert all(spec.startswith("rate_limit -> ") for spec in schedules), schedules


def test_a_resumed_stream_that_repeats_its_text(pytester: pytest.Pytester) -> None:
    """Only a transient cut after some text arrived breaks it: a cut on every attempt, or one before
    the first text delta (event 4), does not."""
    result = explore(pytester, "resumes_cut_streams", "-p", "no:cacheprovider")
    result.assert_outcomes(passed=1, failed=1)
    assert summary(result) == ["disconnect:after=4 -> ok"]


def test_a_character_split_across_chunks(pytester: pytest.Pytester) -> None:
    result = explore(pytester, "reads_raw_sse", "-p", "no:cacheprovider")
    result.assert_outcomes(passed=1, failed=1)
    assert summary(result) == ["split_utf8"]


def test_each_is_found_within_the_default_budget(pytester: pytest.Pytester) -> None:
    result = explore(pytester, "resumes_cut_streams", "-p", "no:cacheprovider")
    line = next(line for line in result.outlines if "failing fault schedule(s) found (" in line)
    runs = int(line.split("found (", 1)[1].split(" runs", 1)[0])
    assert runs <= DEFAULT_BUDGET


# --- how exploration runs -------------------------------------------------------------------------------------


def test_a_found_failure_is_replayed_first_next_time(pytester: pytest.Pytester) -> None:
    first = explore(pytester, "trusts_the_end")
    first.assert_outcomes(passed=1, failed=1)
    assert (pytester.path / ".hypothesis" / "streamtape").is_dir()
    again = pytester.runpytest("-p", "no:randomly", "--tape-explore")
    again.assert_outcomes(passed=1, failed=1)
    again.stdout.fnmatch_lines(["*1 failing fault schedule(s) found (1 run in *, replayed from the example database)*"])
    assert summary(again) == ["truncate:after=0"]
    # fixed: the stored failure passes now, is forgotten, and a new search finds nothing
    pytester.makepyfile(test_app=module_for("careful"))
    pytester.runpytest("-p", "no:randomly", "--tape-explore").assert_outcomes(passed=2)


def test_no_database_without_the_cache_provider(pytester: pytest.Pytester) -> None:
    explore(pytester, "trusts_the_end", "--tape-explore=30", "-p", "no:cacheprovider")
    assert not (pytester.path / ".hypothesis").exists()


def test_a_budget_and_a_seed(pytester: pytest.Pytester) -> None:
    result = explore(pytester, "careful", "--tape-explore=7", "--tape-explore-seed=3", "-p", "no:cacheprovider", "-rP")
    result.assert_outcomes(passed=2)
    result.stdout.fnmatch_lines(["*no failing fault schedule found (7 runs in *, seed 3)*"])


def test_what_is_not_explored_says_why(pytester: pytest.Pytester) -> None:
    save_story(pytester.path / "story.yaml")
    pytester.makepyfile(apps=APPS, test_app='''
        import pytest
        import apps

        @pytest.mark.tape("story.yaml", match_on=["method", "path"])
        def test_broken_already(anthropic_client):
            assert apps.careful(anthropic_client, "Write a story").text == "something else"

        @pytest.mark.tape("story.yaml")
        def test_no_api_call(tape):
            pass

        @pytest.mark.tape("missing.yaml")
        def test_not_recorded(tape):
            pass

        def test_no_tape():
            pass
        ''')  # fmt: skip
    result = pytester.runpytest("--tape-explore=5", "-p", "no:cacheprovider", "-rs")
    result.assert_outcomes(passed=2, failed=1, skipped=3, errors=1)
    result.stdout.fnmatch_lines([
        "SKIPPED [[]1[]] test_app.py:4: streamtape explore: the test fails with no faults at all*",
        "SKIPPED [[]1[]] test_app.py:8: streamtape explore: the test made no model API call*",
        "SKIPPED [[]1[]] test_app.py:12: streamtape explore: it needs its recorded cassette (*missing.yaml)*",
    ], consecutive=False)  # fmt: skip
    assert "test_no_tape[explore]" not in result.stdout.str()


def test_one_exploration_per_swept_test(pytester: pytest.Pytester) -> None:
    save_story(pytester.path / "story.yaml")
    pytester.makepyfile(apps=APPS, test_app='''
        import pytest
        import apps

        @pytest.mark.tape("story.yaml", match_on=["method", "path"])
        @pytest.mark.tape_faults("disconnect:after=*")
        def test_cuts(anthropic_client, tape_fault):
            assert apps.careful(anthropic_client, "Write a story") is not None

        @pytest.mark.tape("story.yaml", match_on=["method", "path"])
        @pytest.mark.parametrize("prompt", ["a", "b"])
        def test_prompts(anthropic_client, prompt):
            assert apps.careful(anthropic_client, prompt) is not None
        ''')  # fmt: skip
    result = pytester.runpytest("--tape-explore=3", "-p", "no:cacheprovider", "-v")
    result.assert_outcomes(passed=13 + 1 + 2 + 2)
    result.stdout.fnmatch_lines(["*test_cuts[[]explore[]] PASSED*", "*test_prompts[[]a-explore[]] PASSED*",
                                 "*test_prompts[[]b-explore[]] PASSED*"], consecutive=False)  # fmt: skip


def test_without_hypothesis_the_option_says_what_to_install(pytester: pytest.Pytester,
                                                            monkeypatch: pytest.MonkeyPatch) -> None:  # fmt: skip
    import builtins

    real = builtins.__import__

    def no_hypothesis(name: str, *args: object, **kwargs: object) -> object:
        if name == "hypothesis" or name.startswith("hypothesis."):
            raise ImportError(f"No module named {name!r}")
        return real(name, *args, **kwargs)  # type: ignore[arg-type]

    monkeypatch.setattr(builtins, "__import__", no_hypothesis)
    pytester.makepyfile("def test_x():\n    pass\n")
    result = pytester.runpytest("--tape-explore")
    result.stderr.fnmatch_lines(["*--tape-explore needs Hypothesis, which is not installed: pip install "
                                 "'pytest-streamtape[[]explore[]]'*"])  # fmt: skip


def test_options_refuse_what_they_cannot_take(pytester: pytest.Pytester) -> None:
    pytester.makepyfile(test_x="def test_x():\n    pass\n")
    result = pytester.runpytest("--tape-explore", "test_x.py")
    result.stderr.fnmatch_lines(["*--tape-explore: 'test_x.py' is not a number of runs; give one with =*"])
    result = pytester.runpytest("--tape-report", "test_x.py")
    result.stderr.fnmatch_lines(["*--tape-report: 'test_x.py' is not a .json file to write the verdicts to*"])
    assert (pytester.path / "test_x.py").read_text().strip() == "def test_x():\n    pass"


# --- verdicts -------------------------------------------------------------------------------------------------


REPORTED = '''
import pytest
import apps

SPECS = ["truncate:after=5", "disconnect:after=5", "rate_limit -> ok", "rate_limit*3", "stall:after=6",
         "error_event:after=5", "error_event:after=5,event=overloaded", "corrupt:event=5"]


@pytest.mark.tape("story.yaml", match_on=["method", "path"])
@pytest.mark.tape_faults(*SPECS)
def test_trusting(anthropic_client, tape_fault):
    apps.trusts_the_end(anthropic_client, "Write a story")


@pytest.mark.tape("story.yaml", match_on=["method", "path"], faults="disconnect:after=5")
def test_raw(anthropic_client):
    with anthropic_client.messages.stream(model="m", max_tokens=1, messages=[]) as stream:
        "".join(stream.text_stream)


@pytest.mark.tape("story.yaml", match_on=["method", "path"], faults="truncate:after=6")
def test_checked(anthropic_client):
    answer = apps.careful(anthropic_client, "Write a story")
    assert answer.complete


@pytest.mark.tape("story.yaml", match_on=["method", "path"])
def test_clean(anthropic_client):
    assert apps.careful(anthropic_client, "Write a story").complete
'''


def test_the_report_gives_a_verdict_per_tape_and_fault(pytester: pytest.Pytester) -> None:
    save_story(pytester.path / "story.yaml")
    pytester.makepyfile(apps=APPS, test_report=REPORTED)
    result = pytester.runpytest("--junitxml=junit.xml", "--tape-report=out/verdicts.json", "-p", "no:cacheprovider")
    result.assert_outcomes(passed=9, failed=2)
    document = json.loads((pytester.path / "out" / "verdicts.json").read_text())
    verdicts = {row["test"].split("::", 1)[1]: row for row in document["verdicts"]}
    assert {name: row["verdict"] for name, row in verdicts.items()} == {
        "test_trusting[truncate:after=5]": "silent",
        "test_trusting[error_event:after=5,event=overloaded]": "silent",
        "test_trusting[disconnect:after=5]": "partial",
        "test_trusting[error_event:after=5]": "partial",
        "test_trusting[stall:after=6]": "partial",
        "test_trusting[corrupt:event=5]": "partial",
        "test_trusting[rate_limit -> ok]": "retried",
        "test_trusting[rate_limit*3]": "handled",
        "test_raw": "raised",
        "test_checked": "failed",
        "test_clean": "ok",
    }
    silent = verdicts["test_trusting[truncate:after=5]"]
    assert silent["detail"] == ("returned a truncated or errored stream as if complete (it ended cleanly, but early: "
                                "no message_stop)")  # fmt: skip
    assert silent["cassette"] == "story.yaml" and silent["faults"] == "truncate:after=5" and silent["calls"] == [
        "200, complete"]
    assert "'overloaded'" in verdicts["test_trusting[error_event:after=5,event=overloaded]"]["detail"]
    retried = verdicts["test_trusting[rate_limit -> ok]"]
    assert retried["attempts"] == 2 and retried["waited"] > 0 and retried["calls"] == ["429, complete", "200, complete"]
    assert verdicts["test_trusting[rate_limit*3]"]["attempts"] == 3
    assert verdicts["test_raw"]["exception"] == "APIConnectionError"
    assert verdicts["test_checked"]["exception"] == "AssertionError"
    assert document["counts"] == {"silent": 2, "partial": 4, "retried": 1, "handled": 1, "raised": 1, "failed": 1,
                                  "ok": 1}  # fmt: skip
    result.stdout.fnmatch_lines([
        "*streamtape report*",
        "2 SILENT, 1 raised, 1 failed, 4 partial, 1 handled, 1 retried, 1 ok",
        "story.yaml",
        "  SILENT   error_event:after=5,event=overloaded *",
        "  SILENT   truncate:after=5 * returned a truncated or errored stream as if complete*",
        "  raised   disconnect:after=5 * APIConnectionError   test_report.py::test_raw",
    ])  # fmt: skip
    junit = (pytester.path / "junit.xml").read_text()
    assert '<property name="streamtape_verdict" value="silent: returned a truncated' in junit
    assert '<property name="streamtape_faults" value="truncate:after=5"' in junit


def test_exploring_and_reporting_under_xdist(pytester: pytest.Pytester) -> None:
    """Workers explore and judge; the controller gathers every verdict and every schedule found."""
    save_story(pytester.path / "story.yaml")
    pytester.makepyfile(apps=APPS, test_report=REPORTED, test_app=module_for("trusts_the_end"))
    result = pytester.runpytest("-n", "2", "--tape-explore", "--tape-report", "-p", "no:cacheprovider",
                                "-k", "test_story or not explore")  # fmt: skip
    result.assert_outcomes(passed=9 + 1, failed=2 + 1)
    assert summary(result) == ["truncate:after=0"]
    document = json.loads((pytester.path / "streamtape-report.json").read_text())
    assert len(document["verdicts"]) == 11 + 1 + 1  # every test, and the explore item's last run
    assert document["counts"]["silent"] == 2 and document["explored"][0]["found"][0]["spec"] == "truncate:after=0"


def _call(actions: list[object], *, outcome: str = "", waited: float = 0.0, body: bytes = b'{"a":1}') -> Call:
    request = streamtape.Request("POST", builders.MESSAGES_URL, body=body)
    item = builders.interaction(body=BODY)
    return Call(request, 0, 1, "replayed", item, (), outcome, waited, tuple(actions))  # type: ignore[arg-type]


HEAD = Respond(200, (("content-type", "text/event-stream"),))
EVENTS = split_events(BODY)


def test_classify_reads_what_the_sdk_was_given() -> None:
    whole = _call([HEAD, *(Send(event) for event in EVENTS), End()])
    early = _call([HEAD, *(Send(event) for event in EVENTS[:6]), End()])
    cut = _call([HEAD, *(Send(event) for event in EVENTS[:6]), Cut("fin")])
    refused = _call([Cut("refused")])
    limited = _call([Respond(429, ()), Send(b"{}"), End()])
    assert classify([whole], "passed", None).verdict == "ok"
    assert classify([early], "passed", None).verdict == "silent"
    assert classify([early], "failed", "AssertionError").verdict == "failed"
    assert classify([cut], "passed", None).verdict == "partial"
    assert classify([cut], "failed", "APIConnectionError").verdict == "raised"
    assert classify([refused], "passed", None).verdict == "handled"
    assert classify([limited, whole], "passed", None).verdict == "retried"
    assert classify([limited, limited], "passed", None).detail.endswith("(a 429 after 2 attempts) and the app "
                                                                        "returned normally")  # fmt: skip
    # a truncated stream the app noticed and asked again for is not passed on silently
    assert classify([early, whole], "passed", None).verdict == "retried"
    assert classify([whole], "error", "ValueError").verdict == "error"


# --- the worked example ---------------------------------------------------------------------------------------

EXAMPLE = Path(__file__).resolve().parent.parent / "examples" / "explore_app"


def test_the_worked_example_finds_its_bug_and_not_in_the_fix(pytester: pytest.Pytester) -> None:
    """examples/explore_app: its tests pass on the recording; exploring them breaks the first version
    with what its README says, and not the fix."""
    # the test module under another name: the example's own may be imported in this process already
    for name, copy in (("names_app.py", "names_app.py"), ("conftest.py", "conftest.py"),
                       ("tests/test_names_app.py", "tests/test_the_names_example.py")):  # fmt: skip
        target = pytester.path / copy
        target.parent.mkdir(parents=True, exist_ok=True)
        target.write_text((EXAMPLE / name).read_text(encoding="utf-8"), encoding="utf-8")
    pytester.runpytest("-p", "no:cacheprovider").assert_outcomes(passed=4, xfailed=2)
    result = pytester.runpytest("-p", "no:cacheprovider", "--tape-explore", "-k", "test_suggest_names", "-v")
    result.assert_outcomes(passed=3, failed=1)
    assert summary(result) == ["truncate:after=0", "corrupt"]
    result.stdout.fnmatch_lines(["*test_suggest_names_checked[[]explore[]] PASSED*"], consecutive=False)
    readme = (EXAMPLE / "README.md").read_text(encoding="utf-8")
    assert '@pytest.mark.tape_faults("truncate:after=0")' in readme and '@pytest.mark.tape_faults("corrupt")' in readme
