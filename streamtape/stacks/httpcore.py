"""The httpcore stacks: httpcore2 (under httpx2: anthropic >= 1, openai 3) and httpcore (under httpx:
anthropic 0.x). They share their API and exception names, so one adapter class serves both.

Interception is at the connection pool: while a tape is entered, ``ConnectionPool.handle_request`` and
``AsyncConnectionPool.handle_async_request`` of the core route each request through the tape. Patching
the pool *classes* catches clients created before the tape was entered and proxy pools (which subclass
the pool). A replayed response is a core ``Response`` whose stream plays the engine's ``Playback``; a
``Broken`` outcome becomes the core exception a real socket gives, with its message and chain
(``real_message`` / ``real_error``, measured over real sockets), so httpx2's own mapping (and then the
SDK) turns it into exactly what the app would see.
"""

from __future__ import annotations

import contextlib
import errno
import importlib
import os
import re
import sys
from collections.abc import AsyncIterator, Callable, Iterator
from dataclasses import dataclass
from typing import TYPE_CHECKING, Any, NoReturn

from ..cassette import Request
from ..engine.clock import Pacer
from ..engine.playback import Broken, Garbage, Playback, Silent, harness_error
from ..guard import forwarding
from ..intercept.recorder import Recording, RecordingStream, prepare_request, spare
from ..wire import CUTS, Action, Chunks, Cut, Respond
from . import Patches, harness

if TYPE_CHECKING:
    from . import Router

__all__ = ["CHAINS", "HTTPX", "HTTPX2", "Chain", "HttpcoreStack", "Link", "real_error", "real_message", "wrapped"]


# --- the exceptions a real socket gives ----------------------------------------------------------------
#
# Measured by scripts/measure_chains.py over real sockets on 127.0.0.1, at the pool (the calls replay
# replaces): Linux, CPython 3.11, anyio 4.16 on asyncio, h11 0.16; httpcore2 2.17 and httpcore 1.0.9 give
# the same chains but for one link (``_BODY_LINK``), under anthropic 2.17 and 0.125 alike. (Under trio,
# httpcore raises trio's own errors, with other texts: not built here; an async replay is asyncio's.)


@dataclass(frozen=True, slots=True)
class Link:
    """One exception of a measured chain: its class, its ``args`` (text may hold ``{message}``,
    ``{address}`` and ``{scope}``, filled in at the cut), what it has as ``__cause__`` and
    ``__context__``, and ``__suppress_context__``.

    ``cls`` is a builtin's name (``ConnectionResetError``) or a dotted ``module.name``
    (``anyio.BrokenResourceError``). ``outer``: the exception is raised in the app's own call (not in an
    event-loop callback or a cancelled wait), so when the app makes the request while handling an
    exception of its own, that one is its ``__context__`` (measured with ``--outer``)."""

    cls: str
    args: tuple[Any, ...] = ()
    cause: Link | None = None
    context: Link | None = None
    suppress: bool = False
    outer: bool = False


@dataclass(frozen=True, slots=True)
class Chain:
    """What the pool raises for one cut: the core class, and what it wraps (its only argument): a
    ``Link`` (the error it was mapped from), a text of its own, or nothing (``None``: no arguments).
    ``accepts``: the messages the chain is known for when the text is the wrapped error's own (a FIN
    mid-body: h11's ``peer closed connection ...`` with whatever it counted)."""

    core: str
    wraps: Link | str | None
    accepts: re.Pattern[str] | None = None


def _os_error(cls: str, code: int, text: str | None = None, *, outer: bool = False) -> Link:
    # the text is this platform's (Linux): os.strerror gives what the OS gives
    return Link(cls, (code, os.strerror(code) if text is None else text), outer=outer)


_TIMED_OUT = Link("TimeoutError", ("timed out",), outer=True)  # a socket timeout (sync)


