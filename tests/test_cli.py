"""The streamtape command, run as a user runs it: a subprocess, checking output and exit codes."""

from __future__ import annotations

import itertools
import json
import subprocess
import sys
from pathlib import Path

import pytest

from streamtape import Cassette
from streamtape.wire import Cut
from tests.support.builders import SSE, save
from tests.support.builders import TEXT_BASIC as BODY


def streamtape(*args: str, cwd: Path | None = None) -> subprocess.CompletedProcess[str]:
    return subprocess.run(
        [sys.executable, "-m", "streamtape", *args], capture_output=True, text=True, timeout=120, cwd=cwd
    )


class TestInspect:
    def test_a_starter_as_text(self) -> None:
        result = streamtape("inspect", "starter:thinking")
        assert result.returncode == 0 and result.stderr == ""
        out = result.stdout
        assert "#0  POST https://api.anthropic.com/v1/messages" in out
        assert "content_block_delta 9" in out and "output 133" in out and "stop_reason end_turn" in out
        assert "timeline" in out and "█" in out
        assert "\033[" not in out  # no colour in a pipe

    def test_json_for_machines(self, tmp_path: Path) -> None:
        path = save(tmp_path / "c.yaml", "https://h/v1/messages", body=BODY[:658], request_body=b'{"model":"m"}',
                    timing=((0.4, 490), (0.45, 168)), reason="OK", headers_at=0.3,
                    end=Cut("RemoteProtocolError", "peer closed connection", 0.5))  # fmt: skip
        report = json.loads(streamtape("inspect", str(path), "--json").stdout)
        item = report["interactions"][0]
        assert item["events"] == {"message_start": 1, "content_block_start": 1, "ping": 1}
        assert item["first_event_at"] == 0.4 and item["ended"] == "cut: RemoteProtocolError peer closed connection"
        assert item["request"]["model"] == "m"

    def test_a_missing_file_is_one_sentence(self) -> None:
        result = streamtape("inspect", "nope.yaml")
        assert result.returncode == 2 and result.stdout == ""
        assert result.stderr == "streamtape: nope.yaml: no such cassette file\n"


class TestLint:
    def test_clean_cassettes(self) -> None:
        result = streamtape("lint", "cassettes")
        starters = len(list(Path("cassettes").glob("*/*.yaml")))  # every provider's starters
        assert starters >= 39
        assert result.returncode == 0 and f"{starters} cassette(s), 0 problem(s)" in result.stdout

    def test_problems_are_named(self, tmp_path: Path) -> None:
        broken = BODY.replace(b"event: message_start", b"event: message_begin", 1)
        save(tmp_path / "bad.yaml", body=broken)
        (tmp_path / "torn.yaml").write_text("version: 1\ninteractions: [\n")
        result = streamtape("lint", str(tmp_path))
        assert result.returncode == 1
        assert f"[sse] {tmp_path / 'bad.yaml'}: interactions[0]: the first event is 'message_begin'" in result.stdout
        assert "named 'message_begin' but its data says type 'message_start'" in result.stdout
        assert f"[schema] {tmp_path / 'torn.yaml'}: line 3, column 1: not valid YAML" in result.stdout

    def test_fix_removes_secrets_atomically(self, tmp_path: Path) -> None:
        path = tmp_path / "leaky.yaml"
        save(path, headers=(*SSE, ("set-cookie", "session=1"), ("anthropic-organization-id", "org-1")))
        text = path.read_text()
        fake_key = "sk-" + "ant-api03-" + "fake" * 4  # shaped like a key for lint to find; assembled so that no
        # committed line looks like a real credential to secret scanners
        path.write_text(text.replace("headers:\n", f"headers:\n      x-api-key: {fake_key}\n", 1))
        assert "x-api-key" in path.read_text()
        before = streamtape("lint", str(path))
        assert before.returncode == 1 and "[secret]" in before.stdout and "--fix" in before.stdout
        fixed = streamtape("lint", "--fix", str(path))
        assert "fixed 2 problem(s)" in fixed.stdout and fixed.returncode == 0  # the key, and the line count
        assert "sk-ant" not in path.read_text() and Cassette.load(path).interactions[0].body == BODY

    @pytest.mark.parametrize("args", [[], ["missing-dir"]])
    def test_usage_errors(self, args: list[str]) -> None:
        result = streamtape("lint", *args)
        assert result.returncode == 2 and "Traceback" not in result.stderr


