"""Print a Markdown table of what an app on the Anthropic SDK sees under each fault in the catalogue.

    .venv/bin/python scripts/fault_table.py > /tmp/table.md

A clean stream (tests/data/sse/text_basic.sse: one text block, "Hello") is recorded once from a real
local server (tests.support.wire_server), the server is stopped, and a representative spec of every
fault is replayed through streamtape, sync and async, in the ``text_stream`` style with
``max_retries=2`` and a 0.3 s read timeout. Every cell is computed from those runs; nothing is
written by hand. (That the replay matches a real misbehaving server is what
tests/test_fault_fidelity.py proves.)
"""

from __future__ import annotations

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
    "http_error": ["http_error:status=400", "http_error:status=503"],
    "rate_limit": ["rate_limit", "rate_limit:should_retry=false", "rate_limit:retry_after_ms=1 -> ok"],
    "overloaded": ["overloaded"],
    "server_error": ["server_error"],
    "stall": ["stall:after=4", "stall:after=4,seconds=0.05"],
    "error_event": ["error_event:after=4", "error_event:after=0"],
    "truncate": ["truncate:after=4", "truncate"],
    "delay": ["delay:per_event=0.02", "delay:per_event=0.5"],
    "rechunk": ["rechunk:size=7"],
    "corrupt": ["corrupt:event=4", "corrupt:event=4,how=utf8"],
    "duplicate": ["duplicate:event=4"],
    "drop": ["drop:event=4", "drop:event=2"],
    "ping": ["ping:every=2"],
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


def main() -> None:
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
    print(
        f"What the app sees (anthropic {sdk.anthropic.__version__}, {sdk.STACK}), replayed by streamtape from a "
        f"recording of `{TRANSCRIPT}` (full text {full!r}); style `{STYLE}`, max_retries=2, read timeout 0.3 s.\n"
    )
    print(
        "| fault (spec) | what the app sees (sync) | async, where different | SDK retries? (requests made) "
        "| partial text kept? |"
    )
    print("|---|---|---|---|---|")
    for spec, sync, asynchronous in rows:
        differs = (sees(asynchronous), asynchronous.requests, asynchronous.outcome.text) != (
            sees(sync), sync.requests, sync.outcome.text,
        )  # fmt: skip
        async_cell = sees(asynchronous) if differs else "same"
        if differs and asynchronous.requests != sync.requests:
            async_cell += f"; {retries(asynchronous)}"
        cells = [f"`{spec}`", sees(sync), async_cell, retries(sync), partial(sync, full)]
        print("| " + " | ".join(_cell(c) for c in cells) + " |")


if __name__ == "__main__":
    main()
