"""The urllib3 stack (2.x): ``requests``, botocore/boto3 and hand-written clients ride on it. Sync only.

**Where it intercepts, and why there.** urllib3's ``HTTPConnectionPool.urlopen`` is a retry loop around
one attempt, ``_make_request(conn, method, url, ...)``: ``urlopen`` takes a connection object from the
pool (``_get_conn`` makes one, but does not connect it), calls ``_make_request`` (which connects through
``conn.request``, sends, and reads the head with ``conn.getresponse()``), and on an error maps it
(``ProtocolError("Connection aborted.", ...)``), asks ``Retry.increment`` (which re-raises, or raises
``MaxRetryError`` caused by it) and calls itself again. Patching ``_make_request`` on the pool class (so
``HTTPSConnectionPool``, pools made before the tape, and every ``requests.Session`` / botocore pool) means
each *attempt* goes through the tape, while ``urlopen``'s retries, redirects, status retries and
``MaxRetryError`` wrapping run unchanged, as in production. ``_make_request`` itself runs too: the
adapter only gives the connection a socket.

**Replay: a socket that plays the tape.** A replayed attempt gets a stand-in socket (``_TapeSocket``)
on its connection: what urllib3 writes to it is dropped; what http.client reads from it is the recorded
response put back on the wire (the status line and headers, the body in its recorded framing: one HTTP
chunk per recorded chunk when chunked), paced by the tape's clock, and where the recording (or a fault)
breaks, the socket does what a real one does: returns EOF (a FIN), raises
``ConnectionResetError(104, ...)`` (an RST) or ``TimeoutError("timed out")`` (the read timeout, at the
moment it would fire: at once in virtual time). A refused or timed-out connect is raised where urllib3
connects (``conn.connect``), as urllib3's ``_new_conn`` wraps it (``NewConnectionError`` /
``ConnectTimeoutError`` from the OS error). Everything above the socket is the real code: http.client
parses, urllib3's ``HTTPResponse`` (a real one, ``preload_content=False`` streaming included) reads chunks
with ``read_chunked`` and maps errors in its ``_error_catcher``, ``urlopen`` retries, ``requests`` wraps
(``ChunkedEncodingError``, ``ConnectionError``, ``ReadTimeout``). So classes, messages and the whole
``__cause__``/``__context__`` chain are the ones a real socket gives, by construction; the tests compare
them with real misbehaving servers.

**Recording** runs the real ``_make_request`` inside ``guard.forwarding()``, with the connection's socket
wrapped for ``getresponse`` only: the file http.client reads from tees every byte off the socket, at once,
into an h11 parser that notes the head, each body chunk (an HTTP chunk, or what one read returned) with its
arrival time, and the end: clean, or a FIN, RST or timeout as a neutral ``Cut`` (message ``None``: each
stack words it itself on replay). A failure before any byte (refused, connect timeout) is classified from
urllib3's exception (``classify``). A response the app closes before its end (``response.close()``,
leaving ``with requests.post(..., stream=True)`` early) is read on in a background thread, as the httpx2
recorder does (``DRAIN_SECONDS`` / ``DRAIN_BYTES`` in ``streamtape.intercept.recorder``): http.client
closes its reader and urllib3 the socket, but the descriptor stays open while the tee's reader holds it.

**HTTPS through a proxy**: ``urlopen`` opens the CONNECT tunnel (``_prepare_proxy``) before the attempt
reaches ``_make_request``; the adapter leaves it to the attempt, so a recorded one opens it (failing as
``urlopen`` would) and a replayed one never reaches the proxy.

**Explicit wiring** (``tape.transport(stack="urllib3")``, no tape entered, nothing patched): a
``PoolManager`` whose pools get their ``_make_request`` on the pool object, so only they go through the
tape; it is a ``requests`` transport adapter too (``session.mount(...)``).

Not covered: urllib3 1.x (``guard`` still blocks it); a stream the app neither read to its end nor closed
is saved as ``client_closed`` (never as a clean end), not read on.
"""

from __future__ import annotations

import contextlib
import errno
import io
import os
import queue
import socket
import sys
import threading
import time
from collections.abc import Callable, Iterator
from typing import TYPE_CHECKING, Any