def _deadline(*, outer: bool) -> Link:
    """anyio's ``fail_after`` on asyncio: a bare ``TimeoutError`` raised while its scope's cancellation
    was handled (whose text names the scope by its ``id``)."""
    cancelled = Link("asyncio.CancelledError", ("Cancelled via cancel scope {scope}; reason: deadline exceeded",),
                     outer=outer)  # fmt: skip
    return Link("TimeoutError", context=cancelled)


_ANYIO_RESET = Link(
    "anyio.BrokenResourceError",
    cause=_os_error("ConnectionResetError", errno.ECONNRESET),  # made by the event loop: never the app's context
    context=Link("IndexError", ("pop from an empty deque",), outer=True),  # anyio's empty read buffer
    suppress=True,
)
_NO_RESPONSE = "Server disconnected without sending a response."
_PEER_CLOSED = re.compile(
    r"peer closed connection without sending complete message body "
    r"\((incomplete chunked read|received \d+ bytes, expected \d+)\)"
)

#: (kind, asynchronous) -> the chain, before the response headers; ``_MID_BODY`` where it differs after them.
#: Connects and timeouts are the same either side of the headers.
CHAINS: dict[tuple[str, bool], Chain] = {
    ("refused", False): Chain("ConnectError", _os_error("ConnectionRefusedError", errno.ECONNREFUSED, outer=True)),
    ("refused", True): Chain("ConnectError", Link(
        "OSError", ("All connection attempts failed",), suppress=True, outer=True,
        cause=_os_error("ConnectionRefusedError", errno.ECONNREFUSED, "Connect call failed {address}"))),
    ("connect_timeout", False): Chain("ConnectTimeout", _TIMED_OUT),
    ("connect_timeout", True): Chain("ConnectTimeout", _deadline(outer=True)),
    ("timeout", False): Chain("ReadTimeout", _TIMED_OUT),
    ("timeout", True): Chain("ReadTimeout", _deadline(outer=False)),
    ("write_timeout", False): Chain("WriteTimeout", _TIMED_OUT),
    ("write_timeout", True): Chain("WriteTimeout", _deadline(outer=False)),
    ("pool_timeout", False): Chain("PoolTimeout", None),
    ("pool_timeout", True): Chain("PoolTimeout", _deadline(outer=False)),
    ("reset", False): Chain("ReadError", _os_error("ConnectionResetError", errno.ECONNRESET, outer=True)),
    ("reset", True): Chain("ReadError", _ANYIO_RESET),
    ("fin", False): Chain("RemoteProtocolError", _NO_RESPONSE),
    ("fin", True): Chain("RemoteProtocolError", _NO_RESPONSE),
    # the request body could not be sent: httpcore ignores a write error and reads the answer, so what
    # the pool raises is that read's failure (a FIN sync: the RST was reported to the failed write)
    ("write_error", False): Chain("RemoteProtocolError", _NO_RESPONSE),
    ("write_error", True): Chain("ReadError", _ANYIO_RESET),
}  # fmt: skip
_H11_CLOSED = Chain("RemoteProtocolError", Link("h11.RemoteProtocolError", ("{message}",), outer=True), _PEER_CLOSED)
_MID_BODY: dict[tuple[str, bool], Chain] = {("fin", False): _H11_CLOSED, ("fin", True): _H11_CLOSED}

#: How the core error holds what it wraps, mid-body, per stack: httpcore2's pool stream lets the error
#: through as mapped (``raise ... from exc``: cause and context); httpcore's re-raises it ``from None``
#: (context only). Before the headers both pools re-raise ``from None``.
_BODY_LINK = {"httpcore2": "cause", "httpcore": "context"}


def _chain(kind: str, asynchronous: bool, before_headers: bool) -> Chain | None:
    return (not before_headers and _MID_BODY.get((kind, asynchronous))) or CHAINS.get((kind, asynchronous))


def _class(name: str) -> Any:
    module, _, attribute = name.rpartition(".")
    return getattr(importlib.import_module(module or "builtins"), attribute)


