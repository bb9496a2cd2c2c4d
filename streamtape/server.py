"""The socket executor: plays a cassette's interactions over a real HTTP/1.1 socket.

Any client (the SDK with ``base_url=server.base_url``, curl, another language) meets the recorded
stream at recorded timing, and its failures as real socket events. It runs the same engine as the
in-process tape: a ``ReplaySession`` matches each request and applies the fault schedule, and a
``Playback`` decides what happens when; this module only carries the outcomes out on the socket, as
``streamtape.wire.CUTS`` says for each cut kind:

- ``fin``: a true ``shutdown`` (FIN) where the cut is; ``rst``: an RST (``SO_LINGER`` 0); ``silence``:
  nothing more is sent until the client gives up (its own read timeout decides, as on a real network);
- ``refuse``: the connection is refused: nothing listens on the port while the attempt is due. A
  refused attempt never reaches the server, so ``serve`` counts it by time: the listener stays closed
  for ``refuse_seconds`` (0.25 s, less than any SDK's first retry back-off) from the moment the attempt
  is due (when the previous answer was sent, or when the server started), then opens again. When every
  attempt from then on is refused (the ``refuse`` fault on its own) it stays closed;
- the body keeps its recorded framing: a Content-Length body is sent with its length (a cut then
  leaves the client "expecting" the rest, as a real server does), a close-delimited body ends with the
  connection, and chunked stays chunked.

One event loop (asyncio, in one background thread) serves every connection: non-blocking sockets,
each connection a small state machine, every recorded arrival a timer on the loop's scheduler
(grouped by the quarter millisecond: a timer wheel over ``call_at``), so thousands of concurrent
streams cost no thread each and keep their timing. New requests are parsed and answered in turns, so
a burst of clients does not delay the streams already playing. HTTP is h11's: it parses every request
and formats every head, and it decides each body's framing. Body pieces are then written pre-framed,
one ``send`` each (a chunk's size line, data and CRLF encoded once, in one buffer; a recorded run's
framed pieces are kept for the next client of the same recording), without h11's per-event path; h11
still counts the bytes (a Content-Length body must be whole, and a HEAD response gets none). Binds to
127.0.0.1 unless told; ``reuse_port=True`` lets several processes share the port (``SO_REUSEPORT``:
``streamtape serve --workers N``).

The server stays up under abuse, within limits that are all keyword arguments of ``ReplayServer``:

- **descriptor or memory exhaustion**: when ``accept()`` fails with EMFILE, ENFILE, ENOBUFS or
  ENOMEM, it says so in one stderr line, waits (10 ms, doubling up to 1 s, reset by the next
  success; cut short as soon as one of its connections closes) and keeps accepting; waiting clients
  stay in the listen backlog meanwhile;
- **concurrent connections** (``max_connections``, 1024): one more gets a 503 with
  ``Retry-After: 1`` and ``x-should-retry: true``, in the shape of the provider its request is for
  (its head is read for up to 0.25 s), and is closed. The request never reached the cassette, so
  retrying is safe, and the SDKs do (after 1 s, up to their ``max_retries``);
- **request size**: a head (request line and headers) over ``max_header_bytes`` (64 KiB) gets a
  431, a body over ``max_body_bytes`` (32 MiB, the Messages API's own limit) a 413, both closed;
  the bodies being received at once, all connections together, are bounded by ``max_pending_bytes``
  (256 MiB, and never less than ``max_body_bytes``: a body announced by its Content-Length is counted
  whole when its head arrives): one more gets a 503 to retry, unread;
- **what HTTP/1.1 cannot carry**: another HTTP version (an HTTP/2 preface) gets a 505; a target that
  is neither a path nor an http(s) URL (CONNECT, ``OPTIONS *``) a 400, as does a request with both
  Transfer-Encoding and Content-Length; an absolute-form target (``POST http://host/path``) is served;
- **slow requests** (``request_timeout``, 10 s): a request must arrive whole within it of its first
  byte, or it gets a 408 and is closed; a connection with no request under way is closed after the
  same time of silence (an idle keep-alive, or a client that connected and sent nothing);
- **slow readers** (``send_timeout``, 60 s): a client that accepts no part of a response chunk for
  that long is disconnected (RST); until it takes a piece, the next one waits (as a blocking write would).
  Meanwhile it holds one piece (a chunk of 8 KiB or less with its framing; a larger one, and a
  recorded run too large to keep framed, as views of the recording) and a kernel send buffer of fixed
  size (128 KiB, which Linux doubles), never a copy of the whole response;
- **memory**: a finished connection leaves nothing behind (its state and socket are dropped; one
  being answered keeps its request's method, URL and headers, not its body), and
  ``requests`` keeps only the most recent requests: at most ``history`` (1000) of them and at most
  ``history_bytes`` (16 MiB) of bodies, URLs and headers together (the newest is always kept, so
  one request up to ``max_body_bytes`` may exceed it). ``request_count`` counts them all.
  ``release_memory=True`` (``streamtape serve`` sets it: it is its own process) has glibc give the
  memory of large bodies back to the system once they are freed, and the free pages of its heap a
  second after connections close, which it otherwise keeps;
- **a log that nobody reads**: ``log`` is called from a thread of its own, never from the loop, so a
  terminal or pipe that stops reading never stalls the streams; beyond 10,000 waiting lines, lines
  are dropped (and counted, in one stderr line).

Every refusal is the provider's JSON error (``streamtape.providers``) whose message is one sentence;
no input from a client produces a traceback.
"""

from __future__ import annotations

import asyncio
import contextlib
import dataclasses
import errno
import functools
import math
import queue
import re
import signal
import socket
import struct
import sys
import threading
import time
from collections import deque
from collections.abc import Callable, Iterator, Sequence
from http import HTTPStatus
from typing import TYPE_CHECKING, Any
from urllib.parse import urlsplit

import h11

from .cassette import Cassette, Request
from .engine.clock import Clock, Pacer, RealClock, clock_for
from .engine.playback import Broken, Garbage, Outcome, Playback, Silent
from .engine.session import Call, ReplaySession
from .errors import ConfigError, HarnessError, StreamtapeError
from .matching import Matcher, resolve_matchers
from .wire import CUTS, Chunks, Respond

if TYPE_CHECKING:
    from .providers import Provider

__all__ = ["ReplayServer"]

#: headers h11 sets from the framing it is given (a recorded Content-Length is kept: it is the framing)
_HOP_BY_HOP = {"connection", "transfer-encoding", "keep-alive"}
_ABSOLUTE = re.compile(r"https?://", re.IGNORECASE)  # an absolute-form request target
REFUSE_SECONDS = 0.25
_SERVER_MATCH_ON = ("method", "path", "query", "body")  # the host is the server's own, never the recorded one

MAX_CONNECTIONS = 1024
MAX_HEADER_BYTES = 64 * 1024
MAX_BODY_BYTES = 32 * 1024 * 1024  # the Messages API's own request limit: larger requests get its 413 there too
#: request bodies being received at once, all connections together (at least ``max_body_bytes``)
MAX_PENDING_BYTES = 256 * 1024 * 1024
REQUEST_TIMEOUT = 10.0
SEND_TIMEOUT = 60.0
HISTORY = 1000
HISTORY_BYTES = 16 * 1024 * 1024

#: accept() failures that mean "out of descriptors or memory for now": wait and try again
_EXHAUSTED = {errno.EMFILE, errno.ENFILE, errno.ENOBUFS, errno.ENOMEM}
#: accept() failures that belong to one connection that died before it was taken: take the next
_ONE_CONNECTION = {errno.ECONNABORTED, errno.ECONNRESET, errno.EPROTO, errno.EINTR, errno.ETIMEDOUT}
#: accept() failures that mean the listener is gone (stop() closed it)
_LISTENER_GONE = {errno.EBADF, errno.EINVAL, errno.ENOTSOCK}
_BACKOFF_FIRST, _BACKOFF_MAX = 0.01, 1.0
_WARN_EVERY = 60.0  # the same stderr warning at most once a minute
#: after an error answer, how long to read and discard what the client still sends before closing,
#: so that the close does not reset the connection before the client has read the answer
_LINGER = 1.0
_MAX_REFUSING = 64  # 503 answers lingering at once (each holds a descriptor); beyond: answer and close
#: how long a connection over ``max_connections`` has to send its request head, so that its 503 has
#: its provider's shape (a client sends it at once); after that it is answered in the default shape
_HEAD_WAIT = 0.25
_RECV = 65536
#: each connection's kernel send buffer (Linux doubles it for its own bookkeeping): fixed, so a client
#: that stops reading holds at most this much of the machine's memory. Left to grow (to ``tcp_wmem``'s
#: 4 MiB), 1,000 such clients of a 4 MiB stream filled 2 GB of kernel buffers, past the kernel's
#: pressure threshold, and every ``send`` of the loop slowed down: a normal request took 9 s
_SEND_BUFFER = 128 * 1024
#: a chunk larger than this is written as its size line, a view of the recording and a CRLF (three
#: sends, no copy) when its run is framed as it is sent: a connection whose client stopped reading
#: then holds a copy of at most this much
_COPY = 8192
_TRIM_EVERY = 1.0  # release_memory: how long after the load fell freed heap memory is given back
_ACCEPT_BATCH = 64  # connections taken per wake-up of the listener before the loop runs anything else
#: how long the loop spends at a stretch parsing and answering the requests that arrived (CPU seconds):
#: as long as it spent on everything else since the last such turn, at least ``_TURN`` and at most
#: ``_TURN_MAX``. A burst of new clients takes turns with the streams already playing instead of
#: delaying them, and still gets half the loop when it is saturated (fairness, not a limit: the rest
#: are taken on the next turn)
_TURN = 0.001
_TURN_MAX = 0.01
_RUNS_BYTES = 16 * 1024 * 1024  # recorded runs of chunks kept framed, for the next client (bytes)
_SLOTS = 4000  # the timer wheel's slots per second
_PIECE_BATCH = 64  # pieces due at once (speed 0) written per turn before other connections get theirs
_LOG_BACKLOG = 10_000
_LOG_EVERY = 0.02  # how often the loop hands log lines to the thread that writes them
_STOP_WAIT = 5.0
_M_MMAP_THRESHOLD = -3  # glibc's malloc.h


