"""OpenAI's two streaming APIs on the wire: Chat Completions and Responses, one provider each.

What is real and what is modelled (tests/data/openai/SOURCES.md):

- **Error responses** copy real ones: ``{"error": {"message", "type", "param", "code"}}`` with the
  API's two layouts (the edge's Chat Completions 401, 404 and 429: four-space indent, a final LF,
  ``charset=utf-8``; the API's 400, 500 and Responses errors: two-space indent, no final LF), its ``x-request-id`` header, a 429's
  ``x-ratelimit-*`` headers and the real messages. Request ids are made up, shaped like the real
  ones and numbered so two attempts differ. OpenAI has no 529: its overload is a 503
  (``overloaded_status``), ``The server is overloaded or not ready yet.``.
- **In-stream errors from api.openai.com are modelled**, not recorded (no recording of one exists):
  Chat Completions sends a ``data: {"error": {...}}`` chunk (the shape reported in
  sashabaranov/go-openai#69), which the openai SDK raises as ``APIError``; the Responses API sends
  ``event: error`` (``type``, ``code``, ``message``, ``param``, ``sequence_number``: the SDK's
  ``ResponseErrorEvent``), which the SDK yields as an event, and fails a response with a
  ``response.failed`` terminal event (the ``response_failed`` fault, ``streamtape.faults.openai``).
  The OpenAI-compatible in-stream errors ``lint`` and ``inspect`` recognise are recorded ones: Groq's
  ``event: error`` with an ``error`` object, OpenRouter's ``error`` inside an ordinary chunk.
- **Keep-alive**: api.openai.com sends none we know of; ``ping`` sends an SSE comment, as
  OpenAI-compatible gateways do (OpenRouter's ``: OPENROUTER PROCESSING``), which SDKs skip.

The event grammar ``lint`` checks and the fields ``inspect`` reads are the real recordings'
(``[DONE]``, ``finish_reason``, the usage chunk with empty ``choices``; Responses' ``sequence_number``
and terminal events); ``stream_events`` frames a made-up stream as the API frames a real one.
"""

from __future__ import annotations

import hashlib
import json
import random
import re
import string
from collections.abc import Callable, Sequence
from typing import TYPE_CHECKING, Any, ClassVar

from ..errors import ConfigError
from .base import Headers, Pieces, Provider, merged_headers, raw_body, retry_headers

if TYPE_CHECKING:
    from ..sse import Event

__all__ = ["CHAT", "DONE", "ERROR_TYPES", "RESPONSES", "TERMINAL", "OpenAIChat", "OpenAIProvider", "OpenAIResponses",
           "error_body", "request_id"]  # fmt: skip

#: The last event of every Chat Completions stream.
DONE = b"data: [DONE]\n\n"
#: The events that end a Responses stream.
TERMINAL = ("response.completed", "response.incomplete", "response.failed")

_SERVER_ERROR = (
    "The server had an error processing your request. Sorry about that! You can retry your request, or contact us "
    "through our help center at help.openai.com if you keep seeing this error."
)
#: status -> (error.type, error.code, error.param, error.message), as the API sends them (the 401, 404,
#: 429 and 500 messages are the recorded ones; ``{request_id}`` is filled in, or the sentence dropped)
ERROR_TYPES: dict[int, tuple[str, str | None, str | None, str]] = {
    400: ("invalid_request_error", None, None, "Invalid request: the request body does not match what the "
          "API expects."),
    401: ("invalid_request_error", "invalid_api_key", None, "Incorrect API key provided: invalid-*****2345. You can "
          "find your API key at https://platform.openai.com/account/api-keys."),
    403: ("invalid_request_error", "unsupported_country_region_territory", None,
          "Country, region, or territory not supported"),
    404: ("invalid_request_error", "model_not_found", None, "The model `gpt-4o` does not exist or you do not have "
          "access to it."),
    408: ("server_error", None, None, "Request timed out."),
    409: ("invalid_request_error", None, None, "Conflict."),
    413: ("invalid_request_error", None, None, "Request too large."),
    429: ("requests", "rate_limit_exceeded", None, "Rate limit reached for gpt-3.5-turbo in organization org-REDACTED "
          "on requests per min (RPM): Limit 3, Used 3, Requested 1. Please try again in 20s. Visit "
          "https://platform.openai.com/account/rate-limits to learn more. You can increase your rate limit by adding "
          "a payment method to your account at https://platform.openai.com/account/billing."),
    500: ("server_error", None, None, _SERVER_ERROR + " (Please include the request ID {request_id} in your email.)"),
    502: ("server_error", None, None, "Bad gateway."),
    503: ("server_error", None, None, "The server is overloaded or not ready yet."),
    504: ("server_error", None, None, "Gateway timeout."),
}  # fmt: skip
#: the types that name a class of error, not the error: ``error_type`` set to one keeps the status's code
_CLASSES = frozenset({"invalid_request_error", "server_error", "requests", "tokens", "api_error"})
#: the statuses the edge answers for Chat Completions (four-space JSON, a final LF, ``charset=utf-8``),
#: as recorded; the API answers the rest (two-space JSON), and every Responses error recorded
_EDGE = frozenset({401, 404, 429})

