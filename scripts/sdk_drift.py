"""SDK drift: does the installed SDK still raise what the fidelity table says, on every starter?

    python scripts/sdk_drift.py            # check; exit 1 and one line per difference if it moved
    python scripts/sdk_drift.py --json     # the same, as JSON for CI
    python scripts/sdk_drift.py --async    # also the async client (twice as long)

``scripts/fault_table.py --check`` proves the committed table (docs/fidelity/<stack>.md) for one
recording. This replays **every** starter cassette (cassettes/anthropic/*.yaml: thinking, tool use,
citations, in-stream and HTTP errors...) through the installed anthropic SDK under each of the
table's fault specs, and compares what the app meets with the table's row for that spec:

- the exception class, its cause's class and its ``status_code`` (not the messages: they quote the
  stream), and how many requests the SDK made (its retries);
- where the table says the app succeeds (a fault that leaves the stream readable: ``rechunk``,
  ``ping``, a short ``stall``), what the starter gives without any fault (the in-stream error of
  ``overloaded_in_stream``, the 429 of ``rate_limited``);
- a spec whose position the starter does not reach (``after=4`` on a one-event stream, or on a
  JSON error body) is not applicable to it, and skipped.

Run in CI on a schedule against the newest SDK on the package index (see docs/drift.md), so an SDK
release that changes what apps meet is noticed within a day, not at the next upgrade.
"""

from __future__ import annotations

import argparse
import json
import re
import sys
import tempfile
import warnings
from dataclasses import dataclass, replace
from pathlib import Path
from typing import Any

ROOT = Path(__file__).resolve().parent.parent
sys.path.insert(0, str(ROOT))

import anyio  # noqa: E402

import streamtape  # noqa: E402
from scripts.fault_table import OPTIONS, SPECS, STYLE, TRANSCRIPT, Seen, committed_path, sees  # noqa: E402
from streamtape import sse  # noqa: E402
from streamtape.cassette import Cassette  # noqa: E402
from streamtape.errors import StreamtapeError  # noqa: E402
from streamtape.faults import CONTENT, REPLACE, parse  # noqa: E402
from tests.support import sdk  # noqa: E402
from tests.support.wire_server import DATA_DIR  # noqa: E402

STARTERS = ROOT / "cassettes" / "anthropic"
URL = "https://api.anthropic.com"
MATCH = ["method", "path"]  # a starter's reconstructed request is not the one sdk.consume sends


@dataclass(frozen=True)
class Raised:
    """What the app met, as compared: ``success``, or the exception's class, its cause's class and its
    status code; and how many requests the SDK made."""

    what: str
    requests: int

    def __str__(self) -> str:
        return f"{self.what} ({self.requests} request{'s' if self.requests != 1 else ''})"


def signature(cell: str) -> str:
    """A table cell (``sees()``'s text) reduced to what is compared: no messages."""
    if cell.startswith("success"):
        return "success"
    classes = re.findall(r"`([^`]+)`", cell)
    cause = re.search(r"caused by `([^`]+)`", cell)
    status = re.search(r"status_code (\d+)", cell)
    parts = [classes[0] if classes else cell.split(":")[0]]
    if cause:
        parts.append(f"caused by {cause.group(1)}")
    if status:
        parts.append(f"status {status.group(1)}")
    return ", ".join(parts)


def table_rows(path: Path) -> dict[str, tuple[str, str, int, int]]:
    """The committed table: per spec, the sync and async signatures and request counts."""
    rows: dict[str, tuple[str, str, int, int]] = {}
    for line in path.read_text(encoding="utf-8").splitlines():
        if not line.startswith("| `"):
            continue
        cells = [cell.strip().replace("\\|", "|") for cell in re.split(r"(?<!\\)\|", line)[1:-1]]
        spec = cells[0].strip("`")
        sync_requests = _requests(cells[3])
        async_cell = cells[2]
        async_requests = _requests(async_cell) if "request" in async_cell.rsplit(";", 1)[-1] else sync_requests
        async_sig = signature(cells[1]) if async_cell == "same" else signature(async_cell.rsplit("; ", 1)[0]
                                                                               if "requests)" in async_cell
                                                                               or "request)" in async_cell
                                                                               else async_cell)  # fmt: skip
        rows[spec] = (signature(cells[1]), async_sig, sync_requests, async_requests)
    return rows


