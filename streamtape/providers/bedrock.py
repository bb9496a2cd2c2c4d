"""Amazon Bedrock Runtime on the wire: ``converse-stream`` and ``invoke-with-response-stream`` (AWS
event streams, ``streamtape.framing.eventstream``), and ``converse`` / ``invoke``.

What is recorded and what is modelled (tests/data/bedrock/SOURCES.md has the provenance):

- **Recorded**: the 400 (``The provided model identifier is invalid.``), 403 (``ExpiredTokenException``,
  with its ``x-amzn-ErrorType`` and ``x-amzn-RequestId``) and 500 bodies; the event grammar, the
  payloads' ``"p"`` padding and their sorted keys, the three string headers every event frame carries;
  ``invoke-with-response-stream``'s ``{"bytes": "<base64>"}`` chunks.
- **Modelled**, from botocore's ``bedrock-runtime`` service model (error names and statuses, the
  stream's exception members) and from public error reports quoted in SOURCES.md: the 429
  ``ThrottlingException`` and 503 ``ServiceUnavailableException`` bodies and headers, and every
  in-stream exception frame (no recording of one exists). An exception frame carries
  ``:exception-type``, ``:content-type`` and ``:message-type: exception``, in that order, and a
  ``{"message": ...}`` payload.

An ``invoke-with-response-stream`` body holds the model's own events, base64 in each ``chunk``:
for Anthropic models (``anthropic.AnthropicBedrock``), Messages API events, which ``lint``,
``inspect`` and ``json_body`` read with the Anthropic provider's rules.
"""

from __future__ import annotations

import base64
import binascii
import hashlib
import json
import random
import re
from collections.abc import Callable, Sequence
from typing import Any, ClassVar

from ..framing.eventstream import encode_frame
from ..sse import Event
from .anthropic import ANTHROPIC
from .base import Headers, Pieces, Provider, merged_headers, raw_body, retry_headers

__all__ = ["BEDROCK", "ERRORS", "EXCEPTIONS", "BedrockProvider", "exception_frame", "inner_events", "request_id"]

_BEDROCK = "http://internal.amazon.com/coral/com.amazon.bedrock/"
_CORAL = "http://internal.amazon.com/coral/com.amazon.coral.service/"

#: status -> (x-amzn-ErrorType name, its namespace, the body's message). 400, 403 and 500 are recorded
#: bodies; 429 and 503 are bodies quoted in public error reports; the rest are the service model's
#: error names with the service model's own wording.
ERRORS: dict[int, tuple[str, str, str]] = {
    400: ("ValidationException", _BEDROCK, "The provided model identifier is invalid."),
    403: ("ExpiredTokenException", _CORAL, "The security token included in the request is expired"),
    404: ("ResourceNotFoundException", _BEDROCK, "The specified resource ARN was not found. Check the ARN and try "
                                                 "your request again."),  # fmt: skip
    408: ("ModelTimeoutException", _BEDROCK, "The request took too long to process. Processing time exceeded the "
                                             "model timeout length."),  # fmt: skip
    424: ("ModelErrorException", _BEDROCK, "The request failed due to an error while processing the model."),
    429: ("ThrottlingException", _BEDROCK, "Too many tokens, please wait before trying again."),
    500: ("InternalServerException", _BEDROCK, "The system encountered an unexpected error during processing. "
                                                "Try your request again."),  # fmt: skip
    503: ("ServiceUnavailableException", _BEDROCK, "Bedrock is unable to process your request."),
}

#: The in-stream exceptions ConverseStream and InvokeModelWithResponseStream declare (botocore's
#: service model), each with the message it carries here. Modelled: none was ever recorded.
EXCEPTIONS: dict[str, str] = {
    "throttlingException": "Too many requests, please wait before trying again. You have sent too many requests.  "
                           "Wait before trying again.",  # fmt: skip
    "modelStreamErrorException": "An error occurred while streaming the response. Retry your request.",
    "internalServerException": "The system encountered an unexpected error during processing. Try your request "
                               "again.",  # fmt: skip
    "serviceUnavailableException": "Bedrock is unable to process your request.",
    "validationException": "Input validation failed. Check your request parameters and retry the request.",
    "modelTimeoutException": "The request took too long to process. Processing time exceeded the model timeout "
                             "length.",  # fmt: skip
}

