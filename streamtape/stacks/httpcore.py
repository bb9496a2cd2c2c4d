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

import errno
import os
import sys
from collections.abc import AsyncIterator, Callable, Iterator
from typing import TYPE_CHECKING, Any

from ..cassette import Request
from ..engine.clock import Pacer
from ..engine.playback import Broken, Playback, Silent, harness_error
from ..guard import forwarding
from ..intercept.recorder import Recording, RecordingStream, prepare_request
from ..wire import CUTS, Action, Chunks, Cut, Respond
from . import harness

if TYPE_CHECKING:
    from . import Router

__all__ = ["HTTPX", "HTTPX2", "HttpcoreStack", "real_error", "real_message"]


def real_message(
    error: str, *, asynchronous: bool, before_headers: bool, framing: str, received: int, expected: int | None
) -> str:
    """The text the real httpcore/httpcore2 stack gives cut kind ``error`` here (measured over real sockets)."""
    kind = CUTS[error].name if error in CUTS else next(k.name for k in CUTS.values() if k.v1 == error)
    if kind == "fin":
        if before_headers:
            return "Server disconnected without sending a response."
        if framing == "content-length":
            return (
                "peer closed connection without sending complete message body "
                f"(received {received} bytes, expected {expected})"
            )
        return "peer closed connection without sending complete message body (incomplete chunked read)"
    if kind == "refused":
        return "All connection attempts failed" if asynchronous else "[Errno 111] Connection refused"
    if kind in ("reset", "write_error"):
        return "" if asynchronous else "[Errno 104] Connection reset by peer"
    if kind in ("timeout", "connect_timeout", "write_timeout", "pool_timeout"):
        return "" if asynchronous else "timed out"
    return ""


def real_error(
    core: Any, kind: str, message: str, *, asynchronous: bool, address: tuple[str, int] | None = None
) -> BaseException:
    """The core exception for cut ``kind`` with the chain a real socket gives it, when ``message`` is the
    stack's own text for it (measured over real sockets, httpcore2 2.17 / anyio 4): the OS error as the
    core error's argument, and as its ``__cause__`` where the stack sets one (sync reads; async reads
    through anyio's ``BrokenResourceError``), or its ``__context__`` (connects). SDKs read that chain:
    anthropic >= 2.17 words ``APIConnectionError`` from the deepest OS error in it. Other messages (a
    recorded text the table does not know) get the core error alone."""
    cls = getattr(core, CUTS[kind].v1)
    inner: BaseException | None = None
    as_cause = True
    if kind in ("reset", "write_error"):
        reset = ConnectionResetError(errno.ECONNRESET, os.strerror(errno.ECONNRESET))
        if asynchronous and message == "":
            import anyio

            inner = anyio.BrokenResourceError()
            inner.__cause__ = reset
        elif not asynchronous and message == str(reset):
            inner = reset
    elif kind == "refused":
        as_cause = False
        if not asynchronous and message == f"[Errno {errno.ECONNREFUSED}] {os.strerror(errno.ECONNREFUSED)}":
            inner = ConnectionRefusedError(errno.ECONNREFUSED, os.strerror(errno.ECONNREFUSED))
        elif asynchronous and message == "All connection attempts failed" and address is not None:
            inner = OSError(message)
            inner.__cause__ = ConnectionRefusedError(errno.ECONNREFUSED, f"Connect call failed {address!r}")
    elif kind in ("timeout", "connect_timeout", "write_timeout") and message == ("" if asynchronous else "timed out"):
        inner = TimeoutError() if asynchronous else TimeoutError("timed out")
    if inner is None:
        return cls(message)
    exc = cls(inner)
    if as_cause:
        exc.__cause__ = inner
    else:
        exc.__context__, exc.__suppress_context__ = inner, True
    return exc


class HttpcoreStack:
    """httpcore or httpcore2, and the httpx flavour above it."""

    def __init__(self, name: str, core: str) -> None:
        self.name = name
        self.core_name = core
        self.watches = (core,)
        #: (class, method) -> the method before this adapter patched it, while installed
        self._saved: dict[tuple[type, str], Any] = {}

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
        return self._saved.get((cls, name)) or getattr(cls, name)

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
            tape = router.current()
            if tape is None:
                return stack.sync_handle(pool, request)
            return stack.handle(tape, pool, request)

        async def handle_async_request(pool: Any, request: Any) -> Any:
            tape = router.current()
            if tape is None:
                return await stack.async_handle(pool, request)
            return await stack.ahandle(tape, pool, request)

        core = self.core
        patched = []
        for cls, method, replacement in (
            (core.ConnectionPool, "handle_request", handle_request),
            (core.AsyncConnectionPool, "handle_async_request", handle_async_request),
        ):
            self._saved.setdefault((cls, method), getattr(cls, method))
            setattr(cls, method, replacement)
            patched.append((cls, method))

        def undo() -> None:
            for cls, method in patched:
                setattr(cls, method, self._saved.pop((cls, method)))

        return undo

    def exception(self, broken: Broken, *, asynchronous: bool, address: tuple[str, int] | None) -> BaseException:
        message = broken.message
        if message is None:
            message = real_message(broken.kind, asynchronous=asynchronous, before_headers=broken.before_headers,
                                   framing=broken.framing, received=broken.received, expected=broken.expected)  # fmt: skip
        return real_error(self.core, broken.kind, message, asynchronous=asynchronous, address=address)

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
        if tape.allow_hosts and tape.allow_hosts.allows(core_request.url.host.decode("ascii")):
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
                raise self._raise(head, False, core_request)
            return self._response(head, _ReplayStream(self, playback, pacer, core_request))
        recording = Recording(request, redactor, tape.hooks)
        tape.begin_recording(recording)
        try:
            with forwarding():
                response = forward(pool, core_request)
        except BaseException as exc:
            recording.failed(self.classify, exc)
            raise
        return _tee(response, recording, self.classify, sync=True)

    async def ahandle(self, tape: Any, pool: Any, core_request: Any) -> Any:
        forward = self.async_handle
        if tape.allow_hosts and tape.allow_hosts.allows(core_request.url.host.decode("ascii")):
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
                raise self._raise(head, True, core_request)
            return self._response(head, _ReplayStream(self, playback, pacer, core_request))
        recording = Recording(request, redactor, tape.hooks)
        tape.begin_recording(recording)
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
        return request, tape.route(request), redactor

    def _playback(self, tape: Any, actions: list[Action], core_request: Any) -> tuple[Playback, Pacer]:
        clock = tape.clock
        timeout = core_request.extensions.get("timeout", {}).get("read")
        playback = Playback(actions, read_timeout=None if timeout is None else float(timeout), instant=not clock.paced)
        return playback, Pacer(clock)

    def _raise(self, outcome: Broken | Silent, asynchronous: bool, core_request: Any) -> BaseException:
        """What the app meets for a broken or silent outcome: a harness error, or the stack's exception."""
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
                raise self.stack._raise(item, False, self.core_request)  # noqa: SLF001

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
                raise self.stack._raise(item, True, self.core_request)  # noqa: SLF001

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
    response.stream = RecordingStream(
        response.stream, recording, classify, drain_on_close=not _is_stream(response.headers), sync=sync
    )
    return response


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
