"""``streamtape demo``: the whole idea in half a minute, with no API key and no network.

1. serve a starter cassette (a real Anthropic stream) from a real HTTP server on 127.0.0.1;
2. record it through streamtape while the real SDK streams it, text appearing live;
3. stop the server and replay the cassette offline: the same text and final message;
4. run the Anthropic docs' own error-handling example against a real mid-stream disconnect and an
   in-stream overload, and show what it misses.
"""

from __future__ import annotations

import contextlib
import io
import sys
import tempfile
from pathlib import Path
from typing import Any, TextIO

import click
from rich.console import Console

from ..cassette import Cassette, Interaction, Response
from ..starters import starter
from ..tape import use_cassette
from ..wire import Cut
from ._app import EPILOG_EXIT, main
from .play import stream_message

__all__ = ["demo", "run_demo"]


@main.command(epilog="Example: streamtape demo --speed 0\n\n" + EPILOG_EXIT)
@click.option("--speed", type=click.FloatRange(min=0), default=1.0, show_default=True,
              help="1 = the recording's timing, 0 = instant, N = N times faster")  # fmt: skip
def demo(speed: float) -> None:
    """Record and replay a real stream over a local socket, no API key needed, and show what the
    docs' error handling misses."""
    sys.exit(run_demo(speed=speed))


def _params(item: Interaction) -> dict[str, Any]:
    return {k: v for k, v in item.request.json.items() if k != "stream"}


def _stream_live(console: Console, base_url: str, params: dict[str, Any]) -> tuple[Any, float]:
    """Stream one message with the real SDK, rendered live; (final message, first-event seconds)."""
    import anthropic

    with anthropic.Anthropic(base_url=base_url, api_key="demo-no-key-needed", max_retries=0) as client:
        outcome = stream_message(client, params, console)
    if outcome.error is not None:
        raise outcome.error
    return outcome.final, outcome.first_event_at or 0.0


def _docs_handler(base_url: str, params: dict[str, Any], out: TextIO) -> None:
    """The error-handling example from the Anthropic SDK's streaming docs, verbatim."""
    import anthropic

    client = anthropic.Anthropic(base_url=base_url, api_key="demo-no-key-needed", max_retries=0)
    try:
        with client.messages.stream(**params) as stream:
            for text in stream.text_stream:
                print(text, end="", flush=True, file=out)
    except anthropic.APIConnectionError:
        print("\nConnection lost. Please retry.", file=out)
    except anthropic.RateLimitError:
        print("\nRate limited. Please wait and retry.", file=out)
    except anthropic.APIStatusError as e:
        print(f"\nAPI error: {e.status_code}", file=out)
    finally:
        client.close()


def _cut_mid_text(item: Interaction) -> tuple[Cassette, int]:
    """The same stream, but the server closes the connection (FIN) just after the first text delta."""
    assert item.response is not None
    response = item.response
    events = 1 + next(i for i, e in enumerate(response.events) if '"text_delta"' in e.data)
    end = response.events[events - 1].end
    timing, size = [], 0
    for at, length in response.timing:
        if size >= end:
            break
        timing.append((at, min(length, end - size)))
        size += timing[-1][1]
    cut = Cut("RemoteProtocolError", "", timing[-1][0] + 0.01)
    partial = Response(
        response.status, response.headers, response.body[:end], tuple(timing), response.reason, response.headers_at, cut
    )
    return Cassette([Interaction(item.request, partial)]), events


