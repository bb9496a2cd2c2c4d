"""Every fault in the catalogue is faithful, proved differentially through the real SDK.

Each case runs three ways and compares everything the app can observe:

- REAL: a real server on 127.0.0.1 misbehaving at the socket level: a true FIN (shutdown), an RST
  (SO_LINGER 1, 0), silence, slow pieces, error statuses, or exactly the bytes streamtape's fault
  plan produces (``streamtape.faults.apply`` on the recorded interaction), sent over the socket;
- REPLAY: streamtape's in-process replayer, with the clean stream recorded once from the same
  server (same transcript, same framing) and then replayed with ``use_cassette(path, faults=SPEC)``;
- SERVED: the same cassette and faults played by ``ReplayServer`` (what ``streamtape serve`` runs)
  over a real socket at recorded timing, the SDK pointed at it as at the real server.

Both executors run one engine (``streamtape.engine``); this is where that is proved.

Compared: exception class, message, ``__cause__`` class and message, the whole exception chain (every
exception behind it through ``__cause__`` and ``__context__``, each marked as which, with its class,
module and message: ``sdk.chain``; normalised only where the real server and the replay must differ:
the port each listens on, and the memory address anyio names a cancel scope by), HTTP status, partial
text, SDK events, ``get_final_message()``'s result or error, ``current_message_snapshot`` after a mid-stream
error, the number of requests made (real: requests the server read, or the SDK transport's sends
where nothing listens; replay: ``len(tape.calls)``), and the SDK's back-off (how many waits; how long,
where the response said). Catalogue cases run in every usage style, sync and async; a few costly
extra cases in two styles.

The SDK's retry back-off would sleep real seconds on the REAL side only (a tape makes it virtual):
there ``anthropic._base_client``'s ``time`` / ``anyio`` are swapped for ones whose ``sleep`` returns
at once (and notes the wait), for the duration of the real run.

Known streamtape mismatches are in ``KNOWN`` (strict xfails): remove an entry when streamtape is fixed.
"""

from __future__ import annotations

import dataclasses
import ssl
from collections.abc import Callable, Iterator
from contextlib import contextmanager
from dataclasses import dataclass, field
from pathlib import Path
from types import ModuleType
from typing import Any

import anthropic
import pytest

import streamtape
from streamtape.cassette import Cassette, Interaction
from streamtape.faults import Context, apply, parse
from streamtape.server import ReplayServer
from streamtape.wire import Action, Cut, End, Respond, Send, Stall, expand
from streamtape.wire import Raw as NotHttp
from tests.support import sdk
from tests.support.raw_server import RawServer, blackholed_port, closed_port
from tests.support.wire_server import Reply, WireServer, transcript

pytestmark = pytest.mark.sdk

ATTEMPTS = 3  # max_retries=2: the first attempt and two retries
SLOW = 0.3  # the client's read timeout where a case needs one to fire (or to be beaten)
QUICK = 0.25  # the read timeout of the extra stall cases: only its firing matters there (0.15 s once let a
#             late head, on a loaded worker, time the first attempt out: a retry the real side never made)
STYLES_2 = ("text_stream", "final")  # the costly extra cases: one iterating style, one final-message style
PATIENT = 5.0  # everywhere else: only a guard against a hang
FOREVER = 30.0  # a "stall forever" on the real side; the server's stop() ends it at once


# --- what the real side does -----------------------------------------------------------------------


@dataclass(frozen=True)
class Wire:
    """A WireServer answering the requests with these replies (the last one repeats)."""

    replies: list[Reply]


@dataclass(frozen=True)
class Raw:
    """A RawServer: reads each request, then ``mode`` (fin / rst / silence) before any response."""

    mode: str


@dataclass(frozen=True)
class Refused:
    """Nothing listens on the port."""


@dataclass(frozen=True)
class Blackholed:
    """A port whose listener completes no connection (its accept queue is full): connects time out."""


Real = Wire | Raw | Refused | Blackholed


