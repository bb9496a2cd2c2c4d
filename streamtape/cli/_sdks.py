"""One streamed call through each provider's official SDK, for ``record`` and ``play`` (and the demo):
a ``Driver`` per provider builds the call (from ``--prompt``, from a ``--request`` body, or from a
recorded request), makes it as an app makes it, renders the answer as it arrives (text; thinking
dimmed; tool calls), and says what came of it: the stop reason and tokens, or what the SDK raised
and whether the SDK docs' usual ``except`` clauses catch it.

| provider | SDK and call | key | base URL |
|---|---|---|---|
| ``anthropic`` | ``anthropic``: ``messages.stream`` | ``ANTHROPIC_API_KEY`` | ``ANTHROPIC_BASE_URL`` |
| ``openai`` | ``openai``: ``chat.completions.create(stream=True)`` | ``OPENAI_API_KEY`` | ``OPENAI_BASE_URL`` (with ``/v1``) |
| ``openai-responses`` | ``openai``: ``responses.create(stream=True)`` | ``OPENAI_API_KEY`` | ``OPENAI_BASE_URL`` |
| ``gemini`` | ``google-genai``: ``models.generate_content_stream`` | ``GEMINI_API_KEY`` / ``GOOGLE_API_KEY`` | ``GOOGLE_GEMINI_BASE_URL`` |
| ``bedrock`` | ``boto3``: ``bedrock-runtime`` ``converse_stream`` | AWS credentials (env, profile) | ``AWS_ENDPOINT_URL_BEDROCK_RUNTIME`` |

The SDKs read their own key and base URL variables; a driver only checks that a key is there, so
a missing one is one sentence before any request. Nothing here imports an SDK until a call is made.
"""

from __future__ import annotations

import json
import os
import re
import time
from collections.abc import Callable, Iterable, Iterator
from dataclasses import dataclass, field
from typing import TYPE_CHECKING, Any, ClassVar
from urllib.parse import parse_qs, unquote, urlsplit, urlunsplit

from ..errors import ConfigError

if TYPE_CHECKING:
    from rich.console import Console

    from ..cassette import Request

__all__ = ["DRIVERS", "Call", "Driver", "Outcome", "docs_verdict", "driver", "stream_message", "summary"]

#: what a replayed call authenticates with (nothing checks it; SDKs refuse to send without one)
PLAY_KEY = "streamtape-play"


@dataclass
class Outcome:
    """What one call came to, as the app saw it through the SDK."""

    events: int = 0
    first_event_at: float | None = None
    duration: float = 0.0
    final: Any = None
    error: BaseException | None = None
    text: list[str] = field(default_factory=list)
    #: why the model stopped, as the SDK delivered it (``None``: it delivered none)
    stop_reason: str | None = None
    #: (input, output) tokens, as the SDK delivered them
    tokens: tuple[int | None, int | None] | None = None
    #: what else the app should know (an error event the SDK yielded without raising)
    notes: list[str] = field(default_factory=list)


@dataclass
class Call:
    """One SDK call: the operation, its arguments, and where it goes (``None``: the SDK's default,
    which reads the SDK's own base URL variable)."""

    operation: str
    params: dict[str, Any]
    base_url: str | None = None
    #: what else the client needs: Gemini's ``api_version``, Bedrock's ``region``
    options: dict[str, Any] = field(default_factory=dict)


class Driver:
    """One provider's official SDK, driven as an app drives it."""

    #: the provider's name (``streamtape.providers``), and ``--provider``'s value
    name: ClassVar[str] = ""
    #: the package the SDK is installed as
    package: ClassVar[str] = ""
    default_model: ClassVar[str] = ""
    #: what the API calls the reason the model stopped
    stop_label: ClassVar[str] = "stop_reason"
    #: the key a request body must hold, and what such a body is
    body_key: ClassVar[str] = "messages"
    body_name: ClassVar[str] = ""
    #: the environment variables the key is read from (the first is named when none is set)
    key_variables: ClassVar[tuple[str, ...]] = ()

    def key_error(self) -> str | None:
        """One sentence when the key recording needs is not set, else ``None``."""
        if any(os.environ.get(name) for name in self.key_variables):
            return None
        names = " or ".join(self.key_variables)
        return f"{names} is not set; export your key to record with --provider {self.name} (replay never needs one)"

    def from_prompt(self, prompt: str, model: str, max_tokens: int | None, thinking: bool) -> Call:
        raise NotImplementedError

    def from_body(self, body: dict[str, Any], model: str, max_tokens: int | None, thinking: bool) -> Call:
        """The call a ``--request`` body asks for (``model`` and ``max_tokens`` where it gives none)."""
        raise NotImplementedError

    def from_recording(self, request: Request) -> Call:
        """The call that sent a recorded request, to the recorded address; ``ConfigError`` if it cannot be made."""
        raise NotImplementedError

    def run(self, call: Call, console: Console, *, replay: bool) -> Outcome:
        """Make ``call`` through the SDK (``replay``: with a placeholder key and the SDK's own retries;
        else the key from the environment and one attempt), rendering it as it arrives."""
        raise NotImplementedError

    def verdict(self, exc: BaseException) -> str:
        """Whether the SDK docs' usual error handling catches ``exc``, and how."""
        raise NotImplementedError

    def invalid(self, exc: BaseException) -> str | None:
        """What is wrong with the request, when ``exc`` says the SDK refused it before sending."""
        return None

    def _body(self, body: Any) -> dict[str, Any]:
        if not isinstance(body, dict) or self.body_key not in body:
            raise ConfigError(f"expected a JSON object with {self.body_key!r} ({self.body_name})")
        return {key: value for key, value in body.items() if key != "stream"}


