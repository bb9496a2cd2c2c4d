"""Chunk-boundary invariance: the ``split``, ``split_crlf`` and ``split_utf8`` faults, and
``@pytest.mark.tape_faults("rechunk:every")``, which runs a test once per split of the body with the
unsplit run as the oracle."""

from __future__ import annotations

import contextlib
import importlib
import json
from pathlib import Path

import pytest

import streamtape
from streamtape.errors import ConfigError
from streamtape.faults import Context, apply, parse
from streamtape.faults.splits import crlf_splits, split_points, utf8_splits
from streamtape.sse import parse_events
from streamtape.wire import Cut, End, Respond, Send
from tests.support import builders, sdk
from tests.support.wire_server import DATA_DIR, split_events

for _core in ("httpcore2", "httpcore"):  # see tests/test_plugin.py: one HTTP core per process
    with contextlib.suppress(ImportError):
        importlib.import_module(_core)

_REAL = split_events((DATA_DIR / "text_multi_delta.sse").read_bytes())


def _delta(text: str) -> bytes:
    payload = {"type": "content_block_delta", "index": 0, "delta": {"type": "text_delta", "text": text}}
    return b"event: content_block_delta\ndata: " + json.dumps(payload, ensure_ascii=False).encode() + b"\n\n"


TEXT = "a café served ☕"
BODY = b"".join([*_REAL[:3], _delta("a café "), _delta("served ☕"), *_REAL[7:]])  # 8 events
HEAD = Respond(200, (("content-type", "text/event-stream"),), "OK", 0.1)


def shaped(spec: str, body: bytes = BODY, head: Respond = HEAD) -> list[object]:
    """The actions a recorded body (one chunk) becomes under ``spec``."""
    return apply(parse(spec).faults_for(0), [head, Send(body, 0.2), End(0.2)], Context())


def chunks(actions: list[object]) -> list[bytes]:
    return [action.data for action in actions if isinstance(action, Send)]


# --- the faults ---------------------------------------------------------------------------------------------


def test_split_cuts_the_body_in_two_at_a_byte_or_joins_it() -> None:
    assert chunks(shaped("split:at_byte=5")) == [BODY[:5], BODY[5:]]
    assert chunks(shaped("split")) == [BODY]
    several = apply(parse("split").faults_for(0), [HEAD, Send(BODY[:9], 0.2), Send(BODY[9:], 0.4), End(0.4)],
                    Context())  # fmt: skip
    assert chunks(several) == [BODY] and several[1].at == 0.4  # a chunk arrives with its last byte
    assert chunks(shaped("split:at_byte=0")) == chunks(shaped(f"split:at_byte={len(BODY)}")) == [BODY]
    with pytest.raises(ConfigError, match=rf"split:at_byte=9999: at_byte=9999, but the recorded body has {len(BODY)} "
                                          rf"bytes; use 0..{len(BODY)}"):  # fmt: skip
        shaped("split:at_byte=9999")


def boundaries(pieces: list[bytes]) -> set[int]:
    """Where one chunk ends and the next begins, as offsets into their bytes joined."""
    offsets, total = set(), 0
    for piece in pieces[:-1]:
        total += len(piece)
        offsets.add(total)
    return offsets


def test_split_utf8_puts_a_boundary_inside_every_character() -> None:
    pieces = chunks(shaped("split_utf8"))
    ends = {event.end for event in parse_events(BODY)}
    assert b"".join(pieces) == BODY
    assert set(utf8_splits(BODY)) - boundaries(pieces) == {i for i in utf8_splits(BODY) if BODY[i - 1] < 0xC0}
    assert boundaries(pieces) <= set(utf8_splits(BODY)) | ends  # and nowhere else (events are pieces of their own)
    with pytest.raises(UnicodeDecodeError):
        for piece in pieces:
            piece.decode("utf-8")
    with pytest.raises(ConfigError, match="split_utf8: the response's body has no multi-byte UTF-8 character to split"):
        shaped("split_utf8", body=builders.TEXT_BASIC)


def test_split_crlf_ends_lines_in_crlf_and_cuts_between() -> None:
    pieces = chunks(shaped("split_crlf"))
    crlf = BODY.replace(b"\n", b"\r\n")
    assert b"".join(pieces) == crlf  # a CR before every LF: the same events, by the SSE grammar
    assert [(e.event, e.data) for e in parse_events(crlf)] == [(e.event, e.data) for e in parse_events(BODY)]
    assert set(crlf_splits(crlf)) <= boundaries(pieces)
    already = chunks(shaped("split_crlf", body=crlf))  # a body in CRLF already: only cut
    assert already == pieces