class ReplayServer:
    """Serves ``cassette`` on ``host:port`` (port 0: any free port) at ``speed`` (1: recorded timing).

    ``max_connections``, ``max_header_bytes``, ``max_body_bytes``, ``max_pending_bytes``,
    ``request_timeout``, ``send_timeout``, ``history`` and ``history_bytes`` bound what clients can
    make it hold (see the module's docstring). ``requests`` lists the most recent requests received, oldest first.
    ``reuse_port``: listen with ``SO_REUSEPORT``, so that other processes may serve the same port.
    """

    def __init__(
        self,
        cassette: Cassette,
        *,
        host: str = "127.0.0.1",
        port: int = 0,
        speed: float = 1.0,
        match_on: Sequence[str | Matcher] = _SERVER_MATCH_ON,
        faults: Any = None,
        max_connections: int = MAX_CONNECTIONS,
        max_header_bytes: int = MAX_HEADER_BYTES,
        max_body_bytes: int = MAX_BODY_BYTES,
        max_pending_bytes: int = MAX_PENDING_BYTES,
        request_timeout: float = REQUEST_TIMEOUT,
        send_timeout: float = SEND_TIMEOUT,
        history: int = HISTORY,
        history_bytes: int = HISTORY_BYTES,
        release_memory: bool = False,
        log: Callable[[str], None] | None = None,
        clock: Clock | None = None,
        refuse_seconds: float = REFUSE_SECONDS,
        reuse_port: bool = False,
    ) -> None:
        from .faults import resolve

        _check_count("max_connections", max_connections, 1)
        _check_count("max_header_bytes", max_header_bytes, 1)
        _check_count("max_body_bytes", max_body_bytes, 0)
        _check_count("max_pending_bytes", max_pending_bytes, 0)
        _check_count("history", history, 0)
        _check_count("history_bytes", history_bytes, 0)
        _check_seconds("request_timeout", request_timeout)
        _check_seconds("send_timeout", send_timeout)
        _check_seconds("refuse_seconds", refuse_seconds)
        self.cassette = cassette
        #: called with one line per request: what it matched (or the 404), the faults, the outcome
        #: (from a thread of the server's own, in order)
        self.log = log
        self.speed = speed
        #: what pacing waits on: real time at speed 1, scaled at N, virtual (instant) at 0
        self.clock: Clock = clock if clock is not None else clock_for(speed)
        self.refuse_seconds = float(refuse_seconds)
        self.max_connections = max_connections
        self.max_header_bytes = max_header_bytes
        self.max_body_bytes = max_body_bytes
        #: what ``max_pending_bytes`` allows: one body of ``max_body_bytes`` always fits
        self.max_pending_bytes = max(max_pending_bytes, max_body_bytes)
        self._pending_bytes = 0  # request body bytes being received (or announced by Content-Length)
        self.request_timeout = float(request_timeout)
        self.send_timeout = float(send_timeout)
        self.history = history
        self.history_bytes = history_bytes
        self.reuse_port = bool(reuse_port)
        #: the engine the in-process tape runs too: matching, the fault schedule, the call log
        self._session = ReplaySession(cassette.interactions, resolve_matchers(match_on), resolve(faults),
                                      where="the served cassette")  # fmt: skip
        #: held around the session and the history: the loop changes them, any thread may read them
        self._lock = threading.RLock()
        self._closed_for_refusal = False  # the listener is closed: a refused attempt is due
        self._blackhole: _Blackhole | None = None  # ... or replaced by one that never completes a connection
        self._relisten: asyncio.TimerHandle | None = None  # when the listener opens again after a refusal
        self._stopping = threading.Event()
        self._loop: asyncio.AbstractEventLoop | None = None
        self._thread: threading.Thread | None = None
        self._accepting = False  # the loop watches the listener
        self._resume: asyncio.TimerHandle | None = None  # accepting again after a back-off
        self._backoff = 0.0
        self._conns: set[_Conn] = set()  # connections being served (what max_connections counts)
        self._refusing: dict[socket.socket, _Refusal] = {}  # connections being answered 503
        self._turns: deque[_Conn] = deque()  # connections with a request to parse or answer, in turn
        self._turn_ended = 0.0  # the loop thread's CPU time when the last turn ended
        self._runs = _Runs()  # recorded runs of chunks, framed
        self._wheel: _Wheel  # the recorded arrivals due, by the quarter millisecond (set when the loop starts)
        self._deadlines: _Deadlines  # the request deadlines, in the order they fall
        self._warned: dict[str, float] = {}
        self._kept: deque[int] = deque()  # the size of each request in ``requests``
        self._kept_bytes = 0
        self._log_lines = _LogLines(self)
        self.requests: list[Request] = []
        self.request_count = 0  # every request received, including those ``requests`` no longer holds
        self.refused_count = 0  # connections answered 503: ``max_connections`` were open
        self._full_answers: dict[str, bytes] = {}  # the 503 answering a connection over the cap, by provider
        self._trim: Callable[[], object] | None = _map_large_blocks() if release_memory else None
        self._trimming: asyncio.TimerHandle | None = None  # the next trim, once connections closed
        self._trim_peak = 0  # the most connections open at once since the last trim
        self._listener = _listen((host, port), self.reuse_port)
        self._address: tuple[str, int] = self._listener.getsockname()[:2]

    @property
    def schedule(self) -> Any:
        """The fault schedule (``streamtape.faults.Schedule``), or ``None``."""
        return self._session.schedule

    @property
    def session(self) -> ReplaySession:
        """The replay session: the matching, the fault schedule and the call log this server runs."""
        return self._session

    @property
    def calls(self) -> list[Call]:
        """What the most recent requests got, in order, as a tape's ``calls`` say it (refused attempts
        too); as many as ``requests`` holds."""
        return self._session.calls

    @property
    def port(self) -> int:
        return int(self._address[1])

    @property
    def base_url(self) -> str:
        return f"http://{self._address[0]}:{self.port}"

    @property
    def connections(self) -> int:
        """How many connections are open and being served (what ``max_connections`` caps)."""
        return len(self._conns)

    @property
    def lingering(self) -> int:
        """How many connections answered 503 are still being closed (their answer read by the client)."""
        return len(self._refusing)

    def start(self) -> ReplayServer:
        """Start serving, on an event loop in a background thread; returns once it listens (or, when
        the first attempt is to be refused, once it has stopped listening for it)."""
        if self._thread is not None:
            return self
        from .guard import forwarding

        with forwarding():  # where socketpair() is emulated (Windows), the loop's own wake-up connection
            loop = asyncio.new_event_loop()
        ready = threading.Event()
        self._loop = loop
        self._thread = threading.Thread(target=self._run, args=(loop, ready), daemon=True, name="streamtape-serve")
        _start_unsignalled(self._thread)
        ready.wait()
        return self

    def stop(self) -> None:
        """Stop accepting, cut every open connection (FIN), and wait for the loop's thread to end."""
        self._stopping.set()
        loop, thread = self._loop, self._thread
        if loop is None or thread is None:  # never started
            self._close_listener()
        elif thread is threading.current_thread():  # from a callback on the loop
            self._shutdown()
        else:
            with contextlib.suppress(RuntimeError):  # the loop has ended already
                loop.call_soon_threadsafe(self._shutdown)
            thread.join(_STOP_WAIT)
        self._log_lines.close(_STOP_WAIT)

    def __enter__(self) -> ReplayServer:
        return self.start()

    def __exit__(self, *exc_info: object) -> None:
        self.stop()

    # --- the loop ---------------------------------------------------------------------------------

    def _run(self, loop: asyncio.AbstractEventLoop, ready: threading.Event) -> None:
        asyncio.set_event_loop(loop)
        loop.set_exception_handler(self._internal_error)
        self._wheel = _Wheel(loop)
        self._deadlines = _Deadlines(self, loop)

        def begin() -> None:
            try:
                if not self._stopping.is_set():
                    self._listener.setblocking(False)
                    self._accept_on()
                    self._check_refusal()
            finally:
                ready.set()

        loop.call_soon(begin)
        try:
            loop.run_forever()
        finally:
            ready.set()
            self._shutdown(stop_loop=False)
            loop.close()

    def _shutdown(self, stop_loop: bool = True) -> None:
        """On the loop: close the listener and every connection, then end the loop."""
        self._stopping.set()
        for timer in (self._relisten, self._resume, self._trimming):
            if timer is not None:
                timer.cancel()
        self._close_listener()
        if self._blackhole is not None:
            self._blackhole.close()
            self._blackhole = None
        for conn in list(self._conns):
            conn.close(reset=False)
        for sock, drain in list(self._refusing.items()):
            drain.cancel()
            _close(sock, reset=False)
        self._refusing.clear()
        self._turns.clear()
        if self._loop is not None and self._thread is not None:
            with contextlib.suppress(AttributeError):  # the loop never began
                self._deadlines.clear()
                self._wheel.slots.clear()
        if stop_loop and self._loop is not None:
            self._loop.stop()

    def _internal_error(self, loop: asyncio.AbstractEventLoop, context: dict[str, Any]) -> None:
        """A streamtape bug in a callback: say so, and close the connection it happened on."""
        conn = getattr(getattr(context.get("handle"), "_callback", None), "__self__", None)
        if isinstance(conn, _Conn):
            conn.close(reset=False)
        loop.default_exception_handler(context)

    def _warn(self, key: str, message: str) -> None:
        """One stderr line, at most once a minute for the same ``key``."""
        now = time.monotonic()
        with self._lock:
            if now - self._warned.get(key, -math.inf) < _WARN_EVERY:
                return
            self._warned[key] = now
        print(message, file=sys.stderr, flush=True)

    # --- accepting ----------------------------------------------------------------------------------

    def _accept(self) -> tuple[socket.socket, Any]:
        return self._listener.accept()

    def _accept_on(self) -> None:
        assert self._loop is not None
        if not self._accepting and not self._closed_for_refusal and not self._stopping.is_set():
            self._loop.add_reader(self._listener.fileno(), self._on_acceptable)
            self._accepting = True

    def _accept_off(self) -> None:
        if self._accepting:
            assert self._loop is not None
            self._accepting = False
            with contextlib.suppress(ValueError, OSError):  # the listener's descriptor is closed already
                self._loop.remove_reader(self._listener.fileno())

    def _close_listener(self) -> None:
        self._accept_off()
        with contextlib.suppress(OSError):
            self._listener.close()

    def _on_acceptable(self) -> None:
        for _ in range(_ACCEPT_BATCH):
            try:
                sock, _ = self._accept()
            except (BlockingIOError, InterruptedError):
                return  # none waiting
            except OSError as exc:
                if self._stopping.is_set() or exc.errno in _LISTENER_GONE:
                    self._accept_off()
                    return
                if exc.errno in _ONE_CONNECTION:
                    continue
                if exc.errno in _EXHAUSTED:
                    self._warn(
                        "exhausted",
                        f"streamtape serve: cannot accept connections ({exc.strerror or exc}); waiting up to "
                        f"{_BACKOFF_MAX:g} s between tries until some close (raise `ulimit -n`, or lower "
                        "max_connections, --max-connections)",
                    )
                self._backoff = min(max(self._backoff * 2, _BACKOFF_FIRST), _BACKOFF_MAX)
                self._pause(self._backoff)
                return
            self._backoff = 0.0
            self._admit(sock)

    def _pause(self, seconds: float) -> None:
        """Stop accepting for ``seconds`` (waiting clients stay in the listen backlog)."""
        assert self._loop is not None
        self._accept_off()
        self._resume = self._loop.call_later(seconds, self._resume_accepting)

    def _resume_accepting(self) -> None:
        self._resume = None
        self._accept_on()

    def _admit(self, sock: socket.socket) -> None:
        if self._stopping.is_set():
            _close(sock, reset=False)
            return
        if len(self._conns) >= self.max_connections:
            self._warn(
                "full",
                f"streamtape serve: {self.max_connections} connections open (max_connections, --max-connections); "
                "answering new ones 503 (Retry-After: 1) until some close",
            )
            self._refuse(sock)
            return
        try:
            sock.setblocking(False)
            sock.setsockopt(socket.IPPROTO_TCP, socket.TCP_NODELAY, 1)  # each piece leaves when it is due
            sock.setsockopt(socket.SOL_SOCKET, socket.SO_SNDBUF, _SEND_BUFFER)
        except OSError:  # it died meanwhile
            _close(sock, reset=False)
            return
        conn = _Conn(self, sock)
        self._conns.add(conn)
        self._trim_peak = max(self._trim_peak, len(self._conns))
        conn.next_request()

    def _refuse(self, sock: socket.socket) -> None:
        """Answer 503 and close: in the shape of the provider the request is for, once its head is read
        (``_Refusal``), while there are few such answers; beyond that, at once in the default shape
        (reading what already came, then closing)."""
        assert self._loop is not None
        self.refused_count += 1
        with contextlib.suppress(OSError):
            sock.setblocking(False)
            if len(self._refusing) < _MAX_REFUSING:
                self._refusing[sock] = _Refusal(self, sock)
                return
            sock.send(self._full_answer(None))  # a few hundred bytes: a fresh socket's buffer takes them whole
            sock.shutdown(socket.SHUT_WR)
            while sock.recv(_RECV):
                pass
        self._refusing.pop(sock, None)
        _close(sock, reset=False)

    def _full_answer(self, provider: Provider | None) -> bytes:
        """The 503 for a connection over ``max_connections``, in ``provider``'s shape (else the default)."""
        key = "" if provider is None else provider.name
        answer = self._full_answers.get(key)
        if answer is None:
            message = (f"streamtape serve: {self.max_connections} connections are already open, the most it serves "
                       "at once (max_connections), so this one is refused; retry in a second.")  # fmt: skip
            answer = self._full_answers[key] = _answer(503, "overloaded_error", message, retry=True, provider=provider)
        return answer

    def _refused(self, sock: socket.socket) -> None:
        self._refusing.pop(sock, None)
        _close(sock, reset=False)
        self._closed_one()

    def _reserve(self, conn: _Conn, size: int) -> bool:
        """Count ``size`` more bytes of request body held by ``conn``; False (nothing counted) when
        the bodies being received would then exceed ``max_pending_bytes``."""
        if self._pending_bytes + size > self.max_pending_bytes:
            return False
        self._pending_bytes += size
        conn.reserved += size
        return True

    def _release(self, conn: _Conn) -> None:
        """``conn`` holds no request body any more."""
        self._pending_bytes -= conn.reserved
        conn.reserved = 0

    def _closed_one(self) -> None:
        """A connection closed: if accepting was paused for lack of descriptors, try again now (one was
        just freed). With ``release_memory``, once the load has fallen (no connection left, or a
        quarter of the most open since the last time), give the memory freed back to the system in a
        moment: a trim takes milliseconds (46 ms after 500 MB were freed), which a steady load, whose
        connections come and go, is not made to wait for."""
        if self._resume is not None:
            self._resume.cancel()
            self._resume_accepting()
        open_ = len(self._conns)
        if (self._trim is not None and self._trimming is None and self._loop is not None
                and not self._stopping.is_set() and (not open_ or open_ * 4 <= self._trim_peak)):  # fmt: skip
            self._trimming = self._loop.call_later(_TRIM_EVERY, self._trim_now)

    def _trim_now(self) -> None:
        self._trimming = None
        self._trim_peak = len(self._conns)
        if self._trim is not None:
            self._trim()

    # --- refused connections: nothing listens while a refused attempt is due -------------------------

    def _check_refusal(self) -> None:
        """If the next counted attempt is to be refused, stop listening: for ``refuse_seconds``, or
        for good when every attempt from now on is refused."""
        assert self._loop is not None
        with self._lock:
            if self._closed_for_refusal or self._stopping.is_set() or not self._session.refusal_due():
                return
            self._closed_for_refusal = True
            self._close_listener()
            if self._session.unconnected() == "connect_timeout":
                self._blackhole = _Blackhole(self._address)  # connections are never completed: they time out
            if self._session.refuses_forever():
                self._session.refused(self.base_url)
                return
        self._relisten = self._loop.call_later(self.refuse_seconds, self._listen_again)

    def _listen_again(self) -> None:
        self._relisten = None
        with self._lock:
            self._session.refused(self.base_url)
        if self._blackhole is not None:
            self._blackhole.close()
            self._blackhole = None
        try:
            self._listener = _listen(self._address, self.reuse_port)
            self._listener.setblocking(False)
        except OSError as exc:  # the port was taken meanwhile: nothing more can be served
            self._warn("relisten", f"streamtape serve: cannot listen on {self.base_url} again after a refused "
                                   f"connection ({exc.strerror or exc}); stopping")  # fmt: skip
            self._shutdown()
            return
        self._closed_for_refusal = False
        self._accept_on()
        self._check_refusal()

    # --- answering ------------------------------------------------------------------------------------

    def _later(self, conn: _Conn) -> None:
        """``conn`` received part of a request: parse it (and answer it, once whole) in turn."""
        assert self._loop is not None
        conn.queued = True
        self._turns.append(conn)
        if len(self._turns) == 1:
            self._turn_ended = time.thread_time()  # what the loop does from now on is what a turn matches
            self._loop.call_soon(self._take_turns)

    def _take_turns(self) -> None:
        """Parse and answer the waiting requests for a turn (``_TURN``), then let the timers run."""
        assert self._loop is not None
        turns = self._turns
        now = time.thread_time()
        until = now + min(max(now - self._turn_ended, _TURN), _TURN_MAX)
        while turns:
            conn = turns.popleft()
            conn.queued = False
            if not conn.closed and conn.phase == "reading":
                try:
                    conn.parse()
                except Exception as exc:  # a bug: it ends this connection, not the others waiting their turn
                    conn.close(reset=False)
                    self._loop.call_exception_handler({"message": "streamtape serve: answering a request failed",
                                                       "exception": exc})  # fmt: skip
            if time.thread_time() >= until:
                break
        self._turn_ended = time.thread_time()
        if turns:
            self._loop.call_soon(self._take_turns)

    def _trim_calls(self) -> None:
        """``calls`` is bounded as ``requests`` is: a call is kept while its request is (they hold the
        same request), and refused attempts (which hold no body) up to ``history``."""
        calls = self._session.calls
        if len(calls) <= len(self.requests):
            return
        # Calls come in the order their requests did: those of the dropped requests lead the list
        # (refused attempts among them stay). Only an unusual list (cleared by the caller) is sifted.
        oldest = self.requests[0] if self.requests else None
        refused = []
        for index, call in enumerate(calls):
            if call.source == "refused":
                refused.append(call)
            elif call.request is oldest:
                calls[:index] = refused
                del calls[: max(0, len(calls) - max(self.history, 1))]
                return
        kept = {id(request) for request in self.requests}
        calls[:] = [call for call in calls if call.source == "refused" or id(call.request) in kept][-max(self.history, 1):]

    def _remember(self, request: Request) -> None:
        """Add ``request`` to ``requests``, dropping the oldest beyond ``history``/``history_bytes``.
        Called with the lock held."""
        self.request_count += 1
        if len(self._kept) != len(self.requests):  # the caller changed the list (cleared it, say): recount
            self._kept = deque(map(_size, self.requests))
            self._kept_bytes = sum(self._kept)
        self.requests.append(request)
        self._kept.append(_size(request))
        self._kept_bytes += self._kept[-1]
        drop = 0
        while len(self.requests) - drop > self.history or (
            len(self.requests) - drop > 1 and self._kept_bytes > self.history_bytes
        ):
            self._kept_bytes -= self._kept.popleft()
            drop += 1
        if drop:
            del self.requests[:drop]


