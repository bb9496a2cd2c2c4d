"""The ``streamtape`` command."""

from __future__ import annotations

import argparse
import sys

from . import __version__
from .cassette import Cassette
from .errors import StreamtapeError


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(prog="streamtape", description="Record and replay streaming HTTP byte-exact.")
    parser.add_argument("--version", action="version", version=f"streamtape {__version__}")
    commands = parser.add_subparsers(dest="command", required=True)
    show = commands.add_parser("inspect", help="summarise a cassette's interactions")
    show.add_argument("cassette")
    args = parser.parse_args(argv)
    try:
        cassette = Cassette.load(args.cassette)
    except StreamtapeError as exc:
        print(f"streamtape: {exc}", file=sys.stderr)
        return 2
    for index, item in enumerate(cassette):
        events = len(item.events)
        print(f"#{index} {item.describe()}  {len(item.body)} bytes, {len(item.chunks)} chunks, {events} events")
    return 0
