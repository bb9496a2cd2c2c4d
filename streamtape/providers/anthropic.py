"""Anthropic's Messages API on the wire: everything streamtape knows about it, in one place.

Error responses, the in-stream error and the ping copy real ones (see tests/data/sse/SOURCES.md):
HTTP errors carry the API's JSON error body (``type``, ``error.type``, ``error.message``,
``request_id``) and its headers; an in-stream error is the API's ``event: error`` with its padding.
Request ids are made up, but shaped like the real ones, and numbered so two attempts differ. The
event grammar ``lint`` checks and the fields ``inspect`` reads are the API's documented stream;
``stream_events`` frames a made-up stream as the API frames a real one (``streamtape synth``).
"""

from __future__ import annotations

import base64
import hashlib
import json
import random
import re
from collections.abc import Callable, Sequence
from dataclasses import dataclass, field
from typing import TYPE_CHECKING, Any, ClassVar

from .base import Headers, Pieces, Provider, http_date, merged_headers, raw_body, retry_headers

if TYPE_CHECKING:
    from ..sse import Event

__all__ = ["ANTHROPIC", "ERROR_TYPES", "AnthropicProvider", "error_body", "error_event_bytes", "error_headers",
           "http_date", "request_id"]  # fmt: skip

#: status -> (error.type, error.message), messages as the API sends them
ERROR_TYPES: dict[int, tuple[str, str]] = {
    400: ("invalid_request_error", "Your request was malformed or invalid."),
    401: ("authentication_error", "invalid x-api-key"),
    403: ("permission_error", "Your API key does not have permission to use the specified resource."),
    404: ("not_found_error", "The requested resource could not be found."),
    408: ("timeout_error", "Request timed out."),
    409: ("conflict_error", "Conflict."),
    413: ("request_too_large", "Request exceeds the maximum allowed number of bytes."),
    429: ("rate_limit_error", "This request would exceed your account's rate limit. Please try again later."),
    500: ("api_error", "Internal server error"),
    502: ("api_error", "Bad gateway"),
    503: ("api_error", "Service unavailable"),
    504: ("timeout_error", "Gateway timeout"),
    529: ("overloaded_error", "Overloaded"),
}

# The rate-limit headers a real 429 carries (anthropic-sdk-typescript#357), with its limits.
_RATE_LIMIT_HEADERS = (
    ("anthropic-ratelimit-requests-limit", "5"),
    ("anthropic-ratelimit-requests-remaining", "0"),
    ("anthropic-ratelimit-requests-reset", "2024-03-26T20:00:00Z"),
    ("anthropic-ratelimit-tokens-limit", "25000"),
    ("anthropic-ratelimit-tokens-remaining", "16000"),
    ("anthropic-ratelimit-tokens-reset", "2024-03-26T20:00:00Z"),
)

# Verbatim from a real stream (Helicone#4678): note the server's padding before the last brace.
_OVERLOADED_EVENT = (
    b'event: error\ndata: {"type":"error","error":{"details":null,"type":"overloaded_error",'
    b'"message":"Overloaded"}              }\n\n'
)

# The keep-alive the API sends while the model thinks (a real stream's bytes).
_PING = b'event: ping\ndata: {"type": "ping"}\n\n'


def request_id(number: int) -> str:
    return f"req_011CStreamtape{number:010d}"


def error_body(
    status: int, error_type: str | None, message: str | None, number: int, *, request_id: str | bool | None = None
) -> bytes:
    """The API's JSON error body; ``request_id`` ``None`` or ``True``: a generated id (numbered by
    ``number``), a string: that id, ``False``: none (as in the API's 2024 bodies)."""
    default_type, default_message = ERROR_TYPES.get(status, ("api_error", "Internal server error"))
    error = {"type": error_type or default_type, "message": message or default_message}
    document: dict[str, Any] = {"type": "error", "error": error}
    ident = _ident(request_id, number)
    if ident is not None:
        document["request_id"] = ident
    return json.dumps(document, separators=(",", ":")).encode()


