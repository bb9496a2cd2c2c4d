"""The aiohttp stack: every ``aiohttp.ClientSession`` in the process (plain aiohttp code, and the SDKs'
vendored ``DefaultAioHttpClient`` transport, which sends through a ``ClientSession``).

Where it patches, and why there: at the connector, ``BaseConnector.connect`` (the call that would open
or reuse a socket), and nowhere above it. ``ClientSession._request`` keeps doing all its own work
(base URL, cookies, middlewares, redirects, ``raise_for_status``, the total timeout, traces, its retry
of a dropped idempotent request), ``ClientRequest.send`` still serializes the request, and aiohttp's
own ``ResponseHandler`` still parses the response with its own HTTP parser. For a replayed request the
connector hands back a ``Connection`` whose *transport* is the tape: the recorded head and body are
written into the real protocol as HTTP/1.1 bytes (in the recorded framing, one ``data_received`` per
recorded chunk, paced by the tape's clock), and a cut is the transport event a socket delivers: a FIN
(``eof_received`` then ``connection_lost(None)``), an RST (``connection_lost(ConnectionResetError)``),
or the protocol's own read timeout firing; silence that outlasts the request's total deadline
(``ClientTimeout(total=...)``) fires the request's own ``TimerContext`` at that moment of the tape's
time (``_Total``). So the exception the app meets (``ClientPayloadError`` with
its ``TransferEncodingError`` / ``ContentLengthError`` cause, ``ServerDisconnectedError``,
``ClientOSError``, ``SocketTimeoutError``), its message and its chain are made by aiohttp itself, as
over a socket; the vendored SDK transports then map them as in production. Only what happens before a
connection exists is built here, from measured chains (``connect_error``): a refused connection
(``ClientConnectorError`` caused by ``ConnectionRefusedError``) and a connect timeout (a bare
``TimeoutError`` that ``ClientSession`` turns into ``ConnectionTimeoutError``).

Patching ``ClientSession._request`` instead (as the fail-closed guard used to, and aioresponses does)
would have to rebuild a ``ClientResponse`` and re-implement redirects, cookies, middlewares and
timeouts, and would make every exception a copy; patching the parser or ``ClientResponse`` would
leave the connect itself on the network.

One session can use a tape without anything patched: ``tape.async_transport(stack="aiohttp")`` is a
``TapeConnector`` (an ``aiohttp.TCPConnector`` whose ``connect`` is the same routing) for
``aiohttp.ClientSession(connector=...)``; aiohttp is async-only, so ``tape.transport(stack="aiohttp")``
says so.

Replay keeps the recorded chunk boundaries the way a live stream arrives, one read per chunk: the
response's ``StreamReader`` becomes a subclass of its own class that tells the transport when the app
has read everything written so far, and the next chunk (or the break) is written then, whatever size the
app reads in (``iter_any()``, ``iter_chunked(n)``, ``readline()``).

Recording takes the real connection and watches it, on that connection only (nothing global, so the
explicit ``TapeConnector`` records the same way): the protocol hands ``ClientResponse.start`` the head
and the body's reader (``protocol.read``), which notes each piece aiohttp's parser feeds it, the moment
it arrived, then the end, or the real error classified to a neutral ``Cut`` (``classify``). When the app
lets go of a body before its end (it broke out of the stream; the SDK closed the response), the
connection is taken out of its pool and read on in the background, as the httpx2 recorder does (bounded
by ``DRAIN_SECONDS`` and ``DRAIN_BYTES``, awaited when the tape is left with ``async with``), so the
cassette holds the whole stream and ends as it really ended.

Measured with aiohttp 3.14 over real sockets on 127.0.0.1 (tests/test_fidelity_aiohttp.py compares every
catalogue fault against a real misbehaving server, through both SDKs' aiohttp transports and plain
aiohttp), and faithful because aiohttp makes the exceptions itself: a FIN and an RST mid-body are the
same ``ClientPayloadError``; a chunk-size line that is not one, after the head arrived, fails aiohttp's
parser without ending the body or starting its read timeout, so the app waits until a total timeout, as
over a socket; aiohttp has no write timeout (it starts the read timeout once the request is written), so
``write_timeout`` is the read timeout firing, as for any request the kernel's buffers take.
"""

from __future__ import annotations

import asyncio
import contextlib
import errno
import os
import sys
from collections.abc import Callable, Iterator
from http import HTTPStatus
from typing import TYPE_CHECKING, Any

from ..engine.clock import Pacer
from ..engine.playback import Broken, Garbage, Playback, Silent, harness_error
from ..errors import StreamtapeError
from ..guard import forwarding
from ..intercept import recorder as _recorder
from ..intercept.recorder import Recording, prepare_request
from ..wire import Action, Chunks, Cut, Respond
from . import Patches, harness

if TYPE_CHECKING:
    from . import Router

__all__ = ["AIOHTTP", "AiohttpStack"]

