"""``streamtape import``: cassettes that vcrpy itself wrote, here and now, over a real HTTP server on
127.0.0.1 streaming the Anthropic corpus, become streamtape cassettes that the real SDK replays with
the same events, with no secret left in them and a report of what could not be carried over.

vcrpy patches httpx2 (since 8.2), httpx, requests/urllib3 and aiohttp, so the recordings below are
made through the SDK itself (httpx2 under anthropic >= 1, httpx under 0.x), plain httpx, requests and
aiohttp, with vcrpy's YAML and JSON serializers, and in pytest-recording's layout.
"""

from __future__ import annotations

import asyncio
import json
import subprocess
import sys
from io import BytesIO
from pathlib import Path
from typing import Any

import aiohttp
import anthropic
import httpx
import pytest
import requests
import vcr
import vcr.request
import vcr.serialize
from vcr.serializers import jsonserializer, yamlserializer

import streamtape
from streamtape import Cassette
from streamtape.errors import CassetteFormatError
from streamtape.importer import TIMING_NOTE, AlreadyStreamtapeError, convert, import_cassette
from streamtape.lint import lint_file
from streamtape.wire import End
from tests.support import sdk
from tests.support.wire_server import WireServer, transcript

pytestmark = pytest.mark.sdk

#: shaped like an Anthropic key, so that lint would find it too; assembled so no scanner flags this file
KEY = "sk-ant-" + "api03-" + "importTEST" * 4
STREAM = {**sdk.PARAMS, "stream": True}


def streamtape_cli(*args: str, cwd: Path | None = None) -> subprocess.CompletedProcess[str]:
    return subprocess.run(
        [sys.executable, "-m", "streamtape", *args], capture_output=True, text=True, timeout=120, cwd=cwd
    )


def sdk_client(base_url: str, api_key: str = KEY) -> anthropic.Anthropic:
    return anthropic.Anthropic(base_url=base_url, api_key=api_key, max_retries=0)


def record_sdk(cassette: Path, reply: Any, style: str = "events", **vcr_options: Any) -> tuple[sdk.Outcome, str]:
    """The SDK streams ``reply`` from a real server while vcrpy records; returns what the app saw and
    the recorded base URL (the server is gone afterwards)."""
    with WireServer() as server:
        server.queue(reply)
        with vcr.use_cassette(str(cassette), record_mode="all", **vcr_options), sdk_client(server.base_url) as client:
            outcome = sdk._consume(client, style, sdk.PARAMS)
        assert not server.errors
    assert outcome.error is None, outcome.error
    return outcome, server.base_url


def replay(cassette: Path, base_url: str, style: str = "events") -> sdk.Outcome:
    """The SDK against the imported cassette, in process: the recorded server no longer exists."""
    with streamtape.use_cassette(cassette) as tape, sdk_client(base_url, api_key="replay-needs-no-key") as client:
        outcome = sdk._consume(client, style, sdk.PARAMS)
    assert tape.all_played
    return outcome


def assert_no_secret(path: Path, *values: str) -> None:
    text = path.read_text(encoding="utf-8")
    for value in (KEY, *values):
        assert value not in text
    assert "x-api-key" not in text.lower() and "authorization" not in text.lower()
    assert not [problem for problem in lint_file(path) if problem.kind == "secrets"]


