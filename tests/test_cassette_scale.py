"""Long streams in cassettes: packed chunk timing, the literal-block reader, and what a load holds.

A response of ``COMPACT_FROM`` chunks or more is written with its timing packed and loads it as two
arrays (``CompactTiming``); every body's literal block is read from the file's bytes when it has the
shape the writer gives it, and by the YAML parser otherwise. These check that the forms written
before still load, that a hand edit of a packed line is refused with the file, the line and what is
wrong, and (with Hypothesis) that any body and any timing round trip and that the block reader reads
exactly what the YAML parser reads.
"""

from __future__ import annotations

import base64
import copy
import operator
import pickle
import re
import tracemalloc
from array import array
from pathlib import Path
from typing import Any

import pytest
import yaml
from hypothesis import HealthCheck, given, settings
from hypothesis import strategies as st

import streamtape.cassette as cassette_module
from streamtape import Cassette, CassetteFormatError, Interaction, Request, Response, _bodytext, _timing
from streamtape._timing import COMPACT_FROM, CompactTiming
from streamtape.lint import lint_file
from tests.support.wire_server import DATA_DIR, split_events

_EVENTS = split_events((DATA_DIR / "text_multi_delta.sse").read_bytes())


def long_interaction(n: int, *, step: float = 0.0021234, body_events: list[bytes] | None = None) -> Interaction:
    """``n`` real SSE events, one chunk each, at times that the pairs' 0.1 ms would round."""
    events = body_events or [_EVENTS[i % len(_EVENTS)] for i in range(n)]
    timing = tuple((0.4 + step * i, len(event)) for i, event in enumerate(events))
    response = Response(200, (("content-type", "text/event-stream"),), b"".join(events), timing, "OK", 0.4)
    return Interaction(Request("POST", "https://api.anthropic.com/v1/messages", (), b'{"a":1}'), response)


def chunks_line(text: str) -> tuple[int, str]:
    """The line number and text of the (only) ``chunks:`` line."""
    return next((number, line) for number, line in enumerate(text.splitlines(), 1) if line.startswith("    chunks:"))


@pytest.fixture(autouse=True)
def cold(monkeypatch: pytest.MonkeyPatch) -> None:
    """Every load parses (the cache of unchanged files would hide what the reader does)."""
    monkeypatch.setattr(cassette_module._LOADED, "LIMIT", 0)  # noqa: SLF001


