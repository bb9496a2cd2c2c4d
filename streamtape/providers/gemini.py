"""Google's Gemini API (``generateContent``, ``streamGenerateContent?alt=sse``) on the wire.

What the recordings in tests/data/gemini show, and this module writes:

- a stream is ``data: <json>`` events with **CRLF** line ends and no event names, each a whole
  ``GenerateContentResponse`` (compact JSON with a space after each colon); ``usageMetadata`` rides on
  every chunk (the last is the one to read), ``finishReason`` only on the last chunk's candidate, and
  **nothing ends the stream**: no terminator event, just the end of the body. A body cut short cleanly
  is therefore a complete-looking stream without a ``finishReason``;
- an error is a bare pretty-printed JSON document ``{"error": {"code", "message", "status"}}``, also for a
  streamed request, whose error response still says ``Content-Type: text/event-stream``;
- an error in a 200 stream is that same bare JSON appended to the events, not a ``data:`` event
  (vercel/ai#5217, theopenco/llmgateway#3616 quote it); google-genai reads it (it gathers lines that are
  not ``data:`` until their braces balance) and raises ``ServerError`` / ``ClientError``;
- there is no keep-alive event: the stream is silent until the first chunk.

Recorded: the 400 (bad key), 404 (unknown model) and 429 bodies and headers, and the streams. Modelled
from public reports: the 500 and 503 messages, the in-stream error, a ``SAFETY`` finish and a blocked
prompt (``streamtape.faults.gemini``). Gemini sends no request ids and no ``Retry-After`` header; a
retry delay goes where the API puts one, a ``RetryInfo`` detail in the body.
"""

from __future__ import annotations

import base64
import hashlib
import json
import random
import re
from collections.abc import Callable, Sequence
from http import HTTPStatus
from typing import TYPE_CHECKING, Any, ClassVar

from ..errors import ConfigError
from .base import Headers, Pieces, Provider, http_date, merged_headers, raw_body

if TYPE_CHECKING:
    from ..sse import Event

__all__ = ["ERRORS", "GEMINI", "GeminiProvider", "chunk_bytes", "error_body"]

_NOT_FOUND = ("models/this-model-does-not-exist-12345 is not found for API version v1beta, or is not supported "
              "for generateContent. Call ListModels to see the list of available models and their supported "
              "methods.")  # fmt: skip
_OVERLOADED = "The model is overloaded. Please try again later."

#: status -> (error.status, error.message). 404 and 429 are the recorded ones (tests/data/gemini); 500, 503
#: and 504 are the messages public reports quote (PublicAffairs/openai-gemini#15, vercel/ai#5217); the rest
#: are Google's canonical ones. A 400 for a bad key says API_KEY_INVALID (recorded), not this.
ERRORS: dict[int, tuple[str, str]] = {
    400: ("INVALID_ARGUMENT", "Request contains an invalid argument."),
    401: ("UNAUTHENTICATED", "Request had invalid authentication credentials. Expected OAuth 2 access token, login "
                             "cookie or other valid authentication credential. See "
                             "https://developers.google.com/identity/sign-in/web/devconsole-project."),
    403: ("PERMISSION_DENIED", "The caller does not have permission"),
    404: ("NOT_FOUND", _NOT_FOUND),
    409: ("ABORTED", "The operation was aborted."),
    429: ("RESOURCE_EXHAUSTED", "Resource exhausted. Please try again later. Please refer to "
                                "https://cloud.google.com/vertex-ai/generative-ai/docs/error-code-429 for more details."),
    499: ("CANCELLED", "The operation was cancelled."),
    500: ("INTERNAL", "An internal error has occurred. Please retry or report in "
                      "https://developers.generativeai.google/guide/troubleshooting"),
    501: ("UNIMPLEMENTED", "Method not found."),
    503: ("UNAVAILABLE", _OVERLOADED),
    504: ("DEADLINE_EXCEEDED", "Deadline expired before operation could complete."),
    529: ("UNAVAILABLE", _OVERLOADED),  # not a status Gemini sends: its overload is a 503
}  # fmt: skip
_CODES = {"INVALID_ARGUMENT": 400, "FAILED_PRECONDITION": 400, "OUT_OF_RANGE": 400, "UNAUTHENTICATED": 401,
          "PERMISSION_DENIED": 403, "NOT_FOUND": 404, "ABORTED": 409, "ALREADY_EXISTS": 409,
          "RESOURCE_EXHAUSTED": 429, "CANCELLED": 499, "INTERNAL": 500, "UNKNOWN": 500, "DATA_LOSS": 500,
          "UNIMPLEMENTED": 501, "UNAVAILABLE": 503, "DEADLINE_EXCEEDED": 504}  # fmt: skip

