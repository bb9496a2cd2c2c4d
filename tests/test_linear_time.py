"""Linear time, kept: SSE parsing, event boundaries, inspect, lint, and planning, applying and playing
every fault kind do work in proportion to the body, measured by counting work, never by a clock.

Two counters, both deterministic:

- **Python work**: the bytecode instructions executed (``sys.settrace`` with opcode events). A loop
  inside a loop over the events (a scan per event, a list rebuilt per piece) shows as n² here.
- **Byte work**: the body is handed in as ``Tracked``, a ``bytes`` whose slices, concatenations,
  line splits and searches count the bytes they touch and hand on ``Tracked`` bytes in turn. Copying
  what is left of a buffer once per line (the first SSE decoder's ``buffer = buffer[end:]``), or
  searching it from its start each time, shows as n² here, though it costs no bytecode.

Each check compares n events with 4n: linear work grows 4x (a fixed part makes it a little less);
quadratic work grows about 16x. The bounds allow 4x plus a quarter.
"""

from __future__ import annotations

import dataclasses
import random
import sys
from collections.abc import Callable
from pathlib import Path
from typing import Any

import pytest

import streamtape.cassette as cassette_module
import streamtape.faults._plan as plan_module
from streamtape import Cassette, Interaction, Request, Response
from streamtape.engine.playback import Playback
from streamtape.faults import Context, apply, parse
from streamtape.faults.catalogue import CATALOGUE
from streamtape.framing.sse import SSE
from streamtape.lint import lint_file
from streamtape.report import describe_cassette, timeline
from streamtape.sse import SSEDecoder, event_ends, parse_events
from streamtape.wire import Action, Chunks, Respond
from tests.support.wire_server import DATA_DIR, split_events

N = 150  # events in the smaller body; the larger has 4N
GROWTH = 4 * 1.25  # linear is <= 4x from N to 4N events; quadratic is ~16x

pytestmark = pytest.mark.skipif(sys.gettrace() is not None, reason="a tracer (debugger, coverage) is already active")


# --- counters --------------------------------------------------------------------------------------


def opcodes(func: Callable[[], object]) -> int:
    """Bytecode instructions ``func`` executes (in every Python function it calls)."""
    count = 0

    def local(frame: Any, event: str, arg: Any) -> Any:
        nonlocal count
        if event == "opcode":
            count += 1
        return local

    def start(frame: Any, event: str, arg: Any) -> Any:
        frame.f_trace_opcodes = True
        return local

    sys.settrace(start)
    try:
        func()
    finally:
        sys.settrace(None)
    return count


class Tracked(bytes):
    """Bytes that count the bytes each operation on them copies or scans (in ``Tracked.touched``),
    and whose slices, sums, lines and strips are ``Tracked`` too."""

    touched = 0

    @classmethod
    def _count(cls, size: int) -> None:
        Tracked.touched += size

    def __getitem__(self, key: Any) -> Any:
        value = bytes.__getitem__(self, key)
        if isinstance(key, slice):
            self._count(len(value))
            return Tracked(value)
        return value

    def __add__(self, other: Any) -> Tracked:
        value = bytes.__add__(self, other)
        self._count(len(value))
        return Tracked(value)

    def __radd__(self, other: Any) -> Any:
        if not isinstance(other, bytes):
            return NotImplemented  # bytearray += Tracked: extended in place, as with any bytes
        value = bytes.__add__(other, self)
        self._count(len(value))
        return Tracked(value)

    def _scan(self, name: str, sub: Any, start: int | None = None, *rest: Any) -> int:
        found = getattr(bytes, name)(self, sub, start if start is not None else 0, *rest)
        begin = 0 if start is None else start if start >= 0 else max(len(self) + start, 0)
        self._count((found + 1 - begin) if found >= 0 else max(len(self) - begin, 0))
        return found

    def find(self, sub: Any, *args: Any) -> int:  # type: ignore[override]
        return self._scan("find", sub, *args)

    def rfind(self, sub: Any, *args: Any) -> int:  # type: ignore[override]
        found = bytes.rfind(self, sub, *args)
        self._count(len(self))
        return found

    def splitlines(self, keepends: bool = False) -> list[bytes]:  # type: ignore[override]
        self._count(len(self))
        return [Tracked(line) for line in bytes.splitlines(self, keepends)]

    def split(self, *args: Any, **kwargs: Any) -> list[bytes]:  # type: ignore[override]
        self._count(len(self))
        return [Tracked(part) for part in bytes.split(self, *args, **kwargs)]

    def rstrip(self, *args: Any) -> Tracked:  # type: ignore[override]
        self._count(len(self))
        return Tracked(bytes.rstrip(self, *args))

    def strip(self, *args: Any) -> Tracked:  # type: ignore[override]
        self._count(len(self))
        return Tracked(bytes.strip(self, *args))

    def decode(self, *args: Any, **kwargs: Any) -> str:
        self._count(len(self))
        return bytes.decode(self, *args, **kwargs)

    def count(self, *args: Any) -> int:  # type: ignore[override]
        self._count(len(self))
        return bytes.count(self, *args)


