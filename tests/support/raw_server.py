"""A TCP server on 127.0.0.1 that reads an HTTP request and then never answers it properly.

`RawServer` is for failures *before* the response headers, the ones an HTTP server library cannot
produce: it accepts a connection, reads one request (the head up to the blank line, then
``Content-Length`` bytes of body), and then, as ``mode`` says:

- ``"fin"``: closes cleanly (shutdown + close: a FIN) without sending a byte;
- ``"rst"``: aborts (SO_LINGER 1, 0 then close: an RST) without sending a byte;
- ``"silence"``: sends nothing and keeps the connection open until the client gives up or the
  server stops.

It never speaks HTTP (it only finds the end of the request), so nothing here can be mistaken for a
response. `connections` counts accepted connections and `requests` the requests read in full (one
per connection, since no connection outlives its first request)::

    with RawServer("fin") as server:
        ...  # the client sees "Server disconnected without sending a response."
        assert server.connections == 3  # the SDK's first attempt and two retries
"""

from __future__ import annotations

import selectors
import socket
import struct
import threading
from collections.abc import Iterator
from contextlib import contextmanager, suppress
from typing import Literal, get_args

__all__ = ["Mode", "RawServer", "blackholed_port", "closed_port"]

Mode = Literal["fin", "rst", "silence"]

_RECV_SIZE = 65536
_POLL_SECONDS = 0.05
_JOIN_SECONDS = 5.0
_MAX_HEAD = 1 << 20


class RawServer:
    """Accepts connections on 127.0.0.1 (ephemeral port); each gets the same misbehaviour."""

    def __init__(self, mode: Mode) -> None:
        if mode not in get_args(Mode):
            raise ValueError(f"mode must be one of {get_args(Mode)}, not {mode!r}")
        self.mode = mode
        self._lock = threading.Lock()
        self._stopping = threading.Event()
        self._connections = 0
        self._requests: list[bytes] = []
        self._threads: list[threading.Thread] = []
        self._listener: socket.socket | None = None
        self._acceptor: threading.Thread | None = None
        self._port: int | None = None

    def __enter__(self) -> RawServer:
        return self.start()

    def __exit__(self, *exc_info: object) -> None:
        self.stop()

    def start(self) -> RawServer:
        if self._listener is not None:
            raise RuntimeError("RawServer already started")
        listener = socket.create_server(("127.0.0.1", 0), backlog=16)
        listener.settimeout(_POLL_SECONDS)
        self._listener = listener
        self._port = int(listener.getsockname()[1])
        self._acceptor = threading.Thread(target=self._accept_loop, name=f"raw-server-{self._port}", daemon=True)
        self._acceptor.start()
        return self

    def stop(self) -> None:
        """Stop accepting, end every connection, join every thread (idempotent)."""
        self._stopping.set()
        if self._acceptor is not None:
            self._acceptor.join(_JOIN_SECONDS)
        with self._lock:
            threads = list(self._threads)
        for thread in threads:
            thread.join(_JOIN_SECONDS)
        if self._listener is not None:
            self._listener.close()

    @property
    def port(self) -> int:
        if self._port is None:
            raise RuntimeError("RawServer not started")
        return self._port

    @property
    def base_url(self) -> str:
        return f"http://127.0.0.1:{self.port}"

    @property
    def connections(self) -> int:
        """Connections accepted so far."""
        with self._lock:
            return self._connections

    @property
    def requests(self) -> list[bytes]:
        """The raw requests (head and body) read in full so far, in arrival order."""
        with self._lock:
            return list(self._requests)

    # -- internals ---------------------------------------------------------

    def _accept_loop(self) -> None:
        assert self._listener is not None
        while not self._stopping.is_set():
            try:
                sock, _ = self._listener.accept()
            except TimeoutError:
                continue
            except OSError:
                return
            thread = threading.Thread(target=self._serve, args=(sock,), daemon=True)
            with self._lock:
                self._connections += 1
                self._threads.append(thread)
            thread.start()

    def _serve(self, sock: socket.socket) -> None:
        reset = self.mode == "rst"
        try:
            sock.settimeout(_POLL_SECONDS)
            request = self._read_request(sock)
            if request is None:
                return
            with self._lock:
                self._requests.append(request)
            if self.mode == "silence":
                self._wait_for_close(sock)
        except OSError:
            pass
        finally:
            _close(sock, reset)

    def _read_request(self, sock: socket.socket) -> bytes | None:
        """One request's bytes: the head up to the blank line and ``Content-Length`` more."""
        data = b""
        while b"\r\n\r\n" not in data:
            chunk = self._recv(sock)
            if not chunk or len(data) > _MAX_HEAD:
                return None
            data += chunk
        head, _, body = data.partition(b"\r\n\r\n")
        length = _content_length(head)
        while len(body) < length:
            chunk = self._recv(sock)
            if not chunk:
                return None
            body += chunk
        return head + b"\r\n\r\n" + body

    def _recv(self, sock: socket.socket) -> bytes:
        while not self._stopping.is_set():
            try:
                return sock.recv(_RECV_SIZE)
            except TimeoutError:
                continue
        return b""

    def _wait_for_close(self, sock: socket.socket) -> None:
        """Say nothing until the client closes (recv returns b"") or the server stops."""
        with selectors.DefaultSelector() as selector:
            selector.register(sock, selectors.EVENT_READ)
            while not self._stopping.is_set():
                if selector.select(_POLL_SECONDS) and not sock.recv(_RECV_SIZE):
                    return


def _content_length(head: bytes) -> int:
    for line in head.split(b"\r\n")[1:]:
        name, _, value = line.partition(b":")
        if name.strip().lower() == b"content-length":
            return int(value.strip())
    return 0


def _close(sock: socket.socket, reset: bool) -> None:
    """FIN (shutdown + close) or, if `reset`, RST (SO_LINGER 1, 0 then close)."""
    if reset:
        with suppress(OSError):
            sock.setsockopt(socket.SOL_SOCKET, socket.SO_LINGER, struct.pack("ii", 1, 0))
    else:
        with suppress(OSError):
            sock.shutdown(socket.SHUT_RDWR)
    sock.close()


def closed_port() -> int:
    """A port on 127.0.0.1 that nothing listens on (bound, then closed): connecting is refused."""
    with socket.create_server(("127.0.0.1", 0)) as listener:
        return int(listener.getsockname()[1])


@contextmanager
def blackholed_port() -> Iterator[int]:
    """A port on 127.0.0.1 whose listener completes no connection: its accept queue (backlog 0, one
    place) is filled and never accepted, so the kernel drops every other SYN and a client's connect
    times out, as against an overwhelmed server or a firewall that drops packets."""
    listener = socket.create_server(("127.0.0.1", 0), backlog=0)
    fillers = []
    try:
        for _ in range(2):
            filler = socket.socket(socket.AF_INET, socket.SOCK_STREAM)
            filler.setblocking(False)
            filler.connect_ex(listener.getsockname())
            fillers.append(filler)
        yield int(listener.getsockname()[1])
    finally:
        for sock in (*fillers, listener):
            sock.close()