#: cut kinds that happen before a connection exists: raised by the connector itself
_CONNECT_KINDS = frozenset({"refused", "connect_timeout", "pool_timeout", "proxy", "unsupported_protocol"})
#: cut kinds a socket delivers as an RST (the rest of the network kinds: a FIN, or silence)
_RESET_KINDS = frozenset({"reset", "write_error"})
_TIMEOUT_KINDS = frozenset({"timeout", "write_timeout"})


class AiohttpStack:
    """aiohttp's client: ``ClientSession`` over ``BaseConnector``."""

    name = "aiohttp"
    watches = ("aiohttp",)

    def __init__(self) -> None:
        #: the methods this adapter replaced, while installed
        self._patches = Patches()

    def __repr__(self) -> str:
        return "<stack aiohttp>"

    @property
    def module(self) -> Any:
        return sys.modules["aiohttp"]

    def _original(self, cls: type, name: str) -> Any:
        return self._patches.original(cls, name)

    # --- the protocol ------------------------------------------------------------------------------

    def install(self, router: Router) -> Callable[[], None]:
        import aiohttp.connector

        stack = self
        connector_cls = aiohttp.connector.BaseConnector

        async def connect(connector: Any, req: Any, *args: Any, **kwargs: Any) -> Any:
            tape = router.current(lambda: f"{req.method} {req.url}")
            if tape is None:
                return await stack._original(connector_cls, "connect")(connector, req, *args, **kwargs)
            return await stack.connect(tape, connector, req, args, kwargs)

        return self._patches.apply([(connector_cls, "connect", connect)])

    def exception(self, broken: Broken, *, asynchronous: bool, address: tuple[str, int] | None) -> BaseException:
        """The exception for a cut before the connection exists. Every other cut is made by aiohttp
        itself, from the transport event a socket delivers (see the module's docstring)."""
        return connect_error(broken.kind, address or ("127.0.0.1", 0), None)

    def classify(self, exc: BaseException) -> Cut | None:
        """The cut a real aiohttp exception records as (``None``: not a network failure)."""
        aiohttp = sys.modules.get("aiohttp")
        if aiohttp is None:
            return None
        message = str(exc)
        if isinstance(exc, aiohttp.ClientPayloadError):
            return Cut("reset" if "ConnectionResetError" in message else "fin", message)
        if isinstance(exc, getattr(aiohttp, "ConnectionTimeoutError", ())):
            return Cut("connect_timeout", message)
        if isinstance(exc, aiohttp.ServerTimeoutError):
            return Cut("timeout", message)
        if isinstance(exc, aiohttp.ClientConnectorError):
            return Cut("refused", message)
        if isinstance(exc, aiohttp.ServerDisconnectedError):
            return Cut("fin", message)
        if isinstance(exc, aiohttp.ClientOSError | aiohttp.ClientConnectionError):
            return Cut("reset", message)
        if isinstance(exc, TimeoutError):  # from the connector: ClientSession makes it ConnectionTimeoutError
            return Cut("connect_timeout", message)
        return None

    def transport(self, tape: Any, *, asynchronous: bool, **options: Any) -> Any:
        """A connector for one ``aiohttp.ClientSession(connector=...)`` that sends through ``tape`` without
        patching anything (``tape.async_transport(stack="aiohttp")``; see ``TapeConnector``). ``options``
        are ``aiohttp.TCPConnector``'s (``limit``, ``ssl``...), for what goes to the network."""
        from ..errors import ConfigError

        if not asynchronous:
            raise ConfigError(
                "stack 'aiohttp' is async-only, so it has no sync transport: inside your event loop, pass "
                "tape.async_transport(stack='aiohttp') to aiohttp.ClientSession(connector=...)"
            )
        return _connector_class()(tape, self, **options)

    # --- one request -------------------------------------------------------------------------------

    async def connect(self, tape: Any, connector: Any, req: Any, args: tuple[Any, ...], kwargs: dict[str, Any]) -> Any:
        import aiohttp.client_proto
        import aiohttp.connector

        forward = self._original(aiohttp.connector.BaseConnector, "connect")
        host = req.url.raw_host or ""
        if tape.allow_hosts and tape.allow_hosts.allows(host, resolve=False):
            _Total.release(req)
            with forwarding():  # the test's own service: neither recorded nor blocked
                return await forward(connector, req, *args, **kwargs)
        method, url, headers = _parts(req)
        body = await _body(req)
        with harness(f"{method} {url}"):
            request, redactor = prepare_request(tape, method, url, headers, body)
            route = None if request is None else tape.route(request, stack=self.name)
            if isinstance(route, list):
                timeout = kwargs.get("timeout", args[1] if len(args) > 1 else None)
                playback, pacer = _playback(tape, route, timeout)
                total = _Total.of(req, timeout, pacer)
                at, head = playback.head()
        if request is None:  # before_record_request left it out: neither recorded nor replayed
            _Total.release(req)
            with forwarding():
                return await forward(connector, req, *args, **kwargs)
        if isinstance(route, list):
            if isinstance(head, Broken) and head.kind in _CONNECT_KINDS:
                if total is not None and total.ends_connect(at, head.kind, timeout):
                    await total.fire_here(pacer)  # the total deadline cancels the connect: aiohttp raises it
                await pacer.await_(at)
                _throw(connect_error(head.kind, _address(req), req.connection_key))
            loop = asyncio.get_running_loop()
            reply = _Reply(playback, pacer, at, head, f"{method} {url}", _address(req), total)
            transport = _TapeTransport(loop, reply)
            protocol = aiohttp.client_proto.ResponseHandler(loop)
            protocol.connection_made(transport)
            transport.protocol = protocol
            return aiohttp.connector.Connection(_Unpooled(connector), req.connection_key, protocol, loop)  # type: ignore[arg-type]
        _Total.release(req)  # a real connection: aiohttp's own timer runs in real time again
        _learn_proxy(redactor, req)
        recording = Recording(request, redactor, tape.hooks)
        tape.begin_recording(recording, stack=self.name)
        try:
            with forwarding():
                connection = await forward(connector, req, *args, **kwargs)
        except BaseException as exc:
            recording.failed(self._classify_connect, exc)
            raise
        _record(connection, recording, self.classify)
        return connection

    def _classify_connect(self, exc: BaseException) -> Cut | None:
        if isinstance(exc, TimeoutError) and not isinstance(exc, self.module.ServerTimeoutError):
            return Cut("connect_timeout", str(exc) or "Connection timeout")
        return self.classify(exc)