def _build(link: Link, values: dict[str, str], outer: BaseException | None) -> BaseException:
    args = tuple(arg.format(**values) if isinstance(arg, str) else arg for arg in link.args)
    exc: BaseException = _class(link.cls)(*args)
    if link.cause is not None:
        exc.__cause__ = _build(link.cause, values, outer)
    exc.__context__ = _build(link.context, values, outer) if link.context is not None else outer if link.outer else None
    exc.__suppress_context__ = link.suppress
    return exc


def _text(chain: Chain) -> str:
    """The pool error's message: its own text, or the wrapped error's (never one filled in at the cut)."""
    if not isinstance(chain.wraps, Link):
        return chain.wraps or ""
    return str(_class(chain.wraps.cls)(*chain.wraps.args))


def _knows(chain: Chain, message: str, address: tuple[str, int] | None) -> bool:
    """Whether ``message`` is the text this chain gives (and everything the chain names is known)."""
    if chain.accepts is not None:
        return chain.accepts.fullmatch(message) is not None
    return message == _text(chain) and (address is not None or "{address}" not in repr(chain.wraps))


def real_message(
    error: str, *, asynchronous: bool, before_headers: bool, framing: str, received: int, expected: int | None
) -> str:
    """The text the real httpcore/httpcore2 stack gives cut kind ``error`` here (measured over real sockets:
    ``CHAINS``)."""
    kind = CUTS[error].name if error in CUTS else next(k.name for k in CUTS.values() if k.v1 == error)
    if kind == "fin" and not before_headers:
        if framing == "content-length":
            return (
                "peer closed connection without sending complete message body "
                f"(received {received} bytes, expected {expected})"
            )
        return "peer closed connection without sending complete message body (incomplete chunked read)"
    chain = _chain(kind, asynchronous, before_headers)
    return "" if chain is None else _text(chain)


def real_error(
    core: Any,
    kind: str,
    message: str,
    *,
    asynchronous: bool,
    address: tuple[str, int] | None = None,
    before_headers: bool = True,
    outer: BaseException | None = None,
) -> BaseException:
    """The core exception for cut ``kind`` with the whole chain a real socket gives it (``CHAINS``, measured
    by scripts/measure_chains.py), when ``message`` is the stack's own text for it: every ``__cause__`` and
    ``__context__``, class, arguments and ``__suppress_context__``, as the pool raises it. The OS's texts
    are this platform's (Linux: ``os.strerror``); anyio's are anyio 4.16's on asyncio.

    ``outer`` is the exception the app is handling while it makes the request (``sys.exception()`` where
    the replay raises): the levels a real stack raises in the app's own call take it as ``__context__``.
    ``address`` is the request's, which the async refusal names. SDKs read the chain: anthropic >= 2.17
    words ``APIConnectionError`` from the deepest OS error in it. Other messages (a recorded text the table
    does not know) get the core error alone, as does a kind the table does not know."""
    chain = _chain(kind, asynchronous, before_headers)
    if chain is None or not _knows(chain, message, address):
        return getattr(core, CUTS[kind].v1)(message)
    cls = getattr(core, chain.core)
    if not isinstance(chain.wraps, Link):
        exc = cls() if chain.wraps is None else cls(chain.wraps)
        exc.__context__, exc.__suppress_context__ = outer, True  # raised by the stack itself, re-raised from None
        return exc
    values = {"message": message, "address": repr(address)}
    values["scope"] = f"{id(values):x}"  # anyio names the cancel scope by its id: any live object's will do
    inner = _build(chain.wraps, values, outer)
    return wrapped(core, cls(inner), inner, before_headers=before_headers)


def wrapped(core: Any, exc: BaseException, inner: BaseException, *, before_headers: bool) -> BaseException:
    """``exc``, the core error ``inner`` was mapped to, linked to it as the pool leaves it (``_BODY_LINK``,
    measured): mid-body, as ``__cause__`` and ``__context__`` (httpcore2) or as ``__context__`` only
    (httpcore); before the headers, as ``__context__`` only (both pools re-raise ``from None``)."""
    if not before_headers and _BODY_LINK.get(getattr(core, "__name__", ""), "cause") == "cause":
        exc.__cause__ = inner
    exc.__context__, exc.__suppress_context__ = inner, True
    return exc


