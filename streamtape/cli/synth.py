"""``streamtape synth``: the command around ``streamtape.synth`` (a stream cassette nobody recorded,
in any provider's framing)."""

from __future__ import annotations

import json

import click

from ..cassette import Cassette
from ..errors import StreamtapeError
from ._app import EPILOG_EXIT, fail, main, make_console, writable_cassette
from ._sdks import DRIVERS


@main.command(epilog="Examples:\n\n  streamtape synth hello.yaml --text 'Hello there!'\n\n"
                     "  streamtape synth weather.yaml --thinking 'The user wants weather.' --text 'Let me check.' "
                     "--tool get_weather --input '{\"city\": \"Paris\"}'\n\n"
                     "  streamtape synth chat.yaml --provider openai --text 'Hi!' --tool lookup --input '{\"q\": 1}'\n\n"
                     "  streamtape synth slow.yaml --text 'Slowly...' --chunk-timing first=2,per_event=0.2\n\n"
                     + EPILOG_EXIT)  # fmt: skip
@click.argument("out", type=click.Path(dir_okay=False))
@click.option("--provider", type=click.Choice(list(DRIVERS)), default="anthropic", show_default=True,
              help="whose framing: anthropic (Messages SSE), openai (Chat Completions), openai-responses "
                   "(Responses), gemini (streamGenerateContent), bedrock (ConverseStream event stream)")  # fmt: skip
@click.option("--text", help="the answer's text")
@click.option("--thinking", help="thinking before the answer (anthropic: with a signature; openai-responses: a "
                                 "reasoning summary; gemini: thought parts; bedrock: reasoning content)")  # fmt: skip
@click.option("--tool", "tools", multiple=True, metavar="NAME", help="a tool call; pair each with --input")
@click.option("--input", "inputs", multiple=True, metavar="JSON", help="the tool call's input, as JSON")
@click.option("--chunk-timing", default="", metavar="KEY=S,...",
              help="headers=, first=, per_event=, jitter= in seconds (default headers=0.3,first=0.25,"
                   "per_event=0.03,jitter=0.01)")  # fmt: skip
@click.option("--model", help="the model the stream names (default: the provider's, as for record)")
@click.option("--prompt", default="Hello", show_default=True, help="the user message the request carries")
@click.option("--seed", type=int, default=0, show_default=True, help="the same seed, the same cassette")
def synth(out: str, provider: str, text: str | None, thinking: str | None, tools: tuple[str, ...],
          inputs: tuple[str, ...], chunk_timing: str, model: str | None, prompt: str, seed: int) -> None:  # fmt: skip
    """Build a stream cassette nobody recorded, in the provider's real framing, with realistic
    chunking and timing; its SDK gives back exactly what was asked for (`streamtape play` shows it)."""
    from ..synth import parse_timing, synthesize

    writable_cassette(out, "synth")
    if len(tools) != len(inputs):
        fail(f"give one --input per --tool (got {len(tools)} tools and {len(inputs)} inputs)")
    calls = []
    for name, raw in zip(tools, inputs, strict=True):
        try:
            calls.append((name, json.loads(raw)))
        except (ValueError, RecursionError) as exc:
            fail(f"--input for tool {name!r} is not JSON ({exc})")
    try:
        item = synthesize(text=text, thinking=thinking, tools=calls, model=model or DRIVERS[provider].default_model,
                          prompt=prompt, timing=parse_timing(chunk_timing), seed=seed, provider=provider)  # fmt: skip
        Cassette([item]).save(out)
    except StreamtapeError as exc:
        fail(str(exc))
    events = len(item.events)
    make_console().print(f"streamtape: wrote {out}: {events} events, {len(item.body)} bytes ({provider})", markup=False)