@dataclass(frozen=True)
class Case:
    spec: str  # the replay side's faults
    real: Callable[[Case, Interaction], Real]  # the real side's equivalent
    expect: str | None  # the error class the app sees (last dotted part; "A|B": either), None: success, "*": any
    requests: int = 1  # requests the SDK makes (max_retries=2)
    name: str = "text_basic"  # the transcript
    framing: str = "chunked"
    timeout: float = PATIENT
    styles: tuple[str, ...] = sdk.STYLES  # the costly extra cases run in fewer styles

    @property
    def id(self) -> str:
        qualifiers = [q for q in (self.name, self.framing) if q not in ("text_basic", "chunked")]
        return self.spec.replace(" ", "") + "".join(f"@{q}" for q in qualifiers)


def natural(**reply: Any) -> Callable[[Case, Interaction], Real]:
    """The transcript served with a WireServer misbehaviour (fin_after, rst_after, stall_after, ...)."""
    return lambda case, _: Wire([transcript(case.name, framing=case.framing, **reply)])


def planned(case: Case, item: Interaction) -> Real:
    """Each attempt gets exactly what the fault plan makes of the recording, over the socket: its
    bytes in its pieces, its timing, its end (clean, FIN, RST or silence). A clean step gets the
    transcript itself."""
    schedule = parse(case.spec)
    replies = []
    for attempt in range(ATTEMPTS):
        faults = schedule.faults_for(attempt)
        if not faults:
            replies.append(transcript(case.name, framing=case.framing))
            continue
        replies.append(_reply(apply(faults, item.actions(), Context(number=attempt + 1)), case.framing))
    return Wire(replies)


def _reply(actions: list[Action], framing: str) -> Reply:
    """A WireServer reply that plays these actions on a socket: the Respond's status, reason and
    headers, one piece per Send, each sent when due (never before the one before it: time on a wire
    only goes forward), then the ending: End (clean), Cut (FIN / RST) or an endless Stall."""
    respond, *body = list(expand(actions))
    if isinstance(respond, NotHttp):  # not even a status line
        return Reply(raw=respond.data, raw_after=-1)
    assert isinstance(respond, Respond), actions
    sends = [a for a in body if isinstance(a, Send)]
    (ending,) = [a for a in body if not isinstance(a, Send)]
    assert body[-1] is ending, actions
    delays, now = [], respond.at
    for action in [*sends, ending]:
        due = max(action.at, now)
        delays.append(_significant(due - now))
        now = due
    kind = {"RemoteProtocolError": "fin_after", "ReadError": "rst_after"}
    fault: dict[str, Any] = {}
    if isinstance(ending, Cut):
        fault = {kind[ending.error]: len(sends)}
    elif isinstance(ending, Stall):
        assert ending.seconds is None, ending
        fault = {"stall_after": len(sends), "stall_seconds": FOREVER}
    headers = {name.lower(): value for name, value in respond.headers}
    if "content-length" in headers and not isinstance(ending, Cut | Stall):
        framing = "content-length"  # an HTTP error body, a JSON body: the server announces its length
    # the server would announce only the bytes before the cut, and then end the body cleanly
    assert framing != "content-length" or not isinstance(ending, Cut | Stall), "use a natural equivalent"
    if "content-encoding" in headers:  # the plan's bytes are encoded already: sent as they are
        fault["content_encoding"] = headers["content-encoding"]
    if isinstance(ending, NotHttp):  # bytes that are not HTTP where a chunk-size line belongs, then a FIN
        fault = {"raw": ending.data, "raw_after": len(sends)}
    return Reply(
        status=respond.status,
        reason=respond.reason,
        headers=list(respond.headers),
        events=[a.data for a in sends],
        framing=framing,  # type: ignore[arg-type]
        head_delay=_significant(respond.at),
        piece_delays=delays,
        **fault,
    )


def _significant(seconds: float) -> float:
    """Recorded gaps on 127.0.0.1 are tens of microseconds: only gaps a fault made are waited for."""
    return seconds if seconds >= 0.005 else 0.0


