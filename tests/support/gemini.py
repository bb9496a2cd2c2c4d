"""Gemini on a real socket, and google-genai driven the way apps drive it.

`stream_reply(name)` / `error_reply(name)` turn the recordings in `tests/data/gemini` into `WireServer`
replies (one CRLF-framed SSE event per piece, the recorded status and headers); `planned_reply(actions)`
puts exactly what a fault plan made of a recording on the wire. `consume` / `aconsume` stream one answer
through `google.genai.Client(...).models.generate_content_stream` (httpx2) and
`client.aio.models.generate_content_stream` (aiohttp, when installed: google-genai's own choice) and
return everything the app can observe, the exception chain included.

google-genai retries only when `HttpOptions.retry_options` is given (tenacity, by status code and by
connect/timeout errors); without it, async over aiohttp retries a failed connect once after a real
`asyncio.sleep(1..10)`. `client()` always gives retry options (one attempt unless asked, zero back-off),
so no test sleeps.
"""

from __future__ import annotations

import json
import ssl
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

from google import genai
from google.genai import types

from tests.support.sdk import Level, _portless, chain
from tests.support.wire_server import Reply

__all__ = ["DATA_DIR", "MODEL", "Outcome", "aconsume", "client", "consume", "error_reply", "planned_reply",
           "split_events", "stream_reply"]  # fmt: skip

DATA_DIR = Path(__file__).resolve().parent.parent / "data" / "gemini"
MODEL = "gemini-2.0-flash-exp"
PROMPT = "What is the capital of France?"
_FRAMING = {"content-length", "transfer-encoding", "content-encoding", "connection", "date"}
#: one TLS context for every client (building one per client is most of a client's cost); nothing here speaks TLS
_TLS = ssl.create_default_context()


def split_events(body: bytes) -> list[bytes]:
    """The body's CRLF-framed events, each with its blank line; ``b"".join(...) == body``."""
    pieces = [part + b"\r\n\r\n" for part in body.split(b"\r\n\r\n")]
    pieces[-1] = pieces[-1][:-4]
    return pieces if pieces[-1] else pieces[:-1]


def _head(name: str) -> tuple[int, str, list[tuple[str, str]]]:
    recorded = json.loads((DATA_DIR / f"{name}.headers.json").read_text(encoding="utf-8"))
    headers = [(k, v) for k, values in recorded["headers"].items() for v in values if k.lower() not in _FRAMING]
    return int(recorded["status"]), recorded.get("reason") or "", headers


def stream_reply(name: str = "text", **options: Any) -> Reply:
    """``DATA_DIR/<name>.sse`` as the API sent it: chunked, one event per piece."""
    status, reason, headers = _head(name)
    events = split_events((DATA_DIR / f"{name}.sse").read_bytes())
    return Reply(**{"status": status, "reason": reason, "headers": headers, "events": events, **options})


def error_reply(name: str, **options: Any) -> Reply:
    """The recorded error ``DATA_DIR/<name>.body.json`` with its status and headers, Content-Length framed."""
    status, reason, headers = _head(name)
    body = (DATA_DIR / f"{name}.body.json").read_bytes()
    return Reply(**{"status": status, "reason": reason, "headers": headers, "events": [body],
                    "framing": "content-length", **options})  # fmt: skip


