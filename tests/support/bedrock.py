"""Bedrock's ``invoke-with-response-stream`` for Anthropic models, served from 127.0.0.1, and
``anthropic.AnthropicBedrock`` driven the way apps drive it.

The server is ``WireServer`` (real sockets, h11 framing, FIN / RST / stalls) answering with AWS event
streams: one frame per Anthropic event, built from the recorded Anthropic streams in ``tests/data/sse``
and the recorded Bedrock framing in ``tests/data/bedrock`` (``invoke_with_response_stream_cohere``:
``:event-type chunk``, ``:content-type application/json``, ``:message-type event``, a
``{"bytes": "<base64>"}`` payload whose base64 is the model's event JSON, here the recorded SSE
event's data verbatim). Error replies are the recorded Bedrock errors in ``tests/data/bedrock``.

``AnthropicBedrock`` signs every request with SigV4 (fake keys shaped like real ones, so a leak is
visible) and reads the event stream over httpx2 (httpx under anthropic 0.x).
"""

from __future__ import annotations

import base64
import json
from pathlib import Path
from typing import Any

import anthropic

from streamtape.framing.eventstream import encode_frame
from tests.support import sdk
from tests.support.wire_server import DATA_DIR as SSE_DIR
from tests.support.wire_server import Reply, split_events

DATA_DIR = Path(__file__).resolve().parent.parent / "data" / "bedrock"
MODEL = "anthropic.claude-haiku-4-5-20251001-v1:0"
REGION = "us-east-1"
#: Fake credentials shaped like real ones: AKIA + 16 (what lint looks for), and a 40-character secret.
ACCESS_KEY = "AKIASTREAMTAPETEST01"
SECRET_KEY = "streamtapeTestSecretKeyNotReal0123456789"
PARAMS: dict[str, Any] = {**sdk.PARAMS, "model": MODEL}
EVENTSTREAM_HEADERS = [
    ("Content-Type", "application/vnd.amazon.eventstream"),
    ("x-amzn-RequestId", "b0cf6d2a-e435-4e9e-972d-a129006e1acc"),
    ("X-Amzn-Bedrock-Content-Type", "application/json"),
]
_CHUNK = ((":event-type", "chunk"), (":content-type", "application/json"), (":message-type", "event"))


def chunk(model_event: bytes) -> bytes:
    """One ``invoke-with-response-stream`` frame carrying a model event's JSON."""
    payload = json.dumps({"bytes": base64.b64encode(model_event).decode("ascii")}, separators=(",", ":"))
    return encode_frame(_CHUNK, payload.encode())


def frames(transcript: str) -> list[bytes]:
    """The recorded Anthropic stream ``tests/data/sse/<transcript>.sse`` as Bedrock frames: one per
    event, its data line's text as the base64 ``bytes``."""
    out = []
    for event in split_events((SSE_DIR / f"{transcript}.sse").read_bytes()):
        lines = [line[5:] for line in event.splitlines() if line.startswith(b"data:")]
        data = b"\n".join(line[1:] if line[:1] == b" " else line for line in lines)
        out.append(chunk(data))
    return out


def invoke_reply(transcript: str = "text_basic", **reply: Any) -> Reply:
    """A 200 ``invoke-with-response-stream`` answer, chunked, one frame per write."""
    return Reply(status=200, headers=list(EVENTSTREAM_HEADERS), events=frames(transcript), **reply)


def error_reply(name: str, **reply: Any) -> Reply:
    """The recorded Bedrock error ``tests/data/bedrock/<name>`` (body and headers as recorded)."""
    body = (DATA_DIR / f"{name}.body.json").read_bytes()
    head = json.loads((DATA_DIR / f"{name}.headers.json").read_text())
    owned = {"content-length", "connection", "transfer-encoding", "date"}
    headers = [(k, v) for k, values in head["headers"].items() for v in values if k.lower() not in owned]
    return Reply(status=head["status"], reason=head["reason"], headers=headers, events=[body],
                 framing="content-length", **reply)  # fmt: skip


def client(base_url: str, **options: Any) -> anthropic.AnthropicBedrock:
    return anthropic.AnthropicBedrock(base_url=base_url, aws_region=REGION, aws_access_key=ACCESS_KEY,
                                      aws_secret_key=SECRET_KEY, **{"max_retries": 0, **options})  # fmt: skip


def async_client(base_url: str, **options: Any) -> anthropic.AsyncAnthropicBedrock:
    return anthropic.AsyncAnthropicBedrock(base_url=base_url, aws_region=REGION, aws_access_key=ACCESS_KEY,
                                           aws_secret_key=SECRET_KEY, **{"max_retries": 0, **options})  # fmt: skip


def consume(url: str, style: str = "text_stream", *, options: dict[str, Any] | None = None) -> sdk.Outcome:
    """Stream one message through AnthropicBedrock in a usage style (``sdk.STYLES``)."""
    with client(url, **(options or {})) as bedrock:
        return sdk._consume(bedrock, style, dict(PARAMS))  # type: ignore[arg-type]


async def aconsume(url: str, style: str = "text_stream", *, options: dict[str, Any] | None = None) -> sdk.Outcome:
    async with async_client(url, **(options or {})) as bedrock:
        return await sdk._aconsume(bedrock, style, dict(PARAMS))  # type: ignore[arg-type]
