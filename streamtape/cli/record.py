"""``streamtape record``: one real streaming Messages call through the SDK, recorded to a cassette
(rendered live as ``play`` renders it)."""

from __future__ import annotations

import json
import sys
from pathlib import Path
from typing import Any

import click

from ..errors import RecordingFailedError
from ._app import fail, main, make_console


@main.command(epilog="Examples:\n\n  ANTHROPIC_API_KEY=... streamtape record story.yaml --prompt 'Write a story'\n\n"
                     "  streamtape record tools.yaml --request request.json --base-url http://127.0.0.1:8080\n\n"
                     "Exit codes: 0 recorded, 1 the call failed (a response that broke off is still saved; no response, or a refused key, saves nothing), 2 usage or "
                     "input error.")  # fmt: skip
@click.argument("out", type=click.Path(dir_okay=False))
@click.option("--prompt", help="the user message")
@click.option("--request", "request_file", type=click.Path(exists=True, dir_okay=False),
              help="a JSON file with the Messages request body instead of --prompt")  # fmt: skip
@click.option("--model", default="claude-sonnet-5-5", show_default=True)
@click.option("--max-tokens", type=click.IntRange(min=1), default=1024, show_default=True)
@click.option("--thinking", is_flag=True, help="ask for adaptive extended thinking (thinking: {type: adaptive})")
@click.option("--base-url", envvar="ANTHROPIC_BASE_URL", help="the API's address (env ANTHROPIC_BASE_URL)")
def record(out: str, prompt: str | None, request_file: str | None, model: str, max_tokens: int, thinking: bool,
           base_url: str | None) -> None:  # fmt: skip
    """Make one real streaming Messages call through the SDK and record it: text (and thinking)
    stream live to the terminal, and a summary follows. The key comes from ANTHROPIC_API_KEY."""
    import os

    import anthropic

    from ..tape import Tape
    from .play import delivered_events, stream_message, summary

    if (prompt is None) == (request_file is None):
        fail("give --prompt TEXT or --request FILE.json (one of them)")
    if not os.environ.get("ANTHROPIC_API_KEY"):
        fail("ANTHROPIC_API_KEY is not set; export your key to record (replay never needs one)")
    params = _record_params(prompt, request_file, model, max_tokens, thinking)
    console = make_console()
    tape = Tape(out, record_mode="all")
    failed: str | None = None
    try:
        with tape, anthropic.Anthropic(base_url=base_url, max_retries=0) as client:
            outcome = stream_message(client, params, console)
    except RecordingFailedError as exc:  # no response, or the key was refused: nothing is saved
        failed = str(exc)
    recorded = tape.recorded
    saved = f"{len(recorded[-1].body)} bytes saved to {out}" if recorded and not failed else "nothing was saved"
    events = delivered_events(tape.calls[-1]) if tape.calls else 0
    if failed:
        console.print(f"streamtape: {summary(outcome, events)}; {failed}", markup=False)
        sys.exit(1)
    console.print(f"streamtape: {summary(outcome, events)}; {saved}", markup=False)
    sys.exit(1 if outcome.error is not None else 0)


def _record_params(prompt: str | None, request_file: str | None, model: str, max_tokens: int,
                   thinking: bool) -> dict[str, Any]:  # fmt: skip
    if request_file is not None:
        try:
            params = json.loads(Path(request_file).read_text(encoding="utf-8"))
        except (ValueError, OSError) as exc:
            fail(f"{request_file}: not a JSON request body ({exc})")
        if not isinstance(params, dict) or "messages" not in params:
            fail(f"{request_file}: expected a JSON object with 'messages' (and model, max_tokens)")
        params.pop("stream", None)
        return {"model": model, "max_tokens": max_tokens, **params}
    params = {"model": model, "max_tokens": max_tokens, "messages": [{"role": "user", "content": prompt}]}
    if thinking:
        params["thinking"] = {"type": "adaptive"}
    return params
