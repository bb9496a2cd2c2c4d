"""Cassette format v1: lossless bodies, readable SSE, clear errors, atomic writes."""

from __future__ import annotations

import os
from pathlib import Path
from typing import Any

import pytest
from hypothesis import given, settings
from hypothesis import strategies as st

from streamtape import (
    Cassette,
    CassetteError,
    CassetteFormatError,
    CassetteNotFoundError,
    Interaction,
    Request,
    Response,
)
from streamtape.wire import Cut
from tests.support.builders import cassette
from tests.support.wire_server import DATA_DIR

TRANSCRIPTS = sorted(DATA_DIR.glob("*.sse"))
ODD_BODIES = {
    "empty": b"",
    "only-newlines": b"\n\n",
    "crlf": b"event: ping\r\ndata: {}\r\n\r\n",
    "bare-cr": b"data: a\rdata: b\r\r",
    "tabs": b"\tstarts with a tab\n\tand\ttabs\n",
    "leading-spaces": b"  first line indented\nsecond\n",
    "trailing-spaces": b"data: x   \n   \n\n",
    "invalid-utf8": b"data: \xff\xfe\n\n",
    "cut-inside-utf8-char": "data: caf\u00e9".encode()[:-1],
    "emoji": "data: \U0001f600 ok\n\n".encode(),
    "line-separators": "a\u2028b\u0085c\ufeff\n".encode(),
    "controls": b"\x00\x01\x1b[0m\x7f",
    "backslashes": b'data: {"t":"\\\\x41 \\\\r \\\\n"}\n\n',
    "no-final-newline": b"data: x",
    "many-final-newlines": b"x\n\n\n\n",
}


def _round_trip(body: bytes, tmp_path: Path) -> bytes:
    path = tmp_path / "c.yaml"
    cassette(body=body).save(path)
    return Cassette.load(path).interactions[0].body


class TestLossless:
    """Replayed bytes equal recorded bytes, whatever the body holds."""

    @pytest.mark.parametrize("path", TRANSCRIPTS, ids=lambda p: p.stem)
    def test_real_transcripts(self, path: Path, tmp_path: Path) -> None:
        body = path.read_bytes()
        assert _round_trip(body, tmp_path) == body

    @pytest.mark.parametrize("name", ODD_BODIES)
    def test_odd_bodies(self, name: str, tmp_path: Path) -> None:
        assert _round_trip(ODD_BODIES[name], tmp_path) == ODD_BODIES[name]

    @settings(max_examples=300, deadline=None)
    @given(st.binary(max_size=200) | st.text(max_size=200).map(lambda t: t.encode("utf-8", "surrogatepass")))
    def test_any_bytes(self, body: bytes) -> None:
        assert Cassette.loads(cassette(body=body).dumps()).interactions[0].body == body


class TestReadable:
    """SSE bodies read as the event text itself, one line per line."""

    def test_sse_body_is_a_literal_block(self) -> None:
        body = (DATA_DIR / "text_basic.sse").read_bytes()
        text = cassette(body=body).dumps()
        for line in body.decode().splitlines():
            assert (f"      {line}" if line else "") in text.splitlines()
        assert "encoding: escaped" not in text

    def test_crlf_body_stays_line_per_line(self) -> None:
        text = cassette(body=ODD_BODIES["crlf"]).dumps()
        assert "      event: ping\\r" in text.splitlines()
        assert "encoding: escaped" in text

    def test_request_json_is_a_mapping(self) -> None:
        text = cassette(body=b"x").dumps()
        assert "    json:\n      a: 1\n" in text