def natural_at_byte(at_byte: int, fault: str) -> Callable[[Case, Interaction], Real]:
    """The transcript with the piece holding byte ``at_byte`` split there, and ``fault`` (fin_after,
    rst_after, stall_after) right before the byte: a cut inside an SSE event."""

    def build(case: Case, _: Interaction) -> Real:
        reply = transcript(case.name, framing=case.framing)
        assert not reply.gzip
        pieces, offset = [], 0
        for piece in reply.events:
            cut = at_byte - offset
            pieces += [piece[:cut], piece[cut:]] if 0 < cut < len(piece) else [piece]
            offset += len(piece)
        reply.events = pieces
        index = next(i for i in range(len(pieces) + 1) if sum(map(len, pieces[:i])) == at_byte)
        options = {fault: index, "stall_seconds": FOREVER} if fault == "stall_after" else {fault: index}
        for key, value in options.items():
            setattr(reply, key, value)
        return Wire([reply])

    return build


def cut_then_clean(**reply: Any) -> Callable[[Case, Interaction], Real]:
    return lambda case, _: Wire([transcript(case.name, **reply), transcript(case.name)])


def then_clean(**reply: Any) -> Callable[[Case, Interaction], Real]:
    """Each attempt but the last meets ``reply``'s misbehaviour, the last the clean transcript."""

    def build(case: Case, _: Interaction) -> Real:
        return Wire([Reply(**reply) for _ in range(case.requests - 1)] + [transcript(case.name)])

    return build


def raw(mode: str) -> Callable[[Case, Interaction], Real]:
    return lambda case, _: Raw(mode)


def refused(case: Case, _: Interaction) -> Real:
    return Refused()


def blackholed(case: Case, _: Interaction) -> Real:
    return Blackholed()