def test_split_crlf_counts_positions_in_the_recording() -> None:
    """A CR added before each LF moves no position: ``after=3`` is still the recording's third event."""
    actions = shaped("split_crlf + disconnect:after=3")
    sent = b"".join(chunks(actions))
    assert sent == b"".join(_REAL[:3]).replace(b"\n", b"\r\n") and isinstance(actions[-1], Cut)


def test_split_crlf_announces_the_length_it_sends() -> None:
    head = Respond(200, (("content-type", "text/event-stream"), ("content-length", str(len(BODY)))))
    actions = shaped("split_crlf", head=head)
    assert actions[0].headers[-1] == ("content-length", str(len(BODY.replace(b"\n", b"\r\n"))))


def test_trap_positions() -> None:
    assert utf8_splits("é☕".encode()) == [1, 3, 4]
    assert crlf_splits(b"a\r\nb\r\n") == [2, 5]
    assert split_points(b"x" * 10, 100) == list(range(1, 10))
    body = b"x" * 100 + "é".encode() + b"x" * 100 + b"\r\n" + b"x" * 100
    points = split_points(body, 10)
    assert len(points) == 10 and 101 in points and 203 in points and points == sorted(points)
    assert len(split_points(bytes(300), 256)) == 256


# --- through the SDK and through a hand-written parser --------------------------------------------------------


def cassette(tmp_path: Path) -> Path:
    return builders.save(tmp_path / "c.yaml", body=BODY)


@pytest.mark.parametrize("spec", ["split", "split:at_byte=300", "split_utf8", "split_crlf", "split_crlf + split_utf8"])
def test_the_sdk_reads_every_split_alike(tmp_path: Path, spec: str) -> None:
    import anthropic

    with streamtape.use_cassette(cassette(tmp_path), faults=spec, match_on=["method", "path"]):
        client = anthropic.Anthropic(api_key="test-key")
        with client.messages.stream(**sdk.PARAMS) as stream:
            assert "".join(stream.text_stream) == TEXT


def test_a_client_reading_the_chunks_meets_the_split(tmp_path: Path) -> None:
    with streamtape.use_cassette(cassette(tmp_path), faults="split_utf8", match_on=["method", "path"]):
        with sdk.HTTP.Client() as http:
            with http.stream("POST", builders.MESSAGES_URL, json={"a": 1}) as response:
                received = list(response.iter_raw())
    assert received == chunks(shaped("split_utf8"))
    assert "\ufffd" in "".join(chunk.decode("utf-8", errors="replace") for chunk in received)


# --- rechunk:every --------------------------------------------------------------------------------------------

RAW_APP = '''
import importlib
import json

HTTP = importlib.import_module({stack!r})


def answer(decode_each_chunk):
    """The text of a stream, parsed by hand; ``decode_each_chunk`` is the bug: a character split
    across two chunks comes out as U+FFFD."""
    text, blocks, buffer, raw = [], [], "", b""
    with HTTP.Client() as http, http.stream("POST", "https://api.anthropic.com/v1/messages", json={{"a": 1}}) as r:
        for chunk in r.iter_bytes():
            if decode_each_chunk:
                buffer += chunk.decode("utf-8", errors="replace")
                while "\\n\\n" in buffer:
                    block, buffer = buffer.split("\\n\\n", 1)
                    blocks.append(block)
            else:  # the fix: split the bytes into events first, and decode whole events
                raw += chunk
                while b"\\n\\n" in raw:
                    block, raw = raw.split(b"\\n\\n", 1)
                    blocks.append(block.decode("utf-8"))
    for block in blocks:
        for line in block.splitlines():
            if line.startswith("data: ") and '"text_delta"' in line:
                text.append(json.loads(line[6:])["delta"]["text"])
    return "".join(text)
'''


@pytest.fixture
def raw_app(pytester: pytest.Pytester) -> pytest.Pytester:
    builders.save(pytester.path / "c.yaml", body=BODY)
    pytester.makepyfile(raw_app=RAW_APP.format(stack=sdk.STACK))
    return pytester


def test_rechunk_every_runs_once_per_split_and_once_unsplit(raw_app: pytest.Pytester) -> None:
    small = _delta("a café ") + _delta("served ☕")  # every byte boundary of a short body
    builders.save(raw_app.path / "c.yaml", body=small)
    raw_app.makepyfile(test_split='''
        import pytest
        import raw_app

        @pytest.mark.tape("c.yaml", match_on=["method", "path"])
        @pytest.mark.tape_faults("rechunk:every")
        def test_careful(tape_fault):
            assert raw_app.answer(decode_each_chunk=False) == "a café served ☕"
        ''')  # fmt: skip
    result = raw_app.runpytest("-p", "no:cacheprovider", "-v", "--tape-rechunk-budget=1000")
    result.assert_outcomes(passed=len(small))  # the unsplit run, and one per byte boundary: 1 .. len - 1
    result.stdout.fnmatch_lines(["*test_careful[[]split[]] PASSED*", "*test_careful[[]split:at_byte=1[]] PASSED*",
                                 f"*test_careful[[]split:at_byte={len(small) - 1}[]] PASSED*"])  # fmt: skip