from ..engine.clock import Pacer
from ..engine.playback import Broken, Garbage, Playback, Silent, harness_error
from ..errors import ConfigError
from ..guard import forwarding
from ..intercept import recorder
from ..intercept.recorder import Recording, prepare_request
from ..wire import Chunks, Cut, End, Respond
from . import Patches, harness

if TYPE_CHECKING:
    from . import Router

__all__ = ["URLLIB3", "Urllib3Stack"]

def _reset() -> ConnectionResetError:
    return ConnectionResetError(errno.ECONNRESET, os.strerror(errno.ECONNRESET))


def _timed_out() -> TimeoutError:
    return TimeoutError("timed out")  # what a socket timeout says (socket.timeout is TimeoutError)


class Urllib3Stack:
    """The urllib3 adapter (see the module docstring)."""

    name = "urllib3"
    watches = ("urllib3",)

    def __init__(self) -> None:
        self._patches = Patches()

    @property
    def pool_class(self) -> Any:
        return sys.modules["urllib3.connectionpool"].HTTPConnectionPool

    @property
    def make_request(self) -> Any:
        cls = self.pool_class
        return self._patches.original(cls, "_make_request")

    # --- the protocol ------------------------------------------------------------------------------

    def install(self, router: Router) -> Callable[[], None]:
        import urllib3.connectionpool

        if int(urllib3.__version__.split(".")[0]) < 2:
            return lambda: None  # urllib3 1.x: not adapted; streamtape.guard blocks it
        stack = self
        cls, https = urllib3.connectionpool.HTTPConnectionPool, urllib3.connectionpool.HTTPSConnectionPool
        original, original_tunnel = cls._make_request, https._prepare_proxy

        def _make_request(pool: Any, conn: Any, method: str, url: str, body: Any = None, headers: Any = None,
                          **kwargs: Any) -> Any:  # fmt: skip
            tape = router.current(lambda: f"{method} {_full_url(pool, url)}")
            if tape is None:
                return original(pool, conn, method, url, body, headers, **kwargs)
            return stack.handle(tape, pool, conn, method, url, body, headers, kwargs)

        def _prepare_proxy(pool: Any, conn: Any) -> None:
            if router.current() is None:
                return original_tunnel(pool, conn)
            _defer_tunnel(pool, conn, original_tunnel)

        return self._patches.apply([(cls, "_make_request", _make_request), (https, "_prepare_proxy", _prepare_proxy)])

    def original_of(self, pool: Any, name: str) -> Any:
        """``pool``'s method ``name`` as its class defines it, unpatched."""
        for klass in type(pool).__mro__:
            if name in vars(klass):
                return self._patches.original(klass, name)
        raise AttributeError(name)

    def exception(self, broken: Broken, *, asynchronous: bool, address: tuple[str, int] | None) -> BaseException:
        """What the *socket* raises for a broken outcome read from it (urllib3 and http.client above it
        turn it into what the app sees, as they do for a real socket). A FIN is no exception on a socket:
        an EOF, which the replayed socket returns instead of calling this."""
        if broken.kind == "timeout":
            return _timed_out()
        return _reset()

    def classify(self, exc: BaseException) -> Cut | None:
        """The cut a real exception of an attempt records as (``None``: not a network failure). Mid-body
        cuts are read off the socket itself while recording; this sees what ``_make_request`` raised."""
        exceptions = sys.modules.get("urllib3.exceptions")
        import http.client

        if exceptions is not None:
            if isinstance(exc, exceptions.ConnectTimeoutError):
                return Cut("connect_timeout", None)
            if isinstance(exc, exceptions.NewConnectionError):
                return Cut("refused", None)
            if isinstance(exc, exceptions.ReadTimeoutError):
                return Cut("timeout", None)
            if isinstance(exc, exceptions.ProxyError):
                return Cut("proxy", None)
            if isinstance(exc, exceptions.EmptyPoolError):
                return Cut("pool_timeout", None)
            if isinstance(exc, exceptions.ProtocolError):
                inner = exc.args[1] if len(exc.args) > 1 and isinstance(exc.args[1], BaseException) else None
                return self.classify(inner) if inner is not None else Cut("fin", None)
        if isinstance(exc, http.client.RemoteDisconnected | http.client.IncompleteRead):
            return Cut("fin", None)
        if isinstance(exc, TimeoutError):
            return Cut("timeout", None)
        if isinstance(exc, BrokenPipeError):
            return Cut("write_error", None)
        if isinstance(exc, OSError | http.client.HTTPException):
            return Cut("reset", None)
        return None

    def transport(self, tape: Any, *, asynchronous: bool, **options: Any) -> Any:
        """``tape.transport(stack="urllib3")``: a ``urllib3.PoolManager`` whose pools answer from ``tape``,
        with nothing patched (every other client in the process is untouched), that is also a ``requests``
        transport adapter, so one object wires either::

            http = tape.transport(stack="urllib3")  # urllib3
            response = http.request("POST", url, json=body, preload_content=False)

            session = requests.Session()  # requests
            session.mount("https://", tape.transport(stack="urllib3"))

        Through requests, the defaults of a plain ``HTTPAdapter`` apply (no retries; a proxy's pools are
        answered by the tape too); through urllib3, give ``retries=``, ``timeout=``... per request, as to
        any PoolManager. ``load()`` the tape first and ``save()`` it after recording (entering it with
        ``with`` does both, and then intercepts every pool anyway). urllib3 is sync only:
        ``async_transport`` refuses."""
        if asynchronous:
            raise ConfigError(
                "stack 'urllib3' is synchronous and has no async transport: use tape.transport(stack='urllib3') "
                "for a sync client, or stack='httpx2' or 'aiohttp' for an async one"
            )
        return _transport_class()(tape, **options)

    # --- one attempt -------------------------------------------------------------------------------

    def handle(self, tape: Any, pool: Any, conn: Any, method: str, url: str, body: Any, headers: Any,
               kwargs: dict[str, Any]) -> Any:  # fmt: skip
        make_request, tunnel = self.make_request, conn.__dict__.pop("_streamtape_tunnel", None)

        def original(*args: Any, **kwargs: Any) -> Any:  # the real attempt: through the proxy's tunnel first
            if tunnel is not None:
                _open_tunnel(pool, conn, tunnel)
            return make_request(*args, **kwargs)

        host = str(pool.host or "")
        if tape.allow_hosts and tape.allow_hosts.allows(host, resolve=False):
            with forwarding():  # the test's own service: neither recorded nor blocked
                return original(pool, conn, method, url, body, headers, **kwargs)
        full_url = _full_url(pool, url)
        what = f"{method} {full_url}"
        with harness(what):
            data, body = _body_bytes(body)
            request, redactor = prepare_request(tape, method, full_url, _header_items(pool, headers), data)
            route = None if request is None else tape.route(request, stack=self.name)
        if request is None:  # before_record_request left it out: neither recorded nor replayed
            with forwarding():
                return original(pool, conn, method, url, body, headers, **kwargs)
        if isinstance(route, list):
            with harness(what):
                timeout = pool._get_timeout(kwargs.get("timeout", pool.timeout)).read_timeout  # noqa: SLF001
                read_timeout = float(timeout) if isinstance(timeout, int | float) else socket.getdefaulttimeout()
                playback = Playback(route, read_timeout=read_timeout, whole_runs=not tape.clock.paced)
                pacer = Pacer(tape.clock)
                at, head = playback.head()
            return self._replay(pool, conn, method, url, body, headers, kwargs, playback, pacer, at, head, what)
        _learn_proxy(redactor, pool)
        recording = Recording(request, redactor, tape.hooks)
        tape.begin_recording(recording, stack=self.name)
        tee = _Tee(recording, method)
        real_getresponse = conn.getresponse

        def getresponse() -> Any:
            sock = conn.sock
            conn.sock = _TeeSocket(sock, tee)
            try:
                return real_getresponse()
            finally:
                if isinstance(conn.sock, _TeeSocket):
                    conn.sock = sock

        conn.getresponse = getresponse
        try:
            with forwarding():
                return original(pool, conn, method, url, body, headers, **kwargs)
        except BaseException as exc:
            if recording.status == 0 and recording.error is None:
                cut = self.classify(exc)
                recording.error = None if cut is None else Cut(cut.kind, None, recording.now())
            raise
        finally:
            conn.__dict__.pop("getresponse", None)

    def _replay(self, pool: Any, conn: Any, method: str, url: str, body: Any, headers: Any, kwargs: dict[str, Any],
                playback: Playback, pacer: Pacer, at: float, head: Any, what: str) -> Any:  # fmt: skip
        original = self.make_request
        if isinstance(head, Silent) or (isinstance(head, Broken) and harness_error(head) is not None):
            error = harness_error(head)
            assert error is not None
            pacer.wait(at)
            raise error
        conn.close()  # whatever it held (a pooled socket, an earlier replay's) is not this attempt's
        if isinstance(head, Broken) and head.kind in ("refused", "connect_timeout"):
            pacer.wait(at)
            conn.connect = _failed_connect(conn, head.kind)
            try:
                return original(pool, conn, method, url, body, headers, **kwargs)
            finally:
                conn.__dict__.pop("connect", None)
        if isinstance(head, Broken) and head.kind == "pool_timeout":
            # what ``_get_conn`` raises when a blocking pool stays empty; the connection this attempt took
            # goes back first (``urlopen`` releases none after an EmptyPoolError: it assumes none was taken)
            pacer.wait(at)
            pool._put_conn(conn)  # noqa: SLF001
            exceptions = sys.modules["urllib3.exceptions"]
            try:
                raise queue.Empty  # the queue's own timeout, the suppressed context of a real one
            except queue.Empty:
                raise exceptions.EmptyPoolError(
                    pool, "Pool is empty and a new connection can't be opened due to blocking mode."
                ) from None
        conn.sock = _TapeSocket(self, playback, pacer, at, head, what)
        if hasattr(conn, "is_verified"):
            conn.is_verified = True  # HTTPS: no InsecureRequestWarning for a connection that never was
        return original(pool, conn, method, url, body, headers, **kwargs)