# The rate-limit headers of the real 429 (tests/data/openai/chat/http_429_rate_limit_rpm.headers.json).
_RATE_LIMIT_HEADERS = (
    ("x-ratelimit-limit-requests", "200"),
    ("x-ratelimit-limit-tokens", "40000"),
    ("x-ratelimit-remaining-requests", "196"),
    ("x-ratelimit-remaining-tokens", "39923"),
    ("x-ratelimit-reset-requests", "21m36.001s"),
    ("x-ratelimit-reset-tokens", "115ms"),
)

# An SSE comment: the SDKs skip it (what OpenAI-compatible gateways send while a model thinks).
_KEEP_ALIVE = b": keep-alive\n\n"


def request_id(number: int) -> str:
    """A made-up ``x-request-id``, shaped like the real ones (``req_`` and 32 characters)."""
    return f"req_streamtape{number:018d}"


def _ident(given: str | bool | None, number: int) -> str | None:
    if given is None or given is True:
        return request_id(number)
    return given or None


def error_body(
    status: int, error_type: str | None, message: str | None, number: int, *, request_id: str | bool | None = None,
    edge: bool = False,
) -> bytes:  # fmt: skip
    """The API's JSON error body for ``status`` (``edge``: in the layout of the errors OpenAI's edge
    answers); ``error_type`` sets ``error.type`` (and ``error.code``, unless it names a class of error:
    ``insufficient_quota``)."""
    default_type, default_code, param, default_message = ERROR_TYPES.get(status, ERROR_TYPES[500])
    ident = _ident(request_id, number)
    if message is None:
        message = default_message
        if "{request_id}" in message:
            message = message.format(request_id=ident) if ident else _SERVER_ERROR
    code = default_code if error_type is None or error_type in _CLASSES else error_type
    document = {"error": {"message": message, "type": error_type or default_type, "param": param, "code": code}}
    if edge:
        return (json.dumps(document, indent=4, ensure_ascii=False) + "\n").encode()
    return json.dumps(document, indent=2, ensure_ascii=False).encode()


def _stream_error(error_type: str | None, message: str | None) -> dict[str, Any]:
    return {"message": message or _SERVER_ERROR, "type": error_type or "server_error", "param": None, "code": None}


def _data_lines(name: str | None, data: str) -> bytes:
    """An SSE event (``event:`` only when named), a ``data:`` line for each line of ``data``."""
    lines = "".join(f"data: {line}\n" for line in re.split(r"\r\n|\r|\n", data))
    return ((f"event: {name}\n" if name else "") + lines + "\n").encode()


def _compact(value: Any) -> str:
    return json.dumps(value, ensure_ascii=False, separators=(",", ":"))


def _dict(event: Event) -> dict[str, Any]:
    data = event.json
    return data if isinstance(data, dict) else {}


class OpenAIProvider(Provider):
    """What both OpenAI APIs share: the error responses, the key, the keep-alive."""

    key_variables: ClassVar[tuple[str, ...]] = ("OPENAI_API_KEY",)
    framing: ClassVar[str] = "sse"
    #: the status of the API's overload (the ``overloaded`` fault's, instead of Anthropic's 529)
    overloaded_status: ClassVar[int] = 503
    #: the error statuses OpenAI's edge answers, in its layout (four-space JSON, a final LF, charset)
    edge_statuses: ClassVar[frozenset[int]] = _EDGE

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
            raw = error_body(status, error_type, message, number, request_id=request_id,
                             edge=status in self.edge_statuses)  # fmt: skip
        else:  # not the API's JSON (a proxy's page): no request id unless one is asked for
            raw = raw_body(body)
            request_id = False if request_id is None else request_id
        edge = status in self.edge_statuses
        kind = content_type or ("application/json; charset=utf-8" if edge else "application/json")
        out = [("content-type", kind), ("content-length", str(len(raw)))]
        ident = _ident(request_id, number)
        if ident is not None:
            out.append(("x-request-id", ident))
        if status == 429:
            out += _RATE_LIMIT_HEADERS
        out += retry_headers(retry_after=retry_after, retry_after_date=retry_after_date,
                             retry_after_ms=retry_after_ms, should_retry=should_retry)  # fmt: skip
        return merged_headers(out, headers), raw

    def keep_alive(self) -> bytes:
        return _KEEP_ALIVE

    def harness_error(
        self, status: int, error_type: str | None, message: str, *, retry: bool = False, close: bool = False
    ) -> tuple[Headers, bytes]:
        """Like the API's errors, without a request id (nothing here came from the API);
        ``x-should-retry`` is what the openai SDK obeys."""
        kind = error_type or ("server_error" if status >= 500 else "invalid_request_error")
        body = json.dumps({"error": {"message": message, "type": kind, "param": None, "code": None}}).encode()
        headers = [("content-type", "application/json"), ("content-length", str(len(body)))]
        headers.append(("x-should-retry", "true" if retry else "false"))
        if retry:
            headers.append(("retry-after", "1"))
        if close:
            headers.append(("connection", "close"))
        return tuple(headers), body


