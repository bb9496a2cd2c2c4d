"""Apps that stream over aiohttp, the way real ones do, each capturing everything it can observe.

- ``anthropic_stream`` / ``anthropic_create``: ``anthropic.AsyncAnthropic`` over the SDK's vendored aiohttp
  transport (``http_client=anthropic.DefaultAioHttpClient()``), streaming events (``messages.stream``), or
  one non-stream ``messages.create``;
- ``openai_stream``: ``openai.AsyncOpenAI`` over its twin (``openai.DefaultAioHttpClient()``), a streamed
  ``chat.completions.create``; ``chat_reply()`` is what a local server answers it with, in OpenAI's Chat
  Completions SSE (``data: {...}`` events, then ``data: [DONE]``);
- ``plain``: aiohttp itself, reading the body with ``iter_any()`` (chunks as they arrive) or line by line
  (``async for line in response.content``).

``run(app, url, timeout)`` runs one and returns its ``Outcome`` (``seen()`` is what a differential test
compares); ``counting()`` counts the requests aiohttp sends and the SDKs' back-off waits (the real side,
where no tape counts them).
"""

from __future__ import annotations

import asyncio
import importlib
import json
import ssl
from collections.abc import Iterator
from contextlib import contextmanager
from dataclasses import dataclass, field
from typing import Any

import aiohttp

from tests.support import sdk
from tests.support.wire_server import Reply

__all__ = ["APPS", "CHAT_PARAMS", "CHAT_TEXT", "OPENAI_AIOHTTP", "Outcome", "SDK_AIOHTTP", "chat_events", "chat_reply",
           "counting", "run"]  # fmt: skip

anthropic: Any = importlib.import_module("anthropic")
try:
    openai: Any = importlib.import_module("openai")
except ImportError:  # pragma: no cover - the dev environments install it
    openai = None

#: the anthropic SDK vendors an aiohttp transport from 1.0 on (the legacy environment's 0.x does not)
SDK_AIOHTTP = hasattr(anthropic, "DefaultAioHttpClient") and sdk.SDK_MAJOR >= 1
#: ... and so does openai (3.x runs on httpx2)
OPENAI_AIOHTTP = openai is not None and hasattr(openai, "DefaultAioHttpClient")

#: One TLS context for every client: building one per client costs ~20 ms. Nothing here speaks TLS.
_TLS = ssl.create_default_context()

CHAT_PARAMS: dict[str, Any] = {"model": "gpt-test", "messages": [{"role": "user", "content": "Write a story"}]}
_CHAT_PIECES = ("", "Hello", ",", " world", "!")
CHAT_TEXT = "".join(_CHAT_PIECES)


@dataclass
class Outcome:
    """What one app saw."""

    status: int | None = None
    #: SDK events or chunks (dumped), plain aiohttp's body pieces (``iter_any``) or lines (``readline``)
    items: list[Any] = field(default_factory=list)
    text: str = ""
    final: Any = None
    snapshot: Any = None
    error: tuple[str, str, str | None] | None = None
    cause_message: str | None = None
    chain: list[sdk.Level] = field(default_factory=list)

    def fail(self, exc: BaseException) -> None:
        failed = sdk.Outcome()
        failed.fail(exc)
        self.error, self.chain = failed.error, failed.chain
        # aiohttp names the address in its connect errors: normalised as the rest of the chain is
        self.cause_message = None if failed.cause_message is None else sdk._portless(failed.cause_message)  # noqa: SLF001
        self.status = failed.status if failed.status is not None else self.status

    def seen(self, *, boundaries: bool = True) -> dict[str, Any]:
        """Everything compared. ``boundaries=False``: ``iter_any`` pieces joined, since a real socket may
        coalesce writes that arrive together (what the replay keeps is tested where timing is recorded)."""
        items = self.items if boundaries else [b"".join(self.items)]
        return {"error": self.error, "cause_message": self.cause_message, "status": self.status, "text": self.text,
                "chain": self.chain, "items": items, "final": self.final, "snapshot": self.snapshot}  # fmt: skip


# --- the apps ------------------------------------------------------------------------------------------


async def anthropic_stream(out: Outcome, url: str, timeout: float, retries: int = 2) -> None:
    """anthropic over ``DefaultAioHttpClient``, ``messages.stream`` iterated event by event."""
    client = _anthropic(url, timeout, retries)
    async with client:
        try:
            async with client.messages.stream(**sdk.PARAMS) as stream:
                try:
                    async for event in stream:
                        out.items.append(event.model_dump(warnings=False))
                    out.final = (await stream.get_final_message()).model_dump(warnings=False)
                except Exception:
                    out.snapshot = sdk._snapshot(stream)  # noqa: SLF001 - as tests/support/sdk.py takes it
                    raise
        except Exception as exc:  # noqa: BLE001 - what the app sees is the point
            out.fail(exc)


async def anthropic_create(out: Outcome, url: str, timeout: float, retries: int = 2) -> None:
    """anthropic over ``DefaultAioHttpClient``, one non-stream ``messages.create``."""
    client = _anthropic(url, timeout, retries)
    async with client:
        try:
            message = await client.messages.create(**sdk.PARAMS)
            out.final = message.model_dump(warnings=False)
        except Exception as exc:  # noqa: BLE001 - what the app sees is the point
            out.fail(exc)