# --- rendering ----------------------------------------------------------------------------------------


class _Screen:
    """Prints an answer as it arrives: text plain, thinking dimmed, tool calls cyan, each kind of
    output on its own line."""

    def __init__(self, console: Console, out: Outcome) -> None:
        self.console, self.out, self.kind = console, out, ""

    def _switch(self, kind: str) -> None:
        if self.kind and self.kind != kind:
            self.console.print()
        self.kind = kind

    def text(self, text: str | None) -> None:
        if text:
            self._switch("text")
            self.out.text.append(text)
            self.console.print(text, end="", markup=False)

    def thinking(self, text: str | None) -> None:
        if text:
            self._switch("thinking")
            self.console.print(text, style="dim", end="", markup=False)

    def tool(self, name: str) -> None:
        if self.kind:
            self.console.print()
        self.kind = "tool"
        self.console.print(f"[tool call: {name}] ", style="cyan", end="", markup=False)

    def tool_input(self, text: str | None) -> None:
        if text:
            self.console.print(text, style="cyan", end="", markup=False)


def _consume(out: Outcome, console: Console, items: Callable[[], Iterable[Any]], render: Callable[[Any], None]) -> Outcome:
    """Iterate what the SDK hands the app, rendering each; the exception it raises is the outcome."""
    started = time.monotonic()
    try:
        for item in items():
            out.events += 1
            if out.first_event_at is None:
                out.first_event_at = time.monotonic() - started
            render(item)
    except Exception as exc:  # noqa: BLE001 - what the app would meet is the point
        out.error = exc
    out.duration = time.monotonic() - started
    console.print()
    return out


def _value(value: Any) -> str | None:
    """An SDK's enum (``FinishReason.STOP``) or string as plain text."""
    if value is None:
        return None
    return str(getattr(value, "value", value))


def _name(exc: BaseException) -> str:
    return f"{type(exc).__module__}.{type(exc).__name__}"


def _path_and_query(url: str) -> tuple[str, str, str]:
    """(origin, path, query) of a URL."""
    parts = urlsplit(url)
    return urlunsplit((parts.scheme, parts.netloc, "", "", "")), parts.path, parts.query


# --- Anthropic ----------------------------------------------------------------------------------------


def stream_message(client: Any, params: dict[str, Any], console: Console) -> Outcome:
    """Stream with ``client.messages.stream(**params)``, printing as the events arrive."""
    out = Outcome()
    started = time.monotonic()
    try:
        with client.messages.stream(**params) as stream:
            for event in stream:
                out.events += 1
                out.first_event_at = out.first_event_at or time.monotonic() - started
                _render_anthropic(event, console, out)
            out.final = stream.get_final_message()
        out.stop_reason = out.final.stop_reason
        usage = getattr(out.final, "usage", None)
        out.tokens = (usage.input_tokens, usage.output_tokens) if usage is not None else None
    except Exception as exc:  # noqa: BLE001 - what the app would meet is the point
        out.error = exc
    out.duration = time.monotonic() - started
    console.print()
    return out


def _render_anthropic(event: Any, console: Console, out: Outcome) -> None:
    kind = event.type
    if kind == "content_block_start":
        block = event.content_block
        if event.index > 0:
            console.print()
        if block.type == "tool_use":
            console.print(f"[tool call: {block.name}] ", style="cyan", end="", markup=False)
    elif kind == "thinking":
        console.print(event.thinking, style="dim", end="", markup=False)
    elif kind == "text":
        out.text.append(event.text)
        console.print(event.text, end="", markup=False)
    elif kind == "input_json":
        console.print(event.partial_json, style="cyan", end="", markup=False)


