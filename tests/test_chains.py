"""A replayed failure raises the whole exception chain a real socket gives: at every level the class,
the message, the arguments, ``__cause__``, ``__context__`` and ``__suppress_context__``.

Each failure streamtape replays is provoked for real, over sockets on 127.0.0.1, by the servers of
scripts/measure_chains.py (the measurement ``streamtape.stacks.httpcore.CHAINS`` was built from), and
then replayed in-process at the same URL, up to three ways:

- ``cut``: a small cassette ending as the server did (the response head and first event, then
  ``Cut(kind)``, or the cut alone before the headers), the message left to the stack;
- ``fault``: the catalogue fault for it (``refuse``, ``disconnect:after=1``, ``stall:after=1``...) on
  a clean cassette of the same response;
- ``recorded``: what streamtape recorded from the real failure itself, with its real message.

Compared at the core level (the pool's own ``handle_request`` and response stream: what the replay
raises) and at the httpx level above it (``sdk.HTTP``: httpx2 or httpx, whichever the SDK uses), sync
and async (asyncio), and at the httpx level again while the app handles an exception of its own.
"""

from __future__ import annotations

import importlib
from functools import partial
from pathlib import Path
from typing import Any

import pytest

import streamtape
from scripts import measure_chains as measured
from streamtape import Cassette, Interaction, Request, Response
from streamtape.stacks.httpcore import CHAINS
from streamtape.wire import Cut, End
from tests.support import sdk

CORE = importlib.import_module({"httpx2": "httpcore2", "httpx": "httpcore"}[sdk.STACK])
MATCH = ["method", "path"]

#: scenario (scripts/measure_chains.py) -> (the cut kind, the catalogue fault for it, recordable):
#: recording a 32 MiB request or a pool held by an endless response would test the recorder, not this
KINDS: dict[str, tuple[str, str | None, bool]] = {
    "refused": ("refused", "refuse", True),
    "connect_timeout": ("connect_timeout", "connect_timeout", True),
    "fin/before": ("fin", "disconnect", True),
    "reset/before": ("reset", "reset", True),
    "timeout/before": ("timeout", "timeout", True),
    "fin/chunked": ("fin", "disconnect:after=1", True),
    "fin/content-length": ("fin", "disconnect:after=1", True),
    "fin/close": ("fin", "disconnect:after=1", True),  # a FIN ends a close-delimited body: no error
    "reset/chunked": ("reset", "reset:after=1", True),
    "reset/content-length": ("reset", "reset:after=1", True),
    "reset/close": ("reset", "reset:after=1", True),
    "timeout/chunked": ("timeout", "stall:after=1", True),
    "timeout/content-length": ("timeout", "stall:after=1", True),
    "timeout/close": ("timeout", "stall:after=1", True),
    "write_error": ("write_error", None, False),
    "write_timeout": ("write_timeout", "write_timeout", False),
    "pool_timeout": ("pool_timeout", "pool_timeout", False),
}
#: Replays that differ from the real chain, by scenario: {variant: why}. Remove an entry when fixed.
KNOWN: dict[str, dict[str, str]] = {}
LEVELS = [("core", False), ("client", False), ("client", True)]  # (level, while handling an exception)


def _call(level: str, mode: str) -> Any:
    if level == "core":
        return partial(measured.core_async if mode == "async" else measured.core_sync, CORE)
    return partial(measured.client_async if mode == "async" else measured.client_sync, sdk.HTTP)


def _cassettes(scenario: str, url: str, directory: Path) -> dict[str, tuple[Path, str | None]]:
    """The ``cut`` and ``fault`` cassettes for a scenario, with the faults each is replayed with. The
    replay never sends the request, so its body is the small one whatever the real side sent."""
    kind, spec, _ = KINDS[scenario]
    request = Request("POST", url, (("content-type", "application/octet-stream"),), b"xx")
    server = measured.SCENARIOS[scenario]
    framing = server[0] if isinstance(server, tuple) and scenario != "pool_timeout" else None  # (that one's held)
    if framing is None:
        cut = Interaction(request, error=Cut(kind))
        clean = Interaction(request, _response(framing="chunked", events=measured.EVENTS, end=End(0.2)))
    else:
        cut = Interaction(request, _response(framing, measured.EVENTS[:1], Cut(kind, at=0.2)))
        clean = Interaction(request, _response(framing, measured.EVENTS, End(0.2)))
    cassettes = {"cut": (Cassette([cut]).save(directory / "cut.yaml"), None)}
    if spec is not None:
        cassettes["fault"] = (Cassette([clean]).save(directory / "fault.yaml"), spec)
    return cassettes


def _response(framing: str, events: tuple[bytes, ...], end: End | Cut) -> Response:
    timing = tuple((0.01 * n, len(event)) for n, event in enumerate(events, 1))
    return Response(200, measured.HEADERS[framing], b"".join(events), timing, "OK", 0.001, end=end)


def _run(call: Any, url: str, size: int, hold: bool, mode: str, outer: bool) -> BaseException | None:
    backend = "asyncio" if mode == "async" else None
    exc: BaseException | None = measured.invoke(call, url, size, hold, backend=backend, outer=outer)
    return exc


@pytest.mark.parametrize(("level", "outer"), LEVELS, ids=["core", "client", "client-outer"])
@pytest.mark.parametrize("mode", ["sync", "async"])
@pytest.mark.parametrize("scenario", list(KINDS))
def test_the_replayed_chain_is_the_real_one(scenario: str, mode: str, level: str, outer: bool, tmp_path: Path) -> None:
    recordable = KINDS[scenario][2]
    call, size, hold = _call(level, mode), measured.body_size(scenario), scenario == "pool_timeout"
    with measured.target(measured.SCENARIOS[scenario]) as port:
        url = f"http://127.0.0.1:{port}/v1/messages"
        real = _run(call, url, size, hold, mode, outer)
        cassettes = _cassettes(scenario, url, tmp_path)
        if recordable:
            path = tmp_path / "recorded.yaml"
            with streamtape.use_cassette(path, record_mode="all", record_failures=True) as tape:
                recording = _run(call, url, size, hold, mode, outer)
            assert [c.source for c in tape.calls] == ["recorded"]
            # recording hands the real failure on as it is
            assert measured.chain(recording, None) == measured.chain(real, None)
            cassettes["recorded"] = (path, None)
    expected = measured.chain(real, None)
    assert (real is None) == (scenario == "fin/close"), expected
    assert real is None or level == "client" or type(real).__module__ == CORE.__name__, expected
    differ = {}
    for name, (path, faults) in cassettes.items():
        with streamtape.use_cassette(path, faults=faults, match_on=MATCH) as tape:
            replayed = _run(call, url, 2, False, mode, outer)
        assert [c.source for c in tape.calls] == ["replayed"], name
        if measured.chain(replayed, None) != expected:
            differ[name] = measured.chain(replayed, None)
        elif real is not None:
            assert replayed is not None and sdk.chain(replayed) == sdk.chain(real), name
    assert set(differ) == set(KNOWN.get(scenario, {})), (KNOWN.get(scenario), differ, expected)


def test_every_measured_chain_is_checked() -> None:
    """Each (kind, sync/async) of the table is provoked for real above."""
    assert {kind for kind, _ in CHAINS} == {kind for kind, _, _ in KINDS.values()}