class TestRecordedByVcrpy:
    """The same stream through vcrpy and then through the imported cassette: the app cannot tell."""

    @pytest.mark.parametrize("style", ["events", "text_stream", "create"])
    def test_sdk_stream_in_yaml(self, tmp_path: Path, style: str) -> None:
        recorded, base_url = record_sdk(tmp_path / "story.yaml", transcript("thinking"), style)
        conversion = import_cassette(tmp_path / "story.yaml")
        out = tmp_path / "story.streamtape.yaml"
        replayed = replay(out, base_url, style)
        assert (replayed.text, replayed.events, replayed.final) == (recorded.text, recorded.events, recorded.final)
        assert replayed.events or replayed.text
        item = Cassette.load(out).interactions[0]
        assert item.response is not None and item.response.timing == ((0.0, len(item.body)),)
        assert item.response.end == End(0.0)
        assert_no_secret(out)
        assert conversion.notes[0] == TIMING_NOTE
        credentials = next(note for note in conversion.notes if note.startswith("credentials removed"))
        for header in ("set-cookie", "anthropic-organization-id"):  # what the real API sent, kept by vcrpy
            assert repr(header) in credentials

    def test_gzip_stream_stored_compressed_by_vcrpy(self, tmp_path: Path) -> None:
        recorded, base_url = record_sdk(tmp_path / "gz.yaml", transcript("text_multi_delta", gzip=True))
        assert "!!binary" in (tmp_path / "gz.yaml").read_text()  # vcrpy kept the gzip bytes
        conversion = import_cassette(tmp_path / "gz.yaml", tmp_path / "out.yaml")
        item = Cassette.load(tmp_path / "out.yaml").interactions[0]
        assert item.body.startswith(b"event: message_start") and item.response is not None
        assert not {"content-encoding", "content-length"} & {name.lower() for name, _ in item.response.headers}
        assert "interaction #0: the gzip body is stored decoded; Content-Encoding and Content-Length dropped" in (
            conversion.notes
        )
        assert [event.event for event in item.events][-1] == "message_stop"  # faults by event work on it
        replayed = replay(tmp_path / "out.yaml", base_url)
        assert (replayed.events, replayed.final) == (recorded.events, recorded.final)

    def test_plain_httpx_in_json(self, tmp_path: Path) -> None:
        with WireServer() as server:
            server.queue(transcript("tool_use"))
            with vcr.use_cassette(str(tmp_path / "tool.json"), serializer="json", record_mode="all"):
                with httpx.Client() as http, http.stream(
                    "POST", f"{server.base_url}/v1/messages", json=STREAM, headers={"x-api-key": KEY}
                ) as response:  # fmt: skip
                    raw = response.read()
        assert json.loads((tmp_path / "tool.json").read_text())["version"] == 1
        result = streamtape_cli("import", str(tmp_path / "tool.json"))
        assert result.returncode == 0 and result.stderr == "", result.stderr
        out = tmp_path / "tool.streamtape.yaml"
        assert result.stdout.startswith(f"{tmp_path / 'tool.json'} -> {out}: 1 interaction(s)\n")
        assert f"  - {TIMING_NOTE}\n" in result.stdout
        assert "  - credentials removed, with their values wherever they appeared: the request header 'x-api-key'" in (
            result.stdout
        )
        assert Cassette.load(out).interactions[0].body == raw
        assert_no_secret(out)
        replayed = replay(out, server.base_url)  # the SDK sends the same JSON body: it matches
        assert replayed.error is None and replayed.final["content"][-1]["type"] == "tool_use"

    def test_a_key_the_response_echoed_is_removed_everywhere(self, tmp_path: Path) -> None:
        reply = transcript("text_basic")
        reply.events = [
            event.replace(b'"text":"Hello"', f'"text":"Your key is {KEY}"'.encode()) for event in reply.events
        ]
        recorded, base_url = record_sdk(tmp_path / "echo.yaml", reply, "text_stream")
        assert recorded.text == f"Your key is {KEY}" and KEY in (tmp_path / "echo.yaml").read_text()
        conversion = import_cassette(tmp_path / "echo.yaml")
        out = tmp_path / "echo.streamtape.yaml"
        assert_no_secret(out)
        assert replay(out, base_url, "text_stream").text == "Your key is REDACTED"  # chunk sizes still add up
        assert "interaction #0: a secret in the response body was replaced by REDACTED" in conversion.notes

    def test_requests_and_aiohttp_are_named_in_the_report(self, tmp_path: Path) -> None:
        async def with_aiohttp(url: str) -> bytes:
            async with aiohttp.ClientSession() as session, session.post(url, json=STREAM) as response:
                return await response.read()

        with WireServer() as server:
            server.queue(transcript("text_basic"), transcript("text_basic", gzip=True))
            url = f"{server.base_url}/v1/messages"
            with vcr.use_cassette(str(tmp_path / "mixed.yaml"), record_mode="all"):
                by_requests = requests.post(url, json=STREAM, headers={"x-api-key": KEY}, timeout=30).content
                by_aiohttp = asyncio.run(with_aiohttp(url))
        conversion = convert(tmp_path / "mixed.yaml")
        lines = "\n".join(conversion.notes)
        assert "interaction #0 was recorded by requests (says its User-Agent)" in lines
        # vcrpy's aiohttp stub records no User-Agent, and the app's json= value instead of the bytes sent
        assert "interaction #1 was recorded by aiohttp (its request body is the app's json= or data= value" in lines
        assert "interaction #1: the request body was recorded as the app's json= or data= value (aiohttp)" in lines
        assert "streamtape replays requests too (its urllib3 stack)" in lines  # both clients now replay
        assert "streamtape replays aiohttp too (its aiohttp stack)" in lines and "NetworkBlockedError" not in lines
        # aiohttp hands vcrpy the body decoded, but keeps 'Content-Encoding: gzip' in the headers
        assert "interaction #1: the body was stored already decoded (as aiohttp and vcrpy < 6 record it)" in lines
        assert KEY not in conversion.cassette.dumps()
        first, second = conversion.cassette.interactions
        assert (first.body, second.body) == (by_requests, by_aiohttp) == (transcript("text_basic").body,) * 2
        assert first.request.json == second.request.json == STREAM  # what an httpx request must send to match
        assert second.response is not None and not any(
            name.lower() == "content-encoding" for name, _ in second.response.headers
        )