class _Conn:
    """One connection, as a state machine driven by the loop: read a request (h11), answer it (the
    session), play the answer (timers for the recorded arrivals, pre-framed writes), then the next
    request on the same connection, or the end the playback says (FIN, RST, silence)."""

    __slots__ = ("server", "loop", "sock", "fd", "h11", "out", "then", "reading", "writing", "token", "closed",
                 "phase", "queued", "head", "fields", "body", "started", "eof", "request", "playback", "pacer", "real",
                 "pieces", "item", "ready", "run", "run_at", "run_index", "framer", "drain", "progress", "send_timer",
                 "send_limit", "send_reset", "reserved", "announced")  # fmt: skip

    def __init__(self, server: ReplayServer, sock: socket.socket) -> None:
        assert server._loop is not None
        self.server = server
        self.loop = server._loop
        self.sock = sock
        self.fd = sock.fileno()
        self.h11 = h11.Connection(our_role=h11.SERVER, max_incomplete_event_size=server.max_header_bytes)
        self.out: deque[bytes | memoryview] = deque()  # what the socket has not taken yet
        self.then: Callable[[], None] | None = None  # what follows once ``out`` is sent
        self.reading = self.writing = self.closed = self.queued = False
        #: "reading" a request, "answering" it, or "closing" after an error answer
        self.phase = "reading"
        self.token = 0  # the request deadline set last (``_Deadlines``); changed when it no longer holds
        self.head: h11.Request | None = None
        self.fields: list[tuple[bytes, bytes]] = []
        self.body = bytearray()
        self.started = self.eof = False
        self.request: Request | None = None
        self.playback: Playback | None = None
        self.pacer: Pacer | None = None
        self.real = False
        self.pieces: Iterator[tuple[float, Outcome]] | None = None
        self.item: Any = None  # the playback's next outcome, once due
        self.ready: _Piece | None = None  # ... or the next piece of a recorded run, framed
        self.run: list[bytes] | _Framed | None = None  # the current run's pieces, framed (or framed as they are taken)
        self.run_at: Sequence[tuple[float, int]] = ()  # ... and their recorded times
        self.run_index = 0
        self.framer: _Framer | None = None
        self.drain: _Drain | None = None
        self.progress = 0.0  # when the socket last took bytes (or a wait for it began)
        self.send_timer: asyncio.TimerHandle | None = None
        self.send_limit = server.send_timeout
        self.send_reset = True
        self.reserved = 0  # request body bytes counted against ``max_pending_bytes``
        self.announced = False  # the request's Content-Length was counted whole when its head arrived

    # --- reading a request ----------------------------------------------------------------------------

    def next_request(self) -> None:
        """Wait for the next request: a new one, or one already (partly) received."""
        self.phase = "reading"
        self.head, self.body, self.eof = None, bytearray(), False
        buffered, closed = self.h11.trailing_data
        self.started = bool(buffered)  # part of the next request already arrived
        self._deadline()
        if not self.reading:
            self.loop.add_reader(self.fd, self._readable)
            self.reading = True
        if buffered or closed:
            self.parse()

    def _deadline(self) -> None:
        self.token += 1
        self.server._deadlines.set(self)

    def _stop_reading(self) -> None:
        if self.reading:
            self.reading = False
            self.loop.remove_reader(self.fd)
        self.token += 1  # no request deadline while none is read

    def _readable(self) -> None:
        try:
            data = self.sock.recv(_RECV)
        except (BlockingIOError, InterruptedError):
            return
        except OSError:
            self.close(reset=False)
            return
        if data and not self.started:
            self.started = True
            self._deadline()
        if not data:
            self.eof = True
            self._stop_reading()
        self.h11.receive_data(data)
        if not self.queued:
            self.server._later(self)

    def parse(self) -> None:
        """Take what h11 parses of what arrived; answer once the request is whole."""
        server = self.server
        while True:
            try:
                event = self.h11.next_event()
            except h11.RemoteProtocolError as exc:
                if self.eof:
                    self.close(reset=False)
                else:
                    self._refuse_request(exc)
                return
            if event is h11.NEED_DATA:
                if self.eof:
                    self.close(reset=False)
                return
            kind = type(event)
            if kind is h11.Request:
                assert isinstance(event, h11.Request)
                self.head = event
                self.fields = fields = list(event.headers)  # (lower-case name, value) pairs
                size = len(event.method) + len(event.target) + sum(len(k) + len(v) + 4 for k, v in fields)
                if size > server.max_header_bytes:  # h11 bounds an incomplete head; a complete one is checked here
                    self._refuse_request(h11.RemoteProtocolError("head too large", 431))
                    return
                unfit = _unfit(event)
                if unfit is not None:
                    self._answer_and_close(*unfit)
                    return
                length = next((int(v) for k, v in fields if k == b"content-length"), 0)
                if length > server.max_body_bytes:
                    self._too_large()
                    return
                # a body whose length is announced is counted whole now, so once admitted it is read to its end
                self.announced = any(k == b"content-length" for k, _ in fields)
                if length and not server._reserve(self, length):
                    self._busy()
                    return
                if self.h11.they_are_waiting_for_100_continue:  # curl, for bodies over 1 MiB
                    self.write(self.h11.send(h11.InformationalResponse(status_code=100, headers=[], reason="Continue"))
                               or b"")  # fmt: skip
                    if self.closed:
                        return
            elif kind is h11.Data:
                assert isinstance(event, h11.Data)
                if len(self.body) + len(event.data) > server.max_body_bytes:
                    self._too_large()
                    return
                if not self.announced and not server._reserve(self, len(event.data)):
                    self._busy()
                    return
                self.body += event.data
            elif kind is h11.EndOfMessage and self.head is not None:
                self._stop_reading()
                head = self.head
                headers = tuple((k.decode("latin-1"), v.decode("latin-1")) for k, v in self.fields)
                url = _url(head.target.decode("latin-1"), headers)
                if (bad := _bad_url(url)) is not None:  # matching, the near-miss report, the provider all split it
                    self._answer_and_close(400, "invalid_request_error", bad)
                    return
                body, self.body = self.body, bytearray()
                self.request = Request(head.method.decode("latin-1"), url, headers, bytes(body))
                del body
                server._release(self)  # the body is the request's now (``requests`` bounds what is kept of it)
                self.head, self.fields = None, []
                self.phase = "answering"
                self.respond()
                return
            else:  # the client closed the connection between requests (or sent something odd)
                self.close(reset=False)
                return

    def too_slow(self) -> None:
        """The request deadline passed."""
        if not self.started:
            self.close(reset=False)  # an idle connection: closed without an answer
            return
        self._answer_and_close(
            408, "timeout_error",
            f"streamtape serve: the request did not arrive whole within {self.server.request_timeout:g} s "
            "(request_timeout), so the connection is closed.",
        )  # fmt: skip

    def _refuse_request(self, exc: h11.RemoteProtocolError) -> None:
        server = self.server
        if exc.error_status_hint == 431:
            message = (f"streamtape serve: the request head (request line and headers) is larger than "
                       f"{server.max_header_bytes} bytes (max_header_bytes).")  # fmt: skip
            self._answer_and_close(431, "request_too_large", message)
        else:
            detail = str(exc).split(": bytearray(", 1)[0].rstrip(".") or "unreadable"  # without the bytes: no echo
            message = f"streamtape serve: the request is not valid HTTP/1.1 ({detail})."
            self._answer_and_close(exc.error_status_hint, "invalid_request_error", message)

    def _too_large(self) -> None:
        message = (f"streamtape serve: the request body is larger than {self.server.max_body_bytes} bytes "
                   "(max_body_bytes), so it was not read.")  # fmt: skip
        self._answer_and_close(413, "request_too_large", message)

    def _busy(self) -> None:
        message = (f"streamtape serve: the request bodies being received already come to nearly "
                   f"{self.server.max_pending_bytes} bytes (max_pending_bytes), so this one was not read; "
                   "retry in a second.")  # fmt: skip
        self._answer_and_close(503, "overloaded_error", message, retry=True)

    def _provider(self) -> Provider | None:
        """The provider the request being read or answered is for, once its head has arrived."""
        from .providers import provider_for

        if self.request is not None:
            return provider_for(self.request.method, self.request.url, self.request.headers)
        if self.head is None:
            return None
        headers = tuple((k.decode("latin-1"), v.decode("latin-1")) for k, v in self.fields)
        return provider_for(self.head.method.decode("latin-1"), _url(self.head.target.decode("latin-1"), headers),
                            headers)  # fmt: skip

    def _answer_and_close(self, status: int, kind: str, message: str, *, retry: bool = False) -> None:
        """Answer an error (if nothing was answered yet) in the shape of the request's provider, then
        half-close and linger briefly."""
        self.phase = "closing"
        self._stop_reading()
        self.server._release(self)
        self.body = bytearray()
        if self.h11.our_state not in (h11.IDLE, h11.SEND_RESPONSE):
            self.close(reset=False)
            return
        try:
            events = _error_events(status, kind, message, retry=retry, close=True, provider=self._provider(),
                                   head=self._for_head())  # fmt: skip
            data = b"".join(self.h11.send(event) or b"" for event in events)
        except h11.ProtocolError:
            self.close(reset=False)
            return
        self.write(data)
        self.flush(self._linger, limit=min(_LINGER, self.server.send_timeout), reset=False)

    def _linger(self) -> None:
        """Half-close (FIN), then read and discard what the client still sends until it closes too or
        a moment passes: closing with unread data would send an RST, which can destroy the answer
        before the client reads it."""
        try:
            self.sock.shutdown(socket.SHUT_WR)
        except OSError:
            self.close(reset=False)
            return
        self.drain = _Drain(self.loop, self.sock, min(_LINGER, self.server.request_timeout), self._closed_cleanly)

    def _closed_cleanly(self) -> None:
        self.drain = None
        self.close(reset=False)

    # --- answering it ---------------------------------------------------------------------------------

    def respond(self) -> None:
        """Ask the session for the answer to the request just read, and carry it out."""
        server = self.server
        request = self.request
        assert request is not None
        try:
            with server._lock:
                server._remember(request)
                try:
                    answer = server._session.answer(request)
                    explanation = server._session.explain(request) if answer is None else []
                except StreamtapeError:
                    raise
                except Exception as exc:  # a matcher or fault of the user's, or a streamtape bug
                    raise HarnessError(f"{type(exc).__name__}: {exc}") from exc
                server._trim_calls()
            if request.body:  # what follows needs the request's method, URL and headers, never its body
                self.request = request = dataclasses.replace(request, body=b"")
        except StreamtapeError as exc:  # a harness mistake (a fault that cannot apply): say so, never retried
            message = f"streamtape serve: {request.method} {request.url}: {exc}"
            print(message, file=sys.stderr, flush=True)
            self._send_error(500, "api_error", message)
            self.flush(self._next_cycle)
            return
        if server.log is not None:
            outcome = "404, matches no interaction" if answer is None else f"#{answer.index}: {answer.call.outcome}"
            shaped = f" [{', '.join(answer.call.faults)}]" if answer is not None and answer.call.faults else ""
            target = request.url.split("://", 1)[-1].partition("/")[1:]  # the path and query: the host is ours
            server._log_lines.put(f"{request.method} {''.join(target)} -> {outcome}{shaped}")
        if answer is None:
            message = " ".join([f"streamtape serve: no recorded interaction matches {request.method} {request.url}.",
                                *explanation])  # fmt: skip
            self._send_error(404, "not_found_error", message)
            self.flush(self._answered)
            return
        # ``whole_runs``: a recorded run of chunks comes whole (``Chunks``), and is paced here, piece by
        # piece at its recorded times, from pieces framed once (the engine's decisions are the same:
        # with no read timeout, nothing inside a run can fail)
        self.playback = playback = Playback(answer.actions, read_timeout=None, whole_runs=True)
        self.pacer = Pacer(server.clock)
        self.real = type(server.clock) is RealClock  # the loop's own clock: arrivals are loop times
        at, self.item = playback.head()
        if self._due(at):
            self._play()

    def _send_error(self, status: int, kind: str, message: str) -> None:
        """streamtape's own error response, in the shape of the provider the request was for (so an
        OpenAI or Gemini SDK reports the message), that SDKs do not retry."""
        from .providers import provider_for

        request = self.request
        provider = None if request is None else provider_for(request.method, request.url, request.headers)
        for event in _error_events(status, kind, message, provider=provider, head=self._for_head()):
            self.write(self.h11.send(event) or b"")

    def _for_head(self) -> bool:
        """The request being answered is a HEAD: its answer has a head and never a body."""
        if self.request is not None:
            return self.request.method == "HEAD"
        return self.head is not None and self.head.method == b"HEAD"

    def _due(self, at: float) -> bool:
        """True when what is recorded ``at`` s after the request is due now; else ``_play`` is called
        when it is (the timer wheel)."""
        pacer = self.pacer
        assert pacer is not None
        if self.real:
            when = pacer.start + at
            if when <= self.loop.time():
                return True
            self.server._wheel.at(when, self)
            return False
        delay = pacer.delay(at)
        if delay <= 0:
            return True
        clock = self.server.clock
        wall = clock.wall(delay)
        if wall <= 0:
            clock.sleep(delay)  # virtual time: it moves on, nobody waits
            return True
        self.server._wheel.at(self.loop.time() + wall, self)
        return False

    def _play(self) -> None:
        """Carry out what is due, then what follows as it falls due; a piece the client has not taken
        yet holds the next one back (as a blocking write would)."""
        if self.closed:
            return
        try:
            for _ in range(_PIECE_BATCH):
                ready = self.ready
                if ready is not None:  # a piece of a recorded run, framed
                    self.ready = None
                    if isinstance(ready, tuple):  # a large chunk, in parts (not copied)
                        for part in ready:
                            self.write(part)
                    else:
                        self.write(ready)
                    if self.closed:
                        return
                elif not self._carry_out(self.item) or self.closed:
                    return
                if self.out:
                    self.flush(self._next_piece)
                    return
                if not self._due(self._next()):
                    return
        except h11.LocalProtocolError as exc:  # the cassette holds what HTTP cannot carry
            self._unsendable(exc)
            return
        self.loop.call_soon(self._play)  # more are due at once: let the other connections have a turn

    def _next_piece(self) -> None:
        try:
            at = self._next()
        except h11.LocalProtocolError as exc:
            self._unsendable(exc)
            return
        if self._due(at):
            self._play()

    def _next(self) -> float:
        """Take what comes next (a framed piece of the current run, or the playback's next outcome);
        returns when it is due."""
        run = self.run
        if run is not None:
            index = self.run_index
            if index < len(run):
                self.run_index = index + 1
                self.ready = run[index]
                return self.run_at[index][0]
            self.run = None
        assert self.pieces is not None and self.framer is not None
        at, item = next(self.pieces)
        if type(item) is Chunks:
            self.run, self.run_at, self.run_index = self.framer.run(item), item.timing, 0
            return self._next()
        self.item = item
        return at

    def _carry_out(self, item: Any) -> bool:
        """One outcome on the socket; False when the response is over (its end or its cut)."""
        if type(item) is bytes:
            assert self.framer is not None
            self.framer.data(item)
            return True
        if isinstance(item, Respond):
            assert self.playback is not None
            self.framer = _Framer(self, item, self.playback.framing)
            self.pieces = self.playback.body()
            return True
        if item is None:
            assert self.framer is not None and self.playback is not None
            self.framer.end()
            if self.playback.framing == "close":
                self.flush(self._fin)  # a close-delimited body ends with the connection
            else:
                self.flush(self._answered)
            return False
        self._hangup(item)
        return False

    def _unsendable(self, exc: h11.LocalProtocolError) -> None:
        request = self.request
        assert request is not None
        self.server._warn("unsendable", f"streamtape serve: {request.method} {request.url}: cannot send the "
                                        f"recorded response ({exc}); closing the connection")  # fmt: skip
        self.flush(self._fin)

    def _hangup(self, outcome: Broken | Silent | Garbage) -> None:
        """What the socket does for a cut, for bytes that are not HTTP, or for endless silence."""
        if isinstance(outcome, Garbage):
            self.write(outcome.data)  # as they are, outside h11's framing: then the connection ends
            self.flush(self._fin)
            return
        how = "silence" if isinstance(outcome, Silent) else CUTS[outcome.kind].socket
        if how == "local":
            assert isinstance(outcome, Broken) and self.request is not None
            request = self.request
            self.server._warn(f"local-{outcome.kind}", f"streamtape serve: {request.method} {request.url}: the "
                                                       f"recording ends with {outcome.kind!r} "
                                                       f"({CUTS[outcome.kind].before_headers}), which happens in the "
                                                       "client, not on a socket; closing the connection")  # fmt: skip
        if how == "silence":
            self.flush(self._silence)
        elif how in ("rst", "refuse"):  # refuse: a refused attempt that arrived all the same (kept alive): reset it
            self.flush(self._rst)
        else:
            self.flush(self._fin)

    def _silence(self) -> None:
        """Send nothing until the client gives up (closes or resets) or the server stops: its own
        read timeout decides, as on a real network. What it sends meanwhile is read and dropped."""
        self.drain = _Drain(self.loop, self.sock, None, self._closed_cleanly)

    def _fin(self) -> None:
        self.close(reset=False)

    def _rst(self) -> None:
        self.close(reset=True)

    def _answered(self) -> None:
        """The answer is sent: a refused attempt may be due now; else the next request, if the
        connection stays open."""
        server = self.server
        server._check_refusal()
        if server._closed_for_refusal:
            self.close(reset=False)  # a refused attempt is due: this connection must not carry it (FIN it now)
            return
        self._next_cycle()

    def _next_cycle(self) -> None:
        self.playback = self.pacer = self.pieces = self.framer = self.request = self.item = self.ready = self.run = None
        if self.h11.our_state is h11.DONE and self.h11.their_state is h11.DONE:
            self.h11.start_next_cycle()
            self.next_request()
        else:
            self.close(reset=False)

    # --- writing --------------------------------------------------------------------------------------

    def write(self, data: bytes | memoryview) -> None:
        """Hand ``data`` to the socket now, or queue what it does not take yet (in order)."""
        if self.closed or not data:
            return
        if self.out:
            self.out.append(data)
            return
        try:
            sent = self.sock.send(data)
        except (BlockingIOError, InterruptedError):
            sent = 0
        except OSError:  # the client went away: nothing more to say to it
            self.close(reset=False)
            return
        if sent < len(data):
            self.out.append(memoryview(data)[sent:])

    def flush(self, then: Callable[[], None], *, limit: float | None = None, reset: bool = True) -> None:
        """Call ``then`` once everything written has been taken by the socket. A client that takes
        nothing for ``limit`` seconds (``send_timeout``) is disconnected: RST, or FIN (``reset=False``)."""
        if self.closed:
            return
        if not self.out:
            then()
            return
        self.then = then
        self.send_limit = self.server.send_timeout if limit is None else limit
        self.send_reset = reset
        self.progress = self.loop.time()
        if not self.writing:
            self.loop.add_writer(self.fd, self._writable)
            self.writing = True
        if self.send_timer is None:
            self.send_timer = self.loop.call_later(self.send_limit, self._send_check)

    def _writable(self) -> None:
        out = self.out
        while out:
            data = out[0]
            try:
                sent = self.sock.send(data)
            except (BlockingIOError, InterruptedError):
                return
            except OSError:
                self.close(reset=False)
                return
            self.progress = self.loop.time()
            if sent < len(data):
                out[0] = memoryview(data)[sent:]
                return
            out.popleft()
        self.loop.remove_writer(self.fd)
        self.writing = False
        if self.send_timer is not None:
            self.send_timer.cancel()
            self.send_timer = None
        then, self.then = self.then, None
        if then is not None:
            then()

    def _send_check(self) -> None:
        self.send_timer = None
        if self.closed or not self.out:
            return
        idle = self.loop.time() - self.progress
        if idle >= self.send_limit:
            self.close(reset=self.send_reset)  # a client that stopped reading: drop what it never took at once
        else:
            self.send_timer = self.loop.call_later(self.send_limit - idle, self._send_check)

    def close(self, reset: bool) -> None:
        """Close the connection (RST when ``reset``, else FIN) and drop everything it held."""
        if self.closed:
            return
        self.closed = True
        self.token += 1
        if self.send_timer is not None:
            self.send_timer.cancel()
        if self.drain is not None:
            self.drain.cancel()
        if self.reading:
            self.loop.remove_reader(self.fd)
        if self.writing:
            self.loop.remove_writer(self.fd)
        self.reading = self.writing = False
        self.send_timer = self.drain = self.then = None
        self.out.clear()
        self.head, self.fields, self.body = None, [], bytearray()
        self.playback = self.pacer = self.pieces = self.framer = self.request = self.item = self.ready = self.run = None
        self.server._conns.discard(self)
        self.server._release(self)
        _close(self.sock, reset)
        self.server._closed_one()