AIOHTTP = AiohttpStack()


_CONNECTOR: list[type] = []


def _connector_class() -> type:
    """``TapeConnector``, built on first use (aiohttp is imported only when the app uses it)."""
    if not _CONNECTOR:
        import aiohttp

        class TapeConnector(aiohttp.TCPConnector):
            """An ``aiohttp.TCPConnector`` that sends every request of its session through one tape, with
            nothing patched globally: ``aiohttp.ClientSession(connector=tape.async_transport(stack="aiohttp"))``.

            A connector, because it is where aiohttp itself lets a session choose how it connects, and
            everything above it stays aiohttp's own: the session's base URL, cookies, middlewares,
            redirects and timeouts, the request's serialization, and the response's parser, so replayed
            faults raise what a real socket makes aiohttp raise. The same connector serves plain aiohttp,
            and any library that takes a session or a connector; the SDKs' ``DefaultAioHttpClient`` takes
            one through its transport's ``client=`` (a ``ClientSession``).

            Build it inside the running event loop, like any aiohttp connector, with the tape loaded
            (``tape.load()``) or entered; ``tape.save()`` writes what it recorded (leaving an entered tape
            with ``async with`` lets the background read of an abandoned stream finish first). Keyword
            arguments are ``TCPConnector``'s, for the requests that reach the network (recording, or
            ``allow_hosts``).
            """

            def __init__(self, tape: Any, stack: AiohttpStack, **options: Any) -> None:
                super().__init__(**options)
                self.tape, self.stack = tape, stack

            async def connect(self, req: Any, *args: Any, **kwargs: Any) -> Any:
                return await self.stack.connect(self.tape, self, req, args, kwargs)

            def __repr__(self) -> str:
                return f"<TapeConnector {self.tape!r}>"

        _CONNECTOR.append(TapeConnector)
    return _CONNECTOR[0]


# --- recording -------------------------------------------------------------------------------------


class _Seen:
    """One recorded exchange as aiohttp delivers it: whether aiohttp decodes its body, whether the app let
    go of the response before its end, and the background read of the rest."""

    __slots__ = ("recording", "classify", "decompressed", "released", "drained", "ended")

    def __init__(self, recording: Recording, classify: Callable[[BaseException], Cut | None]) -> None:
        self.recording = recording
        self.classify = classify
        self.decompressed = True  # aiohttp's default: auto_decompress=True
        self.released = False  # the app let go of the response before its end
        self.drained = 0  # bytes read on after that
        self.ended: asyncio.Future[None] | None = None  # set when the body ends, once a drain waits for it

    def end(self, exc: BaseException | None) -> None:
        """The body ended (``exc`` None: cleanly), or the app released it unread (aiohttp's "Connection
        closed", put on the reader): then the connection's release decides (``_drain``)."""
        recording = self.recording
        if recording.end is not None:
            return
        if exc is not None and _released(exc):
            self.released = True
            return
        recording.finish(self.classify, exc)
        self._wake()

    def note(self, data: bytes) -> bool:
        """A piece arrived; ``False``: nobody reads it any more (noted only), the bound is checked."""
        self.recording.chunk(data)
        if not self.released:
            return True
        self.drained += len(data)
        if self.drained > _recorder.DRAIN_BYTES:
            self.recording.client_closed()
            self._wake()
        return False

    def _wake(self) -> None:
        if self.ended is not None and not self.ended.done():
            self.ended.set_result(None)


