"""A small chat app in the shape of the Anthropic streaming docs ("Streaming — Python").

It streams with progress, shows thinking, runs a manual tool loop, and handles errors twice:
``seed_answer`` uses the docs' own ``except`` clauses; ``robust_answer`` is what those clauses
should have been. The tests in tests/ show, with real recorded streams and injected faults, what
the first misses and that the second gets right.
"""

from __future__ import annotations

from collections.abc import Callable
from dataclasses import dataclass, field
from typing import Any

import anthropic
import httpx2

MODEL = "claude-haiku-4-5-20251001"


@dataclass
class Reply:
    text: str = ""
    thinking: str = ""
    output_tokens: int = 0
    stop_reason: str | None = None
    shown: list[str] = field(default_factory=list)  # what the user was told, besides the text


def stream_with_progress(client: anthropic.Anthropic, **kwargs: Any) -> Reply:
    """Stream a response, showing text (and thinking) as it arrives; the docs' progress example."""
    reply = Reply()
    with client.messages.stream(**kwargs) as stream:
        for event in stream:
            if event.type == "content_block_delta" and event.delta.type == "text_delta":
                reply.text += event.delta.text
            elif event.type == "content_block_delta" and event.delta.type == "thinking_delta":
                reply.thinking += event.delta.thinking
            elif event.type == "message_delta" and event.usage and event.usage.output_tokens is not None:
                reply.output_tokens = event.usage.output_tokens
        reply.stop_reason = stream.get_final_message().stop_reason
    return reply


def seed_answer(client: anthropic.Anthropic, **kwargs: Any) -> Reply:
    """The docs' "Error Handling in Streams" example, verbatim in its except clauses."""
    reply = Reply()
    try:
        with client.messages.stream(**kwargs) as stream:
            for text in stream.text_stream:
                reply.text += text
    except anthropic.APIConnectionError:
        reply.shown.append("Connection lost. Please retry.")
    except anthropic.RateLimitError:
        reply.shown.append("Rate limited. Please wait and retry.")
    except anthropic.APIStatusError as e:
        reply.shown.append(f"API error: {e.status_code}")
    return reply


def robust_answer(client: anthropic.Anthropic, **kwargs: Any) -> Reply:
    """What the docs' handler should be: mid-stream transport errors and in-stream errors included."""
    reply = Reply()
    try:
        with client.messages.stream(**kwargs) as stream:
            for text in stream.text_stream:
                reply.text += text
            reply.stop_reason = stream.get_final_message().stop_reason
    except (anthropic.APIConnectionError, httpx2.TransportError):  # before or DURING the stream
        reply.shown.append("Connection lost. Please retry." + (" (partial answer above)" if reply.text else ""))
    except anthropic.RateLimitError:
        reply.shown.append("Rate limited. Please wait and retry.")
    except anthropic.APIStatusError as e:
        kind = (e.body or {}).get("error", {}).get("type") if isinstance(e.body, dict) else None
        if kind == "overloaded_error":  # an in-stream overload arrives with status 200
            reply.shown.append("The service is overloaded. Please retry shortly.")
        else:
            reply.shown.append(f"API error: {e.status_code}")
    return reply


def run_tool_loop(
    client: anthropic.Anthropic, messages: list[dict[str, Any]], tools: list[dict[str, Any]],
    execute: Callable[[str, dict[str, Any]], str], *, max_turns: int = 5,
) -> anthropic.types.Message:  # fmt: skip
    """The docs' manual tool loop: stream each turn, run the tools it asks for, continue."""
    for _ in range(max_turns):
        with client.messages.stream(model=MODEL, max_tokens=1024, tools=tools, messages=messages) as stream:
            for _text in stream.text_stream:
                pass
            response = stream.get_final_message()
        if response.stop_reason != "tool_use":
            return response
        results = [
            {"type": "tool_result", "tool_use_id": block.id, "content": execute(block.name, block.input)}
            for block in response.content
            if block.type == "tool_use"
        ]
        messages = [*messages, {"role": "assistant", "content": response.content}, {"role": "user", "content": results}]
    raise RuntimeError(f"no final answer after {max_turns} turns")
