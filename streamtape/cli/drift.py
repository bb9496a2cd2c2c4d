"""``streamtape drift``: re-send what cassettes recorded and say whether the API's answers still have
the structure they recorded (the work is ``streamtape.drift``)."""

from __future__ import annotations

import json
import sys
from pathlib import Path

import click

from ..errors import StreamtapeError
from ._app import fail, main, make_console

_EPILOG = (
    "Examples:\n\n  ANTHROPIC_API_KEY=... streamtape drift tests/cassettes\n\n"
    "  streamtape drift story.yaml --base-url http://127.0.0.1:8080 --json\n\n"
    "Exit codes: 0 the structure holds, 1 it drifted, 2 usage or input error, or an answer that could not "
    "be compared (no connection, a refused key)."
)


@main.command(epilog=_EPILOG)
@click.argument("cassettes", nargs=-1, required=True)
@click.option("--base-url", default=None, metavar="URL",
              help="re-send to this server instead of the recorded host (its path, if any, is a prefix)")  # fmt: skip
@click.option("--out", "out_dir", default=None, metavar="DIR",
              help="write the fresh answers as DIR/NAME.yaml (default: NAME.drift.yaml beside each cassette)")  # fmt: skip
@click.option("--json", "as_json", is_flag=True, help="print the report as JSON, for CI")
def drift(cassettes: tuple[str, ...], base_url: str | None, out_dir: str | None, as_json: bool) -> None:
    """Re-send each recorded request (with the key from the provider's usual variable, e.g.
    ANTHROPIC_API_KEY, sent and never written; or to --base-url), save the fresh answers beside the
    cassette without touching it, and print what changed in structure: status, headers that appeared
    or vanished, event types and their order, JSON fields added, removed, renamed or changed in type.
    Recorded failures (error statuses, cut connections) are kept and never re-sent."""
    from ..drift import check

    files = _files(cassettes)
    if out_dir is not None and Path(out_dir).exists() and not Path(out_dir).is_dir():
        fail(f"--out {out_dir}: not a directory; give a directory for the fresh cassettes")
    reports = []
    for path in files:
        try:
            reports.append(check(path, base_url=base_url, out_dir=out_dir))
        except StreamtapeError as exc:
            fail(str(exc))
    drifted = any(report.drifted for report in reports)
    failed = any(report.failed for report in reports)
    if as_json:
        click.echo(json.dumps({"drifted": drifted, "cassettes": [r.as_dict() for r in reports]}, indent=2))
    else:
        console = make_console()
        for report in reports:
            target = f" -> {report.out}" if report.out is not None else " (nothing re-checkable: nothing re-sent)"
            console.print(f"{report.path}{target}", markup=False)
            for item in report.interactions:
                reason = f" ({item.reason})" if item.reason else ""
                console.print(f"  #{item.index} {item.request}: {item.state}{reason}", markup=False)
                for change in item.changes:
                    console.print(f"    {change}", markup=False)
        changed = sum(len(item.changes) for report in reports for item in report.interactions)
        verdict = (f"structure drifted: {changed} change(s)" if drifted
                   else "some answers could not be compared" if failed else "no structural drift")  # fmt: skip
        console.print(f"{len(reports)} cassette(s): {verdict}", markup=False)
    sys.exit(1 if drifted else 2 if failed else 0)


def _files(names: tuple[str, ...]) -> list[Path]:
    """The cassettes named, and those under the directories named (not earlier drift output)."""
    files: list[Path] = []
    for name in names:
        path = Path(name)
        if path.is_dir():
            found = sorted(f for pattern in ("*.yaml", "*.yml") for f in path.rglob(pattern))
            files += [f for f in found if ".drift." not in f.name]
        elif path.is_file():
            files.append(path)
        else:
            fail(f"{name}: no such file or directory; give cassette files or directories holding them")
    if not files:
        fail(f"{', '.join(names)}: no cassettes (*.yaml, *.yml) found; give cassette files or directories holding them")
    return files