def _record(connection: Any, recording: Recording, classify: Callable[[BaseException], Cut | None]) -> None:
    """Watch one real connection for ``recording``, on this connection only (nothing global): aiohttp's
    own protocol hands ``ClientResponse.start`` the head and the body's reader (``protocol.read``); the
    session tells the protocol whether to decode the body (``set_response_params``); the response lets go
    of the connection when the app is done (``connection.release`` / ``close``)."""
    protocol = connection.protocol
    seen = _Seen(recording, classify)
    read, set_params = protocol.read, protocol.set_response_params

    def set_response_params(**params: Any) -> None:
        del protocol.set_response_params  # the class's method again
        seen.decompressed = bool(params.get("auto_decompress", True))
        set_params(**params)

    async def read_head() -> Any:
        try:
            message, payload = await read()
        except BaseException as exc:
            del protocol.read
            recording.failed(classify, exc)
            raise
        if 100 <= message.code < 200 and message.code != 101:  # an interim answer: the real one follows
            return message, payload
        del protocol.read
        with harness(f"{recording.request.method} {recording.request.url}"):
            _headed(seen, message, payload)
        return message, payload

    protocol.set_response_params = set_response_params
    protocol.read = read_head
    release, close = connection.release, connection.close
    connection.release = lambda: _let_go(connection, seen, release)
    connection.close = lambda: _let_go(connection, seen, close)


def _headed(seen: _Seen, message: Any, payload: Any) -> None:
    raw_headers = list(message.raw_headers)
    encoded = any(k.lower() == b"content-encoding" and v.strip().lower() != b"identity" for k, v in raw_headers)
    if encoded and seen.decompressed:  # aiohttp decodes before the StreamReader: store what it holds
        raw_headers = [(k, v) for k, v in raw_headers if k.lower() not in (b"content-encoding", b"content-length")]
    seen.recording.respond(message.code, (message.reason or "").encode("latin-1"), raw_headers)
    _tap(payload, seen)


def _released(exc: BaseException) -> bool:
    """``exc`` is what aiohttp puts on a body's reader when the app releases the response unread."""
    aiohttp = sys.modules["aiohttp"]
    closed = getattr(sys.modules.get("aiohttp.client_reqrep"), "_CONNECTION_CLOSED_EXCEPTION", None)
    return exc is closed or (type(exc) is aiohttp.ClientConnectionError and str(exc) == "Connection closed")


def _tap(content: Any, seen: _Seen) -> None:
    """Note every piece aiohttp's parser feeds ``content`` (the response's ``StreamReader``), when it
    arrives, and how it ends. The reader is given a subclass of its own class that notes, then does
    what it always does (the app reads the very same object); once the app let go of it, what arrives
    is noted only (nobody reads it: buffered, it would stop the connection at the reader's limit)."""
    import aiohttp
    import aiohttp.streams

    recording = seen.recording
    if type(content) is not aiohttp.StreamReader:  # no body (HEAD, 204, 304): EMPTY_PAYLOAD
        recording.finish(seen.classify)
        return

    class _RecordingReader(aiohttp.streams.StreamReader):
        __slots__ = ()

        def feed_data(self, data: bytes, *args: Any) -> Any:
            if data and not seen.note(bytes(data)):
                return False
            return super().feed_data(data, *args)

        def feed_eof(self) -> None:
            seen.end(None)
            super().feed_eof()

        def set_exception(self, exc: BaseException, *args: Any) -> None:
            seen.end(exc)
            super().set_exception(exc, *args)

    buffered = b"".join(content._buffer)  # noqa: SLF001 - what the parser fed with the head, before the tap
    if buffered:
        recording.chunk(buffered)
    content.__class__ = _RecordingReader
    if content.is_eof() or content.exception() is not None:  # it ended before the head was handed on
        seen.end(content.exception())


def _let_go(connection: Any, seen: _Seen, release: Callable[[], None]) -> None:
    """The response lets go of its connection (``release`` is the connection's own ``release`` or
    ``close``). When the app let go of a body that has not ended, the connection is taken from its pool
    (so closing the session does not cut it) and read on in the background until the body ends, as the
    recorder does for httpx2 (``DRAIN_SECONDS``, ``DRAIN_BYTES``), so the cassette holds the whole stream
    and ends as it really ended; then it is closed. Else it goes back as it would have."""
    del connection.release, connection.close  # the class's methods again
    recording = seen.recording
    protocol, connector = connection.protocol, connection._connector  # noqa: SLF001
    detach = getattr(connector, "_release_acquired", None)
    if not (seen.released and recording.unfinished and protocol is not None and detach is not None):
        if seen.released:
            recording.client_closed()
        release()
        return
    connection._notify_release()  # noqa: SLF001 - what release() does first, for the response's callbacks
    connection._protocol = None  # noqa: SLF001 - handed to the background read
    detach(connection._key, protocol)  # noqa: SLF001 - no longer the pool's: the pool never closes it
    loop = asyncio.get_running_loop()
    seen.ended = loop.create_future()
    recording.pending = loop.create_task(_drain(protocol, seen), name="streamtape-drain")


async def _drain(protocol: Any, seen: _Seen) -> None:
    recording = seen.recording
    try:
        protocol.resume_reading()  # the app may have stopped reading with the reader full
        assert seen.ended is not None
        loop = asyncio.get_running_loop()
        deadline = loop.time() + _recorder.DRAIN_SECONDS
        # until the body ends, the bound runs out, or the connection is gone (aiohttp may have closed it
        # on release already: then nothing more can arrive, and waiting out the bound would only stall
        # the tape's exit), looking every 50 ms
        while not seen.ended.done() and protocol.transport is not None and loop.time() < deadline:
            with contextlib.suppress(TimeoutError):
                await asyncio.wait_for(asyncio.shield(seen.ended), min(0.05, max(deadline - loop.time(), 0.0)))
    finally:
        recording.client_closed()  # a no-op when the body ended: else the bound ran out, or the tape left
        protocol.close()