# --- Chat Completions -----------------------------------------------------------------------------


class OpenAIChat(OpenAIProvider):
    """``POST .../chat/completions``: ``data:`` lines of ``chat.completion.chunk`` objects, then
    ``data: [DONE]``; what OpenAI-compatible servers (Groq, OpenRouter, Mistral, vLLM) speak too."""

    name: ClassVar[str] = "openai"
    requests: ClassVar[str] = r"^POST \S*?/chat/completions(?:[?#]|$)"

    def error_event(
        self, error_type: str | None = None, message: str | None = None, *, data: str | None = None,
        event: str | None = None,
    ) -> bytes:  # fmt: skip
        """A ``data: {"error": {...}}`` chunk (no event name, as the API sends it; ``event``: named,
        as Groq names its ``error``); the SDK raises it as ``openai.APIError`` with its message."""
        text = data if data is not None else _compact({"error": _stream_error(error_type, message)})
        return _data_lines(event, text)

    def whole_message(self, events: Sequence[Event]) -> bytes:
        """The non-streaming ``chat.completion`` for a recorded stream: the chunks' deltas joined per
        choice (content, refusal, tool calls), their finish reasons, and the usage chunk's usage."""
        first: dict[str, Any] = {}
        choices: dict[int, dict[str, Any]] = {}
        tools: dict[int, dict[int, dict[str, Any]]] = {}
        usage = None
        texts = Pieces()  # the deltas, joined once: adding each to the text so far is quadratic
        for event in events:
            data = _dict(event)
            if not data:
                continue
            first = first or data
            if isinstance(data.get("usage"), dict):
                usage = data["usage"]
            for choice in data.get("choices") or []:
                index = choice.get("index", 0)
                message = choices.setdefault(index, {"role": "assistant", "content": None, "refusal": None,
                                                     "annotations": [], "finish_reason": None})  # fmt: skip
                delta = choice.get("delta") or {}
                for key in ("content", "refusal"):
                    if isinstance(delta.get(key), str):
                        texts.add(message, key, delta[key])
                for call in delta.get("tool_calls") or []:
                    slot = tools.setdefault(index, {}).setdefault(call.get("index", 0), {
                        "id": None, "type": "function", "function": {"name": "", "arguments": ""}})  # fmt: skip
                    slot["id"] = call.get("id") or slot["id"]
                    function = call.get("function") or {}
                    texts.add(slot["function"], "name", function.get("name") or "")
                    texts.add(slot["function"], "arguments", function.get("arguments") or "")
                if choice.get("finish_reason"):
                    message["finish_reason"] = choice["finish_reason"]
        texts.join()
        out_choices = []
        for index in sorted(choices):
            message = choices[index]
            finish = message.pop("finish_reason")
            if index in tools:
                message["tool_calls"] = [tools[index][number] for number in sorted(tools[index])]
            out_choices.append({"index": index, "message": message, "logprobs": None, "finish_reason": finish})
        whole = {"id": first.get("id"), "object": "chat.completion", "created": first.get("created"),
                 "model": first.get("model"), "choices": out_choices, "usage": usage,
                 "service_tier": first.get("service_tier"), "system_fingerprint": first.get("system_fingerprint")}  # fmt: skip
        return json.dumps(whole, ensure_ascii=False, indent=2).encode()

    # --- lint -------------------------------------------------------------------------------------

    def lint(self, events: Sequence[Event], *, broke: bool) -> list[str]:
        """Every event is a JSON chunk (unnamed, or Groq's ``error``) or ``[DONE]``, nothing follows
        ``[DONE]``, a chunk with empty ``choices`` carries the usage and comes after the last choice
        chunk, and the stream ends with ``[DONE]`` after a ``finish_reason`` on the last choice chunk,
        unless it reported an error or the connection broke."""
        problems: list[str] = []
        done: int | None = None
        error = False
        last_choice: int | None = None
        finished: dict[int, str | None] = {}
        usage_at: list[int] = []
        for number, event in enumerate(events, 1):
            if done is not None:
                problems.append(f"event {number} comes after data: [DONE]; the SDK never reads it")
                break
            if event.data == "[DONE]":
                done = number
                continue
            data = event.json
            if not isinstance(data, dict):
                problems.append(f"event {number} ({event.event}): its data is neither a JSON object nor [DONE]")
                continue
            if event.event not in ("message", "error"):
                problems.append(f"event {number} is named {event.event!r}; Chat Completions chunks are unnamed")
            if data.get("error"):
                error = True
                continue
            if data.get("object") not in (None, "chat.completion.chunk"):
                problems.append(f"event {number}: object {data.get('object')!r}, not chat.completion.chunk")
            choices = data.get("choices")
            if choices:
                last_choice = number
                for choice in choices if isinstance(choices, list) else []:
                    if isinstance(choice, dict):
                        index = choice.get("index", 0)
                        finished[index] = finished.get(index) or choice.get("finish_reason")
            elif choices == []:
                usage_at.append(number)
                if not isinstance(data.get("usage"), dict):
                    problems.append(f"event {number} has no choices and no usage")
        for number in usage_at:
            if last_choice is not None and number < last_choice:
                problems.append(f"event {number}: the usage chunk (empty choices) comes before choice chunks")
        if error or broke:
            return problems
        if events and done is None:
            problems.append("the stream ends without data: [DONE], and the recording does not say it broke "
                            "(the SDK takes it for a complete answer)")  # fmt: skip
        if last_choice is not None:
            last = [c for c in _dict(events[last_choice - 1]).get("choices") or [] if isinstance(c, dict)]
            if not any(choice.get("finish_reason") for choice in last):
                problems.append(f"the last choice chunk (event {last_choice}) has no finish_reason")
            seen_last = {choice.get("index", 0) for choice in last}
            unfinished = sorted(index for index, reason in finished.items() if not reason and index not in seen_last)
            if unfinished:
                problems.append(f"choice {', '.join(map(str, unfinished))} never got a finish_reason")
        return problems

    # --- inspect ----------------------------------------------------------------------------------

    def tokens(self, events: Sequence[Event]) -> dict[str, int]:
        for event in reversed(events):
            if '"usage"' not in event.data or event.data == "[DONE]":
                continue
            usage = _dict(event).get("usage")
            if isinstance(usage, dict):
                return _usage(usage, ("prompt_tokens", "completion_tokens", "total_tokens"),
                              ("prompt_tokens_details", "completion_tokens_details"))  # fmt: skip
        return {}

    def stop_reason(self, events: Sequence[Event]) -> str | None:
        for event in reversed(events):
            if '"finish_reason"' not in event.data:
                continue
            for choice in reversed(_dict(event).get("choices") or []):
                if isinstance(choice, dict) and choice.get("finish_reason"):
                    return str(choice["finish_reason"])
        return None

    def ending(self, events: Sequence[Event]) -> str | None:
        error = _chat_error(events)
        if error is not None:
            return f"in-stream error: {error}"
        datas = [event.data for event in events]
        if not datas:
            return None
        if "[DONE]" not in datas:
            return "clean, but early (no [DONE]: the SDK takes it for a complete answer)"
        if self.stop_reason(events[: datas.index("[DONE]")]) is None:
            return "clean, but early ([DONE] before any finish_reason)"
        return None

    def tool_calls(self, events: Sequence[Event]) -> list[str]:
        """Each tool call the stream makes, as ``name(arguments)``."""
        calls: dict[tuple[int, int], list[str]] = {}
        texts = Pieces()
        for event in events:
            if '"tool_calls"' not in event.data:
                continue
            for choice in _dict(event).get("choices") or []:
                for call in ((choice or {}).get("delta") or {}).get("tool_calls") or []:
                    slot = calls.setdefault((choice.get("index", 0), call.get("index", 0)), ["", ""])
                    function = call.get("function") or {}
                    texts.add(slot, 0, function.get("name") or "")
                    texts.add(slot, 1, function.get("arguments") or "")
        texts.join()
        return [f"{name}({arguments})" for name, arguments in (calls[key] for key in sorted(calls))]

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
        """A Chat Completions stream as the API frames one in 2025-12 (tests/data/openai/chat): the
        same fields in the same order, a role chunk, content deltas, each tool call's id and name,
        then its arguments in pieces, the finish chunk, the usage chunk (``include_usage``), [DONE]."""
        if thinking:
            raise ConfigError("synth: OpenAI Chat Completions streams carry no reasoning text; leave out "
                              "thinking (or synthesize an openai-responses stream, whose reasoning summary does)")  # fmt: skip
        ident = hashlib.sha256(f"{seed}:{text}:{tools}".encode()).hexdigest()
        head = {"id": f"chatcmpl-{_alnum(ident, 29)}", "object": "chat.completion.chunk",
                "created": 1767225600 + seed % 86400, "model": model, "service_tier": "default",
                "system_fingerprint": f"fp_{ident[40:50]}"}  # fmt: skip
        events: list[bytes] = []

        def chunk(delta: dict[str, Any], finish: str | None = None, choices: bool = True, usage: Any = None) -> None:
            body = {**head, "choices": [{"index": 0, "delta": delta, "logprobs": None, "finish_reason": finish}]
                    if choices else [], "usage": usage, "obfuscation": _padding(rng)}  # fmt: skip
            events.append(f"data: {_compact(body)}\n\n".encode())

        chunk({"role": "assistant", "content": None if tools and not text else "", "refusal": None})
        for piece in pieces(text, rng) if text else []:
            chunk({"content": piece})
        for number, (name, arguments) in enumerate(tools or []):
            call_id = f"call_{_alnum(ident[number:] + ident, 24)}"
            chunk({"tool_calls": [{"index": number, "id": call_id, "type": "function",
                                   "function": {"name": name, "arguments": ""}}]})  # fmt: skip
            for piece in pieces(json.dumps(arguments, ensure_ascii=False), rng):
                chunk({"tool_calls": [{"index": number, "function": {"arguments": piece}}]})
        chunk({}, "tool_calls" if tools else "stop")
        prompt_tokens = tokens(prompt)
        completion_tokens = tokens(f"{text or ''} {json.dumps(tools or [])}")
        usage = {"prompt_tokens": prompt_tokens, "completion_tokens": completion_tokens,
                 "total_tokens": prompt_tokens + completion_tokens,
                 "prompt_tokens_details": {"cached_tokens": 0, "audio_tokens": 0},
                 "completion_tokens_details": {"reasoning_tokens": 0, "audio_tokens": 0,
                                               "accepted_prediction_tokens": 0, "rejected_prediction_tokens": 0}}  # fmt: skip
        chunk({}, choices=False, usage=usage)
        events.append(DONE)
        request_json = {"messages": [{"role": "user", "content": prompt}], "model": model, "stream": True,
                        "stream_options": {"include_usage": True}}  # fmt: skip
        request = ("POST", "https://api.openai.com/v1/chat/completions", (("content-type", "application/json"),),
                   _compact(request_json).encode())  # fmt: skip
        return events, request, _stream_headers(b"".join(events))