URLLIB3 = Urllib3Stack()


# --- explicit wiring: a PoolManager (and requests adapter) bound to one tape -------------------------------------

_TRANSPORT: list[type] = []


def _bind(manager: Any, tape: Any) -> Any:
    """Every pool ``manager`` makes from now on sends its attempts to ``tape`` (the pool's own
    ``_make_request``, set on the pool object: no class is patched)."""
    new_pool = manager._new_pool  # noqa: SLF001 - where a PoolManager makes its pools

    def _new_pool(scheme: str, host: str, port: int, request_context: Any = None) -> Any:
        pool = new_pool(scheme, host, port, request_context=request_context)

        def _make_request(conn: Any, method: str, url: str, body: Any = None, headers: Any = None,
                          **kwargs: Any) -> Any:  # fmt: skip
            return URLLIB3.handle(tape, pool, conn, method, url, body, headers, kwargs)

        pool._make_request = _make_request  # noqa: SLF001
        if isinstance(pool, sys.modules["urllib3.connectionpool"].HTTPSConnectionPool):  # its tunnel: the attempt's
            tunnel = URLLIB3.original_of(pool, "_prepare_proxy")
            pool._prepare_proxy = lambda conn: _defer_tunnel(pool, conn, tunnel)  # noqa: SLF001
        return pool

    manager._new_pool = _new_pool  # noqa: SLF001
    return manager


