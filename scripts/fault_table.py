"""The fidelity tables: what an app sees under each fault in the catalogue, one table per HTTP stack
and one per provider SDK.

    python scripts/fault_table.py                    # print every table whose stack or SDK is installed
    python scripts/fault_table.py --write            # write them to docs/fidelity/<name>.md
    python scripts/fault_table.py --check            # exit 1 if an installed one no longer gives its table
    python scripts/fault_table.py --stack aiohttp    # ... only that stack's
    python scripts/fault_table.py --provider gemini  # ... only that provider SDK's

The provider tables (``openai-chat``, ``openai-responses``, ``gemini``, ``bedrock``) replay that
provider's real recorded stream through its official SDK, sync and async; their rows are computed by
``tests/support/fidelity_<provider>.py`` (with the faults that exist for that provider only).

The stacks, each a table (``STACKS``), where installed:

- ``httpx2`` (anthropic 2.x) or ``httpx`` (anthropic 0.x): the SDK on its default transport, sync and async;
- ``aiohttp``: the SDK on its aiohttp transport (``http_client=anthropic.DefaultAioHttpClient()``), async;
- ``requests``: no SDK, plain ``requests.post(..., stream=True)`` read with ``iter_lines()``: what requests
  raises, and how much of the stream it handed on first.

``--check`` (run by the test suite in both CI environments) regenerates every table whose stack is
installed and compares every row with the committed one, so a release that changes what apps meet is
noticed, not assumed: regenerate with ``--write`` and read the diff. A table whose stack is not installed
is skipped, and says so.

A clean stream (tests/data/sse/text_basic.sse: one text block, "Hello") is recorded once from a real
local server (tests.support.wire_server), the server is stopped, and a representative spec of every
fault is replayed through streamtape: through the SDK in the ``text_stream`` style with ``max_retries=2``
and a 0.3 s read timeout, through requests with ``timeout=0.3``. Every cell is computed from those runs;
nothing is written by hand. (That the replay matches a real misbehaving server is what
tests/test_fault_fidelity.py and tests/test_fidelity_aiohttp.py prove.)
"""

from __future__ import annotations

import argparse
import importlib.util
import re
import ssl
import sys
import tempfile
from collections.abc import Callable
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

ROOT = Path(__file__).resolve().parent.parent
sys.path.insert(0, str(ROOT))

import anyio  # noqa: E402

import streamtape  # noqa: E402
from streamtape.faults import CATALOGUE, parse  # noqa: E402
from tests.support import sdk  # noqa: E402
from tests.support.wire_server import WireServer, transcript  # noqa: E402

TRANSCRIPT = "text_basic"
STYLE = "text_stream"
OPTIONS = {"max_retries": 2, "timeout": 0.3}

