"""A real HTTP/1.1 server that replays Anthropic streaming responses.

`WireServer` listens on 127.0.0.1 (ephemeral port) over real TCP sockets and
answers each request with the next queued `Reply`. HTTP/1.1 parsing and
framing are done by `h11`; this module never parses or formats HTTP itself.
A `Reply` controls the wire behaviour: framing (chunked, Content-Length, or
close-delimited), gzip, and faults (clean FIN, RST, stall, and per-piece
gating so that a test can prove that a client passes chunks through live).

Typical use::

    with WireServer() as server:
        server.queue(transcript("text_basic"))
        client = anthropic.Anthropic(base_url=server.base_url, api_key="test")
        ...
        assert server.requests[0].path == "/v1/messages"

The corpus in `DATA_DIR` is a copy of the project's reference transcripts
(see tests/data/sse/SOURCES.md). `transcript()` and `error_reply()` turn a
recorded response into a `Reply`.
"""

from __future__ import annotations

import itertools
import json
import re
import selectors
import socket
import struct
import sys
import threading
import time
import zlib
from collections import deque
from contextlib import suppress
from dataclasses import dataclass, field
from http import HTTPStatus
from pathlib import Path
from typing import Any, Literal, get_args

import h11

__all__ = [
    "DATA_DIR",
    "GATE_TIMEOUT",
    "Framing",
    "ReceivedRequest",
    "Reply",
    "WireServer",
    "error_reply",
    "list_error_bodies",
    "list_transcripts",
    "split_events",
    "transcript",
    "wire_pieces",
]

DATA_DIR: Path = Path(__file__).resolve().parent.parent / "data" / "sse"
"""The copied reference corpus: `*.sse`, `*.headers.json`, `*.body.json`."""

GATE_TIMEOUT: float = 10.0
"""Default `Reply.gate_timeout`: seconds to wait for a gate before an RST."""

Framing = Literal["chunked", "content-length", "close"]

_UNPARSEABLE_TRANSCRIPTS = frozenset({"doc_web_search_abbreviated"})
# Headers the server owns: it sets them from `Reply.framing` / `Reply.gzip`.
_SERVER_OWNED_HEADERS = frozenset(
    {
        "transfer-encoding",
        "content-length",
        "content-encoding",
        "connection",
        "keep-alive",
    }
)
_SSE_HEADERS = (("content-type", "text/event-stream; charset=utf-8"),)
_JSON_HEADERS = (("content-type", "application/json"),)
_RECV_SIZE = 65536
_POLL_SECONDS = 0.05
_JOIN_SECONDS = 5.0