def _transport_class() -> type:
    """``TapePoolManager``, made on first use (urllib3 is imported only by an app that uses it)."""
    if _TRANSPORT:
        return _TRANSPORT[0]
    import urllib3

    class TapePoolManager(urllib3.PoolManager):
        """A ``urllib3.PoolManager`` answered by one tape, and a ``requests`` transport adapter
        (``send``, ``close``): see ``Urllib3Stack.transport``."""

        def __init__(self, tape: Any, **options: Any) -> None:
            super().__init__(**options)
            self.tape = tape
            self._adapter: Any = None
            _bind(self, tape)

        def send(self, request: Any, **kwargs: Any) -> Any:
            """``requests``' ``BaseAdapter.send``: a plain ``HTTPAdapter`` sends it through these pools."""
            return self._requests_adapter().send(request, **kwargs)

        def close(self) -> None:
            """``requests``' ``BaseAdapter.close`` (``Session.close`` calls it): every pool closed."""
            if self._adapter is not None:
                self._adapter.close()
            self.clear()

        def _requests_adapter(self) -> Any:
            if self._adapter is None:
                import requests.adapters

                manager = self

                class _Adapter(requests.adapters.HTTPAdapter):
                    def init_poolmanager(self, connections: int, maxsize: int, block: bool = False,
                                         **pool_kwargs: Any) -> None:  # fmt: skip
                        self._pool_connections, self._pool_maxsize, self._pool_block = connections, maxsize, block
                        self.poolmanager = manager

                    def proxy_manager_for(self, proxy: str, **proxy_kwargs: Any) -> Any:
                        fresh = proxy not in self.proxy_manager
                        proxy_manager = super().proxy_manager_for(proxy, **proxy_kwargs)
                        return _bind(proxy_manager, manager.tape) if fresh else proxy_manager

                self._adapter = _Adapter()
            return self._adapter

    _TRANSPORT.append(TapePoolManager)
    return TapePoolManager


