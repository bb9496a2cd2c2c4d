"""A Bedrock Runtime endpoint on 127.0.0.1 that streams real recorded ``ConverseStream`` responses.

`BedrockServer` is a `WireServer` (real TCP, h11 framing, and every socket-level misbehaviour a `Reply`
can ask for: FIN, RST, silence, slowness, a status line that is not HTTP) that answers only
``POST /model/{modelId}/converse-stream``, as the Bedrock Runtime service does, with the next queued
reply; any other request gets a 404 and is noted in ``errors``, so a test notices a client that asked
for something else. Point boto3 at it with ``endpoint_url=server.base_url``::

    with BedrockServer() as server:
        server.queue(converse_stream("converse_stream_text"))
        client = boto3.client("bedrock-runtime", endpoint_url=server.base_url, ...)
        events = list(client.converse_stream(modelId="m", messages=[...])["stream"])

The bodies are the real recorded AWS event streams in `DATA_DIR` (tests/data/bedrock/SOURCES.md has their
provenance): `converse_stream()` sends one frame per HTTP chunk (`frames()` splits a body at the frames'
own total lengths), `bedrock_error()` a recorded JSON error body with its headers.
"""

from __future__ import annotations

import json
import re
import struct
from pathlib import Path
from typing import Any

from tests.support.wire_server import ReceivedRequest, Reply, WireServer

__all__ = ["CONVERSE_STREAM", "DATA_DIR", "BedrockServer", "bedrock_error", "converse_stream", "frames",
           "list_streams"]  # fmt: skip

DATA_DIR: Path = Path(__file__).resolve().parent.parent / "data" / "bedrock"
"""The copied Bedrock corpus: ``*.eventstream``, ``*.body.json``, ``*.headers.json``, ``*.request.json``."""

CONVERSE_STREAM = re.compile(r"^/model/(?P<model>[^/?]+)/converse-stream(?:\?.*)?$")
"""The one operation the server answers (the model id is percent-encoded in the path)."""

_PRELUDE = 12


def frames(body: bytes) -> list[bytes]:
    """The event-stream frames of ``body``, each whole, in order (``b"".join(frames(b)) == b``)."""
    out, pos = [], 0
    while pos < len(body):
        if len(body) - pos < _PRELUDE:
            raise ValueError(f"a frame prelude at byte {pos} is cut short")
        total, _ = struct.unpack(">II", body[pos : pos + 8])
        if total < _PRELUDE + 4 or pos + total > len(body):
            raise ValueError(f"the frame at byte {pos} claims {total} bytes; {len(body) - pos} are left")
        out.append(body[pos : pos + total])
        pos += total
    return out


def _head(name: str) -> tuple[int, str, list[tuple[str, str]]]:
    data = json.loads((DATA_DIR / f"{name}.headers.json").read_text(encoding="utf-8"))
    headers = [(key, value) for key, values in data["headers"].items() for value in values]
    return int(data["status"]), str(data["reason"]), headers


def converse_stream(name: str = "converse_stream_text", **reply_kwargs: Any) -> Reply:
    """A `Reply` streaming ``DATA_DIR/<name>.eventstream``, one frame per HTTP chunk, with the recorded
    status and headers (framing headers are the server's own). Keyword arguments override any `Reply`
    field (``fin_after=3``: a FIN after the third frame)."""
    status, reason, headers = _head(name)
    events = frames((DATA_DIR / f"{name}.eventstream").read_bytes())
    return Reply(**{"status": status, "reason": reason, "headers": headers, "events": events, **reply_kwargs})


def bedrock_error(name: str, **reply_kwargs: Any) -> Reply:
    """A `Reply` for the recorded error ``DATA_DIR/<name>.body.json``, Content-Length framed."""
    status, reason, headers = _head(name)
    body = (DATA_DIR / f"{name}.body.json").read_bytes()
    defaults = {"status": status, "reason": reason, "headers": headers, "events": [body], "framing": "content-length"}
    return Reply(**{**defaults, **reply_kwargs})


def list_streams() -> list[str]:
    """The recorded ``converse-stream`` bodies."""
    return sorted(path.stem for path in DATA_DIR.glob("converse_stream_*.eventstream"))


class BedrockServer(WireServer):
    """A `WireServer` that answers ``POST /model/{modelId}/converse-stream`` only."""

    def _take_reply(self, request: ReceivedRequest) -> Reply:
        if request.method == "POST" and CONVERSE_STREAM.match(request.path):
            return super()._take_reply(request)
        self._report(f"not a ConverseStream request: {request.method} {request.path}")
        body = json.dumps({"message": f"streamtape's Bedrock test server has no {request.method} {request.path}"})
        return Reply(status=404, headers=[("content-type", "application/json")], events=[body.encode()],
                     framing="content-length")  # fmt: skip