class _Wheel:
    """The recorded arrivals that are due, grouped by the quarter millisecond: one loop timer per
    slot that has any, however many streams are due in it (a timer each would cost its creation and a
    place in the loop's heap, compared in Python, per piece of every stream). An arrival is carried
    out at the end of its slot, never before it is due (the loop itself wakes to the millisecond)."""

    __slots__ = ("loop", "slots")

    def __init__(self, loop: asyncio.AbstractEventLoop) -> None:
        self.loop = loop
        self.slots: dict[int, list[_Conn]] = {}

    def at(self, when: float, conn: _Conn) -> None:
        """Call ``conn._play()`` at ``when`` (loop time), or up to a slot later."""
        key = math.ceil(when * _SLOTS)
        slot = self.slots.get(key)
        if slot is None:
            self.slots[key] = [conn]
            self.loop.call_at(key / _SLOTS, self._due, key)
        else:
            slot.append(conn)

    def _due(self, key: int) -> None:
        for conn in self.slots.pop(key, ()):
            try:
                conn._play()
            except Exception as exc:  # a bug: it ends this connection, not the others due with it
                conn.close(reset=False)
                self.loop.call_exception_handler({"message": "streamtape serve: playing a response failed",
                                                  "exception": exc})  # fmt: skip


class _Deadlines:
    """The request deadlines: all ``request_timeout`` from when they are set, so they fall in the
    order they were set; a queue and one loop timer hold them. A connection voids its deadline by
    changing its ``token``; the voided ones are dropped when they fall (or when they outnumber the
    connections)."""

    __slots__ = ("server", "loop", "queue", "timer")

    def __init__(self, server: ReplayServer, loop: asyncio.AbstractEventLoop) -> None:
        self.server = server
        self.loop = loop
        self.queue: deque[tuple[float, _Conn, int]] = deque()
        self.timer: asyncio.TimerHandle | None = None

    def set(self, conn: _Conn) -> None:
        queue = self.queue
        queue.append((self.loop.time() + self.server.request_timeout, conn, conn.token))
        if self.timer is None:
            self.timer = self.loop.call_at(queue[0][0], self._fall)
        elif len(queue) > 2 * len(self.server._conns) + 64:
            self.queue = deque(entry for entry in queue if entry[1].token == entry[2] and not entry[1].closed)

    def _fall(self) -> None:
        self.timer = None
        queue = self.queue
        now = self.loop.time()
        while queue and queue[0][0] <= now:
            _, conn, token = queue.popleft()
            if conn.token == token and not conn.closed:
                try:
                    conn.too_slow()
                except Exception as exc:  # a bug: it ends this connection, not the others
                    conn.close(reset=False)
                    self.loop.call_exception_handler({"message": "streamtape serve: a request deadline failed",
                                                      "exception": exc})  # fmt: skip
        if queue:
            self.timer = self.loop.call_at(queue[0][0], self._fall)

    def clear(self) -> None:
        if self.timer is not None:
            self.timer.cancel()
            self.timer = None
        self.queue.clear()