def error_headers(
    status: int,
    body: bytes,
    number: int,
    *,
    retry_after: float | None,
    retry_after_ms: float | None,
    should_retry: bool | None,
    request_id: str | bool | None = None,
    content_type: str | None = None,
    retry_after_date: float | None = None,
    headers: Sequence[tuple[str, str]] = (),
) -> Headers:
    """The error response's headers: its content type, a ``content-length`` for ``body``, the
    ``request-id`` (as ``error_body`` reads ``request_id``), a 429's rate-limit headers, the retry
    headers asked for (``retry_after_date``: ``retry-after`` as an HTTP date that many seconds from
    now), then ``headers``, each replacing the defaults of its name (in their place) or added."""
    out = [("content-type", content_type or "application/json"), ("content-length", str(len(body)))]
    ident = _ident(request_id, number)
    if ident is not None:
        out.append(("request-id", ident))
    if status == 429:
        out += _RATE_LIMIT_HEADERS
    out += retry_headers(retry_after=retry_after, retry_after_date=retry_after_date, retry_after_ms=retry_after_ms,
                         should_retry=should_retry)  # fmt: skip
    return merged_headers(out, headers)


def error_event_bytes(
    error_type: str | None, message: str | None, *, data: str | None = None, event: str | None = None
) -> bytes:
    """An in-stream ``event: error``, as the API sends it (``None``: its overload report).

    ``data``: the data text instead of the API's JSON, sent as given (a line each for its lines),
    as a proxy puts ``upstream connect error ...`` in a stream; ``event``: another event name."""
    name = event or "error"
    if data is not None:
        lines = "".join(f"data: {line}\n" for line in re.split(r"\r\n|\r|\n", data))
        return f"event: {name}\n{lines}\n".encode()
    error_type = error_type or "overloaded_error"
    if error_type == "overloaded_error" and message is None:
        raw = _OVERLOADED_EVENT
    else:
        error = {"details": None, "type": error_type, "message": message or ERROR_TYPES[529][1]}
        text = json.dumps({"type": "error", "error": error}, separators=(",", ":"))
        raw = f"event: error\ndata: {text[:-1]}              }}\n\n".encode()
    return raw if name == "error" else f"event: {name}".encode() + raw[len(b"event: error") :]


def _ident(given: str | bool | None, number: int) -> str | None:
    """The request id ``given`` asks for: generated (``None``, ``True``), that one, or none (``False``)."""
    if given is None or given is True:
        return request_id(number)
    return given or None