_EVENT_FRAME = ((":content-type", "application/json"), (":message-type", "event"))
_CONVERSE_EVENTS = ("messageStart", "contentBlockStart", "contentBlockDelta", "contentBlockStop", "messageStop",
                    "metadata")  # fmt: skip
_PADDING = "abcdefghijklmnopqrstuvwxyzABCDEFGHIJKLMNOPQRSTUVWXYZ0123456789"


def request_id(number: int) -> str:
    """A made-up ``x-amzn-RequestId``, shaped like the real (a UUID), numbered so attempts differ."""
    return f"{number:08x}-5354-4150-8000-73747265616d"


def exception_frame(exception_type: str | None = None, message: str | None = None, *, data: str | None = None) -> bytes:
    """An in-stream exception frame (``:message-type: exception``); ``data``: the payload as given."""
    kind = exception_type or "throttlingException"
    if data is None:
        text = message or EXCEPTIONS.get(kind) or EXCEPTIONS["internalServerException"]
        data = json.dumps({"message": text}, separators=(",", ":"), ensure_ascii=False)
    headers = ((":exception-type", kind), (":content-type", "application/json"), (":message-type", "exception"))
    return encode_frame(headers, data.encode("utf-8"))


def event_frame(kind: str, payload: dict[str, Any]) -> bytes:
    """An event frame as Bedrock sends one: its three string headers, a compact JSON payload with sorted keys."""
    text = json.dumps(payload, separators=(",", ":"), sort_keys=True, ensure_ascii=False)
    return encode_frame(((":event-type", kind), *_EVENT_FRAME), text.encode("utf-8"))


def inner_events(events: Sequence[Event]) -> list[Event] | None:
    """An ``invoke-with-response-stream`` body's model events (each ``chunk``'s base64 ``bytes`` decoded),
    named by their JSON's ``type`` (``message`` without one) and spanning their frames; ``None`` for
    a stream of other frames (``converse-stream``)."""
    if not any(event.event == "chunk" for event in events):
        return None
    out = []
    for event in events:
        if event.event != "chunk":
            out.append(Event("error", json.dumps({"type": "error", "error": {"type": event.event, "message": _message(event)}}),
                             event.start, event.end))  # fmt: skip
            continue
        data = event.json if isinstance(event.json, dict) else {}
        try:
            text = base64.b64decode(data.get("bytes", ""), validate=True).decode("utf-8", errors="replace")
        except (binascii.Error, ValueError, TypeError):
            text = ""
        try:
            kind = json.loads(text).get("type")
        except (ValueError, AttributeError, RecursionError):
            kind = None
        out.append(Event(kind if isinstance(kind, str) and kind else "message", text, event.start, event.end))
    return out


def _message(event: Event) -> str:
    data = event.json
    return str(data.get("message", "")) if isinstance(data, dict) else event.data


def _anthropic(inner: list[Event] | None) -> bool:
    """Whether an invoke stream's model events are the Messages API's (an Anthropic model)."""
    return bool(inner) and any(event.event == "message_start" for event in inner or ())


def _exception(events: Sequence[Event]) -> Event | None:
    return next((event for event in events if event.event.endswith("Exception")), None)