class _Framer:
    """Writes one response's body in its recorded framing. h11 formats the head and decides the
    framing (Content-Length, chunked, or close-delimited), and says which: asked to frame no bytes at
    all, a chunked writer writes nothing, and a length-counting one passes them through. The body's
    pieces are then framed here, each once, in one buffer (a chunk's size line, data and CRLF; or the
    data as it is), and a recorded run's framed pieces are kept for the next client that gets the same
    run. h11 is told how many bytes went by, so it still checks a Content-Length body: none too many
    (before they are sent), none too few (at the end). A close-delimited body (which h11 only writes
    for an HTTP/1.0 peer) is framed by a second h11 connection that speaks to an HTTP/1.0 peer, after
    which the connection is closed, as the body's end."""

    __slots__ = ("conn", "connection", "mode", "counted", "passed")

    def __init__(self, conn: _Conn, head: Respond, framing: str) -> None:
        self.conn = conn
        # bytes, as recorded: h11 encodes text as ASCII, and a recorded value may be latin-1 (``café``)
        headers = [(k.encode("ascii"), v.encode("latin-1")) for k, v in head.headers if k.lower() not in _HOP_BY_HOP]
        connection = conn.h11
        if framing == "close":
            headers = [(k, v) for k, v in headers if k.lower() != b"content-length"]
            connection = h11.Connection(our_role=h11.SERVER)
            connection.receive_data(b"GET / HTTP/1.0\r\n\r\n")
            connection.next_event(), connection.next_event()  # the stand-in request and its end
        self.connection = connection
        conn.write(connection.send(h11.Response(status_code=head.status, headers=headers, reason=head.reason.encode("latin-1"))) or b"")
        probe = _Passed(0)
        parts = connection.send_with_data_passthrough(h11.Data(data=probe))  # type: ignore[arg-type]
        #: "chunked", "raw" (Content-Length or close-delimited), or "h11" (a writer not known here: h11
        #: frames every piece)
        self.mode = "chunked" if parts == [] else "raw" if parts is not None and parts == [probe] else "h11"
        self.counted = False  # "raw": some bytes were counted by h11 already
        self.passed = 0  # "raw": bytes written, not yet counted by h11

    def data(self, data: bytes) -> None:
        if not data:
            return
        mode = self.mode
        if mode == "chunked":
            if len(data) <= _RECV:
                self.conn.write(b"%x\r\n%b\r\n" % (len(data), data))
            else:  # large: not copied
                self.conn.write(b"%x\r\n" % len(data))
                self.conn.write(data)
                self.conn.write(b"\r\n")
        elif mode == "raw":
            self._count(len(data))
            self.conn.write(data)
        else:
            self.conn.write(self.connection.send(h11.Data(data=data)) or b"")

    def _count(self, size: int) -> None:
        """The first bytes are counted by h11 before they are sent (it refuses a body where the framing
        has none: a HEAD request's, a 204's); the rest once the body ends (none can be too many:
        the playback never sends past a Content-Length)."""
        if self.counted:
            self.passed += size
        else:
            self.connection.send_with_data_passthrough(h11.Data(data=_Passed(size)))  # type: ignore[arg-type]
            self.counted = True

    def run(self, chunks: Chunks) -> list[bytes] | _Framed:
        """A recorded run's pieces, framed (one per entry of its timing; b"" for an empty one)."""
        data, timing = chunks.data, chunks.timing
        if self.mode == "h11":
            return _Framed(data, timing, self._h11_piece)
        if self.mode == "raw":
            self._count(sum(size for _, size in timing))
        runs = self.conn.server._runs
        key = (id(data), id(timing), self.mode)
        kept = runs.get(key)
        if kept is not None and kept[0] is data and kept[1] is timing:
            return kept[2]
        if not runs.fits(len(data) + 16 * len(timing)):  # too large to keep: framed piece by piece as it is sent
            return _Framed(data, timing, _chunked_piece if self.mode == "chunked" else _raw_piece)
        if self.mode == "chunked":
            framed = [b"%x\r\n%b\r\n" % (len(piece), piece) if piece else b"" for piece, _ in chunks.pieces()]
        else:
            framed = [piece for piece, _ in chunks.pieces()]
        runs.keep(key, (data, timing, framed), len(data) + 16 * len(timing))
        return framed

    def _h11_piece(self, piece: memoryview) -> _Piece:
        return self.connection.send(h11.Data(data=bytes(piece))) or b"" if piece else b""

    def end(self) -> None:
        if self.passed:
            self.connection.send_with_data_passthrough(h11.Data(data=_Passed(self.passed)))  # type: ignore[arg-type]
            self.passed = 0
        self.conn.write(self.connection.send(h11.EndOfMessage()) or b"")