def _defer_tunnel(pool: Any, conn: Any, prepare: Callable[[Any, Any], None]) -> None:
    """HTTPS through a proxy: ``urlopen`` opens the CONNECT tunnel before the attempt reaches the tape.
    The tunnel is left to the attempt instead: a recorded one opens it (``_open_tunnel``), a replayed one
    needs none (its socket plays the tape), so a replay never reaches the proxy."""
    conn._streamtape_tunnel = lambda: prepare(pool, conn)


def _open_tunnel(pool: Any, conn: Any, tunnel: Callable[[], None]) -> None:
    """The deferred tunnel, failing as ``urlopen`` makes it fail there (a timeout as ``ReadTimeoutError``);
    ``urlopen``'s own handler, around the attempt as around the tunnel, does the rest."""
    import ssl

    try:
        tunnel()
    except (ssl.SSLError, OSError) as e:
        pool._raise_timeout(err=e, url=pool.proxy.url, timeout_value=conn.timeout)  # noqa: SLF001
        raise


def _failed_connect(conn: Any, kind: str) -> Callable[[], None]:
    """``conn.connect`` for an attempt whose connection cannot be made: raises what urllib3's ``_new_conn``
    raises for the OS error (its wording, ``from`` the OS error, inside its handler)."""
    exceptions = sys.modules["urllib3.exceptions"]

    def connect() -> None:
        try:
            if kind == "refused":
                raise ConnectionRefusedError(errno.ECONNREFUSED, os.strerror(errno.ECONNREFUSED))
            raise _timed_out()
        except TimeoutError as e:
            raise exceptions.ConnectTimeoutError(
                conn, f"Connection to {conn.host} timed out. (connect timeout={conn.timeout})"
            ) from e
        except OSError as e:
            raise exceptions.NewConnectionError(conn, f"Failed to establish a new connection: {e}") from e

    return connect


# --- replay: a socket that plays the tape ----------------------------------------------------------------

_DROPPED: socket.socket | None = None
_DROPPED_LOCK = threading.Lock()


def _dropped_fileno() -> int:
    """A descriptor that always reads as readable (its peer is closed): a replayed connection put back in
    the pool looks dropped to urllib3's ``is_connection_dropped``, so it is closed, never reused for real."""
    global _DROPPED
    with _DROPPED_LOCK:
        if _DROPPED is None:
            ours, theirs = socket.socketpair()
            theirs.close()
            _DROPPED = ours
        return _DROPPED.fileno()