class TestPytestRecordingLayout:
    """A pytest-recording project: ``<test dir>/cassettes/<module>/<test>.yaml``, vcr_config filtering the
    authorization header. Imported with ``--out``, the same layout works with ``--tape-dir``."""

    def test_migrated_suite_passes(self, tmp_path: Path, pytester: pytest.Pytester) -> None:
        library = tmp_path / "tests" / "cassettes"
        # what pytest-recording's `vcr` fixture builds for test_chat.py::test_story with
        # vcr_config = {"filter_headers": ["authorization"]} and --record-mode=once
        recorder = vcr.VCR(
            cassette_library_dir=str(library / "test_chat"),
            path_transformer=vcr.VCR.ensure_suffix(".yaml"),
            record_mode="once",
            filter_headers=["authorization"],
        )
        with WireServer() as server:
            server.queue(transcript("thinking"), transcript("tool_use"))
            with recorder.use_cassette("test_story"), sdk_client(server.base_url) as client:
                story = sdk._consume(client, "text_stream", sdk.PARAMS)
            with recorder.use_cassette("TestTools.test_weather"), sdk_client(server.base_url) as client:
                tools = sdk._consume(client, "final", {**sdk.PARAMS, "max_tokens": 99})
        assert sorted(p.name for p in (library / "test_chat").iterdir()) == [
            "TestTools.test_weather.yaml",
            "test_story.yaml",
        ]
        before = {p: p.read_bytes() for p in (library / "test_chat").iterdir()}

        result = streamtape_cli("import", str(library), "--out", str(tmp_path / "tape-cassettes"))
        assert result.returncode == 0, result.stderr
        assert result.stdout.endswith("2 imported\n")
        assert {p: p.read_bytes() for p in (library / "test_chat").iterdir()} == before  # the originals are untouched
        for name in ("test_story.yaml", "TestTools.test_weather.yaml"):
            assert_no_secret(tmp_path / "tape-cassettes" / "test_chat" / name)

        pytester.makepyfile(
            test_chat=f"""
            import anthropic, pytest

            def client():
                return anthropic.Anthropic(base_url={server.base_url!r}, max_retries=0)

            @pytest.mark.tape
            def test_story(tape):
                with client().messages.stream(**{sdk.PARAMS!r}) as stream:
                    assert "".join(stream.text_stream) == {story.text!r}
                assert tape.all_played

            class TestTools:
                @pytest.mark.tape
                def test_weather(self):
                    with client().messages.stream(**{{**{sdk.PARAMS!r}, "max_tokens": 99}}) as stream:
                        final = stream.get_final_message()
                    assert final.content[-1].type == "tool_use"
                    assert final.content[-1].input == {tools.final["content"][-1]["input"]!r}
            """
        )
        outcome = pytester.runpytest("-p", "no:randomly", f"--tape-dir={tmp_path / 'tape-cassettes'}")
        outcome.assert_outcomes(passed=2)