def work(func: Callable[[], object]) -> dict[str, int]:
    """The bytecode ``func`` executes and the bytes it copies or scans through ``Tracked`` operations."""
    Tracked.touched = 0
    count = opcodes(func)
    return {"bytecode": count, "bytes touched": Tracked.touched}


MEASURES = ("bytecode", "bytes touched")


def assert_linear(
    setup: Callable[[int], Callable[[], object]], what: str, *, measures: tuple[str, ...] = MEASURES
) -> None:
    """``setup(n)`` gives the work for ``n`` events; it must grow linearly from N to 4N events."""
    setup(N)()  # once first, uncounted: what runs only the first time (imports, caches) is not the work
    small, large = work(setup(N)), work(setup(4 * N))
    for measure in measures:
        assert small[measure] > 0, f"{what}: no {measure} was counted"
        assert large[measure] <= GROWTH * small[measure], (
            f"{what}: {measure} grows {large[measure] / small[measure]:.1f}x from {N} to {4 * N} events "
            f"({small[measure]:,} -> {large[measure]:,}); linear work grows at most {GROWTH}x, quadratic about 16x"
        )


# --- bodies and cassettes ----------------------------------------------------------------------------

_EVENTS = split_events((DATA_DIR / "text_multi_delta.sse").read_bytes())


def _named(name: str) -> bytes:
    return next(e for e in _EVENTS if e.startswith(f"event: {name}\n".encode()))


_DELTAS = [e for e in _EVENTS if e.startswith(b"event: content_block_delta\n")]
NEWLINES = {"lf": b"\n", "crlf": b"\r\n", "cr": b"\r"}


def stream_events(n: int, newline: bytes = b"\n", *, accented: bool = False) -> list[bytes]:
    """An Anthropic stream of ``n`` events made of real event bytes (as benchmarks/run.py builds it);
    ``accented``: each text delta begins with an "é" (two UTF-8 bytes: what split_utf8 splits)."""
    head = [_named("message_start"), _named("content_block_start"), _named("ping")]
    tail = [_named("content_block_stop"), _named("message_delta"), _named("message_stop")]
    middle = [_DELTAS[i % len(_DELTAS)] for i in range(n - len(head) - len(tail))]
    if accented:
        middle = [event.replace(b'"text":"', '"text":"é'.encode(), 1) for event in middle]
    return [event.replace(b"\n", newline) for event in head + middle + tail]


def interaction(n: int, *, chunking: str = "event", newline: bytes = b"\n", body_type: type = bytes,
                accented: bool = False) -> Interaction:  # fmt: skip
    events = stream_events(n, newline, accented=accented)
    body = body_type(b"".join(events))
    if chunking == "event":
        sizes = [len(e) for e in events]
    elif chunking == "one":
        sizes = [len(body)]
    else:  # small random chunks, a CR often at a chunk's end
        rng, sizes, left = random.Random(n), [], len(body)
        while left:
            sizes.append(min(left, rng.randint(1, 40)))
            left -= sizes[-1]
    timing = tuple((round(0.4 + 0.002 * i, 4), size) for i, size in enumerate(sizes))
    headers = (("content-type", "text/event-stream"),)
    response = Response(200, headers, body, timing, "OK", 0.4)
    request = Request("POST", "https://api.anthropic.com/v1/messages", (("content-type", "application/json"),),
                      b'{"model":"claude-test","max_tokens":1024,"stream":true}')  # fmt: skip
    return Interaction(request, response)


