"""An Anthropic-shaped Messages API on 127.0.0.1 whose wire format changes between runs.

``DriftingAPI(version=1)`` answers ``POST /v1/messages`` as the API does: a streamed message (SSE,
chunked, one event per chunk), a JSON message when ``stream`` is not asked for, an in-stream
``overloaded_error`` for the model ``claude-overloaded``, and a 404 ``not_found_error`` for the model
``claude-nope``. Every answer differs in its values from the one before (the text, the ids, the
``request-id`` header, the rate-limit counters, the ``Date``), never in its structure.

``api.version = 2`` changes the format, one thing per kind of drift:

- a new event type, ``content_block_annotation``, after the text deltas;
- a renamed field: a text delta's ``text`` is ``content``;
- a new header, ``x-api-feature: annotations``;
- changed error bodies: the in-stream error and the 404 gain ``error.details`` ({"retryable": ...});
- the JSON message gains a field, ``service_tier``;
- a request with ``legacy_option`` is refused: 400 ``invalid_request_error`` (a status change).

``api.refuse`` holds prompts whose requests get a 401 (a refused key).

``api.text`` is the text every answer holds (``{n}`` is the request's number), so a test can tell
a re-recorded answer from an old one.
"""

from __future__ import annotations

import http.server
import json
import threading
from typing import Any

__all__ = ["DriftingAPI"]


class _Handler(http.server.BaseHTTPRequestHandler):
    protocol_version = "HTTP/1.1"
    server: _Server

    def do_POST(self) -> None:  # noqa: N802 - http.server's naming
        body = self.rfile.read(int(self.headers.get("content-length", 0)))
        api = self.server.api
        with api.lock:
            api.number += 1
            number = api.number
            api.requests.append((self.path, dict(self.headers.items()), body))
        request = json.loads(body or b"{}")
        version = api.version
        headers = [("request-id", f"req_{number:04d}"), ("anthropic-ratelimit-requests-remaining", str(1000 - number))]
        if version >= 2:
            headers.append(("x-api-feature", "annotations"))
        prompt = next((m.get("content") for m in request.get("messages", []) if isinstance(m, dict)), None)
        if prompt in api.refuse:  # the key is refused for this prompt
            error = {"type": "authentication_error", "message": "invalid x-api-key"}
            self._json(401, headers, {"type": "error", "error": error, "request_id": f"req_{number:04d}"})
            return
        if request.get("model") == "claude-nope":
            error: dict[str, Any] = {"type": "not_found_error", "message": "model: claude-nope"}
            if version >= 2:
                error["details"] = {"retryable": False}
            self._json(404, headers, {"type": "error", "error": error, "request_id": f"req_{number:04d}"})
            return
        if version >= 2 and "legacy_option" in request:
            error = {"type": "invalid_request_error", "message": "legacy_option: no longer supported"}
            self._json(400, headers, {"type": "error", "error": error, "request_id": f"req_{number:04d}"})
            return
        text = api.text.format(n=number)
        if not request.get("stream"):
            message = _message(number, text, request)
            if version >= 2:
                message["service_tier"] = "standard"
            self._json(200, headers, message)
            return
        self._stream(headers, _events(number, text, request, version))

    def _json(self, status: int, headers: list[tuple[str, str]], value: Any) -> None:
        data = json.dumps(value).encode()
        self.send_response(status)
        for name, header in [("content-type", "application/json"), *headers]:
            self.send_header(name, header)
        self.send_header("content-length", str(len(data)))
        self.end_headers()
        self.wfile.write(data)

    def _stream(self, headers: list[tuple[str, str]], events: list[bytes]) -> None:
        self.send_response(200)
        for name, header in [("content-type", "text/event-stream; charset=utf-8"), ("cache-control", "no-cache"),
                             *headers]:  # fmt: skip
            self.send_header(name, header)
        self.send_header("transfer-encoding", "chunked")
        self.end_headers()
        for event in events:
            self.wfile.write(b"%x\r\n%s\r\n" % (len(event), event))
            self.wfile.flush()
        self.wfile.write(b"0\r\n\r\n")

    def log_message(self, *args: Any) -> None:
        pass


def _sse(name: str, data: dict[str, Any]) -> bytes:
    return f"event: {name}\ndata: {json.dumps(data)}\n\n".encode()


def _message(number: int, text: str, request: dict[str, Any]) -> dict[str, Any]:
    return {
        "id": f"msg_{number:04d}", "type": "message", "role": "assistant", "model": request.get("model", "claude-test"),
        "content": [{"type": "text", "text": text}], "stop_reason": "end_turn", "stop_sequence": None,
        "usage": {"input_tokens": 10 + number, "output_tokens": 2 + number},
    }  # fmt: skip


def _events(number: int, text: str, request: dict[str, Any], version: int) -> list[bytes]:
    start = _message(number, "", request)
    start.update(content=[], stop_reason=None)
    events = [_sse("message_start", {"type": "message_start", "message": start})]
    if request.get("model") == "claude-overloaded":
        error: dict[str, Any] = {"type": "overloaded_error", "message": "Overloaded"}
        if version >= 2:
            error["details"] = {"retryable": True}
        return [*events, _sse("error", {"type": "error", "error": error})]
    events.append(_sse("content_block_start", {"type": "content_block_start", "index": 0,
                                               "content_block": {"type": "text", "text": ""}}))  # fmt: skip
    events.append(_sse("ping", {"type": "ping"}))
    key = "content" if version >= 2 else "text"
    for piece in (text[: len(text) // 2], text[len(text) // 2 :]):
        delta = {"type": "text_delta", key: piece}
        events.append(_sse("content_block_delta", {"type": "content_block_delta", "index": 0, "delta": delta}))
    if version >= 2:
        events.append(_sse("content_block_annotation", {"type": "content_block_annotation", "index": 0,
                                                        "annotation": {"kind": "note"}}))  # fmt: skip
    events.append(_sse("content_block_stop", {"type": "content_block_stop", "index": 0}))
    events.append(_sse("message_delta", {"type": "message_delta", "delta": {"stop_reason": "end_turn",
                                         "stop_sequence": None}, "usage": {"output_tokens": 2 + number}}))  # fmt: skip
    events.append(_sse("message_stop", {"type": "message_stop"}))
    return events


class _Server(http.server.ThreadingHTTPServer):
    daemon_threads = True
    api: DriftingAPI


class DriftingAPI:
    """The API, listening on 127.0.0.1 (an ephemeral port) while entered."""

    def __init__(self, version: int = 1, text: str = "Hello, run {n}") -> None:
        self.version = version
        self.text = text
        #: user prompts answered 401 (the key refused)
        self.refuse: set[str] = set()
        self.number = 0
        self.requests: list[tuple[str, dict[str, str], bytes]] = []
        self.lock = threading.Lock()
        self._server = _Server(("127.0.0.1", 0), _Handler)
        self._server.api = self
        self._thread = threading.Thread(target=self._server.serve_forever, name="drifting-api", daemon=True)

    @property
    def base_url(self) -> str:
        return f"http://127.0.0.1:{self._server.server_address[1]}"

    def __enter__(self) -> DriftingAPI:
        self._thread.start()
        return self

    def __exit__(self, *exc_info: object) -> None:
        self._server.shutdown()
        self._server.server_close()
        self._thread.join(5)
