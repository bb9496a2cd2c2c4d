"""``streamtape play`` and ``streamtape record``: one streaming Messages call through the real SDK,
rendered live (text; thinking dimmed; tool calls), then what came of it in one sentence."""

from __future__ import annotations

import time
from dataclasses import dataclass, field
from typing import Any

from rich.console import Console

__all__ = ["Outcome", "attempts", "delivered_events", "docs_verdict", "stream_message", "summary"]


@dataclass
class Outcome:
    """What one streamed call came to."""

    events: int = 0
    first_event_at: float | None = None
    duration: float = 0.0
    final: Any = None
    error: BaseException | None = None
    text: list[str] = field(default_factory=list)


def stream_message(client: Any, params: dict[str, Any], console: Console) -> Outcome:
    """Stream with ``client.messages.stream(**params)``, printing as the events arrive."""
    out = Outcome()
    started = time.monotonic()
    try:
        with client.messages.stream(**params) as stream:
            for event in stream:
                out.events += 1
                out.first_event_at = out.first_event_at or time.monotonic() - started
                _render(event, console, out)
            out.final = stream.get_final_message()
    except Exception as exc:  # noqa: BLE001 - what the app would meet is the point
        out.error = exc
    out.duration = time.monotonic() - started
    console.print()
    return out


def _render(event: Any, console: Console, out: Outcome) -> None:
    kind = event.type
    if kind == "content_block_start":
        block = event.content_block
        if event.index > 0:
            console.print()
        if block.type == "tool_use":
            console.print(f"[tool call: {block.name}] ", style="cyan", end="", markup=False)
    elif kind == "thinking":
        console.print(event.thinking, style="dim", end="", markup=False)
    elif kind == "text":
        out.text.append(event.text)
        console.print(event.text, end="", markup=False)
    elif kind == "input_json":
        console.print(event.partial_json, style="cyan", end="", markup=False)


def docs_verdict(exc: BaseException) -> str:
    """Whether the error handling in the Anthropic streaming docs would catch ``exc``, and how."""
    import anthropic

    name = f"{type(exc).__module__}.{type(exc).__name__}"
    if isinstance(exc, anthropic.APIConnectionError):
        return f'{name}: the docs\' `except anthropic.APIConnectionError` catches it ("Connection lost")'
    if isinstance(exc, anthropic.RateLimitError):
        return f"{name}: the docs' `except anthropic.RateLimitError` catches it"
    if isinstance(exc, anthropic.APIStatusError):
        note = " - an in-stream error, reported as status 200" if exc.status_code == 200 else ""
        return f'{name}: caught by `except anthropic.APIStatusError`, printed as "API error: {exc.status_code}"{note}'
    return f"{name}: NOT caught by the docs' except clauses; it escapes to the caller"


def delivered_events(call: Any) -> int:
    """How many SSE events of the recording reached the app in ``call`` (a ``tape.calls`` entry):
    the same count ``inspect``, ``lint`` and fault positions use (pings included)."""
    from .sse import parse_events
    from .wire import Cut, Send, Stall, expand

    if call.source == "recorded":
        return len(call.interaction.events) if call.interaction is not None else 0
    sent = []
    for action in expand(call.played):
        if isinstance(action, Cut) or (isinstance(action, Stall) and action.seconds is None):
            break
        if isinstance(action, Send):
            sent.append(action.data)
    return len(parse_events(b"".join(sent)))


def attempts(calls: list[Any]) -> list[str]:
    """One line per request the SDK made: what it met, its faults, and the back-off before it."""
    lines = []
    for number, call in enumerate(calls, 1):
        waited = f" after {call.waited:.2f} s back-off" if call.waited else ""
        faults = f" [{', '.join(call.faults)}]" if call.faults else ""
        lines.append(f"attempt {number}{waited}: {call.outcome or call.source}{faults}")
    return lines


def _cause(exc: BaseException) -> str:
    """What lies under an SDK error ("Connection error." says nothing): the deepest cause, named."""
    seen, cause = {id(exc)}, exc.__cause__ or exc.__context__
    deepest = None
    while cause is not None and id(cause) not in seen:
        seen.add(id(cause))
        deepest = cause
        cause = cause.__cause__ or cause.__context__
    if deepest is None or str(deepest) in str(exc):
        return ""
    return f" (caused by {type(deepest).__name__}: {deepest})" if str(deepest) else f" (caused by {type(deepest).__name__})"


def summary(outcome: Outcome, events: int | None = None) -> str:
    """One sentence on how the call ended; ``events``: SSE events delivered (else the SDK's count)."""
    events = outcome.events if events is None else events
    if outcome.error is not None:
        return f"{events} events, then {type(outcome.error).__name__}: {outcome.error}{_cause(outcome.error)}"
    final = outcome.final
    usage = getattr(final, "usage", None)
    tokens = f", {usage.input_tokens} tokens in, {usage.output_tokens} out" if usage is not None else ""
    first = "-" if outcome.first_event_at is None else f"{outcome.first_event_at * 1000:.0f} ms"
    return (
        f"{events} events, stop_reason {final.stop_reason}{tokens}; "
        f"first event after {first}, {outcome.duration:.2f} s in all"
    )
