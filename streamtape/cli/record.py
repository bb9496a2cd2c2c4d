"""``streamtape record``: one real streaming call through a provider's official SDK, recorded to a
cassette (rendered live as ``play`` renders it). The SDKs are driven by ``_sdks``."""

from __future__ import annotations

import json
import sys
from pathlib import Path
from typing import Any

import click

from ..errors import RecordingFailedError, StreamtapeError
from ._app import fail, main, make_console, writable_cassette
from ._sdks import DRIVERS


@main.command(epilog="Examples:\n\n  ANTHROPIC_API_KEY=... streamtape record story.yaml --prompt 'Write a story'\n\n"
                     "  OPENAI_API_KEY=... streamtape record joke.yaml --provider openai --prompt 'A joke'\n\n"
                     "  GEMINI_API_KEY=... streamtape record haiku.yaml --provider gemini --prompt 'A haiku' --thinking\n\n"
                     "  streamtape record tools.yaml --request request.json --base-url http://127.0.0.1:8080\n\n"
                     "Providers, their keys and default models: anthropic (ANTHROPIC_API_KEY, claude-sonnet-5-5), "
                     "openai and openai-responses (OPENAI_API_KEY, gpt-5-mini), gemini (GEMINI_API_KEY or "
                     "GOOGLE_API_KEY, gemini-2.5-flash), bedrock (AWS credentials from the environment or a profile, "
                     "us.amazon.nova-micro-v1:0).\n\n"
                     "Exit codes: 0 recorded, 1 the call failed (a response that broke off is still saved; no response, or a refused key, saves nothing), 2 usage or "
                     "input error.")  # fmt: skip
@click.argument("out", type=click.Path(dir_okay=False))
@click.option("--provider", type=click.Choice(list(DRIVERS)), default="anthropic", show_default=True,
              help="the API, called through its official SDK: anthropic (Messages), openai (Chat Completions), "
                   "openai-responses (Responses), gemini (google-genai), bedrock (boto3 converse_stream)")  # fmt: skip
@click.option("--prompt", help="the user message")
@click.option("--request", "request_file", type=click.Path(exists=True, dir_okay=False),
              help="a JSON file with the provider's request body instead of --prompt (Messages, Chat Completions, "
                   "Responses, generateContent or ConverseStream)")  # fmt: skip
@click.option("--model", help="the model (default: the provider's, see below)")
@click.option("--max-tokens", type=click.IntRange(min=1),
              help="the output token limit (default: 1024 for anthropic, the API's own for the others)")  # fmt: skip
@click.option("--thinking", is_flag=True,
              help="ask for thinking: adaptive (anthropic), a reasoning summary (openai-responses), thoughts (gemini)")  # fmt: skip
@click.option("--base-url", help="the API's address; default: the SDK's own variable (ANTHROPIC_BASE_URL, "
                                 "OPENAI_BASE_URL with /v1, GOOGLE_GEMINI_BASE_URL; Bedrock: its endpoint_url, "
                                 "AWS_ENDPOINT_URL_BEDROCK_RUNTIME)")  # fmt: skip
def record(out: str, provider: str, prompt: str | None, request_file: str | None, model: str | None,
           max_tokens: int | None, thinking: bool, base_url: str | None) -> None:  # fmt: skip
    """Make one real streaming call through the provider's official SDK and record it: text (and
    thinking) stream live to the terminal, and a summary follows. The key comes from the provider's
    usual environment variable and never reaches the file."""
    from ..tape import Tape
    from .play import _import_sdk, delivered_events, summary

    sdk = DRIVERS[provider]
    if (prompt is None) == (request_file is None):
        fail("give --prompt TEXT or --request FILE.json (one of them)")
    writable_cassette(out, "record")  # before the real call: a recording that cannot be saved is a call wasted
    _import_sdk(sdk.package)
    missing = sdk.key_error()
    if missing:
        fail(missing)
    try:
        if request_file is not None:
            call = sdk.from_body(_request_body(request_file), model or sdk.default_model, max_tokens, thinking)
        else:
            call = sdk.from_prompt(str(prompt), model or sdk.default_model, max_tokens, thinking)
    except StreamtapeError as exc:
        fail(f"{request_file}: {exc}" if request_file and not str(exc).startswith("--") else str(exc))
    call.base_url = base_url
    console = make_console()
    tape = Tape(out, record_mode="all")
    failed: str | None = None
    try:
        with tape:
            outcome = sdk.run(call, console, replay=False)
    except RecordingFailedError as exc:  # no response, or the key was refused: nothing is saved
        failed = str(exc)
    invalid = sdk.invalid(outcome.error) if outcome.error is not None and not tape.recorded else None
    if outcome.error is not None and not tape.calls and not failed:  # nothing was sent: the SDK refused it
        invalid = invalid or f"the {sdk.package} SDK will not send it ({type(outcome.error).__name__}: {outcome.error})"
    if invalid:  # the SDK refused the request before sending it
        fail(f"{request_file or '--prompt'}: {invalid}")
    recorded = tape.recorded
    saved = f"{len(recorded[-1].body)} bytes saved to {out}" if recorded and not failed else "nothing was saved"
    events = delivered_events(tape.calls[-1]) if tape.calls else 0
    said = summary(outcome, events, sdk.stop_label)
    if failed:
        console.print(f"streamtape: {said}; {failed}", markup=False)
        sys.exit(1)
    console.print(f"streamtape: {said}; {saved}", markup=False)
    sys.exit(1 if outcome.error is not None else 0)


def _request_body(request_file: str) -> dict[str, Any]:
    try:
        body = json.loads(Path(request_file).read_text(encoding="utf-8"))
    except (ValueError, OSError) as exc:
        fail(f"{request_file}: not a JSON request body ({exc})")
    if not isinstance(body, dict):
        fail(f"{request_file}: expected a JSON object (the provider's request body)")
    return body