def test_the_command_line_loads_no_sdk_or_http_stack() -> None:
    """``streamtape --help`` and every command's parsing stay fast: the SDK and the HTTP stacks are
    imported by the command that needs them, when it runs."""
    code = ("import sys, streamtape.cli\n"
            "print(sorted(streamtape.cli.main.commands))\n"
            "print(sorted({name.split('.')[0] for name in sys.modules} & "
            "{'anthropic', 'openai', 'httpx2', 'httpx', 'httpcore2', 'httpcore'}))")  # fmt: skip
    result = subprocess.run([sys.executable, "-c", code], capture_output=True, text=True, timeout=120)
    assert result.returncode == 0, result.stderr
    commands, loaded = result.stdout.splitlines()
    assert commands == str(["demo", "drift", "import", "inspect", "lint", "play", "record", "serve", "synth"])
    assert loaded == "[]"


def test_help_has_examples_and_exit_codes() -> None:
    for command in ("inspect", "lint", "demo"):
        result = streamtape(command, "--help")
        assert result.returncode == 0 and "Example" in result.stdout and "Exit codes" in result.stdout


class TestServe:
    """`streamtape serve` as a subprocess, driven by the real SDK and by a raw socket client."""

    def start(self, *args: str) -> tuple[subprocess.Popen[str], str]:
        process = subprocess.Popen([sys.executable, "-m", "streamtape", "serve", *args],
                                   stdout=subprocess.PIPE, stderr=subprocess.PIPE, text=True)  # fmt: skip
        line = process.stdout.readline() if process.stdout else ""
        assert " at http://127.0.0.1:" in line, (line, process.stderr.read() if process.stderr else "")
        return process, line.rsplit(" at ", 1)[1].strip()

    def stop(self, process: subprocess.Popen[str]) -> str:
        import signal

        process.send_signal(signal.SIGINT)
        out, _ = process.communicate(timeout=30)
        return out

    def test_the_sdk_meets_a_socket_level_disconnect(self) -> None:
        from tests.support import sdk

        starter = Cassette.load(Path("cassettes/anthropic/thinking.yaml")).interactions[0]
        params = {k: v for k, v in starter.request.json.items() if k != "stream"}
        process, url = self.start("starter:thinking", "--speed", "0", "--fault", "disconnect:after=13")
        try:
            outcome = sdk.consume(url, "text_stream", **params)
            assert "RemoteProtocolError" in sdk.raised(outcome.error)
            assert outcome.text.startswith("1. **Pouch**") and outcome.final is None  # cut: no final message
            unrecorded = sdk.consume(url, "text_stream", **{**params, "model": "claude-unrecorded"})
            # what the SDK makes of the server's answer to a request no interaction matches
            assert unrecorded.status == 404 and unrecorded.error is not None
            assert unrecorded.error[0].endswith(".NotFoundError") and unrecorded.text == ""
        finally:
            out = self.stop(process)
        assert "stopped" in out
        # one line per request: what it matched, the faults, what it met (and the 404s, by what they asked)
        assert "POST /v1/messages -> #0: 200, then RemoteProtocolError [disconnect:after=13]" in out, out
        assert "POST /v1/messages -> 404, matches no interaction" in out

    def test_a_raw_socket_client(self) -> None:
        import socket

        starter = Cassette.load(Path("cassettes/anthropic/text.yaml")).interactions[0]
        body = starter.request.body
        process, url = self.start("cassettes/anthropic", "--speed", "0")
        try:
            host, port = url.removeprefix("http://").split(":")
            with socket.create_connection((host, int(port)), timeout=10) as raw:
                head = (
                    "POST /v1/messages HTTP/1.1\r\nHost: x\r\nContent-Type: application/json\r\n"
                    f"Connection: close\r\nContent-Length: {len(body)}\r\n\r\n"
                )
                raw.sendall(head.encode() + body)
                received = b""
                while chunk := raw.recv(65536):
                    received += chunk
            assert received.startswith(b"HTTP/1.1 200 OK\r\n")
            assert b"transfer-encoding: chunked" in received.lower() and b"event: message_stop" in received
        finally:
            self.stop(process)

    def test_bad_fault_spec_is_one_sentence(self) -> None:
        result = streamtape("serve", "starter:text", "--fault", "disconect")
        assert (
            result.returncode == 2 and "unknown fault 'disconect'" in result.stderr and "Traceback" not in result.stderr
        )


