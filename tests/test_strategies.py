"""``streamtape.strategies``: fault schedules drawn from the whole catalogue, at positions valid for one
cassette, that shrink toward fewer attempts, simpler faults and earlier positions."""

from __future__ import annotations

import json
import subprocess
import sys
from dataclasses import dataclass
from pathlib import Path
from typing import ClassVar

import pytest

hypothesis = pytest.importorskip("hypothesis")

from hypothesis import HealthCheck, Phase, find, given, seed, settings  # noqa: E402
from hypothesis import strategies as hst  # noqa: E402

import streamtape  # noqa: E402
from streamtape import faults  # noqa: E402
from streamtape import strategies as st_faults  # noqa: E402
from streamtape.errors import ConfigError  # noqa: E402
from streamtape.faults import Context, apply, parse  # noqa: E402
from streamtape.providers import provider_for  # noqa: E402
from tests.support import builders  # noqa: E402
from tests.support.wire_server import DATA_DIR, split_events  # noqa: E402

ROOT = Path(__file__).resolve().parent.parent
TEXT = streamtape.starter("text")  # 7 events, ASCII text
_REAL = split_events((DATA_DIR / "text_multi_delta.sse").read_bytes())


def _delta(text: str) -> bytes:
    payload = {"type": "content_block_delta", "index": 0, "delta": {"type": "text_delta", "text": text}}
    return b"event: content_block_delta\ndata: " + json.dumps(payload, ensure_ascii=False).encode() + b"\n\n"


UTF8_BODY = b"".join([*_REAL[:3], _delta("a café "), _delta("served ☕"), *_REAL[7:]])  # 8 events
FAST = settings(max_examples=60, deadline=None, database=None, suppress_health_check=list(HealthCheck))
#: what ``find`` runs with: deterministic, and without the explain phase (which costs more than the shrinking)
FIND = settings(database=None, derandomize=True, max_examples=1000, phases=[Phase.generate, Phase.shrink],
                suppress_health_check=list(HealthCheck))  # fmt: skip


@pytest.fixture(scope="module")
def utf8_cassette(tmp_path_factory: pytest.TempPathFactory) -> Path:
    return builders.save(tmp_path_factory.mktemp("strategies") / "utf8.yaml", body=UTF8_BODY)


def applies(cassette: Path, schedule: faults.Schedule) -> None:
    """Every step of ``schedule`` applies to every recorded API response (raises ConfigError if not)."""
    for item in streamtape.Cassette.load(cassette).interactions:
        context = Context(provider=provider_for(item.request.method, item.request.url, item.request.headers))
        for step in schedule.steps:
            apply(list(step), item.actions(), context)


# --- what is drawn ------------------------------------------------------------------------------------------


def test_the_shape_of_a_cassette(utf8_cassette: Path) -> None:
    text = st_faults.shape(TEXT)
    assert (text.events, text.size) == (7, len(streamtape.Cassette.load(TEXT).interactions[0].body))
    assert "split_utf8" not in text.kinds  # its text is ASCII: nothing to split inside a character
    assert "candidate_finish" not in text.kinds  # a Gemini fault means nothing on an Anthropic stream
    assert text.kinds[:4] == ("disconnect", "reset", "truncate", "rate_limit")  # simplest first
    utf8 = st_faults.shape(utf8_cassette)
    assert "split_utf8" in utf8.kinds and utf8.events == 8
    inside = [point for point in utf8.traps if point < len(UTF8_BODY) and 0x80 <= UTF8_BODY[point] < 0xC0]
    assert len(inside) == 1 + 2  # before é's second byte, and before ☕'s second and third


def test_a_content_length_body_has_no_chunk_lines_to_break(tmp_path: Path) -> None:
    body = builders.TEXT_BASIC
    path = builders.save(tmp_path / "c.yaml", headers=(*builders.SSE, ("content-length", str(len(body)))))
    assert "bad_chunk" not in st_faults.shape(path).kinds
    assert "bad_chunk" in st_faults.shape(builders.save(tmp_path / "chunked.yaml")).kinds


@FAST
@given(data=hst.data())
def test_every_drawn_schedule_reads_back_from_its_spec_and_applies(data: hst.DataObject) -> None:
    schedule = data.draw(st_faults.schedules(TEXT, max_attempts=3))
    parsed = parse(schedule.spec())
    assert (parsed.steps, parsed.every) == (schedule.steps, schedule.every)
    assert repr(schedule) == f"faults.parse({schedule.spec()!r})"
    assert 1 <= len(schedule.steps) <= 3 and any(schedule.steps)
    applies(TEXT, schedule)