class TestModel:
    def test_events_chunks_and_end(self, tmp_path: Path) -> None:
        body = (DATA_DIR / "text_basic.sse").read_bytes()
        cut = Cut("RemoteProtocolError", "peer closed connection without sending complete message body", 0.9)
        response = Response(200, (), body, ((0.1, 100), (0.2, len(body) - 100)), "OK", 0.05, cut)
        Cassette([Interaction(Request("POST", "http://h/v1/messages"), response)]).save(tmp_path / "c.yaml")
        item = Cassette.load(tmp_path / "c.yaml").interactions[0]
        assert [e.event for e in item.events][:2] == ["message_start", "content_block_start"]
        assert item.events[0].json["type"] == "message_start"
        assert [c.data for c in item.chunks] == [body[:100], body[100:]]
        assert [c.at for c in item.chunks] == [0.1, 0.2]
        assert item.response.end == cut

    def test_headers_as_pairs_are_read(self) -> None:
        text = (
            "version: 1\ninteractions:\n- request: {method: GET, url: 'http://h/'}\n"
            "  response: {status: 200, headers: [[set-x, a], [set-x, b], [n, 5]]}\n"
        )
        assert Cassette.loads(text).interactions[0].response.headers == (("set-x", "a"), ("set-x", "b"), ("n", "5"))
        with pytest.raises(CassetteFormatError, match=r"response.headers\[0\]: expected a \[name, value\] pair"):
            Cassette.loads(text.replace("[set-x, a]", "[set-x]"))

    def test_error_before_headers(self, tmp_path: Path) -> None:
        item = Interaction(Request("GET", "http://h/"), error=Cut("ConnectError", "[Errno 111] Connection refused"))
        Cassette([item]).save(tmp_path / "c.yaml")
        assert Cassette.load(tmp_path / "c.yaml").interactions[0] == item


BAD_FILES = {
    "not-yaml": ("version: 1\ninteractions: [\n", "line 3, column 1: not valid YAML"),
    "empty": ("", "the file is empty"),
    "a-list": ("- 1\n", "top level: expected a mapping, found a list"),
    "no-version": ("interactions: []\n", "version: expected 'version: 2' (or 1), found None"),
    "newer-version": ("version: 3\ninteractions: []\n", "a newer streamtape wrote it; upgrade streamtape"),
    "v2-cut-short": ("version: 2\ninteractions: []\n", "line 2: the file ends before its closing 'lines: N' field"),
    "v2-lines-removed": ("version: 2\ninteractions: []\nlines: 4\n", "line 3: the file has 3 lines but says it has 4"),
    "no-interactions": ("version: 1\n", "top level: missing required field 'interactions'"),
    "no-request": (
        "version: 1\ninteractions:\n- response: {status: 200}\n",
        "interactions[0]: missing required field 'request'",
    ),
    "bad-status": (
        "version: 1\ninteractions:\n- request: {method: GET, url: 'http://h/'}\n  response: {status: ok}\n",
        "interactions[0].response.status: expected int, found text",
    ),
    "chunks-disagree": (
        "version: 1\ninteractions:\n- request: {method: GET, url: 'http://h/'}\n"
        "  response: {status: 200, body: abc, chunks: '0.1:2'}\n",
        "interactions[0].response.chunks: chunk sizes add up to 2 bytes but the body has 3",
    ),
    "bad-chunks": (
        "version: 1\ninteractions:\n- request: {method: GET, url: 'http://h/'}\n"
        "  response: {status: 200, body: abc, chunks: 'soon:3'}\n",
        "expected 'SECONDS:BYTES' pairs",
    ),
    "bad-error": (
        "version: 1\ninteractions:\n- request: {method: GET, url: 'http://h/'}\n  error: {error: Boom}\n",
        "interactions[0].error.error: unknown error 'Boom'; expected one of ClientClosed, ConnectError",
    ),
    "bad-end": (
        "version: 1\ninteractions:\n- request: {method: GET, url: 'http://h/'}\n  response: {status: 200, end: done}\n",
        "interactions[0].response.end: expected 'clean' or a mapping",
    ),
    "unsafe-tag": (
        "version: 1\ninteractions: !!python/object/apply:os.system ['true']\n",
        "line 2, interactions: the YAML tag !!python/object/apply:os.system is not allowed in a cassette",
    ),
}