class TestPlay:
    def test_each_attempt_its_faults_and_back_off_and_events_counted_as_inspect_counts(self) -> None:
        result = streamtape("play", "starter:text", "--speed", "0", "--fault", "rate_limit*2 -> ok")
        lines = [line for line in result.stdout.splitlines() if line.startswith("streamtape: attempt")]
        assert [line.split(": ", 2)[2] for line in lines] == [
            "429, complete [rate_limit]", "429, complete [rate_limit]", "200, complete"
        ]
        assert "back-off" in lines[1] and "back-off" in lines[2]
        events = len(Cassette.load(Path("cassettes/anthropic/text.yaml")).interactions[0].events)
        assert f"streamtape: {events} events, stop_reason end_turn" in result.stdout
        cut = streamtape("play", "starter:thinking", "--speed", "0", "--fault", "disconnect:after=13")
        assert "streamtape: 13 events, then " in cut.stdout  # the fault's position, in the same events

    def test_a_clean_stream_states_the_stop_reason(self) -> None:
        result = streamtape("play", "starter:tool_use", "--speed", "0")
        assert result.returncode == 0
        assert '[tool call: get_weather] {"city": "San Francisco"}' in result.stdout
        assert "stop_reason tool_use, 394 tokens in, 79 out" in result.stdout

    def test_a_fault_says_whether_the_docs_would_catch_it(self) -> None:
        result = streamtape("play", "starter:thinking", "--speed", "0", "--fault", "disconnect:after=13")
        assert result.returncode == 1 and result.stdout.count("1. **Pouch**") == 1
        assert ("RemoteProtocolError: NOT caught by the docs' except clauses" in result.stdout
                or "APIConnectionError: the docs' `except anthropic.APIConnectionError` catches it" in result.stdout)
        overload = streamtape("play", "starter:overloaded_in_stream", "--speed", "0")
        assert 'printed as "API error: 200" - an in-stream error, reported as status 200' in overload.stdout

    def test_bad_interaction_number(self) -> None:
        result = streamtape("play", "starter:text", "--interaction", "3")
        assert result.returncode == 2 and "--interaction 3, but the cassette has 1 (0..0)" in result.stderr

    def test_a_fault_past_the_end_names_the_cassette_given_not_plays_copy(self) -> None:
        result = streamtape("play", "starter:bedrock/text", "--speed", "0", "--fault", "disconnect:after=99")
        assert result.returncode == 2 and "Traceback" not in result.stderr
        assert result.stderr == ("streamtape: starter:bedrock/text: interaction #0: fault 'disconnect:after=99' asks "
                                 "for after=99, but the longest response it applies to has 33 frames; use after=0..33\n")  # fmt: skip

    def test_a_recorded_request_the_sdk_will_not_send_is_an_input_error_not_the_apps(self, tmp_path: Path) -> None:
        """A Messages request without max_tokens (recorded by another client, or imported from vcrpy): the SDK
        refuses it before sending, which is not what the app would meet."""
        save(tmp_path / "c.yaml", "https://api.anthropic.com/v1/messages")
        cassette = Cassette.load(tmp_path / "c.yaml")
        item = cassette.interactions[0]
        request = type(item.request)(item.request.method, item.request.url, item.request.headers,
                                     b'{"model": "m", "messages": [], "stream": true}')  # fmt: skip
        Cassette([type(item)(request, item.response)]).save(tmp_path / "c.yaml")
        result = streamtape("play", "c.yaml", "--speed", "0", cwd=tmp_path)
        assert result.returncode == 2 and result.stderr.count("\n") == 1, result.stderr
        assert result.stderr.startswith("streamtape: c.yaml: interaction #0: the anthropic SDK will not send the "
                                        "recorded request (TypeError: ")  # fmt: skip