#: Representative specs, by catalogue fault (positions land after the text "Hello": event 4).
SPECS: dict[str, list[str]] = {
    "refuse": ["refuse"],
    "reset": ["reset", "reset:after=4"],
    "disconnect": ["disconnect", "disconnect:after=4"],
    "timeout": ["timeout"],
    "http_error": ["http_error:status=400", "http_error:status=503", "http_error:status=400,request_id=false",
                   "http_error:status=502,body='<html><body><h1>502 Bad Gateway</h1></body></html>',content_type=text/html",
                   "http_error:status=503,body='upstream connect error or disconnect/reset before headers',"
                   "content_type=text/plain"],
    "rate_limit": ["rate_limit", "rate_limit:should_retry=false", "rate_limit:retry_after_ms=1 -> ok",
                   "rate_limit:retry_after_date=2 -> ok"],
    "overloaded": ["overloaded"],
    "server_error": ["server_error"],
    "stall": ["stall:after=4", "stall:after=4,seconds=0.05"],
    "error_event": ["error_event:after=4", "error_event:after=0", "error_event:after=4,then=cut",
                    "error_event:after=4,data=upstream connect error or disconnect/reset before headers",
                    "error_event:after=4,event=overloaded,then=cut"],
    "truncate": ["truncate:after=4", "truncate"],
    "delay": ["delay:per_event=0.02", "delay:per_event=0.5"],
    "rechunk": ["rechunk:size=7"],
    "corrupt": ["corrupt:event=4", "corrupt:event=4,how=utf8", "corrupt:event=4,how=truncate,at=39",
                "corrupt:event=4,how=truncate", "corrupt:event=4,how=escape", "corrupt:event=4,how=utf8,at=10"],
    "duplicate": ["duplicate:event=4"],
    "drop": ["drop:event=4", "drop:event=2"],
    "ping": ["ping:every=2"],
    "connect_timeout": ["connect_timeout"],
    "write_timeout": ["write_timeout"],
    "pool_timeout": ["pool_timeout"],
    "bad_status": ["bad_status"],
    "bad_chunk": ["bad_chunk:after=3"],
    "corrupt_gzip": ["corrupt_gzip"],
    "bom": ["bom"],
    "json_body": ["json_body"],
    "linger": ["linger"],
    "split": ["split:at_byte=700", "split"],
    "split_crlf": ["split_crlf"],
}

#: Faults this table cannot show on its recording, and why (a provider's own faults are in its own tables).
NOT_HERE: dict[str, str] = {"split_utf8": f"the text of {TRANSCRIPT} is ASCII: no character to split"}


@dataclass(frozen=True)
class Seen:
    outcome: sdk.Outcome
    requests: int
    #: requests only: the lines ``iter_lines()`` handed on before the end or the error
    lines: list[bytes] = field(default_factory=list)
    #: the app neither ended nor failed in time (aiohttp, on a broken chunk framing)
    hung: bool = False


def record(directory: Path) -> tuple[Path, str, str]:
    """The clean stream's cassette, the URL it was recorded from, and the full text."""
    path = directory / f"{TRANSCRIPT}.yaml"
    with WireServer() as server:
        server.queue(transcript(TRANSCRIPT))
        with streamtape.use_cassette(path, record_mode="all"):
            clean = sdk.consume(server.base_url, STYLE)
        url = server.base_url
    if clean.error is not None:
        raise SystemExit(f"recording the clean stream failed: {clean.error}")
    return path, url, clean.text


def replay_sync(path: Path, url: str, spec: str) -> Seen:
    with streamtape.use_cassette(path, faults=spec) as tape:
        outcome = sdk.consume(url, STYLE, options=OPTIONS)
    return Seen(outcome, len(tape.calls))


async def replay_async(path: Path, url: str, spec: str) -> Seen:
    async with streamtape.use_cassette(path, faults=spec) as tape:
        outcome = await sdk.aconsume(url, STYLE, options=OPTIONS)
    return Seen(outcome, len(tape.calls))


#: how long a replay through aiohttp may neither end nor fail: aiohttp never ends a body whose chunk
#: framing breaks after the head arrived (tests/test_fidelity_aiohttp.py shows a real socket does the same)
HANG = 1.0
_TLS: list[Any] = []  # one TLS context for every client (nothing here speaks TLS; each costs ~20-80 ms)


async def replay_aiohttp(path: Path, url: str, spec: str) -> Seen:
    """Through ``DefaultAioHttpClient``; ``Seen.hung`` when the app neither ended nor failed within ``HANG``."""
    if not _TLS:
        _TLS.append(ssl.create_default_context())
    async with streamtape.use_cassette(path, faults=spec) as tape:
        http_client = sdk.anthropic.DefaultAioHttpClient(verify=_TLS[0])
        with anyio.move_on_after(HANG):
            outcome = await sdk.aconsume(url, STYLE, options={**OPTIONS, "http_client": http_client})
            return Seen(outcome, len(tape.calls))
        await http_client.aclose()
    return Seen(sdk.Outcome(), len(tape.calls), hung=True)