def _throw(exc: BaseException) -> NoReturn:
    """Raise ``exc`` with the chain it was built with. A ``raise`` while the app handles an exception makes
    that one the ``__context__`` of what it raises; the real stack's error has the error it wrapped there
    (the app's is deeper down, where ``real_error`` put it)."""
    context = exc.__context__
    try:
        raise exc
    finally:
        if context is not None:
            exc.__context__ = context


class HttpcoreStack:
    """httpcore or httpcore2, and the httpx flavour above it."""

    def __init__(self, name: str, core: str) -> None:
        self.name = name
        self.core_name = core
        self.watches = (core,)
        #: the pool methods this adapter replaced, while installed
        self._patches = Patches()

    def __repr__(self) -> str:
        return f"<stack {self.name} on {self.core_name}>"

    @property
    def core(self) -> Any:
        # as it is in sys.modules now: a module imported again (importlib.reload, a harness that purges
        # modules) is a new module with new classes
        return sys.modules[self.core_name]

    @property
    def client(self) -> Any:
        import importlib

        return importlib.import_module(self.name)

    # --- the pool's own methods, unpatched ---------------------------------------------------------

    def _original(self, cls: type, name: str) -> Any:
        return self._patches.original(cls, name)

    @property
    def sync_handle(self) -> Any:
        return self._original(self.core.ConnectionPool, "handle_request")

    @property
    def async_handle(self) -> Any:
        return self._original(self.core.AsyncConnectionPool, "handle_async_request")

    # --- the protocol ------------------------------------------------------------------------------

    def install(self, router: Router) -> Callable[[], None]:
        stack = self

        def handle_request(pool: Any, request: Any) -> Any:
            tape = router.current(lambda: _describe(request))
            if tape is None:
                return stack.sync_handle(pool, request)
            return stack.handle(tape, pool, request)

        async def handle_async_request(pool: Any, request: Any) -> Any:
            tape = router.current(lambda: _describe(request))
            if tape is None:
                return await stack.async_handle(pool, request)
            return await stack.ahandle(tape, pool, request)

        def close(pool: Any) -> None:
            _spare(pool)
            stack._original(stack.core.ConnectionPool, "close")(pool)

        async def aclose(pool: Any) -> None:
            _spare(pool)
            await stack._original(stack.core.AsyncConnectionPool, "aclose")(pool)

        core = self.core
        return self._patches.apply([
            (core.ConnectionPool, "handle_request", handle_request),
            (core.AsyncConnectionPool, "handle_async_request", handle_async_request),
            (core.ConnectionPool, "close", close),
            (core.AsyncConnectionPool, "aclose", aclose),
        ])

    def exception(self, broken: Broken, *, asynchronous: bool, address: tuple[str, int] | None) -> BaseException:
        message = broken.message
        if message is None:
            message = real_message(broken.kind, asynchronous=asynchronous, before_headers=broken.before_headers,
                                   framing=broken.framing, received=broken.received, expected=broken.expected)  # fmt: skip
        return real_error(self.core, broken.kind, message, asynchronous=asynchronous, address=address,
                          before_headers=broken.before_headers, outer=sys.exception())  # fmt: skip

    def garbage(self, outcome: Garbage) -> BaseException:
        """What the stack raises when the server sends bytes that are not HTTP: httpcore parses with h11,
        so h11 itself is run on the same bytes, in the same state (a status line expected, or a
        chunk-size line), and its error is mapped as httpcore maps it (``raise RemoteProtocolError(exc)
        from exc``): the message and the chain are the real ones, not a copy of them."""
        import h11

        client = h11.Connection(our_role=h11.CLIENT)
        client.send(h11.Request(method="GET", target="/", headers=[("host", "streamtape")]))
        client.send(h11.EndOfMessage())
        head = b"" if outcome.before_headers else b"HTTP/1.1 200 OK\r\ntransfer-encoding: chunked\r\n\r\n"
        client.receive_data(head + outcome.data)
        client.receive_data(b"")  # then the connection ended
        try:
            while client.next_event() not in (h11.NEED_DATA, h11.PAUSED):
                pass
        except h11.RemoteProtocolError as exc:
            return wrapped(self.core, self.core.RemoteProtocolError(exc), exc, before_headers=outcome.before_headers)
        # h11 took the bytes as HTTP after all (they were valid): the connection then ended early
        return self.exception(Broken("fin", None, outcome.before_headers, outcome.framing), asynchronous=False,
                              address=None)  # fmt: skip

    def classify(self, exc: BaseException) -> Cut | None:
        """The cut a real core exception records as (``None``: not a network or protocol failure)."""
        core = sys.modules.get(self.core_name)
        if core is None:
            return None
        errors = (core.NetworkError, core.TimeoutException, core.ProtocolError, core.ProxyError, core.UnsupportedProtocol)
        if not isinstance(exc, errors):
            return None
        for cls in type(exc).__mro__:  # the most specific class the table names
            if any(kind.v1 == cls.__name__ for kind in CUTS.values()):
                return Cut(cls.__name__, str(exc))
        return Cut("reset", str(exc))  # a NetworkError the table does not name: the connection failed

    def transport(self, tape: Any, *, asynchronous: bool, **options: Any) -> Any:
        """The stack's own ``HTTPTransport`` with its pool wrapped, so httpx2's exception mapping runs
        exactly as in production; recording goes through the real pool."""
        client = self.client
        cls = client.AsyncHTTPTransport if asynchronous else client.HTTPTransport
        transport = cls(**options)
        transport._pool = _TapedPool(tape, self, transport._pool)  # noqa: SLF001 - the one seam httpx offers
        return transport

    # --- one request -------------------------------------------------------------------------------

    def handle(self, tape: Any, pool: Any, core_request: Any) -> Any:
        forward = self.sync_handle
        if tape.allow_hosts and tape.allow_hosts.allows(core_request.url.host.decode("ascii"), resolve=False):
            with forwarding():  # the test's own service: neither recorded nor blocked
                return forward(pool, core_request)
        body = b"".join(core_request.stream)
        with harness(_describe(core_request)):
            request, route, redactor = self._route(tape, core_request, body)
            if isinstance(route, list):
                playback, pacer = self._playback(tape, route, core_request)
                at, head = playback.head()
        if request is None:  # before_record_request left it out: neither recorded nor replayed
            with forwarding():
                return forward(pool, core_request)
        if isinstance(route, list):
            pacer.wait(at)
            if not isinstance(head, Respond):
                _throw(self._raise(head, False, core_request))
            return self._response(head, _ReplayStream(self, playback, pacer, core_request))
        _learn_proxy(redactor, pool)
        recording = Recording(request, redactor, tape.hooks)
        tape.begin_recording(recording, stack=self.name)
        try:
            with forwarding():
                response = forward(pool, core_request)
        except BaseException as exc:
            recording.failed(self.classify, exc)
            raise
        return _tee(response, recording, self.classify, sync=True)

    async def ahandle(self, tape: Any, pool: Any, core_request: Any) -> Any:
        forward = self.async_handle
        if tape.allow_hosts and tape.allow_hosts.allows(core_request.url.host.decode("ascii"), resolve=False):
            with forwarding():
                return await forward(pool, core_request)
        body = b"".join([part async for part in core_request.stream])
        with harness(_describe(core_request)):
            request, route, redactor = self._route(tape, core_request, body)
            if isinstance(route, list):
                playback, pacer = self._playback(tape, route, core_request)
                at, head = playback.head()
        if request is None:
            with forwarding():
                return await forward(pool, core_request)
        if isinstance(route, list):
            await pacer.await_(at)
            if not isinstance(head, Respond):
                _throw(self._raise(head, True, core_request))
            return self._response(head, _ReplayStream(self, playback, pacer, core_request))
        _learn_proxy(redactor, pool)
        recording = Recording(request, redactor, tape.hooks)
        tape.begin_recording(recording, stack=self.name)
        try:
            with forwarding():
                response = await forward(pool, core_request)
        except BaseException as exc:
            recording.failed(self.classify, exc)
            raise
        return _tee(response, recording, self.classify, sync=False)

    def _route(self, tape: Any, core_request: Any, body: bytes) -> tuple[Request | None, Any, Any]:
        """The request as the tape sees it, and the tape's answer: wire actions, or record it."""
        core_request.stream = _Body(body)
        request, redactor = prepare_request(tape, *_parts(core_request), body)
        if request is None:
            return None, None, redactor
        return request, tape.route(request, stack=self.name), redactor

    def _playback(self, tape: Any, actions: list[Action], core_request: Any) -> tuple[Playback, Pacer]:
        clock = tape.clock
        timeout = core_request.extensions.get("timeout", {}).get("read")
        playback = Playback(actions, read_timeout=None if timeout is None else float(timeout), whole_runs=not clock.paced)
        return playback, Pacer(clock)

    def _raise(self, outcome: Broken | Silent | Garbage, asynchronous: bool, core_request: Any) -> BaseException:
        """What the app meets for a broken or silent outcome: a harness error, or the stack's exception."""
        if isinstance(outcome, Garbage):
            return self.garbage(outcome)
        error = harness_error(outcome)
        if error is not None:
            return error
        assert isinstance(outcome, Broken)
        return self.exception(outcome, asynchronous=asynchronous, address=_address(core_request))

    def _response(self, head: Respond, stream: _ReplayStream) -> Any:
        return self.core.Response(
            status=head.status,
            headers=[(name.encode("latin-1"), value.encode("latin-1")) for name, value in head.headers],
            content=stream,
            extensions={"http_version": b"HTTP/1.1", "reason_phrase": head.reason.encode("latin-1")},
        )


