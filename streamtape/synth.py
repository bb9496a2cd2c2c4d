"""``streamtape synth``: an Anthropic stream nobody recorded, framed as the real API frames it.

The events copy the real wire format of 2026 streams (see tests/data/sse): the same fields in the
same order, the server's padding spaces before the closing brace, a ping after the first block
starts, thinking with a signature, tool input as ``input_json_delta`` pieces. Text is cut into
word-sized deltas and timed by a simple model (time to first token, then a steady rate with
jitter), all drawn from one seed, so the same arguments give the same cassette.
"""

from __future__ import annotations

import base64
import hashlib
import json
import random
import re
from dataclasses import dataclass, field
from typing import Any

from .cassette import Interaction, Request, Response
from .errors import ConfigError

__all__ = ["Timing", "parse_timing", "synthesize"]


@dataclass(frozen=True)
class Timing:
    """Headers after ``headers`` s, the first event ``first`` s after them, then ``per_event`` s apart
    (± ``jitter``)."""

    headers: float = 0.3
    first: float = 0.25
    per_event: float = 0.03
    jitter: float = 0.01


def parse_timing(text: str) -> Timing:
    """``"headers=0.3,first=0.25,per_event=0.03,jitter=0.01"`` (any subset)."""
    values: dict[str, float] = {}
    for item in filter(None, (part.strip() for part in text.split(","))):
        key, _, raw = item.partition("=")
        if key not in Timing.__dataclass_fields__:
            valid = ", ".join(Timing.__dataclass_fields__)
            raise ConfigError(f"--chunk-timing: unknown key {key!r}; valid: {valid} (e.g. first=0.4,per_event=0.02)")
        try:
            values[key] = float(raw)
        except ValueError:
            raise ConfigError(f"--chunk-timing: {key}={raw!r} is not a number of seconds") from None
        if values[key] < 0:
            raise ConfigError(f"--chunk-timing: {key}={raw} must be >= 0")
    return Timing(**values)


@dataclass
class _Stream:
    rng: random.Random
    events: list[bytes] = field(default_factory=list)

    def add(self, name: str, data: str, padding: int = 0) -> None:
        payload = data[:-1] + " " * padding + "}" if padding else data
        self.events.append(f"event: {name}\ndata: {payload}\n\n".encode())

    def event(self, name: str, body: dict[str, Any], padding: int | None = None) -> None:
        self.add(name, json.dumps({"type": name, **body}, ensure_ascii=False, separators=(",", ":")),
                 self.rng.randint(1, 15) if padding is None else padding)  # fmt: skip


def synthesize(
    *,
    text: str | None = None,
    thinking: str | None = None,
    tools: list[tuple[str, Any]] | None = None,
    model: str = "claude-sonnet-5-5",
    prompt: str = "Hello",
    timing: Timing | None = None,
    seed: int = 0,
) -> Interaction:
    """One streamed Messages response holding ``thinking``, ``text`` and ``tools`` (name, input)."""
    if not (text or thinking or tools):
        raise ConfigError("synth: give at least --text, --thinking or --tool")
    rng = random.Random(seed)
    stream = _Stream(rng)
    ident = hashlib.sha256(f"{seed}:{text}:{thinking}:{tools}".encode()).hexdigest()
    stream.event("message_start", {"message": _message(model, ident, _tokens(prompt))}, padding=1)
    index = 0
    if thinking:
        _thinking_block(stream, index, thinking, ident)
        index += 1
    if text:
        _block(stream, index, {"type": "text", "text": ""}, "text_delta", "text", _pieces(text, rng))
        index += 1
    for number, (name, tool_input) in enumerate(tools or []):
        block = {"type": "tool_use", "id": f"toolu_01{ident[number : number + 22]}", "name": name, "input": {}}
        partial = json.dumps(tool_input, ensure_ascii=False)
        _block(stream, index, block, "input_json_delta", "partial_json", ["", *_pieces(partial, rng)])
        index += 1
    output = _tokens(f"{thinking or ''} {text or ''} {json.dumps(tools or [])}")
    stop = {"stop_reason": "tool_use" if tools else "end_turn", "stop_sequence": None, "stop_details": None}
    usage = {"input_tokens": _tokens(prompt), "cache_creation_input_tokens": 0, "cache_read_input_tokens": 0,
             "output_tokens": output}  # fmt: skip
    stream.event("message_delta", {"delta": stop, "usage": usage}, padding=0)
    stream.event("message_stop", {}, padding=3)
    return _interaction(stream.events, model, prompt, timing or Timing(), rng)