class _TapeSocket:
    """Stands in for the connection's socket for one replayed attempt."""

    def __init__(self, stack: Urllib3Stack, playback: Playback, pacer: Pacer, at: float, head: Any,
                 what: str) -> None:  # fmt: skip
        self.stack, self.playback, self.pacer, self.at, self.head, self.what = stack, playback, pacer, at, head, what
        self.timeout: float | None = None
        self.closed = False

    # what http.client and urllib3 call on a socket
    def sendall(self, data: Any) -> None:
        if isinstance(self.head, Broken) and self.head.kind in ("write_error", "write_timeout"):
            self.pacer.wait(self.at)
            raise _timed_out() if self.head.kind == "write_timeout" else BrokenPipeError(
                errno.EPIPE, os.strerror(errno.EPIPE))

    def send(self, data: Any) -> int:
        self.sendall(data)
        return len(data)

    def makefile(self, mode: str = "r", buffering: int | None = None, **_: Any) -> Any:
        return io.BufferedReader(_TapeReader(self))

    def settimeout(self, timeout: float | None) -> None:
        self.timeout = timeout

    def gettimeout(self) -> float | None:
        return self.timeout

    def setsockopt(self, *args: Any) -> None:
        pass

    def shutdown(self, how: int) -> None:
        pass

    def close(self) -> None:
        self.closed = True

    def fileno(self) -> int:
        return _dropped_fileno()


class _TapeReader(io.RawIOBase):
    """The bytes a real socket would deliver for the playback, one recorded chunk per read."""

    def __init__(self, sock: _TapeSocket) -> None:
        super().__init__()
        self.sock = sock
        #: what the last piece has left to hand on: a view, so a read copies only what it takes (a whole
        #: recorded run is one piece, and copying its rest once per read was quadratic in the body)
        self.pending = memoryview(b"")
        self.outcomes = self._wire()

    def readable(self) -> bool:
        return True

    def readinto(self, buffer: Any) -> int:
        while not self.pending:
            try:
                piece = next(self.outcomes)
            except StopIteration:
                return 0  # EOF: a FIN
            self.pending = memoryview(piece)
        size = min(len(buffer), len(self.pending))
        buffer[:size] = self.pending[:size]
        self.pending = self.pending[size:]
        return size

    def _wire(self) -> Iterator[bytes]:
        sock = self.sock
        head, pacer, playback = sock.head, sock.pacer, sock.playback
        pacer.wait(sock.at)
        if isinstance(head, Garbage):
            yield head.data
            return
        if isinstance(head, Broken):
            if head.kind != "fin":  # a FIN: EOF before the status line
                raise sock.stack.exception(head, asynchronous=False, address=None)
            return
        assert isinstance(head, Respond)
        chunked = playback.framing == "chunked"
        yield _head_bytes(head, chunked)
        body = playback.body()
        while True:
            with harness(sock.what):  # an exception deciding an outcome is a harness failure
                try:
                    at, item = next(body)
                except StopIteration:
                    return
            if isinstance(item, Chunks):  # a whole recorded run, on a virtual clock: no waits
                data, pos, out = item.data, 0, []
                for _, size in item.timing:
                    out.append(_frame(data[pos : pos + size], chunked))
                    pos += size
                yield b"".join(out)
                continue
            pacer.wait(at)
            if isinstance(item, bytes):
                if item:
                    yield _frame(item, chunked)
            elif item is None:
                if chunked:
                    yield b"0\r\n\r\n"
                return
            elif isinstance(item, Garbage):
                yield item.data
                return
            else:
                error = harness_error(item)
                if error is not None:
                    raise error
                assert isinstance(item, Broken)
                if item.kind == "fin":
                    return
                raise sock.stack.exception(item, asynchronous=False, address=None)


def _frame(data: bytes, chunked: bool) -> bytes:
    return b"%x\r\n%s\r\n" % (len(data), data) if chunked else data


def _head_bytes(head: Respond, chunked: bool) -> bytes:
    lines = [f"HTTP/1.1 {head.status} {head.reason}".rstrip(" ").encode("latin-1")]
    names = {name.lower() for name, _ in head.headers}
    for name, value in head.headers:
        lines.append(f"{name}: {value}".encode("latin-1"))
    if chunked and "transfer-encoding" not in names:
        lines.append(b"Transfer-Encoding: chunked")
    return b"\r\n".join(lines) + b"\r\n\r\n"


# --- recording: a tee under http.client --------------------------------------------------------------------


