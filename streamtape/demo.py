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
import time
from pathlib import Path
from typing import Any, TextIO

from .cassette import Cassette, Interaction, Response
from .server import ReplayServer
from .starters import starter
from .tape import use_cassette
from .wire import Cut

__all__ = ["run_demo"]


class _Out:
    """Terminal output; colour only on a terminal."""

    def __init__(self, stream: TextIO) -> None:
        self.stream = stream
        self.colour = stream.isatty()

    def style(self, text: str, code: str) -> str:
        return f"\033[{code}m{text}\033[0m" if self.colour else text

    def line(self, text: str = "") -> None:
        print(text, file=self.stream, flush=True)

    def step(self, number: int, text: str) -> None:
        self.line()
        self.line(self.style(f"{number}. {text}", "1"))

    def text(self, text: str, code: str = "") -> None:
        self.stream.write(self.style(text, code) if code else text)
        self.stream.flush()


def _params(item: Interaction) -> dict[str, Any]:
    return {k: v for k, v in item.request.json.items() if k != "stream"}


def _stream_live(out: _Out, base_url: str, params: dict[str, Any]) -> tuple[Any, float]:
    """Stream one message with the real SDK, printing thinking and text live; (final, first-event s)."""
    import anthropic

    started, first = time.monotonic(), 0.0
    with anthropic.Anthropic(base_url=base_url, api_key="demo-no-key-needed", max_retries=0) as client:
        with client.messages.stream(**params) as stream:
            for event in stream:
                first = first or time.monotonic() - started
                if event.type == "content_block_start" and event.index > 0:
                    out.line()
                if event.type == "thinking":
                    out.text(event.thinking, "2")
                elif event.type == "text":
                    out.text(event.text)
            final = stream.get_final_message()
    out.line()
    return final, first


def _seed_handler(base_url: str, params: dict[str, Any], out: TextIO) -> None:
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


def _trap(out: _Out, title: str, cassette: Cassette, workdir: Path, speed: float) -> None:
    """Record ``cassette`` served over a socket, replay it offline through the seed's handler."""
    path = workdir / f"{title}.yaml"
    item = cassette.interactions[0]
    with ReplayServer(cassette, speed=speed) as server, use_cassette(path, record_mode="all"):
        base_url = server.base_url
        with contextlib.suppress(Exception):  # a real failure, recorded: replayed and shown below
            _seed_handler(base_url, _params(item), io.StringIO())
    shown = io.StringIO()
    try:
        with use_cassette(path):  # replayed: the server is gone
            _seed_handler(base_url, _params(item), shown)
    except Exception as exc:  # noqa: BLE001 - showing what escapes is the point
        _show_app_output(out, shown.getvalue())
        name = f"{type(exc).__module__}.{type(exc).__name__}"
        out.line(out.style(f"   ✗ not caught: {name}: {exc}", "31"))
        out.line("     the seed's `except anthropic.APIConnectionError` never sees a mid-stream disconnect.")
        return
    _show_app_output(out, shown.getvalue())
    out.line(
        out.style("   ✗ reported as above: the in-stream overload arrives as APIStatusError with status 200,", "31")
    )
    out.line("     not as OverloadedError (529), so the retry advice never runs.")


def _show_app_output(out: _Out, printed: str) -> None:
    for line in printed.strip("\n").splitlines() or ["(nothing)"]:
        out.line(f"   app printed: {line}")


def run_demo(*, speed: float = 1.0, out: TextIO | None = None, keep: Path | None = None) -> int:
    """Run the demo; returns the exit status."""
    o = _Out(out or sys.stdout)
    workdir = keep or Path(tempfile.mkdtemp(prefix="streamtape-demo-"))
    workdir.mkdir(parents=True, exist_ok=True)
    source = Cassette.load(starter("thinking"))
    item = source.interactions[0]
    recorded = workdir / "thinking.yaml"
    o.line(o.style("streamtape demo", "1") + " — the real anthropic SDK, a real socket, no API key")

    with ReplayServer(source, speed=speed) as server:
        base_url = server.base_url
        o.step(1, f"Serving the starter cassette 'thinking' at {server.base_url} (recorded timing x{speed:g})")
        o.step(2, "Recording through streamtape while the SDK streams it (thinking dimmed):")
        with use_cassette(recorded, record_mode="all") as tape:
            live, first = _stream_live(o, base_url, _params(item))
        saved = tape.recorded[0]
        o.line(
            f"   recorded {len(saved.events)} events, {len(saved.body)} bytes, first event after "
            f"{first * 1000:.0f} ms -> {recorded}"
        )

    o.step(3, "Server stopped. Replaying the cassette offline:")
    with use_cassette(recorded) as tape:
        replayed, _ = _stream_live(o, base_url, _params(item))
    same = replayed == live and tape.all_played
    o.line(
        o.style(
            f"   {'✓ identical' if same else '✗ DIFFERENT'} final message: stop_reason={replayed.stop_reason}, "
            f"output_tokens={replayed.usage.output_tokens}",
            "32" if same else "31",
        )
    )

    cut, after = _cut_mid_text(item)
    o.step(
        4, f"The docs' error handling (`except anthropic.APIConnectionError: ...`) vs a disconnect after event {after}:"
    )
    _trap(o, "disconnect", cut, workdir, speed)
    o.step(5, "The same handler vs an in-stream overload (a real `event: error` the API sends with status 200):")
    _trap(o, "overloaded", Cassette.load(starter("overloaded_in_stream")), workdir, speed)
    o.line()
    o.line(f"Cassettes written to {workdir}. Next: docs/cassette-format.md, and record your own with use_cassette().")
    return 0 if same else 1