@FAST
@given(data=hst.data())
def test_positions_are_the_cassettes(data: hst.DataObject, utf8_cassette: Path) -> None:
    fault = data.draw(st_faults.faults(utf8_cassette))
    after, at_byte = getattr(fault, "after", None), getattr(fault, "at_byte", None)
    assert after is None or 0 <= after <= 8
    assert at_byte is None or 0 <= at_byte <= len(UTF8_BODY)
    if fault.name in ("corrupt", "drop", "duplicate"):
        assert 1 <= fault.event <= 8  # type: ignore[attr-defined]
    applies(utf8_cassette, faults.sequence(fault))


def test_byte_positions_fall_inside_characters_and_crlf_pairs(tmp_path: Path, utf8_cassette: Path) -> None:
    def inside_a_character(fault: faults.Fault) -> bool:
        at = getattr(fault, "at_byte", None)
        return at is not None and 0 < at < len(UTF8_BODY) and 0x80 <= UTF8_BODY[at] < 0xC0

    found = find(st_faults.faults(utf8_cassette, kinds=["disconnect"]), inside_a_character,
                 settings=FIND)  # fmt: skip
    assert found.at_byte == UTF8_BODY.index("é".encode()) + 1  # the first one: between the two bytes of é
    body = builders.TEXT_BASIC.replace(b"\n", b"\r\n")
    crlf = builders.save(tmp_path / "crlf.yaml", body=body)

    def between(fault: faults.Fault) -> bool:
        at = getattr(fault, "at_byte", None)
        return at is not None and body[at - 1 : at + 1] == b"\r\n"

    found = find(st_faults.faults(crlf, kinds=["disconnect"]), between, settings=FIND)
    assert found.at_byte == body.index(b"\r\n") + 1  # the first CR-LF pair's middle


def test_a_utf8_split_is_drawn(utf8_cassette: Path) -> None:
    found = find(st_faults.faults(utf8_cassette), lambda f: f.name == "split_utf8",
                 settings=FIND)  # fmt: skip
    assert found == faults.CATALOGUE["split_utf8"]()


# --- shrinking ----------------------------------------------------------------------------------------------


def shrunk(condition: object, cassette: Path = TEXT, **options: object) -> str:
    return find(st_faults.schedules(cassette, **options), condition, settings=FIND).spec()  # type: ignore[arg-type]


def test_shrinks_toward_the_simplest_fault() -> None:
    assert shrunk(lambda s: True) == "disconnect"


def test_shrinks_toward_earlier_positions() -> None:
    def late_cut(s: faults.Schedule) -> bool:
        return any(f.name in ("disconnect", "reset") and (f.after or 0) >= 3 for step in s.steps for f in step)

    assert shrunk(late_cut, kinds=["disconnect", "reset", "truncate", "stall"]) == "disconnect:after=3"


def test_shrinks_toward_fewer_attempts() -> None:
    def a_429_then_a_cut(s: faults.Schedule) -> bool:
        names = [[f.name for f in step] for step in s.steps]
        return any("rate_limit" in a and ("disconnect" in b or "reset" in b) for a, b in zip(names, names[1:], strict=False))

    assert shrunk(a_429_then_a_cut, kinds=["disconnect", "reset", "truncate", "rate_limit", "stall"]) == (
        "rate_limit -> disconnect")
    few = ["disconnect", "reset", "rate_limit"]
    assert shrunk(lambda s: sum(1 for step in s.steps if step) >= 2, kinds=few) == "disconnect -> disconnect"
    assert shrunk(lambda s: len(s.steps) >= 2, kinds=few) == "disconnect -> ok"  # the first attempt only


def test_shrinks_toward_fewer_faults_per_attempt() -> None:
    def corrupt_and_late(s: faults.Schedule) -> bool:
        return any(f.name == "corrupt" for step in s.steps for f in step)

    assert shrunk(corrupt_and_late, kinds=["disconnect", "truncate", "corrupt", "ping"]) == "corrupt"


def test_a_seed_reproduces_the_draws() -> None:
    def draws(number: int) -> list[str]:
        seen: list[str] = []

        @seed(number)
        @settings(max_examples=25, database=None, deadline=None)
        @given(st_faults.schedules(TEXT))
        def record(schedule: faults.Schedule) -> None:
            seen.append(schedule.spec())

        record()
        return seen

    assert draws(7) == draws(7) and draws(7) != draws(8)


