"""The socket executor: plays a cassette's interactions over a real HTTP/1.1 socket.

Any client (the SDK with ``base_url=server.base_url``, curl, another language) meets the recorded
stream at recorded timing, and its failures as real socket events: a ``Cut`` by FIN becomes a true
``shutdown``, a reset an RST (``SO_LINGER`` 0), a read timeout silence. HTTP framing is h11's; this
module never formats HTTP itself. One thread per connection; binds to 127.0.0.1 unless told.

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

Every refusal is an Anthropic-shaped JSON error whose message is one sentence; no input from a
client produces a traceback.
"""

from __future__ import annotations

import contextlib
import errno
import json
import math
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
from .errors import ConfigError, StreamtapeError
from .matching import Matcher, Player, resolve_matchers
from .wire import Action, Cut, End, Respond, Send, Stall, describe, expand

__all__ = ["ReplayServer"]

_HOP_BY_HOP = {"connection", "content-length", "transfer-encoding", "keep-alive", "content-encoding"}
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
    ) -> None:
        from .faults import resolve

        _check_count("max_connections", max_connections, 1)
        _check_count("max_header_bytes", max_header_bytes, 1)
        _check_count("max_body_bytes", max_body_bytes, 0)
        _check_count("history", history, 0)
        _check_count("history_bytes", history_bytes, 0)
        _check_seconds("request_timeout", request_timeout)
        _check_seconds("send_timeout", send_timeout)
        self.cassette = cassette
        #: called with one line per request: what it matched (or the 404), the faults, the outcome
        self.log = log
        self.speed = speed
        self.schedule = resolve(faults)
        self.max_connections = max_connections
        self.max_header_bytes = max_header_bytes
        self.max_body_bytes = max_body_bytes
        self.request_timeout = float(request_timeout)
        self.send_timeout = float(send_timeout)
        self.history = history
        self.history_bytes = history_bytes
        self._faulted = 0
        self._player = Player(cassette.interactions, resolve_matchers(match_on))
        self._lock = threading.Lock()
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

    @property
    def port(self) -> int:
        return int(self._listener.getsockname()[1])

    @property
    def base_url(self) -> str:
        host = self._listener.getsockname()[0]
        return f"http://{host}:{self.port}"

    @property
    def connections(self) -> int:
        """How many connections are open and being served (what ``max_connections`` caps)."""
        with self._lock:
            return len(self._sockets)

    def start(self) -> ReplayServer:
        self._spawn(self._accept_loop)
        return self

    def stop(self) -> None:
        """Stop accepting, cut every open connection, and wait for the threads."""
        self._stopping.set()
        with contextlib.suppress(OSError):
            self._listener.shutdown(socket.SHUT_RDWR)  # wakes the blocked accept() on Linux
        self._listener.close()
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

    def _accept_loop(self) -> None:
        delay = 0.0
        while not self._stopping.is_set():
            try:
                sock, _ = self._accept()
            except OSError as exc:
                if self._stopping.is_set() or exc.errno in _LISTENER_GONE:
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
                index = self._player.choose(request)
                explanation = self._player.explain(request) if index is None else []
                actions, faults = self._actions(request, index) if index is not None else ([], ())
        except StreamtapeError as exc:  # a harness mistake (a fault that cannot apply): say so, never retried
            message = f"streamtape serve: {request.method} {request.url}: {exc}"
            print(message, file=sys.stderr, flush=True)
            _send_error(sock, connection, 500, "api_error", message)
            return connection.our_state is h11.DONE and connection.their_state is h11.DONE
        if self.log is not None:
            answer = "404, matches no interaction" if index is None else f"#{index}: {describe(actions)}"
            shaped = f" [{', '.join(f.spec() for f in faults)}]" if faults else ""
            target = request.url.split("://", 1)[-1].partition("/")[1:]  # the path and query: the host is ours
            self.log(f"{request.method} {''.join(target)} -> {answer}{shaped}")
        if index is None:
            _send_unmatched(sock, connection, request, explanation)
        else:
            try:
                self._play(sock, connection, actions)
            except h11.LocalProtocolError as exc:  # the cassette holds what HTTP cannot carry
                self._warn("unsendable", f"streamtape serve: {request.method} {request.url}: cannot send the "
                                         f"recorded response ({exc}); closing the connection")  # fmt: skip
                return False
        return connection.our_state is h11.DONE and connection.their_state is h11.DONE

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

    def _actions(self, request: Request, index: int) -> tuple[list[Action], tuple[Any, ...]]:
        """The interaction's actions, reshaped by this request's faults (the tape's rules), and the faults."""
        from .faults import Context, apply

        actions = self.cassette.interactions[index].actions()
        if self.schedule is None or not self.schedule.applies_to(request.method, request.url):
            return actions, ()
        faults = self.schedule.faults_for(self._faulted)
        self._faulted += 1
        return apply(faults, actions, Context(number=self.request_count)), faults

    def _play(self, sock: socket.socket, connection: h11.Connection, actions: list[Action]) -> None:
        start = time.monotonic()
        for action in expand(actions):
            self._wait_until(start, action.at)
            _perform(sock, connection, action, self._stopping)

    def _wait_until(self, start: float, at: float) -> None:
        if self.speed > 0:
            delay = start + at / self.speed - time.monotonic()
            if delay > 0 and self._stopping.wait(delay):
                raise _Hangup(reset=False)


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