def test_the_unsplit_run_is_the_oracle(raw_app: pytest.Pytester) -> None:
    raw_app.makepyfile(test_split='''
        import pytest
        import raw_app

        @pytest.mark.tape("c.yaml", match_on=["method", "path"])
        @pytest.mark.tape_faults("rechunk:every")
        def test_decodes_each_chunk(tape_fault):
            assert raw_app.answer(decode_each_chunk=True) == "a café served ☕"

        @pytest.mark.tape("c.yaml", match_on=["method", "path"])
        @pytest.mark.tape_faults("rechunk:every")
        def test_wrong_anyway(tape_fault):
            assert raw_app.answer(decode_each_chunk=False) == "something else"
        ''')  # fmt: skip
    result = raw_app.runpytest("-p", "no:cacheprovider", "--tape-rechunk-budget=40")
    inside = utf8_splits(BODY)
    result.assert_outcomes(passed=41 - len(inside), failed=len(inside) + 41)
    first = inside[0]
    result.stdout.fnmatch_lines([
        "*streamtape rechunk*",
        f"test_split.py::test_decodes_each_chunk: passes unsplit, fails at {len(inside)} of 40 split points: bytes "
        f"{first} (inside a UTF-8 character), *. Paste @pytest.mark.tape_faults(\"split:at_byte={first}\") to keep "
        "the first",
        "test_split.py::test_wrong_anyway: fails unsplit too, so its split runs say nothing about chunk boundaries",
    ])  # fmt: skip


def test_the_budget_keeps_the_traps(raw_app: pytest.Pytester) -> None:
    raw_app.makeini("[pytest]\ntape_rechunk_budget = 5\n")
    raw_app.makepyfile(test_split='''
        import pytest

        @pytest.mark.tape("c.yaml", match_on=["method", "path"])
        @pytest.mark.tape_faults("rechunk:every")
        def test_it(tape_fault):
            pass
        ''')  # fmt: skip
    result = raw_app.runpytest("-p", "no:cacheprovider", "--collect-only", "-q")
    ids = [line.split("[", 1)[1].rstrip("]") for line in result.outlines if "::test_it[" in line]
    assert ids[0] == "split" and len(ids) == 1 + 5
    assert {f"split:at_byte={point}" for point in utf8_splits(BODY)} <= set(ids)  # the traps come first
    raw_app.makeini("[pytest]\ntape_rechunk_budget = many\n")
    result = raw_app.runpytest("-p", "no:cacheprovider", "--collect-only", "-q")
    assert result.ret == pytest.ExitCode.USAGE_ERROR  # the suite's mistake, said once at the start
    result.stderr.fnmatch_lines(["ERROR: tape_rechunk_budget = 'many' in the ini file is not a number of runs*"])


def test_an_unrecorded_sweep(pytester: pytest.Pytester) -> None:
    pytester.makepyfile(test_split='''
        import pytest

        @pytest.mark.tape("missing.yaml")
        @pytest.mark.tape_faults("rechunk:every")
        def test_it(tape_fault):
            pass
        ''')  # fmt: skip
    result = pytester.runpytest("-p", "no:cacheprovider")
    result.assert_outcomes(errors=1)
    result.stdout.fnmatch_lines(["*'rechunk:every' sweeps the cassette *missing.yaml, which is not recorded yet*"])
    result = pytester.runpytest("-p", "no:cacheprovider", "--tape-record-mode=once", "--collect-only", "-q")
    result.stdout.fnmatch_lines(["*test_it[[]record[]]*"])


def test_rechunk_every_under_xdist(raw_app: pytest.Pytester) -> None:
    raw_app.makepyfile(test_split='''
        import pytest
        import raw_app

        @pytest.mark.tape("c.yaml", match_on=["method", "path"])
        @pytest.mark.tape_faults("rechunk:every")
        def test_decodes_each_chunk(tape_fault):
            assert raw_app.answer(decode_each_chunk=True) == "a café served ☕"
        ''')  # fmt: skip
    result = raw_app.runpytest("-p", "no:cacheprovider", "--tape-rechunk-budget=20", "-n", "2")
    inside = utf8_splits(BODY)
    result.assert_outcomes(passed=21 - len(inside), failed=len(inside))
    result.stdout.fnmatch_lines([f"*test_decodes_each_chunk: passes unsplit, fails at {len(inside)} of 20 split points*"])