def test_the_failure_report_shows_the_spec() -> None:
    @settings(max_examples=200, database=None, deadline=None, phases=[Phase.generate, Phase.shrink])
    @given(st_faults.schedules(TEXT))
    def app_survives(schedule: faults.Schedule) -> None:
        assert not any(f.name == "truncate" for step in schedule.steps for f in step)

    with pytest.raises(AssertionError) as error:
        app_survives()
    notes = "\n".join(getattr(error.value, "__notes__", []))
    assert """streamtape fault schedule: 'truncate:after=0'  (pytest: @pytest.mark.tape_faults("truncate:after=0"))""" in notes
    assert "faults.parse('truncate:after=0')" in notes  # the falsifying example, as its repr


# --- options and errors -------------------------------------------------------------------------------------


def test_kinds_and_exclude_choose_what_is_drawn() -> None:
    only = find(st_faults.faults(TEXT, kinds=["stall", "rate_limit"]), lambda f: True, settings=FIND)
    assert only == faults.rate_limit()  # the simpler of the two
    assert shrunk(lambda s: True, exclude=["disconnect", "reset"]) == "truncate:after=0"
    with pytest.raises(ConfigError, match=r"strategies: unknown faults \['disconect'\]; valid: refuse, reset"):
        st_faults.schedules(TEXT, kinds=["disconect"])
    with pytest.raises(ConfigError, match=r"no fault left to draw for .*text.yaml \(split_utf8 mean nothing for its "
                                          r"recorded responses\); pass other kinds="):  # fmt: skip
        st_faults.faults(TEXT, kinds=["split_utf8"])
    with pytest.raises(ConfigError, match="max_attempts=0 must be a whole number >= 1"):
        st_faults.schedules(TEXT, max_attempts=0)
    with pytest.raises(ConfigError, match="does not exist; record it first"):
        st_faults.schedules("missing.yaml")


def test_a_users_fault_is_drawn_with_its_positions(tmp_path: Path) -> None:
    @dataclass(frozen=True, kw_only=True)
    class Hiccup(faults.Fault):
        name: ClassVar[str] = "hiccup_for_strategies"
        after: int = 0

        def __call__(self, plan: faults.Plan, context: faults.Context) -> faults.Plan:
            plan.position(self.spec(), after=self.after, at_byte=None)
            return plan

    try:
        shape = st_faults.shape(builders.save(tmp_path / "c.yaml"))
        assert shape.kinds[-1] == "hiccup_for_strategies"
        late = find(st_faults.faults(shape, kinds=["hiccup_for_strategies"]), lambda f: f.after >= 5,
                    settings=FIND)  # fmt: skip
        assert late == Hiccup(after=5)
    finally:
        faults.unregister("hiccup_for_strategies")


def test_a_cassette_without_an_api_call(tmp_path: Path) -> None:
    path = builders.save(tmp_path / "c.yaml", "http://example.test/health")
    with pytest.raises(ConfigError, match="holds no model API call with a response, so no fault can shape it"):
        st_faults.schedules(path)


def test_without_hypothesis_the_import_says_what_to_install() -> None:
    code = "import sys; sys.modules['hypothesis'] = None\nimport streamtape.strategies"
    result = subprocess.run([sys.executable, "-c", code], capture_output=True, text=True, cwd=ROOT, timeout=120)
    assert result.returncode == 1
    assert result.stderr.strip().splitlines()[-1] == (
        "ImportError: streamtape.strategies needs Hypothesis, which is not installed: pip install "
        "'pytest-streamtape[explore]' (or pip install hypothesis)"
    )


# --- the sweep ---------------------------------------------------------------------------------------------


def test_the_canonical_schedules_cover_every_family_and_pair() -> None:
    canonical = st_faults.canonical(TEXT)
    specs = [schedule.spec() for schedule in canonical]
    assert specs[:4] == ["disconnect:after=1", "disconnect:after=1 -> ok", "disconnect:after=3",
                         "disconnect:after=3 -> ok"]  # fmt: skip
    assert "rate_limit -> disconnect:after=3" in specs and "truncate:after=3 -> stall:after=3" in specs
    assert len(specs) == len(set(specs)) == st_faults.sweep_size(TEXT)
    for schedule in canonical:
        assert parse(schedule.spec()).steps == schedule.steps
        applies(TEXT, schedule)
    seen = find(st_faults.sweep(TEXT), lambda s: "->" in s.spec(), settings=FIND)
    assert seen.spec() == "disconnect:after=1 -> ok"


def test_refine_keeps_the_families_and_draws_the_rest() -> None:
    canonical = parse("rate_limit -> disconnect:after=3")
    refined = find(st_faults.refine(TEXT, canonical), lambda s: True, settings=FIND)
    assert refined.spec() == "rate_limit -> disconnect"
    late = find(st_faults.refine(TEXT, canonical),
                lambda s: (s.steps[1][0].after or 0) >= 2, settings=FIND)  # fmt: skip
    assert late.spec() == "rate_limit -> disconnect:after=2"