# --- replay ----------------------------------------------------------------------------------------


class _Reply:
    """What the tape answers one request with, for the transport to play."""

    __slots__ = ("playback", "pacer", "at", "head", "describe", "address", "total")

    def __init__(self, playback: Playback, pacer: Pacer, at: float, head: Any, describe: str,
                 address: tuple[str, int], total: _Total | None) -> None:  # fmt: skip
        self.playback, self.pacer, self.at, self.head = playback, pacer, at, head
        self.describe, self.address, self.total = describe, address, total


class _Total:
    """The request's total deadline (``aiohttp.ClientTimeout(total=T)``), kept in the tape's time.

    aiohttp bounds a whole request (connect, redirects, head and body) with one ``TimeoutHandle``: a loop
    timer ``T`` seconds after ``ClientSession._request`` began, which calls the request's ``TimerContext``
    (``req._timer``, also the response's and its body reader's); that cancels the task waiting inside it,
    and the context's ``__exit__`` raises ``TimeoutError`` from the ``CancelledError``. google-genai's async
    client sets only this deadline. The replay plays the same: when silence on the tape (a stall, a
    ``linger``, a ``timeout`` with no ``sock_read``, a gap, or the time after the tape's last word while
    aiohttp still waits) reaches ``T`` after the request began, measured on the tape's clock, it calls that
    very ``TimerContext.timeout()`` at that virtual moment, so aiohttp raises what it raises over a socket
    (same class, message and chain). Nothing changes where the silence ends before the deadline, nor for
    ``sock_read`` (``Playback`` decides it, and whichever of the two comes first on the tape fires).

    The real timer is held while the tape's time is not the wall clock (speed 0, or scaled): its call
    then cancels nothing and marks nothing (``_Tasks``, ``_timer_types``), and only the tape fires the
    timer. That is the faithful choice and the deterministic one: the deadline, like ``sock_read``, is
    measured in the recording's time, which a replay at speed 0 spends none of; wall-clock time a loaded
    CPU spends replaying is not the recording's, and letting the real timer fire in it made an instant
    replay of a clean stream raise ``TimeoutError`` now and then. (Rescheduling the real ``TimerHandle``
    instead would mean finding a local of ``_request`` in the loop's private heap.) At speed 1 both clocks
    agree: the real timer stays armed, and whichever fires first does the same thing. aiohttp rounds a
    deadline of ``ceil_threshold`` (5) s or more up to a whole second of the loop's clock; the tape does
    not (that rounding depends on when the wall clock started). A request that goes to the network after
    all (``allow_hosts``, or recording) gets the real timer back (``release``).

    The deadline runs from the first connect of the request on the tape's clock, and is kept on the timer
    (its task list becomes a ``_Tasks``), so a redirect or aiohttp's retry of a dropped connection spends
    from the same deadline, as in aiohttp.
    """

    __slots__ = ("timer", "at")

    def __init__(self, timer: Any, at: float) -> None:
        self.timer = timer
        #: when the deadline expires, in seconds after this connection's request (the pacer's offsets)
        self.at = at

    @classmethod
    def of(cls, req: Any, timeout: Any, pacer: Pacer) -> _Total | None:
        """The total deadline of ``req`` (``None``: it has none)."""
        seconds = getattr(timeout, "total", None)
        timer = getattr(req, "_timer", None)
        if seconds is None or not seconds > 0 or not isinstance(timer, _timer_types()[0]):
            return None
        tasks = timer._tasks  # noqa: SLF001
        if type(tasks) is not _Tasks:  # the request's first connect: its deadline starts now on the tape
            tasks = _Tasks(tasks)
            tasks.deadline = pacer.start + float(seconds)
            timer._tasks = tasks  # noqa: SLF001
            if type(timer) is _timer_types()[0]:
                timer.__class__ = _timer_types()[1]
        tasks.held = pacer.clock.wall(1.0) != 1.0 and type(timer) is _timer_types()[1]
        return cls(timer, tasks.deadline - pacer.start)

    @staticmethod
    def release(req: Any) -> None:
        """``req`` goes to the network: aiohttp's real timer fires in real time again."""
        tasks = getattr(getattr(req, "_timer", None), "_tasks", None)
        if type(tasks) is _Tasks:
            tasks.held = False

    def cuts_off(self, at: float, outcome: Any, playback: Playback) -> bool:
        """Whether the deadline expires before ``outcome``, due ``at``: its silence outlasts what is left,
        or it is silence only a timeout ends and the client has no ``sock_read`` (``Playback`` decides
        that one)."""
        if at >= self.at or isinstance(outcome, Silent):
            return True
        return isinstance(outcome, Broken) and outcome.kind in _TIMEOUT_KINDS and playback.timeout is None

    def ends_connect(self, at: float, kind: str, timeout: Any) -> bool:
        """Whether the deadline expires before a connect that fails so: a connect that is never accepted
        waits for the first of the connect timeouts and the total."""
        if at >= self.at:
            return True
        if kind != "connect_timeout":
            return False
        limits = [float(v) for v in (getattr(timeout, "connect", None), getattr(timeout, "sock_connect", None))
                  if v is not None and v > 0]  # fmt: skip
        return not limits or min(limits) >= self.at

    def fire(self) -> None:
        """What aiohttp's ``TimeoutHandle`` calls when the deadline expires."""
        self.timer._tasks.held = False  # noqa: SLF001 - this is the deadline, on the tape's clock
        self.timer.timeout()

    async def fire_here(self, pacer: Pacer) -> None:
        """The deadline expiring while the app's own task waits here (the connect): the cancellation
        arrives at this await, as at the real connect's."""
        await pacer.await_(self.at)
        self.fire()
        await asyncio.sleep(0)