class TestPackedTiming:
    def test_a_long_timing_is_written_packed_and_loads_exactly(self, tmp_path: Path) -> None:
        item = long_interaction(COMPACT_FROM + 7)
        path = Cassette([item]).save(tmp_path / "c.yaml")
        _, line = chunks_line(path.read_text())
        assert line.startswith(f"    chunks: packed {COMPACT_FROM + 7} ")
        loaded = Cassette.load(path).interactions[0]
        assert isinstance(loaded.response.timing, CompactTiming)
        assert loaded.response.timing == item.response.timing  # exactly as held: not rounded
        assert loaded.body == item.body
        assert [chunk.data for chunk in loaded.chunks] == [chunk.data for chunk in item.chunks]
        assert Cassette.load(Cassette([loaded]).save(tmp_path / "again.yaml")).interactions[0] == loaded

    def test_a_short_timing_stays_readable(self, tmp_path: Path) -> None:
        item = long_interaction(COMPACT_FROM - 1)
        path = Cassette([item]).save(tmp_path / "c.yaml")
        _, line = chunks_line(path.read_text())
        assert re.fullmatch(r"    chunks: (\d+\.\d{4}:\d+ )+\d+\.\d{4}:\d+", line)
        timing = Cassette.load(path).interactions[0].response.timing
        assert timing == tuple((float(f"{at:.4f}"), size) for at, size in item.response.timing)

    def test_a_packed_line_is_lifted_out_of_the_yaml(self) -> None:
        text = Cassette([long_interaction(COMPACT_FROM)]).dumps()
        lifted = cassette_module._lift(text.encode())  # noqa: SLF001
        assert lifted is not None
        skeleton, values, feeds = lifted
        assert "packed" not in skeleton and "event:" not in skeleton
        assert skeleton.count("\n") + feeds == text.count("\n")
        assert sorted(type(value).__name__ for _, _, value in values.values()) == ["_Block", "str"]

    @pytest.mark.parametrize("version", [1, 2])
    def test_long_pairs_written_before_load(self, version: int, tmp_path: Path) -> None:
        """What every streamtape wrote before the packed form, however long: its pairs load, as the
        general reading reads them (at C speed when spelt as the writer spells them)."""
        item = long_interaction(COMPACT_FROM * 2)
        text = Cassette([item]).dumps()
        number, line = chunks_line(text)
        pairs = " ".join(f"{at:.4f}:{size}" for at, size in item.response.timing)
        lines = text.splitlines()
        lines[number - 1] = f"    chunks: {pairs}"
        if version == 1:
            lines = [line for line in lines if not line.startswith("lines:")]
            lines[1] = "version: 1"
        path = tmp_path / "old.yaml"
        path.write_text("\n".join(lines) + "\n")
        loaded = Cassette.load(path).interactions[0].response
        assert isinstance(loaded.timing, CompactTiming)
        assert loaded.timing == tuple((float(f"{at:.4f}"), size) for at, size in item.response.timing)
        assert loaded.body == item.body

    @pytest.mark.parametrize(
        "spelling", ["1e-3:5", "01:5", " 0.5:5", "0.5:5 ", "0.5 :5", "0.5:5.0", "0.5::5", "-0.0:5", "0.5:+5"]
    )
    def test_long_pairs_in_any_spelling_read_as_before(self, spelling: str) -> None:
        """One unusual pair among a thousand sends the whole line to the general reading: the same
        numbers, or the same error, as before the fast one."""
        body = b"x" * (COMPACT_FROM + 5)
        pairs = " ".join(["0.1000:1"] * COMPACT_FROM + [spelling])
        text = (
            "version: 1\ninteractions:\n- request: {method: GET, url: 'http://h/'}\n"
            f"  response: {{status: 200, body: {body.decode()}, chunks: '{pairs}'}}\n"
        )
        fields = pairs.replace(":", " ").split()
        try:
            ats, sizes = tuple(map(float, fields[0::2])), tuple(map(int, fields[1::2]))
        except ValueError:
            with pytest.raises(CassetteFormatError, match="expected 'SECONDS:BYTES' pairs"):
                Cassette.loads(text)
            return
        if sum(sizes) != len(body):
            with pytest.raises(CassetteFormatError, match="chunk sizes add up to"):
                Cassette.loads(text)
            return
        assert Cassette.loads(text).interactions[0].response.timing == tuple(zip(ats, sizes, strict=True))

    @pytest.mark.parametrize(
        ("edit", "expected"),
        [
            (lambda v: v[:40] + "!" + v[41:], "is damaged (not base64: edited by hand, or cut?)"),
            (lambda v: v[:-101], "is damaged (not base64"),
            (lambda v: v[:-4], "holds 12,069 bytes, but 1,006 chunks take 12,072"),
            (lambda v: v.replace(f"packed {COMPACT_FROM + 6} ", f"packed {COMPACT_FROM + 5} "), "chunks take"),
            (lambda v: v.replace("packed ", "packd "), "expected 'packed N DATA'"),
            (lambda v: v.replace("packed ", "packed x"), "expected 'packed N DATA'"),
            (lambda v: v.replace("packed ", "packed  "), "expected 'packed N DATA'"),
        ],
        ids=["bad-character", "cut", "cut-at-a-quantum", "count", "name", "no-count", "spaces"],
    )
    def test_a_hand_edited_packed_line_is_refused_with_file_and_line(
        self, edit: Any, expected: str, tmp_path: Path
    ) -> None:
        text = Cassette([long_interaction(COMPACT_FROM + 6)]).dumps()
        number, line = chunks_line(text)
        lines = text.splitlines()
        lines[number - 1] = edit(line)
        path = tmp_path / "edited.yaml"
        path.write_text("\n".join(lines) + "\n")
        with pytest.raises(CassetteFormatError) as info:
            Cassette.load(path)
        message = str(info.value)
        assert message.startswith(f"{path}: line {number}, interactions[0].response.chunks: "), message
        assert expected in message, message
        detail = message.split("chunks: ", 1)[1]
        assert "\n" not in message and ". " not in detail and not detail.endswith("."), message  # one sentence

    @pytest.mark.parametrize("bad", [float("nan"), float("inf"), -1.0, 1e6 + 1], ids=["nan", "inf", "negative", "late"])
    def test_a_packed_time_that_is_no_time_is_named(self, bad: float, tmp_path: Path) -> None:
        item = long_interaction(COMPACT_FROM)
        ats = array("d", (at for at, _ in item.response.timing))
        ats[7] = bad
        sizes = array("I", (size for _, size in item.response.timing))
        text = Cassette([item]).dumps()
        number, line = chunks_line(text)
        packed = f"packed {COMPACT_FROM} {base64.b64encode(ats.tobytes() + sizes.tobytes()).decode()}"
        path = tmp_path / "c.yaml"
        path.write_text(text.replace(line, f"    chunks: {packed}"))
        with pytest.raises(CassetteFormatError, match=rf"line {number}, interactions\[0\].response.chunks: chunk 8 "
                                                      rf"arrives at {re.escape(repr(bad))} seconds; expected 0 to"):  # fmt: skip
            Cassette.load(path)

    def test_sizes_that_do_not_add_up_are_found_and_lint_fixes_them(self, tmp_path: Path) -> None:
        """A hand edit of a long body (its length changed): lint names it, ``--fix`` re-derives the
        packed timing, keeping every chunk's time."""
        item = long_interaction(COMPACT_FROM + 1)
        path = Cassette([item]).save(tmp_path / "c.yaml")
        text = path.read_text()
        assert "      event: ping\n" in text
        path.write_text(text.replace("      event: ping\n", "      event: pong!\n", 1))
        with pytest.raises(CassetteFormatError, match=r"response.chunks: chunk sizes add up to \d+ bytes but the"):
            Cassette.load(path)
        problems = lint_file(path)
        assert any("chunk sizes add up to" in problem.message and problem.fixable for problem in problems), problems
        repaired: list[str] = []
        fixed = Cassette.loads(path.read_text(), path=path, check_lines=False, repair=repaired)
        assert repaired and "edited by hand" in repaired[0]
        again = Cassette.load(fixed.save(tmp_path / "fixed.yaml")).interactions[0].response
        assert again.body == fixed.interactions[0].body and sum(size for _, size in again.timing) == len(again.body)
        assert [at for at, _ in again.timing] == [at for at, _ in item.response.timing]
        assert chunks_line((tmp_path / "fixed.yaml").read_text())[1].startswith("    chunks: packed ")

    def test_a_comment_after_a_packed_line_is_a_comment(self, tmp_path: Path) -> None:
        item = long_interaction(COMPACT_FROM)
        text = Cassette([item]).dumps()
        _, line = chunks_line(text)
        path = tmp_path / "c.yaml"
        path.write_text(text.replace(line, line + "  # recorded on a slow network"))
        assert Cassette.load(path).interactions[0].response.timing == item.response.timing

    def test_a_timing_uint32_cannot_hold_is_written_as_pairs(self) -> None:
        timing = ((0.0, 1 << 32),) + ((0.1, 0),) * COMPACT_FROM
        assert not _timing.dump(timing).startswith("packed")


