"""The pytest plugin, as downstream projects use it: real pytest runs through pytester."""

from __future__ import annotations

import contextlib
import importlib
import os

import pytest

from streamtape import Cassette
from streamtape.plugin import PLACEHOLDER_KEY
from tests.support import sdk
from tests.support.builders import TEXT_BASIC as BODY  # 7 SSE events
from tests.support.builders import save
from tests.support.wire_server import WireServer, transcript

# pytester's in-process runs drop modules first imported inside a run, and httpx2 caches its map of
# httpcore2 exceptions on first use: import the HTTP cores here, so every run shares one of each (as
# any real process does).
for _core in ("httpcore2", "httpcore"):
    with contextlib.suppress(ImportError):
        importlib.import_module(_core)

HTTP_IMPORT = f"import importlib\nHTTP = importlib.import_module({sdk.STACK!r})\n"  # the stack the SDK runs on


@pytest.fixture(autouse=True)
def _clean_environment(monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.delenv("STREAMTAPE_RECORD_MODE", raising=False)
    monkeypatch.delenv("ANTHROPIC_API_KEY", raising=False)


class TestPaths:
    """Default cassette paths follow pytest-recording: <test dir>/cassettes/<module>/<[Class.]test>.yaml."""

    def test_default_and_explicit_paths(self, pytester: pytest.Pytester) -> None:
        save(pytester.path / "cassettes" / "test_paths" / "test_default.yaml", "http://api.test/v1/x")
        save(pytester.path / "cassettes" / "test_paths" / "TestGroup.test_method.yaml", "http://api.test/v1/x")
        save(pytester.path / "elsewhere.yaml", "http://api.test/v1/x")
        pytester.makepyfile(
            helper=HTTP_IMPORT,
            test_paths="""
            import pytest
            from helper import HTTP

            def test_default(tape):
                assert HTTP.post("http://api.test/v1/x", json={"a": 1}).status_code == 200

            class TestGroup:
                def test_method(self, tape):
                    assert tape.path.name == "TestGroup.test_method.yaml"
                    HTTP.post("http://api.test/v1/x", json={"a": 1})

            @pytest.mark.tape("elsewhere.yaml")
            def test_explicit(tape):
                HTTP.post("http://api.test/v1/x", json={"a": 1})
                assert tape.all_played

            @pytest.mark.parametrize("odd", ["a/b", "c:d*e"])
            def test_odd_names(tape, odd):
                pass
            """,
        )
        result = pytester.runpytest("-p", "no:cacheprovider")
        result.assert_outcomes(passed=3, errors=2)
        result.stdout.fnmatch_lines(
            [
                "*cassettes/test_paths/test_odd_names?a-b?.yaml: no such cassette*--tape-record-mode=once*",
                "*cassettes/test_paths/test_odd_names?c-d-e?.yaml: no such cassette*",
            ],
            consecutive=False,
        )

    def test_tape_dir_option_and_ini(self, pytester: pytest.Pytester) -> None:
        save(pytester.path / "tapes" / "test_dir" / "test_it.yaml", "http://api.test/v1/x")
        pytester.makepyfile(test_dir="def test_it(tape):\n    assert tape.path.parent.parent.name == 'tapes'\n")
        pytester.runpytest("--tape-dir", "tapes").assert_outcomes(passed=1)
        pytester.makeini("[pytest]\ntape_cassette_dir = tapes\n")
        pytester.runpytest().assert_outcomes(passed=1)


class TestRecordMode:
    """Precedence, resolved in one place: command line (or env) > marker > ini > default."""

    @pytest.mark.parametrize(
        ("args", "env", "ini", "expected"),
        [
            ([], None, None, "none"),
            ([], None, "once", "new_episodes"),  # the marker beats the ini
            (["--tape-record-mode=all"], None, "once", "all"),
            ([], "all", "once", "all"),
            (["--tape-record-mode=once"], "all", None, "once"),
        ],
        ids=["default", "marker-over-ini", "cli-over-marker", "env-over-marker", "cli-over-env"],
    )
    def test_precedence(self, pytester: pytest.Pytester, monkeypatch: pytest.MonkeyPatch,
                        args: list[str], env: str | None, ini: str | None, expected: str) -> None:  # fmt: skip
        if env:
            monkeypatch.setenv("STREAMTAPE_RECORD_MODE", env)
        if ini:
            pytester.makeini(f"[pytest]\ntape_record_mode = {ini}\n")
        save(pytester.path / "c.yaml", "http://api.test/v1/x")
        marker = "" if expected == "none" and not ini else '@pytest.mark.tape("c.yaml", record_mode="new_episodes")\n'
        path_marker = marker or '@pytest.mark.tape("c.yaml")\n'
        pytester.makepyfile(
            f"import pytest\n{path_marker}def test_it(tape):\n    assert tape.record_mode.value == {expected!r}\n"
        )
        pytester.runpytest(*args).assert_outcomes(passed=1)

    def test_invalid_values_list_the_valid_ones(self, pytester: pytest.Pytester) -> None:
        pytester.runpytest("--tape-record-mode=sometimes").stderr.fnmatch_lines(["*invalid choice: 'sometimes'*"])
        pytester.makepyfile('import pytest\n@pytest.mark.tape(record_mode="often")\ndef test_it(tape):\n    pass\n')
        result = pytester.runpytest()
        result.stdout.fnmatch_lines(["*'often' is not a record mode; valid: none, once, new_episodes, all*"])


class TestMarker:
    def test_bad_marker_is_a_usage_error(self, pytester: pytest.Pytester) -> None:
        pytester.makepyfile(
            'import pytest\n@pytest.mark.tape("a.yaml", "b.yaml", speedy=2)\ndef test_it(tape):\n    pass\n'
        )
        result = pytester.runpytest()
        result.stdout.fnmatch_lines(
            ["*@pytest.mark.tape takes at most one cassette path and the keywords cassette, faults*"]
        )
        assert result.ret != 0

    def test_faults_on_the_marker(self, pytester: pytest.Pytester) -> None:
        save(pytester.path / "c.yaml", "https://api.anthropic.com/v1/messages")
        pytester.makepyfile(
            """
            import anthropic, pytest

            @pytest.mark.tape("c.yaml", faults="rate_limit*2 -> ok", match_on=["path"])
            def test_retries(tape):
                client = anthropic.Anthropic(max_retries=2)  # no key in the environment: replay gives a placeholder
                with client.messages.stream(model="m", max_tokens=5, messages=[]) as stream:
                    assert stream.get_final_message().content[0].text == "Hello"
                assert [c.outcome for c in tape.calls] == ["429, complete", "429, complete", "200, complete"]
            """
        )
        pytester.runpytest().assert_outcomes(passed=1)


def test_placeholder_key_only_in_replay(pytester: pytest.Pytester) -> None:
    save(pytester.path / "c.yaml", "http://api.test/v1/x")
    pytester.makepyfile(
        f"""
        import os, pytest

        @pytest.mark.tape("c.yaml")
        def test_replay(tape):
            assert os.environ["ANTHROPIC_API_KEY"] == {PLACEHOLDER_KEY!r}

        @pytest.mark.tape("new.yaml", record_mode="once")
        def test_record(tape):
            assert "ANTHROPIC_API_KEY" not in os.environ

        def test_after():
            assert "ANTHROPIC_API_KEY" not in os.environ
        """
    )
    pytester.runpytest("-p", "no:randomly").assert_outcomes(passed=3)


class TestSweeps:
    def test_after_star_expands_over_every_event_boundary(self, pytester: pytest.Pytester) -> None:
        save(pytester.path / "c.yaml", "https://api.anthropic.com/v1/messages")
        pytester.makepyfile(
            helper=HTTP_IMPORT,
            test_after_star_expands_over_every_event_boundary="""
            import anthropic, pytest
            from helper import HTTP

            @pytest.mark.tape("c.yaml", match_on=["path"])
            @pytest.mark.tape_faults("disconnect:after=*", "rate_limit*3", "stall:after=2")
            def test_app_survives(tape, tape_fault):
                client = anthropic.Anthropic(max_retries=2)
                try:
                    with client.messages.stream(model="m", max_tokens=5, messages=[]) as stream:
                        stream.get_final_message()
                except (anthropic.APIError, HTTP.HTTPError, AssertionError):
                    pass  # the app under test would handle it; here: any fault, no hang, no harness error
                assert tape.calls and all(c.source == "replayed" for c in tape.calls)
                assert tape.calls[0].faults == ((tape_fault.split("*")[0]),)
            """,
        )
        result = pytester.runpytest("-v")
        result.assert_outcomes(passed=8 + 1 + 1)
        result.stdout.fnmatch_lines(["*test_app_survives?disconnect:after=0?*PASSED*",
                                     "*test_app_survives?disconnect:after=7?*PASSED*",
                                     "*test_app_survives?rate_limit?3?*PASSED*"])  # fmt: skip

    def test_at_byte_with_a_step(self, pytester: pytest.Pytester) -> None:
        save(pytester.path / "c.yaml", "http://api.test/v1/x")
        pytester.makepyfile(
            """
            import pytest

            @pytest.mark.tape("c.yaml")
            @pytest.mark.tape_faults("reset:at_byte=*/200")
            def test_it(tape, tape_fault):
                assert tape_fault.startswith("reset:at_byte=")
            """
        )
        pytester.runpytest().assert_outcomes(passed=len(range(0, len(BODY) + 1, 200)))

    def test_bad_spec_and_missing_cassette(self, pytester: pytest.Pytester) -> None:
        pytester.makepyfile(
            """
            import pytest

            @pytest.mark.tape("missing.yaml")
            @pytest.mark.tape_faults("disconnect:after=*")
            def test_unrecorded(tape):
                pass
            """,
            test_bad="""
            import pytest

            @pytest.mark.tape_faults("disconect:after=1")
            def test_typo(tape):
                pass
            """,
        )
        result = pytester.runpytest("test_bad_spec_and_missing_cassette.py")
        result.stdout.fnmatch_lines(
            ["*missing.yaml, which is not recorded yet, and record mode 'none' never records. Record it once: "
             "run with --tape-record-mode=once*"]
        )
        result.assert_outcomes(errors=1)
        result = pytester.runpytest("test_bad.py")
        result.stdout.fnmatch_lines(["*unknown fault 'disconect'; valid: refuse, reset, disconnect*"])


def test_strict_mode_names_what_was_never_played(pytester: pytest.Pytester) -> None:
    save(pytester.path / "c.yaml", "http://api.test/v1/a", "http://api.test/v1/b")
    pytester.makepyfile(
        HTTP_IMPORT
        + """
import pytest

@pytest.mark.tape("c.yaml")
def test_it(tape):
    HTTP.post("http://api.test/v1/a", json={"a": 1})
"""
    )
    pytester.runpytest().assert_outcomes(passed=1)
    result = pytester.runpytest("--tape-strict")
    result.assert_outcomes(passed=1, errors=1)
    result.stdout.fnmatch_lines(
        ["*1 recorded interaction(s) in *c.yaml were never played*", "*POST http://api.test/v1/b -> 200*"]
    )
    pytester.makeini("[pytest]\ntape_strict = true\n")
    pytester.runpytest().assert_outcomes(passed=1, errors=1)


def test_strict_mode_judges_a_shared_cassette_once_across_its_tests(pytester: pytest.Pytester) -> None:
    """Three tests share one cassette, each playing one interaction: none of them is at fault."""
    save(pytester.path / "c.yaml", "http://api.test/v1/a", "http://api.test/v1/b", "http://api.test/v1/c")
    pytester.makepyfile(
        HTTP_IMPORT
        + """
import pytest

@pytest.mark.tape("c.yaml")
@pytest.mark.parametrize("name", ["a", "b"])
def test_one(tape, name):
    HTTP.post(f"http://api.test/v1/{name}", json={"a": 1})

@pytest.mark.tape("c.yaml")
def test_last(tape):
    HTTP.post("http://api.test/v1/c", json={"a": 1})
"""
    )
    pytester.runpytest("--tape-strict", "-p", "no:randomly").assert_outcomes(passed=3)
    # one interaction nobody plays: the verdict comes once, with the last test, naming all three
    result = pytester.runpytest("--tape-strict", "-p", "no:randomly", "-k", "not test_last")
    result.assert_outcomes(passed=2, errors=1)
    result.stdout.fnmatch_lines(["*1 recorded interaction(s) in *c.yaml were never played by the 2 test(s)*",
                                 "*#2: POST http://api.test/v1/c -> 200*"])  # fmt: skip
    # under xdist the workers report what they played and the session judges once at the end
    result = pytester.runpytest("--tape-strict", "-n", "2", "-p", "no:randomly", "-k", "not test_last")
    result.assert_outcomes(passed=2)
    assert result.ret == 1
    result.stdout.fnmatch_lines(["*streamtape*", "*1 recorded interaction(s) in *c.yaml were never played*"])


def test_a_harness_error_shows_the_tests_lines_and_the_message_not_streamtapes_frames(
    pytester: pytest.Pytester,
) -> None:
    save(pytester.path / "c.yaml", "http://api.test/v1/a")
    pytester.makepyfile(
        HTTP_IMPORT
        + """
import pytest

@pytest.mark.tape("c.yaml")
def test_it():
    HTTP.post("http://api.test/v1/other", json={"a": 1})

@pytest.mark.tape("c.yaml", match_on=["colour"])
def test_bad_marker():
    pass
"""
    )
    result = pytester.runpytest("-p", "no:randomly")
    result.assert_outcomes(failed=1, errors=1)
    out = result.stdout.str()
    assert "No interaction in cassette" in out and 'HTTP.post("http://api.test/v1/other"' in out
    assert "streamtape/" not in out.replace("streamtape/tests", "") and "httpcore" not in out
    assert "During handling of the above exception" not in out
    # Once in the report: no repeat of it (the short summary, untruncated under CI=true, is apart).
    report = out.split("short test summary info")[0]
    assert report.count("unknown matcher 'colour'") == 1


def test_an_unmatched_request_fails_with_the_near_miss_report(pytester: pytest.Pytester) -> None:
    save(pytester.path / "c.yaml", "https://api.anthropic.com/v1/messages")
    pytester.makepyfile(
        """
        import anthropic, pytest

        @pytest.mark.tape("c.yaml")
        def test_it(tape):
            client = anthropic.Anthropic(max_retries=2)
            client.messages.create(model="other", max_tokens=5, messages=[])
        """
    )
    result = pytester.runpytest()
    result.assert_outcomes(failed=1)
    result.stdout.fnmatch_lines(["*UnmatchedRequestError: No interaction in cassette *c.yaml matches POST*",
                                 "*body.max_tokens: not recorded (sent 5)*"])  # fmt: skip
    result.stdout.no_fnmatch_line("*Connection error.*")


@pytest.mark.sdk
def test_downstream_project_records_then_replays_without_the_server(pytester: pytest.Pytester) -> None:
    """A downstream-style test file: recorded once from a real 127.0.0.1 server, then replayed with it gone."""
    with WireServer() as server:
        server.queue(transcript("thinking"))
        pytester.makepyfile(
            test_story=f"""
            import anthropic

            def stream_story(client):
                with client.messages.stream(model="claude-test", max_tokens=64,
                                            messages=[{{"role": "user", "content": "Write a story"}}]) as stream:
                    text = "".join(stream.text_stream)
                    return text, stream.get_final_message()

            def test_story(tape):
                client = anthropic.Anthropic(base_url={server.base_url!r})
                text, final = stream_story(client)
                assert text.startswith("1. **Pouch**") and final.stop_reason == "end_turn"
            """
        )
        os.environ["ANTHROPIC_API_KEY"] = "test-key-not-a-secret"
        try:
            pytester.runpytest("--tape-record-mode=once").assert_outcomes(passed=1)
        finally:
            del os.environ["ANTHROPIC_API_KEY"]
    cassette = pytester.path / "cassettes" / "test_story" / "test_story.yaml"
    assert cassette.exists() and "test-key-not-a-secret" not in cassette.read_text()
    assert len(server.requests) == 1
    pytester.runpytest().assert_outcomes(passed=1)  # server stopped, no key: replayed


@pytest.mark.sdk
def test_parallel_workers_never_lose_recordings(pytester: pytest.Pytester) -> None:
    """Under pytest-xdist, workers recording into one cassette all end up in it (new_episodes)."""
    pytest.importorskip("xdist")
    with WireServer() as server:
        server.queue(transcript("text_basic"))
        tests = "\n".join(
            f"@pytest.mark.tape('shared.yaml', record_mode='new_episodes')\n"
            f"def test_{i}(tape):\n    HTTP.post({server.base_url!r} + '/v1/messages', json={{'n': {i}}})\n"
            for i in range(8)
        )
        pytester.makepyfile(HTTP_IMPORT + "import pytest\n" + tests)
        result = pytester.runpytest_subprocess("-n", "2", "-p", "no:cacheprovider")
        result.assert_outcomes(passed=8)
    assert len(server.requests) == 8  # each test recorded its own request, once
    shared = pytester.path / "shared.yaml"
    cassette = Cassette.load(shared)
    assert sorted(item.request.json["n"] for item in cassette) == list(range(8))
    recorded = shared.read_bytes()
    pytester.runpytest_subprocess("-n", "2").assert_outcomes(passed=8)  # and replay in parallel, server gone
    assert shared.read_bytes() == recorded  # everything replayed: new_episodes had nothing to append


def test_names_are_safe_for_every_filesystem() -> None:
    from streamtape.plugin import _safe

    assert _safe('test_x[a/b:c*d?"e"<f>|g]') == "test_x[a-b-c-d--e--f--g]"  # as pytest-recording
    assert _safe("nul") == "_nul" and _safe("test. ") == "test" and len(_safe("x" * 300)) == 150


def test_tape_faults_and_marker_mistakes_fail_their_test_in_one_sentence_and_collection_goes_on(
    pytester: pytest.Pytester,
) -> None:
    """A mistake in a ``tape_faults`` sweep (its marker, its specs, a cassette it cannot read) fails that
    test at setup with one sentence; it never aborts collection with pluggy frames, and the other tests run."""
    (pytester.path / "cassettes").mkdir()
    (pytester.path / "notes.yaml").write_text("just: notes\n")
    pytester.makepyfile(
        """
        import pytest

        @pytest.mark.tape_faults("disconnect:after=*")
        @pytest.mark.tape("c.yaml", colour="red")
        def test_unknown_keyword(tape_fault):
            pass

        @pytest.mark.tape_faults(3)
        def test_not_a_spec(tape_fault):
            pass

        @pytest.mark.tape_faults("disconnect:after=*")
        @pytest.mark.tape("notes.yaml")
        def test_not_a_cassette(tape_fault):
            pass

        @pytest.mark.tape_faults("rechunk:every")
        @pytest.mark.tape("cassettes")
        def test_a_directory(tape_fault):
            pass

        @pytest.mark.tape("c.yaml", colour="red")
        def test_plain_marker_mistake():
            pass

        def test_unaffected():
            pass
        """
    )
    result = pytester.runpytest("-p", "no:randomly")
    result.assert_outcomes(passed=1, errors=5)
    out = result.stdout.str()
    assert "pluggy/" not in out and "streamtape/plugin.py" not in out and "Interrupted" not in out
    assert "During handling of the above exception" not in out
    result.stdout.fnmatch_lines([
        "*test_unknown_keyword: @pytest.mark.tape takes at most one cassette path and the keywords*'colour'*",
        "*test_not_a_spec: @pytest.mark.tape_faults takes one or more fault spec strings*got (3,)",
        "*test_not_a_cassette: @pytest.mark.tape_faults: *notes.yaml: *",
        "*test_a_directory: @pytest.mark.tape_faults: *cassettes: cannot read*",
        "*test_plain_marker_mistake: @pytest.mark.tape takes at most one cassette path*'colour'*",
    ])  # fmt: skip