CASES = [
    # --- mid-body: a FIN -------------------------------------------------------------------------
    Case("disconnect:after=3", natural(fin_after=3), "RemoteProtocolError"),
    Case("disconnect:after=4", natural(fin_after=4), "RemoteProtocolError"),
    Case("disconnect:after=0", natural(fin_after=0), "RemoteProtocolError"),
    Case("disconnect:after=4", natural(fin_after=4), "RemoteProtocolError", framing="content-length"),
    Case("disconnect:after=4", natural(fin_after=4), None, framing="close"),  # a FIN is the end
    Case("disconnect:after=8", natural(fin_after=8), "RemoteProtocolError", name="tool_use"),
    Case("disconnect:after=20", natural(fin_after=20), "RemoteProtocolError", name="tool_use"),  # in the tool input
    Case("disconnect:after=13", natural(fin_after=13), "RemoteProtocolError", name="thinking"),  # gzip on the wire
    # --- mid-body: an RST ------------------------------------------------------------------------
    Case("reset:after=4", natural(rst_after=4), "ReadError"),
    Case("reset:after=6", natural(rst_after=6), "ReadError", name="thinking"),
    Case("reset:after=4", natural(rst_after=4), "ReadError", framing="content-length"),
    # --- mid-body: silence and slowness ----------------------------------------------------------
    Case("stall:after=4", natural(stall_after=4, stall_seconds=FOREVER), "ReadTimeout", timeout=SLOW),
    Case(
        "stall:after=8",
        natural(stall_after=8, stall_seconds=FOREVER),
        "ReadTimeout",
        name="tool_use",
        timeout=QUICK,
        styles=STYLES_2,
    ),  # fmt: skip
    Case("stall:after=4,seconds=0.05", natural(stall_after=4, stall_seconds=0.05), None, timeout=SLOW),
    Case("delay:per_event=0.02", natural(piece_delay=0.02), None, timeout=SLOW),
    Case("delay:per_event=0.5", natural(piece_delay=0.5), "ReadTimeout", timeout=SLOW),
    # --- mid-body: other bytes, sent over the socket exactly as the plan makes them ----------------
    Case("truncate:after=4", planned, None),
    Case("truncate", planned, None),
    Case("truncate:after=20", planned, None, name="tool_use"),
    Case("error_event:after=4", planned, "APIStatusError"),
    Case("error_event:after=0", planned, "APIStatusError"),
    Case("error_event:after=13", planned, "APIStatusError", name="thinking"),
    Case("corrupt:event=4", planned, "JSONDecodeError"),
    Case("corrupt:event=4,how=utf8", planned, "UnicodeDecodeError"),
    Case("corrupt:event=1", planned, "JSONDecodeError", name="tool_use"),
    Case("duplicate:event=4", planned, None),
    Case("duplicate:event=1", planned, None),
    Case("drop:event=4", planned, None),
    Case("drop:event=2", planned, "*"),  # the accumulator meets a delta for a block that never started
    Case("drop:event=1", planned, "*"),  # ... and a stream without message_start
    Case("ping:every=2", planned, None),
    Case("rechunk:size=7", planned, None),
    Case("rechunk", planned, None, name="thinking"),
    Case("rechunk:size=1", planned, None),
    Case("split:at_byte=700", planned, None),
    Case("split", planned, None),
    Case("split_crlf", planned, None),
    Case("split_utf8", planned, None, name="thinking"),
    # --- more positions and framings -------------------------------------------------------------
    Case("disconnect:after=7", natural(fin_after=7), "RemoteProtocolError"),  # after message_stop
    Case("disconnect:after=7", natural(fin_after=7), None, framing="content-length"),  # every byte arrived
    Case("reset:after=7", natural(rst_after=7), None, framing="content-length"),
    Case("reset:after=0", natural(rst_after=0), "ReadError"),
    Case("reset:after=4", natural(rst_after=4), "ReadError", framing="close"),
    Case("disconnect:after=5", natural(fin_after=5), "RemoteProtocolError", name="thinking", framing="content-length"),
    Case("disconnect:at_byte=700", natural_at_byte(700, "fin_after"), "RemoteProtocolError"),  # inside event 4
    Case("disconnect:at_byte=700", natural_at_byte(700, "fin_after"), "RemoteProtocolError", framing="content-length"),
    Case("disconnect:at_byte=700", natural_at_byte(700, "fin_after"), None, framing="close"),
    Case("reset:at_byte=1300", natural_at_byte(1300, "rst_after"), "ReadError", name="tool_use"),
    Case("stall:at_byte=700", natural_at_byte(700, "stall_after"), "ReadTimeout", timeout=QUICK, styles=STYLES_2),
    Case("stall", natural(stall_after=0, stall_seconds=FOREVER), "ReadTimeout", timeout=QUICK, styles=STYLES_2),
    Case(
        "stall:after=7,seconds=0.5",
        natural(stall_after=7, stall_seconds=0.5),
        "ReadTimeout",
        timeout=QUICK,
        styles=STYLES_2,
    ),  # fmt: skip
    Case(
        "stall:after=7", natural(stall_after=7, stall_seconds=FOREVER), None, framing="content-length", timeout=QUICK
    ),  # fmt: skip
    Case("truncate:at_byte=700", planned, None),
    # content faults on a Content-Length recording: the real server announces the length of what it sends
    Case("duplicate:event=4", planned, None, framing="content-length"),
    Case("ping:every=2", planned, None, framing="content-length"),
    Case("drop:event=3", planned, None, framing="content-length"),
    Case("truncate:after=4", planned, None, framing="content-length"),
    Case("error_event:after=4", planned, "APIStatusError", framing="content-length"),
    Case("error_event:after=4,error_type=api_error,message=boom", planned, "APIStatusError"),
    # --- timing, executed over the socket as the plan says -----------------------------------
    Case("delay:first_byte=0.05,per_event=0.005", planned, None, timeout=SLOW, styles=STYLES_2),
    Case("delay:first_byte=0.5", planned, "APITimeoutError", ATTEMPTS, timeout=QUICK, styles=("create",)),
    # jitter below zero (4 of 7 draws): gaps of 0 to 0.05 s, never a clock running backwards
    Case("delay:per_event=0.02,jitter=0.1,seed=3", planned, None, timeout=SLOW, styles=STYLES_2),
    # gaps under 0.01 s, then 0.5 s before content_block_stop: a read timeout (0.25 s) after "Hello", a
    # quarter second from either side (a worker stalled 0.13 s once turned the old 0.02 s gap into a timeout)
    Case("delay:per_event=0.1,jitter=0.5,seed=123", planned, "ReadTimeout", timeout=0.25, styles=STYLES_2),
    # --- faults together -------------------------------------------------------------------------
    Case("duplicate:event=4 + disconnect:after=5", planned, "RemoteProtocolError"),
    Case("ping:every=1 + reset:after=4", planned, "ReadError", name="tool_use"),
    Case("corrupt:event=6 + truncate:after=5", planned, None),
    Case("rechunk:size=5 + disconnect:at_byte=700", planned, "RemoteProtocolError"),
    Case("drop:event=3 + error_event:after=5", planned, "APIStatusError", name="tool_use"),
    Case("delay:per_event=0.01 + stall:after=4", planned, "ReadTimeout", timeout=QUICK, styles=STYLES_2),
    # --- before the headers: the SDK retries ---------------------------------------------------
    Case("refuse", refused, "APIConnectionError", ATTEMPTS),
    Case("disconnect", raw("fin"), "APIConnectionError", ATTEMPTS),
    Case("reset", raw("rst"), "APIConnectionError", ATTEMPTS),
    Case("timeout", raw("silence"), "APITimeoutError", ATTEMPTS, timeout=SLOW),
    # --- HTTP errors: the SDK's own retry logic decides ------------------------------------------
    Case("rate_limit", planned, "RateLimitError", ATTEMPTS),
    Case("rate_limit:retry_after_ms=1", planned, "RateLimitError", ATTEMPTS),
    Case("overloaded", planned, "OverloadedError", ATTEMPTS),
    Case("server_error", planned, "InternalServerError", ATTEMPTS),
    Case("http_error:status=400", planned, "BadRequestError", 1),
    Case("http_error:status=503", planned, "ServiceUnavailableError|InternalServerError", ATTEMPTS),
    Case("http_error:status=400,should_retry=true", planned, "BadRequestError", ATTEMPTS),
    Case("rate_limit:should_retry=false", planned, "RateLimitError", 1),
    Case("http_error:status=401", planned, "AuthenticationError", 1),
    Case("http_error:status=404", planned, "NotFoundError", 1),
    Case("http_error:status=408", planned, "*", ATTEMPTS),
    Case("http_error:status=409", planned, "ConflictError", ATTEMPTS),
    Case("http_error:status=413", planned, "*", 1),
    Case("http_error:status=504", planned, "*", ATTEMPTS),
    Case("rate_limit:retry_after=2", planned, "RateLimitError", ATTEMPTS),  # the real side's sleeps are skipped
    Case("overloaded:message=busy,error_type=overloaded_error", planned, "OverloadedError", ATTEMPTS),
    # --- sequences across attempts ---------------------------------------------------------------
    Case("rate_limit:retry_after_ms=1 -> ok", planned, None, 2),
    Case("overloaded:retry_after_ms=1*2 -> ok", planned, None, 3),
    Case("server_error -> rate_limit -> ok", planned, None, 3),
    Case("disconnect:after=3 -> ok", cut_then_clean(fin_after=3), "RemoteProtocolError", 1),
    Case("disconnect -> ok", then_clean(before_head="fin"), None, 2),
    Case("reset*2 -> ok", then_clean(before_head="rst"), None, 3),
    Case("timeout -> ok", then_clean(head_delay=FOREVER), None, 2, timeout=QUICK, styles=STYLES_2),
    # --- below the stream: HTTP itself broken, by a server, a proxy or the network -----------------
    Case("bad_status", planned, "RemoteProtocolError", ATTEMPTS),
    Case("bad_status:line=SSH-2.0-OpenSSH_9.6", planned, "RemoteProtocolError", ATTEMPTS),
    Case("bad_chunk:after=3", planned, "RemoteProtocolError"),
    Case("bad_chunk:after=0,line=1G", planned, "RemoteProtocolError"),
    Case("corrupt_gzip", planned, "DecodingError"),
    Case("corrupt_gzip:at=12", planned, "DecodingError"),
    Case("bom", planned, "*"),
    Case("json_body", planned, "*"),
    Case("linger", planned, "ReadTimeout", timeout=QUICK, styles=STYLES_2),
    Case("connect_timeout", blackholed, "ConnectTimeout", ATTEMPTS, timeout=QUICK, styles=STYLES_2),
]

