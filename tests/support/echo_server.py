"""An HTTP/1.1 server on 127.0.0.1 that answers every request with a plan the test sets.

``server.plan = {"status": 200, "headers": [(name, value)], "chunks": [bytes, ...]}``; the body is
sent chunked, one HTTP chunk per item, flushed each time. ``server.seen`` lists the raw request
heads and bodies it received, so a test can check what reached the network.
"""

from __future__ import annotations

import http.server
import socketserver
import threading
from collections.abc import Iterable, Iterator
from contextlib import contextmanager
from typing import Any

__all__ = ["EchoServer", "echo_server", "send_chunked"]


class _Handler(http.server.BaseHTTPRequestHandler):
    protocol_version = "HTTP/1.1"

    def do_POST(self) -> None:  # noqa: N802 - http.server's naming
        body = self.rfile.read(int(self.headers.get("content-length", 0)))
        server: EchoServer = self.server  # type: ignore[assignment]
        server.seen.append((self.requestline, body))
        plan = server.plan
        send_chunked(self, plan["status"], plan["headers"], plan["chunks"])

    do_GET = do_POST  # noqa: N815

    def log_message(self, *args: Any) -> None:
        pass


def send_chunked(handler: http.server.BaseHTTPRequestHandler, status: int, headers: Iterable[tuple[str, str]],
                 chunks: Iterable[bytes]) -> None:  # fmt: skip
    """Answer with ``status`` and ``headers``, the body chunked: one HTTP chunk per item, flushed each time."""
    handler.send_response(status)
    for name, value in headers:
        handler.send_header(name, value)
    handler.send_header("transfer-encoding", "chunked")
    handler.end_headers()
    for piece in chunks:
        handler.wfile.write(b"%x\r\n%s\r\n" % (len(piece), piece))
        handler.wfile.flush()
    handler.wfile.write(b"0\r\n\r\n")


class EchoServer(socketserver.ThreadingMixIn, http.server.HTTPServer):
    daemon_threads = True

    def __init__(self) -> None:
        super().__init__(("127.0.0.1", 0), _Handler)
        self.plan: dict[str, Any] = {"status": 200, "headers": [("content-type", "text/plain")], "chunks": [b"ok"]}
        self.seen: list[tuple[str, bytes]] = []

    @property
    def base_url(self) -> str:
        return f"http://127.0.0.1:{self.server_address[1]}"


@contextmanager
def echo_server() -> Iterator[EchoServer]:
    server = EchoServer()
    thread = threading.Thread(target=server.serve_forever, daemon=True)
    thread.start()
    try:
        yield server
    finally:
        server.shutdown()
        server.server_close()
        thread.join()