# What every recorded Gemini response carries besides its content type and framing (the recorded 400 on a
# streamed request, tests/data/gemini/http_400_api_key_invalid_stream.headers.json, without its date).
_SERVER_HEADERS = (
    ("vary", "Origin"), ("vary", "X-Origin"), ("vary", "Referer"),
    ("server", "scaffolding on HTTPServer2"), ("x-xss-protection", "0"), ("x-frame-options", "SAMEORIGIN"),
    ("x-content-type-options", "nosniff"), ("server-timing", "gfet4t7; dur=50"),
    ("alt-svc", 'h3=":443"; ma=2592000,h3-29=":443"; ma=2592000'),
)  # fmt: skip
_STREAM_TYPE = "text/event-stream"  # what a streamed request's errors say too (recorded 400, 404)
_JSON_TYPE = "application/json; charset=UTF-8"  # a generateContent response (recorded 429)

_HOST = re.compile(r"^[A-Z]+ https?://(?:[a-z0-9-]+\.)?generativelanguage\.googleapis\.com(?::\d+)?(?:[/?#]|$)")
_STATUS_WORD = re.compile(r"[A-Z][A-Z_]*")


def error_body(status: int, error_type: str | None = None, message: str | None = None, *,
               details: Sequence[dict[str, Any]] = ()) -> bytes:  # fmt: skip
    """Google's error document, as the API writes it: pretty-printed, two spaces, a final line end.
    ``error_type`` is the ``status`` word (``RESOURCE_EXHAUSTED``); the defaults are ``status``'s."""
    default_status, default_message = ERRORS.get(status, ("UNKNOWN", _phrase(status)))
    if error_type is not None and message is None and error_type != default_status:
        default_message = _phrase(_CODES.get(error_type, status))  # another status word: not the default's text
    error: dict[str, Any] = {"code": status, "message": message or default_message, "status": error_type or
                             default_status}  # fmt: skip
    if details:
        error["details"] = list(details)
    return json.dumps({"error": error}, indent=2, ensure_ascii=False).encode() + b"\n"


def chunk_bytes(document: dict[str, Any]) -> bytes:
    """One stream event as the API frames it: ``data: `` and compact JSON with ``": "`` between keys and
    values, then CRLF CRLF."""
    return b"data: " + _compact(document).encode() + b"\r\n\r\n"


def _compact(document: Any) -> str:
    return json.dumps(document, separators=(",", ": "), ensure_ascii=False)


def _phrase(status: int) -> str:
    try:
        return HTTPStatus(status).phrase
    except ValueError:
        return "Unknown error"


def _seconds(value: float) -> str:
    """A ``google.protobuf.Duration`` in JSON: ``"2s"``, ``"0.5s"``."""
    return (str(int(value)) if float(value).is_integer() else repr(float(value))) + "s"


