"""The ``streamtape`` command: glue between click, rich and the library.

Exit codes: 0 success; 1 the command ran and found problems (``lint``); 2 a usage or input error
(a missing file, a bad argument), reported in one sentence without a traceback. An unexpected
exception (a streamtape bug) is reported in one sentence too, with exit code 2, unless
``STREAMTAPE_DEBUG`` is set, which shows its traceback.
"""

from __future__ import annotations

import json
import os
import sys
import threading
from pathlib import Path
from typing import Any

import click
from rich.console import Console
from rich.table import Table
from rich.text import Text

from . import __version__
from .cassette import Cassette
from .errors import CassetteError, RecordingFailedError, StreamtapeError
from .starters import starter

EPILOG_EXIT = "Exit codes: 0 success, 1 problems found, 2 usage or input error."


def _console(stderr: bool = False) -> Console:
    # colour only on a terminal; plain text in pipes, files and CI logs
    # no emoji codes either: a header named 'x:on:' or a model's ':smile:' is text, shown as written
    return Console(stderr=stderr, highlight=False, soft_wrap=True, emoji=False)


def _fail(message: str) -> None:
    _console(stderr=True).print(f"streamtape: {message}", markup=False)
    sys.exit(2)


def _load(name: str) -> Cassette:
    """A cassette from a path, or ``starter:NAME``; errors in one sentence."""
    try:
        path = starter(name) if name.startswith("starter:") else Path(name)
        return Cassette.load(path)
    except StreamtapeError as exc:
        _fail(str(exc))
        raise AssertionError("unreachable") from None


def _internal_error(exc: BaseException) -> str:
    return (
        f"internal error ({type(exc).__name__}: {exc}); this is a streamtape bug, please report it with the "
        "command you ran (STREAMTAPE_DEBUG=1 shows the traceback)"
    )


class _Commands(click.Group):
    """Whatever a command meets, the user reads one sentence: a ``StreamtapeError`` as itself (exit 2),
    anything unexpected as an internal error (exit 2), never a traceback (unless STREAMTAPE_DEBUG)."""

    def invoke(self, ctx: click.Context) -> Any:
        try:
            return super().invoke(ctx)
        except StreamtapeError as exc:
            _fail(str(exc))
        except (click.exceptions.ClickException, click.exceptions.Exit, click.exceptions.Abort):
            raise
        except Exception as exc:
            if os.environ.get("STREAMTAPE_DEBUG"):
                raise
            _fail(_internal_error(exc))


@click.group(cls=_Commands, context_settings={"help_option_names": ["-h", "--help"]}, epilog=EPILOG_EXIT)
@click.version_option(__version__, prog_name="streamtape")
def main() -> None:
    """Record and replay streaming HTTP (Server-Sent Events) byte-exact, with faithful faults."""


@main.command(epilog="Example: streamtape demo --speed 0\n\n" + EPILOG_EXIT)
@click.option("--speed", type=click.FloatRange(min=0), default=1.0, show_default=True,
              help="1 = the recording's timing, 0 = instant, N = N times faster")  # fmt: skip
def demo(speed: float) -> None:
    """Record and replay a real stream over a local socket, no API key needed, and show what the
    docs' error handling misses."""
    from .demo import run_demo

    sys.exit(run_demo(speed=speed))


@main.command(epilog="Examples:\n\n  streamtape inspect tests/cassettes/story.yaml\n\n"
                     "  streamtape inspect starter:thinking --json\n\n" + EPILOG_EXIT)  # fmt: skip
@click.argument("cassette")
@click.option("--json", "as_json", is_flag=True, help="print the report as JSON, for machines")
def inspect(cassette: str, as_json: bool) -> None:
    """Summarise each interaction: request, status, events by type, timing, tokens, how it ended,
    and a timeline of when each event arrived."""
    from .report import describe_cassette

    report = describe_cassette(_load(cassette))
    if as_json:
        click.echo(json.dumps(report, indent=2))
        return
    console = _console()
    for item in report["interactions"]:
        console.print(_inspect_table(item))


