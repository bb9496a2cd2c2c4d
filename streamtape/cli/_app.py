"""The ``streamtape`` group and what every command shares: one-sentence errors, the console, loading
a cassette by path or ``starter:NAME``, checking ``--fault`` specs.

Exit codes: 0 success; 1 the command ran and found problems (``lint``); 2 a usage or input error
(a missing file, a bad argument), reported in one sentence without a traceback. An unexpected
exception (a streamtape bug) is reported in one sentence too, with exit code 2, unless
``STREAMTAPE_DEBUG`` is set, which shows its traceback.
"""

from __future__ import annotations

import os
import sys
from pathlib import Path
from typing import Any, NoReturn

import click
from rich.console import Console

from .. import __version__
from ..cassette import Cassette
from ..errors import StreamtapeError
from ..starters import starter

EPILOG_EXIT = "Exit codes: 0 success, 1 problems found, 2 usage or input error."


def make_console(stderr: bool = False) -> Console:
    # colour only on a terminal; plain text in pipes, files and CI logs
    # no emoji codes either: a header named 'x:on:' or a model's ':smile:' is text, shown as written
    return Console(stderr=stderr, highlight=False, soft_wrap=True, emoji=False)


def fail(message: str) -> NoReturn:
    """Say ``message`` in one sentence on stderr and exit with status 2."""
    make_console(stderr=True).print(f"streamtape: {message}", markup=False)
    sys.exit(2)


def load(name: str) -> Cassette:
    """A cassette from a path, or ``starter:NAME``; errors in one sentence."""
    try:
        path = starter(name) if name.startswith("starter:") else Path(name)
        return Cassette.load(path)
    except StreamtapeError as exc:
        fail(str(exc))


def internal_error(exc: BaseException) -> str:
    return (
        f"internal error ({type(exc).__name__}: {exc}); this is a streamtape bug, please report it with the "
        "command you ran (STREAMTAPE_DEBUG=1 shows the traceback)"
    )


def writable_cassette(out: str, command: str) -> None:
    """Say in one sentence, before any work, when ``out`` cannot be written or is a file that is not a
    cassette (a command writing cassettes only ever replaces a cassette)."""
    folder = Path(out).absolute().parent
    while not folder.exists() and folder != folder.parent:
        folder = folder.parent
    if not folder.is_dir():
        fail(f"{out}: cannot write the cassette there: {folder} is a file, not a directory")
    if not os.access(folder, os.W_OK | os.X_OK):
        fail(f"{out}: cannot write the cassette there: {folder} is not writable")
    path = Path(out)
    if path.exists() or path.is_symlink():
        from ..importer import _is_streamtape_file

        if not path.is_file() or not _is_streamtape_file(path):
            fail(f"{out}: exists and is not a streamtape cassette; {command} only ever replaces a cassette: move it, "
                 "or choose another name")  # fmt: skip


def fault_spec(specs: tuple[str, ...]) -> str | None:
    """The ``--fault`` options as one spec (``+`` combines them), checked now: a typo is one sentence."""
    if not specs:
        return None
    from ..faults import parse

    spec = " + ".join(specs) if len(specs) > 1 else specs[0]
    try:
        parse(spec)
    except StreamtapeError as exc:
        fail(f"--fault {exc}")
    return spec


class Commands(click.Group):
    """Whatever a command meets, the user reads one sentence: a ``StreamtapeError`` as itself (exit 2),
    anything unexpected as an internal error (exit 2), never a traceback (unless STREAMTAPE_DEBUG)."""

    def invoke(self, ctx: click.Context) -> Any:
        try:
            return super().invoke(ctx)
        except StreamtapeError as exc:
            fail(str(exc))
        except (click.exceptions.ClickException, click.exceptions.Exit, click.exceptions.Abort):
            raise
        except Exception as exc:
            if os.environ.get("STREAMTAPE_DEBUG"):
                raise
            fail(internal_error(exc))


@click.group(cls=Commands, context_settings={"help_option_names": ["-h", "--help"]}, epilog=EPILOG_EXIT)
@click.version_option(__version__, prog_name="streamtape")
def main() -> None:
    """Record and replay streaming HTTP (Server-Sent Events) byte-exact, with faithful faults."""