class BedrockProvider(Provider):
    name: ClassVar[str] = "bedrock"
    #: Bedrock Runtime's model calls, under any host or path prefix (a VPC endpoint, a gateway, a local fake)
    requests: ClassVar[str] = (
        r"^POST \S*?/model/[^/?#\s]+/(?:converse-stream|converse|invoke-with-response-stream|invoke)(?:[?#]|$)"
    )
    #: What a replay-only tape fills in: the SDKs sign requests with them, and replay needs no real ones.
    #: ``AWS_SESSION_TOKEN`` and ``AWS_BEARER_TOKEN_BEDROCK`` are redacted but never filled in: a placeholder
    #: there changes how the SDKs authenticate (AnthropicBedrock refuses keys given beside a bearer token).
    key_variables: ClassVar[tuple[str, ...]] = ("AWS_ACCESS_KEY_ID", "AWS_SECRET_ACCESS_KEY")
    #: every variable whose value is a Bedrock credential (never written to a cassette)
    secret_variables: ClassVar[tuple[str, ...]] = ("AWS_ACCESS_KEY_ID", "AWS_SECRET_ACCESS_KEY", "AWS_SESSION_TOKEN",
                                                   "AWS_BEARER_TOKEN_BEDROCK")  # fmt: skip
    framing: ClassVar[str] = "eventstream"
    #: the ``overloaded`` fault's status here: Bedrock's overload is a 503 ServiceUnavailableException
    overloaded_status: ClassVar[int] = 503

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
        default_type, namespace, default_message = _error(status)
        out: list[tuple[str, str]] = []
        if body is None:
            raw = json.dumps({"message": message or default_message}, separators=(",", ":")).encode()
            kind = error_type or default_type
            error = [("x-amzn-ErrorType", kind + ":" + (namespace if kind == default_type else _BEDROCK))]
        else:  # not AWS's JSON (a proxy's page): no error type, no request id unless asked for
            raw = raw_body(body)
            error, request_id = [], False if request_id is None else request_id
        out += [("Content-Type", content_type or "application/json"), ("Content-Length", str(len(raw))), *error]
        ident = _request_id(request_id, number)
        if ident is not None:
            out.append(("x-amzn-RequestId", ident))
        out += retry_headers(retry_after=retry_after, retry_after_date=retry_after_date, retry_after_ms=retry_after_ms,
                             should_retry=should_retry, retry_after_name="Retry-After")  # fmt: skip
        return merged_headers(out, headers), raw

    def error_event(
        self, error_type: str | None = None, message: str | None = None, *, data: str | None = None,
        event: str | None = None,
    ) -> bytes:  # fmt: skip
        """An exception frame: ``error_type`` (or ``event``) its ``:exception-type`` (default
        ``throttlingException``), ``message`` its message, ``data`` the whole payload as given."""
        return exception_frame(error_type or event, message, data=data)

    def keep_alive(self) -> bytes:
        from ..errors import ConfigError

        raise ConfigError("provider 'bedrock': a Bedrock event stream has no keep-alive event, so ping cannot be "
                          "used on it; use delay:per_event=SECONDS or stall:after=N,seconds=S for a slow stream")  # fmt: skip

    def whole_message(self, events: Sequence[Event]) -> bytes:
        """What ``converse`` answers for a recorded ``converse-stream`` (the Converse output), or what
        ``invoke`` answers an Anthropic model for its ``invoke-with-response-stream`` (a Messages body)."""
        inner = inner_events(events)
        if inner is not None:
            if not _anthropic(inner):
                raise self._unknown("whole-message body for this model's invoke stream (only Anthropic models')")
            return ANTHROPIC.whole_message(inner)
        return json.dumps(_converse_output(events), separators=(",", ":"), sort_keys=True).encode()

    def harness_error(
        self, status: int, error_type: str | None, message: str, *, retry: bool = False, close: bool = False
    ) -> tuple[Headers, bytes]:
        """Like Bedrock's errors, without a request id; ``x-should-retry`` is what the Anthropic SDK
        obeys (botocore retries 429 and 5xx by status)."""
        default_type, namespace, _ = _error(status)
        kind = error_type if error_type and error_type[:1].isupper() else default_type
        body = json.dumps({"message": message}).encode()
        headers = [("Content-Type", "application/json"), ("Content-Length", str(len(body))),
                   ("x-amzn-ErrorType", f"{kind}:{namespace}"), ("x-should-retry", "true" if retry else "false")]  # fmt: skip
        if retry:
            headers.append(("Retry-After", "1"))
        if close:
            headers.append(("Connection", "close"))
        return tuple(headers), body

    # --- what lint and inspect read ---------------------------------------------------------------

    def lint(self, events: Sequence[Event], *, broke: bool) -> list[str]:
        """ConverseStream: messageStart first, content blocks in order (a tool use opened by
        contentBlockStart), then messageStop and metadata, unless an exception frame or the
        connection ended it. InvokeModelWithResponseStream: every chunk's ``bytes`` is base64 JSON;
        an Anthropic model's events follow the Messages grammar."""
        if not events:
            return []
        inner = inner_events(events)
        if inner is not None:
            return _lint_invoke(events, inner, broke)
        return _lint_converse(events, broke)

    def tokens(self, events: Sequence[Event]) -> dict[str, int]:
        inner = inner_events(events)
        if inner is not None:
            tokens = ANTHROPIC.tokens(inner) if _anthropic(inner) else {}
            metrics = _invocation_metrics(inner)
            for key, name in (("inputTokenCount", "input_tokens"), ("outputTokenCount", "output_tokens")):
                if isinstance(metrics.get(key), int):
                    tokens.setdefault(name, metrics[key])
            return tokens
        metadata = next((e.json for e in reversed(events) if e.event == "metadata" and isinstance(e.json, dict)), {})
        usage = metadata.get("usage")
        if not isinstance(usage, dict):
            return {}
        return {_snake(key): value for key, value in usage.items() if isinstance(value, int) and not isinstance(value, bool)}

    def stop_reason(self, events: Sequence[Event]) -> str | None:
        inner = inner_events(events)
        if inner is not None:
            if _anthropic(inner):
                return ANTHROPIC.stop_reason(inner)
            for event in reversed(inner):
                data = event.json if isinstance(event.json, dict) else {}
                for key in ("stop_reason", "finish_reason", "completionReason"):
                    if isinstance(data.get(key), str):
                        return str(data[key])
            return None
        stop = next((e.json for e in reversed(events) if e.event == "messageStop" and isinstance(e.json, dict)), {})
        reason = stop.get("stopReason")
        return reason if isinstance(reason, str) else None

    def ending(self, events: Sequence[Event]) -> str | None:
        exception = _exception(events)
        if exception is not None:
            return f"in-stream exception: {exception.event}"
        inner = inner_events(events)
        if inner is not None:
            return ANTHROPIC.ending(inner) if _anthropic(inner) else None
        names = [event.event for event in events]
        if "messageStart" in names and "messageStop" not in names:
            return "clean, but early (no messageStop)"
        if "messageStop" in names and names[-1] != "metadata":
            return "clean, but early (no metadata after messageStop)"
        return None

    def tool_calls(self, events: Sequence[Event]) -> list[str]:
        """Each tool the model called, as ``name(input)``, in order: a ConverseStream's ``toolUse``
        blocks (opened by contentBlockStart, the input in delta pieces), or an Anthropic model's
        ``tool_use`` blocks in an invoke stream."""
        inner = inner_events(events)
        calls: dict[Any, list[str]] = {}
        texts = Pieces()  # each call's input pieces, joined once: adding each to the input so far is quadratic
        for event in inner if inner is not None else events:
            if "tool" not in event.data and "input" not in event.data:
                continue  # neither a tool's start nor its input: no JSON to parse
            data = event.json if isinstance(event.json, dict) else {}
            index = data.get("contentBlockIndex", data.get("index"))
            if event.event == "contentBlockStart":
                tool = (data.get("start") or {}).get("toolUse") or {}
            elif event.event == "content_block_start":
                tool = data.get("content_block") or {}
                tool = tool if tool.get("type") == "tool_use" else {}
            elif index in calls and isinstance(data.get("delta"), dict):
                delta = data["delta"]
                piece = (delta.get("toolUse") or {}).get("input") if "toolUse" in delta else delta.get("partial_json")
                texts.add(calls[index], 1, piece if isinstance(piece, str) else "")
                continue
            else:
                continue
            if isinstance(tool, dict) and isinstance(tool.get("name"), str):
                calls[index] = [tool["name"], ""]
        texts.join()
        return [f"{name}({arguments})" for name, arguments in calls.values()]

    # --- what synth writes ------------------------------------------------------------------------

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
        """A ConverseStream response nobody recorded, framed as Bedrock frames one: each payload's keys
        sorted, with its random-length ``"p"`` padding; reasoning as ``reasoningContent`` deltas (its
        signature last), text, then each tool use opened by ``contentBlockStart``."""
        frames: list[bytes] = []

        def add(kind: str, payload: dict[str, Any]) -> None:
            frames.append(event_frame(kind, {**payload, "p": _PADDING[: rng.randint(1, len(_PADDING))]}))

        ident = hashlib.sha256(f"{seed}:{text}:{thinking}:{tools}".encode()).hexdigest()
        add("messageStart", {"role": "assistant"})
        index = 0
        if thinking:
            for piece in pieces(thinking, rng):
                add("contentBlockDelta", {"contentBlockIndex": index, "delta": {"reasoningContent": {"text": piece}}})
            signature = base64.b64encode(hashlib.sha512(f"{ident}:{thinking}".encode()).digest()).decode()
            add("contentBlockDelta", {"contentBlockIndex": index, "delta": {"reasoningContent": {"signature": signature}}})
            add("contentBlockStop", {"contentBlockIndex": index})
            index += 1
        if text:
            for piece in pieces(text, rng):
                add("contentBlockDelta", {"contentBlockIndex": index, "delta": {"text": piece}})
            add("contentBlockStop", {"contentBlockIndex": index})
            index += 1
        for number, (name, tool_input) in enumerate(tools or []):
            start = {"toolUse": {"name": name, "toolUseId": f"tooluse_{ident[number : number + 22]}"}}
            add("contentBlockStart", {"contentBlockIndex": index, "start": start})
            for piece in ["", *pieces(json.dumps(tool_input, ensure_ascii=False), rng)]:
                add("contentBlockDelta", {"contentBlockIndex": index, "delta": {"toolUse": {"input": piece}}})
            add("contentBlockStop", {"contentBlockIndex": index})
            index += 1
        add("messageStop", {"stopReason": "tool_use" if tools else "end_turn"})
        usage_in, usage_out = tokens(prompt), tokens(f"{thinking or ''} {text or ''} {json.dumps(tools or [])}")
        usage = {"inputTokens": usage_in, "outputTokens": usage_out, "totalTokens": usage_in + usage_out}
        add("metadata", {"metrics": {"latencyMs": 300 + len(frames) * 30}, "usage": usage})
        request_json = {"messages": [{"role": "user", "content": [{"text": prompt}]}]}
        url = f"https://bedrock-runtime.us-east-1.amazonaws.com/model/{_model_path(model)}/converse-stream"
        request = ("POST", url, (("Content-Type", "application/json"),),
                   json.dumps(request_json, separators=(",", ":")).encode())  # fmt: skip
        digest = hashlib.sha256(b"".join(frames)).hexdigest()
        headers = (("Content-Type", "application/vnd.amazon.eventstream"),
                   ("x-amzn-RequestId", f"{digest[:8]}-{digest[8:12]}-4{digest[13:16]}-8{digest[17:20]}-{digest[20:32]}"))  # fmt: skip
        return frames, request, headers