class _Tasks(list):  # type: ignore[type-arg]
    """A ``TimerContext``'s own list of the tasks inside it, carrying the request's deadline on the tape's
    clock (the timer lives as long as the request, and is shared by its redirects), and whether aiohttp's
    real timer is held: then its ``timeout()`` finds no task to cancel here, and ``_held_timer`` keeps it
    from marking the timer expired."""

    __slots__ = ("deadline", "held")

    deadline: float
    held: bool

    def __iter__(self) -> Iterator[Any]:
        return iter(()) if self.held else list.__iter__(self)


_TIMERS: list[type] = []


def _timer_types() -> tuple[Any, Any]:
    """aiohttp's ``TimerContext``, and the subclass a replayed request's timer becomes. ``TimeoutHandle``
    holds the timer's *bound* ``timeout`` (bound before any connect), so the hold cannot be a method of
    the subclass: ``timeout()`` cancels the tasks it iterates (``_Tasks``, empty while held) and then sets
    ``_cancelled``, which the subclass ignores while held (the same slot, behind a property)."""
    if not _TIMERS:
        import aiohttp.helpers

        base = aiohttp.helpers.TimerContext
        slot = base.__dict__["_cancelled"]

        def get(self: Any) -> bool:
            return bool(slot.__get__(self, base))

        def set_(self: Any, value: bool) -> None:
            if not (value and getattr(self._tasks, "held", False)):  # noqa: SLF001
                slot.__set__(self, value)

        held = type("_HeldTimer", (base,), {"__slots__": (), "_cancelled": property(get, set_),
                                            "__module__": __name__})  # fmt: skip
        _TIMERS[:] = [base, held]
    return _TIMERS[0], _TIMERS[1]


class _Unpooled:
    """The connector of a replayed connection, as the request sees it (the session's own connector's
    ``force_close``): it is never pooled, so released is closed."""

    def __init__(self, connector: Any) -> None:
        self.force_close = bool(getattr(connector, "force_close", False))

    def _release(self, key: Any, protocol: Any, *, should_close: bool = False) -> None:
        protocol.close()


