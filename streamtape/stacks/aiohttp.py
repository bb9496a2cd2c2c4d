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
or the protocol's own read timeout firing. So the exception the app meets (``ClientPayloadError`` with
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

Replay keeps the recorded chunk boundaries the way a slow reader makes a socket keep them: the
response's ``StreamReader`` pauses the transport after every chunk (its flow-control marks), and the
next chunk is written when the app has read the last one (``resume_reading``). Recording takes the
real connection, and notes each piece aiohttp's parser feeds the response's ``StreamReader`` (the
moment it arrived), then the end, or the real error classified to a neutral ``Cut`` (``classify``);
``ClientResponse.start`` is wrapped for requests being recorded only, to hand the recording the head.
Measured with aiohttp 3.14 over real sockets on 127.0.0.1 (tests/test_stack_aiohttp.py compares every
fault against a real misbehaving server).
"""

from __future__ import annotations

import asyncio
import errno
import os
import sys
import weakref
from collections.abc import Callable, Iterator
from http import HTTPStatus
from typing import TYPE_CHECKING, Any

from ..engine.clock import Pacer
from ..engine.playback import Broken, Garbage, Playback, Silent, harness_error
from ..errors import StreamtapeError
from ..guard import forwarding
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
        #: a recorded request's protocol -> its recording, until the response head arrives
        self._recordings: weakref.WeakKeyDictionary[Any, _Pending] = weakref.WeakKeyDictionary()

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
        response_cls = aiohttp.ClientResponse

        async def connect(connector: Any, req: Any, *args: Any, **kwargs: Any) -> Any:
            tape = router.current()
            if tape is None:
                return await stack._original(connector_cls, "connect")(connector, req, *args, **kwargs)
            return await stack.connect(tape, connector, req, args, kwargs)

        async def start(response: Any, connection: Any) -> Any:
            pending = stack._recordings.pop(connection.protocol, None) if connection.protocol is not None else None
            original = stack._original(response_cls, "start")
            if pending is None:
                return await original(response, connection)
            return await stack._start_recorded(pending, original, response, connection)

        return self._patches.apply([(connector_cls, "connect", connect), (response_cls, "start", start)])

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
        from ..errors import ConfigError

        raise ConfigError(
            "stack 'aiohttp' has no explicit transport: enter the tape (with / async with) and every "
            "aiohttp.ClientSession is intercepted"
        )

    # --- one request -------------------------------------------------------------------------------

    async def connect(self, tape: Any, connector: Any, req: Any, args: tuple[Any, ...], kwargs: dict[str, Any]) -> Any:
        import aiohttp.client_proto
        import aiohttp.connector

        forward = self._original(aiohttp.connector.BaseConnector, "connect")
        host = req.url.raw_host or ""
        if tape.allow_hosts and tape.allow_hosts.allows(host):
            with forwarding():  # the test's own service: neither recorded nor blocked
                return await forward(connector, req, *args, **kwargs)
        method, url, headers = _parts(req)
        body = await _body(req)
        with harness(f"{method} {url}"):
            request, redactor = prepare_request(tape, method, url, headers, body)
            route = None if request is None else tape.route(request, stack=self.name)
            if isinstance(route, list):
                playback, pacer = _playback(tape, route, kwargs.get("timeout", args[1] if len(args) > 1 else None))
                at, head = playback.head()
        if request is None:  # before_record_request left it out: neither recorded nor replayed
            with forwarding():
                return await forward(connector, req, *args, **kwargs)
        if isinstance(route, list):
            if isinstance(head, Broken) and head.kind in _CONNECT_KINDS:
                await pacer.await_(at)
                _throw(connect_error(head.kind, _address(req), req.connection_key))
            loop = asyncio.get_running_loop()
            transport = _TapeTransport(loop, _Reply(playback, pacer, at, head, f"{method} {url}", _address(req)))
            protocol = aiohttp.client_proto.ResponseHandler(loop)
            protocol.connection_made(transport)
            transport.protocol = protocol
            return aiohttp.connector.Connection(_Unpooled(connector), req.connection_key, protocol, loop)  # type: ignore[arg-type]
        recording = Recording(request, redactor, tape.hooks)
        tape.begin_recording(recording, stack=self.name)
        try:
            with forwarding():
                connection = await forward(connector, req, *args, **kwargs)
        except BaseException as exc:
            recording.failed(self._classify_connect, exc)
            raise
        pending = _Pending(recording)
        self._recordings[connection.protocol] = pending
        _note_decompression(connection.protocol, pending)
        return connection

    def _classify_connect(self, exc: BaseException) -> Cut | None:
        if isinstance(exc, TimeoutError) and not isinstance(exc, self.module.ServerTimeoutError):
            return Cut("connect_timeout", str(exc) or "Connection timeout")
        return self.classify(exc)

    async def _start_recorded(self, pending: _Pending, original: Any, response: Any, connection: Any) -> Any:
        recording = pending.recording
        try:
            await original(response, connection)
        except BaseException as exc:
            recording.failed(self.classify, exc)
            raise
        raw_headers = list(response.raw_headers)
        encoded = any(k.lower() == b"content-encoding" and v.strip().lower() != b"identity" for k, v in raw_headers)
        if encoded and pending.decompressed:  # aiohttp decodes before the StreamReader: store what it holds
            raw_headers = [(k, v) for k, v in raw_headers if k.lower() not in (b"content-encoding", b"content-length")]
        recording.respond(response.status, (response.reason or "").encode("latin-1"), raw_headers)
        _tap(response.content, recording, self.classify)
        return response


AIOHTTP = AiohttpStack()


# --- recording -------------------------------------------------------------------------------------


class _Pending:
    __slots__ = ("recording", "decompressed")

    def __init__(self, recording: Recording) -> None:
        self.recording = recording
        self.decompressed = True  # aiohttp's default: auto_decompress=True


def _note_decompression(protocol: Any, pending: _Pending) -> None:
    """Learn whether aiohttp decodes this response's body (``auto_decompress``), which ``ClientSession``
    tells the protocol right after the connect: once, on this protocol only."""
    original = protocol.set_response_params

    def set_response_params(**params: Any) -> None:
        del protocol.set_response_params  # the class's method again
        pending.decompressed = bool(params.get("auto_decompress", True))
        original(**params)

    protocol.set_response_params = set_response_params


def _tap(content: Any, recording: Recording, classify: Callable[[BaseException], Cut | None]) -> None:
    """Note every piece aiohttp's parser feeds ``content`` (the response's ``StreamReader``), when it
    arrives, and how it ends. The reader is given a subclass of its own class that notes, then does
    what it always does (the app reads the very same object)."""
    import aiohttp
    import aiohttp.streams

    if type(content) is not aiohttp.StreamReader:  # no body (HEAD, 204, 304): EMPTY_PAYLOAD
        recording.finish(classify)
        return
    closed = getattr(sys.modules.get("aiohttp.client_reqrep"), "_CONNECTION_CLOSED_EXCEPTION", None)

    def ended(exc: BaseException | None) -> None:
        if recording.end is not None:
            return
        if exc is not None and (exc is closed or (type(exc) is aiohttp.ClientConnectionError
                                                  and str(exc) == "Connection closed")):  # fmt: skip
            recording.client_closed()  # the app released the response before its end
        else:
            recording.finish(classify, exc)

    class _RecordingReader(aiohttp.streams.StreamReader):
        __slots__ = ()

        def feed_data(self, data: bytes, *args: Any) -> Any:
            if data:
                recording.chunk(bytes(data))
            return super().feed_data(data, *args)

        def feed_eof(self) -> None:
            ended(None)
            super().feed_eof()

        def set_exception(self, exc: BaseException, *args: Any) -> None:
            ended(exc)
            super().set_exception(exc, *args)

    buffered = b"".join(content._buffer)  # noqa: SLF001 - what the parser fed with the head, before the tap
    if buffered:
        recording.chunk(buffered)
    content.__class__ = _RecordingReader
    if content.is_eof() or content.exception() is not None:  # it ended before the head was handed on
        ended(content.exception())


# --- replay ----------------------------------------------------------------------------------------


class _Reply:
    """What the tape answers one request with, for the transport to play."""

    __slots__ = ("playback", "pacer", "at", "head", "describe", "address")

    def __init__(self, playback: Playback, pacer: Pacer, at: float, head: Any, describe: str,
                 address: tuple[str, int]) -> None:  # fmt: skip
        self.playback, self.pacer, self.at, self.head = playback, pacer, at, head
        self.describe, self.address = describe, address


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
        """Wait until the app has read what was written (the reader resumed the transport)."""
        while self.paused and not self.closing:
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
        """Have the body's reader pause this transport after every chunk (its own flow control), so the
        next chunk is written once the app read the last: the recorded boundaries are what it reads."""
        payload = getattr(self.protocol, "_payload", None)
        if payload is not None and hasattr(payload, "_high_water") and hasattr(payload, "_low_water"):
            payload._high_water, payload._low_water = 0, 1  # noqa: SLF001

    async def _play(self) -> None:
        reply = self.reply
        try:
            await reply.pacer.await_(reply.at)
            head = reply.head
            if not isinstance(head, Respond):
                self._outcome(head, before_headers=True)
                return
            self.framing = reply.playback.framing
            self._deliver(_head_bytes(head, self.framing))
            self._hold_boundaries()
            for at, item in _guarded(reply.playback.body(), reply.describe):
                if isinstance(item, Chunks):
                    for piece in _pieces(item):
                        if not await self._ready():
                            return
                        self._deliver(self._frame(piece))
                    continue
                if isinstance(item, bytes) and not await self._ready():
                    return
                await reply.pacer.await_(at)
                if isinstance(item, bytes):
                    self._deliver(self._frame(item))
                elif item is None:
                    self._end()
                    return
                else:
                    self._outcome(item, before_headers=False)
                    return
        except StreamtapeError as exc:  # a harness error: the app meets it as itself
            self._fail(exc)

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
    playback = Playback(actions, read_timeout=None if read is None else float(read), instant=not clock.paced)
    return playback, Pacer(clock)


def connect_error(kind: str, address: tuple[str, int], key: Any) -> BaseException:
    """What the connector raises for a connection that never came to be (measured, aiohttp 3.14 on
    asyncio): a refusal is ``ClientConnectorError`` caused by (and with the context of) the OS error
    asyncio words ``Connect call failed ('127.0.0.1', PORT)``; a connect timeout is the bare
    ``TimeoutError`` of the connector's deadline, which ``ClientSession`` raises as
    ``ConnectionTimeoutError`` from it."""
    import aiohttp

    if kind == "refused":
        os_error = ConnectionRefusedError(errno.ECONNREFUSED, f"Connect call failed {address!r}")
        if key is None:
            return os_error
        exc: BaseException = aiohttp.ClientConnectorError(key, os_error)
        exc.__cause__ = exc.__context__ = os_error
        exc.__suppress_context__ = True
        return exc
    timeout = TimeoutError()
    timeout.__context__ = asyncio.CancelledError()
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