#: Faults no server can be the oracle for, and where their real counterpart is checked instead.
CLIENT_SIDE = {
    "pool_timeout": "the client's own pool: tests/test_protocol_faults.py exhausts a real pool",
    "write_timeout": "a server that never reads a large request: tests/test_protocol_faults.py",
}

#: Faults of one provider's streams only (``Fault.providers``): each is proved against a real server
#: in that provider's tests (tests/test_provider_<provider>.py), through its own SDK.
PROVIDER_ONLY = {name for name, cls in streamtape.faults.CATALOGUE.items() if cls.providers}

#: Mismatches that are streamtape bugs, by case id: [(style or "*", mode or "*", reason)].
KNOWN: dict[str, list[tuple[str, str, str]]] = {
    "disconnect:after=5@thinking@content-length": [
        (
            "*",
            "*",
            (
                "streamtape gap: a gzip body with Content-Length is recorded decoded, without its Content-Length, so a "
                "disconnect replays as chunked ('incomplete chunked read'); the wire says '(received 519 bytes, "
                "expected 1478)', counting compressed bytes"
            ),
        )
    ],  # fmt: skip
}


def _params() -> Iterator[Any]:
    for case in CASES:
        for style in case.styles:
            for mode in ("sync", "async"):
                reasons = [r for s, m, r in KNOWN.get(case.id, []) if s in ("*", style) and m in ("*", mode)]
                marks = [pytest.mark.xfail(strict=True, reason=reasons[0])] if reasons else []
                yield pytest.param(case, style, mode, id=f"{case.id}-{style}-{mode}", marks=marks)