class GeminiProvider(Provider):
    name: ClassVar[str] = "gemini"
    #: model calls under any host or prefix: the Gemini API's ``/v1beta/models/M:streamGenerateContent``,
    #: Vertex AI's ``.../publishers/google/models/M:streamGenerateContent``, tuned models, proxies
    requests: ClassVar[str] = r"^POST \S*?:(?:stream)?[gG]enerateContent(?:[?#]|$)"
    #: google-genai reads GOOGLE_API_KEY, then GEMINI_API_KEY; a replay-only tape fills only this one,
    #: because with both set google-genai warns on every ``Client()`` (GOOGLE_API_KEY is still redacted)
    key_variables: ClassVar[tuple[str, ...]] = ("GEMINI_API_KEY",)
    framing: ClassVar[str] = "sse"
    #: what ``overloaded`` sends to a Gemini call: the API's overload is a 503 UNAVAILABLE, never a 529
    overloaded_status: ClassVar[int] = 503

    def claims(self, method: str, url: str, headers: Sequence[tuple[str, str]] = ()) -> bool:
        """Model calls anywhere, every request to the Gemini API's host, Vertex AI's Google models, and
        whatever a Google client library sends (``x-goog-api-client``)."""
        line = f"{method} {url}"
        if super().claims(method, url, headers) or _HOST.match(line) or "/publishers/google/" in url:
            return True
        return any(k.lower() == "x-goog-api-client" for k, _ in headers)

    # --- what faults put on the wire --------------------------------------------------------------

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
        """Google's error document with the API's headers. ``retry_after`` / ``retry_after_ms`` become a
        ``RetryInfo`` detail (``retryDelay``), where the API says how long to wait; ``retry_after_date`` a
        ``retry-after`` header (the API sends none; a proxy may). ``should_retry`` and ``request_id`` have
        no Gemini form (google-genai decides by the status alone) and change nothing."""
        _status_word(error_type)
        if body is None:
            delay = retry_after if retry_after is not None else None if retry_after_ms is None else retry_after_ms / 1000
            details = [{"@type": "type.googleapis.com/google.rpc.RetryInfo", "retryDelay": _seconds(delay)}] \
                if delay is not None else []  # fmt: skip
            raw = error_body(status, error_type, message, details=details)
        else:
            raw = raw_body(body)
        out = [("content-type", content_type or _STREAM_TYPE), ("content-length", str(len(raw))), *_SERVER_HEADERS]
        if retry_after_date is not None:
            out.append(("retry-after", http_date(retry_after_date)))
        return merged_headers(out, headers), raw

    def error_event(
        self, error_type: str | None = None, message: str | None = None, *, data: str | None = None,
        event: str | None = None,
    ) -> bytes:  # fmt: skip
        """The API's error inside a 200 stream: its error document, bare, after the events (default: the
        overload, 503 ``UNAVAILABLE``). ``data`` (and ``event``): an SSE event instead, CRLF-framed, as a
        proxy or another server might send (``data='{"error": {...}}'``)."""
        if data is not None or event is not None:
            lines = [f"event: {event}"] if event is not None else []
            text = data if data is not None else _compact(json.loads(self._error_json(error_type, message)))
            lines += [f"data: {line}" for line in re.split(r"\r\n|\r|\n", text)]
            return ("\r\n".join(lines) + "\r\n\r\n").encode()
        return self._error_json(error_type, message)

    def _error_json(self, error_type: str | None, message: str | None) -> bytes:
        word = _status_word(error_type) or "UNAVAILABLE"
        return error_body(_CODES.get(word, 500), word, message)

    def keep_alive(self) -> bytes:
        raise ConfigError(
            "ping: Gemini sends no keep-alive event (its stream is silent until the first chunk), so there is "
            "nothing to send; for a slow model use delay:first_byte=S or stall:after=N,seconds=S"
        )

    def whole_message(self, events: Sequence[Event]) -> bytes:
        """``generateContent``'s answer for a recorded stream: one response with every part (adjacent text
        parts joined, as the API joins them), the last chunk's finish and usage, pretty-printed."""
        response: dict[str, Any] = {}
        parts: list[dict[str, Any]] = []
        candidate: dict[str, Any] = {}
        texts = Pieces()  # the parts' texts, joined once: adding each to the text so far is quadratic
        for data in _documents(events):
            for key in ("usageMetadata", "modelVersion", "responseId", "promptFeedback"):
                if key in data:
                    response[key] = data[key]
            first = _candidate(data)
            if first is None:
                continue
            candidate.update({k: v for k, v in first.items() if k != "content"})
            for part in (first.get("content") or {}).get("parts") or []:
                if _joinable(part) and parts and _joinable(parts[-1]):
                    texts.add(parts[-1], "text", part["text"])  # parts[-1] is this function's own copy
                else:
                    parts.append(dict(part))
        texts.join()
        if parts or candidate:
            candidate = {"content": {"parts": parts, "role": "model"}, **candidate}
            response = {"candidates": [candidate], **response}
        return json.dumps(response, indent=2, ensure_ascii=False).encode()

    def harness_error(
        self, status: int, error_type: str | None, message: str, *, retry: bool = False, close: bool = False
    ) -> tuple[Headers, bytes]:
        """Google's error document saying ``message``, as ``application/json`` (so google-genai reads it
        over aiohttp too); google-genai retries by the status alone, so ``retry`` adds nothing."""
        word = error_type if error_type and _STATUS_WORD.fullmatch(error_type) else None
        body = error_body(status, word, message)
        headers = [("content-type", _JSON_TYPE), ("content-length", str(len(body)))]
        if close:
            headers.append(("connection", "close"))
        return tuple(headers), body

    # --- what Gemini-only faults put on the wire (streamtape.faults.gemini) --------------------------

    def finish_chunk(self, reason: str, like: dict[str, Any] | None = None) -> bytes:
        """A last chunk whose candidate stops with ``reason`` and no content, as a safety stop ends a
        stream (``SAFETY``: with the ratings, one of them ``blocked``); usage, model and response id as in
        ``like``, a recorded chunk."""
        candidate: dict[str, Any] = {"finishReason": _status_word(reason), "index": 0}
        if reason == "SAFETY":
            candidate["safetyRatings"] = _ratings()
        return chunk_bytes({"candidates": [candidate], **_carried(like, "usageMetadata")})

    def blocked_chunk(self, reason: str, like: dict[str, Any] | None = None) -> bytes:
        """The whole answer to a prompt the API refuses: no candidates, ``promptFeedback.blockReason``
        (``SAFETY``: with the ratings), the prompt's token count only."""
        feedback: dict[str, Any] = {"blockReason": _status_word(reason)}
        if reason == "SAFETY":
            feedback["safetyRatings"] = _ratings()
        carried = _carried(like)
        usage = (like or {}).get("usageMetadata")
        if isinstance(usage, dict) and isinstance(usage.get("promptTokenCount"), int):
            count = usage["promptTokenCount"]
            carried = {"usageMetadata": {"promptTokenCount": count, "totalTokenCount": count}, **carried}
        return chunk_bytes({"promptFeedback": feedback, **carried})

    # --- lint -------------------------------------------------------------------------------------

    def lint(self, events: Sequence[Event], *, broke: bool) -> list[str]:
        """Each event is a whole GenerateContentResponse in a nameless ``data:`` event, line ends do not
        mix, one response id throughout, ``finishReason`` only on the last candidate chunk, nothing after an
        error, and (the connection not broken) a ``finishReason`` at the end: no terminator exists, so a
        stream without one ended early."""
        problems: list[str] = []
        endings: dict[str, list[int]] = {}
        first_id: str | None = None
        finished = error = None
        for number, event in enumerate(events, 1):
            ending = _line_ending(event)
            if ending:
                endings.setdefault(ending, []).append(number)
            if event.event != "message":
                problems.append(f"event {number} is named {event.event!r}; Gemini names no events, and google-genai "
                                "cannot read an event: line (it raises UnknownApiResponseError)")  # fmt: skip
            data = event.json
            if not isinstance(data, dict):
                problems.append(f"event {number}: its data is not a JSON object; each Gemini event is a whole "
                                "GenerateContentResponse")  # fmt: skip
                continue
            if error is not None:
                problems.append(f"event {number} follows the error in event {error}; the API ends the stream there")
            if "error" in data:
                error = number
                continue
            if not {"candidates", "promptFeedback", "usageMetadata"} & set(data):
                problems.append(f"event {number} has no candidates, promptFeedback or usageMetadata; it is not a "
                                "GenerateContentResponse")  # fmt: skip
            ident = data.get("responseId")
            if isinstance(ident, str):
                if first_id is None:
                    first_id = ident
                elif ident != first_id:
                    problems.append(f"event {number}'s responseId {ident!r} is not event 1's {first_id!r}; the API "
                                    "repeats one id on every chunk (two streams spliced?)")  # fmt: skip
            if finished is not None and _candidate(data) is not None:
                problems.append(f"event {number} carries a candidate after the finishReason in event {finished}; "
                                "the API puts finishReason on the last candidate chunk only")  # fmt: skip
            if _finish(data) is not None and finished is None:
                finished = number
        if len(endings) > 1:
            shown = "; ".join(f"{kind} in events {_ranges(numbers)}" for kind, numbers in endings.items())
            problems.append(f"line ends are mixed ({shown}); Gemini ends every line with CRLF")
        blocked = any(isinstance(e.json, dict) and "blockReason" in (e.json.get("promptFeedback") or {})
                      for e in events)  # fmt: skip
        if events and finished is None and error is None and not blocked and not broke:
            problems.append("the stream ends without a finishReason and the recording does not say it broke: Gemini "
                            "sends no end-of-stream event, so a stream cut short cleanly looks complete to the SDK")  # fmt: skip
        return problems

    # --- inspect ----------------------------------------------------------------------------------

    def tokens(self, events: Sequence[Event]) -> dict[str, int]:
        """The last ``usageMetadata`` (every chunk carries one; the numbers change as it goes)."""
        for event in reversed(events):
            if "usageMetadata" not in event.data:
                continue
            usage = event.json.get("usageMetadata") if isinstance(event.json, dict) else None
            if isinstance(usage, dict):
                names = {"promptTokenCount": "input_tokens", "candidatesTokenCount": "output_tokens",
                         "thoughtsTokenCount": "thoughts_tokens", "cachedContentTokenCount": "cache_read_input_tokens",
                         "toolUsePromptTokenCount": "tool_use_prompt_tokens", "totalTokenCount": "total_tokens"}  # fmt: skip
                return {ours: usage[theirs] for theirs, ours in names.items() if isinstance(usage.get(theirs), int)}
        return {}

    def stop_reason(self, events: Sequence[Event]) -> str | None:
        """The candidate's ``finishReason`` (``STOP``, ``MAX_TOKENS``, ``SAFETY``...), or ``blocked: REASON``
        for a prompt the API refused to answer."""
        for event in reversed(events):
            if "finishReason" not in event.data and "blockReason" not in event.data:
                continue
            data = event.json if isinstance(event.json, dict) else {}
            reason = _finish(data)
            if reason is not None:
                return reason
            block = (data.get("promptFeedback") or {}).get("blockReason")
            if isinstance(block, str):
                return f"blocked: {block}"
        return None

    def tool_calls(self, events: Sequence[Event]) -> list[str]:
        """The names of the function calls the stream holds, in order (they arrive whole, several per
        event for parallel calls)."""
        names: list[str] = []
        for data in _documents(e for e in events if "functionCall" in e.data):
            for part in ((_candidate(data) or {}).get("content") or {}).get("parts") or []:
                call = part.get("functionCall") if isinstance(part, dict) else None
                if isinstance(call, dict):
                    names.append(str(call.get("name")))
        return names

    def ending(self, events: Sequence[Event]) -> str | None:
        for data in _documents(e for e in events if '"error"' in e.data):
            if isinstance(data.get("error"), dict):
                return f"in-stream error: {data['error'].get('status') or data['error'].get('code') or 'error'}"
        reason = self.stop_reason(events)
        if reason is not None and reason.startswith("blocked: "):
            return f"prompt {reason}"
        if events and reason is None:
            return "clean, but early (no finishReason; Gemini sends no end-of-stream event)"
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
        """A streamed ``streamGenerateContent?alt=sse`` response nobody recorded, framed as the API frames
        one: thought parts (``"thought": true``), then text, one piece per chunk, then the function calls
        whole in the last chunk with its ``finishReason``; ``usageMetadata`` on every chunk, the full
        counts on the last; one ``responseId`` throughout. CRLF line ends, no terminator."""
        digest = hashlib.sha256(f"{seed}:{text}:{thinking}:{tools}".encode()).digest()
        ident = base64.urlsafe_b64encode(digest).decode()[:23]
        prompt_tokens = tokens(prompt)
        chunks: list[list[dict[str, Any]]] = [[{"text": p, "thought": True}] for p in pieces(thinking, rng)] \
            if thinking else []  # fmt: skip
        chunks += [[{"text": piece}] for piece in pieces(text, rng)] if text else []
        calls: list[dict[str, Any]] = [{"functionCall": {"name": name, "args": args if isinstance(args, dict) else {"input": args}}}
                 for name, args in tools or []]  # fmt: skip
        if calls:
            signature = base64.b64encode(hashlib.sha512(digest).digest()).decode()
            calls[0]["thoughtSignature"] = signature
            chunks.append(calls)
        usage = {"promptTokenCount": prompt_tokens, "totalTokenCount": prompt_tokens,
                 "promptTokensDetails": [{"modality": "TEXT", "tokenCount": prompt_tokens}]}  # fmt: skip
        output = tokens(f"{text or ''} {json.dumps(tools or [])}") if (text or tools) else 0
        thoughts = tokens(thinking) if thinking else 0
        final = {"promptTokenCount": prompt_tokens, "candidatesTokenCount": output,
                 "totalTokenCount": prompt_tokens + output + thoughts,
                 "promptTokensDetails": [{"modality": "TEXT", "tokenCount": prompt_tokens}],
                 **({"thoughtsTokenCount": thoughts} if thoughts else {})}  # fmt: skip
        events = []
        for number, parts in enumerate(chunks, 1):
            candidate: dict[str, Any] = {"content": {"parts": parts, "role": "model"}}
            last = number == len(chunks)
            if last:
                candidate.update(finishReason="STOP", index=0)
                if calls:
                    candidate["finishMessage"] = "Model generated function call(s)."
            events.append(chunk_bytes({"candidates": [candidate], "usageMetadata": final if last else usage,
                                        "modelVersion": model, "responseId": ident}))  # fmt: skip
        request_json = {"contents": [{"parts": [{"text": prompt}], "role": "user"}]}
        request = ("POST", f"https://generativelanguage.googleapis.com/v1beta/models/{model}:streamGenerateContent?alt=sse",
                   (("content-type", "application/json"),), json.dumps(request_json).encode())  # fmt: skip
        headers = (("content-type", _STREAM_TYPE), ("content-disposition", "attachment"), *_SERVER_HEADERS)
        return events, request, headers