def replay_requests(path: Path, url: str, spec: str | None) -> Seen:
    import requests

    outcome, lines = sdk.Outcome(), []
    with streamtape.use_cassette(path, faults=spec) as tape:
        try:
            response = requests.post(f"{url}/v1/messages", json={**sdk.PARAMS, "stream": True}, stream=True,
                                     timeout=OPTIONS["timeout"])  # fmt: skip
            outcome.status = response.status_code
            with response:
                lines.extend(response.iter_lines())
        except Exception as exc:  # noqa: BLE001 - what the app sees is the point
            status = outcome.status
            outcome.fail(exc)
            outcome.status = status
    return Seen(outcome, len(tape.calls), lines)


def _short(text: str, limit: int = 90) -> str:
    text = " ".join(text.split())
    return text if len(text) <= limit else text[: limit - 1] + "…"


def _cell(text: str) -> str:
    return text.replace("|", "\\|")


def _temporary(text: str) -> str:
    """A temporary cassette's path (a streamtape refusal names it) as the same word every run."""
    return re.sub(r"cassette \S*?/tmp[^/\s]*/(?:\S+/)*(\S+?\.yaml)", r"cassette \1", text)


def _stable(text: str) -> str:
    """What differs from run to run, and nothing else: ports (``sdk._portless``, and urllib3's ``port=N``)
    and the memory addresses in an object's repr."""
    text = sdk._portless(text)  # noqa: SLF001
    return re.sub(r" at 0x[0-9a-f]+", " at 0x…", re.sub(r"\bport=\d+", "port=PORT", text))


def sees(seen: Seen) -> str:
    out = seen.outcome
    if seen.hung:
        return f"hangs: no error and no end of the stream (stopped after {HANG:g} s; only a total timeout ends it)"
    if out.error is None:
        return f"success: {out.text!r}"
    cls, message, cause = out.error
    line = f"`{cls}`: " + (f"{_short(_stable(message))!r}" if message else "(empty message)")
    if cause is not None:
        line += f", caused by `{cause}`" + (
            f" {_short(_stable(out.cause_message or ''), 60)!r}" if out.cause_message else "")  # fmt: skip
    if out.status is not None:
        line += f", status_code {out.status}"
    return line


def raises(seen: Seen) -> str:
    """What requests raised, and what it raised it from (its cause, or the exception it was handling)."""
    out = seen.outcome
    if out.error is None:
        return "no error"
    cls, message, _ = out.error
    line = f"`{cls}`: " + (f"{_short(_stable(message))!r}" if message else "(empty message)")
    behind = [level for level in out.chain[1:] if level[0] in ("cause", "context")]
    if behind:
        where, inner, text = behind[0]
        line += f", {'caused by' if where == 'cause' else 'while handling'} `{inner}`"
        line += f" {_short(_stable(text), 60)!r}" if text else ""
    return line


def retries(seen: Seen) -> str:
    n = seen.requests
    return f"yes ({n} requests)" if n > 1 else f"no ({n} request)"


def partial(seen: Seen, full: str) -> str:
    out = seen.outcome
    if seen.hung:
        return "still waiting"
    if out.error is not None:
        return f"yes: {out.text!r}" if out.text else "nothing arrived"
    early = isinstance(out.final, dict) and out.final.get("stop_reason") is None
    if out.text == full:
        return "all of it, but no stop_reason (ended early)" if early else "complete"
    return f"no error, other text: {out.text!r}" + (" and no stop_reason" if early else "")


def lines_read(seen: Seen, full: list[bytes]) -> str:
    lines = seen.lines
    if lines == full:
        return f"all {len(full)}"
    if lines == full[: len(lines)]:
        return f"the first {len(lines)} of {len(full)}" if lines else "none"
    return f"{len(lines)}, not the recording's"