class TestShapes:
    """What vcrpy's serializers write for the bodies and stubs a live test cannot easily reach, made with
    vcrpy's own serializer (``vcr.serialize.serialize``), or as its older stubs wrote them."""

    @staticmethod
    def vcrpy_file(path: Path, requests_: list[Any], responses: list[dict[str, Any]], json_form: bool = False) -> Path:
        serializer = jsonserializer if json_form else yamlserializer
        path.write_text(vcr.serialize.serialize({"requests": requests_, "responses": responses}, serializer))
        return path

    @staticmethod
    def response(body: Any, headers: dict[str, list[str]] | None = None, code: int = 200) -> dict[str, Any]:
        return {"status": {"code": code, "message": "OK"}, "headers": headers or {}, "body": {"string": body}}

    def test_file_and_iterator_request_bodies_and_binary_responses(self, tmp_path: Path) -> None:
        uri = "https://api.example.com/upload"
        path = self.vcrpy_file(
            tmp_path / "c.yaml",
            [
                vcr.request.Request("POST", uri, BytesIO(b"file contents"), {"content-type": "text/plain"}),
                vcr.request.Request("POST", uri, iter([b"one,", b"two"]), {}),
                vcr.request.Request("GET", uri, None, {}),
            ],
            [self.response(b"\xff\xfe binary\r\n"), self.response(None), self.response("")],
        )
        text = path.read_text()
        assert "_io.BytesIO" in text and "builtins.iter" in text and "!!binary" in text
        conversion = convert(path)
        first, second, third = conversion.cassette.interactions
        assert (first.request.body, second.request.body, third.request.body) == (b"file contents", b"one,two", b"")
        assert first.body == b"\xff\xfe binary\r\n" and second.body == third.body == b""
        assert "interaction #0: the response body is not UTF-8 text with plain line ends, so it is stored escaped" in (
            "\n".join(conversion.notes)
        )
        import_cassette(path, tmp_path / "out.yaml")
        assert "encoding: escaped" in (tmp_path / "out.yaml").read_text()
        assert Cassette.load(tmp_path / "out.yaml").interactions[0].body == b"\xff\xfe binary\r\n"

    def test_anchors_and_aliases_vcrpy_writes(self, tmp_path: Path) -> None:
        # vcrpy's dumper writes one response object met twice as an anchor and an alias
        request = vcr.request.Request("POST", "http://h/v1/messages", b"{}", {"User-Agent": "python-httpx/0.28"})
        path = self.vcrpy_file(tmp_path / "c.yaml", [request] * 2, [self.response("same answer")] * 2)
        assert "&id001" in path.read_text() and "*id001" in path.read_text()
        cassette = convert(path).cassette
        assert [item.body for item in cassette] == [b"same answer"] * 2
        assert "&id" not in cassette.dumps()

    def test_the_httpx_stub_before_vcrpy_6(self, tmp_path: Path) -> None:
        # as vcrpy's own test cassette gzip_httpx_old_format.yaml: decoded content, gzip still in the headers
        document = {
            "version": 1,
            "interactions": [
                {
                    "request": {
                        "body": "",
                        "headers": {"user-agent": ["python-httpx/0.23.0"]},
                        "method": "GET",
                        "uri": "https://httpbin.org/gzip",
                    },
                    "response": {
                        "content": '{"gzipped": true}\n',
                        "headers": {
                            "Content-Encoding": ["gzip"],
                            "Content-Length": ["230"],
                            "Content-Type": ["application/json"],
                        },
                        "http_version": "HTTP/1.1",
                        "status_code": 200,
                    },
                }
            ],
        }
        (tmp_path / "old.yaml").write_text(yamlserializer.serialize(document))
        conversion = convert(tmp_path / "old.yaml")
        item = conversion.cassette.interactions[0]
        assert item.response is not None and (item.response.status, item.body) == (200, b'{"gzipped": true}\n')
        assert item.response.headers == (("Content-Type", "application/json"),)
        assert conversion.notes == [
            TIMING_NOTE,
            "interaction #0: the body was stored already decoded (as aiohttp and vcrpy < 6 record it), though its "
            "headers say gzip: kept as it is, Content-Encoding and Content-Length dropped",
        ]

    def test_deflate_length_metadata_and_unknown_encodings(self, tmp_path: Path) -> None:
        import zlib

        uri = "http://127.0.0.1:9/v1/messages"
        path = self.vcrpy_file(
            tmp_path / "c.yaml",
            [vcr.request.Request("POST", uri, b'{"a": 1}', {"User-Agent": "python-httpx/0.28"})] * 3,
            [
                self.response(zlib.compress(b"deflated text"), {"content-encoding": ["deflate"]}),
                self.response("edited by filter_sensitive_data", {"Content-Length": ["999"]}),
                self.response(b"\x8b\x01br-bytes", {"Content-Encoding": ["br"]}),
            ],
        )
        text = path.read_text()
        path.write_text(text + "metadata:\n  run: 7\n")
        conversion = convert(path)
        deflated, edited, brotli = conversion.cassette.interactions
        assert deflated.body == b"deflated text" and edited.response is not None and brotli.response is not None
        assert ("Content-Length", str(len(edited.body))) in edited.response.headers
        assert ("Content-Encoding", "br") in brotli.response.headers and brotli.body == b"\x8b\x01br-bytes"
        lines = "\n".join(conversion.notes)
        assert "interaction #0: the deflate body is stored decoded" in lines
        assert "interaction #1: Content-Length said 999 bytes but the body has 31" in lines
        assert "interaction #2: the response body is compressed (br), which streamtape does not decode" in lines
        assert "the cassette's metadata ('run') is not carried over" in lines

    def test_a_header_value_vcrpy_kept_is_cleaned_everywhere(self, tmp_path: Path) -> None:
        secret = "Bearer " + "tok" * 8
        path = self.vcrpy_file(
            tmp_path / "c.json",
            [
                vcr.request.Request(
                    "GET", "https://h.example/a?api_key=qwertyuiop123&x=1", None, {"Authorization": secret}
                )
            ],
            [
                self.response(
                    f'{{"echo": "{secret}", "url": "/a?api_key=qwertyuiop123"}}',
                    {"Set-Cookie": ["s=cookievalue1234; Path=/"]},
                )
            ],
            json_form=True,
        )
        conversion = convert(path)
        item = conversion.cassette.interactions[0]
        assert item.request.url == "https://h.example/a?api_key=REDACTED&x=1"
        dumped = conversion.cassette.dumps()
        for value in ("tok" * 8, "qwertyuiop123", "cookievalue1234"):
            assert value not in dumped
        assert "credentials removed, with their values wherever they appeared: the request header 'authorization'; " \
               "the response header 'set-cookie'" in conversion.notes  # fmt: skip