HTTPX2 = HttpcoreStack("httpx2", "httpcore2")
HTTPX = HttpcoreStack("httpx", "httpcore")


class _ReplayStream:
    """A response body that hands on what ``Playback`` decided, waiting as the pacer says."""

    __slots__ = ("stack", "playback", "pacer", "core_request")

    def __init__(self, stack: HttpcoreStack, playback: Playback, pacer: Pacer, core_request: Any) -> None:
        self.stack, self.playback, self.pacer, self.core_request = stack, playback, pacer, core_request

    def __iter__(self) -> Iterator[bytes]:
        for at, item in _guarded(self.playback.body(), self.core_request):
            if isinstance(item, Chunks):
                yield from _instant(item)  # the hot path: no clock, no object per chunk
                continue
            self.pacer.wait(at)
            if isinstance(item, bytes):
                yield item
            elif item is not None:
                _throw(self.stack._raise(item, False, self.core_request))  # noqa: SLF001

    async def __aiter__(self) -> AsyncIterator[bytes]:
        for at, item in _guarded(self.playback.body(), self.core_request):
            if isinstance(item, Chunks):
                for piece in _instant(item):
                    yield piece
                continue
            await self.pacer.await_(at)
            if isinstance(item, bytes):
                yield item
            elif item is not None:
                _throw(self.stack._raise(item, True, self.core_request))  # noqa: SLF001

    def close(self) -> None:
        pass

    async def aclose(self) -> None:
        pass