class AnthropicProvider(Provider):
    name: ClassVar[str] = "anthropic"
    overloaded_status: ClassVar[int] = 529
    #: Messages API calls, under any host or path prefix (proxies, gateways, Bedrock/Vertex-style hosts)
    requests: ClassVar[str] = r"^POST \S*?/messages(?:[?#]|$)"
    key_variables: ClassVar[tuple[str, ...]] = ("ANTHROPIC_API_KEY",)
    framing: ClassVar[str] = "sse"

    def claims(self, method: str, url: str, headers: Sequence[tuple[str, str]] = ()) -> bool:
        return super().claims(method, url, headers) or any(k.lower() == "anthropic-version" for k, _ in headers)

    def http_error(
        self,
        status: int,
        *,
        number: int = 1,
        error_type: str | None = None,
        message: str | None = None,
        retry_after: float | None = None,
        retry_after_ms: float | None = None,
        should_retry: bool | None = None,
        request_id: str | bool | None = None,
        body: str | bytes | None = None,
        content_type: str | None = None,
        headers: Sequence[tuple[str, str]] = (),
        retry_after_date: float | None = None,
    ) -> tuple[Headers, bytes]:
        if body is None:
            raw = error_body(status, error_type, message, number, request_id=request_id)
        else:  # not the API's JSON (a proxy's page): no request id unless one is asked for
            raw = raw_body(body)
            request_id = False if request_id is None else request_id
        out = error_headers(status, raw, number, retry_after=retry_after, retry_after_ms=retry_after_ms,
                            should_retry=should_retry, request_id=request_id, content_type=content_type,
                            retry_after_date=retry_after_date, headers=headers)  # fmt: skip
        return out, raw

    def error_event(
        self, error_type: str | None = None, message: str | None = None, *, data: str | None = None,
        event: str | None = None,
    ) -> bytes:  # fmt: skip
        return error_event_bytes(error_type, message, data=data, event=event)

    def keep_alive(self) -> bytes:
        return _PING

    def whole_message(self, events: Sequence[Event]) -> bytes:
        """The Messages API's non-streaming body for a recorded stream: ``message_start``'s message with
        the content blocks the deltas built, and ``message_delta``'s stop reason and usage."""
        message: dict[str, Any] = {}
        blocks: dict[int, dict[str, Any]] = {}
        partial_json: dict[int, str] = {}
        texts = Pieces()  # the deltas, joined once: adding each to the text so far is quadratic
        for event in events:
            data = event.json
            if not isinstance(data, dict):
                continue
            kind = data.get("type")
            if kind == "message_start" and isinstance(data.get("message"), dict):
                message = dict(data["message"])
            elif kind == "content_block_start" and isinstance(data.get("content_block"), dict):
                blocks[data.get("index", len(blocks))] = dict(data["content_block"])
            elif kind == "content_block_delta" and isinstance(data.get("delta"), dict):
                block, delta = blocks.setdefault(data.get("index", 0), {"type": "text", "text": ""}), data["delta"]
                for field in ("text", "thinking", "signature"):
                    if field in delta:
                        texts.add(block, field, delta[field])
                if "partial_json" in delta:
                    texts.add(partial_json, data.get("index", 0), delta["partial_json"])
            elif kind == "message_delta":
                message.update(data.get("delta") or {})
                if isinstance(data.get("usage"), dict):
                    message["usage"] = {**message.get("usage", {}), **data["usage"]}
        texts.join()
        for index, text in partial_json.items():
            try:
                blocks[index]["input"] = json.loads(text) if text else {}
            except ValueError:
                blocks[index]["input"] = {}
        message["content"] = [blocks[index] for index in sorted(blocks)]
        return json.dumps(message, separators=(",", ":")).encode()

    def harness_error(
        self, status: int, error_type: str | None, message: str, *, retry: bool = False, close: bool = False
    ) -> tuple[Headers, bytes]:
        """Like the API's errors, without a request id (nothing here came from the API);
        ``x-should-retry`` is what the SDKs obey."""
        kind = error_type or ERROR_TYPES.get(status, ("api_error", ""))[0]
        body = json.dumps({"type": "error", "error": {"type": kind, "message": message}}).encode()
        headers = [("content-type", "application/json"), ("content-length", str(len(body)))]
        headers.append(("x-should-retry", "true" if retry else "false"))
        if retry:
            headers.append(("retry-after", "1"))
        if close:
            headers.append(("connection", "close"))
        return tuple(headers), body

    # --- lint -------------------------------------------------------------------------------------

    def lint(self, events: Sequence[Event], *, broke: bool) -> list[str]:
        """A Messages stream starts with message_start (or an error), names each event as its data's
        ``type``, opens content blocks in order before their deltas, and ends with message_stop
        unless it reported an error or the connection broke."""
        names = [event.event for event in events]
        problems: list[str] = []
        if not names:
            return problems
        if names[0] not in ("message_start", "error"):
            problems.append(f"the first event is {names[0]!r}; an Anthropic stream starts with message_start")
        for number, event in enumerate(events, 1):
            data = event.json
            if data is None:
                problems.append(f"event {number} ({event.event}): its data is not JSON")
            elif isinstance(data, dict) and data.get("type") not in (event.event, None):
                problems.append(f"event {number}: named {event.event!r} but its data says type {data.get('type')!r}")
        problems += _block_indices(events)
        if names[-1] != "message_stop" and not broke and "error" not in names:
            problems.append(
                f"the stream ends with {names[-1]!r}, not message_stop, and the recording does not say it broke"
            )
        return problems

    # --- inspect ----------------------------------------------------------------------------------

    def tokens(self, events: Sequence[Event]) -> dict[str, int]:
        tokens: dict[str, int] = {}
        for event in events:
            if "usage" not in event.data and "\\u" not in event.data:
                continue  # no "usage" key, even escaped: its JSON need not be parsed (most events: deltas)
            data = event.json if isinstance(event.json, dict) else {}
            usage = (data.get("message") or {}).get("usage") if event.event == "message_start" else data.get("usage")
            if isinstance(usage, dict):
                for key in ("input_tokens", "output_tokens", "cache_read_input_tokens", "cache_creation_input_tokens"):
                    if isinstance(usage.get(key), int):
                        tokens[key] = usage[key]
        return tokens

    def stop_reason(self, events: Sequence[Event]) -> str | None:
        for event in reversed(events):
            if event.event != "message_delta":
                continue  # only a message_delta says it (its JSON is parsed, not every event's)
            data = event.json if isinstance(event.json, dict) else {}
            if isinstance(data.get("delta"), dict):
                return data["delta"].get("stop_reason")
        return None

    def ending(self, events: Sequence[Event]) -> str | None:
        names = [event.event for event in events]
        if "error" in names:
            error = next(e.json for e in events if e.event == "error")
            kind = ((error or {}).get("error") or {}).get("type", "error") if isinstance(error, dict) else "error"
            return f"in-stream error: {kind}"
        if names and names[-1] != "message_stop" and "message_start" in names:
            return "clean, but early (no message_stop)"
        return None

    # --- synth ------------------------------------------------------------------------------------

    def stream_events(
        self,
        *,
        text: str | None,
        thinking: str | None,
        tools: list[tuple[str, Any]] | None,
        model: str,
        prompt: str,
        seed: int,
        rng: random.Random,
        pieces: Callable[[str, random.Random], list[str]],
        tokens: Callable[[str], int],
    ) -> tuple[list[bytes], tuple[str, str, Headers, bytes], Headers]:
        """A streamed Messages response nobody recorded, framed as the real API frames it (the same
        fields in the same order, the server's padding before the closing brace, a ping after the
        first block starts): its events, the request that asks for it (method, URL, headers, body)
        and the response headers. ``pieces`` cuts text into deltas, drawing from ``rng``; ids derive
        from ``seed`` and the content, so the same arguments give the same stream."""
        stream = _Stream(rng)
        ident = hashlib.sha256(f"{seed}:{text}:{thinking}:{tools}".encode()).hexdigest()
        stream.event("message_start", {"message": _message(model, ident, tokens(prompt))}, padding=1)
        index = 0
        if thinking:
            _thinking_block(stream, index, thinking, ident, pieces)
            index += 1
        if text:
            _block(stream, index, {"type": "text", "text": ""}, "text_delta", "text", pieces(text, rng))
            index += 1
        for number, (name, tool_input) in enumerate(tools or []):
            block = {"type": "tool_use", "id": f"toolu_01{ident[number : number + 22]}", "name": name, "input": {}}
            partial = json.dumps(tool_input, ensure_ascii=False)
            _block(stream, index, block, "input_json_delta", "partial_json", ["", *pieces(partial, rng)])
            index += 1
        output = tokens(f"{thinking or ''} {text or ''} {json.dumps(tools or [])}")
        stop = {"stop_reason": "tool_use" if tools else "end_turn", "stop_sequence": None, "stop_details": None}
        usage = {"input_tokens": tokens(prompt), "cache_creation_input_tokens": 0, "cache_read_input_tokens": 0,
                 "output_tokens": output}  # fmt: skip
        stream.event("message_delta", {"delta": stop, "usage": usage}, padding=0)
        stream.event("message_stop", {}, padding=3)
        body = b"".join(stream.events)
        request_json = {"max_tokens": 1024, "messages": [{"role": "user", "content": prompt}], "model": model,
                        "stream": True}  # fmt: skip
        request = ("POST", "https://api.anthropic.com/v1/messages",
                   (("content-type", "application/json"), ("anthropic-version", "2023-06-01")),
                   json.dumps(request_json, separators=(",", ":")).encode())  # fmt: skip
        headers = (("content-type", "text/event-stream; charset=utf-8"), ("cache-control", "no-cache"),
                   ("request-id", f"req_011Csynth{hashlib.sha256(body).hexdigest()[:16]}"))  # fmt: skip
        return stream.events, request, headers


