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
    "text_multi_delta": ("text_multi_delta", "Suggest names for a pelican"),
    "long_thinking": ("thinking_long_pydantic", "Think it through, then answer"),
    "thinking": ("thinking", "Suggest names for a pelican"),
    "redacted_thinking": ("redacted_thinking", "Think it through, then answer"),
    "tool_use": ("tool_use", "What is the weather in San Francisco?"),
    "parallel_tool_use": ("tool_use_parallel", "Call the tool twice"),
    "web_search_citations": ("web_search_citations", "Search the web and cite your sources"),
    "pause_turn": ("pause_turn_web_search", "Research this thoroughly on the web"),
    "max_tokens": ("max_tokens_2024_format", "Write a long story"),
    "stop_sequence": ("stop_sequence", "Count to ten"),
    "refusal": ("refusal_with_stop_details", "Something the model refuses"),
    "cache_read": ("usage_cache_read", "Summarise the cached document"),
    "cache_write": ("usage_cache_write", "Summarise the document"),
    "overloaded_in_stream": ("error_overloaded_in_stream", "Write a story"),
}
ERRORS = {
    # starter name: (status, body file, headers file or None)
    "rate_limited": (429, "http_429_rate_limit.body.json", "http_429_rate_limit.headers.json"),
    "overloaded": (529, "http_529_overloaded.body.json", None),
    "server_error": (500, "http_500_api_error.body.json", None),
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


def build_error(starter: str, status: int, body_file: str, headers_file: str | None) -> Interaction:
    """A real HTTP error response (real body; real headers where they were recorded)."""
    body = (SOURCE / body_file).read_bytes()
    headers = _headers(headers_file.removesuffix(".headers.json")) if headers_file else ()
    headers = (("content-type", "application/json"), *((k, v) for k, v in headers if k.lower() != "content-type"),
               ("content-length", str(len(body))))  # fmt: skip
    request_json = {"max_tokens": 1024, "messages": [{"role": "user", "content": "Write a story"}],
                    "model": "claude-sonnet-4-5", "stream": True}  # fmt: skip
    request = Request(
        "POST",
        "https://api.anthropic.com/v1/messages",
        (("content-type", "application/json"), ("anthropic-version", "2023-06-01")),
        json.dumps(request_json, separators=(",", ":")).encode(),
    )
    return Interaction(request, Response(status, headers, body, ((0.3, len(body)),), "", 0.3))


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("--out", type=Path, default=TARGET, help=f"where to write them (default {TARGET})")
    out = parser.parse_args().out
    out.mkdir(parents=True, exist_ok=True)
    for starter, (transcript, prompt) in STARTERS.items():
        path = Cassette([build(starter, transcript, prompt)]).save(out / f"{starter}.yaml")
        print(f"wrote {path}")
    for starter, spec in ERRORS.items():
        path = Cassette([build_error(starter, *spec)]).save(out / f"{starter}.yaml")
        print(f"wrote {path}")


if __name__ == "__main__":
    main()