class _Runs(dict[tuple[int, int, str], tuple[bytes, Sequence[tuple[float, int]], list[bytes]]]):
    """Recorded runs of chunks, framed, by the identity of their data and timing (which the entry
    holds, so the identity stays theirs): every client served the same recording reuses them. At
    most ``_RUNS_BYTES`` of them, the oldest dropped first; larger runs are not kept."""

    size = 0

    @staticmethod
    def fits(size: int) -> bool:
        """Whether a run of ``size`` framed bytes is kept (larger ones are framed piece by piece)."""
        return size <= _RUNS_BYTES // 4

    def keep(self, key: tuple[int, int, str], value: tuple[bytes, Sequence[tuple[float, int]], list[bytes]],
             size: int) -> None:  # fmt: skip
        if not self.fits(size):
            return
        self.size += size
        self[key] = value
        while self.size > _RUNS_BYTES:
            old = next(iter(self))
            data, timing, _ = self.pop(old)
            self.size -= len(data) + 16 * len(timing)


#: one framed piece of a run: its bytes, or (a large chunk, not copied) its size line, data and CRLF
_Piece = bytes | memoryview | tuple[bytes, memoryview, bytes]


def _chunked_piece(piece: memoryview) -> _Piece:
    if not piece:
        return b""
    if len(piece) <= _COPY:
        return b"".join((b"%x\r\n" % len(piece), piece, b"\r\n"))
    return (b"%x\r\n" % len(piece), piece, b"\r\n")  # large: not copied