class TestCompactTiming:
    """It reads as the tuple of pairs it stands for."""

    PAIRS = tuple((0.25 * i, 10 + i) for i in range(50))

    def test_reads_as_its_tuple(self) -> None:
        timing = CompactTiming.of(self.PAIRS)
        assert len(timing) == 50 and bool(timing) and not CompactTiming.of(())
        assert list(timing) == list(self.PAIRS)
        assert list(reversed(timing)) == list(reversed(self.PAIRS))
        assert timing[0] == (0.0, 10) and timing[-1] == self.PAIRS[-1] and timing[-1][0] == 12.25
        assert timing[3:7] == self.PAIRS[3:7] and isinstance(timing[3:7], tuple)
        assert timing == self.PAIRS and operator.eq(self.PAIRS, timing) and timing != self.PAIRS[:-1]
        assert timing != list(self.PAIRS) and timing != CompactTiming.of(self.PAIRS[1:])
        assert hash(timing) == hash(self.PAIRS)
        assert (12.25, 59) in timing and timing.index((0.5, 12)) == 2 and timing.count((0.5, 12)) == 1
        assert timing + ((99.0, 1),) == (*self.PAIRS, (99.0, 1)) and () + timing == self.PAIRS
        assert timing < (*self.PAIRS, (0.0, 0)) and repr(timing) == repr(self.PAIRS)
        assert sum(size for _, size in timing) == sum(size for _, size in self.PAIRS)

    def test_copies_and_pickles(self) -> None:
        timing = CompactTiming.of(self.PAIRS)
        assert copy.copy(timing) is timing and copy.deepcopy(timing) is timing
        assert pickle.loads(pickle.dumps(timing)) == timing

    def test_a_response_holding_one_is_equal_and_hashes_as_with_the_tuple(self) -> None:
        plain = Response(200, (), b"x" * sum(size for _, size in self.PAIRS), self.PAIRS)
        compact = Response(200, (), plain.body, CompactTiming.of(self.PAIRS))  # type: ignore[arg-type]
        assert compact == plain and hash(compact) == hash(plain)
        assert compact.longest_gap == plain.longest_gap and compact.run.timing == plain.run.timing


