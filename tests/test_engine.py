"""The engine both executors share: the cut table, the neutral playback, the session, the clocks, and
what entering a tape imports (nothing the app did not)."""

from __future__ import annotations

import ast
import subprocess
import sys
import textwrap
from pathlib import Path

import pytest

import streamtape
from streamtape import Cassette, ConfigError, Interaction, Request, Response
from streamtape.engine.clock import ScaledClock, VirtualClock
from streamtape.engine.playback import Broken, Playback, Silent
from streamtape.engine.session import ReplaySession
from streamtape.faults import parse
from streamtape.matching import resolve_matchers
from streamtape.wire import CUT_ERRORS, CUTS, Cut, End, Respond, Send, Stall

ROOT = Path(__file__).resolve().parent.parent
SSE = (("content-type", "text/event-stream"),)


# --- the one table of cut kinds --------------------------------------------------------------------


def test_every_cut_kind_says_what_it_is_on_a_socket_and_has_a_v1_name() -> None:
    assert {kind.socket for kind in CUTS.values()} <= {"fin", "rst", "silence", "refuse", "local"}
    assert set(CUT_ERRORS) == {kind.v1 for kind in CUTS.values()}
    assert all(kind.before_headers and kind.mid_body for kind in CUTS.values())


@pytest.mark.parametrize(("name", "kind"), [("RemoteProtocolError", "fin"), ("fin", "fin"), ("ReadError", "reset"),
                                            ("ConnectError", "refused"), ("ClientClosed", "client_closed")])  # fmt: skip
def test_a_cut_takes_a_kind_or_its_v1_name(name: str, kind: str) -> None:
    cut = Cut(name, "m", 1.5)
    assert cut.kind == kind and cut.error == CUTS[kind].v1 and cut == Cut(kind, "m", 1.5)


def test_an_unknown_cut_kind_lists_the_valid_ones() -> None:
    with pytest.raises(ValueError, match="unknown cut kind 'EOFError'; valid: client_closed, connect_timeout"):
        Cut("EOFError")


def test_cassettes_keep_writing_v1_names_and_read_either(tmp_path: Path) -> None:
    request = Request("POST", "http://h/v1/messages", (), b"{}")
    Cassette([Interaction(request, error=Cut("refused", "no", 0.1))]).save(tmp_path / "c.yaml")
    text = (tmp_path / "c.yaml").read_text()
    assert "error: ConnectError" in text
    (tmp_path / "n.yaml").write_text(text.replace("error: ConnectError", "error: refused"))
    assert Cassette.load(tmp_path / "n.yaml").interactions[0].error == Cut("refused", "no", 0.1)


# --- the playback's neutral outcomes ---------------------------------------------------------------


def _outcomes(actions: list, timeout: float | None = None) -> list:
    playback = Playback(actions, read_timeout=timeout, whole_runs=False)
    at, head = playback.head()
    return [(at, head), *playback.body()] if isinstance(head, Respond) else [(at, head)]


def test_a_content_length_body_is_over_when_its_bytes_are_in() -> None:
    head = Respond(200, (("content-length", "3"),))
    assert _outcomes([head, Send(b"ab"), Send(b"cdef", 0.1), End(0.2)])[1:] == [(0, b"ab"), (0.1, b"c"), (0.1, None)]


def test_a_cut_carries_the_framing_and_what_arrived() -> None:
    head = Respond(200, (("content-length", "9"),))
    *_, (at, broken) = _outcomes([head, Send(b"abcd"), Cut("fin", None, 0.3)])
    assert at == 0.3 and broken == Broken("fin", None, False, "content-length", 4, 9)


def test_a_fin_ends_a_close_delimited_body_cleanly() -> None:
    head = Respond(200, (("connection", "close"),))
    assert _outcomes([head, Send(b"ab"), Cut("fin", None, 0.1)])[-1] == (0.1, None)


def test_silence_is_a_timeout_when_the_timeout_is_known_and_silent_when_it_is_not() -> None:
    actions = [Respond(200, SSE), Send(b"data: 1\n\n", 0.1), Stall(None, 0.1)]
    assert _outcomes(actions, timeout=2.0)[-1] == (2.1, Broken("timeout", None, False, "chunked", 9, None))
    assert _outcomes(actions)[-1] == (0.1, Silent())
    assert _outcomes([Respond(200, SSE), Send(b"x", 5.0)], timeout=1.0)[-1][0] == 1.0  # a gap as long fires too


def test_before_the_headers_a_cut_or_nothing_at_all() -> None:
    assert _outcomes([Cut("reset", None, 0.2)]) == [(0.2, Broken("reset", None, True))]
    assert _outcomes([]) == [(0.0, Broken("fin", None, True))]


# --- the session: matching, the schedule and the log, for both executors -----------------------------