@dataclass
class Reply:
    """One HTTP response, as the server should put it on the wire.

    `events` is the (uncompressed) body split into pieces; each piece is sent
    with its own write (one HTTP chunk under chunked framing). With
    `gzip=True` the body goes through one streaming gzip compressor that is
    sync-flushed after every piece, so each piece still becomes one write.

    Fault injection, all counted in pieces already sent:
    `fin_after` closes cleanly (FIN) without finishing the body, `rst_after`
    aborts with RST, `stall_after` pauses `stall_seconds` then continues.
    `gate[k-1]` must be set before piece k is sent (k >= 1), or before the
    fault/ending that follows piece k-1 when `gate` is that long. If a gate
    stays unset for `gate_timeout` seconds the server aborts the connection
    with RST and records the failure in `WireServer.errors`.

    Timing: `head_delay` is a pause (seconds) before the status line;
    `piece_delay` a pause before every piece, the first included (a slow
    but steady server); `piece_delays[k]`, when given, the pause before
    piece k instead (missing entries: `piece_delay`), and an extra last
    entry the pause before the body's end (or the fault due there). A
    pause comes before the gate and the fault due at that position.

    `before_head` ends the connection after reading the request, before
    any response byte: "fin" (clean close) or "rst" (reset).

    `reason` is the status line's phrase (default: the standard one).
    `sent_at` is cleared and then filled by the server with
    `time.monotonic()` after each piece is written. It describes the most
    recent serving, so give each concurrent request its own `Reply`.
    """

    status: int = 200
    headers: list[tuple[str, str]] = field(default_factory=list)
    events: list[bytes] = field(default_factory=list)
    framing: Framing = "chunked"
    gzip: bool = False
    fin_after: int | None = None
    rst_after: int | None = None
    stall_after: int | None = None
    stall_seconds: float = 0.0
    gate: list[threading.Event] | None = None
    gate_timeout: float = GATE_TIMEOUT
    reason: str | None = None
    sent_at: list[float] = field(default_factory=list)
    piece_delay: float = 0.0
    piece_delays: list[float] | None = None
    head_delay: float = 0.0
    before_head: Literal["fin", "rst"] | None = None
    #: bytes written to the socket as they are, outside HTTP framing, then a FIN: instead of the
    #: status line (``raw_after=-1``), or after ``raw_after`` body pieces (a bad chunk header)
    raw: bytes = b""
    raw_after: int | None = None
    #: a Content-Encoding sent as is, the pieces being encoded already (by the caller, damaged or not)
    content_encoding: str | None = None

    def __post_init__(self) -> None:
        if self.framing not in get_args(Framing):
            raise ValueError(f"framing must be one of {get_args(Framing)}, not {self.framing!r}")
        if self.fin_after is not None and self.rst_after is not None:
            raise ValueError("fin_after and rst_after are mutually exclusive")
        if self.before_head not in (None, "fin", "rst"):
            raise ValueError(f"before_head must be 'fin', 'rst' or None, not {self.before_head!r}")

    @property
    def body(self) -> bytes:
        """The whole uncompressed body."""
        return b"".join(self.events)

    def status_phrase(self) -> str:
        """The reason phrase to send: `reason`, else the standard phrase, else empty."""
        if self.reason is not None:
            return self.reason
        try:
            return HTTPStatus(self.status).phrase
        except ValueError:
            return ""


@dataclass(frozen=True)
class ReceivedRequest:
    """A request as the server received it.

    Header names are lower-cased (h11 normalises them); values are decoded
    as latin-1. `connection_id` numbers TCP connections from 1 in accept
    order, so keep-alive reuse is visible.
    """

    method: str
    path: str
    headers: list[tuple[str, str]]
    body: bytes
    connection_id: int = 0

    def header(self, name: str) -> str | None:
        """The first value of header `name` (case-insensitive), or None."""
        wanted = name.lower()
        return next((value for key, value in self.headers if key == wanted), None)

    def json(self) -> Any:
        """The body parsed as JSON."""
        return json.loads(self.body)


