"""How old recordings are: the ``recorded`` field, ``max_age`` with ``on_stale`` warn / fail /
rerecord, ``rewrite_stale`` (only what is stale is re-recorded; the rest stays byte for byte), the
pytest options, and ``streamtape lint --max-age``. Cassettes of various ages are made by recording
from a local API and writing their ``recorded.at`` directly."""

from __future__ import annotations

import contextlib
import dataclasses
import importlib
import re
import warnings
from collections.abc import Iterator
from datetime import UTC, datetime, timedelta
from pathlib import Path

import anthropic
import pytest
from click.testing import CliRunner

import streamtape
from streamtape import Cassette, ConfigError
from streamtape.age import StaleCassetteError, StaleCassetteWarning, parse_age, sdk_from_headers, staleness
from streamtape.cassette import CassetteFormatError
from streamtape.cli import main
from tests.support import sdk
from tests.support.builders import interaction
from tests.support.drifting_api import DriftingAPI

# pytester's in-process runs drop modules first imported inside a run (see tests/test_plugin.py)
for _core in ("httpcore2", "httpcore"):
    with contextlib.suppress(ImportError):
        importlib.import_module(_core)

PROMPTS = ("first", "second", "third")


@pytest.fixture(autouse=True)
def _clean_environment(monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.delenv("STREAMTAPE_RECORD_MODE", raising=False)
    monkeypatch.delenv("ANTHROPIC_API_KEY", raising=False)


@pytest.fixture
def api() -> Iterator[DriftingAPI]:
    with DriftingAPI() as running:
        yield running


def ask(base_url: str) -> list[str]:
    """What the app does: one stream per prompt, then a request for a model that does not exist."""
    texts = []
    with sdk.client(base_url) as client:
        for prompt in PROMPTS:
            messages = [{"role": "user", "content": prompt}]
            with client.messages.stream(model="claude-test", max_tokens=64, messages=messages) as stream:
                texts.append("".join(stream.text_stream))
        with pytest.raises(anthropic.NotFoundError):
            client.messages.create(model="claude-nope", max_tokens=64, messages=[{"role": "user", "content": "x"}])
    return texts


def record(api: DriftingAPI, path: Path) -> Path:
    with streamtape.use_cassette(path, record_mode="once"):
        ask(api.base_url)
    return path


def ago(days: float) -> str:
    return (datetime.now(UTC) - timedelta(days=days)).strftime("%Y-%m-%dT%H:%M:%SZ")


def set_ages(path: Path, days: list[float]) -> None:
    """Write each interaction's ``recorded.at`` directly: ``days[i]`` days ago (the line count is kept)."""
    text = path.read_text()
    stamps = iter(days)
    path.write_text(re.sub(r"(?m)^(    at: ).*$", lambda m: f"{m.group(1)}'{ago(next(stamps))}'", text))


def interaction_texts(text: str) -> list[str]:
    """Each interaction's YAML text, as written in the file."""
    body = text.split("\ninteractions:\n", 1)[1].rsplit("\nlines: ", 1)[0]
    return ["- " + part for part in re.split(r"(?m)^- ", body) if part]


class TestRecorded:
    def test_the_recorder_dates_each_interaction_with_the_sdk_and_stack(self, api: DriftingAPI, tmp_path: Path) -> None:
        before = datetime.now(UTC).replace(microsecond=0)
        path = record(api, tmp_path / "story.yaml")
        items = Cassette.load(path).interactions
        assert len(items) == 4
        for item in items:
            assert item.recorded is not None and item.recorded.when is not None
            assert before <= item.recorded.when <= datetime.now(UTC)
            assert item.recorded.sdk == f"anthropic {anthropic.__version__}"
            assert item.recorded.stack == sdk.STACK
        text = path.read_text()
        assert text.count("- recorded:\n    at: '") == 4
        assert "127.0.0.1" not in "".join(line for line in text.splitlines() if line.startswith("    sdk:"))

    def test_a_failure_before_any_response_is_dated_too(self, tmp_path: Path) -> None:
        path = tmp_path / "refused.yaml"
        with (
            streamtape.use_cassette(path, record_mode="once", record_failures=True),
            sdk.client("http://127.0.0.1:9") as client,
        ):  # nothing listens on port 9
            with pytest.raises(anthropic.APIConnectionError):
                client.messages.create(model="claude-test", max_tokens=8, messages=[{"role": "user", "content": "x"}])
        (item,) = Cassette.load(path).interactions
        assert item.error is not None and item.recorded is not None and item.recorded.stack == sdk.STACK

    @pytest.mark.parametrize(
        ("headers", "expected"),
        [
            ((("User-Agent", "Anthropic/Python 2.17.0"),), "anthropic 2.17.0"),
            ((("user-agent", "AsyncAnthropic/Python 0.125.0"),), "anthropic 0.125.0"),
            ((("User-Agent", "OpenAI/Python 1.99.1"),), "openai 1.99.1"),
            ((("user-agent", "google-genai-sdk/1.2.0 gl-python/3.11.7"),), "google-genai 1.2.0"),
            ((("User-Agent", "Boto3/1.35.0 md/Botocore#1.35.0 ua/2.0 os/linux#6.1"),), "boto3 1.35.0"),
            ((("User-Agent", "python-httpx/0.28"),), None),
            ((("X-Stainless-Package-Version", "3.1.0"),), "stainless-sdk 3.1.0"),
            ((("User-Agent", "Anthropic/Python 1.0;rm -rf"),), None),
        ],
    )
    def test_the_sdk_from_the_headers(self, headers: tuple[tuple[str, str], ...], expected: str | None) -> None:
        assert sdk_from_headers(headers) == expected

    def test_old_cassettes_load_and_their_age_is_unknown(self, tmp_path: Path) -> None:
        path = tmp_path / "old.yaml"
        Cassette([interaction()]).save(path)
        assert "recorded" not in path.read_text()
        assert Cassette.load(path).interactions[0].recorded is None
        with pytest.warns(
            StaleCassetteWarning, match=r"1 interaction\(s\) \(#0\) have no 'recorded' time.*age is unknown"
        ):
            with streamtape.use_cassette(path, max_age="30d", on_stale="fail"):
                pass  # unknown is not stale: never failed for it

    def test_the_flow_form_with_a_bare_time_stamp_loads(self) -> None:
        text = Cassette([interaction()]).dumps().replace("- request:", "- recorded: {at: 2026-12-07T01:40:00Z, "
                                                         "sdk: anthropic 2.17.0, stack: httpx2}\n  request:")  # fmt: skip
        lines = text.count("\n")
        text = re.sub(r"lines: \d+", f"lines: {lines}", text)
        (item,) = Cassette.loads(text).interactions
        assert item.recorded == streamtape.age.Recorded("2026-12-07T01:40:00Z", "anthropic 2.17.0", "httpx2")
        assert item.recorded.when == datetime(2026, 12, 7, 1, 40, tzinfo=UTC)

    def test_a_time_that_is_not_one_is_refused_naming_the_field(self, api: DriftingAPI, tmp_path: Path) -> None:
        path = record(api, tmp_path / "story.yaml")
        path.write_text(path.read_text().replace("    at: '", "    at: 'last tuesday ", 1))
        with pytest.raises(CassetteFormatError, match=r"line 5, interactions\[0\]\.recorded\.at: expected a UTC time"):
            Cassette.load(path)


class TestAges:
    @pytest.mark.parametrize(
        ("text", "seconds"),
        [("30d", 30 * 86400), ("12h", 43200), ("2w", 14 * 86400), ("1w3d", 10 * 86400), ("90m", 5400), (45, 45.0)],
    )
    def test_ages(self, text: str | int, seconds: float) -> None:
        assert parse_age(text) == seconds

    @pytest.mark.parametrize("text", ["30", "thirty days", "30x", "-3d", "0d", ""])
    def test_bad_ages_say_how(self, text: str) -> None:
        with pytest.raises(ConfigError, match=r"max_age: .* is not an age.*30d, 12h, 2w"):
            parse_age(text)

    def test_staleness(self) -> None:
        dated = [dataclasses.replace(interaction(), recorded=streamtape.age.Recorded(ago(d))) for d in (1, 40)]
        found = staleness([*dated, interaction()], parse_age("30d"))
        assert found.stale == (1,) and found.undated == (2,) and round(found.ages[1] / 86400) == 40


class TestMaxAge:
    def test_warn(self, api: DriftingAPI, tmp_path: Path) -> None:
        path = record(api, tmp_path / "story.yaml")
        set_ages(path, [1, 45, 2, 60])
        with pytest.warns(StaleCassetteWarning) as caught, streamtape.use_cassette(path, max_age="30d"):
            ask(api.base_url)
        (message,) = [str(w.message) for w in caught]
        assert message == (
            f"cassette {path}: 2 of 4 interaction(s) (#1, #3) were recorded more than max_age 30d ago (the oldest "
            "60 days ago); re-record them with --tape-record-mode=rewrite-stale (record_mode='rewrite_stale'), or "
            "raise max_age"
        )

    def test_fresh_cassettes_say_nothing(self, api: DriftingAPI, tmp_path: Path) -> None:
        path = record(api, tmp_path / "story.yaml")
        with warnings.catch_warnings():
            warnings.simplefilter("error")
            with streamtape.use_cassette(path, max_age="30d", on_stale="fail"):
                ask(api.base_url)

    def test_fail(self, api: DriftingAPI, tmp_path: Path) -> None:
        path = record(api, tmp_path / "story.yaml")
        set_ages(path, [1, 45, 2, 3])
        with pytest.raises(StaleCassetteError, match=r"1 of 4 interaction\(s\) \(#1\) were recorded more than max_age"):
            with streamtape.use_cassette(path, max_age="30d", on_stale="fail"):
                pass

    def test_rerecord_and_rewrite_stale_keep_the_rest_byte_for_byte(self, api: DriftingAPI, tmp_path: Path) -> None:
        for mode, options in (("rewrite_stale", {}), ("none", {"on_stale": "rerecord"})):
            path = record(api, tmp_path / f"{mode}.yaml")
            set_ages(path, [1, 45, 2, 60])  # #1 is stale; #3 is stale too, but a recorded 404: kept
            before = interaction_texts(path.read_text())
            api.text = "Rewritten {n}"
            with pytest.warns(
                StaleCassetteWarning, match=r"kept 1 interaction\(s\) older than max_age 30d as they are \(#3\)"
            ):
                with streamtape.use_cassette(path, record_mode=mode, max_age="30d", **options) as tape:
                    texts = ask(api.base_url)
            assert texts[1].startswith("Rewritten") and not texts[0].startswith("Rewritten")
            after = interaction_texts(path.read_text())
            assert len(after) == 4
            assert [after[0], after[2], after[3]] == [before[0], before[2], before[3]]  # untouched, byte for byte
            assert after[1] != before[1] and "Rewri" in after[1] and "Rewri" not in before[1]
            fresh = Cassette.load(path).interactions[1]
            assert fresh.recorded is not None and staleness([fresh], parse_age("1h")).stale == ()
            assert [call.source for call in tape.calls] == ["replayed", "recorded", "replayed", "replayed"]
            api.text = "Hello, run {n}"

    def test_a_refused_re_recording_never_replaces_a_recording(self, api: DriftingAPI, tmp_path: Path) -> None:
        path = record(api, tmp_path / "story.yaml")
        set_ages(path, [40, 45, 2, 3])
        before = interaction_texts(path.read_text())
        api.refuse.add("second")
        with pytest.warns(StaleCassetteWarning, match=r"interaction #1 was kept as it was: re-recording it got 401"):
            with streamtape.use_cassette(path, record_mode="rewrite_stale", max_age="30d"):
                with pytest.raises(anthropic.AuthenticationError):
                    ask(api.base_url)
        after = interaction_texts(path.read_text())
        assert after[0] != before[0] and after[1:] == before[1:]

    def test_rewrite_stale_with_nothing_stale_is_replay(self, api: DriftingAPI, tmp_path: Path) -> None:
        path = record(api, tmp_path / "story.yaml")
        before = path.read_bytes()
        sent = len(api.requests)
        with streamtape.use_cassette(path, record_mode="rewrite-stale", max_age="30d") as tape:
            assert tape.offline
            ask(api.base_url)
        assert len(api.requests) == sent  # all four replayed
        assert path.read_bytes() == before

    def test_rewrite_stale_needs_max_age(self, tmp_path: Path) -> None:
        with pytest.raises(ConfigError, match=r"record_mode 'rewrite_stale' .* pass max_age \(e\.g\. max_age='30d'"):
            streamtape.use_cassette(tmp_path / "x.yaml", record_mode="rewrite_stale")

    def test_bad_on_stale(self, tmp_path: Path) -> None:
        with pytest.raises(ConfigError, match=r"on_stale: 'explode' is not valid; use 'warn', 'fail', 'rerecord'"):
            streamtape.use_cassette(tmp_path / "x.yaml", max_age="1d", on_stale="explode")


TEST_FILE = """
import pytest
from tests.support import sdk

PROMPTS = ("first", "second", "third")

{marker}
def test_story(tape):
    with sdk.client({url!r}) as client:
        for prompt in PROMPTS:
            messages = [{{"role": "user", "content": prompt}}]
            with client.messages.stream(model="claude-test", max_tokens=64, messages=messages) as stream:
                "".join(stream.text_stream)
"""


class TestPytest:
    """Real pytest runs of a downstream project's test."""

    def setup_project(
        self, pytester: pytest.Pytester, api: DriftingAPI, marker: str = "@pytest.mark.tape('story.yaml')"
    ) -> Path:
        pytester.syspathinsert(Path(__file__).resolve().parent.parent)
        pytester.makepyfile(test_story=TEST_FILE.format(marker=marker, url=api.base_url))
        path = pytester.path / "story.yaml"
        with streamtape.use_cassette(path, record_mode="once"), sdk.client(api.base_url) as client:
            for prompt in PROMPTS:
                messages = [{"role": "user", "content": prompt}]
                with client.messages.stream(model="claude-test", max_tokens=64, messages=messages) as stream:
                    "".join(stream.text_stream)
        return path

    def test_rewrite_stale_option(self, pytester: pytest.Pytester, api: DriftingAPI) -> None:
        path = self.setup_project(pytester, api)
        set_ages(path, [3, 90, 10])
        before = interaction_texts(path.read_text())
        result = pytester.runpytest("-p", "no:cacheprovider", "--tape-record-mode=rewrite-stale", "--tape-max-age=30d")
        result.assert_outcomes(passed=1)
        after = interaction_texts(path.read_text())
        assert after[0] == before[0] and after[2] == before[2] and after[1] != before[1]
        assert staleness(Cassette.load(path).interactions, parse_age("30d")).stale == ()

    def test_marker_fail(self, pytester: pytest.Pytester, api: DriftingAPI) -> None:
        path = self.setup_project(pytester, api, "@pytest.mark.tape('story.yaml', max_age='2w', on_stale='fail')")
        set_ages(path, [3, 20, 10])
        result = pytester.runpytest("-p", "no:cacheprovider")
        result.assert_outcomes(errors=1)  # the tape is set up before the test: its failure is the setup's
        result.stdout.fnmatch_lines(["*story.yaml: 1 of 3 interaction(s) (#1) were recorded more than max_age 2w ago*"])

    def test_ini_warn_then_command_line_fail(self, pytester: pytest.Pytester, api: DriftingAPI) -> None:
        path = self.setup_project(pytester, api)
        set_ages(path, [40, 2, 1])
        pytester.makeini("[pytest]\ntape_max_age = 30d\ntape_on_stale = warn\n")
        result = pytester.runpytest("-p", "no:cacheprovider")
        result.assert_outcomes(passed=1, warnings=1)
        result.stdout.fnmatch_lines(["*StaleCassetteWarning*(#0) were recorded more than max_age 30d ago*"])
        result = pytester.runpytest("-p", "no:cacheprovider", "--tape-on-stale=fail", "--tape-max-age=60d")
        result.assert_outcomes(passed=1)  # 40 days is within the command line's 60
        result = pytester.runpytest("-p", "no:cacheprovider", "--tape-on-stale=fail")
        result.assert_outcomes(errors=1)

    def test_a_bad_age_on_the_command_line(self, pytester: pytest.Pytester) -> None:
        pytester.makepyfile(test_x="def test_x():\n    pass\n")
        result = pytester.runpytest("--tape-max-age=soon")
        assert result.ret == pytest.ExitCode.USAGE_ERROR
        result.stderr.fnmatch_lines(["*--tape-max-age: 'soon' is not an age; use a number and a unit*"])


class TestLint:
    def lint(self, *args: str) -> tuple[int, list[str]]:
        result = CliRunner().invoke(main, ["lint", *args])
        return result.exit_code, result.output.splitlines()

    def test_one_line_per_old_interaction(self, api: DriftingAPI, tmp_path: Path) -> None:
        path = record(api, tmp_path / "story.yaml")
        set_ages(path, [1, 45, 2, 400])
        undated = tmp_path / "old.yaml"
        Cassette([dataclasses.replace(item, recorded=None) for item in Cassette.load(path).interactions[:2]]).save(
            undated
        )
        code, lines = self.lint(str(path), str(undated), "--max-age", "30d")
        assert code == 1
        aged = [line for line in lines if line.startswith("[age]")]
        assert len(aged) == 3
        assert re.fullmatch(rf"\[age\] {re.escape(str(path))}: interactions\[1\]: recorded 45 days ago \(.*Z\), older "
                            r"than --max-age 30d; re-record it \(pytest --tape-record-mode=rewrite-stale "
                            r"--tape-max-age=30d\)", aged[0])  # fmt: skip
        assert aged[1].startswith(f"[age] {path}: interactions[3]: recorded 400 days ago")
        assert aged[2] == (
            f"[age] {undated}: 2 of 2 interaction(s) (#0-1) have no 'recorded' time (recorded before streamtape "
            "dated recordings, or written by hand): their age is unknown; re-record them to date them"
        )
        assert lines[-1] == "2 cassette(s), 2 problem(s), 1 cassette(s) holding interactions of unknown age; see above"

    def test_unknown_age_alone_is_said_not_failed(self, tmp_path: Path) -> None:
        Cassette([interaction()]).save(tmp_path / "old.yaml")
        code, lines = self.lint(str(tmp_path), "--max-age", "2w")
        assert code == 0 and lines[0].startswith("[age]") and "age is unknown" in lines[0]
        code, lines = self.lint(str(tmp_path))
        assert code == 0 and lines == ["1 cassette(s), 0 problem(s)"]

    def test_a_bad_age(self, tmp_path: Path) -> None:
        code, lines = self.lint(str(tmp_path), "--max-age", "a while")
        assert code == 2 and lines == ["streamtape: --max-age: 'a while' is not an age; use a number and a unit, e.g. "
                                       "30d, 12h, 2w, 1w3d (s, m, h, d, w)"]  # fmt: skip