def docs_verdict(exc: BaseException) -> str:
    """Whether the error handling in the Anthropic streaming docs would catch ``exc``, and how."""
    import anthropic

    name = _name(exc)
    if isinstance(exc, anthropic.APIConnectionError):
        return f'{name}: the docs\' `except anthropic.APIConnectionError` catches it ("Connection lost")'
    if isinstance(exc, anthropic.RateLimitError):
        return f"{name}: the docs' `except anthropic.RateLimitError` catches it"
    if isinstance(exc, anthropic.APIStatusError):
        note = " - an in-stream error, reported as status 200" if exc.status_code == 200 else ""
        return f'{name}: caught by `except anthropic.APIStatusError`, printed as "API error: {exc.status_code}"{note}'
    return f"{name}: NOT caught by the docs' except clauses; it escapes to the caller"


class AnthropicDriver(Driver):
    name = "anthropic"
    package = "anthropic"
    default_model = "claude-sonnet-5-5"
    body_name = "a Messages request body"
    key_variables = ("ANTHROPIC_API_KEY",)

    def key_error(self) -> str | None:
        if os.environ.get("ANTHROPIC_API_KEY"):
            return None
        return "ANTHROPIC_API_KEY is not set; export your key to record (replay never needs one)"

    def from_prompt(self, prompt: str, model: str, max_tokens: int | None, thinking: bool) -> Call:
        return self.from_body({"messages": [{"role": "user", "content": prompt}]}, model, max_tokens, thinking)

    def from_body(self, body: dict[str, Any], model: str, max_tokens: int | None, thinking: bool) -> Call:
        extra = {"thinking": {"type": "adaptive"}} if thinking else {}
        return Call("stream", {"model": model, "max_tokens": max_tokens or 1024, **extra, **self._body(body)})

    def from_recording(self, request: Request) -> Call:
        if not isinstance(request.json, dict) or "messages" not in request.json:
            raise ConfigError("not a Messages request; play replays the streams of the Messages API, OpenAI's "
                              "Chat Completions and Responses, Gemini and Bedrock")  # fmt: skip
        return Call("stream", self._body(request.json), request.url.split("/v1/")[0])

    def run(self, call: Call, console: Console, *, replay: bool) -> Outcome:
        import anthropic

        key = PLAY_KEY if replay else None
        with anthropic.Anthropic(base_url=call.base_url, api_key=key, max_retries=2 if replay else 0) as client:
            return stream_message(client, call.params, console)

    def verdict(self, exc: BaseException) -> str:
        return docs_verdict(exc)


# --- OpenAI -------------------------------------------------------------------------------------------


class _OpenAI(Driver):
    package = "openai"
    default_model = "gpt-5-mini"
    key_variables = ("OPENAI_API_KEY",)
    #: the path the API's calls end with, and the API's name
    endpoint: ClassVar[str] = ""
    api: ClassVar[str] = ""

    def run(self, call: Call, console: Console, *, replay: bool) -> Outcome:
        import openai

        out = Outcome()
        screen = _Screen(console, out)
        key = PLAY_KEY if replay else None
        with openai.OpenAI(base_url=call.base_url, api_key=key, max_retries=2 if replay else 0) as client:
            return _consume(out, console, lambda: self._items(client, call), lambda item: self._render(item, screen))

    def _items(self, client: Any, call: Call) -> Iterator[Any]:
        raise NotImplementedError

    def _render(self, item: Any, screen: _Screen) -> None:
        raise NotImplementedError

    def _base(self, request: Request) -> str:
        origin, path, _ = _path_and_query(request.url)
        if self.endpoint not in path:
            raise ConfigError(f"not a {self.api} request ({request.url})")
        return origin + path[: path.rindex(self.endpoint)]

    def verdict(self, exc: BaseException) -> str:
        import openai

        name = _name(exc)
        if isinstance(exc, openai.APIConnectionError):
            return (f"{name}: the docs' `except openai.APIConnectionError` catches it "
                    '("The server could not be reached")')  # fmt: skip
        if isinstance(exc, openai.RateLimitError):
            return f'{name}: the docs\' `except openai.RateLimitError` catches it ("A 429 status code was received")'
        if isinstance(exc, openai.APIStatusError):
            return (f"{name}: caught by `except openai.APIStatusError` "
                    f'("Another non-200-range status code was received": {exc.status_code})')  # fmt: skip
        if isinstance(exc, openai.APIError):
            return (f"{name}: NOT caught by the docs' except clauses (APIConnectionError, RateLimitError, "
                    "APIStatusError): an error inside the stream is their base class, openai.APIError; it escapes "
                    "to the caller")  # fmt: skip
        return f"{name}: NOT caught by the docs' except clauses; it escapes to the caller"

    @staticmethod
    def _split(params: dict[str, Any], *named: str) -> dict[str, Any]:
        """``named`` as keyword arguments, the rest of the body as ``extra_body`` (sent as it is, so a
        field the SDK does not know, an OpenAI-compatible server's own, still goes)."""
        kwargs = {key: params[key] for key in named if key in params}
        rest = {key: value for key, value in params.items() if key not in named}
        return {**kwargs, **({"extra_body": rest} if rest else {})}