def _session(faults: str | None = None) -> ReplaySession:
    body = b"event: a\ndata: {}\n\nevent: b\ndata: {}\n\n"
    items = [Interaction(Request("POST", "http://h/v1/messages", (), b"{}"), Response(200, SSE, body, ((0.0, len(body)),))),
             Interaction(Request("GET", "http://h/health"), Response(200, (), b"ok", ((0.0, 2),)))]  # fmt: skip
    return ReplaySession(items, resolve_matchers(["method", "path"]), parse(faults) if faults else None,
                         where="cassette c.yaml")  # fmt: skip


def test_the_schedule_counts_only_the_requests_it_applies_to() -> None:
    session = _session("rate_limit -> disconnect:after=1 -> ok")
    api, health = Request("POST", "http://h/v1/messages", (), b"{}"), Request("GET", "http://h/health")
    outcomes = [session.answer(r).call.outcome for r in (api, health, api, api)]  # type: ignore[union-attr]
    assert outcomes == ["429, complete", "200, complete", "200, then RemoteProtocolError", "200, complete"]
    assert [call.faults for call in session.calls] == [("rate_limit",), (), ("disconnect:after=1",), ()]


def test_an_unmatched_request_is_logged_and_explained() -> None:
    session = _session()
    assert session.answer(Request("POST", "http://h/v1/other")) is None
    assert session.calls[-1].source == "unmatched" and "Closest recorded request" in session.explain(
        Request("POST", "http://h/v1/other"))[0]  # fmt: skip


def test_a_fault_that_cannot_apply_names_the_cassette_and_the_interaction() -> None:
    with pytest.raises(ConfigError, match=r"cassette c.yaml, interaction #0 \(POST http://h/v1/messages\): drop:event=9"):
        _session("drop:event=9").answer(Request("POST", "http://h/v1/messages", (), b"{}"))


@pytest.mark.parametrize(("spec", "due", "forever"), [("refuse", True, True), ("refuse -> ok", True, False),
                                                      ("ok -> refuse", False, False), ("reset", False, False)])  # fmt: skip
def test_a_socket_knows_a_refused_attempt_is_due_before_it_connects(spec: str, due: bool, forever: bool) -> None:
    session = _session(spec)
    assert (session.refusal_due(), session.refuses_forever()) == (due, forever)
    if due:
        assert session.refused("http://127.0.0.1:1").source == "refused" and session.faulted == 1


# --- clocks ----------------------------------------------------------------------------------------


def test_a_virtual_clock_moves_only_when_waited_on_and_never_blocks() -> None:
    clock = VirtualClock(10.0)
    clock.sleep(2.5)
    assert clock.now() == 12.5 and clock.waits == [2.5] and clock.wall(100) == 0


def test_a_scaled_clock_runs_n_times_faster_than_its_base() -> None:
    base = VirtualClock(paced=True)
    clock = ScaledClock(4, base=base)
    clock.sleep(2.0)
    assert base.waits == [0.5] and clock.now() == 2.0 and clock.wall(2.0) == 0
    with pytest.raises(ValueError, match="must be a number > 0"):
        ScaledClock(0)


# --- a harness error reaches the test as itself ----------------------------------------------------


def test_a_faults_own_exception_reaches_the_test_as_a_harness_error(tmp_path: Path) -> None:
    """The SDK wraps every Exception below it as a retried connection error; one raised by the harness
    (here a user's fault) must reach the test as itself, at once."""
    from streamtape import faults
    from tests.support import sdk

    body = b'event: ping\ndata: {"type": "ping"}\n\n'
    item = Interaction(Request("POST", "https://api.anthropic.com/v1/messages", (), b"{}"),
                       Response(200, SSE, body, ((0.0, len(body)),)))  # fmt: skip
    Cassette([item]).save(tmp_path / "c.yaml")

    @faults.register("explodes_here")
    def explodes_here(plan: faults.Plan, context: faults.Context) -> faults.Plan:
        raise KeyError("oops")

    try:
        with streamtape.use_cassette(tmp_path / "c.yaml", faults="explodes_here", match_on=["method", "path"]):
            with pytest.raises(streamtape.HarnessError, match="KeyError") as caught:
                sdk.consume("https://api.anthropic.com", options={"max_retries": 2})
    finally:
        faults.unregister("explodes_here")
    assert isinstance(caught.value.__cause__, KeyError)


# --- what importing and entering loads -------------------------------------------------------------

_HEAVY = ("anthropic", "openai", "httpx", "httpx2", "httpcore", "httpcore2", "aiohttp", "urllib3", "anyio", "h11")