async def openai_stream(out: Outcome, url: str, timeout: float, retries: int = 2) -> None:
    """openai over its ``DefaultAioHttpClient``, a streamed ``chat.completions.create``."""
    client = openai.AsyncOpenAI(base_url=f"{url}/v1", api_key="test-key-not-a-secret", max_retries=retries,
                                timeout=timeout, http_client=openai.DefaultAioHttpClient(verify=_TLS))  # fmt: skip
    async with client:
        try:
            stream = await client.chat.completions.create(stream=True, **CHAT_PARAMS)
            async for chunk in stream:
                out.items.append(chunk.model_dump(warnings=False))
                for choice in chunk.choices:
                    out.text += choice.delta.content or ""
        except Exception as exc:  # noqa: BLE001
            out.fail(exc)


async def plain_iter_any(out: Outcome, url: str, timeout: float, retries: int = 0) -> None:
    await _plain(out, url, timeout, lines=False)


async def plain_readline(out: Outcome, url: str, timeout: float, retries: int = 0) -> None:
    await _plain(out, url, timeout, lines=True)


async def _plain(out: Outcome, url: str, timeout: float, *, lines: bool) -> None:
    try:
        client_timeout = aiohttp.ClientTimeout(sock_read=timeout, sock_connect=timeout)
        async with aiohttp.ClientSession(timeout=client_timeout) as session:
            async with session.post(f"{url}/v1/messages", json={**sdk.PARAMS, "stream": True}) as response:
                out.status = response.status
                if lines:
                    async for line in response.content:
                        out.items.append(line)
                else:
                    async for chunk in response.content.iter_any():
                        out.items.append(chunk)
    except Exception as exc:  # noqa: BLE001
        out.fail(exc)


async def run(app: str, url: str, timeout: float, *, hang: float = 10.0) -> Outcome:
    """Run ``app``; one that neither ends nor fails within ``hang`` seconds is cancelled, and its outcome
    says ``hung`` with what it saw until then (aiohttp never ends a body whose chunk framing broke)."""
    out = Outcome()
    try:
        await asyncio.wait_for(APPS[app](out, url, timeout), hang)
    except TimeoutError:
        out.error = ("hung", f"no end and no error within {hang:g} s", None)
    return out


def _anthropic(url: str, timeout: float, retries: int) -> Any:
    return anthropic.AsyncAnthropic(base_url=url, api_key="test-key-not-a-secret", max_retries=retries,
                                    timeout=timeout, http_client=anthropic.DefaultAioHttpClient(verify=_TLS))  # fmt: skip


#: app name -> the app
APPS = {
    "anthropic": anthropic_stream,
    "anthropic-create": anthropic_create,
    "openai": openai_stream,
    "iter_any": plain_iter_any,
    "readline": plain_readline,
}


# --- the real side ---------------------------------------------------------------------------------------


@dataclass
class RealRun:
    requests: int = 0  # requests aiohttp sent (ClientSession._request calls)
    sleeps: list[float] = field(default_factory=list)  # the SDKs' back-off waits (noted, not slept)


class _AsyncClock:
    """An SDK's ``anyio`` on the real side: everything real but ``sleep``."""

    def __init__(self, real: Any, sleeps: list[float]) -> None:
        self._real, self._sleeps = real, sleeps

    def __getattr__(self, name: str) -> Any:
        return getattr(self._real, name)

    async def sleep(self, seconds: float) -> None:
        self._sleeps.append(seconds)
        await self._real.sleep(0)


@contextmanager
def counting() -> Iterator[RealRun]:
    """For a run without a tape: count the requests aiohttp sends, and note the SDKs' back-off waits
    instead of sleeping them (a tape makes them virtual on its side)."""
    import pytest

    run = RealRun()
    original = aiohttp.ClientSession._request  # noqa: SLF001

    async def _request(self: Any, *args: Any, **kwargs: Any) -> Any:
        run.requests += 1
        return await original(self, *args, **kwargs)

    with pytest.MonkeyPatch.context() as patch:
        patch.setattr(aiohttp.ClientSession, "_request", _request)
        for module in (anthropic, openai):
            if module is not None:
                base = module._base_client  # noqa: SLF001
                patch.setattr(base, "anyio", _AsyncClock(base.anyio, run.sleeps))
        yield run


# --- OpenAI's Chat Completions stream ----------------------------------------------------------------------


def _chat_chunk(delta: dict[str, Any], finish: str | None = None, **extra: Any) -> bytes:
    choice = {"index": 0, "delta": delta, "logprobs": None, "finish_reason": finish}
    chunk = {"id": "chatcmpl-streamtape0001", "object": "chat.completion.chunk", "created": 1775399317,
             "model": "gpt-test-2026-01-01", "system_fingerprint": "fp_streamtape", "choices": [choice], **extra}  # fmt: skip
    return b"data: " + json.dumps(chunk, separators=(",", ":")).encode() + b"\n\n"


def chat_events() -> list[bytes]:
    """A Chat Completions stream, one SSE event per piece: the role, four text deltas, the finish, the
    usage chunk, then ``[DONE]`` (8 events)."""
    events = [_chat_chunk({"role": "assistant", "content": "", "refusal": None})]
    events += [_chat_chunk({"content": piece}) for piece in _CHAT_PIECES[1:]]
    events.append(_chat_chunk({}, "stop"))
    usage = {"prompt_tokens": 9, "completion_tokens": 4, "total_tokens": 13}
    last = json.loads(_chat_chunk({})[6:])
    last.update(choices=[], usage=usage)
    events.append(b"data: " + json.dumps(last, separators=(",", ":")).encode() + b"\n\n")
    return [*events, b"data: [DONE]\n\n"]


def chat_reply(**reply: Any) -> Reply:
    """What an OpenAI-compatible server answers a streamed chat completion with."""
    headers = [("content-type", "text/event-stream; charset=utf-8"), ("x-request-id", "req_streamtape_chat"),
               ("openai-processing-ms", "120")]  # fmt: skip
    return Reply(**{"status": 200, "headers": headers, "events": chat_events(), **reply})
