"""OpenAI's wire format from the real recordings, served by `WireServer`, and the openai SDK driven
the way apps drive it, capturing everything the app can observe.

The recordings are copies (tests/data/openai/SOURCES.md): `transcript(api, name)` is a `Reply`
streaming `<api>/<name>.sse` one SSE event per piece, with the recorded status and headers;
`error_reply(api, name)` the recorded error body, Content-Length framed.

`consume(url, api, style)` / `aconsume(...)` run one streamed call through `openai.OpenAI` /
`AsyncOpenAI` and return a `tests.support.sdk.Outcome` (the same fields, compared the same way):

- ``chat`` (and ``compatible``: the OpenAI-compatible servers' recordings): ``create`` (``chat.completions.create(stream=True)``, the chunks), ``stream`` (the
  ``chat.completions.stream()`` helper: its events, then ``get_final_completion()``);
- ``responses``: ``create`` (``responses.create(stream=True)``, the events), ``stream`` (the
  ``responses.stream()`` helper: its events, then ``get_final_response()``).

``text`` is what the app printed as it arrived (content deltas; output text deltas).
"""

from __future__ import annotations

import json
from pathlib import Path
from typing import Any

import openai

from tests.support.sdk import Outcome
from tests.support.wire_server import Reply, split_events

__all__ = ["API_OF", "APIS", "DATA_DIR", "PARAMS", "STYLES", "aconsume", "consume", "error_reply", "path", "transcript"]

DATA_DIR: Path = Path(__file__).resolve().parent.parent / "data" / "openai"
STYLES = ("create", "stream")
APIS = ("chat", "responses")
#: the API each recordings folder speaks (OpenAI-compatible servers speak Chat Completions)
API_OF = {"chat": "chat", "compatible": "chat", "responses": "responses"}
#: what each API's call sends (the recordings answer any request: the server does not read it)
PARAMS: dict[str, dict[str, Any]] = {
    "chat": {"model": "gpt-4o", "messages": [{"role": "user", "content": "What is 4200 + 42?"}]},
    "responses": {"model": "gpt-4.1", "input": "Hello world"},
}
_SERVER_OWNED = {"transfer-encoding", "content-length", "content-encoding", "connection", "set-cookie"}


def path(api: str, name: str, suffix: str) -> Path:
    return DATA_DIR / api / f"{name}{suffix}"


def _head(api: str, name: str) -> tuple[int, str, list[tuple[str, str]]]:
    recorded = json.loads(path(api, name, ".headers.json").read_text(encoding="utf-8"))
    headers = [(k, v) for k, values in recorded["headers"].items() for v in values if k.lower() not in _SERVER_OWNED]
    return int(recorded["status"]), recorded.get("reason") or "", headers


def transcript(api: str, name: str, **reply: Any) -> Reply:
    """The recorded stream ``<api>/<name>.sse``, one SSE event per piece, with its status and headers."""
    status, reason, headers = _head(api, name)
    events = split_events(path(api, name, ".sse").read_bytes())
    return Reply(**{"status": status, "reason": reason, "headers": headers, "events": events, **reply})


def error_reply(api: str, name: str, **reply: Any) -> Reply:
    """The recorded error ``<api>/<name>.body.json``, Content-Length framed, with its status and headers."""
    status, reason, headers = _head(api, name)
    body = path(api, name, ".body.json").read_bytes()
    return Reply(**{"status": status, "reason": reason, "headers": headers, "events": [body],
                    "framing": "content-length", **reply})  # fmt: skip


def client(base_url: str, **options: Any) -> openai.OpenAI:
    return openai.OpenAI(base_url=f"{base_url}/v1", api_key="test-key-not-a-secret", **{"max_retries": 0, **options})


def async_client(base_url: str, **options: Any) -> openai.AsyncOpenAI:
    return openai.AsyncOpenAI(base_url=f"{base_url}/v1", api_key="test-key-not-a-secret",
                              **{"max_retries": 0, **options})  # fmt: skip


def _dump(value: Any) -> Any:
    return value.model_dump(warnings=False) if hasattr(value, "model_dump") else value


def _text(item: Any) -> str:
    """What an app prints of one chunk or event: the text it adds."""
    kind = getattr(item, "type", None)
    if kind == "response.output_text.delta" or kind == "content.delta":
        return str(item.delta)
    choices = getattr(item, "choices", None)
    if choices and kind is None:
        return "".join(choice.delta.content or "" for choice in choices)
    return ""


def consume(url: str, api: str, style: str = "create", *, options: dict[str, Any] | None = None) -> Outcome:
    with client(url, **(options or {})) as sdk:
        return _consume(sdk, API_OF[api], style)


def _consume(sdk: openai.OpenAI, api: str, style: str) -> Outcome:
    out = Outcome()
    try:
        resource: Any = sdk.chat.completions if api == "chat" else sdk.responses
        if style == "create":
            for item in resource.create(stream=True, **PARAMS[api]):
                out.text += _text(item)
                out.events.append(_dump(item))
            return out
        with resource.stream(**PARAMS[api]) as stream:
            for item in stream:
                out.text += _text(item)
                out.events.append(_dump(item))
            final = stream.get_final_completion() if api == "chat" else stream.get_final_response()
            out.final = _dump(final)
    except Exception as exc:  # noqa: BLE001 - recording what the app sees is the point
        out.fail(exc)
    return out


async def aconsume(url: str, api: str, style: str = "create", *, options: dict[str, Any] | None = None) -> Outcome:
    async with async_client(url, **(options or {})) as sdk:
        return await _aconsume(sdk, API_OF[api], style)


async def _aconsume(sdk: openai.AsyncOpenAI, api: str, style: str) -> Outcome:
    out = Outcome()
    try:
        resource: Any = sdk.chat.completions if api == "chat" else sdk.responses
        if style == "create":
            async for item in await resource.create(stream=True, **PARAMS[api]):
                out.text += _text(item)
                out.events.append(_dump(item))
            return out
        async with resource.stream(**PARAMS[api]) as stream:
            async for item in stream:
                out.text += _text(item)
                out.events.append(_dump(item))
            final = await stream.get_final_completion() if api == "chat" else await stream.get_final_response()
            out.final = _dump(final)
    except Exception as exc:  # noqa: BLE001
        out.fail(exc)
    return out
