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


# --- Bedrock: cassettes/bedrock/ from the real recordings in tests/data/bedrock (see its SOURCES.md) ---
#
# The same timing model (headers after 350 ms, one chunk per event-stream frame with seeded 15-60 ms
# gaps; errors at 300 ms). Requests are the recorded ones: method, URL and the exact body the client
# sent (``body_raw``); their headers were not copied (credentials), so only a JSON content type.

BEDROCK_SOURCE = ROOT / "tests" / "data" / "bedrock"
BEDROCK_TARGET = ROOT / "cassettes" / "bedrock"
BEDROCK_STARTERS = {
    # starter name: recording
    "text": "converse_stream_text",
    "tool_use": "converse_stream_tool_use",
    "guardrail_intervened": "converse_stream_guardrail_intervened",
    "invoke_cohere": "invoke_with_response_stream_cohere",
    "invalid_model": "http_400_invalid_model_converse_stream",
    "server_error": "http_500_internal_error",
}


def build_bedrock(starter: str, recording: str) -> Interaction:
    from streamtape.framing.eventstream import frame_spans

    head = json.loads((BEDROCK_SOURCE / f"{recording}.headers.json").read_text())
    sent = json.loads((BEDROCK_SOURCE / f"{recording}.request.json").read_text())
    body_raw = sent.get("body_raw")
    request_body = body_raw.encode() if body_raw is not None else json.dumps(sent["body"]).encode()
    request = Request(sent["method"], sent["url"], (("Content-Type", "application/json"),), request_body)
    headers = tuple((k, v) for k, values in head["headers"].items() for v in values if k.lower() not in _FRAMING)
    stream = BEDROCK_SOURCE / f"{recording}.eventstream"
    if not stream.exists():  # an HTTP error: its body, with the length a real one announces
        body = (BEDROCK_SOURCE / f"{recording}.body.json").read_bytes()
        headers = (*headers, ("Content-Length", str(len(body))))
        return Interaction(request, Response(head["status"], headers, body, ((0.3, len(body)),), head["reason"], 0.3))
    body = stream.read_bytes()
    rng, at, timing = random.Random(f"bedrock:{starter}"), 0.35, []
    for start, end in frame_spans(body):
        at += rng.uniform(0.015, 0.06)
        timing.append((round(at, 4), end - start))
    return Interaction(request, Response(head["status"], headers, body, tuple(timing), head["reason"], 0.35))


# --- Gemini: cassettes/gemini/ from the real recordings in tests/data/gemini (see its SOURCES.md) ---
#
# The same timing model (headers after 350 ms, one chunk per CRLF-framed event with seeded 15-60 ms gaps;
# errors at 300 ms). Requests are the recorded ones (method, URL, and the exact body where the recorder
# kept it, else the recorded JSON as google-genai writes it), with only a JSON content type: request
# headers, and so keys, were never copied. The 429 was recorded on generateContent; its starter pairs it
# with the text starter's streamed request, which is what a test of a streamed call needs.

GEMINI_SOURCE = ROOT / "tests" / "data" / "gemini"
GEMINI_TARGET = ROOT / "cassettes" / "gemini"
GEMINI_STARTERS = {
    # starter name: (recording, the recording whose request it answers)
    "text": ("text", "text"),
    "max_tokens": ("max_tokens", "max_tokens"),
    "parallel_function_calls": ("function_call_parallel", "function_call_parallel"),
    "rate_limited": ("http_429_resource_exhausted", "text"),
}


def build_gemini(starter: str, recording: str, asked: str) -> Interaction:
    sent = json.loads((GEMINI_SOURCE / f"{asked}.request.json").read_text())
    body_raw = sent.get("body_raw")
    request_body = body_raw.encode() if body_raw is not None else json.dumps(sent["body"]).encode()
    request = Request(sent["method"], sent["url"], (("content-type", "application/json"),), request_body)
    head = json.loads((GEMINI_SOURCE / f"{recording}.headers.json").read_text())
    headers = tuple((k, v) for k, values in head["headers"].items() for v in values
                    if k.lower() not in _FRAMING and not v.endswith("-XXX"))  # crewAI masked these: not Google's  # fmt: skip
    stream = GEMINI_SOURCE / f"{recording}.sse"
    if not stream.exists():  # an HTTP error: its body, with the length a real one announces
        body = (GEMINI_SOURCE / f"{recording}.body.json").read_bytes()
        headers = (*headers, ("content-length", str(len(body))))
        return Interaction(request, Response(head["status"], headers, body, ((0.3, len(body)),), head["reason"], 0.3))
    body = stream.read_bytes()
    rng, at, timing, start = random.Random(f"gemini:{starter}"), 0.35, [], 0
    for event in parse_events(body):
        at += rng.uniform(0.015, 0.06)
        timing.append((round(at, 4), event.end - start))
        start = event.end
    return Interaction(request, Response(head["status"], headers, body, tuple(timing), head["reason"], 0.35))


