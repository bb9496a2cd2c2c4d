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

HTTP framing is h11's; this module never formats HTTP itself. One thread per connection; binds to
127.0.0.1 unless told.

The server stays up under abuse, within limits that are all keyword arguments of ``ReplayServer``:

- **descriptor or memory exhaustion**: when ``accept()`` fails with EMFILE, ENFILE, ENOBUFS or
  ENOMEM, it says so in one stderr line, waits (10 ms, doubling up to 1 s, reset by the next
  success) and keeps accepting; waiting clients stay in the listen backlog meanwhile;
- **concurrent connections** (``max_connections``, 1024): one more gets a 503 with
  ``Retry-After: 1`` and ``x-should-retry: true`` and is closed. The request never reached the
  cassette, so retrying is safe, and the SDKs do (after 1 s, up to their ``max_retries``);
- **request size**: a head (request line and headers) over ``max_header_bytes`` (64 KiB) gets a
  431, a body over ``max_body_bytes`` (32 MiB, the Messages API's own limit) a 413, both closed;
- **slow requests** (``request_timeout``, 10 s): a request must arrive whole within it of its first
  byte, or it gets a 408 and is closed; a connection with no request under way is closed after the
  same time of silence (an idle keep-alive, or a client that connected and sent nothing);
- **slow readers** (``send_timeout``, 60 s): a client that accepts no part of a response chunk for
  that long is disconnected (RST);
- **memory**: a finished connection leaves nothing behind (its thread and socket are dropped), and
  ``requests`` keeps only the most recent requests: at most ``history`` (1000) of them and at most
  ``history_bytes`` (16 MiB) of bodies, URLs and headers together (the newest is always kept, so
  one request up to ``max_body_bytes`` may exceed it). ``request_count`` counts them all.
  ``release_memory=True`` (``streamtape serve`` sets it: it is its own process) has glibc give the
  memory of large bodies back to the system once they are freed, which it otherwise keeps.

Every refusal is the provider's JSON error (``streamtape.providers``) whose message is one sentence;
no input from a client produces a traceback.
"""

from __future__ import annotations

import contextlib
import errno
import math
import select
import socket
import struct
import sys
import threading
import time
from collections import deque
from collections.abc import Callable, Sequence
from http import HTTPStatus
from typing import Any

import h11

from .cassette import Cassette, Request
from .engine.clock import Clock, Pacer, clock_for
from .engine.playback import Broken, Garbage, Playback, Silent
from .engine.session import Call, ReplaySession
from .errors import ConfigError, HarnessError, StreamtapeError
from .matching import Matcher, resolve_matchers
from .wire import CUTS, Action, Chunks, Respond

__all__ = ["ReplayServer"]

#: headers h11 sets from the framing it is given (a recorded Content-Length is kept: it is the framing)
_HOP_BY_HOP = {"connection", "transfer-encoding", "keep-alive"}
REFUSE_SECONDS = 0.25
_SERVER_MATCH_ON = ("method", "path", "query", "body")  # the host is the server's own, never the recorded one

MAX_CONNECTIONS = 1024
MAX_HEADER_BYTES = 64 * 1024
MAX_BODY_BYTES = 32 * 1024 * 1024  # the Messages API's own request limit: larger requests get its 413 there too
REQUEST_TIMEOUT = 10.0
SEND_TIMEOUT = 60.0
HISTORY = 1000
HISTORY_BYTES = 16 * 1024 * 1024

#: accept() failures that mean "out of descriptors or memory for now": wait and try again
_EXHAUSTED = {errno.EMFILE, errno.ENFILE, errno.ENOBUFS, errno.ENOMEM}
#: accept() failures that belong to one connection that died before it was taken: take the next
_ONE_CONNECTION = {errno.ECONNABORTED, errno.ECONNRESET, errno.EPROTO, errno.EINTR, errno.EAGAIN, errno.ETIMEDOUT}
#: accept() failures that mean the listener is gone (stop() closed it)
_LISTENER_GONE = {errno.EBADF, errno.EINVAL, errno.ENOTSOCK}
_BACKOFF_FIRST, _BACKOFF_MAX = 0.01, 1.0
_WARN_EVERY = 60.0  # the same stderr warning at most once a minute
#: after an error answer, how long to read and discard what the client still sends before closing,
#: so that the close does not reset the connection before the client has read the answer
_LINGER = 1.0
_MAX_REFUSING = 64  # 503 answers lingering at once (each holds a short-lived thread); beyond: answer and close
_RECV = 65536
_M_MMAP_THRESHOLD = -3  # glibc's malloc.h


class _Hangup(Exception):
    def __init__(self, reset: bool) -> None:
        super().__init__("reset" if reset else "fin")
        self.reset = reset


class ReplayServer:
    """Serves ``cassette`` on ``host:port`` (port 0: any free port) at ``speed`` (1: recorded timing).

    ``max_connections``, ``max_header_bytes``, ``max_body_bytes``, ``request_timeout``,
    ``send_timeout``, ``history`` and ``history_bytes`` bound what clients can make it hold (see the
    module's docstring). ``requests`` lists the most recent requests received, oldest first.
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
        request_timeout: float = REQUEST_TIMEOUT,
        send_timeout: float = SEND_TIMEOUT,
        history: int = HISTORY,
        history_bytes: int = HISTORY_BYTES,
        release_memory: bool = False,
        log: Callable[[str], None] | None = None,
        clock: Clock | None = None,
        refuse_seconds: float = REFUSE_SECONDS,
    ) -> None:
        from .faults import resolve

        _check_count("max_connections", max_connections, 1)
        _check_count("max_header_bytes", max_header_bytes, 1)
        _check_count("max_body_bytes", max_body_bytes, 0)
        _check_count("history", history, 0)
        _check_count("history_bytes", history_bytes, 0)
        _check_seconds("request_timeout", request_timeout)
        _check_seconds("send_timeout", send_timeout)
        _check_seconds("refuse_seconds", refuse_seconds)
        self.cassette = cassette
        #: called with one line per request: what it matched (or the 404), the faults, the outcome
        self.log = log
        self.speed = speed
        #: what pacing waits on: real time at speed 1, scaled at N, virtual (instant) at 0
        self.clock: Clock = clock if clock is not None else clock_for(speed)
        self.refuse_seconds = float(refuse_seconds)
        self.max_connections = max_connections
        self.max_header_bytes = max_header_bytes
        self.max_body_bytes = max_body_bytes
        self.request_timeout = float(request_timeout)
        self.send_timeout = float(send_timeout)
        self.history = history
        self.history_bytes = history_bytes
        #: the engine the in-process tape runs too: matching, the fault schedule, the call log
        self._session = ReplaySession(cassette.interactions, resolve_matchers(match_on), resolve(faults),
                                      where="the served cassette")  # fmt: skip
        self._lock = threading.RLock()
        self._closed_for_refusal = False  # the listener is closed: a refused attempt is due
        self._blackhole: _Blackhole | None = None  # ... or replaced by one that never completes a connection
        self._listening = threading.Event()
        self._stopping = threading.Event()
        self._threads: set[threading.Thread] = set()  # live threads only: each removes itself when done
        self._sockets: set[socket.socket] = set()  # connections being served (what max_connections counts)
        self._refusing: set[socket.socket] = set()  # connections being answered 503
        self._warned: dict[str, float] = {}
        self._kept: deque[int] = deque()  # the size of each request in ``requests``
        self._kept_bytes = 0
        self.requests: list[Request] = []
        self.request_count = 0  # every request received, including those ``requests`` no longer holds
        self.refused_count = 0  # connections answered 503: ``max_connections`` were open (or no thread to spare)
        self._full_answer = _answer(
            503,
            "overloaded_error",
            f"streamtape serve: {max_connections} connections are already open, the most it serves at once "
            f"(max_connections), so this one is refused; retry in a second.",
            retry=True,
        )
        self._busy_answer = _answer(
            503,
            "overloaded_error",
            "streamtape serve: it cannot start a thread for this connection now (out of memory or of threads), "
            "so it is refused; retry in a second.",
            retry=True,
        )
        if release_memory:
            _map_large_blocks()
        self._listener = socket.create_server((host, port), backlog=socket.SOMAXCONN)
        self._address: tuple[str, int] = self._listener.getsockname()[:2]
        self._listening.set()

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
        with self._lock:
            return len(self._sockets)

    def start(self) -> ReplayServer:
        self._spawn(self._accept_loop)
        self._check_refusal()
        return self

    def stop(self) -> None:
        """Stop accepting, cut every open connection, and wait for the threads."""
        self._stopping.set()
        self._listening.set()  # wakes an accept loop waiting for a refusal to pass
        self._close_listener()
        if self._blackhole is not None:
            self._blackhole.close()
        with self._lock:
            open_sockets = list(self._sockets | self._refusing)
        for sock in open_sockets:
            _close(sock, reset=False)
        deadline = time.monotonic() + 5
        while True:
            with self._lock:
                threads = [thread for thread in self._threads if thread is not threading.current_thread()]
            if not threads or time.monotonic() >= deadline:
                return
            for thread in threads:
                try:
                    thread.join(timeout=max(0.0, deadline - time.monotonic()))
                except RuntimeError:  # being started by _spawn this very moment
                    time.sleep(0.001)

    def __enter__(self) -> ReplayServer:
        return self.start()

    def __exit__(self, *exc_info: object) -> None:
        self.stop()

    def _spawn(self, target: Any, *args: Any) -> bool:
        """Run ``target`` in a new thread; False if the system cannot start one now."""
        thread = threading.Thread(target=self._run, args=(target, args), daemon=True, name="streamtape-serve")
        with self._lock:
            self._threads.add(thread)
        try:
            thread.start()
        except RuntimeError:  # "can't start new thread": out of memory or of the process's thread limit
            with self._lock:
                self._threads.discard(thread)
            return False
        return True

    def _run(self, target: Any, args: tuple[Any, ...]) -> None:
        try:
            target(*args)
        finally:
            with self._lock:
                self._threads.discard(threading.current_thread())

    def _warn(self, key: str, message: str) -> None:
        """One stderr line, at most once a minute for the same ``key``."""
        now = time.monotonic()
        with self._lock:
            if now - self._warned.get(key, -math.inf) < _WARN_EVERY:
                return
            self._warned[key] = now
        with contextlib.suppress(OSError, ValueError):
            print(message, file=sys.stderr, flush=True)

    def _accept(self) -> tuple[socket.socket, Any]:
        return self._listener.accept()

    def _pause(self, seconds: float) -> None:
        self._stopping.wait(seconds)

    def _close_listener(self) -> None:
        with contextlib.suppress(OSError):
            self._listener.shutdown(socket.SHUT_RDWR)  # wakes the blocked accept() on Linux
        self._listener.close()

    # --- refused connections: nothing listens while a refused attempt is due -------------------------

    def _check_refusal(self) -> None:
        """If the next counted attempt is to be refused, stop listening: for ``refuse_seconds``, or
        for good when every attempt from now on is refused."""
        with self._lock:
            if self._closed_for_refusal or self._stopping.is_set() or not self._session.refusal_due():
                return
            self._closed_for_refusal = True
            self._listening.clear()
            self._close_listener()
            if self._session.unconnected() == "connect_timeout":
                self._blackhole = _Blackhole(self._address)  # connections are never completed: they time out
            forever = self._session.refuses_forever()
        if forever:
            with self._lock:
                self._session.refused(self.base_url)
            return
        self._spawn(self._refuse_for_a_while)

    def _refuse_for_a_while(self) -> None:
        if self._stopping.wait(self.refuse_seconds):
            return
        with self._lock:
            self._session.refused(self.base_url)
            if self._blackhole is not None:
                self._blackhole.close()
                self._blackhole = None
            try:
                self._listener = socket.create_server(self._address, backlog=socket.SOMAXCONN)
            except OSError as exc:  # the port was taken meanwhile: nothing more can be served
                self._warn("relisten", f"streamtape serve: cannot listen on {self.base_url} again after a refused "
                                       f"connection ({exc.strerror or exc}); stopping")  # fmt: skip
                self._stopping.set()
                self._listening.set()
                return
            self._closed_for_refusal = False
            self._listening.set()
        self._check_refusal()

    def _accept_loop(self) -> None:
        delay = 0.0
        while not self._stopping.is_set():
            self._listening.wait()
            try:
                sock, _ = self._accept()
            except OSError as exc:
                if self._stopping.is_set():
                    return
                if exc.errno in _LISTENER_GONE:
                    with self._lock:
                        refusing = self._closed_for_refusal
                    if refusing:
                        continue  # closed for a refused attempt: wait for it to listen again
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
                delay = min(max(delay * 2, _BACKOFF_FIRST), _BACKOFF_MAX)
                self._pause(delay)
                continue
            delay = 0.0
            self._admit(sock)

    def _admit(self, sock: socket.socket) -> None:
        with self._lock:
            if self._stopping.is_set():
                full = None
            else:
                full = len(self._sockets) >= self.max_connections
                if not full:
                    self._sockets.add(sock)
        if full is None:
            _close(sock, reset=False)
        elif full:
            self._warn(
                "full",
                f"streamtape serve: {self.max_connections} connections open (max_connections, --max-connections); "
                "answering new ones 503 (Retry-After: 1) until some close",
            )
            self._refuse(sock, self._full_answer)
        elif not self._spawn(self._serve_connection, sock):
            with self._lock:
                self._sockets.discard(sock)
            self._warn("threads", "streamtape serve: cannot start a thread for a new connection; answering it 503")
            self._refuse(sock, self._busy_answer)

    def _refuse(self, sock: socket.socket, answer: bytes) -> None:
        """Answer 503 and close, lingering in a short-lived thread while there are few such answers."""
        with self._lock:
            self.refused_count += 1
            linger = not self._stopping.is_set() and len(self._refusing) < _MAX_REFUSING
            if linger:
                self._refusing.add(sock)
        if linger and self._spawn(self._refuse_connection, sock, answer):
            return
        with self._lock:
            self._refusing.discard(sock)
        with contextlib.suppress(OSError):  # no thread to linger in: answer, read what already came, close
            sock.setblocking(False)
            sock.send(answer)  # a few hundred bytes: a fresh socket's buffer takes them whole
            sock.shutdown(socket.SHUT_WR)
            while sock.recv(_RECV):
                pass
        _close(sock, reset=False)

    def _refuse_connection(self, sock: socket.socket, answer: bytes) -> None:
        try:
            sock.settimeout(_LINGER)
            sock.sendall(answer)
            _linger(sock, _LINGER)
        except OSError:
            pass
        finally:
            with self._lock:
                self._refusing.discard(sock)
            _close(sock, reset=False)

    def _serve_connection(self, sock: socket.socket) -> None:
        connection = h11.Connection(our_role=h11.SERVER, max_incomplete_event_size=self.max_header_bytes)
        reset = False
        try:
            while self._serve_one(sock, connection):
                connection.start_next_cycle()
        except _Hangup as hangup:
            reset = hangup.reset
        except TimeoutError:
            reset = True  # a client that stopped reading: drop what it never took at once
        except (OSError, h11.ProtocolError):
            pass  # the client went away or spoke broken HTTP: nothing more to say to it
        finally:
            with self._lock:
                self._sockets.discard(sock)
            _close(sock, reset)

    def _serve_one(self, sock: socket.socket, connection: h11.Connection) -> bool:
        request = self._read_request(sock, connection)
        if request is None:
            return False
        sock.settimeout(self.send_timeout)
        try:
            with self._lock:
                self._remember(request)
                try:
                    answer = self._session.answer(request)
                except StreamtapeError:
                    raise
                except Exception as exc:  # a matcher or fault of the user's, or a streamtape bug
                    raise HarnessError(f"{type(exc).__name__}: {exc}") from exc
                explanation = self._session.explain(request) if answer is None else []
                self._trim_calls()
        except StreamtapeError as exc:  # a harness mistake (a fault that cannot apply): say so, never retried
            message = f"streamtape serve: {request.method} {request.url}: {exc}"
            print(message, file=sys.stderr, flush=True)
            _send_error(sock, connection, 500, "api_error", message)
            return connection.our_state is h11.DONE and connection.their_state is h11.DONE
        if self.log is not None:
            outcome = "404, matches no interaction" if answer is None else f"#{answer.index}: {answer.call.outcome}"
            shaped = f" [{', '.join(answer.call.faults)}]" if answer is not None and answer.call.faults else ""
            target = request.url.split("://", 1)[-1].partition("/")[1:]  # the path and query: the host is ours
            self.log(f"{request.method} {''.join(target)} -> {outcome}{shaped}")
        if answer is None:
            _send_unmatched(sock, connection, request, explanation)
        else:
            try:
                self._play(sock, connection, answer.actions, request)
            except h11.LocalProtocolError as exc:  # the cassette holds what HTTP cannot carry
                self._warn("unsendable", f"streamtape serve: {request.method} {request.url}: cannot send the "
                                         f"recorded response ({exc}); closing the connection")  # fmt: skip
                return False
        self._check_refusal()
        if self._closed_for_refusal:
            return False  # a refused attempt is due: this connection must not carry it (FIN it now)
        return connection.our_state is h11.DONE and connection.their_state is h11.DONE

    def _trim_calls(self) -> None:
        """``calls`` is bounded as ``requests`` is: a call is kept while its request is (they hold the
        same request), and refused attempts (which hold no body) up to ``history``."""
        calls = self._session.calls
        if len(calls) <= len(self.requests):
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

    def _read_request(self, sock: socket.socket, connection: h11.Connection) -> Request | None:
        """The next whole request, or None once the connection has nothing more to do: the client
        closed it, was silent for ``request_timeout``, or was answered with an error (4xx)."""
        head: h11.Request | None = None
        body = bytearray()
        started = bool(connection.trailing_data[0])  # part of the next request already arrived
        deadline = time.monotonic() + self.request_timeout
        closed = False
        while True:
            try:
                event = connection.next_event()
            except h11.RemoteProtocolError as exc:
                if not closed:
                    self._refuse_request(sock, connection, exc)
                return None
            if event is h11.NEED_DATA:
                remaining = deadline - time.monotonic()
                try:
                    if remaining <= 0:
                        raise TimeoutError
                    sock.settimeout(remaining)
                    data = sock.recv(_RECV)
                except TimeoutError:
                    if started:
                        self._answer_and_close(
                            sock, connection, 408, "timeout_error",
                            f"streamtape serve: the request did not arrive whole within {self.request_timeout:g} s "
                            "(request_timeout), so the connection is closed.",
                        )  # fmt: skip
                    return None
                if data and not started:
                    started = True
                    deadline = time.monotonic() + self.request_timeout
                closed = not data
                connection.receive_data(data)
            elif isinstance(event, h11.Request):
                head = event
                size = len(event.method) + len(event.target) + sum(len(k) + len(v) + 4 for k, v in event.headers)
                if size > self.max_header_bytes:  # h11 bounds an incomplete head; a complete one is checked here
                    self._refuse_request(sock, connection, h11.RemoteProtocolError("head too large", 431))
                    return None
                length = next((int(v) for k, v in event.headers if k == b"content-length"), 0)
                if length > self.max_body_bytes:
                    self._too_large(sock, connection)
                    return None
                if connection.they_are_waiting_for_100_continue:  # curl, for bodies over 1 MiB
                    _send(sock, connection, h11.InformationalResponse(status_code=100, headers=[], reason="Continue"))
            elif isinstance(event, h11.Data):
                if len(body) + len(event.data) > self.max_body_bytes:
                    self._too_large(sock, connection)
                    return None
                body += event.data
            elif isinstance(event, h11.EndOfMessage) and head is not None:
                headers = tuple((k.decode("latin-1"), v.decode("latin-1")) for k, v in head.headers)
                host = next((v for k, v in headers if k == "host"), "localhost")
                url = f"http://{host}{head.target.decode('latin-1')}"
                return Request(head.method.decode("latin-1"), url, headers, bytes(body))
            else:
                return None

    def _refuse_request(self, sock: socket.socket, connection: h11.Connection, exc: h11.RemoteProtocolError) -> None:
        if exc.error_status_hint == 431:
            message = (f"streamtape serve: the request head (request line and headers) is larger than "
                       f"{self.max_header_bytes} bytes (max_header_bytes).")  # fmt: skip
            self._answer_and_close(sock, connection, 431, "request_too_large", message)
        else:
            detail = str(exc).split(": bytearray(", 1)[0].rstrip(".") or "unreadable"  # without the bytes: no echo
            message = f"streamtape serve: the request is not valid HTTP/1.1 ({detail})."
            self._answer_and_close(sock, connection, exc.error_status_hint, "invalid_request_error", message)

    def _too_large(self, sock: socket.socket, connection: h11.Connection) -> None:
        message = (f"streamtape serve: the request body is larger than {self.max_body_bytes} bytes "
                   "(max_body_bytes), so it was not read.")  # fmt: skip
        self._answer_and_close(sock, connection, 413, "request_too_large", message)

    def _answer_and_close(self, sock: socket.socket, connection: h11.Connection, status: int, kind: str,
                          message: str) -> None:  # fmt: skip
        """Answer an error (if nothing was answered yet), then half-close and linger briefly."""
        if connection.our_state not in (h11.IDLE, h11.SEND_RESPONSE):
            return
        try:
            sock.settimeout(min(_LINGER, self.send_timeout))
            _send_error(sock, connection, status, kind, message, close=True)
            _linger(sock, min(_LINGER, self.request_timeout))
        except (OSError, h11.ProtocolError):
            pass

    def _play(self, sock: socket.socket, connection: h11.Connection, actions: list[Action], request: Request) -> None:
        """Carry one playback out on the socket: the head, the body in its framing, then the end or
        the cut as ``CUTS`` says (FIN, RST, silence)."""
        playback = Playback(actions, read_timeout=None, instant=False)
        pacer = Pacer(self.clock)
        at, head = playback.head()
        self._wait(pacer, at)
        if not isinstance(head, Respond):
            raise self._hangup(sock, head, request)
        writer = _Writer(sock, connection, head, playback.framing)
        for at, item in playback.body():
            self._wait(pacer, at)
            if isinstance(item, bytes):
                writer.data(item)
            elif isinstance(item, Chunks):  # not produced when paced; carried all the same
                writer.data(item.data[: sum(size for _, size in item.timing)])
            elif item is None:
                writer.end()
                if playback.framing == "close":
                    raise _Hangup(reset=False)  # a close-delimited body ends with the connection
                return
            else:
                raise self._hangup(sock, item, request)

    def _wait(self, pacer: Pacer, at: float) -> None:
        delay = pacer.delay(at)
        if delay <= 0:
            return
        wall = self.clock.wall(delay)
        if wall <= 0:
            self.clock.sleep(delay)  # virtual time: it moves on, nobody waits
        elif self._stopping.wait(wall):
            raise _Hangup(reset=False)

    def _hangup(self, sock: socket.socket, outcome: Broken | Silent | Garbage, request: Request) -> _Hangup:
        """What the socket does for a cut, for bytes that are not HTTP, or for endless silence."""
        if isinstance(outcome, Garbage):
            sock.sendall(outcome.data)  # as they are, outside h11's framing: then the connection ends
            return _Hangup(reset=False)
        how = "silence" if isinstance(outcome, Silent) else CUTS[outcome.kind].socket
        if how == "local":
            assert isinstance(outcome, Broken)
            self._warn(f"local-{outcome.kind}", f"streamtape serve: {request.method} {request.url}: the recording ends "
                                                f"with {outcome.kind!r} ({CUTS[outcome.kind].before_headers}), which "
                                                "happens in the client, not on a socket; closing the connection")  # fmt: skip
        if how == "silence":
            self._silence(sock)
            return _Hangup(reset=False)
        # a refused attempt that arrived all the same (over a connection kept alive): reset it
        return _Hangup(reset=how in ("rst", "refuse"))

    def _silence(self, sock: socket.socket) -> None:
        """Send nothing until the client gives up (closes or resets) or the server stops: its own
        read timeout decides, as on a real network. What it sends meanwhile is read and dropped."""
        while not self._stopping.is_set():
            try:
                readable, _, _ = select.select([sock], [], [], 0.1)
                if readable and not sock.recv(_RECV):
                    return
            except (OSError, ValueError):
                return


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


class _Writer:
    """Writes one response in its recorded framing. h11 frames Content-Length and chunked bodies on
    the connection itself; a close-delimited body (which h11 only writes for an HTTP/1.0 peer) is
    framed by a second h11 connection that speaks to an HTTP/1.0 peer, after which the connection is
    closed, as the body's end."""

    def __init__(self, sock: socket.socket, connection: h11.Connection, head: Respond, framing: str) -> None:
        self.sock = sock
        headers = [(k, v) for k, v in head.headers if k.lower() not in _HOP_BY_HOP]
        if framing == "close":
            headers = [(k, v) for k, v in headers if k.lower() != "content-length"]
            connection = h11.Connection(our_role=h11.SERVER)
            connection.receive_data(b"GET / HTTP/1.0\r\n\r\n")
            connection.next_event(), connection.next_event()  # the stand-in request and its end
        self.connection = connection
        _send(sock, connection, h11.Response(status_code=head.status, headers=headers, reason=head.reason))

    def data(self, data: bytes) -> None:
        if data:
            _send(self.sock, self.connection, h11.Data(data=data))

    def end(self) -> None:
        _send(self.sock, self.connection, h11.EndOfMessage())


def _check_count(name: str, value: Any, least: int) -> None:
    if isinstance(value, bool) or not isinstance(value, int) or value < least:
        raise ConfigError(f"ReplayServer {name}={value!r}: give a whole number, at least {least}")


def _check_seconds(name: str, value: Any) -> None:
    if isinstance(value, bool) or not isinstance(value, int | float) or not 0 < value < math.inf:
        raise ConfigError(f"ReplayServer {name}={value!r}: give a number of seconds above 0")


def _map_large_blocks() -> None:
    """On glibc, give every allocation of 1 MiB or more its own mapping, returned to the system when
    freed. By default glibc raises that threshold as large blocks are freed, so request bodies then
    land in per-thread arenas that keep the memory (measured: 28 -> 345 MB idle after two rounds of
    three 30 MiB bodies). Process-wide, so opt-in: ``streamtape serve`` runs in its own process."""
    import ctypes

    try:
        mallopt = ctypes.CDLL(None).mallopt
    except (OSError, AttributeError):  # not glibc (macOS, Windows): nothing to do
        return
    mallopt(_M_MMAP_THRESHOLD, 1 << 20)


def _size(request: Request) -> int:
    """What holding ``request`` costs, roughly: its body, URL and headers."""
    return len(request.body) + len(request.url) + sum(len(k) + len(v) for k, v in request.headers)


def _send_unmatched(sock: socket.socket, connection: h11.Connection, request: Request, lines: list[str]) -> None:
    """A 404 in the provider's shape that SDKs do not retry, saying what came closest."""
    message = " ".join([f"streamtape serve: no recorded interaction matches {request.method} {request.url}.", *lines])
    _send_error(sock, connection, 404, "not_found_error", message)


def _error_events(status: int, kind: str, message: str, *, retry: bool = False, close: bool = False) -> list[Any]:
    """streamtape's own answer (a refusal, an unmatched request, a harness error), as the provider's
    error response (``x-should-retry`` says whether SDKs retry it), as h11 events."""
    from .providers import error_response

    headers, body = error_response(status, kind, message, retry=retry, close=close)
    try:
        reason = HTTPStatus(status).phrase
    except ValueError:
        reason = ""
    return [h11.Response(status_code=status, headers=list(headers), reason=reason), h11.Data(data=body),
            h11.EndOfMessage()]  # fmt: skip


def _send_error(sock: socket.socket, connection: h11.Connection, status: int, kind: str, message: str, *,
                close: bool = False) -> None:  # fmt: skip
    """streamtape's own error response, in the provider's shape, that SDKs do not retry (``x-should-retry: false``)."""
    for event in _error_events(status, kind, message, close=close):
        _send(sock, connection, event)


def _answer(status: int, kind: str, message: str, *, retry: bool) -> bytes:
    """A whole error response, formatted by h11, for a connection that is answered before being read."""
    connection = h11.Connection(our_role=h11.SERVER)
    return b"".join(connection.send(event) or b"" for event in _error_events(status, kind, message, retry=retry,
                                                                            close=True))  # fmt: skip


def _send(sock: socket.socket, connection: h11.Connection, event: Any) -> None:
    data = connection.send(event)
    if data:
        sock.sendall(data)


def _linger(sock: socket.socket, seconds: float) -> None:
    """Half-close (FIN), then read and discard what the client still sends until it closes too or
    ``seconds`` pass: closing with unread data would send an RST, which can destroy the answer
    before the client reads it."""
    with contextlib.suppress(OSError):
        sock.shutdown(socket.SHUT_WR)
        deadline = time.monotonic() + seconds
        while (remaining := deadline - time.monotonic()) > 0:
            sock.settimeout(remaining)
            if not sock.recv(_RECV):
                return


def _close(sock: socket.socket, reset: bool) -> None:
    try:
        if reset:
            sock.setsockopt(socket.SOL_SOCKET, socket.SO_LINGER, struct.pack("ii", 1, 0))
        else:
            sock.shutdown(socket.SHUT_RDWR)
    except OSError:
        pass
    sock.close()