def _ms(seconds: float | None) -> str:
    return "-" if seconds is None else f"{seconds * 1000:.0f} ms"


def _inspect_table(item: dict[str, Any]) -> Table:
    from .report import timeline

    request = item["request"]
    # the cassette's own text (a URL, a model, event names) is shown as it is, never read as markup
    title = Text(f"#{item['index']}  {request['method']} {request['url']}")
    table = Table(title=title, title_justify="left", show_header=False, box=None, pad_edge=False)
    table.add_column(style="bold")
    table.add_column()
    details = ", ".join(f"{k}={request[k]}" for k in ("model", "max_tokens", "messages") if request[k] is not None)
    if details:
        table.add_row("request", Text(details))
    if "status" not in item:
        table.add_row("ended", Text(item["ended"]))
        return table
    table.add_row("status", str(item["status"]))
    table.add_row("events", Text(", ".join(f"{name} {count}" for name, count in item["events"].items()) or "none"))
    table.add_row("timing", ", ".join(f"{label} {_ms(item[key])}" for label, key in (
        ("headers", "headers_at"), ("first event", "first_event_at"), ("duration", "duration"),
        ("longest gap", "longest_gap"))))  # fmt: skip
    if item["tokens"]:
        table.add_row("tokens", ", ".join(f"{k.removesuffix('_tokens')} {v}" for k, v in item["tokens"].items()))
    stop = f" (stop_reason {item['stop_reason']})" if item["stop_reason"] else ""
    table.add_row("ended", Text(item["ended"] + stop))
    if item["arrivals"]:
        table.add_row("timeline", f"|{timeline(item['arrivals'], item['duration'])}| 0 - {item['duration']:.2f} s")
    table.add_row("", "")
    return table


@main.command(epilog="Examples:\n\n  streamtape lint tests/cassettes\n\n  streamtape lint --fix story.yaml\n\n"
                     + EPILOG_EXIT)  # fmt: skip
@click.argument("paths", nargs=-1, required=True)
@click.option("--fix", is_flag=True, help="remove secrets in place (atomically); other problems are reported")
def lint(paths: tuple[str, ...], fix: bool) -> None:
    """Check cassettes: schema, SSE well-formedness, secrets, readability. Directories are searched
    for *.yaml and *.yml files; every file is checked, whatever is wrong with the others."""
    from .lint import fix_secrets, lint_file

    files = _cassette_files(paths)
    console = _console()
    problems: list[str] = []
    for path in _progress(files, console, "linting"):
        try:
            if fix and any(p.fixable for p in lint_file(path)):
                console.print(f"{path}: fixed {fix_secrets(path)} problem(s)", markup=False)
            problems += [f"[{problem.kind}] {problem}" for problem in lint_file(path)]
        except StreamtapeError as exc:  # e.g. --fix could not save: this file's problem, not the run's
            problems.append(f"[{'schema' if isinstance(exc, CassetteError) else 'error'}] {exc}")
        except Exception as exc:  # a bug in a check must not hide the other files' problems
            if os.environ.get("STREAMTAPE_DEBUG"):
                raise
            problems.append(f"[internal] {path}: {_internal_error(exc)}")
    for problem in problems:
        console.print(problem, markup=False)
    summary = f"{len(files)} cassette(s), {len(problems)} problem(s)"
    console.print(summary if not problems else f"{summary}; see above", markup=False)
    sys.exit(1 if problems else 0)


@main.command("import", epilog="Examples:\n\n  streamtape import tests/cassettes/test_chat/test_story.yaml\n\n"
                               "  streamtape import tests/cassettes --out tests/tapes\n\n"
                               "  streamtape import legacy.json -o tests/cassettes/story.yaml\n\n"
                               "Exit codes: 0 every file imported (streamtape cassettes found in a directory are "
                               "skipped), 2 a file could not be imported, or a usage error.")  # fmt: skip