def _trap(out: Console, title: str, cassette: Cassette, workdir: Path, speed: float) -> None:
    """Record ``cassette`` served over a socket, replay it offline through the docs' handler, and say
    what the app met: an exception that escaped it, or what it printed and whether that is right."""
    from ..server import ReplayServer

    path = workdir / f"{title}.yaml"
    item = cassette.interactions[0]
    with ReplayServer(cassette, speed=speed) as server, use_cassette(path, record_mode="all"):
        base_url = server.base_url
        with contextlib.suppress(Exception):  # a real failure, recorded: replayed and shown below
            _docs_handler(base_url, _params(item), io.StringIO())
    shown = io.StringIO()
    try:
        with use_cassette(path):  # replayed: the server is gone
            _docs_handler(base_url, _params(item), shown)
    except Exception as exc:  # noqa: BLE001 - showing what escapes is the point
        _show_app_output(out, shown.getvalue())
        name = f"{type(exc).__module__}.{type(exc).__name__}"
        out.print(f"   ✗ not caught: {name}: {exc}", style="red", markup=False)
        out.print(
            "     the docs' `except anthropic.APIConnectionError` never sees a mid-stream disconnect "
            "(anthropic < 2.17 lets the httpx2 error escape).",
            markup=False,
        )
        return
    printed = shown.getvalue()
    _show_app_output(out, printed)
    if "API error: 200" in printed:
        out.print("   ✗ reported as above: the in-stream overload arrives as APIStatusError with status 200,", style="red")
        out.print("     not as OverloadedError (529), so the retry advice never runs.", markup=False)
    else:
        out.print("   ✓ caught by the docs' handler (anthropic >= 2.17 wraps mid-stream failures as "
                  "APIConnectionError): the partial answer above is all the user got.", style="green", markup=False)  # fmt: skip


def _show_app_output(out: Console, printed: str) -> None:
    for line in printed.strip("\n").splitlines() or ["(nothing)"]:
        out.print(f"   app printed: {line}", markup=False)


def _step(console: Console, number: int, text: str) -> None:
    console.print()
    console.print(f"{number}. {text}", style="bold", markup=False)


def run_demo(*, speed: float = 1.0, out: TextIO | None = None, keep: Path | None = None) -> int:
    """Run the demo; returns the exit status."""
    from ..server import ReplayServer  # h11 loads when the demo runs, not with every command

    console = Console(file=out, highlight=False, soft_wrap=True) if out else Console(highlight=False, soft_wrap=True)
    workdir = keep or Path(tempfile.mkdtemp(prefix="streamtape-demo-"))
    workdir.mkdir(parents=True, exist_ok=True)
    source = Cassette.load(starter("thinking"))
    item = source.interactions[0]
    recorded = workdir / "thinking.yaml"
    console.print("[bold]streamtape demo[/bold] — the real anthropic SDK, a real socket, no API key")

    with ReplayServer(source, speed=speed) as server:
        base_url = server.base_url
        _step(console, 1, f"Serving the starter cassette 'thinking' at {base_url} (recorded timing x{speed:g})")
        _step(console, 2, "Recording through streamtape while the SDK streams it (thinking dimmed):")
        with use_cassette(recorded, record_mode="all") as tape:
            live, first = _stream_live(console, base_url, _params(item))
        saved = tape.recorded[0]
        console.print(f"   recorded {len(saved.events)} events, {len(saved.body)} bytes, first event after "
                      f"{first * 1000:.0f} ms -> {recorded}", markup=False)  # fmt: skip

    _step(console, 3, "Server stopped. Replaying the cassette offline:")
    with use_cassette(recorded) as tape:
        replayed, _ = _stream_live(console, base_url, _params(item))
    same = replayed == live and tape.all_played
    verdict = "✓ identical" if same else "✗ DIFFERENT"
    result = (
        f"   {verdict} final message: stop_reason={replayed.stop_reason}, output_tokens={replayed.usage.output_tokens}"
    )
    console.print(result, style="green" if same else "red", markup=False)

    cut, after = _cut_mid_text(item)
    _step(console, 4, f"The docs' error handling (`except anthropic.APIConnectionError: ...`) vs a disconnect "
                      f"after event {after}:")  # fmt: skip
    _trap(console, "disconnect", cut, workdir, speed)
    _step(
        console, 5, "The same handler vs an in-stream overload (a real `event: error` the API sends with status 200):"
    )
    _trap(console, "overloaded", Cassette.load(starter("overloaded_in_stream")), workdir, speed)
    console.print()
    console.print(f"Cassettes written to {workdir}. Next: `streamtape inspect {recorded}`, docs/faults.md and "
                  "docs/pytest.md.", markup=False)  # fmt: skip
    return 0 if same else 1
