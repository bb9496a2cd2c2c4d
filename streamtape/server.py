"""The socket executor: plays a cassette's interactions over a real HTTP/1.1 socket.

Any client (the SDK with ``base_url=server.base_url``, curl, another language) meets the recorded
stream at recorded timing, and its failures as real socket events: a ``Cut`` by FIN becomes a true
``shutdown``, a reset an RST (``SO_LINGER`` 0), a read timeout silence. HTTP framing is h11's; this
module never formats HTTP itself. One thread per connection; binds to 127.0.0.1 unless told.
"""

from __future__ import annotations

import contextlib
import socket
import struct
import sys
import threading
import time
from collections.abc import Sequence
from typing import Any

import h11

from .cassette import Cassette, Request
from .errors import StreamtapeError
from .matching import Matcher, Player, resolve_matchers
from .wire import Action, Cut, End, Respond, Send, Stall, expand

__all__ = ["ReplayServer"]

_HOP_BY_HOP = {"connection", "content-length", "transfer-encoding", "keep-alive", "content-encoding"}
_SERVER_MATCH_ON = ("method", "path", "query", "body")  # the host is the server's own, never the recorded one


class _Hangup(Exception):
    def __init__(self, reset: bool) -> None:
        super().__init__("reset" if reset else "fin")
        self.reset = reset


class ReplayServer:
    """Serves ``cassette`` on ``host:port`` (port 0: any free port) at ``speed`` (1: recorded timing)."""

    def __init__(
        self,
        cassette: Cassette,
        *,
        host: str = "127.0.0.1",
        port: int = 0,
        speed: float = 1.0,
        match_on: Sequence[str | Matcher] = _SERVER_MATCH_ON,
        faults: Any = None,
    ) -> None:
        from .faults import resolve

        self.cassette = cassette
        self.speed = speed
        self.schedule = resolve(faults)
        self._faulted = 0
        self._player = Player(cassette.interactions, resolve_matchers(match_on))
        self._lock = threading.Lock()
        self._stopping = threading.Event()
        self._listener = socket.create_server((host, port))
        self._threads: list[threading.Thread] = []
        self._sockets: set[socket.socket] = set()
        self.requests: list[Request] = []

    @property
    def port(self) -> int:
        return int(self._listener.getsockname()[1])

    @property
    def base_url(self) -> str:
        host = self._listener.getsockname()[0]
        return f"http://{host}:{self.port}"

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
            for sock in list(self._sockets):
                _close(sock, reset=False)
        for thread in list(self._threads):
            if thread is not threading.current_thread():
                thread.join(timeout=5)

    def __enter__(self) -> ReplayServer:
        return self.start()

    def __exit__(self, *exc_info: object) -> None:
        self.stop()

    def _spawn(self, target: Any, *args: Any) -> None:
        thread = threading.Thread(target=target, args=args, daemon=True, name="streamtape-serve")
        self._threads.append(thread)
        thread.start()

    def _accept_loop(self) -> None:
        while not self._stopping.is_set():
            try:
                sock, _ = self._listener.accept()
            except OSError:
                return
            with self._lock:
                self._sockets.add(sock)
            self._spawn(self._serve_connection, sock)

    def _serve_connection(self, sock: socket.socket) -> None:
        connection = h11.Connection(our_role=h11.SERVER)
        reset = False
        try:
            while self._serve_one(sock, connection):
                connection.start_next_cycle()
        except _Hangup as hangup:
            reset = hangup.reset
        except (OSError, h11.ProtocolError):
            pass  # the client went away or spoke broken HTTP: nothing more to say to it
        finally:
            with self._lock:
                self._sockets.discard(sock)
            _close(sock, reset)

    def _serve_one(self, sock: socket.socket, connection: h11.Connection) -> bool:
        request = _read_request(sock, connection)
        if request is None:
            return False
        try:
            with self._lock:
                self.requests.append(request)
                index = self._player.choose(request)
                explanation = self._player.explain(request) if index is None else []
                actions = self._actions(request, index) if index is not None else []
        except StreamtapeError as exc:  # a harness mistake (a fault that cannot apply): say so, never retried
            message = f"streamtape serve: {request.method} {request.url}: {exc}"
            print(message, file=sys.stderr, flush=True)
            _send_error(sock, connection, 500, "api_error", message)
            return connection.our_state is h11.DONE and connection.their_state is h11.DONE
        if index is None:
            _send_unmatched(sock, connection, request, explanation)
        else:
            self._play(sock, connection, actions)
        return connection.our_state is h11.DONE and connection.their_state is h11.DONE

    def _actions(self, request: Request, index: int) -> list[Action]:
        """The interaction's actions, reshaped by this request's faults (the tape's rules)."""
        from .faults import Context, apply

        actions = self.cassette.interactions[index].actions()
        if self.schedule is None or not self.schedule.applies_to(request.method, request.url):
            return actions
        faults = self.schedule.faults_for(self._faulted)
        self._faulted += 1
        return apply(faults, actions, Context(number=len(self.requests)))

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


def _read_request(sock: socket.socket, connection: h11.Connection) -> Request | None:
    head: h11.Request | None = None
    body = bytearray()
    while True:
        event = connection.next_event()
        if event is h11.NEED_DATA:
            connection.receive_data(sock.recv(65536))
        elif isinstance(event, h11.Request):
            head = event
        elif isinstance(event, h11.Data):
            body += event.data
        elif isinstance(event, h11.EndOfMessage) and head is not None:
            headers = tuple((k.decode("latin-1"), v.decode("latin-1")) for k, v in head.headers)
            host = next((v for k, v in headers if k == "host"), "localhost")
            url = f"http://{host}{head.target.decode('latin-1')}"
            return Request(head.method.decode("ascii"), url, headers, bytes(body))
        else:
            return None


def _send_unmatched(sock: socket.socket, connection: h11.Connection, request: Request, lines: list[str]) -> None:
    """An Anthropic-shaped 404 that SDKs do not retry, saying what came closest."""
    message = " ".join([f"streamtape serve: no recorded interaction matches {request.method} {request.url}.", *lines])
    _send_error(sock, connection, 404, "not_found_error", message)


def _send_error(sock: socket.socket, connection: h11.Connection, status: int, kind: str, message: str) -> None:
    """An Anthropic-shaped error response that SDKs do not retry (``x-should-retry: false``)."""
    import json

    body = json.dumps({"type": "error", "error": {"type": kind, "message": message}}).encode()
    headers = [("content-type", "application/json"), ("content-length", str(len(body))), ("x-should-retry", "false")]
    _send(sock, connection, h11.Response(status_code=status, headers=headers))
    _send(sock, connection, h11.Data(data=body))
    _send(sock, connection, h11.EndOfMessage())


def _send(sock: socket.socket, connection: h11.Connection, event: Any) -> None:
    data = connection.send(event)
    if data:
        sock.sendall(data)


def _close(sock: socket.socket, reset: bool) -> None:
    try:
        if reset:
            sock.setsockopt(socket.SOL_SOCKET, socket.SO_LINGER, struct.pack("ii", 1, 0))
        else:
            sock.shutdown(socket.SHUT_RDWR)
    except OSError:
        pass
    sock.close()
