"""Drive the real anthropic SDK the way apps do, and capture everything the app can observe.

Stack-neutral: under anthropic >= 1.0 the SDK runs on httpx2, under 0.x on httpx; ``HTTP`` is
whichever module the installed SDK uses, so the same tests run in both environments.
"""

from __future__ import annotations

import importlib
import re
from dataclasses import dataclass, field
from typing import Any

import anthropic

SDK_MAJOR = int(anthropic.__version__.split(".")[0])
STACK = "httpx2" if SDK_MAJOR >= 1 else "httpx"
HTTP: Any = importlib.import_module(STACK)
PARAMS: dict[str, Any] = {
    "model": "claude-test",
    "max_tokens": 64,
    "messages": [{"role": "user", "content": "Write a story"}],
}
STYLES = ("text_stream", "events", "create", "final")


@dataclass
class Outcome:
    """What the app saw: the text, every SDK event, the final message, and the exception if any."""

    text: str = ""
    events: list[Any] = field(default_factory=list)
    final: Any = None
    error: tuple[str, str, str | None] | None = None  # (class, message, __cause__ class)
    status: int | None = None
    #: ``str(exc.__cause__)`` when the exception has a cause (``error[2]`` names its class)
    cause_message: str | None = None
    #: ``stream.current_message_snapshot`` (dumped) when a ``messages.stream()`` style failed after
    #: ``message_start``; ``None`` on success, before ``message_start``, and in the ``create`` style
    snapshot: Any = None
    #: the whole chain of the exception, every level (``chain()``); empty on success
    chain: list[Level] = field(default_factory=list)

    def fail(self, exc: BaseException) -> None:
        cause = type(exc.__cause__).__module__ + "." + type(exc.__cause__).__name__ if exc.__cause__ else None
        self.error = (f"{type(exc).__module__}.{type(exc).__name__}", _portless(str(exc)), cause)
        self.status = getattr(exc, "status_code", None)
        self.cause_message = str(exc.__cause__) if exc.__cause__ is not None else None
        self.chain = chain(exc)


#: One exception of a chain: (where it is, its class with module, its message).
Level = tuple[str, str, str]


def chain(exc: BaseException) -> list[Level]:
    """``exc`` and every exception behind it, depth first: where each is (the path from ``exc`` through
    ``cause`` (``__cause__``) and ``context`` (``__context__``), the latter written ``context
    (suppressed)`` where ``__suppress_context__`` hides it; ``exc`` itself is ``""``), its class with
    module, and its message, normalised by ``_portless`` and nothing else. An exception met before
    (a context that is the cause, say) is written ``= <where it was met>``, not walked again."""
    levels: list[Level] = []
    met: dict[int, str] = {}

    def walk(current: BaseException, where: str) -> None:
        if id(current) in met:
            levels.append((where, f"= {met[id(current)] or 'the top'}", ""))
            return
        met[id(current)] = where
        levels.append((where, f"{type(current).__module__}.{type(current).__qualname__}", _portless(str(current))))
        prefix = f"{where}." if where else ""
        if current.__cause__ is not None:
            walk(current.__cause__, f"{prefix}cause")
        if current.__context__ is not None:
            suppressed = " (suppressed)" if current.__suppress_context__ else ""
            walk(current.__context__, f"{prefix}context{suppressed}")

    walk(exc, "")
    return levels


def raised(error: tuple[str, str, str | None] | None) -> set[str]:
    """The class names an app can meet for ``Outcome.error``: the exception's and its cause's. anthropic
    >= 2.17 wraps a mid-stream ``httpx2.RemoteProtocolError`` as ``APIConnectionError`` caused by it;
    earlier SDKs let it escape; either way the stack's error is one of these."""
    if error is None:
        return set()
    return {name.rsplit(".", 1)[1] for name in (error[0], error[2]) if name}


def _portless(message: str) -> str:
    """What differs between the real server and the replay, and nothing else: the port each listens on
    (anthropic >= 2.17 names the host in connection errors, "Connection to 127.0.0.1:PORT failed: ...";
    asyncio's refusal names the address, "Connect call failed ('127.0.0.1', PORT)"), and the memory
    address by which anyio names a cancel scope in the ``CancelledError`` behind an async timeout
    ("Cancelled via cancel scope ADDR; reason: deadline exceeded")."""
    message = re.sub(r"(127\.0\.0\.1|localhost):\d+", r"\1:PORT", message)
    message = re.sub(r"\('127\.0\.0\.1', \d+\)", "('127.0.0.1', PORT)", message)  # async: "Connect call failed (...)"
    return re.sub(r"\bcancel scope [0-9a-f]+\b", "cancel scope ADDR", message)