@click.argument("paths", nargs=-1, required=True)
@click.option("--out", "out_dir", metavar="DIR",
              help="write under DIR, as NAME.yaml, keeping the layout below a directory given "
                   "(default: NAME.streamtape.yaml beside each input)")  # fmt: skip
@click.option("-o", "out_file", metavar="FILE", help="write the one cassette given to FILE")
@click.option("--force", is_flag=True, help="replace existing streamtape cassettes (never any other file)")
def import_(paths: tuple[str, ...], out_dir: str | None, out_file: str | None, force: bool) -> None:
    """Convert vcrpy / pytest-recording cassettes (YAML or JSON) to streamtape cassettes, secrets
    removed, and say what could not be carried over. Directories are searched for *.yaml, *.yml and
    *.json files; every file is imported, whatever is wrong with the others. No file is replaced, except
    a streamtape cassette with --force."""
    from .importer import plan, run

    try:
        jobs = plan(paths, out_dir=out_dir, out_file=out_file)
    except StreamtapeError as exc:
        _fail(str(exc))
    console, errors = _console(), _console(stderr=True)
    counts = {"imported": 0, "skipped": 0, "failed": 0}
    for result in run(jobs, force=force):
        source, target = result.job.source, result.job.target
        if result.error is not None:
            counts["failed"] += 1
            errors.print(f"streamtape: {result.error}", markup=False)
        elif result.skipped is not None:
            counts["skipped"] += 1
            console.print(f"skipped {source}: {result.skipped}", markup=False)
        else:
            counts["imported"] += 1
            console.print(f"{source} -> {target}: {result.interactions} interaction(s)", markup=False)
            for note in result.notes:
                console.print(f"  - {note}", markup=False)
    if len(jobs) > 1:
        console.print(", ".join(f"{count} {what}" for what, count in counts.items() if count or what == "imported"),
                      markup=False)  # fmt: skip
    sys.exit(2 if counts["failed"] else 0)


def _progress(items: list[Path], console: Console, what: str) -> Any:
    """A progress bar on a terminal when there is enough to wait for; the plain list otherwise."""
    if console.is_terminal and len(items) > 20:
        from rich.progress import track

        return track(items, description=what, console=console, transient=True)
    return items


def _cassette_files(paths: tuple[str, ...]) -> list[Path]:
    files: list[Path] = []
    for name in paths:
        path = Path(name)
        if path.is_dir():
            files += sorted(file for pattern in ("*.yaml", "*.yml") for file in path.rglob(pattern))
        elif path.is_file():
            files.append(path)
        else:
            _fail(f"{name}: no such file or directory; give cassette files or directories holding them")
    return files


@main.command(epilog="Examples:\n\n  streamtape serve starter:thinking --port 8080\n\n"
                     "  streamtape serve tests/cassettes --fault 'disconnect:after=5'\n\n"
                     "  then: anthropic.Anthropic(base_url='http://127.0.0.1:8080')\n\n" + EPILOG_EXIT)  # fmt: skip
@click.argument("source")
@click.option("--host", default="127.0.0.1", show_default=True, help="the address to bind (loopback unless told)")
@click.option("--port", type=click.IntRange(0, 65535), default=0, help="the port (default: any free port)")
@click.option("--fault", "fault_specs", multiple=True, metavar="SPEC",
              help="a fault spec applied over the socket (true FIN, RST, silence); repeat to combine")  # fmt: skip
@click.option("--speed", type=click.FloatRange(min=0), default=1.0, show_default=True,
              help="1 = recorded timing, 0 = as fast as possible, N = N times faster")  # fmt: skip
@click.option("--max-connections", type=click.IntRange(min=1), default=1024, show_default=True,
              help="connections served at once; one more gets a 503 with Retry-After: 1")  # fmt: skip