def _specs() -> list[str]:
    missing = {name for name in set(CATALOGUE) - set(SPECS) - set(NOT_HERE)
               if not getattr(CATALOGUE[name], "providers", ())}  # fmt: skip
    if missing:  # a fault of one provider's streams only (OpenAI's done_early...) is in that provider's table
        raise SystemExit(f"no representative spec for {sorted(missing)}")
    specs = [spec for name in CATALOGUE for spec in SPECS.get(name, ())]
    for spec in specs:
        parse(spec)  # a bad spec fails here, loudly
    return specs


# --- the tables, one per stack ---------------------------------------------------------------------------


def sdk_table(path: Path, url: str, full: str) -> str:
    """The SDK on its default transport (httpx2 or httpx), sync and async."""
    rows = [(spec, replay_sync(path, url, spec), anyio.run(replay_async, path, url, spec)) for spec in _specs()]
    lines = [
        f"What the app sees (anthropic {sdk.anthropic.__version__}, {sdk.STACK}), replayed by streamtape from a "
        f"recording of `{TRANSCRIPT}` (full text {full!r}); style `{STYLE}`, max_retries=2, read timeout 0.3 s.",
        "",
        "| fault (spec) | what the app sees (sync) | async, where different | SDK retries? (requests made) "
        "| partial text kept? |",
        "|---|---|---|---|---|",
    ]
    for spec, sync, asynchronous in rows:
        differs = (sees(asynchronous), asynchronous.requests, asynchronous.outcome.text) != (
            sees(sync), sync.requests, sync.outcome.text,
        )  # fmt: skip
        async_cell = sees(asynchronous) if differs else "same"
        if differs and asynchronous.requests != sync.requests:
            async_cell += f"; {retries(asynchronous)}"
        cells = [f"`{spec}`", sees(sync), async_cell, retries(sync), partial(sync, full)]
        lines.append("| " + " | ".join(_cell(c) for c in cells) + " |")
    return "\n".join(lines) + "\n"


def aiohttp_table(path: Path, url: str, full: str) -> str:
    """The SDK on its aiohttp transport (``DefaultAioHttpClient``), async only."""
    import aiohttp

    lines = [
        f"What the app sees (anthropic {sdk.anthropic.__version__} over `DefaultAioHttpClient`, aiohttp "
        f"{aiohttp.__version__}), replayed by streamtape from a recording of `{TRANSCRIPT}` (full text {full!r}); "
        f"style `{STYLE}`, async, max_retries=2, read timeout 0.3 s.",
        "",
        "| fault (spec) | what the app sees | SDK retries? (requests made) | partial text kept? |",
        "|---|---|---|---|",
    ]
    for spec in _specs():
        seen = anyio.run(replay_aiohttp, path, url, spec)
        cells = [f"`{spec}`", sees(seen), retries(seen), partial(seen, full)]
        lines.append("| " + " | ".join(_cell(c) for c in cells) + " |")
    return "\n".join(lines) + "\n"


def requests_table(path: Path, url: str, full: str) -> str:
    """No SDK: ``requests.post(..., stream=True)``, the body read with ``iter_lines()``."""
    import requests
    import urllib3

    clean = replay_requests(path, url, None)  # the lines a clean read gives
    lines = [
        f"What an app on requests sees (requests {requests.__version__}, urllib3 {urllib3.__version__}): "
        f"`requests.post(url, json=..., stream=True, timeout=0.3)`, then `iter_lines()`, replayed by streamtape "
        f"from a recording of `{TRANSCRIPT}` ({len(clean.lines)} lines); no retries (requests' default).",
        "",
        "| fault (spec) | what requests raises | status | lines handed on |",
        "|---|---|---|---|",
    ]
    for spec in _specs():
        seen = replay_requests(path, url, spec)
        status = str(seen.outcome.status) if seen.outcome.status is not None else "none"
        cells = [f"`{spec}`", raises(seen), status, lines_read(seen, clean.lines)]
        lines.append("| " + " | ".join(_cell(c) for c in cells) + " |")
    return "\n".join(lines) + "\n"