BAD_INPUTS: dict[str, tuple[str | bytes, str]] = {
    "not-a-cassette.yaml": ("name: my app\nversion: 3\n", "not a vcrpy cassette: expected 'version: 1'"),
    "torn.yaml": ("version: 1\ninteractions: [\n", "not valid YAML (line 3, column 1: "),
    "garbage.json": ('{"version": 1, "interactions": [', "not valid JSON ("),
    "binary.yaml": (b"\x89PNG\r\n\x1a\n\x00\xff", "not UTF-8 text (byte 0), so not a vcrpy cassette"),
    "empty.yaml": ("\n", "the file is empty (vcrpy treats an empty cassette as not recorded); nothing to import"),
    "ancient.yaml": (
        "- request: {body: null, headers: {}, method: GET, uri: 'http://h/'}\n  response: {status: {code: 200}}\n",
        "written by vcrpy before 1.0 (a list without 'version'); convert it with vcrpy's own "
        "'python -m vcr.migration FILE' first",
    ),
    "newer.yaml": (
        "version: 3\ninteractions: []\n",
        "vcrpy cassette format version 3; streamtape import reads version 1",
    ),
    "hostile.yaml": (
        "version: 1\ninteractions:\n- request: !!python/object/apply:os.system ['touch PWNED']\n",
        "line 3, column 12: holds the YAML tag '!!python/object/apply:os.system', which vcrpy's own cassettes never "
        "need; streamtape never builds Python objects from a file",
    ),
    "no-status.yaml": (
        "version: 1\ninteractions:\n- request: {method: GET, uri: 'http://h/', body: null, headers: {}}\n"
        "  response: {headers: {}, body: {string: ''}}\n",
        "interaction #0: the response's status code is None, not an HTTP status (100-999); nothing was imported",
    ),
}