class OpenAIChatDriver(_OpenAI):
    name = "openai"
    stop_label = "finish_reason"
    body_name = "a Chat Completions request body"
    endpoint = "/chat/completions"
    api = "Chat Completions"

    def from_prompt(self, prompt: str, model: str, max_tokens: int | None, thinking: bool) -> Call:
        body = {"messages": [{"role": "user", "content": prompt}], "stream_options": {"include_usage": True}}
        return self.from_body(body, model, max_tokens, thinking)

    def from_body(self, body: dict[str, Any], model: str, max_tokens: int | None, thinking: bool) -> Call:
        if thinking:
            raise ConfigError("--thinking: Chat Completions streams carry no reasoning text; use --provider "
                              "openai-responses, whose reasoning summary streams")  # fmt: skip
        given = self._body(body)
        limit = {"max_completion_tokens": max_tokens} if max_tokens and "max_tokens" not in given else {}
        return Call("create", {"model": model, **limit, **given})

    def from_recording(self, request: Request) -> Call:
        base = self._base(request)
        body = request.json if isinstance(request.json, dict) else {}
        return Call("create" if body.get("stream") is True else "create-whole", self._body(body), base)

    def _items(self, client: Any, call: Call) -> Iterator[Any]:
        kwargs = self._split(call.params, "model", "messages")
        if call.operation == "create-whole":
            yield client.chat.completions.create(**kwargs)
            return
        yield from client.chat.completions.create(stream=True, **kwargs)

    def _render(self, item: Any, screen: _Screen) -> None:
        out = screen.out
        for choice in getattr(item, "choices", None) or []:
            delta = getattr(choice, "delta", None) or getattr(choice, "message", None)
            if delta is not None:
                screen.text(delta.content)
                screen.text(delta.refusal)
                for call in delta.tool_calls or []:
                    function = getattr(call, "function", None)  # a custom tool's call has none
                    if function is not None and function.name:
                        screen.tool(function.name)
                    if function is not None:
                        screen.tool_input(function.arguments)
            if choice.finish_reason:
                out.stop_reason = _value(choice.finish_reason)
        usage = getattr(item, "usage", None)
        if usage is not None:
            out.tokens = (usage.prompt_tokens, usage.completion_tokens)


_TERMINAL = ("response.completed", "response.incomplete", "response.failed")


class OpenAIResponsesDriver(_OpenAI):
    name = "openai-responses"
    stop_label = "status"
    body_key = "input"
    body_name = "a Responses request body"
    endpoint = "/responses"
    api = "Responses"

    def from_prompt(self, prompt: str, model: str, max_tokens: int | None, thinking: bool) -> Call:
        return self.from_body({"input": prompt}, model, max_tokens, thinking)

    def from_body(self, body: dict[str, Any], model: str, max_tokens: int | None, thinking: bool) -> Call:
        extra: dict[str, Any] = {"max_output_tokens": max_tokens} if max_tokens else {}
        if thinking:
            extra["reasoning"] = {"effort": "medium", "summary": "auto"}
        return Call("create", {"model": model, **extra, **self._body(body)})

    def from_recording(self, request: Request) -> Call:
        base = self._base(request)
        _, path, query = _path_and_query(request.url)
        if request.method == "GET":  # a background response streamed again
            params: dict[str, Any] = {"response_id": unquote(path.rsplit("/", 1)[1])}
            after = parse_qs(query).get("starting_after", [])
            if after and after[0].isdigit():
                params["starting_after"] = int(after[0])
            return Call("retrieve", params, base)
        body = request.json if isinstance(request.json, dict) else {}
        stream = body.get("stream") is True
        return Call("create" if stream else "create-whole", self._body(body), base)

    def _base(self, request: Request) -> str:
        if request.method == "GET":
            origin, path, _ = _path_and_query(request.url)
            return origin + path[: path.rindex("/responses/")]
        return super()._base(request)

    def _items(self, client: Any, call: Call) -> Iterator[Any]:
        if call.operation == "retrieve":
            yield from client.responses.retrieve(stream=True, **call.params)
            return
        kwargs = self._split(call.params, "model", "input")
        if call.operation == "create-whole":
            yield client.responses.create(**kwargs)
            return
        yield from client.responses.create(stream=True, **kwargs)

    def _render(self, item: Any, screen: _Screen) -> None:
        kind = getattr(item, "type", None)
        if kind in ("response.output_text.delta", "response.refusal.delta"):
            screen.text(item.delta)
        elif kind in ("response.reasoning_summary_text.delta", "response.reasoning_text.delta"):
            screen.thinking(item.delta)
        elif kind == "response.output_item.added":
            added = item.item
            if added.type == "function_call":
                screen.tool(added.name)
            elif str(added.type).endswith("_call"):
                screen.tool(str(added.type))
        elif kind == "response.function_call_arguments.delta":
            screen.tool_input(item.delta)
        elif kind == "error":
            screen.out.notes.append(f"an error event ({item.code}: {item.message}) the SDK handed on without "
                                    "raising")  # fmt: skip
        elif kind in _TERMINAL:
            self._finished(item.response, screen)
        elif getattr(item, "object", None) == "response":  # a whole response (no stream asked for)
            for output in item.output or []:
                if output.type == "function_call":
                    screen.tool(output.name)
                    screen.tool_input(output.arguments)
            screen.text(item.output_text)
            self._finished(item, screen)

    @staticmethod
    def _finished(response: Any, screen: _Screen) -> None:
        out = screen.out
        status = _value(response.status)
        if status == "incomplete" and response.incomplete_details is not None:
            status = f"incomplete ({response.incomplete_details.reason})"
        elif status == "failed" and response.error is not None:
            status = f"failed ({_value(response.error.code)}: {response.error.message})"
        out.stop_reason = status
        if response.usage is not None:
            out.tokens = (response.usage.input_tokens, response.usage.output_tokens)