def fault_specs(n: int, size: int) -> dict[str, str]:
    """Every fault kind in the catalogue, positioned mid-stream where it takes a position."""
    mid = n // 2
    specs = {
        "refuse": "refuse", "timeout": "timeout", "http_error": "http_error:status=503",
        "rate_limit": "rate_limit", "overloaded": "overloaded", "server_error": "server_error",
        "reset": f"reset:after={mid}", "disconnect": f"disconnect:at_byte={size // 2}",
        "stall": f"stall:after={mid},seconds=5", "error_event": f"error_event:after={mid}", "truncate": "truncate",
        "delay": "delay:per_event=0.001,jitter=0.0005", "rechunk": "rechunk:size=64",
        "corrupt": f"corrupt:event={mid}", "duplicate": f"duplicate:event={mid}", "drop": f"drop:event={mid}",
        "ping": "ping:every=10", "connect_timeout": "connect_timeout", "write_timeout": "write_timeout", "pool_timeout": "pool_timeout", "bad_status": "bad_status", "bad_chunk": f"bad_chunk:after={mid}", "corrupt_gzip": "corrupt_gzip", "bom": "bom", "json_body": "json_body", "linger": "linger",
        "split": f"split:at_byte={size // 2}", "split_crlf": "split_crlf", "split_utf8": "split_utf8",
    }  # fmt: skip
    # a fault of one provider's streams only is checked on that provider's stream (tests/test_provider_<name>.py)
    every = {name for name, cls in CATALOGUE.items() if not getattr(cls, "providers", ())}
    assert set(specs) == every, "a new fault kind: add it here so its cost is checked too"
    return specs


# --- SSE parsing and event boundaries ----------------------------------------------------------------


@pytest.mark.parametrize("newline", list(NEWLINES))
@pytest.mark.parametrize("chunking", ["whole", "event", "small"])
def test_sse_decoding_is_linear(newline: str, chunking: str) -> None:
    def decode(n: int) -> Callable[[], object]:
        item = interaction(n, chunking="event" if chunking == "whole" else chunking, newline=NEWLINES[newline],
                           body_type=Tracked)  # fmt: skip
        assert item.response is not None
        chunks = [Tracked(chunk.data) for chunk in item.chunks] if chunking != "whole" else [item.body]

        def run() -> None:
            decoder = SSEDecoder()
            events = [event for chunk in chunks for event in decoder.decode(chunk)] + decoder.flush()
            assert len(events) == n

        return run

    assert_linear(decode, f"SSEDecoder, {chunking} chunks, {newline}")


def test_a_long_line_in_tiny_chunks_is_linear() -> None:
    """One line of many bytes fed a byte or two at a time is kept growing in place, not re-copied."""

    def feed(n: int) -> Callable[[], object]:
        body = b"data: " + b"x" * (50 * n) + b"\r\n\r\n"
        pieces = [Tracked(body[i : i + 2]) for i in range(0, len(body), 2)]

        def run() -> None:
            decoder = SSEDecoder()
            events = [event for piece in pieces for event in decoder.decode(piece)] + decoder.flush()
            assert [len(e.data) for e in events] == [50 * n]

        return run

    assert_linear(feed, "one long line in 2-byte chunks")


@pytest.mark.parametrize("newline", list(NEWLINES))
def test_event_boundaries_are_linear(newline: str) -> None:
    def bodies(n: int) -> Callable[[], object]:
        body = Tracked(b"".join(stream_events(n, NEWLINES[newline])))
        return lambda: event_ends(body)

    assert_linear(bodies, f"event_ends, {newline}")
    body = b"".join(stream_events(N, NEWLINES[newline]))
    assert event_ends(body) == [event.end for event in parse_events(body)]


# --- inspect and lint ------------------------------------------------------------------------------