class _TapeTransport(asyncio.Transport):
    """The socket of a replayed connection: takes the request, and plays the tape's answer into the real
    aiohttp protocol once the request's head is written."""

    def __init__(self, loop: asyncio.AbstractEventLoop, reply: _Reply) -> None:
        super().__init__()
        self.loop = loop
        self.reply = reply
        self.protocol: Any = None
        self.closing = False
        self.lost = False
        self.task: asyncio.Task[None] | None = None
        self.framing = "chunked"
        self.paused = False
        self.resumed: asyncio.Future[None] | None = None
        #: the body's reader, once the head is delivered: what the app has not read yet is in it
        self.payload: Any = None

    # what aiohttp asks of a transport
    def get_extra_info(self, name: str, default: Any = None) -> Any:
        return {"peername": self.reply.address}.get(name, default)

    def write(self, data: Any) -> None:
        if self.task is None and not self.closing:
            self.task = self.loop.create_task(self._play(), name="streamtape-aiohttp-replay")

    def writelines(self, list_of_data: Any) -> None:
        self.write(b"")

    def write_eof(self) -> None:
        pass

    def can_write_eof(self) -> bool:
        return True

    def get_write_buffer_size(self) -> int:
        return 0

    def get_write_buffer_limits(self) -> tuple[int, int]:
        return (0, 0)

    def set_write_buffer_limits(self, high: int | None = None, low: int | None = None) -> None:
        pass

    def is_closing(self) -> bool:
        return self.closing

    def close(self) -> None:
        if not self.closing:
            self.closing = True
            self._wake()
            if self.task is not None and not self.task.done():
                self.task.cancel()
            self.loop.call_soon(self._lose, None)

    def abort(self) -> None:
        self.close()

    def is_reading(self) -> bool:
        return not self.paused

    def pause_reading(self) -> None:
        self.paused = True

    def resume_reading(self) -> None:
        self.paused = False
        self._wake()

    # the tape's side
    def _wake(self) -> None:
        if self.resumed is not None and not self.resumed.done():
            self.resumed.set_result(None)
        self.resumed = None

    async def _ready(self) -> bool:
        """Wait until the app has read everything written so far (and the protocol reads again)."""
        payload = self.payload
        while not self.closing and (self.paused or (payload is not None and payload._size  # noqa: SLF001
                                                    and payload.exception() is None)):  # fmt: skip
            self.resumed = self.loop.create_future()
            await self.resumed
        return not self.closing

    def _lose(self, exc: BaseException | None) -> None:
        if not self.lost:
            self.lost = True
            self.closing = True
            self.protocol.connection_lost(exc)

    def _deliver(self, data: bytes) -> None:
        if data and not self.closing:
            self.protocol.data_received(data)

    def _frame(self, data: bytes) -> bytes:
        if self.framing == "chunked":
            return b"%x\r\n%b\r\n" % (len(data), data) if data else b""
        return data

    def _hold_boundaries(self) -> None:
        """Write the next chunk once the app has read the last (the body's reader tells this transport when
        it is empty), as each chunk of a live stream arrives in a read of its own: the recorded boundaries
        are what the app reads, whatever size it asks for (``iter_chunked(n)``, ``readline()``...)."""
        payload = getattr(self.protocol, "_payload", None)
        if payload is not None and type(payload) is _reader_types()[0]:
            payload.__class__ = _reader_types()[1]
            self.payload = payload

    async def _play(self) -> None:
        reply = self.reply
        total = reply.total
        try:
            head = reply.head
            if total is not None and total.cuts_off(reply.at, head, reply.playback):
                await self._expire(total)
                return
            await reply.pacer.await_(reply.at)
            if not isinstance(head, Respond):
                self._outcome(head, before_headers=True)
                return
            self.framing = reply.playback.framing
            self._deliver(_head_bytes(head, self.framing))
            self._hold_boundaries()
            for at, item in _guarded(reply.playback.body(), reply.describe):
                if isinstance(item, Chunks):
                    if total is not None and item.timing and item.timing[-1][0] >= total.at:
                        for piece, piece_at in item.pieces():  # the deadline falls inside this run
                            if not await self._ready():
                                return
                            if piece_at >= total.at:
                                await self._expire(total)
                                return
                            self._deliver(self._frame(piece))
                        continue
                    for piece in _pieces(item):
                        if not await self._ready():
                            return
                        self._deliver(self._frame(piece))
                    continue
                if not await self._ready():  # a break, too, comes after what the app read before it
                    return
                if total is not None and total.cuts_off(at, item, reply.playback):
                    await self._expire(total)
                    return
                await reply.pacer.await_(at)
                if isinstance(item, bytes):
                    self._deliver(self._frame(item))
                elif item is None:
                    self._end()
                    break
                else:
                    self._outcome(item, before_headers=False)
                    break
            if total is not None and self._waiting():  # the tape is over, and aiohttp still waits: silence
                await reply.pacer.await_(total.at)
                if self._waiting():
                    total.fire()
        except StreamtapeError as exc:  # a harness error: the app meets it as itself
            self._fail(exc)

    async def _expire(self, total: _Total) -> None:
        """Silence until the request's total deadline, on the tape's clock: then aiohttp's own timer fires."""
        if await self._ready():
            await self.reply.pacer.await_(total.at)
            if not self.closing:
                total.fire()

    def _waiting(self) -> bool:
        """Whether aiohttp still waits for this body after the tape's last word (bytes its parser neither
        ends nor breaks the body on, as a bad chunk-size line after the first chunk: not even the FIN that
        follows ends it). Only the total deadline ends that wait, as over a socket."""
        payload = getattr(self.protocol, "_payload", None)
        return payload is not None and not payload.is_eof() and payload.exception() is None

    def _end(self) -> None:
        playback = self.reply.playback
        if self.framing == "chunked":
            self._deliver(b"0\r\n\r\n")
        elif self.framing == "close" or (playback.expected is not None and playback.received < playback.expected):
            self._fin()

    def _fin(self) -> None:
        if not self.closing:
            self.protocol.eof_received()
            self._lose(None)

    def _outcome(self, outcome: Broken | Silent | Garbage, *, before_headers: bool) -> None:
        if isinstance(outcome, Garbage):
            self._deliver(outcome.data)
            self._fin()
            return
        error = harness_error(outcome)
        if error is not None:
            self._fail(error)
            return
        assert isinstance(outcome, Broken)
        if outcome.kind in _RESET_KINDS:
            self._lose(ConnectionResetError(errno.ECONNRESET, os.strerror(errno.ECONNRESET)))
        elif outcome.kind in _TIMEOUT_KINDS and hasattr(self.protocol, "_on_read_timeout"):
            self.protocol._on_read_timeout()  # noqa: SLF001 - what its own sock_read timer calls
        else:
            self._fin()

    def _fail(self, exc: BaseException) -> None:
        protocol = self.protocol
        payload = getattr(protocol, "_payload", None)
        if payload is not None:
            payload.set_exception(exc)
        protocol.set_exception(exc)


_READERS: list[type] = []