class WireServer:
    """A threaded HTTP/1.1 server on 127.0.0.1 that serves queued `Reply`s.

    One daemon thread accepts connections; each connection gets its own
    daemon thread and supports keep-alive. `stop()` (or leaving the `with`
    block) closes the listener and every connection and joins all threads.
    """

    def __init__(self) -> None:
        self._lock = threading.Lock()
        self._stopping = threading.Event()
        self._pending: deque[Reply] = deque()
        self._last: Reply | None = None
        self._requests: list[ReceivedRequest] = []
        self._errors: list[str] = []
        self._connections: set[socket.socket] = set()
        self._threads: list[threading.Thread] = []
        self._connection_ids = itertools.count(1)
        self._listener: socket.socket | None = None
        self._wakeup: tuple[socket.socket, socket.socket] | None = None
        self._acceptor: threading.Thread | None = None
        self._port: int | None = None

    # -- lifecycle ---------------------------------------------------------

    def __enter__(self) -> WireServer:
        return self.start()

    def __exit__(self, *exc_info: object) -> None:
        self.stop()

    def start(self) -> WireServer:
        """Bind 127.0.0.1:0, start the accept thread, and return self."""
        if self._listener is not None:
            raise RuntimeError("WireServer already started")
        listener = socket.create_server(("127.0.0.1", 0), backlog=64)
        listener.setblocking(False)
        self._listener = listener
        self._port = int(listener.getsockname()[1])
        self._wakeup = socket.socketpair()
        self._acceptor = threading.Thread(
            target=self._accept_loop,
            name=f"wire-server-{self.port}-accept",
            daemon=True,
        )
        self._acceptor.start()
        return self

    def stop(self) -> None:
        """Stop accepting, close every socket, and join every thread (idempotent)."""
        with self._lock:
            if self._stopping.is_set():
                return
            self._stopping.set()
        if self._acceptor is None:
            return
        self._wake_acceptor()
        self._acceptor.join(_JOIN_SECONDS)
        self._close_listener()
        for thread in self._shut_connections():
            thread.join(_JOIN_SECONDS)

    # -- public state ------------------------------------------------------

    @property
    def port(self) -> int:
        """The bound TCP port (still known after stop())."""
        if self._port is None:
            raise RuntimeError("WireServer not started")
        return self._port

    @property
    def base_url(self) -> str:
        """`http://127.0.0.1:PORT`, for a client's base_url."""
        return f"http://127.0.0.1:{self.port}"

    @property
    def requests(self) -> list[ReceivedRequest]:
        """A snapshot of the requests received so far, in arrival order."""
        with self._lock:
            return list(self._requests)

    @property
    def errors(self) -> list[str]:
        """Server-side failures (gate timeouts, invalid replies); empty if none."""
        with self._lock:
            return list(self._errors)

    def queue(self, *replies: Reply) -> None:
        """Append replies; each request takes the next one, the last one repeats."""
        with self._lock:
            self._pending.extend(replies)

    # -- used by connection workers ---------------------------------------

    def _take_reply(self, request: ReceivedRequest) -> Reply:
        with self._lock:
            self._requests.append(request)
            if self._pending:
                self._last = self._pending.popleft()
            return self._last if self._last is not None else _nothing_queued_reply()

    def _report(self, message: str) -> None:
        with self._lock:
            self._errors.append(message)
        print(f"wire_server: {message}", file=sys.stderr)

    def _release(self, sock: socket.socket, reset: bool) -> None:
        with self._lock:
            self._connections.discard(sock)
            _close_socket(sock, reset)

    # -- internals ---------------------------------------------------------

    def _accept_loop(self) -> None:
        assert self._listener is not None and self._wakeup is not None
        # selectors (epoll on Linux), not select.select: fds may exceed 1024.
        with selectors.DefaultSelector() as selector:
            selector.register(self._listener, selectors.EVENT_READ)
            selector.register(self._wakeup[0], selectors.EVENT_READ)
            while not self._stopping.is_set():
                ready = {key.fileobj for key, _ in selector.select()}
                if self._listener in ready:
                    self._accept_one(self._listener)

    def _accept_one(self, listener: socket.socket) -> None:
        try:
            sock, _ = listener.accept()
        except OSError:  # raced with another wake-up or with stop()
            return
        sock.setblocking(True)
        sock.setsockopt(socket.IPPROTO_TCP, socket.TCP_NODELAY, 1)
        worker = _ConnectionWorker(self, sock, next(self._connection_ids), self._stopping)
        thread = threading.Thread(target=worker.run, name=f"wire-server-{self.port}-conn", daemon=True)
        with self._lock:
            if self._stopping.is_set():
                _close_socket(sock, reset=False)
                return
            self._connections.add(sock)
            self._threads = [t for t in self._threads if t.is_alive()] + [thread]
        thread.start()

    def _wake_acceptor(self) -> None:
        assert self._wakeup is not None
        with suppress(OSError):
            self._wakeup[1].send(b"x")

    def _close_listener(self) -> None:
        assert self._listener is not None and self._wakeup is not None
        self._listener.close()
        for sock in self._wakeup:
            sock.close()

    def _shut_connections(self) -> list[threading.Thread]:
        with self._lock:
            for sock in self._connections:
                _shutdown_quietly(sock)
            return list(self._threads)


class _Hangup(Exception):
    """Raised while serving a reply to end the connection now (RST if `reset`)."""

    def __init__(self, reset: bool) -> None:
        super().__init__("reset" if reset else "fin")
        self.reset = reset