@pytest.mark.sdk
class TestRecord:
    def run(self, tmp_path: Path, base_url: str, *args: str, key: str | None = "test-key-not-a-secret"):  # type: ignore[no-untyped-def]
        import os

        env = {k: v for k, v in os.environ.items() if k not in ("ANTHROPIC_API_KEY", "ANTHROPIC_BASE_URL")}
        if key:
            env["ANTHROPIC_API_KEY"] = key
        command = [
            sys.executable,
            "-m",
            "streamtape",
            "record",
            str(tmp_path / "out.yaml"),
            "--base-url",
            base_url,
            *args,
        ]
        return subprocess.run(command, capture_output=True, text=True, timeout=120, env=env)

    def test_records_a_stream_live_with_a_summary(self, tmp_path: Path) -> None:
        from tests.support.wire_server import WireServer, transcript

        with WireServer() as server:
            server.queue(transcript("thinking"))
            result = self.run(tmp_path, server.base_url, "--prompt", "Name a pelican", "--thinking")
            assert server.requests[0].json()["thinking"] == {"type": "adaptive"}
            assert server.requests[0].json()["model"] == "claude-sonnet-5-5"
        assert result.returncode == 0, result.stderr
        assert "1. **Pouch**" in result.stdout and "stop_reason end_turn, 46 tokens in, 133 out" in result.stdout
        assert "3463 bytes saved to" in result.stdout
        saved = Cassette.load(tmp_path / "out.yaml").interactions[0]
        assert saved.request.json["messages"][0]["content"] == "Name a pelican" and len(saved.events) == 17
        assert "test-key-not-a-secret" not in (tmp_path / "out.yaml").read_text()

    def test_a_broken_connection_is_one_sentence_and_still_saved(self, tmp_path: Path) -> None:
        from tests.support.wire_server import WireServer, transcript

        with WireServer() as server:
            server.queue(transcript("text_basic", fin_after=4))
            result = self.run(tmp_path, server.base_url, "--prompt", "hi")
        assert result.returncode == 1 and "Traceback" not in result.stderr
        assert "4 events, then " in result.stdout and "saved to" in result.stdout
        assert Cassette.load(tmp_path / "out.yaml").interactions[0].response.end.error == "RemoteProtocolError"

    def test_an_http_error_is_saved(self, tmp_path: Path) -> None:
        from tests.support.wire_server import WireServer, error_reply

        with WireServer() as server:
            server.queue(error_reply("http_429_rate_limit"))
            result = self.run(tmp_path, server.base_url, "--prompt", "hi")
        assert result.returncode == 1 and "then RateLimitError: " in result.stdout and "429" in result.stdout
        assert Cassette.load(tmp_path / "out.yaml").interactions[0].response.status == 429

    def test_an_output_it_cannot_or_must_not_write_is_refused_before_the_call(self, tmp_path: Path) -> None:
        (tmp_path / "notes.txt").write_text("mine\n")
        for out, said in [("notes.txt/story.yaml", "is a file, not a directory"),
                          ("notes.txt", "exists and is not a streamtape cassette")]:  # fmt: skip
            result = subprocess.run([sys.executable, "-m", "streamtape", "record", str(tmp_path / out), "--prompt", "hi",
                                     "--base-url", "http://127.0.0.1:9"], capture_output=True, text=True, timeout=120,
                                    env={"ANTHROPIC_API_KEY": "k", "PATH": ""})  # fmt: skip
            assert result.returncode == 2 and result.stdout == "" and said in result.stderr, result.stderr
            assert result.stderr.count("\n") == 1  # before any call: nothing was refused by the network
        assert (tmp_path / "notes.txt").read_text() == "mine\n"

    def test_a_missing_key(self, tmp_path: Path) -> None:
        result = self.run(tmp_path, "http://127.0.0.1:9", "--prompt", "hi", key=None)
        assert result.returncode == 2
        assert (
            result.stderr
            == "streamtape: ANTHROPIC_API_KEY is not set; export your key to record (replay never needs one)\n"
        )


