"""``streamtape import``: the command around ``streamtape.importer`` (vcrpy / pytest-recording
cassettes to streamtape's)."""

from __future__ import annotations

import sys

import click

from ..errors import StreamtapeError
from ._app import fail, main, make_console


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
    from ..importer import plan, run

    try:
        jobs = plan(paths, out_dir=out_dir, out_file=out_file)
    except StreamtapeError as exc:
        fail(str(exc))
    console, errors = make_console(), make_console(stderr=True)
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