class _ConnectionWorker:
    """Serves one TCP connection: reads requests with h11, writes replies."""

    def __init__(
        self,
        server: WireServer,
        sock: socket.socket,
        connection_id: int,
        stopping: threading.Event,
    ) -> None:
        self._server = server
        self._sock = sock
        self._id = connection_id
        self._stopping = stopping
        self._h11 = h11.Connection(our_role=h11.SERVER)

    def run(self) -> None:
        """Thread body. Client disconnects and bad requests end it quietly."""
        reset = False
        try:
            self._serve()
        except _Hangup as hangup:
            reset = hangup.reset
        except h11.RemoteProtocolError as exc:
            self._reject(exc)
        except h11.LocalProtocolError as exc:
            self._server._report(f"cannot send reply on connection {self._id}: {exc}")
            reset = True
        except OSError:  # peer went away (BrokenPipe, ConnectionReset, ...) or stop()
            pass
        finally:
            self._server._release(self._sock, reset)

    def _serve(self) -> None:
        while not self._stopping.is_set():
            request = self._read_request()
            if request is None:
                return
            reply = self._server._take_reply(request)
            self._send_reply(reply, request.method)
            if self._h11.our_state is not h11.DONE or self._h11.their_state is not h11.DONE:
                return
            self._h11.start_next_cycle()

    # -- reading -----------------------------------------------------------

    def _read_request(self) -> ReceivedRequest | None:
        head: h11.Request | None = None
        body = bytearray()
        while True:
            event = self._next_event()
            if isinstance(event, h11.Request):
                head = event
            elif isinstance(event, h11.Data):
                body += event.data
            elif isinstance(event, h11.EndOfMessage) and head is not None:
                return _received(head, bytes(body), self._id)
            else:  # ConnectionClosed (or PAUSED, which cannot happen here)
                return None

    def _next_event(self) -> Any:
        while True:
            event = self._h11.next_event()
            if event is not h11.NEED_DATA:
                return event
            if self._h11.they_are_waiting_for_100_continue:
                self._send(h11.InformationalResponse(status_code=100, headers=[]))
            self._h11.receive_data(self._sock.recv(_RECV_SIZE))

    def _reject(self, exc: h11.RemoteProtocolError) -> None:
        """Answer an unparseable request with an error status, if still possible."""
        if self._h11.our_state not in (h11.IDLE, h11.SEND_RESPONSE):
            return
        headers = [("content-length", "0"), ("connection", "close")]
        with suppress(OSError, h11.ProtocolError):
            self._send(h11.Response(status_code=exc.error_status_hint, headers=headers))
            self._send(h11.EndOfMessage())

    # -- writing -----------------------------------------------------------

    def _send(self, event: Any) -> None:
        data = self._h11.send(event)
        if data:
            self._sock.sendall(data)

    def _pause(self, seconds: float) -> None:
        """Say nothing for `seconds`; a stop() ends the connection instead (FIN)."""
        if seconds > 0 and self._stopping.wait(seconds):
            raise _Hangup(reset=False)

    def _send_reply(self, reply: Reply, method: str) -> None:
        self._pause(reply.head_delay)
        if reply.before_head is not None:
            raise _Hangup(reset=reply.before_head == "rst")
        if reply.raw_after == -1:
            self._sock.sendall(reply.raw)
            raise _Hangup(reset=False)
        with_body = _body_allowed(method, reply.status)
        pieces = wire_pieces(reply.events, reply.gzip)
        self._send_head(reply, pieces, with_body)
        # HEAD/204/304: the headers describe a body that is never sent.
        self._send_body(reply, pieces if with_body else [])

    def _send_head(self, reply: Reply, pieces: list[bytes], with_body: bool) -> None:
        if reply.framing == "close":
            # h11 frames a body by closing the connection when it believes the
            # peer speaks HTTP/1.0; that is its only close-delimited mode.
            self._h11.their_http_version = b"1.0"
        headers = _response_headers(reply, pieces, with_body)
        phrase = reply.status_phrase()
        self._send(h11.Response(status_code=reply.status, headers=headers, reason=phrase))

    def _send_body(self, reply: Reply, pieces: list[bytes]) -> None:
        reply.sent_at.clear()
        for index in range(len(pieces) + 1):
            self._pause(_piece_delay(reply, index, len(pieces)))
            self._before_piece(reply, index)
            if index < len(pieces):
                self._send(h11.Data(data=pieces[index]))
                reply.sent_at.append(time.monotonic())
        self._send(h11.EndOfMessage())

    def _before_piece(self, reply: Reply, index: int) -> None:
        """Apply the gate and faults due before piece `index` (after `index` pieces)."""
        if reply.gate is not None and 1 <= index <= len(reply.gate):
            self._await_gate(reply.gate[index - 1], index - 1, reply.gate_timeout)
        if index == reply.raw_after:
            self._sock.sendall(reply.raw)
            raise _Hangup(reset=False)
        if index == reply.fin_after:
            raise _Hangup(reset=False)
        if index == reply.rst_after:
            raise _Hangup(reset=True)
        if index == reply.stall_after and self._stopping.wait(reply.stall_seconds):
            raise _Hangup(reset=False)

    def _await_gate(self, gate: threading.Event, position: int, timeout: float) -> None:
        deadline = time.monotonic() + timeout
        while not gate.wait(_POLL_SECONDS):
            if self._stopping.is_set():
                raise _Hangup(reset=False)
            if time.monotonic() >= deadline:
                self._server._report(
                    f"gate[{position}] not set within {timeout:g}s on connection {self._id}; aborting the connection"
                )
                raise _Hangup(reset=True)