# --- the block reader -------------------------------------------------------------------------------------

LINES = st.sampled_from([
    "", " ", "   ", "    ", "      ", "      x", "       y", "        ", "      \tz", "     w", "\tq", "  # c",
    "      a b  ", "x", "      \u00e9 \U0001f600", "      \x85", "      \u2028", "      \ufeff", "      \x07", "- z",
    "      body: |", "    chunks: 0.1:1", "      ---", "...", "      #",
])  # fmt: skip


def _document(header: str, lines: list[str], tail: str) -> str:
    return (
        "version: 1\ninteractions:\n- request:\n    method: GET\n    url: https://h/\n  response:\n"
        f"    status: 200\n    body: {header}\n" + "".join(line + "\n" for line in lines) + tail
    )


def _outcome(read: Any) -> Any:
    try:
        return [(item.response.body, tuple(item.response.timing)) for item in read()]
    except CassetteFormatError as exc:
        return str(exc)


class TestBlockReader:
    @settings(max_examples=400, deadline=None, suppress_health_check=list(HealthCheck))
    @given(
        lines=st.lists(LINES, max_size=8),
        header=st.sampled_from(["|", "|-", "|+", "|2", "|2-", "|2+", "|1", "|4+", "|+2", ">", "| # c"]),
        tail=st.sampled_from(["", "    chunks: 0.5:3\n", "    end: clean\n", "  x: 1\n", "lines: 12\n", "      \n"]),
    )
    def test_it_reads_what_the_yaml_parser_reads(self, lines: list[str], header: str, tail: str) -> None:
        """Whatever follows a body's header: the fast reading gives the same bodies, or the same error,
        as the YAML parser reading the whole text (the one authority)."""
        text = _document(header, lines, tail)
        try:
            data = text.encode()
        except UnicodeEncodeError:
            return
        fast = _outcome(lambda: cassette_module._read_fast(data, None) or cassette_module._read_slow(text, None))  # noqa: SLF001
        assert fast == _outcome(lambda: cassette_module._read_slow(text, None))  # noqa: SLF001

    @settings(max_examples=300, deadline=None, suppress_health_check=list(HealthCheck))
    @given(
        st.lists(
            st.binary(max_size=30)
            | st.text(st.characters(exclude_categories=("Cs",)), max_size=30).map(lambda t: t.encode("utf-8"))
            | st.sampled_from([b"\n", b"\n\n", b"\n\n\n", b"  ", b"\t", b"event: x\ndata: {}\n\n"]),
            max_size=12,
        ).map(b"".join),
        st.integers(0, 4),
    )
    def test_a_written_block_is_read_from_the_bytes(self, body: bytes, indent: int) -> None:
        """What the writer makes of a text body, the block reader reads back as that body, at any
        indentation; and exactly where the YAML parser reads it."""
        key = indent * 2
        if not _bodytext.is_plain(body):
            body = _bodytext.encode_escaped(body).encode()
        pieces, feeds = _bodytext.block(body, key)
        block = b"".join(pieces)
        assert block.count(b"\n") == feeds
        assert block.decode() == _bodytext.literal_block(body.decode(), key)
        nesting = b"".join(b" " * level + b"k%d:\n" % level for level in range(0, key, 2))
        document = nesting + b" " * key + b"body:" + block + b" " * key + b"next: 1\n"
        value = yaml.load(document, Loader=getattr(yaml, "CSafeLoader", yaml.SafeLoader))  # noqa: S506
        for level in range(0, key, 2):
            value = value[f"k{level}"]
        assert value["body"].encode() == body
        header = re.search(rb"body: \|(2?)([-+]?)\n", document)
        if header is not None:
            read = _bodytext.read_block(document, header.end(), key, header.group(1) == b"2", header.group(2))
            assert read is not None and read[0] == body
            assert read[1] == len(document) - len(b" " * key + b"next: 1\n")
            assert read[2] == feeds - 1

    def test_a_block_in_another_shape_is_read_by_the_yaml_parser(self) -> None:
        text = Cassette([long_interaction(3)]).dumps()
        assert "    body: |+\n" in text
        text = text.replace("    body: |+\n", "    body: |+2\n")  # the same, spelt otherwise
        assert cassette_module._lift(text.encode()) is None  # noqa: SLF001
        assert Cassette.loads(text).interactions[0].body == long_interaction(3).body

    def test_a_body_that_does_not_load_back_is_written_escaped(self, monkeypatch: pytest.MonkeyPatch) -> None:
        """The writer's check of the whole document: a block that would not read back as its body (here
        one made wrong on purpose) is written again escaped, and checked again."""
        real, made = _bodytext.block, []

        def wrong(text: bytes, key_indent: int) -> tuple[list[Any], int]:
            pieces, feeds = real(text, key_indent)
            made.append(text)
            if len(made) == 1:  # the first rendering of the body only
                pieces = [*pieces[:-1], bytes(pieces[-1]).replace(b"ping", b"pong")]
            return pieces, feeds

        monkeypatch.setattr(cassette_module._bodytext, "block", wrong)  # noqa: SLF001
        item = long_interaction(10)
        assert b"ping" in item.body
        text = Cassette([item]).dumps()
        assert "encoding: escaped" in text and len(made) == 2
        assert Cassette.loads(text).interactions[0].body == item.body

    @settings(max_examples=150, deadline=None, suppress_health_check=list(HealthCheck))
    @given(
        st.binary(max_size=300) | st.text(max_size=300).map(lambda t: t.encode("utf-8", "surrogatepass")),
        st.lists(st.tuples(st.floats(0, 1e6, allow_nan=False), st.integers(0, 400)), max_size=20),
        st.booleans(),
    )
    def test_any_body_and_timing_round_trip(self, body: bytes, pairs: list[tuple[float, int]], packed: bool) -> None:
        """Any body in any chunks at any times: the bytes come back exactly; the times exactly when
        packed, to 0.1 ms as pairs."""
        timing, left = [], len(body)
        for at, size in pairs:
            timing.append((at, min(size, left)))
            left -= timing[-1][1]
        if left or not timing:
            timing.append((pairs[-1][0] if pairs else 0.0, left))
        with pytest.MonkeyPatch.context() as patch:
            patch.setattr(_timing, "COMPACT_FROM", 1 if packed else 10**9)
            response = Response(200, (), body, tuple(timing), "OK", 0.1)
            text = Cassette([Interaction(Request("POST", "https://h/"), response)]).dumps()
            loaded = Cassette.loads(text).interactions[0]
        assert ("chunks: packed" in text) == packed
        assert loaded.body == body
        expected = tuple(timing) if packed else tuple((float(f"{at:.4f}"), size) for at, size in timing)
        assert tuple(loaded.response.timing) == expected