class _Tee:
    """Parses the bytes a real response arrives as (h11), noting the head, each chunk and the end."""

    def __init__(self, recording: Recording, method: str) -> None:
        import h11

        self.h11 = h11
        self.recording = recording
        self.parser = h11.Connection(our_role=h11.CLIENT)
        self.parser.send(h11.Request(method=method, target="/", headers=[("host", "streamtape")]))
        self.parser.send(h11.EndOfMessage())
        #: the HTTP chunk arriving, grown in place: one large chunk arrives in many reads, and a
        #: ``bytes`` concatenated per read would copy what it holds each time (quadratic in the chunk)
        self.chunk = bytearray()
        self.done = False

    def feed(self, data: bytes) -> None:
        if self.done:
            return
        h11, recording = self.h11, self.recording
        try:
            self.parser.receive_data(data)
            while True:
                event = self.parser.next_event()
                if event is h11.NEED_DATA or event is h11.PAUSED:
                    return
                if isinstance(event, h11.Response):
                    recording.respond(event.status_code, event.reason, list(event.headers.raw_items()))
                elif isinstance(event, h11.Data):
                    self.chunk += event.data
                    if event.chunk_end or not event.chunk_start and not self._chunked():
                        recording.chunk(bytes(self.chunk))
                        self.chunk = bytearray()
                elif isinstance(event, h11.EndOfMessage):
                    self._end(None)
                    return
        except h11.RemoteProtocolError:
            self._end("fin")  # the connection ended (or went wrong) before the message did

    def _chunked(self) -> bool:
        return any(name.lower() == b"transfer-encoding" for name, _ in self._headers())

    def _headers(self) -> list[tuple[bytes, bytes]]:
        return [(name.encode("latin-1"), value.encode("latin-1")) for name, value in self.recording.headers]

    def client_closed(self) -> None:
        """Nothing more will be read (the app closed the response and the rest could not be read): what
        arrived is kept, and the recording ends as ``client_closed``, never as an end it did not see."""
        if not self.done:
            self.done = True
            if self.chunk:
                self.recording.chunk(bytes(self.chunk))
                self.chunk = bytearray()
            self.recording.client_closed()

    def failed(self, exc: BaseException) -> None:
        """The socket raised while reading: the connection was reset, or the read timed out."""
        if not self.done:
            self._end("timeout" if isinstance(exc, TimeoutError) else "reset")

    def _end(self, kind: str | None) -> None:
        self.done = True
        recording = self.recording
        if self.chunk:
            recording.chunk(bytes(self.chunk))
            self.chunk = bytearray()
        if recording.status == 0:
            recording.error = Cut(kind or "fin", None, recording.now())
        elif recording.end is None:
            recording.end = Cut(kind, None, recording.now()) if kind else End(recording.now())


class _TeeSocket:
    """The real socket, but ``makefile`` (http.client's reader) tees what is read into a ``_Tee``."""

    def __init__(self, sock: Any, tee: _Tee) -> None:
        self._sock, self._tee = sock, tee

    def makefile(self, mode: str = "r", buffering: int | None = None, **_: Any) -> Any:
        return io.BufferedReader(_TeeReader(self._sock.makefile("rb", buffering=0), self._tee, self._sock))

    def __getattr__(self, name: str) -> Any:
        return getattr(self._sock, name)