def _status_word(error_type: str | None) -> str | None:
    """``error_type`` as Google's ``status`` word (``RESOURCE_EXHAUSTED``), checked."""
    if error_type is not None and not _STATUS_WORD.fullmatch(error_type):
        raise ConfigError(f"gemini: error_type={error_type!r} is not a Google status word; give one such as "
                          "RESOURCE_EXHAUSTED, UNAVAILABLE, INTERNAL or INVALID_ARGUMENT")  # fmt: skip
    return error_type


def _ratings() -> list[dict[str, Any]]:
    ratings: list[dict[str, Any]] = [{"category": f"HARM_CATEGORY_{name}", "probability": "NEGLIGIBLE"}
                                     for name in ("SEXUALLY_EXPLICIT", "HATE_SPEECH", "HARASSMENT")]  # fmt: skip
    return [*ratings, {"category": "HARM_CATEGORY_DANGEROUS_CONTENT", "probability": "HIGH", "blocked": True}]


def _carried(like: dict[str, Any] | None, *keys: str) -> dict[str, Any]:
    """What a made-up chunk keeps of a recorded one: ``keys``, the model version and the response id."""
    return {key: like[key] for key in (*keys, "modelVersion", "responseId") if like and key in like}


def _documents(events: Any) -> Any:
    """The events' data that parse as JSON objects."""
    for event in events:
        if isinstance(event.json, dict):
            yield event.json