# --- the two sides -------------------------------------------------------------------------------


@dataclass(frozen=True)
class Recorded:
    path: Path
    url: str
    interaction: Interaction


@pytest.fixture(scope="module")
def recordings(tmp_path_factory: pytest.TempPathFactory) -> Callable[[str, str], Recorded]:
    """The clean stream, recorded once per (transcript, framing) from a WireServer, server stopped."""
    cache: dict[tuple[str, str], Recorded] = {}
    directory = tmp_path_factory.mktemp("fidelity")

    def get(name: str, framing: str) -> Recorded:
        if (name, framing) not in cache:
            path = directory / f"{name}-{framing}.yaml"
            with WireServer() as server:
                server.queue(transcript(name, framing=framing))
                with streamtape.use_cassette(path, record_mode="all") as tape:
                    outcome = sdk.consume(server.base_url, "create")
                assert outcome.error is None and [c.source for c in tape.calls] == ["recorded"]
                url = server.base_url
            (item,) = Cassette.load(path).interactions
            # The local server streams its chunks back to back; on a loaded machine (CI with -n auto)
            # a recorded gap can still reach the read timeout of the quick cases (QUICK), which the
            # replay would then honour. The cases are about the faults, so the recording keeps its
            # chunks and bytes with the timing a quiet loopback gives: 1 ms apart.
            assert item.response is not None
            timing = tuple((n * 0.001, size) for n, (_, size) in enumerate(item.response.timing, 1))
            quiet = dataclasses.replace(item.response, timing=timing, headers_at=0.0005,
                                        end=End(timing[-1][0] if timing else 0.0))  # fmt: skip
            item = Interaction(item.request, quiet)
            Cassette([item]).save(path)
            cache[(name, framing)] = Recorded(path, url, item)
        return cache[(name, framing)]

    return get


class _Clock:
    """The SDK's ``time`` / ``anyio`` on the real side: everything real but ``sleep``."""

    def __init__(self, real: Any) -> None:
        self._real = real
        self.sleeps: list[float] = []

    def __getattr__(self, name: str) -> Any:
        return getattr(self._real, name)

    def sleep(self, seconds: float) -> None:
        self.sleeps.append(seconds)


class _AsyncClock(_Clock):
    async def sleep(self, seconds: float) -> None:  # type: ignore[override]
        self.sleeps.append(seconds)
        await self._real.sleep(0)


@dataclass
class RealRun:
    attempts: int = 0  # requests the SDK's transport sent
    sleeps: list[float] = field(default_factory=list)  # the SDK's back-off waits (skipped)


