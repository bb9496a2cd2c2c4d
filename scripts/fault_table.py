"""The fidelity table: what an app on the Anthropic SDK sees under each fault in the catalogue.

    python scripts/fault_table.py            # print it
    python scripts/fault_table.py --write    # write docs/fidelity/<stack>.md for the installed SDK
    python scripts/fault_table.py --check    # exit 1 if the installed SDK no longer gives that table

One table per HTTP stack the CI installs: ``docs/fidelity/httpx2.md`` (anthropic 2.x) and
``docs/fidelity/httpx.md`` (anthropic 0.x). ``--check`` (run by the test suite in both environments)
regenerates the table with the installed SDK and compares every row with the committed one, so a
new SDK release that changes what apps meet is noticed, not assumed: regenerate with ``--write`` and
read the diff.

A clean stream (tests/data/sse/text_basic.sse: one text block, "Hello") is recorded once from a real
local server (tests.support.wire_server), the server is stopped, and a representative spec of every
fault is replayed through streamtape, sync and async, in the ``text_stream`` style with
``max_retries=2`` and a 0.3 s read timeout. Every cell is computed from those runs; nothing is
written by hand. (That the replay matches a real misbehaving server is what
tests/test_fault_fidelity.py proves.)
"""

from __future__ import annotations

import argparse
import sys
import tempfile
from dataclasses import dataclass
from pathlib import Path

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
}


@dataclass(frozen=True)
class Seen:
    outcome: sdk.Outcome
    requests: int


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


def _short(text: str, limit: int = 90) -> str:
    text = " ".join(text.split())
    return text if len(text) <= limit else text[: limit - 1] + "…"


def _cell(text: str) -> str:
    return text.replace("|", "\\|")


def sees(seen: Seen) -> str:
    out = seen.outcome
    if out.error is None:
        return f"success: {out.text!r}"
    cls, message, cause = out.error
    line = f"`{cls}`: " + (f"{_short(message)!r}" if message else "(empty message)")
    if cause is not None:
        line += f", caused by `{cause}`" + (f" {_short(out.cause_message or '', 60)!r}" if out.cause_message else "")
    if out.status is not None:
        line += f", status_code {out.status}"
    return line


def retries(seen: Seen) -> str:
    n = seen.requests
    return f"yes ({n} requests)" if n > 1 else f"no ({n} request)"


def partial(seen: Seen, full: str) -> str:
    out = seen.outcome
    if out.error is not None:
        return f"yes: {out.text!r}" if out.text else "nothing arrived"
    early = isinstance(out.final, dict) and out.final.get("stop_reason") is None
    if out.text == full:
        return "all of it, but no stop_reason (ended early)" if early else "complete"
    return f"no error, other text: {out.text!r}" + (" and no stop_reason" if early else "")


def table() -> str:
    missing = set(CATALOGUE) - set(SPECS)
    if missing:
        raise SystemExit(f"no representative spec for {sorted(missing)}")
    with tempfile.TemporaryDirectory() as tmp:
        path, url, full = record(Path(tmp))
        rows = []
        for name in CATALOGUE:
            for spec in SPECS[name]:
                parse(spec)  # a bad spec fails here, loudly
                sync = replay_sync(path, url, spec)
                asynchronous = anyio.run(replay_async, path, url, spec)
                rows.append((spec, sync, asynchronous))
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


def committed_path() -> Path:
    return ROOT / "docs" / "fidelity" / f"{sdk.STACK}.md"


def _rows(text: str) -> list[str]:
    return [line for line in text.splitlines() if line.startswith("| `")]


def main() -> int:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("--write", action="store_true", help="write docs/fidelity/<stack>.md")
    parser.add_argument("--check", action="store_true", help="exit 1 unless the committed table still holds")
    args = parser.parse_args()
    text = table()
    path = committed_path()
    if args.write:
        path.parent.mkdir(parents=True, exist_ok=True)
        path.write_text(f"# Fidelity table: {sdk.STACK}\n\n{text}", encoding="utf-8")
        print(f"wrote {path.relative_to(ROOT)}")
        return 0
    if args.check:
        if not path.exists():
            print(f"no committed table for {sdk.STACK} ({path.relative_to(ROOT)}); run scripts/fault_table.py --write",
                  file=sys.stderr)  # fmt: skip
            return 1
        old, new = _rows(path.read_text(encoding="utf-8")), _rows(text)
        if old != new:
            changed = [row.split(" | ")[0] for row in sorted(set(old) ^ set(new))]
            print(f"what apps meet under anthropic {sdk.anthropic.__version__} ({sdk.STACK}) is not what "
                  f"{path.relative_to(ROOT)} says, for {', '.join(dict.fromkeys(changed))}: the SDK's behaviour "
                  "moved (or the faults did); regenerate with scripts/fault_table.py --write and read the diff",
                  file=sys.stderr)  # fmt: skip
            return 1
        print(f"{path.relative_to(ROOT)} holds for anthropic {sdk.anthropic.__version__} ({len(new)} rows)")
        return 0
    print(text, end="")
    return 0


if __name__ == "__main__":
    sys.exit(main())