def _chat_error(events: Sequence[Event]) -> str | None:
    """What the stream's in-stream error says it is (its type, code or message), or ``None``."""
    for event in events:
        if '"error"' not in event.data:
            continue
        error = _dict(event).get("error")
        if error:
            if isinstance(error, dict):
                return str(error.get("code") or error.get("type") or error.get("message") or "error")
            return str(error)
    return None


# --- Responses -------------------------------------------------------------------------------------


class OpenAIResponses(OpenAIProvider):
    """``POST .../responses``: ``event:`` + ``data:`` pairs named as their ``type``, numbered by
    ``sequence_number`` (since 2025), ending with ``response.completed``, ``response.incomplete`` or
    ``response.failed``; no ``[DONE]``."""

    name: ClassVar[str] = "openai-responses"
    requests: ClassVar[str] = r"^POST \S*?/responses(?:[?#]|$)"
    #: its 401 and 400 were recorded in the API's layout; a 429 is the edge's, as for Chat Completions
    edge_statuses: ClassVar[frozenset[int]] = frozenset({429})

    def claims(self, method: str, url: str, headers: Sequence[tuple[str, str]] = ()) -> bool:
        # also a background response streamed again: GET .../responses/{id}?stream=true
        return super().claims(method, url, headers) or re.search(r"^GET \S*?/responses/[^/?#]+\?(?:\S*&)?stream=true",
                                                                 f"{method} {url}") is not None  # fmt: skip

    def error_event(
        self, error_type: str | None = None, message: str | None = None, *, data: str | None = None,
        event: str | None = None,
    ) -> bytes:  # fmt: skip
        """``event: error`` with the SDK's ``ResponseErrorEvent`` fields (``code`` is ``error_type``);
        the SDK yields it as an event and raises nothing. Its ``sequence_number`` follows the
        stream's when the fault places it (``fit_event``)."""
        if data is None:
            document = {"type": "error", "code": error_type or "server_error",
                        "message": message or _RESPONSE_FAILED, "param": None}  # fmt: skip
            data = _compact(document)
        return _data_lines(event or "error", data)

    def fit_event(self, event: bytes, before: Sequence[Event]) -> bytes:
        """``event`` (one inserted by a fault) numbered to follow ``before``, the events sent before
        it: the next ``sequence_number`` when they carry one (0 when none was sent), none when the
        stream predates them (2025-05 recordings)."""
        last = next((n for e in reversed(before) if isinstance(n := _dict(e).get("sequence_number"), int)), None)
        if before and last is None:
            return event
        name, _, data = event.decode().partition("\ndata: ")
        try:
            document = json.loads(data)
        except ValueError:
            return event
        if not isinstance(document, dict):
            return event
        document.pop("sequence_number", None)
        kind = {"type": document.pop("type")} if "type" in document else {}
        numbered = {**kind, "sequence_number": 0 if last is None else last + 1, **document}
        return f"{name}\ndata: {_compact(numbered)}\n\n".encode()

    def failed_event(self, events: Sequence[Event], code: str, message: str | None) -> bytes:
        """A ``response.failed`` terminal event for a stream that sent ``events``: the response
        ``response.created`` announced, failed with ``code`` and ``message``, holding the output items
        finished so far, numbered to follow ``events``."""
        created = next((_dict(e).get("response") for e in events if e.event == "response.created"), None)
        response = dict(created) if isinstance(created, dict) else {"id": None, "object": "response"}
        response.update(status="failed", error={"code": code, "message": message or _RESPONSE_FAILED},
                        output=_finished_items(events), usage=None)  # fmt: skip
        document = {"type": "response.failed", "response": response}
        return self.fit_event(f"event: response.failed\ndata: {_compact(document)}\n\n".encode(), events)

    def whole_message(self, events: Sequence[Event]) -> bytes:
        """The non-streaming body: the terminal event's ``response`` (what the API returns without
        ``stream``), or ``response.created``'s with the items finished, when the stream has no end."""
        for event in reversed(events):
            if event.event in TERMINAL and isinstance(_dict(event).get("response"), dict):
                return json.dumps(_dict(event)["response"], ensure_ascii=False, indent=2).encode()
        created = next((_dict(e).get("response") for e in events if e.event == "response.created"), None)
        response = dict(created) if isinstance(created, dict) else {}
        response["output"] = _finished_items(events)
        return json.dumps(response, ensure_ascii=False, indent=2).encode()

    # --- lint -------------------------------------------------------------------------------------

    def lint(self, events: Sequence[Event], *, broke: bool) -> list[str]:
        """A Responses stream starts with response.created (or an error), names each event as its
        data's ``type``, numbers every event one after the other when it numbers any
        (``sequence_number``), and ends with its terminal event, after which nothing comes, unless
        it reported an error or the connection broke."""
        problems: list[str] = []
        if not events:
            return problems
        if events[0].event not in ("response.created", "error"):
            problems.append(f"the first event is {events[0].event!r}; a Responses stream starts with response.created")
        previous: int | None = None
        numbered = 0
        ended: int | None = None
        for number, event in enumerate(events, 1):
            if ended is not None:
                problems.append(f"event {number} ({event.event}) comes after the terminal event {ended}")
                break
            if event.data == "[DONE]":
                problems.append(f"event {number} is data: [DONE]; a Responses stream ends with its terminal event "
                                "(a proxy added it)")  # fmt: skip
                continue
            data = event.json
            if not isinstance(data, dict):
                problems.append(f"event {number} ({event.event}): its data is not a JSON object")
                continue
            if data.get("type") != event.event:
                problems.append(f"event {number}: named {event.event!r} but its data says type {data.get('type')!r}")
            sequence = data.get("sequence_number")
            if isinstance(sequence, int) and not isinstance(sequence, bool):
                numbered += 1
                if previous is not None and sequence <= previous:
                    problems.append(f"event {number}: sequence_number {sequence} after {previous}; it must increase")
                elif previous is not None and sequence != previous + 1:
                    problems.append(f"event {number}: sequence_number jumps from {previous} to {sequence} "
                                    f"({sequence - previous - 1} events missing)")  # fmt: skip
                previous = sequence
            if event.event in TERMINAL or event.event == "error":
                ended = number
        if 0 < numbered < len([e for e in events if e.data != "[DONE]"]):
            problems.append(f"only {numbered} of {len(events)} events carry a sequence_number")
        if ended is None and not broke:
            problems.append(f"the stream ends with {events[-1].event!r}, not {' / '.join(TERMINAL)}, and the "
                            "recording does not say it broke")  # fmt: skip
        return problems

    # --- inspect ----------------------------------------------------------------------------------

    def tokens(self, events: Sequence[Event]) -> dict[str, int]:
        for event in reversed(events):
            if event.event in TERMINAL:
                usage = (_dict(event).get("response") or {}).get("usage")
                if isinstance(usage, dict):
                    return _usage(usage, ("input_tokens", "output_tokens", "total_tokens"),
                                  ("input_tokens_details", "output_tokens_details"))  # fmt: skip
        return {}

    def stop_reason(self, events: Sequence[Event]) -> str | None:
        """``completed``, the reason a response is incomplete (``max_output_tokens``), or ``failed``."""
        for event in reversed(events):
            if event.event in TERMINAL:
                response = _dict(event).get("response") or {}
                if event.event == "response.incomplete":
                    details = response.get("incomplete_details") or {}
                    return str(details.get("reason") or "incomplete")
                return str(response.get("status") or event.event.removeprefix("response."))
        return None

    def ending(self, events: Sequence[Event]) -> str | None:
        for event in events:
            if event.event == "error":
                data = _dict(event)
                nested = data.get("error")
                error: dict[str, Any] = nested if isinstance(nested, dict) else data
                return f"in-stream error: {error.get('code') or error.get('type') or 'error'}"
            if event.event == "response.failed":
                error = (_dict(event).get("response") or {}).get("error") or {}
                return f"response.failed: {error.get('code') or 'no error given'}"
        names = [event.event for event in events]
        if names and not any(name in TERMINAL for name in names):
            return "clean, but early (no response.completed)"
        return None

    def tool_calls(self, events: Sequence[Event]) -> list[str]:
        """Each function call the stream makes, as ``name(arguments)``; other tool calls by type."""
        calls = []
        for item in _finished_items(events) or _added_items(events):
            if item.get("type") == "function_call":
                calls.append(f"{item.get('name')}({item.get('arguments', '')})")
            elif str(item.get("type", "")).endswith("_call"):
                calls.append(str(item["type"]))
        return calls

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
        """A Responses stream as the API frames one in 2025-10 (tests/data/openai/responses): numbered
        events named as their type; ``thinking`` as a reasoning item's summary, ``text`` as a message,
        each tool call as a function_call item with its arguments in pieces; response.completed."""
        ident = hashlib.sha256(f"{seed}:{text}:{thinking}:{tools}".encode()).hexdigest()
        events: list[bytes] = []
        response = _response_object(f"resp_{ident[:50]}", 1767225600 + seed % 86400, model)

        def event(name: str, **body: Any) -> None:
            events.append(f"event: {name}\ndata: {_compact({'type': name, 'sequence_number': len(events), **body})}"
                          "\n\n".encode())  # fmt: skip

        event("response.created", response=response)
        event("response.in_progress", response=response)
        output: list[dict[str, Any]] = []
        if thinking:
            item_id = f"rs_{ident[1:51]}"
            index = len(output)
            event("response.output_item.added", output_index=index,
                  item={"id": item_id, "type": "reasoning", "summary": []})  # fmt: skip
            summary: dict[str, Any] = {"type": "summary_text", "text": ""}
            event("response.reasoning_summary_part.added", item_id=item_id, output_index=index, summary_index=0,
                  part=summary)  # fmt: skip
            for piece in pieces(thinking, rng):
                event("response.reasoning_summary_text.delta", item_id=item_id, output_index=index, summary_index=0,
                      delta=piece, obfuscation=_padding(rng))  # fmt: skip
            event("response.reasoning_summary_text.done", item_id=item_id, output_index=index, summary_index=0,
                  text=thinking)  # fmt: skip
            event("response.reasoning_summary_part.done", item_id=item_id, output_index=index, summary_index=0,
                  part={"type": "summary_text", "text": thinking})  # fmt: skip
            output.append({"id": item_id, "type": "reasoning", "summary": [{"type": "summary_text", "text": thinking}]})
            event("response.output_item.done", output_index=index, item=output[-1])
        if text:
            item_id = f"msg_{ident[2:52]}"
            index = len(output)
            event("response.output_item.added", output_index=index,
                  item={"id": item_id, "type": "message", "status": "in_progress", "content": [], "role": "assistant"})  # fmt: skip
            event("response.content_part.added", item_id=item_id, output_index=index, content_index=0,
                  part={"type": "output_text", "annotations": [], "logprobs": [], "text": ""})  # fmt: skip
            for piece in pieces(text, rng):
                event("response.output_text.delta", item_id=item_id, output_index=index, content_index=0, delta=piece,
                      logprobs=[], obfuscation=_padding(rng))  # fmt: skip
            event("response.output_text.done", item_id=item_id, output_index=index, content_index=0, text=text,
                  logprobs=[])  # fmt: skip
            part: dict[str, Any] = {"type": "output_text", "annotations": [], "logprobs": [], "text": text}
            event("response.content_part.done", item_id=item_id, output_index=index, content_index=0, part=part)
            output.append({"id": item_id, "type": "message", "status": "completed", "content": [part],
                           "role": "assistant"})  # fmt: skip
            event("response.output_item.done", output_index=index, item=output[-1])
        for number, (name, arguments) in enumerate(tools or []):
            item_id = f"fc_{ident[3 + number:53 + number]}"
            index = len(output)
            call = {"id": item_id, "type": "function_call", "status": "in_progress", "arguments": "",
                    "call_id": f"call_{_alnum(ident[number:] + ident, 24)}", "name": name}  # fmt: skip
            event("response.output_item.added", output_index=index, item=call)
            encoded = json.dumps(arguments, ensure_ascii=False)
            for piece in pieces(encoded, rng):
                event("response.function_call_arguments.delta", item_id=item_id, output_index=index, delta=piece,
                      obfuscation=_padding(rng))  # fmt: skip
            event("response.function_call_arguments.done", item_id=item_id, output_index=index, arguments=encoded)
            output.append({**call, "status": "completed", "arguments": encoded})
            event("response.output_item.done", output_index=index, item=output[-1])
        input_tokens, reasoning = tokens(prompt), tokens(thinking) if thinking else 0
        output_tokens = reasoning + tokens(f"{text or ''} {json.dumps(tools or [])}")
        usage = {"input_tokens": input_tokens, "input_tokens_details": {"cached_tokens": 0},
                 "output_tokens": output_tokens, "output_tokens_details": {"reasoning_tokens": reasoning},
                 "total_tokens": input_tokens + output_tokens}  # fmt: skip
        event("response.completed", response={**response, "status": "completed", "output": output, "usage": usage})
        request_json = {"input": [{"content": prompt, "role": "user"}], "model": model, "stream": True}
        request = ("POST", "https://api.openai.com/v1/responses", (("content-type", "application/json"),),
                   _compact(request_json).encode())  # fmt: skip
        return events, request, _stream_headers(b"".join(events))


