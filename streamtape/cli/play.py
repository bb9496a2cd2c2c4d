"""``streamtape play``, and what it shares with ``streamtape record`` (``record.py``) and the demo: one
streaming Messages call through the real SDK, rendered live (text; thinking dimmed; tool calls), then
what came of it in one sentence."""

from __future__ import annotations

import sys
import time
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

import click
from rich.console import Console

from ..cassette import Cassette
from ..errors import StreamtapeError
from ._app import fail, fault_spec, load, main, make_console

__all__ = ["Outcome", "attempts", "delivered_events", "docs_verdict", "play", "stream_message", "summary"]


@main.command(epilog="Examples:\n\n  streamtape play starter:thinking\n\n"
                     "  streamtape play story.yaml --fault 'disconnect:after=5' --speed 0\n\n"
                     "Exit codes: 0 the stream completed, 1 the app would have met an exception, 2 usage "
                     "or input error.")  # fmt: skip
@click.argument("cassette")
@click.option("--fault", "fault_specs", multiple=True, metavar="SPEC", help="a fault spec; repeat to combine")
@click.option("--speed", type=click.FloatRange(min=0), default=1.0, show_default=True,
              help="1 = recorded timing, 0 = instant, N = N times faster")  # fmt: skip
@click.option("--interaction", "index", type=click.IntRange(min=0), default=0, show_default=True,
              help="which interaction of the cassette to play")  # fmt: skip
def play(cassette: str, fault_specs: tuple[str, ...], speed: float, index: int) -> None:
    """Replay a recorded stream through the real anthropic SDK, rendering text, thinking and tool
    calls as they arrive, then say how it ended: the stop reason and usage, or the exception the SDK
    raised and whether the docs' usual `except` clauses would have caught it."""
    import tempfile

    import anthropic

    from ..tape import Tape

    loaded = load(cassette)
    if index >= len(loaded):
        fail(f"{cassette}: --interaction {index}, but the cassette has {len(loaded)} (0..{len(loaded) - 1})")
    item = loaded.interactions[index]
    if not isinstance(item.request.json, dict) or "messages" not in item.request.json:
        fail(f"{cassette}: interaction #{index} is not a Messages request; play replays Messages streams")
    params = {k: v for k, v in item.request.json.items() if k != "stream"}
    origin = item.request.url.split("/v1/")[0]
    console = make_console()
    with tempfile.TemporaryDirectory(prefix="streamtape-play-") as tmp:
        single = Cassette([item]).save(Path(tmp) / "play.yaml")
        try:
            tape = Tape(single, speed=speed, faults=fault_spec(fault_specs), match_on=["method", "path"])
            with tape, anthropic.Anthropic(base_url=origin, api_key="streamtape-play", max_retries=2) as client:
                outcome = stream_message(client, params, console)
        except StreamtapeError as exc:  # the harness, not the app: exit 2, and name the cassette
            fail(f"{cassette}: {exc}")
    if len(tape.calls) > 1 or any(call.faults for call in tape.calls):
        for line in attempts(tape.calls):
            console.print(f"streamtape: {line}", markup=False)
    events = delivered_events(tape.calls[-1]) if tape.calls else 0
    console.print(f"streamtape: {summary(outcome, events)}", markup=False)
    if outcome.error is not None:
        console.print(f"streamtape: {docs_verdict(outcome.error)}", markup=False)
        sys.exit(1)


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
    from ..sse import parse_events
    from ..wire import Cut, Send, Stall, expand

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