# --- helpers -------------------------------------------------------------------------------------


def _error(status: int) -> tuple[str, str, str]:
    if status in ERRORS:
        return ERRORS[status]
    if status >= 500:
        return "InternalServerException", _BEDROCK, ERRORS[500][2]
    return "ValidationException", _BEDROCK, "The request was not valid."


def _request_id(given: str | bool | None, number: int) -> str | None:
    if given is None or given is True:
        return request_id(number)
    return given or None


def _snake(name: str) -> str:
    return re.sub(r"(?<!^)([A-Z])", r"_\1", name).lower()


def _model_path(model: str) -> str:
    return model.replace(":", "%3A").replace("/", "%2F")


def _invocation_metrics(inner: Sequence[Event]) -> dict[str, Any]:
    for event in reversed(inner):
        if "amazon-bedrock-invocationMetrics" in event.data and isinstance(event.json, dict):
            metrics = event.json.get("amazon-bedrock-invocationMetrics")
            if isinstance(metrics, dict):
                return metrics
    return {}


def _converse_output(events: Sequence[Event]) -> dict[str, Any]:
    """The Converse API's answer built from a ConverseStream's events."""
    blocks: dict[int, dict[str, Any]] = {}
    inputs: dict[int, str] = {}
    out: dict[str, Any] = {}
    texts = Pieces()  # the deltas, joined once: adding each to the text so far is quadratic
    for event in events:
        data = event.json if isinstance(event.json, dict) else {}
        index = data.get("contentBlockIndex", 0)
        if event.event == "contentBlockStart" and isinstance((data.get("start") or {}).get("toolUse"), dict):
            blocks[index] = {"toolUse": {**data["start"]["toolUse"], "input": {}}}
        elif event.event == "contentBlockDelta" and isinstance(data.get("delta"), dict):
            delta, block = data["delta"], blocks.setdefault(index, {})
            if isinstance(delta.get("text"), str):
                texts.add(block, "text", delta["text"])
            if isinstance(delta.get("toolUse"), dict):
                texts.add(inputs, index, str(delta["toolUse"].get("input", "")))
            if isinstance(delta.get("reasoningContent"), dict):
                reasoning = block.setdefault("reasoningContent", {}).setdefault("reasoningText", {})
                for key in ("text", "signature"):
                    if key in delta["reasoningContent"]:
                        texts.add(reasoning, key, str(delta["reasoningContent"][key]))
        elif event.event == "messageStop":
            out["stopReason"] = data.get("stopReason")
        elif event.event == "metadata":
            out.update({key: data[key] for key in ("usage", "metrics", "trace") if key in data})
    texts.join()
    for index, text in inputs.items():
        try:
            blocks[index].setdefault("toolUse", {})["input"] = json.loads(text) if text else {}
        except ValueError:
            blocks[index].setdefault("toolUse", {})["input"] = {}
    out["output"] = {"message": {"role": "assistant", "content": [blocks[i] for i in sorted(blocks)]}}
    return out