@dataclass(frozen=True)
class Stack:
    name: str  # the table is docs/fidelity/<name>.md
    table: Callable[[Path, str, str], str]
    missing: Callable[[], str | None]  # why the stack cannot be run here (None: it can)


def _sdk_missing() -> str | None:
    return None


def _aiohttp_missing() -> str | None:
    if importlib.util.find_spec("aiohttp") is None:
        return "aiohttp is not installed"
    if sdk.SDK_MAJOR < 1 or not hasattr(sdk.anthropic, "DefaultAioHttpClient"):
        return f"anthropic {sdk.anthropic.__version__} has no DefaultAioHttpClient"
    return None


def _requests_missing() -> str | None:
    if importlib.util.find_spec("requests") is None:
        return "requests is not installed"
    import urllib3

    if int(urllib3.__version__.split(".")[0]) < 2:
        return f"urllib3 {urllib3.__version__} is not the 2.x streamtape adapts"
    return None


#: every table: the SDK's default stack (httpx2, or httpx under anthropic 0.x), aiohttp, requests
STACKS: dict[str, Stack] = {
    stack.name: stack
    for stack in (
        Stack(sdk.STACK, sdk_table, _sdk_missing),
        Stack("aiohttp", aiohttp_table, _aiohttp_missing),
        Stack("requests", requests_table, _requests_missing),
    )
}
ALL_STACKS = ("httpx2", "httpx", "aiohttp", "requests")


@dataclass(frozen=True)
class ProviderTable:
    """One provider SDK's table (``tests/support/fidelity_<provider>.py`` computes its rows)."""

    name: str  # the table is docs/fidelity/<name>.md
    title: str
    available: Callable[[], bool]
    rows: Callable[[], list[dict[str, str]]]

    def render(self) -> str:
        lines = [f"What the app sees: {self.title}. Replayed by streamtape from a real stream recorded off a "
                 "local server speaking the API's wire format, sync and async, with the SDK's retries on "
                 "(`max_retries=2` or the SDK's equivalent) and a 0.3 s read timeout; computed by "
                 f"`tests/support/fidelity_{self.name.split('-')[0]}.py`.",
                 "",
                 "| fault (spec) | what the app sees (sync) | async | SDK retries? (requests made) | what arrived |",
                 "|---|---|---|---|---|"]  # fmt: skip
        for row in self.rows():
            cells = [f"`{row['spec']}`", *(_stable(_temporary(row[key])) for key in ("sync", "async", "retries",
                                                                                     "ended"))]  # fmt: skip
            lines.append("| " + " | ".join(_cell(cell) for cell in cells) + " |")
        return "\n".join(lines) + "\n"


def provider_tables() -> dict[str, ProviderTable]:
    """Every provider SDK's table: OpenAI (both APIs), Gemini, Bedrock (anthropic[bedrock])."""
    from tests.support import fidelity_bedrock, fidelity_gemini, fidelity_openai

    tables = [ProviderTable(t.name, t.title, t.available, t.rows)
              for t in (*fidelity_openai.TABLES, *fidelity_gemini.TABLES)]  # fmt: skip
    # AnthropicBedrock is the anthropic SDK: what it raises is its stack's (httpx2, or httpx under 0.x)
    bedrock = "bedrock" if sdk.STACK == "httpx2" else f"bedrock-{sdk.STACK}"
    tables.append(ProviderTable(bedrock, fidelity_bedrock.TITLE, fidelity_bedrock.available, fidelity_bedrock.rows))
    return {table.name: table for table in tables}


ALL_PROVIDERS = ("openai-chat", "openai-responses", "gemini", "bedrock", "bedrock-httpx")


def table() -> str:
    """The table of the SDK's default stack (what this script made before it had a stack axis)."""
    with tempfile.TemporaryDirectory() as tmp:
        path, url, full = record(Path(tmp))
        return sdk_table(path, url, full)


