"""Build the starter cassettes in cassettes/anthropic/ from the real transcripts in tests/data/sse.

The transcripts hold real bodies and headers but no timing (their sources stored none), so each
starter gets a timing model stated in cassettes/README.md: headers after 350 ms, then one chunk
per event with seeded 15-60 ms gaps. Run from the project root: python scripts/build_starters.py
"""

from __future__ import annotations

import argparse
import json
import random
import sys
from pathlib import Path

ROOT = Path(__file__).resolve().parent.parent
sys.path.insert(0, str(ROOT))

from streamtape import Cassette, Interaction, Request, Response  # noqa: E402
from streamtape.redact import Redactor  # noqa: E402
from streamtape.sse import parse_events  # noqa: E402

SOURCE = ROOT / "tests" / "data" / "sse"
TARGET = ROOT / "cassettes" / "anthropic"
STARTERS = {
    # starter name: (transcript, the prompt the request carries)
    "text": ("text_basic", "Say hello"),
    "thinking": ("thinking", "Suggest names for a pelican"),
    "tool_use": ("tool_use", "What is the weather in San Francisco?"),
    "overloaded_in_stream": ("error_overloaded_in_stream", "Write a story"),
}
_FRAMING = {"content-length", "transfer-encoding", "content-encoding", "connection"}


def _headers(name: str) -> tuple[tuple[str, str], ...]:
    path = SOURCE / f"{name}.headers.json"
    if not path.exists():
        return (("content-type", "text/event-stream; charset=utf-8"), ("request-id", f"req_starter_{name}"))
    recorded = json.loads(path.read_text())["headers"]
    pairs = [(k, v) for k, values in recorded.items() for v in values if k.lower() not in _FRAMING]
    return Redactor(()).headers(pairs)


def _timing(body: bytes, seed: str) -> tuple[tuple[float, int], ...]:
    rng = random.Random(seed)
    at, timing, start = 0.35, [], 0
    for event in parse_events(body):
        at += rng.uniform(0.015, 0.06)
        timing.append((round(at, 4), event.end - start))
        start = event.end
    if start < len(body):
        timing.append((round(at + 0.01, 4), len(body) - start))
    return tuple(timing)


def build(starter: str, transcript: str, prompt: str) -> Interaction:
    body = (SOURCE / f"{transcript}.sse").read_bytes()
    first = parse_events(body)[0].json
    model = (
        first.get("message", {}).get("model", "claude-sonnet-4-5")
        if first.get("type") == "message_start"
        else "claude-sonnet-4-5"
    )
    request_json = {
        "max_tokens": 1024,
        "messages": [{"role": "user", "content": prompt}],
        "model": model,
        "stream": True,
    }
    request = Request(
        "POST",
        "https://api.anthropic.com/v1/messages",
        (("content-type", "application/json"), ("anthropic-version", "2023-06-01")),
        json.dumps(request_json, separators=(",", ":")).encode(),
    )
    timing = _timing(body, starter)
    return Interaction(request, Response(200, _headers(transcript), body, timing, "OK", 0.35))


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("--out", type=Path, default=TARGET, help=f"where to write them (default {TARGET})")
    out = parser.parse_args().out
    out.mkdir(parents=True, exist_ok=True)
    for starter, (transcript, prompt) in STARTERS.items():
        path = Cassette([build(starter, transcript, prompt)]).save(out / f"{starter}.yaml")
        print(f"wrote {path}")


if __name__ == "__main__":
    main()
