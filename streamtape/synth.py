"""``streamtape synth``: a model stream nobody recorded, framed as the real API frames it.

The provider (``streamtape.providers``; Anthropic's by default) writes the events as its API does:
for Anthropic the real wire format of 2026 streams (see tests/data/sse), the same fields in the same
order, the server's padding, a ping after the first block starts, thinking with a signature, tool
input in pieces. This module cuts text into word-sized deltas and times the events by a simple model
(time to first token, then a steady rate with jitter), all drawn from one seed, so the same
arguments give the same cassette.
"""

from __future__ import annotations

import random
import re
from dataclasses import dataclass
from typing import Any

from .cassette import Interaction, Request, Response
from .errors import ConfigError
from .providers import get as provider_named

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


def synthesize(
    *,
    text: str | None = None,
    thinking: str | None = None,
    tools: list[tuple[str, Any]] | None = None,
    model: str = "claude-sonnet-5-5",
    prompt: str = "Hello",
    timing: Timing | None = None,
    seed: int = 0,
    provider: str = "anthropic",
) -> Interaction:
    """One streamed response holding ``thinking``, ``text`` and ``tools`` (name, input), as
    ``provider``'s API would send it."""
    if not (text or thinking or tools):
        raise ConfigError("synth: give at least --text, --thinking or --tool")
    writer = provider_named(provider)
    rng = random.Random(seed)
    events, (method, url, request_headers, request_body), headers = writer.stream_events(
        text=text, thinking=thinking, tools=tools, model=model, prompt=prompt, seed=seed, rng=rng,
        pieces=_pieces, tokens=_tokens,
    )  # fmt: skip
    return _interaction(events, Request(method, url, request_headers, request_body), headers, timing or Timing(), rng)


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


def _interaction(events: list[bytes], request: Request, headers: tuple[tuple[str, str], ...], timing: Timing,
                 rng: random.Random) -> Interaction:  # fmt: skip
    at, offsets = timing.headers + timing.first, []
    for number in range(len(events)):
        if number:
            at += max(0.001, timing.per_event + rng.uniform(-timing.jitter, timing.jitter))
        offsets.append(round(at, 4))
    body = b"".join(events)
    timing_pairs = tuple(zip(offsets, (len(event) for event in events), strict=True))
    return Interaction(request, Response(200, headers, body, timing_pairs, "OK", timing.headers))