def _message(model: str, ident: str, input_tokens: int) -> dict[str, Any]:
    usage = {"input_tokens": input_tokens, "cache_creation_input_tokens": 0, "cache_read_input_tokens": 0,
             "cache_creation": {"ephemeral_5m_input_tokens": 0, "ephemeral_1h_input_tokens": 0}, "output_tokens": 1,
             "service_tier": "standard", "inference_geo": "not_available"}  # fmt: skip
    return {"model": model, "id": f"msg_01{ident[:22]}", "type": "message", "role": "assistant", "content": [],
            "stop_reason": None, "stop_sequence": None, "stop_details": None, "usage": usage}  # fmt: skip


def _block(stream: _Stream, index: int, block: dict[str, Any], delta: str, key: str, pieces: list[str]) -> None:
    stream.event("content_block_start", {"index": index, "content_block": block})
    if index == 0:
        stream.add("ping", '{"type": "ping"}')
    for piece in pieces:
        stream.event("content_block_delta", {"index": index, "delta": {"type": delta, key: piece}})
    stream.event("content_block_stop", {"index": index})


def _thinking_block(stream: _Stream, index: int, thinking: str, ident: str) -> None:
    signature = base64.b64encode(hashlib.sha512(f"{ident}:{thinking}".encode()).digest() * 3).decode()
    stream.event("content_block_start", {"index": index, "content_block": {"type": "thinking", "thinking": "",
                                                                           "signature": ""}})  # fmt: skip
    if index == 0:
        stream.add("ping", '{"type": "ping"}')
    for piece in _pieces(thinking, stream.rng):
        stream.event("content_block_delta", {"index": index, "delta": {"type": "thinking_delta", "thinking": piece}})
    stream.event("content_block_delta", {"index": index, "delta": {"type": "signature_delta", "signature": signature}})
    stream.event("content_block_stop", {"index": index})


def _pieces(text: str, rng: random.Random) -> list[str]:
    """Word-sized deltas (1-4 words), as models stream them."""
    words = re.findall(r"\S+\s*|\s+", text)
    pieces, position = [], 0
    while position < len(words):
        take = rng.randint(1, 4)
        pieces.append("".join(words[position : position + take]))
        position += take
    return pieces or [text]


def _tokens(text: str) -> int:
    return max(1, round(len(text) / 4))


def _interaction(events: list[bytes], model: str, prompt: str, timing: Timing, rng: random.Random) -> Interaction:
    at, offsets = timing.headers + timing.first, []
    for number in range(len(events)):
        if number:
            at += max(0.001, timing.per_event + rng.uniform(-timing.jitter, timing.jitter))
        offsets.append(round(at, 4))
    body = b"".join(events)
    headers = (("content-type", "text/event-stream; charset=utf-8"), ("cache-control", "no-cache"),
               ("request-id", f"req_011Csynth{hashlib.sha256(body).hexdigest()[:16]}"))  # fmt: skip
    request_json = {"max_tokens": 1024, "messages": [{"role": "user", "content": prompt}], "model": model,
                    "stream": True}  # fmt: skip
    request = Request("POST", "https://api.anthropic.com/v1/messages",
                      (("content-type", "application/json"), ("anthropic-version", "2023-06-01")),
                      json.dumps(request_json, separators=(",", ":")).encode())  # fmt: skip
    timing_pairs = tuple(zip(offsets, (len(event) for event in events), strict=True))
    return Interaction(request, Response(200, headers, body, timing_pairs, "OK", timing.headers))
