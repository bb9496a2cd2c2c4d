"""``streamtape lint``: the command around ``streamtape.lint`` (which holds the checks); every file is
checked and reported, whatever is wrong with the others."""

from __future__ import annotations

import os
import sys
from pathlib import Path
from typing import Any

import click
from rich.console import Console

from ..errors import CassetteError, StreamtapeError
from ._app import EPILOG_EXIT, fail, internal_error, main, make_console


@main.command(epilog="Examples:\n\n  streamtape lint tests/cassettes\n\n  streamtape lint --fix story.yaml\n\n"
                     "  streamtape lint tests/cassettes --max-age 30d\n\n" + EPILOG_EXIT)  # fmt: skip
@click.argument("paths", nargs=-1, required=True)
@click.option("--fix", is_flag=True, help="remove secrets in place (atomically); other problems are reported")
@click.option("--max-age", default=None, metavar="AGE",
              help="also flag interactions recorded longer ago than AGE (30d, 12h, 2w), one line each")  # fmt: skip
def lint(paths: tuple[str, ...], fix: bool, max_age: str | None) -> None:
    """Check cassettes: schema, SSE well-formedness, secrets, readability. Directories are searched
    for *.yaml and *.yml files; every file is checked, whatever is wrong with the others."""
    from ..lint import fix_secrets, lint_file

    if max_age is not None:
        from ..age import parse_age

        try:
            parse_age(max_age, "--max-age")
        except StreamtapeError as exc:
            fail(str(exc))
    files = _cassette_files(paths)
    console = make_console()
    problems: list[str] = []
    notes: list[str] = []  # said, not counted: interactions of unknown age
    for path in _progress(files, console, "linting"):
        try:
            if fix and any(p.fixable for p in lint_file(path)):
                console.print(f"{path}: fixed {fix_secrets(path)} problem(s)", markup=False)
            for found in lint_file(path, max_age=max_age):
                (problems if found.counts else notes).append(f"[{found.kind}] {found}")
        except StreamtapeError as exc:  # e.g. --fix could not save: this file's problem, not the run's
            problems.append(f"[{'schema' if isinstance(exc, CassetteError) else 'error'}] {exc}")
        except Exception as exc:  # a bug in a check must not hide the other files' problems
            if os.environ.get("STREAMTAPE_DEBUG"):
                raise
            problems.append(f"[internal] {path}: {internal_error(exc)}")
    for problem in problems + notes:
        console.print(problem, markup=False)
    summary = f"{len(files)} cassette(s), {len(problems)} problem(s)"
    if notes:
        summary += f", {len(notes)} cassette(s) holding interactions of unknown age"
    console.print(summary if not problems else f"{summary}; see above", markup=False)
    sys.exit(1 if problems else 0)


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
            found = sorted(file for pattern in ("*.yaml", "*.yml") for file in path.rglob(pattern) if file.is_file())
            if not found:
                fail(f"{name}: no cassettes (*.yaml, *.yml) in this directory; give cassette files or directories "
                     "holding them")  # fmt: skip
            files += found
        elif path.is_file():
            files.append(path)
        else:
            fail(f"{name}: no such file or directory; give cassette files or directories holding them")
    return files
