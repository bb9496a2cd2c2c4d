"""Cassette format v1: lossless bodies, readable SSE, clear errors, atomic writes."""

from __future__ import annotations

import os
from pathlib import Path

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
from streamtape.wire import Cut, End
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


def _cassette(body: bytes, end: End | Cut | None = None) -> Cassette:
    timing = ((0.25, len(body)),) if body else ()
    response = Response(200, (("content-type", "text/event-stream"),), body, timing, "OK", 0.1, end or End(0.3))
    return Cassette([Interaction(Request("POST", "https://api.example/v1/messages", (), b'{"a":1}'), response)])


def _round_trip(body: bytes, tmp_path: Path) -> bytes:
    path = tmp_path / "c.yaml"
    _cassette(body).save(path)
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
        assert Cassette.loads(_cassette(body).dumps()).interactions[0].body == body


class TestReadable:
    """SSE bodies read as the event text itself, one line per line."""

    def test_sse_body_is_a_literal_block(self) -> None:
        body = (DATA_DIR / "text_basic.sse").read_bytes()
        text = _cassette(body).dumps()
        for line in body.decode().splitlines():
            assert (f"      {line}" if line else "") in text.splitlines()
        assert "encoding: escaped" not in text

    def test_crlf_body_stays_line_per_line(self) -> None:
        text = _cassette(ODD_BODIES["crlf"]).dumps()
        assert "      event: ping\\r" in text.splitlines()
        assert "encoding: escaped" in text

    def test_request_json_is_a_mapping(self) -> None:
        text = _cassette(b"x").dumps()
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
    "unsafe-tag": ("version: 1\ninteractions: !!python/object/apply:os.system ['true']\n", "not valid YAML"),
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
        _cassette(b"old\n").save(path)
        before = path.read_bytes()

        def crash(*args: object) -> None:
            raise OSError("disk full")

        monkeypatch.setattr(os, "replace", crash)
        with pytest.raises(CassetteError, match=r"c.yaml: cannot write the cassette \(disk full\); the old file"):
            _cassette(b"new\n").save(path)
        assert path.read_bytes() == before
        assert sorted(p.name for p in tmp_path.iterdir()) == ["c.yaml"]

    def test_creates_parent_directories(self, tmp_path: Path) -> None:
        path = _cassette(b"x").save(tmp_path / "a" / "b" / "c.yaml")
        assert Cassette.load(path).interactions[0].body == b"x"