def test_serve_never_reads_outside_its_directory(tmp_path: Path) -> None:
    """A symlink inside the served directory that points outside it is not served."""
    served, outside = tmp_path / "served", tmp_path / "outside"
    served.mkdir()
    outside.mkdir()
    save(outside / "secret.yaml")
    (served / "link.yaml").symlink_to(outside / "secret.yaml")
    result = streamtape("serve", str(served))
    assert result.returncode == 2 and "no *.yaml or *.yml cassettes in this directory" in result.stderr


def test_a_body_edited_by_hand_is_repaired_by_lint_fix(tmp_path: Path) -> None:
    """Editing a recorded body by hand is a supported workflow (docs/cassette-format.md)."""
    path = tmp_path / "story.yaml"
    assert streamtape("synth", str(path), "--text", "Hello there, this is a story").returncode == 0
    text = path.read_text()
    path.write_text(text.replace('"text":"a story"}', '"text":"a long story"}'))
    before = streamtape("lint", str(path))
    assert before.returncode == 1 and "chunk sizes add up to" in before.stdout and "--fix" in before.stdout
    fixed = streamtape("lint", "--fix", str(path))
    assert fixed.returncode == 0 and "fixed 1 problem(s)" in fixed.stdout
    item = Cassette.load(path).interactions[0]
    assert b"a long story" in item.body and sum(size for _, size in item.response.timing) == len(item.body)
    played = streamtape("play", str(path), "--speed", "0")
    assert "Hello there, this is a long story" in played.stdout
    # and a line deleted as well: both repaired in one go
    lines = path.read_text().replace('"text":"a long story"}', '"text":"a story"}').splitlines(keepends=True)
    path.write_text("".join(line for line in lines if not line.startswith("# ")))
    assert "fixed 2 problem(s)" in streamtape("lint", "--fix", str(path)).stdout
    assert streamtape("lint", str(path)).returncode == 0


@pytest.mark.parametrize("provider", ["anthropic", "openai", "bedrock"])
def test_lint_fix_keeps_every_chunk_boundary_on_an_event_boundary(tmp_path: Path, provider: str) -> None:
    """After a hand edit in the middle of a stream, the chunks keep their recorded times and still end
    where events end (SSE events, AWS frames): those before the edit where they were, those after moved by
    what the edit added, not all the added bytes put into the last chunk."""
    from streamtape.framing import framer_for

    path = tmp_path / "s.yaml"
    made = streamtape("synth", str(path), "--provider", provider, "--text", "Hello there, this is a story",
                      "--chunk-timing", "headers=0.1,first=0.1,per_event=0.05,jitter=0")  # fmt: skip
    assert made.returncode == 0, made.stderr
    before = Cassette.load(path).interactions[0]
    text = path.read_text()
    assert text.count("this is a story") == 1 or "a story" in text
    path.write_text(text.replace("a story", "a much longer story", 1))
    assert streamtape("lint", "--fix", str(path)).returncode == 0
    after = Cassette.load(path).interactions[0]
    assert after.body != before.body and len(after.body) > len(before.body)
    ends = set(framer_for(after.response.headers).event_ends(after.body))
    boundaries = list(itertools.accumulate(size for _, size in after.response.timing))
    assert boundaries[-1] == len(after.body) and set(boundaries) <= ends | {len(after.body)}
    assert [at for at, _ in after.response.timing] == [at for at, _ in before.response.timing]
    assert max(size for _, size in after.response.timing) < len(after.body) // 2  # not one big last chunk