def _perform(sock: socket.socket, connection: h11.Connection, action: Action, stopping: threading.Event) -> None:
    if isinstance(action, Respond):
        headers = [(k, v) for k, v in action.headers if k.lower() not in _HOP_BY_HOP]
        _send(sock, connection, h11.Response(status_code=action.status, headers=headers, reason=action.reason))
    elif isinstance(action, Send):
        _send(sock, connection, h11.Data(data=action.data))
    elif isinstance(action, End):
        _send(sock, connection, h11.EndOfMessage())
    elif _silent_forever(action):
        stopping.wait()  # silence: the client's read timeout decides what happens
        raise _Hangup(reset=False)
    elif isinstance(action, Cut):
        # a reset is an RST; everything else the peer would see as the connection closing (FIN)
        raise _Hangup(reset=action.error in ("ReadError", "ConnectError"))


def _silent_forever(action: Action) -> bool:
    if isinstance(action, Stall):
        return action.seconds is None  # a finite stall is the gap before the next action's time
    return isinstance(action, Cut) and action.error == "ReadTimeout"


def _send_unmatched(sock: socket.socket, connection: h11.Connection, request: Request, lines: list[str]) -> None:
    """An Anthropic-shaped 404 that SDKs do not retry, saying what came closest."""
    message = " ".join([f"streamtape serve: no recorded interaction matches {request.method} {request.url}.", *lines])
    _send_error(sock, connection, 404, "not_found_error", message)


def _error_events(status: int, kind: str, message: str, *, retry: bool = False, close: bool = False) -> list[Any]:
    """An Anthropic-shaped error response, as h11 events: ``x-should-retry`` says whether SDKs retry it."""
    body = json.dumps({"type": "error", "error": {"type": kind, "message": message}}).encode()
    headers = [("content-type", "application/json"), ("content-length", str(len(body)))]
    headers.append(("x-should-retry", "true" if retry else "false"))
    if retry:
        headers.append(("retry-after", "1"))
    if close:
        headers.append(("connection", "close"))
    try:
        reason = HTTPStatus(status).phrase
    except ValueError:
        reason = ""
    return [h11.Response(status_code=status, headers=headers, reason=reason), h11.Data(data=body), h11.EndOfMessage()]


def _send_error(sock: socket.socket, connection: h11.Connection, status: int, kind: str, message: str, *,
                close: bool = False) -> None:  # fmt: skip
    """An Anthropic-shaped error response that SDKs do not retry (``x-should-retry: false``)."""
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
