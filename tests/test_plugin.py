"""The pytest plugin, as a downstream project uses it (a real pytest run through pytester)."""

from __future__ import annotations

from pathlib import Path

import pytest

from streamtape import Cassette, Interaction, Request, Response


@pytest.fixture
def cassette_dir(pytester: pytest.Pytester) -> Path:
    body = b'event: message_stop\ndata: {"type":"message_stop"}\n\n'
    response = Response(200, (("content-type", "text/event-stream"),), body, ((0.1, len(body)),))
    Cassette([Interaction(Request("GET", "http://api.test/v1/ping"), response)]).save(
        pytester.path / "cassettes" / "test_downstream" / "test_default_path.yaml"
    )
    return pytester.path


def test_marker_and_fixture_replay(pytester: pytest.Pytester, cassette_dir: Path) -> None:
    pytester.makepyfile(
        test_downstream="""
        import importlib, pytest
        from tests_support_stack import HTTP

        def test_default_path(tape):
            assert HTTP.get("http://api.test/v1/ping").text.startswith("event: message_stop")
            assert tape.all_played and tape.record_mode.value == "none"

        @pytest.mark.tape("cassettes/test_downstream/test_default_path.yaml")
        def test_explicit_path(tape):
            assert HTTP.get("http://api.test/v1/ping").status_code == 200

        @pytest.mark.tape("missing.yaml")
        def test_missing(tape):
            pass
        """,
        tests_support_stack="import importlib, anthropic\n"
        "HTTP = importlib.import_module('httpx2' if int(anthropic.__version__.split('.')[0]) >= 1 else 'httpx')\n",
    )
    result = pytester.runpytest("-p", "no:cacheprovider")
    result.assert_outcomes(passed=2, errors=1)
    result.stdout.fnmatch_lines(["*missing.yaml: no such cassette, and record mode 'none' never records*"])


def test_bad_marker_is_a_usage_error(pytester: pytest.Pytester) -> None:
    pytester.makepyfile(
        """
        import pytest

        @pytest.mark.tape("a.yaml", "b.yaml", speedy=2)
        def test_it(tape):
            pass
        """
    )
    result = pytester.runpytest()
    result.stdout.fnmatch_lines(["*@pytest.mark.tape takes at most one cassette path*"])
    assert result.ret != 0


def test_record_mode_option_is_validated(pytester: pytest.Pytester) -> None:
    result = pytester.runpytest("--tape-record-mode=sometimes")
    result.stderr.fnmatch_lines(["*invalid choice: 'sometimes'*"])