def _raw_piece(piece: memoryview) -> _Piece:
    return piece  # a view of the recording: not copied


class _Framed:
    """A recorded run's pieces, framed one at a time when they are asked for, in order (a run too
    large to keep framed for the next client): a connection holds the piece it is sending, and views
    of the recording, never a framed copy of the whole run (1,000 clients of a 4 MiB run that each
    framed it whole held 4 GB)."""

    __slots__ = ("data", "timing", "frame", "following", "pos")

    def __init__(self, data: bytes, timing: Sequence[tuple[float, int]], frame: Callable[[memoryview], _Piece]) -> None:
        self.data, self.timing, self.frame = memoryview(data), timing, frame
        self.following = self.pos = 0  # the next piece, and where it starts

    def __len__(self) -> int:
        return len(self.timing)

    def __getitem__(self, index: int) -> _Piece:
        if index != self.following:  # not the next one (never, from ``_Conn._next``): find where it starts
            self.pos = sum(size for _, size in self.timing[:index])
        size = self.timing[index][1]
        piece = self.data[self.pos : self.pos + size]
        self.following, self.pos = index + 1, self.pos + size
        return self.frame(piece)


class _Passed:
    """Stands in for bytes already written, so h11 counts them: its writers only ask their length."""

    __slots__ = ("size",)

    def __init__(self, size: int) -> None:
        self.size = size

    def __len__(self) -> int:
        return self.size


class _Drain:
    """Reads and drops what a client still sends, until it closes (or resets), ``seconds`` pass
    (``None``: never), or ``cancel()``; then calls ``done`` (once)."""

    __slots__ = ("loop", "sock", "fd", "done", "timer", "active")

    def __init__(self, loop: asyncio.AbstractEventLoop, sock: socket.socket, seconds: float | None,
                 done: Callable[[], None]) -> None:  # fmt: skip
        self.loop, self.sock, self.fd, self.done = loop, sock, sock.fileno(), done
        self.timer = None if seconds is None else loop.call_later(seconds, self._finish)
        self.active = True
        loop.add_reader(self.fd, self._readable)

    def _readable(self) -> None:
        try:
            while self.sock.recv(_RECV):
                pass
        except (BlockingIOError, InterruptedError):
            return
        except OSError:
            pass
        self._finish()

    def cancel(self) -> None:
        if self.active:
            self.active = False
            self.loop.remove_reader(self.fd)
            if self.timer is not None:
                self.timer.cancel()

    def _finish(self) -> None:
        if self.active:
            self.cancel()
            self.done()


class _Refusal:
    """A connection over ``max_connections``: its request head is read, for a moment (``_HEAD_WAIT``)
    and up to ``max_header_bytes``, so that the 503 has the shape of the provider it is for; then it
    is answered, half-closed, and what the client still sends is read and dropped until it closes or
    ``_LINGER`` passes (closing with unread data would reset the connection before the client reads
    the answer)."""

    __slots__ = ("server", "loop", "sock", "fd", "parser", "timer", "answered", "active")

    def __init__(self, server: ReplayServer, sock: socket.socket) -> None:
        assert server._loop is not None
        self.server, self.loop, self.sock, self.fd = server, server._loop, sock, sock.fileno()
        self.parser = h11.Connection(our_role=h11.SERVER, max_incomplete_event_size=server.max_header_bytes)
        self.answered = False
        self.active = True
        self.timer: asyncio.TimerHandle | None = self.loop.call_later(min(_HEAD_WAIT, server.request_timeout),
                                                                      self._answer)  # fmt: skip
        self.loop.add_reader(self.fd, self._readable)

    def _readable(self) -> None:
        try:
            data = self.sock.recv(_RECV)
        except (BlockingIOError, InterruptedError):
            return
        except OSError:
            self._done()
            return
        if not self.answered:
            self.parser.receive_data(data)
            try:
                event = self.parser.next_event()
            except h11.RemoteProtocolError:  # not HTTP, or a head too large: the default shape
                event = None
            if event is h11.NEED_DATA and data:
                return  # the head is not whole yet
            self._answer(event)
        if not data:
            self._done()

    def _answer(self, event: Any = None) -> None:
        from .providers import provider_for

        if self.answered or not self.active:
            return
        self.answered = True
        provider = None
        if isinstance(event, h11.Request):
            headers = tuple((k.decode("latin-1"), v.decode("latin-1")) for k, v in event.headers)
            provider = provider_for(event.method.decode("latin-1"), _url(event.target.decode("latin-1"), headers),
                                    headers)  # fmt: skip
        self.parser = None  # type: ignore[assignment]  # what it held of the head is not needed any more
        if self.timer is not None:
            self.timer.cancel()
        try:
            self.sock.send(self.server._full_answer(provider))  # a few hundred bytes: a fresh socket takes them
            self.sock.shutdown(socket.SHUT_WR)
        except OSError:
            self._done()
            return
        self.timer = self.loop.call_later(_LINGER, self._done)

    def cancel(self) -> None:
        if self.active:
            self.active = False
            self.loop.remove_reader(self.fd)
            if self.timer is not None:
                self.timer.cancel()
                self.timer = None

    def _done(self) -> None:
        if self.active:
            self.cancel()
            self.server._refused(self.sock)