def client(base_url: str, **options: Any) -> anthropic.Anthropic:
    return anthropic.Anthropic(base_url=base_url, api_key="test-key-not-a-secret", **{"max_retries": 0, **options})


def async_client(base_url: str, **options: Any) -> anthropic.AsyncAnthropic:
    return anthropic.AsyncAnthropic(base_url=base_url, api_key="test-key-not-a-secret", **{"max_retries": 0, **options})


def _dump(event: Any) -> Any:
    return event.model_dump(warnings=False) if hasattr(event, "model_dump") else event


def _snapshot(stream: Any) -> Any:
    """The stream's partial message, dumped; ``None`` when no ``message_start`` arrived."""
    try:
        return _dump(stream.current_message_snapshot)
    except AssertionError:  # the SDK asserts there is a snapshot
        return None


def consume(url: str, style: str = "events", *, options: dict[str, Any] | None = None, **params: Any) -> Outcome:
    """Stream one message in a usage style: text_stream, events, create (stream=True) or final."""
    with client(url, **(options or {})) as sdk:
        return _consume(sdk, style, {**PARAMS, **params})


def _consume(sdk: anthropic.Anthropic, style: str, params: dict[str, Any]) -> Outcome:
    out = Outcome()
    try:
        if style == "create":
            for event in sdk.messages.create(stream=True, **params):
                out.events.append(_dump(event))
            return out
        with sdk.messages.stream(**params) as stream:
            try:
                if style == "text_stream":
                    for text in stream.text_stream:
                        out.text += text
                elif style == "events":
                    for event in stream:
                        out.events.append(_dump(event))
                out.final = _dump(stream.get_final_message())
            except Exception:
                out.snapshot = _snapshot(stream)
                raise
    except Exception as exc:  # noqa: BLE001 - recording what the app sees is the point
        out.fail(exc)
    return out


async def aconsume(url: str, style: str = "events", *, options: dict[str, Any] | None = None, **params: Any) -> Outcome:
    async with async_client(url, **(options or {})) as sdk:
        return await _aconsume(sdk, style, {**PARAMS, **params})


async def _aconsume(sdk: anthropic.AsyncAnthropic, style: str, params: dict[str, Any]) -> Outcome:
    out = Outcome()
    try:
        if style == "create":
            async for event in await sdk.messages.create(stream=True, **params):
                out.events.append(_dump(event))
            return out
        async with sdk.messages.stream(**params) as stream:
            try:
                if style == "text_stream":
                    async for text in stream.text_stream:
                        out.text += text
                elif style == "events":
                    async for event in stream:
                        out.events.append(_dump(event))
                out.final = _dump(await stream.get_final_message())
            except Exception:
                out.snapshot = _snapshot(stream)
                raise
    except Exception as exc:  # noqa: BLE001
        out.fail(exc)
    return out


def raw_chunks(base_url: str) -> tuple[int, list[bytes], str | None]:
    """Status, the body chunks as the SDK reads them (`iter_bytes`: decoded, unbuffered), and the error."""
    chunks: list[bytes] = []
    with HTTP.Client() as http:
        try:
            with http.stream("POST", f"{base_url}/v1/messages", json={**PARAMS, "stream": True}) as response:
                for chunk in response.iter_bytes():
                    chunks.append(chunk)
        except HTTP.HTTPError as exc:
            return response.status_code, chunks, f"{type(exc).__name__}: {exc}"
    return response.status_code, chunks, None


async def araw_chunks(base_url: str) -> tuple[int, list[bytes], str | None]:
    chunks: list[bytes] = []
    async with HTTP.AsyncClient() as http:
        try:
            async with http.stream("POST", f"{base_url}/v1/messages", json={**PARAMS, "stream": True}) as response:
                async for chunk in response.aiter_bytes():
                    chunks.append(chunk)
        except HTTP.HTTPError as exc:
            return response.status_code, chunks, f"{type(exc).__name__}: {exc}"
    return response.status_code, chunks, None