# --- OpenAI: cassettes/openai/ from the real recordings in tests/data/openai (see its SOURCES.md) ---
#
# The same timing model (headers after 350 ms, one chunk per SSE event with seeded 15-60 ms gaps; errors
# at 300 ms). Requests are the recorded ones (method, URL, the recorded JSON body), with only a JSON
# content type: request headers, and so keys, were never copied. Response headers are the recorded ones
# without framing headers, cookies and the organization and project the sources redacted.

OPENAI_SOURCE = ROOT / "tests" / "data" / "openai"
OPENAI_TARGET = ROOT / "cassettes" / "openai"
OPENAI_STARTERS = {
    # starter name: recording (folder/name)
    "chat_text": "chat/text_with_usage",
    "chat_tool_calls": "chat/tool_calls_parallel",
    "chat_max_tokens": "chat/length_max_tokens",
    "chat_refusal": "chat/refusal",
    "chat_rate_limited": "chat/http_429_rate_limit_rpm",
    "responses_text": "responses/text",
    "responses_function_call": "responses/function_call",
    "responses_incomplete": "responses/incomplete_max_output_tokens",
    "responses_refusal": "responses/refusal",
    "groq_in_stream_error": "compatible/groq_in_stream_error_tool_use_failed",
    "openrouter_in_stream_error": "compatible/openrouter_in_stream_error_length",
}
_REDACTED_HEADERS = _FRAMING | {"set-cookie", "openai-organization", "openai-project"}


def build_openai(starter: str, recording: str) -> Interaction:
    source = OPENAI_SOURCE / recording
    sent = json.loads(source.with_suffix(".request.json").read_text())
    url = sent["url"].partition("#")[0]  # a recorder's fragment is no part of the request
    request = Request(sent["method"], url, (("content-type", "application/json"),),
                      json.dumps(sent["body"], separators=(",", ":")).encode())  # fmt: skip
    head = json.loads(source.with_suffix(".headers.json").read_text())
    headers = tuple((k.lower(), v) for k, values in head["headers"].items() for v in values
                    if k.lower() not in _REDACTED_HEADERS)  # fmt: skip
    stream = source.with_suffix(".sse")
    if not stream.exists():  # an HTTP error: its body, with the length a real one announces
        body = source.with_suffix(".body.json").read_bytes()
        headers = (*headers, ("content-length", str(len(body))))
        return Interaction(request, Response(head["status"], headers, body, ((0.3, len(body)),), head["reason"], 0.3))
    body = stream.read_bytes()
    rng, at, timing, start = random.Random(f"openai:{starter}"), 0.35, [], 0
    for event in parse_events(body):
        at += rng.uniform(0.015, 0.06)
        timing.append((round(at, 4), event.end - start))
        start = event.end
    return Interaction(request, Response(head["status"], headers, body, tuple(timing), head["reason"], 0.35))


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("--out", type=Path, default=TARGET, help=f"where to write them (default {TARGET})")
    parser.add_argument("--bedrock-out", type=Path, default=None,
                        help=f"where to write the Bedrock ones (default {BEDROCK_TARGET}; with --out, OUT/bedrock)")  # fmt: skip
    args = parser.parse_args()
    out = args.out
    bedrock_out = args.bedrock_out or (BEDROCK_TARGET if out == TARGET else out / "bedrock")
    bedrock_out.mkdir(parents=True, exist_ok=True)
    for starter, recording in BEDROCK_STARTERS.items():
        path = Cassette([build_bedrock(starter, recording)]).save(bedrock_out / f"{starter}.yaml")
        print(f"wrote {path}")
    gemini_out = GEMINI_TARGET if out == TARGET else out / "gemini"
    gemini_out.mkdir(parents=True, exist_ok=True)
    for starter, (recording, asked) in GEMINI_STARTERS.items():
        path = Cassette([build_gemini(starter, recording, asked)]).save(gemini_out / f"{starter}.yaml")
        print(f"wrote {path}")
    openai_out = OPENAI_TARGET if out == TARGET else out / "openai"
    openai_out.mkdir(parents=True, exist_ok=True)
    for starter, recording in OPENAI_STARTERS.items():
        path = Cassette([build_openai(starter, recording)]).save(openai_out / f"{starter}.yaml")
        print(f"wrote {path}")
    out.mkdir(parents=True, exist_ok=True)
    for starter, (transcript, prompt) in STARTERS.items():
        path = Cassette([build(starter, transcript, prompt)]).save(out / f"{starter}.yaml")
        print(f"wrote {path}")
    for starter, spec in ERRORS.items():
        path = Cassette([build_error(starter, *spec)]).save(out / f"{starter}.yaml")
        print(f"wrote {path}")


if __name__ == "__main__":
    main()