class TestTheCommand:
    @pytest.mark.parametrize("name", BAD_INPUTS)
    def test_bad_input_is_one_sentence(self, tmp_path: Path, name: str) -> None:
        content, expected = BAD_INPUTS[name]
        path = tmp_path / name
        path.write_bytes(content if isinstance(content, bytes) else content.encode())
        result = streamtape_cli("import", name, cwd=tmp_path)
        assert result.returncode == 2 and result.stdout == ""
        assert result.stderr.startswith(f"streamtape: {name}: {expected}")
        assert result.stderr.count("\n") == 1 and "Traceback" not in result.stderr
        assert sorted(p.name for p in tmp_path.iterdir()) == [name]  # nothing written, nothing run

    def test_usage_errors(self, tmp_path: Path) -> None:
        (tmp_path / "dir").mkdir()
        (tmp_path / "dir" / "notes.txt").write_text("hello")
        for args, expected in [
            (["missing.yaml"], "missing.yaml: no such file or directory; give vcrpy cassette files or directories"),
            (["dir"], "dir: no *.yaml, *.yml or *.json files in this directory"),
            (
                ["dir", "-o", "x.yaml", "--out", "o"],
                "give --out DIR (several cassettes) or -o FILE (one cassette), not both",
            ),
        ]:
            result = streamtape_cli("import", *args, cwd=tmp_path)
            assert (result.returncode, result.stdout) == (2, "")
            assert result.stderr.startswith(f"streamtape: {expected}") and result.stderr.count("\n") == 1

    def test_a_streamtape_cassette_is_not_imported_again(self, tmp_path: Path) -> None:
        streamtape.Cassette.load(streamtape.starter("text")).save(tmp_path / "story.yaml")
        result = streamtape_cli("import", "story.yaml", cwd=tmp_path)
        assert result.returncode == 2
        assert result.stderr == (
            "streamtape: story.yaml: already a streamtape cassette: use it as it is, there is nothing to import\n"
        )
        with pytest.raises(AlreadyStreamtapeError):
            convert(tmp_path / "story.yaml")

    def test_never_overwrites(self, tmp_path: Path) -> None:
        source = TestShapes.vcrpy_file(
            tmp_path / "c.yaml", [vcr.request.Request("GET", "http://h/", None, {})], [TestShapes.response("hi")]
        )
        original = source.read_bytes()
        first = streamtape_cli("import", "c.yaml", cwd=tmp_path)
        assert first.returncode == 0 and first.stdout.startswith("c.yaml -> c.streamtape.yaml: 1 interaction(s)\n")
        out = tmp_path / "c.streamtape.yaml"
        written = out.read_bytes()

        again = streamtape_cli("import", "c.yaml", cwd=tmp_path)
        assert again.returncode == 2 and again.stderr == (
            "streamtape: c.yaml: not imported: c.streamtape.yaml already exists (a streamtape cassette); "
            "add --force to replace it\n"
        )
        assert out.read_bytes() == written
        forced = streamtape_cli("import", "c.yaml", "--force", cwd=tmp_path)
        assert forced.returncode == 0 and Cassette.load(out).interactions[0].body == b"hi"

        (tmp_path / "notes.yaml").write_text("my notes\n")
        for args in (["-o", "notes.yaml"], ["-o", "notes.yaml", "--force"], ["--out", ".", "--force"]):
            result = streamtape_cli("import", "c.yaml", *args, cwd=tmp_path)
            assert result.returncode == 2 and result.stdout == "" and result.stderr.count("\n") == 1, args
            if args[0] == "-o":
                assert "notes.yaml exists and is not a streamtape cassette; streamtape import never replaces other " \
                       "files, even with --force" in result.stderr  # fmt: skip
            else:  # --out . names c.yaml itself
                assert "not imported: the output would replace this vcrpy cassette itself" in result.stderr
        assert (tmp_path / "notes.yaml").read_text() == "my notes\n" and source.read_bytes() == original
        named = streamtape_cli("import", "c.yaml", "-o", "sub/named.yaml", cwd=tmp_path)
        assert named.returncode == 0 and named.stdout.startswith("c.yaml -> sub/named.yaml: 1 interaction(s)\n")
        assert Cassette.load(tmp_path / "sub" / "named.yaml").interactions[0].body == b"hi"

    def test_a_directory(self, tmp_path: Path) -> None:
        library = tmp_path / "cassettes"
        request = vcr.request.Request("GET", "http://h/", None, {})
        (library / "test_a").mkdir(parents=True)
        TestShapes.vcrpy_file(library / "test_a" / "one.yaml", [request], [TestShapes.response("1")])
        TestShapes.vcrpy_file(library / "test_a" / "two.yml", [request], [TestShapes.response("2")])
        (library / "test_b").mkdir()
        TestShapes.vcrpy_file(library / "test_b" / "three.json", [request], [TestShapes.response("3")], json_form=True)
        streamtape.Cassette.load(streamtape.starter("text")).save(library / "test_b" / "already.yaml")
        (library / "test_b" / "config.json").write_text('{"not": "a cassette"}')

        result = streamtape_cli("import", "cassettes", "--out", "tapes", cwd=tmp_path)
        assert result.returncode == 2  # config.json could not be imported; everything else was
        assert result.stderr == (
            "streamtape: cassettes/test_b/config.json: not a vcrpy cassette: expected 'version: 1' and a list of "
            "'interactions', each a 'request' and a 'response'\n"
        )
        assert "skipped cassettes/test_b/already.yaml: already a streamtape cassette\n" in result.stdout
        assert result.stdout.endswith("3 imported, 1 skipped, 1 failed\n")
        bodies = {
            str(path.relative_to(tmp_path / "tapes")): Cassette.load(path).interactions[0].body
            for path in sorted((tmp_path / "tapes").rglob("*"))
            if path.is_file()
        }
        assert bodies == {"test_a/one.yaml": b"1", "test_a/two.yaml": b"2", "test_b/three.yaml": b"3"}

        beside = streamtape_cli("import", "cassettes/test_a", cwd=tmp_path)
        assert beside.returncode == 0
        assert sorted(p.name for p in (library / "test_a").iterdir()) == [
            "one.streamtape.yaml", "one.yaml", "two.streamtape.yaml", "two.yml",
        ]  # fmt: skip
        rerun = streamtape_cli("import", "cassettes/test_a", cwd=tmp_path)  # the outputs are found, and skipped
        assert rerun.returncode == 2 and rerun.stdout.count("already a streamtape cassette") == 2
        assert rerun.stderr.count("add --force to replace it") == 2

        several = streamtape_cli("import", "cassettes", "-o", "one.yaml", cwd=tmp_path)
        assert several.returncode == 2 and "-o names one output file, but" in several.stderr

    def test_help(self) -> None:
        result = streamtape_cli("import", "--help")
        assert result.returncode == 0 and "--out DIR" in result.stdout and "-o FILE" in result.stdout