_RESPONSE_FAILED = (
    "An error occurred while processing your request. You can retry your request, or contact us through our help "
    "center at help.openai.com if the error persists."
)


def _response_object(ident: str, created: int, model: str) -> dict[str, Any]:
    """A response in progress, with the fields a 2025-10 ``response.created`` has, in its order."""
    return {"id": ident, "object": "response", "created_at": created, "status": "in_progress", "background": False,
            "error": None, "incomplete_details": None, "instructions": None, "max_output_tokens": None,
            "max_tool_calls": None, "model": model, "output": [], "parallel_tool_calls": True,
            "previous_response_id": None, "prompt_cache_key": None, "reasoning": {"effort": None, "summary": None},
            "safety_identifier": None, "service_tier": "auto", "store": True, "temperature": 1.0,
            "text": {"format": {"type": "text"}, "verbosity": "medium"}, "tool_choice": "auto", "tools": [],
            "top_logprobs": 0, "top_p": 1.0, "truncation": "disabled", "usage": None, "user": None, "metadata": {}}  # fmt: skip


def _finished_items(events: Sequence[Event]) -> list[dict[str, Any]]:
    """The output items ``response.output_item.done`` delivered, in output order."""
    items: dict[int, dict[str, Any]] = {}
    for event in events:
        if event.event == "response.output_item.done":
            data = _dict(event)
            if isinstance(data.get("item"), dict):
                items[data.get("output_index", len(items))] = data["item"]
    return [items[index] for index in sorted(items)]