def _guarded(outcomes: Iterator[tuple[float, Any]], core_request: Any) -> Iterator[tuple[float, Any]]:
    """The playback's outcomes; an exception raised while deciding one is a ``HarnessError``."""
    while True:
        with harness(_describe(core_request)):
            try:
                outcome = next(outcomes)
            except StopIteration:
                return
        yield outcome



def _learn_proxy(redactor: Any, pool: Any) -> None:
    """A proxy's credentials (httpcore's ``HTTPProxy``/``SOCKSProxy`` add ``Proxy-Authorization`` below the
    request streamtape sees): the redactor learns them, so a body repeating them is cleaned too."""
    headers = getattr(pool, "_proxy_headers", None)
    if headers:
        redactor.learn_headers([(bytes(k).decode("latin-1"), bytes(v).decode("latin-1")) for k, v in headers])
    auth = getattr(pool, "_proxy_auth", None)  # SOCKSProxy: (username, password) as bytes
    if auth:
        redactor.learn(*(bytes(part).decode("latin-1") for part in auth if part))

def _describe(core_request: Any) -> str:
    method, url, _ = _parts(core_request)
    return f"{method} {url}"


def _instant(run: Chunks) -> Iterator[bytes]:
    data, pos = run.data, 0
    for _, size in run.timing:
        yield data[pos : pos + size]
        pos += size