def _reader_types() -> tuple[type, type]:
    """aiohttp's ``StreamReader``, and the subclass a replayed body's reader becomes: it wakes the tape's
    transport whenever the app has read all there was (the app reads the very same object)."""
    if not _READERS:
        import aiohttp.streams

        class _ReplayReader(aiohttp.streams.StreamReader):
            __slots__ = ()

            def _read_nowait_chunk(self, n: int) -> bytes:
                data: bytes = super()._read_nowait_chunk(n)
                if not self._size:
                    wake = getattr(self._protocol.transport, "_wake", None)
                    if wake is not None:
                        wake()
                return data

        _READERS[:] = [aiohttp.streams.StreamReader, _ReplayReader]
    return _READERS[0], _READERS[1]


def _head_bytes(head: Respond, framing: str) -> bytes:
    reason = head.reason
    if not reason:
        try:
            reason = HTTPStatus(head.status).phrase
        except ValueError:
            reason = ""
    lines = [f"HTTP/1.1 {head.status} {reason}".encode("latin-1")]
    names = {name.lower() for name, _ in head.headers}
    lines += [f"{name}: {value}".encode("latin-1") for name, value in head.headers]
    if framing == "chunked" and "transfer-encoding" not in names:
        lines.append(b"transfer-encoding: chunked")
    return b"\r\n".join(lines) + b"\r\n\r\n"


def _guarded(outcomes: Iterator[tuple[float, Any]], describe: str) -> Iterator[tuple[float, Any]]:
    """The playback's outcomes; an exception raised while deciding one is a ``HarnessError``."""
    while True:
        with harness(describe):
            try:
                outcome = next(outcomes)
            except StopIteration:
                return
        yield outcome


def _pieces(run: Chunks) -> Iterator[bytes]:
    data, pos = run.data, 0
    for _, size in run.timing:
        yield data[pos : pos + size]
        pos += size


def _playback(tape: Any, actions: list[Action], timeout: Any) -> tuple[Playback, Pacer]:
    clock = tape.clock
    read = getattr(timeout, "sock_read", None)
    playback = Playback(actions, read_timeout=None if read is None else float(read), whole_runs=not clock.paced)
    return playback, Pacer(clock)


def connect_error(kind: str, address: tuple[str, int], key: Any) -> BaseException:
    """What the connector raises for a connection that never came to be (measured, aiohttp 3.14 on
    asyncio): a refusal is ``ClientConnectorError`` caused by (and with the context of) the OS error
    asyncio words ``Connect call failed ('127.0.0.1', PORT)``; a connect timeout is the bare
    ``TimeoutError`` of the connector's deadline (``asyncio.timeout`` raises it from the task's
    cancellation), which ``ClientSession`` raises as ``ConnectionTimeoutError`` from it."""
    import aiohttp

    if kind == "refused":
        os_error = ConnectionRefusedError(errno.ECONNREFUSED, f"Connect call failed {address!r}")
        if key is None:
            return os_error
        exc: BaseException = aiohttp.ClientConnectorError(key, os_error)
        exc.__cause__ = exc.__context__ = os_error
        exc.__suppress_context__ = True
        return exc
    timeout, cancelled = TimeoutError(), asyncio.CancelledError()
    timeout.__cause__ = timeout.__context__ = cancelled  # asyncio.timeout's "raise TimeoutError from exc"
    timeout.__suppress_context__ = True
    return timeout


def _throw(exc: BaseException) -> Any:
    context = exc.__context__
    try:
        raise exc
    finally:
        if context is not None:
            exc.__context__ = context


def _parts(req: Any) -> tuple[str, str, tuple[tuple[str, str], ...]]:
    headers = tuple((str(k), str(v)) for k, v in req.headers.items())
    return req.method.upper(), str(req.url), headers


async def _body(req: Any) -> bytes:
    """The request body as bytes (what matching and the cassette see); aiohttp keeps its payload."""
    body = req.body
    if isinstance(body, bytes | bytearray):
        return bytes(body)
    value = getattr(body, "_value", None)
    if isinstance(value, bytes | bytearray):  # BytesPayload, JsonPayload, StringPayload
        return bytes(value)
    try:
        return bytes(await body.as_bytes())
    except Exception:  # noqa: BLE001 - a payload that cannot be read twice: matched without its body
        return b""


def _address(req: Any) -> tuple[str, int]:
    url = req.url
    return (url.raw_host or "", url.port or {"http": 80, "https": 443}.get(url.scheme, 0))


def _learn_proxy(redactor: Any, req: Any) -> None:
    """A proxy's credentials (its URL's user:password, ``proxy_auth``, ``proxy_headers``) travel below the
    request streamtape records: the redactor learns them, so a body repeating them is cleaned too."""
    proxy = getattr(req, "proxy", None)
    if proxy is not None:
        redactor.learn_url(str(proxy))
        if proxy.password:
            redactor.learn(proxy.password)
    auth = getattr(req, "proxy_auth", None)
    if auth is not None:
        redactor.learn_headers([("Proxy-Authorization", auth.encode())])
    headers = getattr(req, "proxy_headers", None)
    if headers:
        redactor.learn_headers([(str(k), str(v)) for k, v in headers.items()])