def test_convert_names_the_interaction(tmp_path: Path) -> None:
    path = tmp_path / "c.yaml"
    path.write_text(
        "version: 1\ninteractions:\n- request: {method: GET, uri: 'not a url', body: null, headers: {}}\n"
        "  response: {status: {code: 200, message: OK}, headers: {}, body: {string: ''}}\n"
    )
    with pytest.raises(CassetteFormatError, match=r"interaction #0: the request's uri 'not%20a%20url' is not an abs"):
        convert(path)


class TestOtherProviders:
    """vcrpy cassettes of the other providers' SDKs: an openai-shaped recording replays through the openai SDK,
    and a Bedrock event stream vcrpy recorded through boto3 (a binary body) through boto3."""

    @pytest.mark.parametrize("api, name", [("chat", "text_with_usage"), ("responses", "text")])
    def test_openai_recorded_by_vcrpy_replays_through_the_openai_sdk(self, tmp_path: Path, api: str, name: str) -> None:
        from tests.support import openai_sdk

        with WireServer() as server:
            server.queue(openai_sdk.transcript(api, name))
            with vcr.use_cassette(str(tmp_path / "vcr.yaml"), record_mode="all"):
                recorded = openai_sdk.consume(server.base_url, api)
        assert recorded.error is None and recorded.text
        conversion = import_cassette(tmp_path / "vcr.yaml", tmp_path / "tape.yaml")
        assert "test-key-not-a-secret" in (tmp_path / "vcr.yaml").read_text()  # vcrpy kept the Bearer key
        assert_no_secret(tmp_path / "tape.yaml", "test-key-not-a-secret")
        assert "credentials removed, with their values wherever they appeared: the request header 'authorization'" in (
            "\n".join(conversion.notes)
        )
        with streamtape.use_cassette(tmp_path / "tape.yaml", faults="rate_limit -> ok") as tape:
            replayed = openai_sdk.consume(server.base_url, api, options={"max_retries": 1})
        assert (replayed.text, replayed.events) == (recorded.text, recorded.events)
        assert [call.outcome for call in tape.calls] == ["429, complete", "200, complete"]

    def test_bedrock_event_stream_recorded_by_vcrpy_through_boto3(self, tmp_path: Path) -> None:
        boto3 = pytest.importorskip("boto3")
        from tests.support.eventstream_server import BedrockServer, converse_stream

        def converse(base_url: str) -> list[Any]:
            client = boto3.client("bedrock-runtime", endpoint_url=base_url, region_name="us-east-1",
                                  aws_access_key_id="AKIAZ7STREAMTAPEVCR1",
                                  aws_secret_access_key="vcrSecretKeyNotReal0123456789abcdefghijk")  # fmt: skip
            try:
                response = client.converse_stream(modelId="us.amazon.nova-micro-v1:0",
                                                  messages=[{"role": "user", "content": [{"text": "Hi"}]}])  # fmt: skip
                return list(response["stream"])
            finally:
                client.close()

        with BedrockServer() as server:
            server.queue(converse_stream())
            with vcr.use_cassette(str(tmp_path / "vcr.yaml"), record_mode="all"):
                recorded = converse(server.base_url)
        assert "!!binary" in (tmp_path / "vcr.yaml").read_text() and len(recorded) > 3
        conversion = import_cassette(tmp_path / "vcr.yaml", tmp_path / "tape.yaml")
        text = (tmp_path / "tape.yaml").read_text()
        assert "AKIAZ7STREAMTAPEVCR1" not in text and "encoding: eventstream" in text
        assert "interaction #0 was recorded by boto3 (says its User-Agent); streamtape replays boto3 too" in (
            "\n".join(conversion.notes)
        )
        assert ("interaction #0: the response body is an AWS event stream: stored one decoded frame per entry "
                "(encoding: eventstream; still byte-exact)") in conversion.notes  # fmt: skip
        assert not any("stored escaped" in note for note in conversion.notes)
        with streamtape.use_cassette(tmp_path / "tape.yaml") as tape:
            replayed = converse(server.base_url)
        assert replayed == recorded and tape.all_played