def _block_indices(events: Sequence[Event]) -> list[str]:
    problems: list[str] = []
    open_blocks: set[Any] = set()
    started = -1
    for number, event in enumerate(events, 1):
        data = event.json if isinstance(event.json, dict) else {}
        index = data.get("index")
        if event.event == "content_block_start":
            if index != started + 1:
                problems.append(f"event {number}: content block {index} starts after block {started}")
            started = index if isinstance(index, int) else started
            open_blocks.add(index)
        elif event.event in ("content_block_delta", "content_block_stop") and index not in open_blocks:
            problems.append(f"event {number}: {event.event} for block {index}, which is not open")
        if event.event == "content_block_stop":
            open_blocks.discard(index)
    return problems


@dataclass
class _Stream:
    rng: random.Random
    events: list[bytes] = field(default_factory=list)

    def add(self, name: str, data: str, padding: int = 0) -> None:
        payload = data[:-1] + " " * padding + "}" if padding else data
        self.events.append(f"event: {name}\ndata: {payload}\n\n".encode())

    def event(self, name: str, body: dict[str, Any], padding: int | None = None) -> None:
        self.add(name, json.dumps({"type": name, **body}, ensure_ascii=False, separators=(",", ":")),
                 self.rng.randint(1, 15) if padding is None else padding)  # fmt: skip