def test_inspect_is_linear() -> None:
    def inspect(n: int) -> Callable[[], object]:
        cassette = Cassette([interaction(n, body_type=Tracked)])

        def run() -> None:
            (report,) = describe_cassette(cassette)["interactions"]
            timeline(report["arrivals"], report["duration"])

        return run

    assert_linear(inspect, "inspect (describe_cassette and its timeline)")


def test_lint_is_linear(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    # the body a loaded cassette parses into events, as Tracked bytes
    monkeypatch.setattr(SSE, "events", lambda body: parse_events(Tracked(body)))

    def lint(n: int) -> Callable[[], object]:
        path = Cassette([interaction(n)]).save(tmp_path / f"lint-{n}.yaml")
        return lambda: lint_file(path)

    assert_linear(lint, "lint_file (load, SSE checks, secrets)")


# --- faults: planning, applying, playing ---------------------------------------------------------------


@pytest.fixture(autouse=True)
def cold(monkeypatch: pytest.MonkeyPatch) -> None:
    """Every load parses and every plan maps its events, as the first one does: the work counted is
    the work itself, not a cache hit (the caches are what a sweep gains, measured in benchmarks/sweep.py)."""
    monkeypatch.setattr(cassette_module._LOADED, "LIMIT", 0)  # noqa: SLF001
    monkeypatch.setattr(plan_module, "_MAPPED", _Forgetful())


class _Forgetful(dict):  # type: ignore[type-arg]
    def __setitem__(self, key: Any, value: Any) -> None:
        pass


@pytest.fixture
def tracked_planning(monkeypatch: pytest.MonkeyPatch) -> None:
    """The body a plan joins from its sends is searched for event boundaries as ``Tracked`` bytes."""
    monkeypatch.setattr(SSE, "event_ends", lambda body: event_ends(Tracked(body)))


@pytest.mark.usefixtures("tracked_planning")
@pytest.mark.parametrize("chunking", ["event", "one", "small"])
@pytest.mark.parametrize("kind", sorted(name for name, cls in CATALOGUE.items() if not getattr(cls, "providers", ())))
def test_every_fault_is_linear(kind: str, chunking: str) -> None:
    """Planning (splitting the response at its events) and applying each fault kind, on a recording in
    one chunk per event, in one chunk, and in chunks of a few bytes."""

    def plan(n: int) -> Callable[[], object]:
        item = interaction(n, chunking=chunking, body_type=Tracked, accented=kind == "split_utf8")
        faults = parse(fault_specs(n, len(item.body))[kind]).faults_for(0)
        return lambda: apply(faults, item.actions(), Context())

    assert_linear(plan, f"{kind}, {chunking} chunks")


@pytest.mark.usefixtures("tracked_planning")
def test_rechunking_into_large_chunks_is_linear() -> None:
    """A chunk is gathered from many pieces once, not by concatenating the growing chunk per piece."""

    def plan(n: int) -> Callable[[], object]:
        item = interaction(n, body_type=Tracked)
        faults = parse(f"rechunk:size={len(item.body)}").faults_for(0)
        return lambda: apply(faults, item.actions(), Context())

    assert_linear(plan, "rechunk into one chunk")


def _play(actions: list[Action]) -> int:
    playback = Playback(actions, read_timeout=None, whole_runs=True)
    if not isinstance(playback.head()[1], Respond):
        return 0
    received = 0
    for _, item in playback.body():  # bytes, a recorded run, then the end or the fault's cut
        if isinstance(item, bytes | Chunks):
            received += len(item) if isinstance(item, bytes) else len(item.data)
    return received


@pytest.mark.parametrize("spec", ["disconnect:after=5", "disconnect:after=LATE", "stall:after=LATE,seconds=1",
                                  "ping:every=3", "rechunk:size=7"])  # fmt: skip
@pytest.mark.usefixtures("tracked_planning")
def test_faulted_replay_is_linear(spec: str) -> None:
    """A faulted response, planned and played to the app (the in-process executor)."""

    def replay(n: int) -> Callable[[], object]:
        item = interaction(n, body_type=Tracked)
        faults = parse(spec.replace("LATE", str(n * 9 // 10))).faults_for(0)
        return lambda: _play(apply(faults, item.actions(), Context()))

    assert_linear(replay, f"{spec}, planned and played")


# --- the counters themselves ---------------------------------------------------------------------------


def test_the_counters_see_quadratic_work() -> None:
    """What these tests would miss, they must not: the first SSE decoder's way of consuming its buffer
    (copy the rest after every line; search the whole rest for a CR) counts as quadratic."""

    def quadratic(n: int) -> Callable[[], object]:
        body = Tracked(b"".join(stream_events(n)))

        def run() -> None:
            buffer = b"" + body
            while (end := buffer.find(b"\n")) >= 0:
                buffer.find(b"\r")
                buffer = buffer[end + 1 :]

        return run

    with pytest.raises(AssertionError, match="quadratic about 16x"):
        assert_linear(quadratic, "the first decoder's buffer handling", measures=("bytes touched",))

    def nested(n: int) -> Callable[[], object]:
        items = list(range(n))
        return lambda: [next(i for i in items if i >= j) for j in items]

    with pytest.raises(AssertionError, match="quadratic about 16x"):
        assert_linear(nested, "a scan per item", measures=("bytecode",))


# --- the scaling benchmark keeps working -----------------------------------------------------------------


def test_the_scaling_benchmark_runs(tmp_path: Path) -> None:
    """A smoke run of benchmarks/scale.py (its numbers are read in benchmarks/README.md)."""
    import json
    import subprocess

    from tests.support import sdk

    if sdk.SDK_MAJOR < 1:
        pytest.skip("the benchmarks measure the httpx2-based SDK (anthropic >= 1)")
    out = tmp_path / "scale.json"
    command = [sys.executable, "benchmarks/scale.py", "--sizes", "100,1000", "--rounds", "1", "--json", str(out)]
    root = Path(__file__).resolve().parent.parent
    result = subprocess.run(command, cwd=root, capture_output=True, text=True, timeout=300)
    assert result.returncode == 0, result.stderr
    report = json.loads(out.read_text())
    stages = {growth["stage"] for growth in report["growth"]}
    assert {"load", "inspect", "lint", "replay", "fault.early", "fault.late"} <= stages
    measured = {kind for kind, cls in CATALOGUE.items() if not cls.providers} - {"split_utf8"}  # as scale.py says
    assert {f"plan.{kind}" for kind in measured} <= stages
    assert all(growth["verdict"] in ("PASS", "MISS") for growth in report["growth"])


def test_the_scaling_benchmark_runs_on_the_bedrock_road(tmp_path: Path) -> None:
    """``benchmarks/scale.py --framing eventstream``: the same stages for AWS event-stream frames through boto3."""
    import json
    import subprocess

    pytest.importorskip("boto3")
    out = tmp_path / "scale.json"
    command = [sys.executable, "benchmarks/scale.py", "--framing", "eventstream", "--sizes", "20,80", "--rounds", "1",
               "--json", str(out)]  # fmt: skip
    root = Path(__file__).resolve().parent.parent
    result = subprocess.run(command, cwd=root, capture_output=True, text=True, timeout=300)
    assert result.returncode == 0, result.stderr
    assert "Bedrock ConverseStream" in result.stdout and "replay, boto3 converse_stream" in result.stdout
    report = json.loads(out.read_text())
    stages = {growth["stage"] for growth in report["growth"]}
    assert report["framing"] == "eventstream"
    assert {"save", "load", "inspect", "lint", "replay", "fault.early", "fault.late"} <= stages
    assert {"plan.corrupt", "plan.error_event", "plan.bad_crc", "plan.exception_frame"} <= stages


# --- every framing and provider: event streams, NDJSON, provider faults, whole messages --------------------

_WORDS = ["the", "quick", "brown", "fox", "jumps", "over", "a", "lazy", "dog", "while", "some", "more", "words",
          "follow", "it", "here"]  # fmt: skip
PROVIDERS = ("anthropic", "openai", "openai-responses", "gemini", "bedrock")


def provider_interaction(provider: str, n: int, *, tool: bool = False, body_type: type = bytes) -> Interaction:
    """A stream of about ``n`` events in ``provider``'s framing (``streamtape synth``: word-sized text
    deltas, one chunk per event); ``tool``: with a tool call whose input arrives in about ``n`` pieces."""
    from streamtape.synth import Timing, synthesize

    words = " ".join(_WORDS[i % len(_WORDS)] for i in range(n * 5 // 2))  # a piece is 1 to 4 words
    tools = [("lookup", {"query": words})] if tool else None
    item = synthesize(text=words, tools=tools, provider=provider, timing=Timing(per_event=0.002, jitter=0.0))
    assert item.response is not None
    return Interaction(item.request, dataclasses.replace(item.response, body=body_type(item.response.body)))


def ndjson_body(n: int) -> bytes:
    lines = [b'{"type":"delta","text":"%s"}\n' % _WORDS[i % len(_WORDS)].encode() for i in range(n)]
    return b"".join(lines[: n // 2] + [b"\n"] + lines[n // 2 :])  # and a blank line, which is not an event


@pytest.mark.parametrize("framing", ["eventstream", "ndjson"])
def test_event_stream_and_ndjson_framing_is_linear(framing: str) -> None:
    """Event boundaries and events of AWS event-stream frames (walked by their lengths) and of NDJSON lines."""
    from streamtape.framing import get as framer_named

    framer = framer_named(framing)

    def frame(n: int) -> Callable[[], object]:
        body = Tracked(provider_interaction("bedrock", n).body if framing == "eventstream" else ndjson_body(n))

        def run() -> None:
            ends = framer.event_ends(body)
            assert [event.end for event in framer.events(body)] == ends and len(ends) >= n * 9 // 10

        return run

    assert_linear(frame, f"the {framing} framer")


def test_an_event_stream_cassette_saves_and_loads_linearly(tmp_path: Path) -> None:
    """A Bedrock body is stored as one decoded frame per entry and encoded again on load (``_frametext``)."""

    def save_and_load(n: int) -> Callable[[], object]:
        cassette, path = Cassette([provider_interaction("bedrock", n)]), tmp_path / f"frames-{n}.yaml"

        def run() -> None:
            cassette.save(path)
            assert Cassette.load(path).interactions[0].body == cassette.interactions[0].body

        return run

    assert_linear(save_and_load, "save and load of an event-stream cassette", measures=("bytecode",))


@pytest.fixture
def tracked_framers(monkeypatch: pytest.MonkeyPatch) -> None:
    """Every framer reads the body it is given as ``Tracked`` bytes (planning, lint, inspect)."""
    from streamtape.framing import registered

    for framer in registered():
        for name in ("event_ends", "events"):
            method = getattr(framer, name)
            monkeypatch.setattr(framer, name, lambda body, method=method: method(Tracked(body)))


@pytest.mark.usefixtures("tracked_framers")
@pytest.mark.parametrize("provider", [p for p in PROVIDERS if p != "anthropic"])  # Anthropic's: test_lint_is_linear
def test_lint_and_inspect_are_linear_for_every_provider(provider: str, tmp_path: Path) -> None:
    def check(n: int) -> Callable[[], object]:
        path = Cassette([provider_interaction(provider, n, tool=True)]).save(tmp_path / f"{provider}-{n}.yaml")

        def run() -> None:
            assert not [p for p in lint_file(path) if p.kind != "readability"]
            (report,) = describe_cassette(Cassette.load(path))["interactions"]
            timeline(report["arrivals"], report["duration"])

        return run

    assert_linear(check, f"lint and inspect of a {provider} stream")


class TrackedStr(str):
    """Text whose concatenations count the characters they copy (in ``Tracked.touched``): building a
    text from many deltas by ``text = text + delta`` copies all of it per delta, which shows as n²."""

    def __add__(self, other: Any) -> TrackedStr:
        value = str.__add__(self, other)
        Tracked._count(len(value))
        return TrackedStr(value)

    def __radd__(self, other: Any) -> Any:  # "" + delta: a str subclass's reflected method runs first
        if not isinstance(other, str):
            return NotImplemented
        value = str.__add__(other, self)
        Tracked._count(len(value))
        return TrackedStr(value)


def _tracked_json(value: Any) -> Any:
    if isinstance(value, str):
        return TrackedStr(value)
    if isinstance(value, list):
        return [_tracked_json(item) for item in value]
    if isinstance(value, dict):
        return {key: _tracked_json(item) for key, item in value.items()}
    return value


@pytest.fixture
def tracked_json(monkeypatch: pytest.MonkeyPatch) -> None:
    """Every event's JSON holds ``TrackedStr`` text, and parsing it counts its characters (the work
    that is linear, so the count is never zero)."""
    import json
    import types

    import streamtape.sse as sse_module

    def loads(text: Any, *args: Any, **kwargs: Any) -> Any:
        Tracked._count(len(text))
        return _tracked_json(json.loads(text, *args, **kwargs))

    monkeypatch.setattr(sse_module, "json", types.SimpleNamespace(loads=loads))


@pytest.mark.usefixtures("tracked_json")
@pytest.mark.parametrize("provider", PROVIDERS)
def test_whole_messages_and_tool_calls_join_their_deltas_once(provider: str) -> None:
    """What ``json_body`` answers (``whole_message``) and what ``inspect`` lists (``tool_calls``) join
    the text and the tool input from their deltas once, not by adding each delta to the text so far."""
    from streamtape.framing import framer_for
    from streamtape.providers import get as provider_named

    api = provider_named(provider)

    def build(n: int) -> Callable[[], object]:
        item = provider_interaction(provider, n, tool=True)
        assert item.response is not None
        framer, body = framer_for(item.response.headers), item.body

        def run() -> None:
            events = framer.events(body)
            api.whole_message(events)
            calls = api.tool_calls(events)  # the Anthropic provider lists none (inspect shows its blocks)
            assert calls == [] if provider == "anthropic" else len(calls) == 1 and calls[0].startswith("lookup")
            call = calls[0] if calls else ""
            if provider == "openai-responses":  # a cut stream: the call's arguments joined from their deltas
                (cut,) = api.tool_calls([e for e in events if e.event != "response.output_item.done"])
                assert cut == call

        return run

    assert_linear(build, f"{provider}: whole_message and tool_calls")


def provider_fault_specs(n: int) -> dict[str, tuple[str, str]]:
    """Each fault of one provider's streams, and faults that edit an event stream's frames: (provider, spec)."""
    mid = n // 2
    specs = {
        "done_early": ("openai", "done_early"), "done_early:after": ("openai", f"done_early:after={mid}"),
        "response_failed": ("openai-responses", "response_failed"),
        "response_failed:after": ("openai-responses", f"response_failed:after={mid}"),
        "candidate_finish": ("gemini", "candidate_finish"), "candidate_finish:after": ("gemini", f"candidate_finish:after={mid}"),
        "prompt_blocked": ("gemini", "prompt_blocked"),
        "bad_crc": ("bedrock", f"bad_crc:event={mid}"), "bad_crc:prelude": ("bedrock", f"bad_crc:event={mid},which=prelude"),
        "exception_frame": ("bedrock", f"exception_frame:after={mid}"), "exception_frame:cut": ("bedrock", "exception_frame:then=cut"),
        # the catalogue's faults where an event stream differs: a payload edited and the frame made whole
        # again, an exception frame for an in-stream error, frames cut, re-chunked, turned into one JSON body
        "eventstream corrupt": ("bedrock", f"corrupt:event={mid}"), "eventstream error_event": ("bedrock", f"error_event:after={mid}"),
        "eventstream disconnect": ("bedrock", f"disconnect:after={n * 9 // 10}"), "eventstream rechunk": ("bedrock", "rechunk:size=64"),
        "eventstream json_body": ("bedrock", "json_body"), "eventstream duplicate": ("bedrock", f"duplicate:event={mid}"),
    }  # fmt: skip
    kinds = {spec.partition(":")[0] for _, spec in specs.values()}
    assert {name for name, cls in CATALOGUE.items() if cls.providers} <= kinds, "a new provider fault: add it here"
    return specs


@pytest.mark.usefixtures("tracked_framers")
@pytest.mark.parametrize("case", list(provider_fault_specs(100)))
def test_every_provider_fault_is_linear(case: str) -> None:
    """Planning and applying each provider's own faults on its own stream (and the catalogue's on an event stream)."""
    from streamtape.providers import get as provider_named

    def plan(n: int) -> Callable[[], object]:
        provider, spec = provider_fault_specs(n)[case]
        item = provider_interaction(provider, n, body_type=Tracked)
        faults, context = parse(spec).faults_for(0), Context(provider=provider_named(provider))
        return lambda: _play(apply(faults, item.actions(), context))

    assert_linear(plan, case)


# --- the stacks' replay feeds ---------------------------------------------------------------------------


def test_the_urllib3_replay_feed_is_linear(monkeypatch: pytest.MonkeyPatch) -> None:
    """http.client reads a replayed body a buffer at a time; on a virtual clock a recorded run is one
    piece, and copying what is left of it per read (``pending = pending[size:]``) was quadratic."""
    from streamtape.engine.clock import Pacer, VirtualClock
    from streamtape.stacks import urllib3 as stack

    wire = stack._TapeReader._wire  # noqa: SLF001
    monkeypatch.setattr(stack._TapeReader, "_wire", lambda self: (Tracked(piece) for piece in wire(self)))  # noqa: SLF001

    def feed(n: int) -> Callable[[], object]:
        item = interaction(n, body_type=Tracked)
        assert item.response is not None

        def run() -> None:
            playback = Playback(item.actions(), read_timeout=None, whole_runs=True)
            at, head = playback.head()
            sock = stack._TapeSocket(stack.URLLIB3, playback, Pacer(VirtualClock()), at, head, "test")  # noqa: SLF001
            reader, buffer, received = stack._TapeReader(sock), bytearray(256), 0  # noqa: SLF001
            while size := reader.readinto(buffer):
                received += size
            assert received > len(item.body)

        return run

    assert_linear(feed, "urllib3's replay socket, read 256 bytes at a time")


@pytest.mark.parametrize("stack", ["httpx2", "aiohttp", "requests"])
def test_replay_through_each_stack_is_linear(stack: str, tmp_path: Path) -> None:
    """A whole replay through each HTTP stack: the tape loaded, a late cut planned, the body fed to the
    stack's own reader chunk by chunk and read to the cut (Python work: aiohttp and requests run in it)."""
    import asyncio

    import streamtape

    def read(item: Interaction) -> int:
        request, headers = item.request, dict(item.request.headers)
        if stack == "httpx2":
            import httpx2

            with httpx2.Client() as client, client.stream(request.method, request.url, content=request.body,
                                                          headers=headers) as response:  # fmt: skip
                return sum(len(part) for part in response.iter_raw())
        if stack == "requests":
            import requests

            with requests.request(request.method, request.url, data=request.body, headers=headers, stream=True) as r:
                return sum(len(part) for part in r.iter_content(chunk_size=None))
        import aiohttp

        async def fetch() -> int:
            async with aiohttp.ClientSession() as session, session.request(
                request.method, request.url, data=request.body, headers=headers
            ) as response:
                return sum([len(part) async for part in response.content.iter_any()])

        return asyncio.run(fetch())

    def replay(n: int) -> Callable[[], object]:
        item = interaction(n)
        path = Cassette([item]).save(tmp_path / f"{stack}-{n}.yaml")

        def run() -> None:
            with streamtape.use_cassette(path, faults=f"disconnect:after={n * 9 // 10}"):
                with pytest.raises(Exception):  # noqa: B017,PT011 - each stack's own error for the cut
                    read(item)

        return run

    assert_linear(replay, f"replay through {stack}", measures=("bytecode",))


def test_the_text_counter_sees_a_text_built_delta_by_delta() -> None:
    """``TrackedStr`` counts what the providers' first ``whole_message`` did (``block["text"] =
    block.get("text", "") + delta``) as quadratic, and one join as nothing at all."""

    def grown(n: int) -> Callable[[], object]:
        deltas = [TrackedStr(_WORDS[i % len(_WORDS)]) for i in range(n)]

        def run() -> None:
            block: dict[str, str] = {}
            for delta in deltas:
                block["text"] = block.get("text", "") + delta
            Tracked._count(1)

        return run

    with pytest.raises(AssertionError, match="quadratic about 16x"):
        assert_linear(grown, "a text grown delta by delta", measures=("bytes touched",))
    Tracked.touched = 0
    assert "".join(TrackedStr(word) for word in _WORDS) and Tracked.touched == 0