def planned_reply(actions: list[Any], framing: str = "chunked", forever: float = 30.0) -> Reply:
    """A reply that plays a fault plan's actions on a socket: the status, reason and headers, one piece per
    ``Send`` when due, then the ending (clean, a FIN or RST for a cut, silence for an endless stall, bytes
    that are not HTTP then a FIN)."""
    from streamtape.wire import Cut, Raw, Respond, Send, Stall, expand

    respond, *body = list(expand(actions))
    if isinstance(respond, Raw):
        return Reply(raw=respond.data, raw_after=-1)
    assert isinstance(respond, Respond), actions
    sends = [a for a in body if isinstance(a, Send)]
    (ending,) = [a for a in body if not isinstance(a, Send)]
    delays, now = [], respond.at
    for action in [*sends, ending]:
        due = max(action.at, now)
        delays.append(due - now if due - now >= 0.005 else 0.0)  # loopback gaps are noise; a fault's are not
        now = due
    fault: dict[str, Any] = {}
    if isinstance(ending, Cut):
        fault = {"fin_after" if ending.kind == "fin" else "rst_after": len(sends)}
    elif isinstance(ending, Stall):
        fault = {"stall_after": len(sends), "stall_seconds": forever}
    elif isinstance(ending, Raw):
        fault = {"raw": ending.data, "raw_after": len(sends)}
    headers = {k.lower(): v for k, v in respond.headers}
    if "content-length" in headers and not isinstance(ending, Cut | Stall | Raw):
        framing = "content-length"
    if "content-encoding" in headers:
        fault["content_encoding"] = headers["content-encoding"]
    return Reply(status=respond.status, reason=respond.reason, headers=list(respond.headers),
                 events=[a.data for a in sends], framing=framing, head_delay=respond.at if respond.at >= 0.005 else 0.0,  # type: ignore[arg-type]
                 piece_delays=delays, **fault)  # fmt: skip


# --- the app ---------------------------------------------------------------------------------------


@dataclass
class Outcome:
    """What the app saw: the text, every chunk (dumped), and the exception and its chain, if any."""

    text: str = ""
    chunks: list[Any] = field(default_factory=list)
    error: tuple[str, str, str | None] | None = None  # (class, message, __cause__ class)
    code: int | None = None  # an APIError's code
    chain: list[Level] = field(default_factory=list)

    def fail(self, exc: BaseException) -> None:
        cause = exc.__cause__
        self.error = (f"{type(exc).__module__}.{type(exc).__name__}", _portless(str(exc)),
                      f"{type(cause).__module__}.{type(cause).__name__}" if cause is not None else None)  # fmt: skip
        self.code = exc.code if isinstance(exc, genai.errors.APIError) else None
        self.chain = chain(exc)

    def take(self, chunk: Any) -> None:
        text = chunk.text  # None for a chunk with no text part: apps doing ``+=`` meet a TypeError
        self.text += text or ""
        self.chunks.append(chunk.model_dump(mode="json", exclude_none=True, exclude={"sdk_http_response"}))

    @property
    def kind(self) -> str:
        """The exception's class name, or ``ok``."""
        return self.error[0].rsplit(".", 1)[1] if self.error else "ok"


def client(
    base_url: str, *, timeout: float | None = 5.0, attempts: int = 1, backoff: bool = False, **options: Any
) -> genai.Client:
    """A client on ``base_url`` with ``attempts`` tries, no back-off unless ``backoff`` (google-genai's own:
    about 1 s, then 2 s, with jitter; a replay-only tape takes it on its clock), and a ``timeout`` in seconds."""
    delays = {} if backoff else {"initial_delay": 0, "max_delay": 0, "jitter": 0}
    retry = types.HttpRetryOptions(attempts=attempts, **delays)
    http = types.HttpOptions(base_url=base_url, retry_options=retry,
                             timeout=None if timeout is None else int(timeout * 1000),
                             client_args={"verify": _TLS}, async_client_args={"ssl": _TLS}, **options)  # fmt: skip
    return genai.Client(api_key="test-key-not-a-secret", http_options=http)


def consume(url: str, *, model: str = MODEL, config: Any = None, **options: Any) -> Outcome:
    out = Outcome()
    sdk = client(url, **options)
    try:
        for chunk in sdk.models.generate_content_stream(model=model, contents=PROMPT, config=config):
            out.take(chunk)
    except Exception as exc:  # noqa: BLE001 - what the app sees is the point
        out.fail(exc)
    finally:
        sdk.close()
    return out


async def aconsume(url: str, *, model: str = MODEL, config: Any = None, **options: Any) -> Outcome:
    out = Outcome()
    sdk = client(url, **options).aio
    try:
        async for chunk in await sdk.models.generate_content_stream(model=model, contents=PROMPT, config=config):
            out.take(chunk)
    except Exception as exc:  # noqa: BLE001
        out.fail(exc)
    finally:
        await sdk.aclose()
    return out
