"""``streamtape play``: one recorded interaction replayed through the official SDK of the provider
that answered it (``streamtape.providers.provider_for`` on the recorded request; the SDKs are driven
by ``_sdks``), rendered live (text; thinking dimmed; tool calls), then what came of it in one
sentence. What ``record`` and the demo share with it lives here and in ``_sdks``."""

from __future__ import annotations

import sys
from pathlib import Path
from typing import Any

import click

from ..cassette import Cassette
from ..errors import StreamtapeError
from ._app import fail, fault_spec, load, main, make_console
from ._sdks import DRIVERS, Outcome, docs_verdict, driver, stream_message, summary

__all__ = ["Outcome", "attempts", "delivered_events", "docs_verdict", "play", "stream_message", "summary"]


@main.command(epilog="Examples:\n\n  streamtape play starter:thinking\n\n"
                     "  streamtape play starter:openai/chat_text --fault 'disconnect:after=5' --speed 0\n\n"
                     "  streamtape play story.yaml --fault 'rate_limit -> ok'\n\n"
                     "Exit codes: 0 the stream completed, 1 the app would have met an exception, 2 usage "
                     "or input error.")  # fmt: skip
@click.argument("cassette")
@click.option("--fault", "fault_specs", multiple=True, metavar="SPEC", help="a fault spec; repeat to combine")
@click.option("--speed", type=click.FloatRange(min=0), default=1.0, show_default=True,
              help="1 = recorded timing, 0 = instant, N = N times faster")  # fmt: skip
@click.option("--interaction", "index", type=click.IntRange(min=0), default=0, show_default=True,
              help="which interaction of the cassette to play")  # fmt: skip
def play(cassette: str, fault_specs: tuple[str, ...], speed: float, index: int) -> None:
    """Replay a recorded stream through the official SDK of the provider that answered it (anthropic,
    openai for Chat Completions and Responses, google-genai for Gemini, boto3 for Bedrock), rendering
    text, thinking and tool calls as they arrive, then say how it ended: the stop reason and usage,
    or the exception the SDK raised and whether the SDK docs' usual `except` clauses catch it."""
    import tempfile

    from ..providers import provider_for
    from ..tape import Tape

    loaded = load(cassette)
    if index >= len(loaded):
        fail(f"{cassette}: --interaction {index}, but the cassette has {len(loaded)} (0..{len(loaded) - 1})")
    item = loaded.interactions[index]
    provider = provider_for(item.request.method, item.request.url, item.request.headers)
    sdk = driver(provider.name)
    if sdk is None:
        fail(f"{cassette}: interaction #{index} is a {provider.name} request; play replays the streams of "
             f"{', '.join(DRIVERS)}")  # fmt: skip
    try:
        call = sdk.from_recording(item.request)
    except StreamtapeError as exc:
        fail(f"{cassette}: interaction #{index}: {exc}")
    _import_sdk(sdk.package)
    console = make_console()
    with tempfile.TemporaryDirectory(prefix="streamtape-play-") as tmp:
        single = Cassette([item]).save(Path(tmp) / "play.yaml")
        try:
            tape = Tape(single, speed=speed, faults=fault_spec(fault_specs), match_on=["method", _path])
            with tape:
                outcome = sdk.run(call, console, replay=True)
        except StreamtapeError as exc:  # the harness, not the app: exit 2, and name the cassette (not the copy)
            said = str(exc).replace(f"cassette {single}", f"interaction #{index}").replace(str(single), cassette)
            fail(f"{cassette}: {said}")
    if not tape.calls and outcome.error is not None:  # nothing reached the tape: the SDK refused the request
        said = sdk.invalid(outcome.error) or f"{type(outcome.error).__name__}: {outcome.error}"
        fail(f"{cassette}: interaction #{index}: the {sdk.package} SDK will not send the recorded request ({said}); "
             "play replays requests the SDK itself makes")  # fmt: skip
    if len(tape.calls) > 1 or any(made.faults for made in tape.calls):
        for line in attempts(tape.calls):
            console.print(f"streamtape: {line}", markup=False)
    events = delivered_events(tape.calls[-1]) if tape.calls else 0
    console.print(f"streamtape: {summary(outcome, events, sdk.stop_label)}", markup=False)
    if outcome.error is not None:
        console.print(f"streamtape: {sdk.verdict(outcome.error)}", markup=False)
        sys.exit(1)


def _path(recorded: Any, incoming: Any) -> list[str]:
    """The path, percent-encoding aside: boto3 sends a Bedrock model id's ``:`` as ``%3A``,
    AnthropicBedrock as it is, and play makes either's recording with boto3."""
    from urllib.parse import unquote, urlsplit

    was, now = (unquote(urlsplit(request.url).path or "/") for request in (recorded, incoming))
    return [] if was == now else [f"path: {was!r} != {now!r}"]


def _import_sdk(package: str) -> None:
    """Import the SDK before the tape is entered (so its HTTP stack is adapted from the start), or
    say in one sentence how to install it."""
    import importlib

    module = {"google-genai": "google.genai"}.get(package, package)
    try:
        importlib.import_module(module)
    except ImportError:
        fail(f"this needs the {package} SDK, which is not installed; pip install {package}")


def delivered_events(call: Any) -> int:
    """How many events of the recording reached the app in ``call`` (a ``tape.calls`` entry), as the
    response's framer counts them: the same count ``inspect``, ``lint`` and fault positions use
    (pings included)."""
    from ..framing import framer_for
    from ..wire import Cut, Respond, Send, Stall, expand

    if call.source == "recorded":
        return len(call.interaction.events) if call.interaction is not None else 0
    headers: tuple[tuple[str, str], ...] = ()
    sent = []
    for action in expand(call.played):
        if isinstance(action, Cut) or (isinstance(action, Stall) and action.seconds is None):
            break
        if isinstance(action, Respond):
            headers = action.headers
        elif isinstance(action, Send):
            sent.append(action.data)
    return len(framer_for(headers).event_ends(b"".join(sent)))


def attempts(calls: list[Any]) -> list[str]:
    """One line per request the SDK made: what it met, its faults, and the back-off before it."""
    lines = []
    for number, call in enumerate(calls, 1):
        waited = f" after {call.waited:.2f} s back-off" if call.waited else ""
        faults = f" [{', '.join(call.faults)}]" if call.faults else ""
        lines.append(f"attempt {number}{waited}: {call.outcome or call.source}{faults}")
    return lines