def _requests(cell: str) -> int:
    match = re.search(r"\((\d+) requests?\)", cell)
    return int(match.group(1)) if match else 1


def replay(path: Path, spec: str | None, asynchronous: bool) -> Raised | None:
    """What the app meets replaying ``path`` under ``spec``; ``None`` when the spec does not apply to it."""
    try:
        if asynchronous:
            seen = anyio.run(_areplay, path, spec)
        else:
            with streamtape.use_cassette(path, faults=spec, match_on=MATCH) as tape:
                outcome = sdk.consume(URL, STYLE, options=OPTIONS)
            seen = Seen(outcome, len(tape.calls))
    except StreamtapeError:
        return None  # a position past the starter's events, or a fault its body cannot take
    return Raised(signature(sees(seen)), seen.requests)


async def _areplay(path: Path, spec: str | None) -> Seen:
    async with streamtape.use_cassette(path, faults=spec, match_on=MATCH) as tape:
        outcome = await sdk.aconsume(URL, STYLE, options=OPTIONS)
    return Seen(outcome, len(tape.calls))


def instant(source: Path, folder: Path) -> Path:
    """A copy of the starter whose responses arrive at once, as the table's local recording did: the
    starters' modelled timing (headers after 350 ms) would meet the table's 0.3 s read timeout first."""
    items = []
    for item in Cassette.load(source).interactions:
        if item.response is not None:
            timing = tuple((0.0, size) for _, size in item.response.timing)
            item = replace(item, response=replace(item.response, headers_at=0.0, timing=timing))
        items.append(item)
    return Cassette(items).save(folder / source.name)


def event_kinds(path: Path) -> list[str]:
    """The event types of the cassette's first response, in order (``event=N`` counts from 1)."""
    first = next((item.response for item in Cassette.load(path).interactions if item.response is not None), None)
    return [kind(event) for event in first.events] if first is not None else []


def kind(event: sse.Event) -> str:
    """An event's type and its block's or delta's: ``content_block_delta/text_delta``."""
    data = event.json if isinstance(event.json, dict) else {}
    inner = data.get("delta") if isinstance(data.get("delta"), dict) else data.get("content_block")
    variant = inner.get("type") if isinstance(inner, dict) else None
    return f"{event.event}/{variant}" if isinstance(variant, str) else event.event


#: the event types of the recording the table was made from (fault_table.TRANSCRIPT)
TABLE_EVENTS = [kind(event) for event in sse.parse_events(DATA_DIR.joinpath(f"{TRANSCRIPT}.sse").read_bytes())]


def applies(spec: str, kinds: list[str], *, clean: bool) -> bool:
    """Whether the table's row for ``spec`` says what the starter should give. On a starter that is
    itself an error (a 429, an in-stream error), only faults that replace the whole response or fail
    before it; a fault that removes, repeats or damages event N, only where event N is of the type
    it is in the table's recording (dropping ``content_block_start`` is another story than dropping
    a delta)."""
    faults = [fault for step in parse(spec).steps for fault in step]
    if not clean and any(getattr(fault, "phase", None) != REPLACE for fault in faults):
        return False
    for fault in faults:
        number = getattr(fault, "event", None)
        if not (getattr(fault, "phase", None) == CONTENT and isinstance(number, int) and number >= 1):
            continue
        if number > len(kinds) or number > len(TABLE_EVENTS) or kinds[number - 1] != TABLE_EVENTS[number - 1]:
            return False
    return True