# --- Gemini -------------------------------------------------------------------------------------------

#: ``{prefix}/{version}/models/{model}:{method}`` (tuned models: ``tunedModels/{model}``)
_GEMINI_PATH = re.compile(r"^(?P<prefix>.*?)/(?P<version>v[^/]+)/(?P<model>(?:models|tunedModels)/[^/:]+):(?P<method>\w+)$")
#: the body fields that are not the generation config's
_GEMINI_TOP = ("contents", "model")


class GeminiDriver(Driver):
    name = "gemini"
    package = "google-genai"
    default_model = "gemini-2.5-flash"
    stop_label = "finish_reason"
    body_key = "contents"
    body_name = "a generateContent request body"
    key_variables = ("GEMINI_API_KEY", "GOOGLE_API_KEY")

    def from_prompt(self, prompt: str, model: str, max_tokens: int | None, thinking: bool) -> Call:
        return self.from_body({"contents": prompt}, model, max_tokens, thinking)

    def from_body(self, body: dict[str, Any], model: str, max_tokens: int | None, thinking: bool) -> Call:
        """The REST body's ``generationConfig`` and its other fields (``systemInstruction``, ``tools``...)
        become the SDK's ``GenerateContentConfig``; ``model`` may be given in the body too."""
        from google.genai import types
        from pydantic import ValidationError

        given = self._body(body)
        generation = given.get("generationConfig") or {}
        if not isinstance(generation, dict):
            raise ConfigError(f"generationConfig: expected a mapping, found {type(generation).__name__}")
        settings = {**generation,
                    **{k: v for k, v in given.items() if k not in (*_GEMINI_TOP, "generationConfig")}}  # fmt: skip
        if max_tokens and not {"maxOutputTokens", "max_output_tokens"} & set(settings):
            settings["maxOutputTokens"] = max_tokens
        if thinking and not {"thinkingConfig", "thinking_config"} & set(settings):
            settings["thinkingConfig"] = {"includeThoughts": True}
        try:
            config = types.GenerateContentConfig.model_validate(settings) if settings else None
        except ValidationError as exc:
            problem = exc.errors()[0]
            where = ".".join(str(part) for part in problem["loc"])
            raise ConfigError(f"{where}: {problem['msg']} (not a generateContent request field google-genai knows)") from None
        return Call("stream", {"model": str(given.get("model") or model), "contents": given["contents"], "config": config})

    def from_recording(self, request: Request) -> Call:
        origin, path, _ = _path_and_query(request.url)
        found = _GEMINI_PATH.match(path)
        if found is None or "/publishers/" in path or "/projects/" in path:
            raise ConfigError(f"not a Gemini API call play can make ({request.url}); it replays "
                              "/{version}/models/{model}:streamGenerateContent and :generateContent")  # fmt: skip
        body = request.json if isinstance(request.json, dict) else {"contents": []}
        model = found["model"].removeprefix("models/")
        try:
            call = self.from_body(body, model, None, False)
        except ConfigError:  # a config this google-genai does not know: the answer does not depend on it
            call = self.from_body({"contents": body.get("contents") or []}, model, None, False)
        call.operation = "stream" if found["method"] == "streamGenerateContent" else "whole"
        call.base_url = origin + found["prefix"]
        call.options["api_version"] = found["version"]
        return call

    def run(self, call: Call, console: Console, *, replay: bool) -> Outcome:
        from google import genai
        from google.genai import types

        out = Outcome()
        screen = _Screen(console, out)
        http = types.HttpOptions(base_url=call.base_url, api_version=call.options.get("api_version"))
        client = genai.Client(api_key=PLAY_KEY if replay else None, vertexai=False, http_options=http)
        try:
            return _consume(out, console, lambda: self._items(client, call), lambda item: self._render(item, screen))
        finally:
            client.close()

    @staticmethod
    def _items(client: Any, call: Call) -> Iterator[Any]:
        if call.operation == "whole":
            yield client.models.generate_content(**call.params)
            return
        yield from client.models.generate_content_stream(**call.params)

    @staticmethod
    def _render(chunk: Any, screen: _Screen) -> None:
        out = screen.out
        for candidate in (chunk.candidates or [])[:1]:
            for part in (candidate.content.parts if candidate.content is not None else None) or []:
                if part.text:
                    (screen.thinking if part.thought else screen.text)(part.text)
                if part.function_call is not None:
                    screen.tool(str(part.function_call.name))
                    screen.tool_input(json.dumps(part.function_call.args or {}, ensure_ascii=False))
            if candidate.finish_reason is not None:
                out.stop_reason = _value(candidate.finish_reason)
        feedback = chunk.prompt_feedback
        if feedback is not None and feedback.block_reason is not None:
            out.stop_reason = f"none: the prompt was blocked ({_value(feedback.block_reason)})"
        usage = chunk.usage_metadata
        if usage is not None:
            out.tokens = (usage.prompt_token_count, usage.candidates_token_count)

    def verdict(self, exc: BaseException) -> str:
        from google.genai import errors

        name = _name(exc)
        if isinstance(exc, errors.APIError):
            return f"{name}: the docs' `except errors.APIError` catches it (e.code {exc.code})"
        return f"{name}: NOT caught by the docs' `except errors.APIError`; it escapes to the caller"