def _added_items(events: Sequence[Event]) -> list[dict[str, Any]]:
    """The output items started (``output_item.added``), function call arguments joined from their deltas."""
    items: dict[int, dict[str, Any]] = {}
    texts = Pieces()
    for event in events:
        data = _dict(event) if event.event.startswith("response.output_item.") or "arguments" in event.event else {}
        if event.event == "response.output_item.added" and isinstance(data.get("item"), dict):
            items[data.get("output_index", len(items))] = dict(data["item"])
        elif event.event == "response.function_call_arguments.delta":
            item = items.get(data.get("output_index", -1))
            if item is not None:
                if "arguments" in item and not isinstance(item["arguments"], str):
                    item["arguments"] = str(item["arguments"] or "")
                texts.add(item, "arguments", str(data.get("delta") or ""))
    texts.join()
    return [items[index] for index in sorted(items)]


def _usage(usage: dict[str, Any], counts: tuple[str, ...], details: tuple[str, ...]) -> dict[str, int]:
    """The token counts of a usage object, with the cached and reasoning counts from its details."""
    out = {key: usage[key] for key in counts if isinstance(usage.get(key), int)}
    for key in details:
        for name, value in (usage.get(key) or {}).items():
            if name in ("cached_tokens", "reasoning_tokens") and isinstance(value, int):
                out[name] = value
    return out


def _alnum(seed: str, size: int) -> str:
    """``size`` letters and digits drawn from ``seed`` (an id's random part, made reproducible)."""
    rng = random.Random(seed)
    return "".join(rng.choice(string.ascii_letters + string.digits) for _ in range(size))


def _padding(rng: random.Random) -> str:
    """The ``obfuscation`` field's random-length padding, as on the API's 2025 events."""
    return "".join(rng.choice(string.ascii_letters + string.digits) for _ in range(rng.randint(0, 15)))


def _stream_headers(body: bytes) -> Headers:
    return (("content-type", "text/event-stream; charset=utf-8"), ("openai-version", "2020-10-01"),
            ("x-request-id", f"req_synth{hashlib.sha256(body).hexdigest()[:23]}"))  # fmt: skip


CHAT = OpenAIChat()
RESPONSES = OpenAIResponses()