class TestBadInput:
    """A bad file gets an error naming the file, the place, and what was expected."""

    @pytest.mark.parametrize("name", BAD_FILES)
    def test_error_names_file_and_place(self, name: str, tmp_path: Path) -> None:
        content, expected = BAD_FILES[name]
        path = tmp_path / f"{name}.yaml"
        path.write_text(content)
        with pytest.raises(CassetteFormatError) as info:
            Cassette.load(path)
        assert str(info.value).startswith(f"{path}: ")
        assert expected in str(info.value)

    def test_missing_file(self, tmp_path: Path) -> None:
        with pytest.raises(CassetteNotFoundError, match="no such cassette file"):
            Cassette.load(tmp_path / "nope.yaml")

    def test_binary_file(self, tmp_path: Path) -> None:
        (tmp_path / "b.yaml").write_bytes(b"\x89PNG\r\n\x1a\n\xff")
        with pytest.raises(CassetteFormatError, match="not UTF-8 text"):
            Cassette.load(tmp_path / "b.yaml")


class TestAtomicSave:
    """A crash during a save never leaves a torn or lost cassette."""

    def test_failed_replace_keeps_the_old_file(self, tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> None:
        path = tmp_path / "c.yaml"
        cassette(body=b"old\n").save(path)
        before = path.read_bytes()

        def crash(*args: object) -> None:
            raise OSError("disk full")

        monkeypatch.setattr(os, "replace", crash)
        with pytest.raises(CassetteError, match=r"c.yaml: cannot write the cassette \(disk full\); the old file"):
            cassette(body=b"new\n").save(path)
        assert path.read_bytes() == before
        assert sorted(p.name for p in tmp_path.iterdir()) == ["c.yaml"]

    def test_creates_parent_directories(self, tmp_path: Path) -> None:
        path = cassette(body=b"x").save(tmp_path / "a" / "b" / "c.yaml")
        assert Cassette.load(path).interactions[0].body == b"x"

    def test_never_writes_an_alias(self, tmp_path: Path) -> None:
        """One request object in two interactions (its ``json`` one dict) is written out twice: the
        loader refuses aliases, so the writer must never make one."""
        item = cassette(body=b"x").interactions[0]
        path = Cassette([item, item]).save(tmp_path / "c.yaml")
        text = path.read_text()
        assert "&id" not in text and "*id" not in text
        assert [i.request.json for i in Cassette.load(path)] == [{"a": 1}, {"a": 1}]

    @pytest.mark.parametrize(
        "body",
        [b'{"a": NaN}', b'{"a": 1e999}', b'{"a": "\\ud800"}', b"[" * 120 + b"]" * 120, b"[" * 5000 + b"]" * 5000],
        ids=["nan", "overflow", "lone-surrogate", "deep", "deeper-than-json-parses"],
    )
    def test_a_body_json_cannot_hold_is_kept_as_it_is(self, body: bytes, tmp_path: Path) -> None:
        request = Request("POST", "https://api.example/v1/x", (), body)
        response = Response(200, (), b"ok", ((0.1, 2),))
        path = Cassette([Interaction(request, response)]).save(tmp_path / "c.yaml")
        assert Cassette.load(path).interactions[0].request.body == body

    def test_what_would_not_load_is_not_saved(self, tmp_path: Path) -> None:
        path = cassette(body=b"old\n").save(tmp_path / "c.yaml")
        before = path.read_bytes()
        response = Response(200, (("Server", "\u20ac"),), b"x", ((0.1, 1),))
        bad = Cassette([Interaction(Request("GET", "https://h/"), response)])
        with pytest.raises(CassetteFormatError) as info:
            bad.save(path)
        assert str(info.value).startswith(f"{path}: interactions[0].response.headers.Server: ")
        assert str(info.value).endswith("; nothing was written")
        assert path.read_bytes() == before
        with pytest.raises(CassetteFormatError, match=r"headers_at: expected seconds from 0 to 1,000,000, found nan"):
            Cassette([Interaction(Request("GET", "https://h/"), Response(200, headers_at=float("nan")))]).save(path)


# --- hostile input: every malformed file gets the file, the line and the field ---------------------

TEXT = (Path(__file__).resolve().parent.parent / "cassettes" / "anthropic" / "text.yaml").read_text()
BOMB = (
    "{a: &a [lol, lol, lol, lol, lol, lol, lol, lol, lol], b: &b [*a, *a, *a, *a, *a, *a, *a, *a, *a], "
    "c: &c [*b, *b, *b, *b, *b, *b, *b, *b, *b], d: &d [*c, *c, *c, *c, *c, *c, *c, *c, *c], "
    "e: &e [*d, *d, *d, *d, *d, *d, *d, *d, *d], f: &f [*e, *e, *e, *e, *e, *e, *e, *e, *e], "
    "g: &g [*f, *f, *f, *f, *f, *f, *f, *f, *f], h: &h [*g, *g, *g, *g, *g, *g, *g, *g, *g]}"
)
JSON_FIELD = "interactions[0].request.json.messages[0].content"
HOSTILE = {
    # name: (text to replace in text.yaml, its replacement, the error after "FILE: ")
    "float-abc": (
        "max_tokens: 1024",
        "max_tokens: !!float 'abc'",
        "line 11, interactions[0].request.json.max_tokens: 'abc' is not a valid float",
    ),
    "int-4301-digits": (
        "max_tokens: 1024",
        "max_tokens: " + "9" * 4301,
        "line 11, interactions[0].request.json.max_tokens: a number of 4,301 characters",
    ),
    "int-in-hex": (
        "max_tokens: 1024",
        "max_tokens: 0x" + "f" * 3700,
        "line 11, interactions[0].request.json.max_tokens: a number of more than 4,300 digits",
    ),
    "bool-maybe": (
        "stream: true",
        "stream: !!bool maybe",
        "line 16, interactions[0].request.json.stream: 'maybe' is not a valid bool",
    ),
    "binary": (
        "content: Say hello",
        "content: !!binary aGVsbG8=",
        f"line 14, {JSON_FIELD}: the YAML tag !!binary is not allowed",
    ),
    "set": (
        "content: Say hello",
        "content: !!set {a: null}",
        f"line 14, {JSON_FIELD}: the YAML tag !!set is not allowed",
    ),
    "timestamp-tag": (
        "content: Say hello",
        "content: !!timestamp 2024-01-15",
        f"line 14, {JSON_FIELD}: the YAML tag !!timestamp",
    ),
    "python-tag": (
        "content: Say hello",
        "content: !!python/name:os.system",
        f"line 14, {JSON_FIELD}: the YAML tag !!python/name:os.system",
    ),
    "alias": (
        "content: Say hello",
        "content: &a x\n        role: *a",
        f"line 14, {JSON_FIELD}: YAML anchors and aliases",
    ),
    "circular-alias": ("content: Say hello", "content: &a [*a]", f"line 14, {JSON_FIELD}: YAML anchors and aliases"),
    "alias-bomb": ("content: Say hello", f"content: {BOMB}", f"line 14, {JSON_FIELD}.a: YAML anchors and aliases"),
    # newer libyaml builds stop at 1,000 levels themselves ("exceeded maximum nesting depth")
    "deep": ("content: Say hello", "content: " + "[" * 100_000 + "]" * 100_000, "line 14, "),
    "json-inf": (
        "max_tokens: 1024",
        "max_tokens: .inf",
        "line 11, interactions[0].request.json.max_tokens: inf is not a JSON number",
    ),
    "complex-key": (
        "role: user",
        "? [a]\n        : user",
        "interactions[0].request.json.messages[0]: a mapping key must be a plain value",
    ),
    "headers_at-nan": (
        "headers_at: 0.35",
        "headers_at: .nan",
        "line 45, interactions[0].response.headers_at: expected seconds from 0 to 1,000,000, found nan",
    ),
    "headers_at-inf": (
        "headers_at: 0.35",
        "headers_at: .inf",
        "line 45, interactions[0].response.headers_at: expected seconds",
    ),
    "headers_at-negative": (
        "headers_at: 0.35",
        "headers_at: -1",
        "line 45, interactions[0].response.headers_at: expected seconds",
    ),
    "headers_at-huge": (
        "headers_at: 0.35",
        "headers_at: 1.0e+300",
        "line 45, interactions[0].response.headers_at: expected seconds",
    ),
    "chunk-nan": ("chunks: 0.4042", "chunks: nan", "interactions[0].response.chunks: chunk 1 arrives at nan seconds"),
    "chunk-negative": (
        "chunks: 0.4042",
        "chunks: -0.4042",
        "interactions[0].response.chunks: chunk 1 arrives at -0.4042",
    ),
    "header-not-latin-1": (
        "Server: cloudflare",
        "Server: \u20ac",
        "line 26, interactions[0].response.headers.Server: '\u20ac' cannot be sent as a header value: "
        "'\u20ac' is not Latin-1",
    ),
    "header-crlf": (
        "Server: cloudflare",
        'Server: "a\\r\\nSet-Cookie: x"',
        "line 26, interactions[0].response.headers.Server:",
    ),
    "header-nul": (
        "Server: cloudflare",
        'Server: "a\\0b"',
        "line 26, interactions[0].response.headers.Server: 'a\\x00b' cannot",
    ),
    "header-space": (
        "Server: cloudflare",
        "Server: ' x'",
        "HTTP forbids CR, LF and NUL in it, and white space at its start",
    ),
    "header-name": (
        "Server: cloudflare",
        "Ser ver: x",
        "line 26, interactions[0].response.headers.Ser ver: 'Ser ver' is not a",
    ),
    "reason": (
        "reason: OK",
        "reason: \u20ac",
        "line 19, interactions[0].response.reason: '\u20ac' cannot be sent as the reason",
    ),
    "url": (
        "url: https://api.anthropic.com/v1/messages",
        "url: http://[::1/v1/messages",
        "line 6, interactions[0].request.url: not a valid URL (Invalid IPv6 URL)",
    ),
    "url-port": (
        "url: https://api.anthropic.com/v1/messages",
        "url: http://h:99999/v1",
        "line 6, interactions[0].request.url: not a valid URL (Port out of range 0-65535)",
    ),
    "url-space": ("url: https://api.anthropic.com/v1/messages", "url: http://h/a b", "the URL holds ' '"),
    "method": ("method: POST", "method: P OST", "line 5, interactions[0].request.method: expected an HTTP method"),
    "status-text": ("status: 200", "status: ok", "line 18, interactions[0].response.status: expected int, found text"),
    "two-documents": ("lines: 70", "lines: 70\n---\nversion: 2", "line 71: a second YAML document starts here"),
    "control-character": (
        "Server: cloudflare",
        "Server: a\x07b",
        "line 26: not valid YAML (the character U+0007 is not allowed",
    ),
    "emoji-code": ("Server: cloudflare", "x:on: b", "line 26, interactions[0].response.headers.x:on: 'x:on' is not a"),
}


class TestHostileInput:
    """What an adversarial run found giving internal errors: each is a ``CassetteFormatError`` now,
    naming the file, the line and the field."""

    @pytest.mark.parametrize("name", HOSTILE)
    def test_refused_with_file_line_and_field(self, name: str, tmp_path: Path) -> None:
        old, new, expected = HOSTILE[name]
        assert old in TEXT
        text = TEXT.replace(old, new, 1)
        if name in ("alias", "complex-key", "two-documents"):  # one more line: keep the count true
            text = text.replace("lines: 70", f"lines: {text.count(chr(10))}") if name != "two-documents" else text
        path = tmp_path / f"{name}.yaml"
        path.write_text(text, encoding="utf-8")
        with pytest.raises(CassetteFormatError) as info:
            Cassette.load(path)
        message = str(info.value)
        assert message.startswith(f"{path}: line "), message
        assert expected in message, message
        assert "\n" not in message and len(message) < 600 + len(str(path)), message
        if name == "deep":
            assert f"{JSON_FIELD}[0][0]" in message or "exceeded maximum nesting depth" in message, message

    def test_an_alias_bomb_is_refused_at_once(self, tmp_path: Path) -> None:
        import time

        path = tmp_path / "bomb.yaml"
        path.write_text(BOMB.replace(", ", ",") + "\n")
        assert path.stat().st_size < 700
        started = time.monotonic()
        with pytest.raises(CassetteFormatError, match=r"bomb.yaml: line 1, a: YAML anchors and aliases"):
            Cassette.load(path)
        assert time.monotonic() - started < 0.5

    @pytest.mark.parametrize(
        "date", ["2024-01-15", "2024-02-30", "2024-01-15 10:30:00", "2001-12-14t21:59:43.10-05:00"]
    )
    def test_an_unquoted_date_is_the_text_written(self, date: str, tmp_path: Path) -> None:
        """A hand-edited ``content: 2024-01-15`` means the text 2024-01-15 (YAML 1.1 would make it a
        date, which JSON cannot hold, or fail on 2024-02-30); so does a date where a header is."""
        text = TEXT.replace("content: Say hello", f"content: {date}").replace("Server: cloudflare", f"Date2: {date}")
        path = tmp_path / "c.yaml"
        path.write_text(text)
        item = Cassette.load(path).interactions[0]
        assert item.request.json["messages"][0]["content"] == date
        assert f'"content":"{date}"'.encode() in item.request.body
        assert item.response.header("Date2") == date
        again = Cassette.load(Cassette([item]).save(tmp_path / "again.yaml")).interactions[0]
        assert again.request.json == item.request.json

    def test_latin_1_header_values_load(self, tmp_path: Path) -> None:
        path = tmp_path / "c.yaml"
        path.write_text(TEXT.replace("Server: cloudflare", "Server: caf\u00e9\tbar"))
        assert Cassette.load(path).interactions[0].response.header("server") == "caf\u00e9\tbar"

    def test_the_line_is_the_fields_own(self, tmp_path: Path) -> None:
        """Errors found after parsing point at the field's line, not just the interaction's."""
        path = tmp_path / "c.yaml"
        path.write_text(TEXT.replace("anthropic-version: '2023-06-01'", "anthropic-version: {a: 1}"))
        field = r"interactions\[0\].request.headers.anthropic-version"
        with pytest.raises(
            CassetteFormatError, match=rf"c.yaml: line 9, {field}: expected a header value \(text\), found"
        ):
            Cassette.load(path)
        path.write_text(TEXT.replace("chunks: 0.4042", "chunks: x0.4042"))
        with pytest.raises(CassetteFormatError, match=r"c.yaml: line 68, interactions\[0\].response.chunks: expected"):
            Cassette.load(path)

    def test_not_utf8_names_the_line(self, tmp_path: Path) -> None:
        path = tmp_path / "c.yaml"
        path.write_bytes(TEXT.encode().replace(b"Server: cloudflare", b"Server: cloud\xffflare"))
        with pytest.raises(CassetteFormatError, match=r"c.yaml: line 26: not UTF-8 text \(byte \d+\)"):
            Cassette.load(path)

    def test_crlf_files_load(self, tmp_path: Path) -> None:
        path = tmp_path / "c.yaml"
        path.write_bytes(TEXT.replace("\n", "\r\n").encode())
        assert Cassette.load(path).interactions[0].body == Cassette.loads(TEXT).interactions[0].body


class TestSizeLimit:
    def test_a_file_over_the_limit_is_refused_unread(self, tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> None:
        path = tmp_path / "c.yaml"
        path.write_text(TEXT)
        monkeypatch.setenv("STREAMTAPE_MAX_CASSETTE_MB", "0.001")
        with pytest.raises(CassetteFormatError) as info:
            Cassette.load(path)
        assert str(info.value) == (
            f"{path}: the file is 0.0 MiB, more than the 0 MiB streamtape reads (a guard against runaway files). "
            "If it really is a cassette, set STREAMTAPE_MAX_CASSETTE_MB to a larger number of MiB"
        )
        monkeypatch.setenv("STREAMTAPE_MAX_CASSETTE_MB", "1")
        assert len(Cassette.load(path)) == 1

    def test_the_default_is_256_mib(self, monkeypatch: pytest.MonkeyPatch) -> None:
        from streamtape.cassette import max_cassette_bytes

        monkeypatch.delenv("STREAMTAPE_MAX_CASSETTE_MB", raising=False)
        assert max_cassette_bytes() == 256 << 20

    @pytest.mark.parametrize("value", ["abc", "0", "-5", "nan", "inf"])
    def test_a_bad_setting_is_a_config_error(self, value: str, tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> None:
        from streamtape import ConfigError

        monkeypatch.setenv("STREAMTAPE_MAX_CASSETTE_MB", value)
        with pytest.raises(ConfigError, match=rf"STREAMTAPE_MAX_CASSETTE_MB='{value}': expected the size"):
            Cassette.loads(TEXT)

    def test_a_device_is_read_no_further_than_the_limit(self, monkeypatch: pytest.MonkeyPatch) -> None:
        if not Path("/dev/zero").exists():
            pytest.skip("no /dev/zero")
        monkeypatch.setenv("STREAMTAPE_MAX_CASSETTE_MB", "1")
        with pytest.raises(CassetteFormatError, match="/dev/zero: the file is 1.0 MiB, more than the 1 MiB"):
            Cassette.load("/dev/zero")


# --- temporary files of interrupted saves -----------------------------------------------------------

ROOT = Path(__file__).resolve().parent.parent
# A save that stops between writing its temporary file and renaming it, until told to go on: the
# write window made observable without timing. Prints the temporary file's path, then waits on stdin.
PAUSED_SAVE = f"""
import os, sys
sys.path.insert(0, {str(ROOT)!r})
from tests.support.builders import save
path, body = sys.argv[1], sys.argv[2].encode()
replace = os.replace
def paused(src, dst):
    print(src, flush=True)
    sys.stdin.readline()
    replace(src, dst)
os.replace = paused
save(path, body=body)
print("saved", flush=True)
"""


def _paused_save(path: Path, body: str) -> tuple[Any, Path]:
    import subprocess
    import sys

    child = subprocess.Popen([sys.executable, "-c", PAUSED_SAVE, str(path), body], stdin=subprocess.PIPE,
                             stdout=subprocess.PIPE, text=True)  # fmt: skip
    assert child.stdout is not None
    temp = Path(child.stdout.readline().strip())
    assert temp.parent == path.parent and temp.name.startswith(f".{path.name}.") and temp.stat().st_size > 0
    return child, temp


@pytest.mark.skipif(os.name == "nt", reason="kill -9 and flock are POSIX")
class TestInterruptedSaves:
    def test_the_next_save_removes_what_killed_saves_left(self, tmp_path: Path) -> None:
        import signal

        path = cassette(body=b"old\n").save(tmp_path / "c.yaml")
        left = []
        for round_ in range(3):
            child, temp = _paused_save(path, f"killed {round_}\n")
            os.kill(child.pid, signal.SIGKILL)  # inside the write window: written, not yet renamed
            child.wait()
            assert temp.exists()  # what a killed save leaves
            assert Cassette.load(path).interactions[0].body == b"old\n"  # the cassette is untouched
            left.append(temp)
        cassette(body=b"new\n").save(path)
        assert not any(temp.exists() for temp in left)
        assert sorted(p.name for p in tmp_path.iterdir()) == ["c.yaml"]
        assert Cassette.load(path).interactions[0].body == b"new\n"

    def test_a_live_save_is_never_disturbed(self, tmp_path: Path) -> None:
        path = cassette(body=b"old\n").save(tmp_path / "c.yaml")
        child, temp = _paused_save(path, "the other writer\n")
        try:
            cassette(body=b"this one\n").save(path)  # meanwhile: its temporary file is live, so kept
            assert temp.exists()
            assert Cassette.load(path).interactions[0].body == b"this one\n"
        finally:
            assert child.stdin is not None and child.stdout is not None
            child.stdin.write("go on\n")
            child.stdin.flush()
            assert child.stdout.readline() == "saved\n"
            assert child.wait(timeout=60) == 0
        assert not temp.exists()
        assert Cassette.load(path).interactions[0].body == b"the other writer\n"  # the last rename wins, whole
        assert sorted(p.name for p in tmp_path.iterdir()) == ["c.yaml"]

    def test_only_this_cassettes_abandoned_temp_files_go(self, tmp_path: Path) -> None:
        import time

        path = tmp_path / "c.yaml"
        abandoned = tmp_path / ".c.yaml.k3j_9x2a.tmp"
        abandoned.write_text("half a cassette")
        young_empty = tmp_path / ".c.yaml.aaaaaaaa.tmp"  # a save killed before writing anything (a live save re-checks after locking)
        young_empty.touch()
        old_empty = tmp_path / ".c.yaml.bbbbbbbb.tmp"
        old_empty.touch()
        os.utime(old_empty, (time.time() - 120, time.time() - 120))
        others = [tmp_path / name for name in (".d.yaml.k3j_9x2a.tmp", ".c.yaml.short.tmp", "c.yaml.bak",
                                                ".c.yaml.k3j_9x2a.tmp.keep", ".xc.yaml.k3j_9x2a.tmp")]  # fmt: skip
        for other in others:
            other.write_text("not ours")
        link = tmp_path / ".c.yaml.linklink.tmp"
        link.symlink_to(tmp_path / "c.yaml.bak")
        cassette(body=b"x").save(path)
        assert not abandoned.exists() and not old_empty.exists() and not young_empty.exists()
        assert link.is_symlink() and all(other.exists() for other in others)

    def test_a_lock_is_per_open_file(self, tmp_path: Path) -> None:
        from streamtape import _filelock

        (tmp_path / "f").touch()
        first, second = os.open(tmp_path / "f", os.O_RDONLY), os.open(tmp_path / "f", os.O_RDONLY)
        try:
            _filelock.lock(first)
            assert not _filelock.try_lock(second)
            os.close(first)
            assert _filelock.try_lock(second)
        finally:
            os.close(second)


def test_lock_files_are_removed_and_the_lock_still_excludes(tmp_path: Path) -> None:
    """Every save used to leave a lock file in the temp directory forever."""
    import hashlib
    import tempfile
    import threading

    from streamtape._filelock import cassette_lock

    def locks() -> set[str]:  # this test's own lock files (other workers' come and go meanwhile)
        mine = {f"streamtape-{hashlib.sha256(str(p.resolve()).encode()).hexdigest()[:24]}.lock"
                for p in [*(tmp_path / f"c{n}.yaml" for n in range(20)), tmp_path / "shared.yaml"]}  # fmt: skip
        return {p.name for p in Path(tempfile.gettempdir()).glob("streamtape-*.lock")} & mine

    before = locks()
    assert before == set()
    for n in range(20):
        with cassette_lock(tmp_path / f"c{n}.yaml"):
            pass
    assert locks() - before == set()
    # removing the file while others wait on it must not let two holders in at once
    counter = tmp_path / "counter"
    counter.write_text("0")

    def bump() -> None:
        for _ in range(40):
            with cassette_lock(tmp_path / "shared.yaml"):
                value = int(counter.read_text())
                counter.write_text(str(value + 1))

    threads = [threading.Thread(target=bump) for _ in range(6)]
    for thread in threads:
        thread.start()
    for thread in threads:
        thread.join()
    assert counter.read_text() == "240" and locks() - before == set()