class _TeeReader(io.RawIOBase):
    """http.client's reader of the real socket: every byte read is fed to the tee at once. Closed before the
    response ended (the app closed it early), it keeps reading the rest into the tee off the app's path."""

    def __init__(self, raw: Any, tee: _Tee, sock: Any = None) -> None:
        super().__init__()
        self.raw, self.tee, self.sock = raw, tee, sock

    def readable(self) -> bool:
        return True

    def readinto(self, buffer: Any) -> int | None:
        try:
            size = self.raw.readinto(buffer)
        except BaseException as exc:
            if isinstance(exc, OSError):
                self.tee.failed(exc)
            raise
        if size is not None:
            self.tee.feed(bytes(memoryview(buffer)[:size]))
        return size

    def close(self) -> None:
        if self.closed:
            return
        recording = self.tee.recording
        if self.tee.done or recording.status == 0 or recording.abandoned or recording.pending is not None:
            self.raw.close()
        else:
            # http.client closes its reader, and urllib3 the connection's socket right after: the descriptor
            # stays open while this reader holds it (a socket's makefile keeps it), so the rest is still readable
            thread = threading.Thread(target=self._drain, name="streamtape-drain", daemon=True)
            recording.pending, recording.wake = thread, self._wake
            try:
                thread.start()
            except RuntimeError:  # closed by the garbage collector at interpreter shutdown: no threads then
                recording.pending = None
                self.tee.client_closed()
                self.raw.close()
        super().close()

    def _wake(self) -> None:
        """The tape stopped waiting for the background read: one blocked on a server that sends nothing more
        is woken by shutting the socket down (an HTTP/1.1 connection: nothing else reads it)."""
        with contextlib.suppress(OSError, AttributeError):
            self.sock.shutdown(socket.SHUT_RDWR)

    def _drain(self) -> None:
        """Read the rest into the recording, until its end, an error, or ``DRAIN_SECONDS`` / ``DRAIN_BYTES``
        (as the httpx2 recorder drains: ``streamtape.intercept.recorder``); then close the socket."""
        recording, tee = self.tee.recording, self.tee
        deadline, read, buffer = time.monotonic() + recorder.DRAIN_SECONDS, 0, bytearray(64 * 1024)
        try:
            while not tee.done:
                if recording.abandoned or time.monotonic() > deadline or read > recorder.DRAIN_BYTES:
                    return
                size = self.readinto(buffer)
                if not size:
                    break
                read += size
        except Exception:  # noqa: BLE001 - a real error mid-drain is the stream's end, and the tee noted it
            pass
        finally:
            tee.client_closed()  # (nothing, when it saw the end)
            with contextlib.suppress(Exception):
                self.raw.close()


# --- the request as the tape sees it ------------------------------------------------------------------


def _full_url(pool: Any, url: str) -> str:
    if url.startswith(("http://", "https://")):  # through a plain proxy: already absolute
        return url
    host = str(pool.host)
    if ":" in host and not host.startswith("["):
        host = f"[{host}]"
    default = {"http": 80, "https": 443}.get(pool.scheme)
    port = f":{pool.port}" if pool.port is not None and pool.port != default else ""
    return f"{pool.scheme}://{host}{port}{url if url.startswith('/') else '/' + url}"


def _header_items(pool: Any, headers: Any) -> tuple[tuple[str, str], ...]:
    items = [(str(k), v.decode("latin-1") if isinstance(v, bytes) else str(v))
             for k, v in (headers if headers is not None else pool.headers).items()]  # fmt: skip
    if not any(k.lower() == "host" for k, _ in items):
        default = {"http": 80, "https": 443}.get(pool.scheme)
        port = f":{pool.port}" if pool.port is not None and pool.port != default else ""
        items.insert(0, ("Host", f"{pool.host}{port}"))
    return tuple(items)


def _body_bytes(body: Any) -> tuple[bytes, Any]:
    """The body as bytes for matching, and what to send on (a stream read here is sent as its bytes)."""
    if body is None:
        return b"", body
    if isinstance(body, bytes):
        return body, body
    if isinstance(body, str):
        return body.encode("utf-8"), body
    if isinstance(body, bytearray | memoryview):
        return bytes(body), body
    if hasattr(body, "read"):
        data = body.read()
        data = data.encode("utf-8") if isinstance(data, str) else bytes(data)
        return data, data
    parts = [part.encode("utf-8") if isinstance(part, str) else bytes(part) for part in body]
    data = b"".join(parts)
    return data, data


def _learn_proxy(redactor: Any, pool: Any) -> None:
    """A ``ProxyManager``'s credentials (its URL's user:password, ``proxy_headers``) travel beside the
    request streamtape records: the redactor learns them, so a body repeating them is cleaned too."""
    proxy = getattr(pool, "proxy", None)
    if proxy is not None:
        redactor.learn_url(str(proxy))
    headers = getattr(pool, "proxy_headers", None)
    if headers:
        redactor.learn_headers([(str(k), v.decode("latin-1") if isinstance(v, bytes) else str(v)) for k, v in headers.items()])