class TestMemory:
    def test_a_loaded_long_stream_holds_little_more_than_its_body(self, tmp_path: Path) -> None:
        """What a loaded cassette keeps: its body, and 12 bytes a chunk of timing (not a tuple of
        pairs, ~90 bytes a chunk), with a constant for the rest."""
        n = 20_000
        path = Cassette([long_interaction(n)]).save(tmp_path / "c.yaml")
        tracemalloc.start()
        try:
            loaded = Cassette.load(path)
            held, _ = tracemalloc.get_traced_memory()
        finally:
            tracemalloc.stop()
        body = len(loaded.interactions[0].body)
        assert held <= 1.2 * body + 64 * 1024, f"{held:,} bytes held for a {body:,}-byte body"


def test_the_persist_benchmark_runs(tmp_path: Path) -> None:
    """A smoke run of benchmarks/persist.py (its numbers are read in benchmarks/README.md)."""
    import json
    import subprocess
    import sys

    out = tmp_path / "persist.json"
    command = [sys.executable, "benchmarks/persist.py", "--sizes", "100,1000", "--rounds", "1", "--no-rss",
               "--json", str(out)]  # fmt: skip
    root = Path(__file__).resolve().parent.parent
    result = subprocess.run(command, cwd=root, capture_output=True, text=True, timeout=300)
    assert result.returncode == 0, result.stderr
    report = json.loads(out.read_text())
    assert [size["events"] for size in report["sizes"]] == [100, 1000]
    medians = report["sizes"][1]["median_cpu_s"]
    assert {"streamtape.save", "streamtape.load", "vcrpy.save", "vcrpy.load"} <= set(medians)
    assert report["sizes"][1]["heap_held_bytes"]["streamtape"] > 0