@contextmanager
def real_side() -> Iterator[RealRun]:
    """No back-off sleeps in the SDK (noted instead), and a count of the requests its transport sends."""
    run = RealRun()
    sync_send, async_send = sdk.HTTP.HTTPTransport.handle_request, sdk.HTTP.AsyncHTTPTransport.handle_async_request

    def handle_request(self: Any, request: Any) -> Any:
        run.attempts += 1
        return sync_send(self, request)

    async def handle_async_request(self: Any, request: Any) -> Any:
        run.attempts += 1
        return await async_send(self, request)

    base = anthropic._base_client
    assert isinstance(base.time, ModuleType), "a tape is entered: the real side must run without one"
    clock, async_clock = _Clock(base.time), _AsyncClock(base.anyio)
    with pytest.MonkeyPatch.context() as patch:
        patch.setattr(base, "time", clock)
        patch.setattr(base, "anyio", async_clock)
        patch.setattr(sdk.HTTP.HTTPTransport, "handle_request", handle_request)
        patch.setattr(sdk.HTTP.AsyncHTTPTransport, "handle_async_request", handle_async_request)
        try:
            yield run
        finally:
            run.sleeps = [*clock.sleeps, *async_clock.sleeps]  # one of them stays empty


#: One TLS context for every client: building one per client (the SDK's default) costs ~20 ms, most of
#: this file's run time. Nothing here speaks TLS; the transport stack is otherwise the SDK's default.
_TLS = ssl.create_default_context()


async def _run(url: str, style: str, mode: str, timeout: float) -> sdk.Outcome:
    options: dict[str, Any] = {"max_retries": 2, "timeout": timeout}
    if mode == "sync":
        return sdk.consume(url, style, options={**options, "http_client": anthropic.DefaultHttpxClient(verify=_TLS)})
    http_client = anthropic.DefaultAsyncHttpxClient(verify=_TLS)
    return await sdk.aconsume(url, style, options={**options, "http_client": http_client})


async def run_real(case: Case, recorded: Recorded, style: str, mode: str) -> tuple[sdk.Outcome, int, list[float]]:
    """The real side: the outcome, the requests the server saw, the SDK's back-off waits."""
    real = case.real(case, recorded.interaction)
    with real_side() as run:
        if isinstance(real, Refused):
            outcome = await _run(f"http://127.0.0.1:{closed_port()}", style, mode, case.timeout)
            requests = None
        elif isinstance(real, Blackholed):
            with blackholed_port() as port:
                outcome = await _run(f"http://127.0.0.1:{port}", style, mode, case.timeout)
            requests = None
        elif isinstance(real, Raw):
            with RawServer(real.mode) as raw_server:  # type: ignore[arg-type]
                outcome = await _run(raw_server.base_url, style, mode, case.timeout)
            assert raw_server.connections == len(raw_server.requests)
            requests = raw_server.connections
        else:
            with WireServer() as server:
                server.queue(*real.replies)
                outcome = await _run(server.base_url, style, mode, case.timeout)
            assert not server.errors
            requests = len(server.requests)
    assert requests in (None, run.attempts)  # where no server can count (refused), the transport does
    return outcome, run.attempts, run.sleeps


async def run_replay(case: Case, recorded: Recorded, style: str, mode: str) -> tuple[sdk.Outcome, int, list[float]]:
    """The replay side: the outcome, ``len(tape.calls)``, and the back-off the tape charged to each retry."""
    async with streamtape.use_cassette(recorded.path, faults=case.spec) as tape:
        outcome = await _run(recorded.url, style, mode, case.timeout)
    assert all(call.source == "replayed" for call in tape.calls), tape.calls
    assert not tape.calls or tape.calls[0].waited == 0
    return outcome, len(tape.calls), [call.waited for call in tape.calls[1:]]


async def run_served(case: Case, recorded: Recorded, style: str, mode: str) -> tuple[sdk.Outcome, int, list[float]]:
    """The socket executor: ``ReplayServer`` (``streamtape serve``) plays the cassette with the case's
    faults at recorded timing; counted and timed as the real side is (its requests never reach a tape)."""
    with real_side() as run, ReplayServer(Cassette.load(recorded.path), faults=case.spec, speed=1) as server:
        outcome = await _run(server.base_url, style, mode, case.timeout)
    return outcome, run.attempts, run.sleeps