def check(
    asynchronous: bool = False, starters: list[Path] | None = None, table: Path | None = None
) -> tuple[list[dict[str, Any]], int]:
    """Every (starter, spec, client) whose outcome differs from the table, and how many were compared."""
    with tempfile.TemporaryDirectory() as tmp:
        return _check(Path(tmp), asynchronous, starters or sorted(STARTERS.glob("*.yaml")), table or committed_path())


def _check(folder: Path, asynchronous: bool, starters: list[Path], table: Path) -> tuple[list[dict[str, Any]], int]:
    rows = table_rows(table)
    differences: list[dict[str, Any]] = []
    compared = 0
    modes = [False, True] if asynchronous else [False]
    for starter in starters:
        path = instant(starter, folder)
        for mode in modes:
            baseline = replay(path, None, mode)
            assert baseline is not None
            kinds = event_kinds(path)
            for spec in (spec for specs in SPECS.values() for spec in specs):
                if spec not in rows or not applies(spec, kinds, clean=baseline.what == "success"):
                    continue  # (a spec added since the table was written: fault_table.py --check says so)
                sync_sig, async_sig, sync_requests, async_requests = rows[spec]
                expected = Raised(async_sig if mode else sync_sig, async_requests if mode else sync_requests)
                actual = replay(path, spec, mode)
                if actual is None:
                    continue
                if expected.what == "success":  # the fault leaves the stream readable: as without a fault
                    # (a starter the SDK retries, a 429, makes its own count of requests)
                    expected = Raised(baseline.what, expected.requests if baseline.requests == 1 else actual.requests)
                compared += 1
                if actual != expected:
                    differences.append({"starter": path.stem, "spec": spec, "client": "async" if mode else "sync",
                                        "table": str(expected), "installed": str(actual)})  # fmt: skip
    return differences, compared


def _shown(path: Path) -> str:
    return str(path.relative_to(ROOT)) if path.is_relative_to(ROOT) else str(path)


def main() -> int:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("--json", action="store_true", help="print the result as JSON")
    parser.add_argument("--async", dest="asynchronous", action="store_true", help="also check the async client")
    parser.add_argument("--starter", action="append", metavar="NAME", help="only this starter (repeatable)")
    parser.add_argument("--table", type=Path, default=None, help="compare with this table (default: the committed one)")
    args = parser.parse_args()
    table = args.table or committed_path()
    starters = [STARTERS / f"{name}.yaml" for name in args.starter or ()]
    missing = [path.stem for path in starters if not path.is_file()]
    if missing:
        print(f"--starter {missing[0]}: no such starter in cassettes/anthropic", file=sys.stderr)
        return 2
    if not table.exists():
        print(f"no committed table for {sdk.STACK} ({_shown(table)}); run scripts/fault_table.py --write",
              file=sys.stderr)  # fmt: skip
        return 2
    with warnings.catch_warnings():
        warnings.simplefilter("ignore", DeprecationWarning)  # the starters' models are deprecated: they are real
        differences, compared = check(args.asynchronous, starters or None, table)
    version = f"anthropic {sdk.anthropic.__version__} ({sdk.STACK})"
    if args.json:
        print(json.dumps({"sdk": version, "table": str(_shown(table)), "compared": compared,
                          "drifted": bool(differences), "differences": differences}, indent=2))  # fmt: skip
    else:
        for item in differences:
            print(f"{item['starter']}, `{item['spec']}` ({item['client']}): the table says {item['table']}; "
                  f"{version} gives {item['installed']}")  # fmt: skip
        verdict = (f"{len(differences)} of {compared} outcomes differ from {_shown(table)}: the SDK's "
                   "behaviour moved; regenerate the table with scripts/fault_table.py --write and read the diff"
                   if differences else f"{compared} outcomes over {len(starters) or len(list(STARTERS.glob('*.yaml')))} starters "
                   f"hold {_shown(table)} for {version}")  # fmt: skip
        print(verdict, file=sys.stderr if differences else sys.stdout)
    return 1 if differences else 0


if __name__ == "__main__":
    sys.exit(main())