@click.option("--request-timeout", type=click.FloatRange(min=0, min_open=True, max=86400), default=10.0,
              show_default=True, metavar="SECONDS",
              help="a request must arrive whole within this (else a 408); idle connections close after it")  # fmt: skip
@click.option("--max-body-bytes", type=click.IntRange(min=0), default=32 * 1024 * 1024, show_default=True,
              help="a larger request body gets a 413 (32 MiB: the Messages API's own limit)")  # fmt: skip
def serve(source: str, host: str, port: int, fault_specs: tuple[str, ...], speed: float, max_connections: int,
          request_timeout: float, max_body_bytes: int) -> None:  # fmt: skip
    """Serve a cassette (or every cassette in a directory) over real HTTP/1.1, at recorded timing,
    so any client (the SDK, curl, another language) meets the recorded streams and their faults."""
    from .server import ReplayServer

    cassette = _load_source(source)
    faults = _fault_spec(fault_specs)
    try:
        server = ReplayServer(cassette, host=host, port=port, speed=speed, faults=faults,
                              max_connections=max_connections, request_timeout=request_timeout,
                              max_body_bytes=max_body_bytes, release_memory=True,
                              log=lambda line: print(line, flush=True))  # fmt: skip
    except OSError as exc:
        _fail(f"cannot listen on {host}:{port} ({exc.strerror or exc}); choose another --port or --host")
    except StreamtapeError as exc:
        _fail(str(exc))
    console = _console()
    console.print(
        f"streamtape: serving {len(cassette)} interaction(s) from {source} at {server.base_url}", markup=False
    )
    console.print("press Ctrl-C to stop", markup=False)
    with server:
        try:
            threading.Event().wait()
        except KeyboardInterrupt:
            console.print("streamtape: stopped", markup=False)


def _fault_spec(specs: tuple[str, ...]) -> str | None:
    if not specs:
        return None
    from .faults import parse

    spec = " + ".join(specs) if len(specs) > 1 else specs[0]
    try:
        parse(spec)
    except StreamtapeError as exc:
        _fail(f"--fault {exc}")
    return spec


def _load_source(source: str) -> Cassette:
    """One cassette, ``starter:NAME``, or every *.yaml / *.yml under a directory, as one cassette."""
    path = Path(source)
    if not path.is_dir():
        return _load(source)
    root = path.resolve()
    # never a file outside the directory, even through a symlink inside it
    files = sorted(f for pattern in ("*.yaml", "*.yml") for f in path.rglob(pattern) if f.resolve().is_relative_to(root))
    if not files:
        _fail(f"{source}: no *.yaml or *.yml cassettes in this directory")
    return Cassette([item for file in files for item in _load(str(file)).interactions])


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

    from .play import attempts, delivered_events, docs_verdict, stream_message, summary
    from .tape import Tape

    loaded = _load(cassette)
    if index >= len(loaded):
        _fail(f"{cassette}: --interaction {index}, but the cassette has {len(loaded)} (0..{len(loaded) - 1})")
    item = loaded.interactions[index]
    if not isinstance(item.request.json, dict) or "messages" not in item.request.json:
        _fail(f"{cassette}: interaction #{index} is not a Messages request; play replays Messages streams")
    params = {k: v for k, v in item.request.json.items() if k != "stream"}
    origin = item.request.url.split("/v1/")[0]
    console = _console()
    with tempfile.TemporaryDirectory(prefix="streamtape-play-") as tmp:
        single = Cassette([item]).save(Path(tmp) / "play.yaml")
        try:
            tape = Tape(single, speed=speed, faults=_fault_spec(fault_specs), match_on=["method", "path"])
            with tape, anthropic.Anthropic(base_url=origin, api_key="streamtape-play", max_retries=2) as client:
                outcome = stream_message(client, params, console)
        except StreamtapeError as exc:  # the harness, not the app: exit 2, and name the cassette
            _fail(f"{cassette}: {exc}")
    if len(tape.calls) > 1 or any(call.faults for call in tape.calls):
        for line in attempts(tape.calls):
            console.print(f"streamtape: {line}", markup=False)
    events = delivered_events(tape.calls[-1]) if tape.calls else 0
    console.print(f"streamtape: {summary(outcome, events)}", markup=False)
    if outcome.error is not None:
        console.print(f"streamtape: {docs_verdict(outcome.error)}", markup=False)
        sys.exit(1)


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

    from .play import delivered_events, stream_message, summary
    from .tape import Tape

    if (prompt is None) == (request_file is None):
        _fail("give --prompt TEXT or --request FILE.json (one of them)")
    if not os.environ.get("ANTHROPIC_API_KEY"):
        _fail("ANTHROPIC_API_KEY is not set; export your key to record (replay never needs one)")
    params = _record_params(prompt, request_file, model, max_tokens, thinking)
    console = _console()
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
            _fail(f"{request_file}: not a JSON request body ({exc})")
        if not isinstance(params, dict) or "messages" not in params:
            _fail(f"{request_file}: expected a JSON object with 'messages' (and model, max_tokens)")
        params.pop("stream", None)
        return {"model": model, "max_tokens": max_tokens, **params}
    params = {"model": model, "max_tokens": max_tokens, "messages": [{"role": "user", "content": prompt}]}
    if thinking:
        params["thinking"] = {"type": "adaptive"}
    return params