def _candidate(data: dict[str, Any]) -> dict[str, Any] | None:
    candidates = data.get("candidates")
    if isinstance(candidates, list) and candidates and isinstance(candidates[0], dict):
        return candidates[0]
    return None


def _finish(data: dict[str, Any]) -> str | None:
    candidates = data.get("candidates")
    if not isinstance(candidates, list):
        return None
    reasons = [c.get("finishReason") for c in candidates if isinstance(c, dict)]
    return next((r for r in reasons if isinstance(r, str)), None)


def _joinable(part: Any) -> bool:
    return isinstance(part, dict) and set(part) <= {"text", "thought"} and isinstance(part.get("text"), str)


def _line_ending(event: Event) -> str | None:
    """``CRLF`` or ``LF``, from the event's span: a one-line ``data: `` event spans its line and two line
    ends; any other layout (several lines, no space after the colon) says nothing here."""
    if "\n" in event.data:
        return None
    extra = (event.end - event.start) - len(b"data: ") - len(event.data.encode("utf-8", "replace"))
    return {4: "CRLF", 2: "LF"}.get(extra)


def _ranges(numbers: list[int]) -> str:
    return f"{numbers[0]}-{numbers[-1]}" if len(numbers) > 1 and numbers[-1] - numbers[0] == len(numbers) - 1 \
        else ", ".join(map(str, numbers[:6])) + (", ..." if len(numbers) > 6 else "")  # fmt: skip


GEMINI = GeminiProvider()