def _message(model: str, ident: str, input_tokens: int) -> dict[str, Any]:
    usage = {"input_tokens": input_tokens, "cache_creation_input_tokens": 0, "cache_read_input_tokens": 0,
             "cache_creation": {"ephemeral_5m_input_tokens": 0, "ephemeral_1h_input_tokens": 0}, "output_tokens": 1,
             "service_tier": "standard", "inference_geo": "not_available"}  # fmt: skip
    return {"model": model, "id": f"msg_01{ident[:22]}", "type": "message", "role": "assistant", "content": [],
            "stop_reason": None, "stop_sequence": None, "stop_details": None, "usage": usage}  # fmt: skip


def _block(stream: _Stream, index: int, block: dict[str, Any], delta: str, key: str, pieces: list[str]) -> None:
    stream.event("content_block_start", {"index": index, "content_block": block})
    if index == 0:
        stream.events.append(_PING)
    for piece in pieces:
        stream.event("content_block_delta", {"index": index, "delta": {"type": delta, key: piece}})
    stream.event("content_block_stop", {"index": index})


def _thinking_block(stream: _Stream, index: int, thinking: str, ident: str,
                    pieces: Callable[[str, random.Random], list[str]]) -> None:  # fmt: skip
    signature = base64.b64encode(hashlib.sha512(f"{ident}:{thinking}".encode()).digest() * 3).decode()
    stream.event("content_block_start", {"index": index, "content_block": {"type": "thinking", "thinking": "",
                                                                           "signature": ""}})  # fmt: skip
    if index == 0:
        stream.events.append(_PING)
    for piece in pieces(thinking, stream.rng):
        stream.event("content_block_delta", {"index": index, "delta": {"type": "thinking_delta", "thinking": piece}})
    stream.event("content_block_delta", {"index": index, "delta": {"type": "signature_delta", "signature": signature}})
    stream.event("content_block_stop", {"index": index})


ANTHROPIC = AnthropicProvider()
