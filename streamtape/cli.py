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
    demo = commands.add_parser("demo", help="record and replay a starter stream and show the docs' error-handling trap")
    demo.add_argument("--speed", type=float, default=1.0, help="1 = recorded timing (default), 0 = instant")
    show = commands.add_parser("inspect", help="summarise a cassette's interactions")
    show.add_argument("cassette")
    args = parser.parse_args(argv)
    if args.command == "demo":
        from .demo import run_demo

        return run_demo(speed=args.speed)
    try:
        cassette = Cassette.load(args.cassette)
    except StreamtapeError as exc:
        print(f"streamtape: {exc}", file=sys.stderr)
        return 2
    for index, item in enumerate(cassette):
        events = len(item.events)
        print(f"#{index} {item.describe()}  {len(item.body)} bytes, {len(item.chunks)} chunks, {events} events")
    return 0