# --- Bedrock ------------------------------------------------------------------------------------------

_BEDROCK_PATH = re.compile(r"^(?P<prefix>.*?)/model/(?P<model>[^/]+)/(?P<operation>converse-stream|converse|"
                           r"invoke-with-response-stream|invoke)$")  # fmt: skip
_BEDROCK_HOST = re.compile(r"^bedrock-runtime(?:-fips)?\.(?P<region>[a-z0-9-]+)\.amazonaws\.com$")
_OPERATIONS = {"converse-stream": "converse_stream", "converse": "converse",
               "invoke-with-response-stream": "invoke_model_with_response_stream", "invoke": "invoke_model"}  # fmt: skip


class BedrockDriver(Driver):
    name = "bedrock"
    package = "boto3"
    default_model = "us.amazon.nova-micro-v1:0"
    stop_label = "stopReason"
    body_name = "a ConverseStream request body"
    key_variables = ("AWS_ACCESS_KEY_ID", "AWS_SECRET_ACCESS_KEY")

    def key_error(self) -> str | None:
        if os.environ.get("AWS_BEARER_TOKEN_BEDROCK"):  # a Bedrock API key: botocore signs nothing
            return None
        import boto3
        import botocore.exceptions

        try:
            credentials = boto3.session.Session().get_credentials()
        except botocore.exceptions.BotoCoreError as exc:
            return f"AWS credentials: {exc}; fix the profile or export AWS_ACCESS_KEY_ID and AWS_SECRET_ACCESS_KEY"
        if credentials is None:
            return ("no AWS credentials found; export AWS_ACCESS_KEY_ID and AWS_SECRET_ACCESS_KEY (or AWS_PROFILE, "
                    "or AWS_BEARER_TOKEN_BEDROCK) to record with --provider bedrock (replay never needs them)")  # fmt: skip
        return None

    def from_prompt(self, prompt: str, model: str, max_tokens: int | None, thinking: bool) -> Call:
        return self.from_body({"messages": [{"role": "user", "content": [{"text": prompt}]}]}, model, max_tokens,
                              thinking)  # fmt: skip

    def from_body(self, body: dict[str, Any], model: str, max_tokens: int | None, thinking: bool) -> Call:
        """A ConverseStream body is boto3's ``converse_stream`` arguments (``modelId`` may be given too)."""
        if thinking:
            raise ConfigError("--thinking: Bedrock asks for reasoning per model; put it in --request "
                              "(additionalModelRequestFields)")  # fmt: skip
        params = {"modelId": model, **self._body(body)}
        if max_tokens and "maxTokens" not in (params.get("inferenceConfig") or {}):
            params["inferenceConfig"] = {**(params.get("inferenceConfig") or {}), "maxTokens": max_tokens}
        return Call("converse_stream", params)

    def from_recording(self, request: Request) -> Call:
        parts = urlsplit(request.url)
        found = _BEDROCK_PATH.match(parts.path)
        if found is None:
            raise ConfigError(f"not a Bedrock Runtime model call ({request.url})")
        operation, model = _OPERATIONS[found["operation"]], unquote(found["model"])
        region = _BEDROCK_HOST.match(parts.hostname or "")
        base = urlunsplit((parts.scheme, parts.netloc, found["prefix"], "", ""))
        options = {"region": region["region"] if region else "us-east-1"}
        if operation.startswith("invoke"):  # the model's own body, sent as it is
            headers = {name.lower(): value for name, value in request.headers}
            params = {"modelId": model, "body": request.body,
                      "contentType": headers.get("content-type", "application/json"),
                      "accept": headers.get("x-amzn-bedrock-accept", "application/json")}  # fmt: skip
            return Call(operation, params, base, options)
        body = request.json if isinstance(request.json, dict) else {}
        return Call(operation, {"modelId": model, **body}, base, options)

    def run(self, call: Call, console: Console, *, replay: bool) -> Outcome:
        import boto3
        from botocore.config import Config

        out = Outcome()
        screen = _Screen(console, out)
        session = boto3.session.Session()
        region = call.options.get("region") or session.region_name or "us-east-1"
        options: dict[str, Any] = {"endpoint_url": call.base_url, "region_name": region}
        if replay:  # the SDK's own retries, no real credentials
            options.update(aws_access_key_id=PLAY_KEY, aws_secret_access_key=PLAY_KEY)
        else:
            options["config"] = Config(retries={"total_max_attempts": 1})
        client = session.client("bedrock-runtime", **options)
        try:
            return _consume(out, console, lambda: self._items(client, call), lambda item: self._render(item, screen))
        finally:
            client.close()

    @staticmethod
    def _items(client: Any, call: Call) -> Iterator[Any]:
        response = getattr(client, call.operation)(**call.params)
        if call.operation == "converse_stream":
            yield from response["stream"]
        elif call.operation == "invoke_model_with_response_stream":
            yield from response["body"]
        elif call.operation == "converse":
            yield response
        else:
            yield {"chunk": {"bytes": response["body"].read()}}

    def _render(self, event: dict[str, Any], screen: _Screen) -> None:
        out = screen.out
        if "chunk" in event:
            try:
                self._model_event(json.loads(event["chunk"]["bytes"]), screen)
            except ValueError:
                screen.text(event["chunk"]["bytes"].decode("utf-8", errors="replace"))
        elif "contentBlockStart" in event:
            tool = (event["contentBlockStart"].get("start") or {}).get("toolUse")
            if tool:
                screen.tool(tool.get("name", ""))
        elif "contentBlockDelta" in event:
            delta = event["contentBlockDelta"].get("delta") or {}
            screen.text(delta.get("text"))
            screen.thinking((delta.get("reasoningContent") or {}).get("text"))
            screen.tool_input((delta.get("toolUse") or {}).get("input"))
        elif "messageStop" in event:
            out.stop_reason = event["messageStop"].get("stopReason")
        elif "metadata" in event or "output" in event:  # a stream's usage, or a whole Converse answer
            if "output" in event:
                for block in (event["output"].get("message") or {}).get("content") or []:
                    if "toolUse" in block:
                        screen.tool(block["toolUse"].get("name", ""))
                        screen.tool_input(json.dumps(block["toolUse"].get("input"), ensure_ascii=False))
                    screen.text(block.get("text"))
                out.stop_reason = event.get("stopReason")
            usage = (event.get("metadata") or event).get("usage") or {}
            if usage:
                out.tokens = (usage.get("inputTokens"), usage.get("outputTokens"))

    @staticmethod
    def _model_event(data: Any, screen: _Screen) -> None:
        """One model event of an invoke stream: a Messages API event (Anthropic models), or another
        model's JSON, whose text and end are read where the common ones put them."""
        out = screen.out
        if not isinstance(data, dict):
            return
        kind = data.get("type")
        if kind == "content_block_start" and (data.get("content_block") or {}).get("type") == "tool_use":
            screen.tool(data["content_block"].get("name", ""))
        elif kind == "content_block_delta":
            delta = data.get("delta") or {}
            screen.text(delta.get("text"))
            screen.thinking(delta.get("thinking"))
            screen.tool_input(delta.get("partial_json"))
        elif kind == "message_start":
            usage = (data.get("message") or {}).get("usage") or {}
            out.tokens = (usage.get("input_tokens"), None)
        elif kind == "message_delta":
            out.stop_reason = (data.get("delta") or {}).get("stop_reason") or out.stop_reason
            tokens_in = out.tokens[0] if out.tokens else None
            out.tokens = (tokens_in, (data.get("usage") or {}).get("output_tokens"))
        elif kind == "message":  # a whole Messages answer (``invoke``)
            for block in data.get("content") or []:
                if block.get("type") == "tool_use":
                    screen.tool(block.get("name", ""))
                    screen.tool_input(json.dumps(block.get("input"), ensure_ascii=False))
                screen.text(block.get("text") if block.get("type") == "text" else None)
            out.stop_reason = data.get("stop_reason")
            usage = data.get("usage") or {}
            out.tokens = (usage.get("input_tokens"), usage.get("output_tokens"))
        elif kind is None:
            for key in ("text", "outputText", "generation", "completion"):
                if isinstance(data.get(key), str):
                    screen.text(data[key])
            for key in ("finish_reason", "stop_reason", "completionReason"):
                if isinstance(data.get(key), str):
                    out.stop_reason = data[key]
        metrics = data.get("amazon-bedrock-invocationMetrics")
        if isinstance(metrics, dict) and not (out.tokens and None not in out.tokens):
            out.tokens = (metrics.get("inputTokenCount"), metrics.get("outputTokenCount"))

    def verdict(self, exc: BaseException) -> str:
        import botocore.exceptions

        name = _name(exc)
        if isinstance(exc, botocore.exceptions.EventStreamError):
            code = exc.response.get("Error", {}).get("Code")
            return f"{name}: `except botocore.exceptions.ClientError` catches it (an exception inside the stream: {code})"
        if isinstance(exc, botocore.exceptions.ClientError):
            code = exc.response.get("Error", {}).get("Code")
            return f"{name}: `except botocore.exceptions.ClientError` catches it (error code {code})"
        if isinstance(exc, botocore.exceptions.BotoCoreError):
            return f"{name}: `except botocore.exceptions.BotoCoreError` catches it"
        return (f"{name}: NOT caught by the usual `except ClientError` / `except BotoCoreError`; it escapes to the "
                "caller")  # fmt: skip

    def invalid(self, exc: BaseException) -> str | None:
        import botocore.exceptions

        if isinstance(exc, botocore.exceptions.ParamValidationError):
            return " ".join(str(exc).split())
        return None