# -- wire helpers -------------------------------------------------------------


def wire_pieces(events: list[bytes], use_gzip: bool) -> list[bytes]:
    """The bytes written for each piece: the events, or their gzip compression.

    One compressor serves the whole body; it is sync-flushed after every
    piece (so each piece decodes as soon as it arrives) and finished after
    the last one. An empty body under gzip is one piece: an empty gzip stream.
    """
    if not use_gzip:
        return list(events)
    compressor = zlib.compressobj(wbits=31)  # 16 + 15: gzip container
    last = len(events) - 1
    pieces = [
        compressor.compress(event) + compressor.flush(zlib.Z_FINISH if i == last else zlib.Z_SYNC_FLUSH)
        for i, event in enumerate(events)
    ]
    return pieces or [compressor.flush(zlib.Z_FINISH)]


def _piece_delay(reply: Reply, index: int, count: int) -> float:
    """The pause before piece `index` (`index == count`: before the body's end or fault)."""
    if reply.piece_delays is not None and index < len(reply.piece_delays):
        return reply.piece_delays[index]
    return reply.piece_delay if index < count else 0.0


def _response_headers(reply: Reply, pieces: list[bytes], with_body: bool) -> list[tuple[bytes, bytes]]:
    """Reply headers minus framing/encoding ones, plus the ones `reply` really uses."""
    headers = [(name, value) for name, value in reply.headers if name.lower() not in _SERVER_OWNED_HEADERS]
    if reply.gzip:
        headers.append(("content-encoding", "gzip"))
    elif reply.content_encoding is not None:
        headers.append(("content-encoding", reply.content_encoding))
    if reply.framing == "content-length":
        headers.append(("content-length", str(sum(len(piece) for piece in pieces))))
    elif reply.framing == "close":
        headers.append(("connection", "close"))
    elif with_body:
        headers.append(("transfer-encoding", "chunked"))
    return [(name.encode("latin-1"), value.encode("latin-1")) for name, value in headers]


def _body_allowed(method: str, status: int) -> bool:
    return method != "HEAD" and status >= 200 and status not in (204, 304)


def _received(head: h11.Request, body: bytes, connection_id: int) -> ReceivedRequest:
    headers = [(name.decode("latin-1"), value.decode("latin-1")) for name, value in head.headers]
    return ReceivedRequest(
        method=head.method.decode("ascii"),
        path=head.target.decode("latin-1"),
        headers=headers,
        body=body,
        connection_id=connection_id,
    )


def _shutdown_quietly(sock: socket.socket) -> None:
    with suppress(OSError):
        sock.shutdown(socket.SHUT_RDWR)


def _close_socket(sock: socket.socket, reset: bool) -> None:
    """Close with FIN (shutdown + close) or, if `reset`, with RST (SO_LINGER 1, 0)."""
    if reset:
        linger = struct.pack("ii", 1, 0)
        with suppress(OSError):
            sock.setsockopt(socket.SOL_SOCKET, socket.SO_LINGER, linger)
    else:
        _shutdown_quietly(sock)
    sock.close()


def _nothing_queued_reply() -> Reply:
    body = {
        "type": "error",
        "error": {"type": "api_error", "message": "wire_server: no reply queued"},
    }
    return Reply(
        status=500,
        headers=[*_JSON_HEADERS, ("request-id", "req_test_nothing_queued")],
        events=[json.dumps(body).encode()],
        framing="content-length",
    )