def seen(outcome: sdk.Outcome, requests: int) -> dict[str, Any]:
    """Everything the app observed, for one readable assertion diff."""
    return {
        "error": outcome.error,
        "cause_message": outcome.cause_message,
        "chain": outcome.chain,
        "status": outcome.status,
        "text": outcome.text,
        "events": outcome.events,
        "final": outcome.final,
        "snapshot": outcome.snapshot,
        "requests": requests,
    }


@pytest.mark.parametrize(("case", "style", "mode"), list(_params()))
async def test_fault_is_faithful(case: Case, style: str, mode: str, recordings: Callable[[str, str], Recorded]) -> None:
    recorded = recordings(case.name, case.framing)
    real, real_requests, real_sleeps = await run_real(case, recorded, style, mode)
    replayed, replay_requests, replay_waits = await run_replay(case, recorded, style, mode)
    served, served_requests, served_sleeps = await run_served(case, recorded, style, mode)

    replay_saw, real_saw = seen(replayed, replay_requests), seen(real, real_requests)
    served_saw = seen(served, served_requests)
    headline = ("error", "cause_message", "status", "text", "requests")  # first, for a readable diff
    assert {k: replay_saw[k] for k in headline} == {k: real_saw[k] for k in headline}
    assert replay_saw == real_saw
    assert {k: served_saw[k] for k in headline} == {k: real_saw[k] for k in headline}, "streamtape serve"
    assert served_saw == real_saw, "streamtape serve"
    assert len(served_sleeps) == len(real_sleeps)
    # the SDK backed off as often, and as long where the response said how long (else it draws at random)
    assert len(replay_waits) == len(real_sleeps)
    if "retry_after" in case.spec:
        assert replay_waits == real_sleeps
    # ... and the real side did what the case is about
    assert real_requests == case.requests
    if case.expect is None:
        assert real.error is None
    elif case.expect != "*":
        # anthropic >= 2.17 wraps mid-stream transport errors (APIConnectionError / APITimeoutError caused
        # by the httpx2 error); earlier SDKs let the httpx2 error escape: either names what the case is about
        assert real.error is not None, real.error
        raised = {name.rsplit(".", 1)[1] for name in (real.error[0], real.error[2]) if name}
        assert raised & set(case.expect.split("|")), real.error


# --- the harness itself ----------------------------------------------------------------------------


def test_plan_replies_carry_exactly_the_planned_bytes(recordings: Callable[[str, str], Recorded]) -> None:
    recorded = recordings("text_basic", "chunked")
    case = next(c for c in CASES if c.spec == "duplicate:event=4")
    (reply, *_) = planned(case, recorded.interaction).replies  # type: ignore[union-attr]
    actions = apply(parse(case.spec).faults_for(0), recorded.interaction.actions(), Context())
    assert reply.events == [a.data for a in expand(actions) if isinstance(a, Send)]
    assert reply.body == recorded.interaction.body.replace(reply.events[3], reply.events[3] * 2)


def test_raw_server_counts_connections_and_misbehaves() -> None:
    with RawServer("fin") as server, sdk.HTTP.Client() as http:
        with pytest.raises(sdk.HTTP.RemoteProtocolError, match="without sending a response"):
            http.post(f"{server.base_url}/v1/messages", json=sdk.PARAMS)
    assert server.connections == 1 and b'"model":"claude-test"' in server.requests[0]


def test_cases_cover_the_catalogue() -> None:
    covered = {fault.name for case in CASES for step in parse(case.spec).steps for fault in step}
    assert covered | set(CLIENT_SIDE) | set(PROVIDER_ONLY) == set(streamtape.faults.CATALOGUE)
    assert not covered & set(CLIENT_SIDE)


def test_wire_server_piece_delay() -> None:
    reply = transcript("text_basic", piece_delay=0.01)
    with WireServer() as server, sdk.HTTP.Client() as http:
        server.queue(reply)
        assert http.post(f"{server.base_url}/v1/messages", json=sdk.PARAMS).content == reply.body
    gaps = [b - a for a, b in zip(reply.sent_at, reply.sent_at[1:], strict=False)]
    assert len(reply.sent_at) == 7 and min(gaps) >= 0.009