DRIVERS: dict[str, Driver] = {d.name: d for d in (AnthropicDriver(), OpenAIChatDriver(), OpenAIResponsesDriver(),
                                                  GeminiDriver(), BedrockDriver())}  # fmt: skip


def driver(provider: str) -> Driver | None:
    """The driver for a provider's calls (``streamtape.providers`` names), or ``None``."""
    return DRIVERS.get(provider)


# --- what came of it ------------------------------------------------------------------------------------


def _cause(exc: BaseException) -> str:
    """What lies under an SDK error ("Connection error." says nothing): the deepest cause, named."""
    seen, cause = {id(exc)}, exc.__cause__ or exc.__context__
    deepest = None
    while cause is not None and id(cause) not in seen:
        seen.add(id(cause))
        deepest = cause
        cause = cause.__cause__ or cause.__context__
    # an HTTP status error under an SDK's status error says what the SDK's message says already
    if deepest is None or str(deepest) in str(exc) or type(deepest).__name__ == "HTTPStatusError":
        return ""
    said = " ".join(str(deepest).split())
    return f" (caused by {type(deepest).__name__}: {said})" if said else f" (caused by {type(deepest).__name__})"


def summary(outcome: Outcome, events: int | None = None, stop_label: str = "stop_reason") -> str:
    """One sentence on how the call ended; ``events``: the recording's events delivered (else the SDK's count)."""
    events = outcome.events if events is None else events
    if outcome.error is not None:
        message = " ".join(str(outcome.error).split())
        return f"{events} events, then {type(outcome.error).__name__}: {message}{_cause(outcome.error)}"
    stop = outcome.stop_reason
    if stop is None and outcome.final is not None:
        stop = getattr(outcome.final, "stop_reason", None)
    said = f"{stop_label} {stop}" if stop is not None else f"no {stop_label}: the stream ended without one and the SDK raised nothing"
    tokens = ""
    if outcome.tokens is not None:
        given = [f"{n} {label}" for n, label in zip(outcome.tokens, ("tokens in", "out"), strict=True) if n is not None]
        tokens = "".join(f", {part}" for part in given)
    notes = "".join(f"; {note}" for note in outcome.notes)
    first = "-" if outcome.first_event_at is None else f"{outcome.first_event_at * 1000:.0f} ms"
    return f"{events} events, {said}{tokens}{notes}; first event after {first}, {outcome.duration:.2f} s in all"