def _lint_converse(events: Sequence[Event], broke: bool) -> list[str]:
    problems: list[str] = []
    names = [event.event for event in events]
    exception = _exception(events)
    if names[0] != "messageStart" and events[0] is not exception:
        problems.append(f"the first frame is {names[0]!r}; a ConverseStream starts with messageStart")
    open_blocks: set[int] = set()
    closed: set[int] = set()
    stopped = False
    for number, event in enumerate(events, 1):
        if event is exception or event.event.endswith("Exception"):
            continue
        if event.event not in _CONVERSE_EVENTS:
            problems.append(f"frame {number}: {event.event!r} is not a ConverseStream event")
            continue
        if event.json is None:
            problems.append(f"frame {number} ({event.event}): its payload is not JSON")
            continue
        index = event.json.get("contentBlockIndex") if isinstance(event.json, dict) else None
        if event.event in ("contentBlockStart", "contentBlockDelta") and index in closed:
            problems.append(f"frame {number}: {event.event} for block {index}, which already stopped")
        if event.event == "contentBlockStart" and index in open_blocks:
            problems.append(f"frame {number}: contentBlockStart for block {index}, which is already open")
        if event.event in ("contentBlockStart", "contentBlockDelta") and isinstance(index, int):
            open_blocks.add(index)
        if event.event == "contentBlockStop":
            if index not in open_blocks:
                problems.append(f"frame {number}: contentBlockStop for block {index}, which never started")
            open_blocks.discard(index)
            if isinstance(index, int):
                closed.add(index)
        stopped = stopped or event.event == "messageStop"
        if event.event == "metadata" and not stopped:
            problems.append(f"frame {number}: metadata before messageStop")
    if exception is None and not broke and names[-1] != "metadata":
        ends = "messageStop" if "messageStop" in names else "no messageStop"
        problems.append(f"the stream ends with {names[-1]!r} ({ends}), not metadata, and the recording does not say "
                        "it broke")  # fmt: skip
    return problems


def _lint_invoke(events: Sequence[Event], inner: list[Event], broke: bool) -> list[str]:
    problems = []
    for number, (event, model_event) in enumerate(zip(events, inner, strict=True), 1):
        if event.event == "chunk" and model_event.json is None:
            problems.append(f"frame {number} (chunk): its bytes are not base64 of a JSON text")
    if _anthropic(inner):
        problems += [f"the model's events (one per chunk): {problem}" for problem in ANTHROPIC.lint(inner, broke=broke)]
    return problems


BEDROCK = BedrockProvider()