@main.command(epilog="Examples:\n\n  streamtape synth hello.yaml --text 'Hello there!'\n\n"
                     "  streamtape synth weather.yaml --thinking 'The user wants weather.' --text 'Let me check.' "
                     "--tool get_weather --input '{\"city\": \"Paris\"}'\n\n"
                     "  streamtape synth slow.yaml --text 'Slowly...' --chunk-timing first=2,per_event=0.2\n\n"
                     + EPILOG_EXIT)  # fmt: skip
@click.argument("out", type=click.Path(dir_okay=False))
@click.option("--text", help="the answer's text")
@click.option("--thinking", help="extended thinking before the answer (with a signature)")
@click.option("--tool", "tools", multiple=True, metavar="NAME", help="a tool call; pair each with --input")
@click.option("--input", "inputs", multiple=True, metavar="JSON", help="the tool call's input, as JSON")
@click.option("--chunk-timing", default="", metavar="KEY=S,...",
              help="headers=, first=, per_event=, jitter= in seconds (default headers=0.3,first=0.25,"
                   "per_event=0.03,jitter=0.01)")  # fmt: skip
@click.option("--model", default="claude-sonnet-5-5", show_default=True)
@click.option("--prompt", default="Hello", show_default=True, help="the user message the request carries")
@click.option("--seed", type=int, default=0, show_default=True, help="the same seed, the same cassette")
def synth(out: str, text: str | None, thinking: str | None, tools: tuple[str, ...], inputs: tuple[str, ...],
          chunk_timing: str, model: str, prompt: str, seed: int) -> None:  # fmt: skip
    """Build an Anthropic stream cassette nobody recorded, with the real API's framing and realistic
    chunking and timing; the SDK's get_final_message() gives back exactly what was asked for."""
    from .synth import parse_timing, synthesize

    if len(tools) != len(inputs):
        _fail(f"give one --input per --tool (got {len(tools)} tools and {len(inputs)} inputs)")
    calls = []
    for name, raw in zip(tools, inputs, strict=True):
        try:
            calls.append((name, json.loads(raw)))
        except (ValueError, RecursionError) as exc:
            _fail(f"--input for tool {name!r} is not JSON ({exc})")
    try:
        item = synthesize(text=text, thinking=thinking, tools=calls, model=model, prompt=prompt,
                          timing=parse_timing(chunk_timing), seed=seed)  # fmt: skip
        Cassette([item]).save(out)
    except StreamtapeError as exc:
        _fail(str(exc))
    events = len(item.events)
    _console().print(f"streamtape: wrote {out}: {events} events, {len(item.body)} bytes", markup=False)