def test_importing_streamtape_and_entering_a_tape_load_no_sdk_or_http_library(tmp_path: Path) -> None:
    """A plain httpx2 user must not pay for openai, anthropic or httpx: stacks and providers load when
    the app imports them, and a client built after the tape was entered is still taped."""
    script = textwrap.dedent(f"""
        import sys
        import streamtape
        from streamtape import Cassette, Interaction, Request, Response
        item = Interaction(Request("GET", "http://h/x"), Response(200, (), b"ok", ((0.0, 2),)))
        Cassette([item]).save({str(tmp_path / "c.yaml")!r})
        with streamtape.use_cassette({str(tmp_path / "c.yaml")!r}):
            loaded = sorted(name for name in {_HEAVY!r} if name in sys.modules)
            print("loaded:", loaded)
            import httpx2  # imported only now: the tape must still answer its requests
            print("answer:", httpx2.get("http://h/x").text)
        print("after:", sorted(name for name in ("anthropic", "openai", "httpx") if name in sys.modules))
    """)
    result = subprocess.run([sys.executable, "-c", script], capture_output=True, text=True, cwd=ROOT, timeout=120)
    assert result.returncode == 0, result.stderr
    assert result.stdout.splitlines() == ["loaded: []", "answer: ok", "after: []"]


def _imports(path: Path, module: str) -> set[str]:
    """The streamtape modules ``path`` (the module named ``module``; a package's ``__init__`` as
    ``package.__init__``) imports, at module level or in functions, outside TYPE_CHECKING."""
    tree = ast.parse(path.read_text())
    skipped = {id(node) for block in ast.walk(tree) if isinstance(block, ast.If)
               and "TYPE_CHECKING" in ast.unparse(block.test) for node in ast.walk(block)}  # fmt: skip
    found = set()
    for node in ast.walk(tree):
        if id(node) in skipped:
            continue
        if isinstance(node, ast.ImportFrom):
            base = module.split(".")[: len(module.split(".")) - node.level] if node.level else []
            target = ".".join([*base, *(node.module.split(".") if node.module else [])])
            found |= {target} | {f"{target}.{alias.name}" for alias in node.names}
        elif isinstance(node, ast.Import):
            found |= {alias.name for alias in node.names}
    return {name for name in found if name.startswith("streamtape")}


def test_the_package_has_no_import_cycles() -> None:
    modules: dict[str, Path] = {}
    for path in (ROOT / "streamtape").rglob("*.py"):
        parts = path.relative_to(ROOT).with_suffix("").parts
        name = ".".join(parts[:-1] if parts[-1] == "__init__" else parts)
        modules[name] = path
    graph: dict[str, set[str]] = {}
    for name, path in modules.items():
        targets = {target for target in _imports(path, f"{name}.__init__" if path.name == "__init__.py" else name)
                   if target in modules}  # fmt: skip
        # a module's ancestor packages are imported before it whatever it says: not an edge it adds
        graph[name] = {t for t in targets if t != name and not name.startswith(t + ".")}
    cycles = []
    for start in graph:
        stack, seen = [(start, [start])], set()
        while stack:
            node, path = stack.pop()
            for target in graph[node]:
                if target == start:
                    cycles.append(" -> ".join([*path, target]))
                elif target not in seen:
                    seen.add(target)
                    stack.append((target, [*path, target]))
    assert not cycles, "\n".join(sorted(set(cycles))[:10])


def test_every_package_is_in_the_distribution() -> None:
    """A package missing from pyproject's list works in the editable checkout and breaks every real install."""
    import tomllib

    setuptools = tomllib.loads((ROOT / "pyproject.toml").read_text())["tool"]["setuptools"]
    listed, moved = set(setuptools["packages"]), setuptools["package-dir"]
    found = {".".join(path.parent.relative_to(ROOT).parts) for path in (ROOT / "streamtape").rglob("__init__.py")}
    assert found <= listed and all((ROOT / moved.get(name, name.replace(".", "/"))).is_dir() for name in listed)


def test_the_call_log_names_the_stack_that_asked(tmp_path: Path) -> None:
    """A cassette recorded on one stack replays on another; ``tape.calls`` says which stack each was."""
    import asyncio

    import aiohttp
    import requests

    from tests.support import builders, sdk

    builders.save(tmp_path / "c.yaml", "http://h/v1/messages", method="GET", request_body=b"", body=b"ok",
                  headers=(("content-type", "text/plain"),))  # fmt: skip

    async def through_aiohttp() -> bytes:
        async with aiohttp.ClientSession() as session, session.get("http://h/v1/messages") as response:
            return await response.read()

    with streamtape.use_cassette(tmp_path / "c.yaml", match_on=["method", "path"]) as tape:
        with sdk.HTTP.Client() as client:
            assert client.get("http://h/v1/messages").content == b"ok"
        assert asyncio.run(through_aiohttp()) == b"ok"
        assert requests.get("http://h/v1/messages", timeout=5).content == b"ok"
    assert [call.stack for call in tape.calls] == [sdk.STACK, "aiohttp", "urllib3"]
    assert repr(tape.calls[1]).startswith("<Call GET http://h/v1/messages replayed #0 attempt 2 via aiohttp")
