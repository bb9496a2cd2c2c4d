"""``streamtape drift``: a cassette recorded from a local API, re-sent after the API changed its wire
format (a new event type, a renamed field, a new header, changed error bodies, a status change), and
after it did not. Drift must report each change exactly, nothing else, and never lose a recorded
failure."""

from __future__ import annotations

import json
import re
import subprocess
import sys
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import anthropic
import pytest
from click.testing import CliRunner

import streamtape
from streamtape import Cassette, Interaction
from streamtape.cli import main
from streamtape.drift import check, compare, drift_path
from streamtape.wire import Cut
from tests.support import sdk
from tests.support.builders import interaction
from tests.support.drifting_api import DriftingAPI

PROMPT = [{"role": "user", "content": "Write a story"}]
KEY = "sk-ant-api03-" + "k3y" * 30  # shaped like a real key: the redactor knows the shape too


@pytest.fixture(autouse=True)
def _no_key(monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.delenv("ANTHROPIC_API_KEY", raising=False)


def record(api: DriftingAPI, path: Path) -> None:
    """What an app records through the SDK: a stream, a 404, an in-stream overload, a JSON message,
    and a stream with ``legacy_option`` (which version 2 refuses)."""
    with streamtape.use_cassette(path, record_mode="once"), sdk.client(api.base_url) as client:
        with client.messages.stream(model="claude-test", max_tokens=64, messages=PROMPT) as stream:
            assert "Hello" in "".join(stream.text_stream)
        with pytest.raises(anthropic.NotFoundError):
            client.messages.create(model="claude-nope", max_tokens=64, messages=PROMPT, stream=True)
        with pytest.raises(anthropic.APIStatusError, match="Overloaded"):
            with client.messages.stream(model="claude-overloaded", max_tokens=64, messages=PROMPT) as stream:
                stream.get_final_message()
        assert client.messages.create(model="claude-test", max_tokens=64, messages=PROMPT).content
        for _ in client.messages.create(model="claude-test", max_tokens=64, messages=PROMPT, stream=True,
                                        extra_body={"legacy_option": True}):  # fmt: skip
            pass


def drift(*args: str) -> tuple[int, str]:
    result = CliRunner().invoke(main, ["drift", *args])
    return result.exit_code, result.output


@pytest.fixture
def recorded(tmp_path: Path) -> Iterator[tuple[DriftingAPI, Path]]:
    api = DriftingAPI(version=1)
    with api:
        path = tmp_path / "story.yaml"
        record(api, path)
        yield api, path


def changes(report: dict[str, Any], index: int) -> list[tuple[str, str, Any, Any]]:
    item = report["cassettes"][0]["interactions"][index]
    return sorted((c["kind"], c["where"], c.get("old"), c.get("new")) for c in item["changes"])


class TestDrift:
    def test_each_change_of_the_wire_format_is_reported_exactly(self, recorded: tuple[DriftingAPI, Path]) -> None:
        api, path = recorded
        before = path.read_bytes()
        api.version = 2
        code, output = drift(str(path), "--base-url", api.base_url, "--json")
        assert code == 1, output
        report = json.loads(output)
        assert report["drifted"] is True
        states = [item["state"] for item in report["cassettes"][0]["interactions"]]
        assert states == ["drifted", "not re-checkable", "drifted", "drifted", "drifted"]
        # the stream: the new header, the new event type, the renamed field; nothing else (ids, text,
        # request-id, rate-limit counters and Date all changed too: values and volatile headers)
        assert changes(report, 0) == [
            ("event_added", "content_block_annotation", None, "content_block_annotation"),
            ("field_renamed", "content_block_delta", "delta(text_delta).text", "delta(text_delta).content"),
            ("header_added", "", None, "x-api-feature"),
        ]
        # the recorded 404 is a real failure: kept, never re-sent
        reason = report["cassettes"][0]["interactions"][1]["reason"]
        assert "404 not_found_error" in reason and "never re-sent" in reason
        assert all(json.loads(body or b"{}").get("model") != "claude-nope" for _, _, body in api.requests[5:])
        # the in-stream error's body changed
        assert changes(report, 2) == [
            ("field_added", "error", None, "error(overloaded_error).details"),
            ("header_added", "", None, "x-api-feature"),
        ]
        # the JSON message gained a field
        assert changes(report, 3) == [
            ("field_added", "body", None, "service_tier"),
            ("header_added", "", None, "x-api-feature"),
        ]
        # the request version 2 refuses: the status, and what the error body now says
        status, shape = report["cassettes"][0]["interactions"][4]["changes"]
        assert (status["kind"], status["old"], status["new"]) == ("status", 200, 400)
        assert shape["kind"] == "error_body" and shape["new"]["type"] == "invalid_request_error"
        assert shape["new"]["fields"] == ["type", "error.type", "error.message", "request_id"]
        # the cassette is untouched; the fresh answers are beside it, the kept failure as it was
        assert path.read_bytes() == before
        fresh = Cassette.load(drift_path(path))
        old = Cassette.load(path)
        assert fresh.interactions[1] == old.interactions[1]
        assert b"annotation" in fresh.interactions[0].body and b"annotation" not in old.interactions[0].body
        assert fresh.interactions[0].recorded is not None

    def test_the_text_report_says_it_in_one_line_each(self, recorded: tuple[DriftingAPI, Path]) -> None:
        api, path = recorded
        api.version = 2
        code, output = drift(str(path), "--base-url", api.base_url)
        assert code == 1
        lines = output.splitlines()
        assert lines[0] == f"{path} -> {drift_path(path)}"
        assert "    header appeared: x-api-feature" in lines
        assert "    event type added: content_block_annotation (after content_block_delta)" in lines
        assert ("    content_block_delta: field renamed: delta(text_delta).text -> delta(text_delta).content (string)"
                in lines)  # fmt: skip
        assert "    error: field added: error(overloaded_error).details (object)" in lines
        assert "    body: field added: service_tier (string)" in lines
        assert "    status 200 -> 400" in lines
        assert "    error body invalid_request_error: type, error.type, error.message, request_id" in lines
        assert any(line.startswith("  #1 POST") and "not re-checkable (a recorded 404" in line for line in lines)
        assert lines[-1].startswith("1 cassette(s): structure drifted: ")

    def test_no_drift_when_only_values_changed(self, recorded: tuple[DriftingAPI, Path]) -> None:
        api, path = recorded
        api.text = "Something else entirely, {n}"
        code, output = drift(str(path), "--base-url", api.base_url, "--json")
        assert code == 0, output
        report = json.loads(output)
        states = [item["state"] for item in report["cassettes"][0]["interactions"]]
        assert states == ["same", "not re-checkable", "same", "same", "same"]
        assert Cassette.load(drift_path(path)).interactions[0].body != Cassette.load(path).interactions[0].body

    def test_out_directory(self, recorded: tuple[DriftingAPI, Path], tmp_path: Path) -> None:
        api, path = recorded
        code, _ = drift(str(path), "--base-url", api.base_url, "--out", str(tmp_path / "fresh"))
        assert code == 0
        assert (tmp_path / "fresh" / "story.yaml").is_file() and not drift_path(path).exists()

    def test_the_key_is_sent_and_never_written(
        self, recorded: tuple[DriftingAPI, Path], monkeypatch: pytest.MonkeyPatch
    ) -> None:
        api, path = recorded
        monkeypatch.setenv("ANTHROPIC_API_KEY", KEY)
        code, output = drift(str(path), "--base-url", api.base_url)
        assert code == 0, output
        sent = [headers for _, headers, _ in api.requests[5:]]
        assert sent and all(headers.get("x-api-key") == KEY for headers in sent)
        assert KEY not in drift_path(path).read_text() and KEY not in output

    def test_a_local_recording_needs_no_base_url_and_no_key(self, recorded: tuple[DriftingAPI, Path]) -> None:
        api, path = recorded
        code, output = drift(str(path))  # recorded from 127.0.0.1: re-sent there, with a placeholder key
        assert code == 0, output

    def test_no_key_goes_where_it_was_not_sent(self, tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> None:
        monkeypatch.setenv("ANTHROPIC_API_KEY", KEY)
        path = tmp_path / "other.yaml"
        body = b'{"id": "x", "type": "message"}'
        Cassette(
            [interaction("https://example.test/v1/other", body, headers=(("content-type", "application/json"),))]
        ).save(path)
        with DriftingAPI() as api:
            code, output = drift(str(path), "--base-url", api.base_url)
            ((_, headers, _),) = api.requests
        assert code == 1, output  # the local API answers a whole message: fields were added
        assert "x-api-key" not in {name.lower() for name in headers}

    def test_the_real_command(self, recorded: tuple[DriftingAPI, Path]) -> None:
        api, path = recorded
        api.version = 2
        result = subprocess.run([sys.executable, "-m", "streamtape", "drift", str(path), "--base-url", api.base_url,
                                 "--json"], capture_output=True, text=True, timeout=120)  # fmt: skip
        assert result.returncode == 1, result.stderr
        assert json.loads(result.stdout)["drifted"] is True


class TestNotRecheckable:
    def test_a_recorded_cut_and_error_are_kept_and_never_sent(self, tmp_path: Path) -> None:
        cut = interaction(end=Cut("fin", None, 0.5))
        refused = Interaction(cut.request, error=Cut("refused", None, 0.1))
        path = tmp_path / "failures.yaml"
        Cassette([cut, refused]).save(path)
        code, output = drift(str(path), "--base-url", "http://127.0.0.1:9", "--json")
        assert code == 0, output  # nothing re-checkable, nothing sent (port 9 would refuse)
        items = json.loads(output)["cassettes"][0]
        assert items["out"] is None and not drift_path(path).exists()
        assert [item["state"] for item in items["interactions"]] == ["not re-checkable"] * 2
        assert "cut mid-body (fin" in items["interactions"][0]["reason"]
        assert "connection failure before any response (refused)" in items["interactions"][1]["reason"]

    def test_no_answer_is_not_drift(self, tmp_path: Path) -> None:
        path = tmp_path / "story.yaml"
        Cassette([interaction()]).save(path)
        code, output = drift(str(path), "--base-url", "http://127.0.0.1:9")  # nothing listens on port 9
        assert code == 2
        assert "failed (no answer from 127.0.0.1:9" in output
        assert Cassette.load(drift_path(path)).interactions == Cassette.load(path).interactions  # kept as it was


class TestBadInput:
    @pytest.mark.parametrize(
        ("args", "message"),
        [
            (["missing.yaml"], "missing.yaml: no such file or directory"),
            (["bad.yaml"], "bad.yaml: line 1"),
            (["story.yaml"], "set ANTHROPIC_API_KEY (it is sent, never written), or pass --base-url URL"),
            (["story.yaml", "--base-url", "ftp://x"], "--base-url 'ftp://x' is not an http(s) URL"),
        ],
    )
    def test_one_sentence_and_exit_2(
        self, args: list[str], message: str, tmp_path: Path, monkeypatch: pytest.MonkeyPatch
    ) -> None:
        monkeypatch.chdir(tmp_path)
        (tmp_path / "bad.yaml").write_text("just: text\n")
        Cassette([interaction(url="https://api.anthropic.com/v1/messages")]).save(tmp_path / "story.yaml")
        result = CliRunner().invoke(main, ["drift", *args])
        assert result.exit_code == 2
        assert message in result.output and "Traceback" not in result.output
        assert len(result.output.strip().splitlines()) == 1
        assert not (tmp_path / "story.drift.yaml").exists()


class TestCompare:
    """The structural diff alone."""

    def stream(self, *events: dict[str, Any], headers: tuple[tuple[str, str], ...] = ()) -> Interaction:
        body = b"".join(f"event: {e['type']}\ndata: {json.dumps(e)}\n\n".encode() for e in events)
        return interaction(body=body, headers=(("content-type", "text/event-stream"), *headers))

    def test_order_types_and_null(self) -> None:
        old = self.stream({"type": "a", "n": 1, "s": None}, {"type": "b"}, {"type": "c", "x": "1"})
        new = self.stream({"type": "a", "n": "1", "s": "now text"}, {"type": "c", "x": "2"}, {"type": "b"})
        kinds = [(c.kind, c.where) for c in compare(old, new)]
        assert kinds == [("event_order", ""), ("field_type", "a")]  # null -> text is not a change of type

    def test_repeated_events_are_one_step_of_the_order(self) -> None:
        old = self.stream({"type": "a"}, {"type": "d"}, {"type": "d"}, {"type": "z"})
        new = self.stream({"type": "a"}, *[{"type": "d"}] * 7, {"type": "z"})
        assert compare(old, new) == []

    def test_variants_and_volatile_headers(self) -> None:
        old = self.stream({"type": "d", "delta": {"type": "text_delta", "text": "x"}},
                          headers=(("request-id", "1"), ("Date", "x"), ("x-ratelimit-remaining", "5")))  # fmt: skip
        new = self.stream({"type": "d", "delta": {"type": "citations_delta", "citation": {"url": "u"}}},
                          headers=(("request-id", "2"), ("Vanished-Not", "y")))  # fmt: skip
        found = {(c.kind, str(c)) for c in compare(old, new)}
        assert found == {
            ("header_added", "header appeared: Vanished-Not"),
            ("variant_added", "d: new variant citations_delta of delta"),
            ("variant_removed", "d: variant text_delta of delta no longer seen"),
        }


def test_every_change_kind_reads_as_one_line() -> None:
    old = interaction(body=b'{"a": 1}', headers=(("content-type", "application/json"),))
    new = interaction(body=b"plain", headers=(("content-type", "text/plain"),))
    assert [str(c) for c in compare(old, new)] == [
        "content-type application/json -> text/plain",
        "body: JSON -> not JSON",
    ]


def test_drift_beside_and_in_a_folder(tmp_path: Path) -> None:
    assert drift_path(tmp_path / "a.yaml") == tmp_path / "a.drift.yaml"
    assert drift_path(tmp_path / "a.yaml", tmp_path / "out") == tmp_path / "out" / "a.yaml"
    with pytest.raises(streamtape.ConfigError, match="would overwrite the cassette itself"):
        Cassette([interaction()]).save(tmp_path / "a.yaml")
        check(tmp_path / "a.yaml", base_url="http://127.0.0.1:9", out_dir=tmp_path)


class TestSdkDrift:
    """scripts/sdk_drift.py: the starters through the installed SDK, against the fidelity table."""

    ROOT = Path(__file__).resolve().parent.parent

    def run(self, *args: str) -> subprocess.CompletedProcess[str]:
        return subprocess.run([sys.executable, "scripts/sdk_drift.py", "--starter", "text", "--starter", "rate_limited",
                               "--json", *args], cwd=self.ROOT, capture_output=True, text=True, timeout=300)  # fmt: skip

    def test_the_committed_table_holds(self) -> None:
        result = self.run()
        assert result.returncode == 0, result.stdout + result.stderr
        report = json.loads(result.stdout)
        assert report["compared"] > 50 and report["differences"] == []

    def test_a_behaviour_that_moved_is_named(self, tmp_path: Path) -> None:
        table = self.ROOT / "docs" / "fidelity" / f"{sdk.STACK}.md"
        moved = table.read_text().replace("| `disconnect:after=4` | `anthropic.APIConnectionError`",
                                          "| `disconnect:after=4` | `anthropic.APITimeoutError`", 1)  # fmt: skip
        if moved == table.read_text():  # the 0.x SDK lets the stack's error escape
            moved = re.sub(r"(\| `disconnect:after=4` \| )`[^`]+`", r"\1`anthropic.APITimeoutError`", moved, count=1)
        (tmp_path / "table.md").write_text(moved)
        result = self.run("--table", str(tmp_path / "table.md"))
        assert result.returncode == 1
        differences = json.loads(result.stdout)["differences"]
        assert {(d["starter"], d["spec"]) for d in differences} == {("text", "disconnect:after=4")}
        assert differences[0]["table"].startswith("anthropic.APITimeoutError")