# -- corpus helpers -----------------------------------------------------------


@dataclass(frozen=True)
class _RecordedHead:
    """Status line and headers from a `*.headers.json` file."""

    status: int
    reason: str | None
    headers: list[tuple[str, str]]

    @property
    def gzip(self) -> bool:
        return any(n.lower() == "content-encoding" and v.strip().lower() == "gzip" for n, v in self.headers)


def _load_head(name: str) -> _RecordedHead | None:
    path = DATA_DIR / f"{name}.headers.json"
    if not path.exists():
        return None
    data = json.loads(path.read_text(encoding="utf-8"))
    status = int(data["status"])
    headers = [(key, value) for key, values in data["headers"].items() for value in values]
    return _RecordedHead(status, _clean_reason(data.get("reason"), status), headers)


def _clean_reason(reason: str | None, status: int) -> str | None:
    """go-vcr stores the reason as "200 OK"; keep only the phrase."""
    if reason is None:
        return None
    return reason.removeprefix(f"{status} ")


def _reply_from(
    name: str,
    events: list[bytes],
    fallback: tuple[int, list[tuple[str, str]]],
    overrides: dict[str, Any],
) -> Reply:
    head = _load_head(name)
    status, headers = (head.status, head.headers) if head else fallback
    defaults: dict[str, Any] = {
        "status": status,
        "reason": head.reason if head else None,
        "headers": headers,
        "events": events,
        "gzip": bool(head and head.gzip),
    }
    return Reply(**{**defaults, **overrides})


def split_events(body: bytes) -> list[bytes]:
    r"""Split an SSE body into events, each keeping its terminating blank line.

    Splits on b"\n\n" (the corpus uses LF only). Trailing bytes without a
    blank line become a last piece. `b"".join(split_events(b)) == b` always.
    """
    pieces = [part + b"\n\n" for part in body.split(b"\n\n")]
    pieces[-1] = pieces[-1][:-2]
    return pieces if pieces[-1] else pieces[:-1]


def transcript(name: str, **reply_kwargs: Any) -> Reply:
    """A `Reply` streaming `DATA_DIR/<name>.sse`, one SSE event per piece.

    Status, reason and headers come from `<name>.headers.json` when present
    (gzip is on if it records `Content-Encoding: gzip`); otherwise 200 with
    an SSE content-type and `request-id: req_test_<name>`. Keyword arguments
    override any `Reply` field.
    """
    events = split_events((DATA_DIR / f"{name}.sse").read_bytes())
    fallback = (200, [*_SSE_HEADERS, ("request-id", f"req_test_{name}")])
    return _reply_from(name, events, fallback, reply_kwargs)


def error_reply(name: str, **reply_kwargs: Any) -> Reply:
    """A `Reply` for the HTTP error `DATA_DIR/<name>.body.json`, Content-Length framed.

    Status and headers come from `<name>.headers.json` when present;
    otherwise the status is parsed from the name (`http_429_...` -> 429) and
    the headers are a JSON content-type and `request-id: req_test_<name>`.
    """
    body = (DATA_DIR / f"{name}.body.json").read_bytes()
    fallback = (
        _status_from_name(name),
        [*_JSON_HEADERS, ("request-id", f"req_test_{name}")],
    )
    return _reply_from(name, [body], fallback, {"framing": "content-length", **reply_kwargs})


def _status_from_name(name: str) -> int:
    match = re.match(r"http_(\d{3})_", name)
    if match is None:
        raise ValueError(f"cannot tell the HTTP status from {name!r}; expected 'http_<status>_...'")
    return int(match.group(1))


def list_transcripts() -> list[str]:
    """Names of the streamable transcripts: every `*.sse` but the unparseable one."""
    names = (path.name.removesuffix(".sse") for path in DATA_DIR.glob("*.sse"))
    return sorted(name for name in names if name not in _UNPARSEABLE_TRANSCRIPTS)


def list_error_bodies() -> list[str]:
    """Names of the HTTP error bodies (every `*.body.json`)."""
    return sorted(path.name.removesuffix(".body.json") for path in DATA_DIR.glob("*.body.json"))