class _LogLines:
    """Calls the server's ``log`` from a thread of its own, in order, so that a terminal or pipe that
    stops reading never stalls the loop. The loop hands lines over in batches (every
    ``_LOG_EVERY`` s), so the thread wakes, and takes the interpreter from the loop, rarely. Beyond
    ``_LOG_BACKLOG`` waiting lines, lines are dropped, and that is said once on stderr."""

    def __init__(self, server: ReplayServer) -> None:
        self.server = server
        self.batch: list[str] = []  # the loop's, not handed over yet
        self.queue: queue.SimpleQueue[list[str] | None] = queue.SimpleQueue()
        self.thread: threading.Thread | None = None
        self.timer: asyncio.TimerHandle | None = None
        self.waiting = 0  # lines handed over, not written yet
        self.dropped = 0
        self.lock = threading.Lock()

    def put(self, line: str) -> None:
        """On the loop: one line, handed over with the others in a moment."""
        with self.lock:
            if self.waiting + len(self.batch) >= _LOG_BACKLOG:
                self.dropped += 1
                return
            self.batch.append(line)
        if self.timer is None and self.server._loop is not None:
            self.timer = self.server._loop.call_later(_LOG_EVERY, self.hand_over)

    def hand_over(self) -> None:
        self.timer = None
        with self.lock:
            batch, self.batch = self.batch, []
            if not batch:
                return
            self.waiting += len(batch)
            if self.thread is None:
                self.thread = threading.Thread(target=self._run, daemon=True, name="streamtape-serve-log")
                _start_unsignalled(self.thread)
        self.queue.put(batch)

    def _run(self) -> None:
        while (batch := self.queue.get()) is not None:
            log = self.server.log
            for line in batch:
                with contextlib.suppress(Exception):  # the user's own callback: never the server's concern
                    if log is not None:
                        log(line)
            with self.lock:
                self.waiting -= len(batch)
                dropped, self.dropped = self.dropped, 0
            if dropped:
                self.server._warn("log", f"streamtape serve: {dropped} log line(s) dropped: the log is not read as "
                                         "fast as requests arrive")  # fmt: skip

    def close(self, timeout: float) -> None:
        """Once the loop has ended: write what is waiting (within ``timeout``), then end the thread."""
        self.hand_over()
        with self.lock:
            thread = self.thread
            self.thread = None
        if thread is not None and thread is not threading.current_thread():
            self.queue.put(None)
            thread.join(timeout)


#: signals a fault raises in the thread that caused it (blocking them there would kill the process)
_SYNCHRONOUS = {getattr(signal, name) for name in ("SIGSEGV", "SIGBUS", "SIGFPE", "SIGILL", "SIGTRAP", "SIGSYS",
                                                   "SIGABRT") if hasattr(signal, name)}  # fmt: skip


def _start_unsignalled(thread: threading.Thread) -> None:
    """Start ``thread`` with the asynchronous signals (SIGINT, SIGTERM, ...) blocked in it, so that the
    kernel delivers them to a thread that can act on them. The kernel may deliver a signal sent to the
    process to any of its threads that does not block it; Python runs the handler in the main thread
    only, and a main thread waiting without a timeout (``threading.Event().wait()``: ``streamtape
    serve``) is not woken when another thread took the signal: Ctrl-C then did nothing, for good.
    Measured under load: about 1 stop in 10, the signal coming while the loop started its log thread
    (glibc blocks the creator's signals around the clone; restoring them, or the new thread unblocking
    its own, takes the pending signal before the woken main thread runs). A new
    thread inherits its creator's mask, so it is set around ``start()`` and never missing, even for a
    moment; ``_run`` starts the log thread from the loop's thread, whose mask it inherits too."""
    if not hasattr(signal, "pthread_sigmask"):  # Windows: no signal masks (and no such delivery)
        thread.start()
        return
    previous = signal.pthread_sigmask(signal.SIG_BLOCK, signal.valid_signals() - _SYNCHRONOUS)
    try:
        thread.start()
    finally:
        signal.pthread_sigmask(signal.SIG_SETMASK, previous)


def _listen(address: tuple[str, int], reuse_port: bool) -> socket.socket:
    return socket.create_server(address, backlog=socket.SOMAXCONN, reuse_port=reuse_port)


class _Blackhole:
    """A listener on the server's port that completes no connection: its accept queue (one place,
    backlog 0) is filled by a connection of its own and never accepted, so the kernel drops every other
    connection's SYN and the client's connect timeout fires, as when a server is overwhelmed or a
    firewall drops packets."""

    def __init__(self, address: tuple[str, int]) -> None:
        from .guard import forwarding

        self.listener = socket.create_server(address, backlog=0)
        self.fillers: list[socket.socket] = []
        with forwarding():  # streamtape's own connections: a tape's socket guard lets them through
            for _ in range(2):  # the queue holds backlog + 1; one more makes sure it is full
                filler = socket.socket(self.listener.family, socket.SOCK_STREAM)
                filler.setblocking(False)
                filler.connect_ex(self.listener.getsockname()[:2])
                self.fillers.append(filler)

    def close(self) -> None:
        for sock in (*self.fillers, self.listener):
            with contextlib.suppress(OSError):
                sock.close()


def _check_count(name: str, value: Any, least: int) -> None:
    if isinstance(value, bool) or not isinstance(value, int) or value < least:
        raise ConfigError(f"ReplayServer {name}={value!r}: give a whole number, at least {least}")


def _check_seconds(name: str, value: Any) -> None:
    if isinstance(value, bool) or not isinstance(value, int | float) or not 0 < value < math.inf:
        raise ConfigError(f"ReplayServer {name}={value!r}: give a number of seconds above 0")


def _map_large_blocks() -> Callable[[], object] | None:
    """On glibc, give every allocation of 1 MiB or more its own mapping, returned to the system when
    freed. By default glibc raises that threshold as large blocks are freed, so request bodies then
    land in per-thread arenas that keep the memory (measured: 28 -> 345 MB idle after two rounds of
    three 30 MiB bodies). Process-wide, so opt-in: ``streamtape serve`` runs in its own process.

    Returns what gives the free pages of the heap back to the system (``malloc_trim``), which the
    server calls after connections close: glibc otherwise keeps the memory of many small blocks freed
    together (measured: 43 -> 114 MB idle after 1,000 clients that stopped reading were closed)."""
    import ctypes

    try:
        libc = ctypes.CDLL(None)
        mallopt, malloc_trim = libc.mallopt, libc.malloc_trim
    except (OSError, AttributeError):  # not glibc (macOS, Windows): nothing to do
        return None
    mallopt(_M_MMAP_THRESHOLD, 1 << 20)
    return functools.partial(malloc_trim, 0)


def _size(request: Request) -> int:
    """What holding ``request`` costs, roughly: its body, URL and headers."""
    return len(request.body) + len(request.url) + sum(len(k) + len(v) for k, v in request.headers)


def _error_events(status: int, kind: str, message: str, *, retry: bool = False, close: bool = False,
                  provider: Provider | None = None, head: bool = False) -> list[Any]:  # fmt: skip
    """streamtape's own answer (a refusal, an unmatched request, a harness error), as the provider's
    error response (``x-should-retry`` says whether SDKs retry it), as h11 events; ``provider``: the
    request's, when there is one (else the fallback's). ``head``: the answer to a HEAD request, whose
    headers say what the body would be, and which has none."""
    from .providers import error_response

    headers, body = error_response(status, kind, message, retry=retry, close=close, provider=provider)
    try:
        reason = HTTPStatus(status).phrase
    except ValueError:
        reason = ""
    response = h11.Response(status_code=status, headers=list(headers), reason=reason)
    return [response, h11.EndOfMessage()] if head else [response, h11.Data(data=body), h11.EndOfMessage()]


def _url(target: str, headers: Sequence[tuple[str, str]]) -> str:
    """The URL a request's target names: an absolute-form target is its own URL (what a client sends to
    a proxy, and what a server must accept); an origin-form one (a path) is on the ``Host`` it names."""
    if _ABSOLUTE.match(target):
        return target
    host = next((v for k, v in headers if k == "host"), "localhost")
    return f"http://{host}{target}"


def _bad_url(url: str) -> str | None:
    """Why the URL a request names (its target, on its Host) cannot be split into host, path and query
    (``Host: [::1``, ``http://[zz/``), in one sentence; ``None`` when it can."""
    try:
        urlsplit(url)
    except ValueError as exc:
        return (f"streamtape serve: the request's URL (its target, on its Host header) is not a valid URL "
                f"({exc}); send a Host header that names a host (and port), and a path or a whole URL as the "
                "target.")  # fmt: skip
    return None


def _unfit(head: h11.Request) -> tuple[int, str, str] | None:
    """Why a parsed request head is refused before its body is read (status, error type, message),
    or ``None``: what h11 accepts and an HTTP/1.1 origin server still must not serve."""
    if head.http_version not in (b"1.1", b"1.0"):
        return (505, "invalid_request_error", "streamtape serve: the request is not HTTP/1.1, the only version it "
                "serves (an HTTP/2 client must be told to use HTTP/1.1).")  # fmt: skip
    target = head.target
    if not target.startswith(b"/") and not _ABSOLUTE.match(target.decode("latin-1")):
        return (400, "invalid_request_error", "streamtape serve: the request target is neither a path nor an "
                "http(s) URL (CONNECT and OPTIONS * are not served: it is not a proxy).")  # fmt: skip
    names = {name for name, _ in head.headers}
    if b"transfer-encoding" in names and b"content-length" in names:
        return (400, "invalid_request_error", "streamtape serve: the request has both Transfer-Encoding and "
                "Content-Length, which disagree on where its body ends; send one of them.")  # fmt: skip
    return None


def _answer(status: int, kind: str, message: str, *, retry: bool, provider: Provider | None = None) -> bytes:
    """A whole error response, formatted by h11, for a connection that is answered before being read."""
    connection = h11.Connection(our_role=h11.SERVER)
    events = _error_events(status, kind, message, retry=retry, close=True, provider=provider)
    return b"".join(connection.send(event) or b"" for event in events)


def _close(sock: socket.socket, reset: bool) -> None:
    try:
        if reset:
            sock.setsockopt(socket.SOL_SOCKET, socket.SO_LINGER, struct.pack("ii", 1, 0))
        else:
            sock.shutdown(socket.SHUT_RDWR)
    except OSError:
        pass
    sock.close()