class _Body:
    """A request body that was read once for matching, handed on for sending (sync or async)."""

    def __init__(self, data: bytes) -> None:
        self.data = data

    def __iter__(self) -> Iterator[bytes]:
        yield self.data

    async def __aiter__(self) -> AsyncIterator[bytes]:
        yield self.data


def _parts(core_request: Any) -> tuple[str, str, tuple[tuple[str, str], ...]]:
    """The request's method, URL and headers as text."""
    url = core_request.url
    scheme, host = url.scheme.decode("ascii"), url.host.decode("ascii")
    default = {"http": 80, "https": 443}.get(scheme)
    port = f":{url.port}" if url.port is not None and url.port != default else ""
    headers = tuple((k.decode("latin-1"), v.decode("latin-1")) for k, v in core_request.headers)
    return core_request.method.decode("ascii"), f"{scheme}://{host}{port}{url.target.decode('latin-1')}", headers


def _address(core_request: Any) -> tuple[str, int]:
    url = core_request.url
    port = url.port or {b"http": 80, b"https": 443}.get(url.scheme, 0)
    return url.host.decode("ascii"), port


def _is_stream(headers: list[tuple[bytes, bytes]]) -> bool:
    return any(k.lower() == b"content-type" and b"event-stream" in v.lower() for k, v in headers)


def _tee(response: Any, recording: Recording, classify: Callable[[BaseException], Cut | None], *, sync: bool) -> Any:
    recording.respond(response.status, response.extensions.get("reason_phrase", b""), response.headers)
    stream = RecordingStream(
        response.stream, recording, classify, drain_on_close=not _is_stream(response.headers), sync=sync
    )
    # the pool's stream knows its connection: a pool closed during the background read leaves it open
    stream.connection = getattr(getattr(response.stream, "_pool_request", None), "connection", None)
    network = response.extensions.get("network_stream")  # httpcore's extension: the socket it is read from
    if network is not None:
        stream.socket = network.get_extra_info("socket") if sync else None  # (an async read is cancelled)
        stream.multiplexed = response.extensions.get("http_version") == b"HTTP/2"
    response.stream = stream
    return response


def _spare(pool: Any) -> None:
    """Before a pool closes: the connections a background read still reads from stay open (``spare``)."""
    connections = getattr(pool, "_connections", None)
    if isinstance(connections, list):
        with harness("closing a connection pool"), getattr(pool, "_optional_thread_lock", contextlib.nullcontext()):
            spare(connections)


class _TapedPool:
    """Stands in for a transport's connection pool; sends through the tape."""

    def __init__(self, tape: Any, stack: HttpcoreStack, pool: Any) -> None:
        self.tape, self.stack, self.pool = tape, stack, pool

    def handle_request(self, request: Any) -> Any:
        return self.stack.handle(self.tape, self.pool, request)

    async def handle_async_request(self, request: Any) -> Any:
        return await self.stack.ahandle(self.tape, self.pool, request)

    def __getattr__(self, name: str) -> Any:
        return getattr(self.pool, name)  # close(), __enter__, connections, ...

    def __enter__(self) -> _TapedPool:
        self.pool.__enter__()
        return self

    def __exit__(self, *exc_info: Any) -> None:
        self.pool.__exit__(*exc_info)

    async def __aenter__(self) -> _TapedPool:
        await self.pool.__aenter__()
        return self

    async def __aexit__(self, *exc_info: Any) -> None:
        await self.pool.__aexit__(*exc_info)