def committed_path(stack: str = sdk.STACK) -> Path:
    return ROOT / "docs" / "fidelity" / f"{stack}.md"


def _rows(text: str) -> list[str]:
    return [line for line in text.splitlines() if line.startswith("| `")]


def _check(stack: str, text: str) -> bool:
    path = committed_path(stack)
    if not path.exists():
        print(f"no committed table for {stack} ({path.relative_to(ROOT)}); run scripts/fault_table.py --write",
              file=sys.stderr)  # fmt: skip
        return False
    old, new = _rows(path.read_text(encoding="utf-8")), _rows(text)
    if old != new:
        changed = [row.split(" | ")[0] for row in sorted(set(old) ^ set(new))]
        print(f"what apps meet through {stack} (anthropic {sdk.anthropic.__version__}) is not what "
              f"{path.relative_to(ROOT)} says, for {', '.join(dict.fromkeys(changed))}: the library's behaviour "
              "moved (or the faults did); regenerate with scripts/fault_table.py --write and read the diff",
              file=sys.stderr)  # fmt: skip
        return False
    print(f"{path.relative_to(ROOT)} holds ({len(new)} rows)")
    return True


def main() -> int:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("--write", action="store_true", help="write docs/fidelity/<stack>.md")
    parser.add_argument("--check", action="store_true", help="exit 1 unless the committed tables still hold")
    parser.add_argument("--stack", choices=ALL_STACKS, help="only this stack's table (default: every installed one)")
    parser.add_argument("--provider", choices=ALL_PROVIDERS,
                        help="only this provider SDK's table (default: every installed one, after the stacks')")  # fmt: skip
    args = parser.parse_args()
    if args.provider is not None:
        return _provider_main(args.provider, write=args.write, check=args.check)
    if args.stack is not None and args.stack not in STACKS:
        print(f"{args.stack}: this environment runs the SDK on {sdk.STACK}, not {args.stack}", file=sys.stderr)
        return 1
    chosen = [STACKS[args.stack]] if args.stack else list(STACKS.values())
    ok = True
    with tempfile.TemporaryDirectory() as tmp:
        path, url, full = record(Path(tmp))
        for stack in chosen:
            missing = stack.missing()
            if missing is not None:
                print(f"skipped the {stack.name} table: {missing}", file=sys.stderr)
                if args.stack:
                    return 1
                continue
            text = stack.table(path, url, full)
            if args.write:
                target = committed_path(stack.name)
                target.parent.mkdir(parents=True, exist_ok=True)
                target.write_text(f"# Fidelity table: {stack.name}\n\n{text}", encoding="utf-8")
                print(f"wrote {target.relative_to(ROOT)}")
            elif args.check:
                ok = _check(stack.name, text) and ok
            else:
                print(f"# {stack.name}\n\n{text}")
    if args.stack is None:
        for name in provider_tables():
            ok = _provider_main(name, write=args.write, check=args.check, alone=False) == 0 and ok
    return 0 if ok else 1


def _provider_main(name: str, *, write: bool, check: bool, alone: bool = True) -> int:
    tables = provider_tables()
    if name not in tables:
        print(f"{name}: this environment runs the anthropic SDK on {sdk.STACK}; its tables: {', '.join(tables)}",
              file=sys.stderr)  # fmt: skip
        return 1
    table = tables[name]
    if not table.available():
        print(f"skipped the {name} table: its SDK is not installed", file=sys.stderr)
        return 1 if alone else 0
    text = table.render()
    if write:
        target = committed_path(name)
        target.write_text(f"# Fidelity table: {name}\n\n{text}", encoding="utf-8")
        print(f"wrote {target.relative_to(ROOT)}")
        return 0
    if check:
        return 0 if _check(name, text) else 1
    print(f"# {name}\n\n{text}")
    return 0


if __name__ == "__main__":
    sys.exit(main())
