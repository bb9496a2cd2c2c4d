"""``streamtape serve``: cassettes over real HTTP/1.1 (``streamtape.server``), for any client."""

from __future__ import annotations

import threading
from pathlib import Path

import click

from ..cassette import Cassette
from ..errors import StreamtapeError
from ._app import EPILOG_EXIT, fail, fault_spec, load, main, make_console


@main.command(epilog="Examples:\n\n  streamtape serve starter:thinking --port 8080\n\n"
                     "  streamtape serve tests/cassettes --fault 'disconnect:after=5'\n\n"
                     "  then: anthropic.Anthropic(base_url='http://127.0.0.1:8080')\n\n" + EPILOG_EXIT)  # fmt: skip
@click.argument("source")
@click.option("--host", default="127.0.0.1", show_default=True, help="the address to bind (loopback unless told)")
@click.option("--port", type=click.IntRange(0, 65535), default=0, help="the port (default: any free port)")
@click.option("--fault", "fault_specs", multiple=True, metavar="SPEC",
              help="a fault spec applied over the socket (true FIN, RST, silence); repeat to combine")  # fmt: skip
@click.option("--speed", type=click.FloatRange(min=0), default=1.0, show_default=True,
              help="1 = recorded timing, 0 = as fast as possible, N = N times faster")  # fmt: skip
@click.option("--max-connections", type=click.IntRange(min=1), default=1024, show_default=True,
              help="connections served at once; one more gets a 503 with Retry-After: 1")  # fmt: skip
@click.option("--request-timeout", type=click.FloatRange(min=0, min_open=True, max=86400), default=10.0,
              show_default=True, metavar="SECONDS",
              help="a request must arrive whole within this (else a 408); idle connections close after it")  # fmt: skip
@click.option("--max-body-bytes", type=click.IntRange(min=0), default=32 * 1024 * 1024, show_default=True,
              help="a larger request body gets a 413 (32 MiB: the Messages API's own limit)")  # fmt: skip
@click.option("--refuse-seconds", type=click.FloatRange(min=0, min_open=True, max=3600), default=0.25,
              show_default=True, metavar="SECONDS",
              help="how long nothing listens for an attempt a 'refuse' fault refuses (a refused attempt never "
                   "reaches the server, so it is counted by time; refusing every attempt needs no window)")  # fmt: skip
def serve(source: str, host: str, port: int, fault_specs: tuple[str, ...], speed: float, max_connections: int,
          request_timeout: float, max_body_bytes: int, refuse_seconds: float) -> None:  # fmt: skip
    """Serve a cassette (or every cassette in a directory) over real HTTP/1.1, at recorded timing,
    so any client (the SDK, curl, another language) meets the recorded streams and their faults."""
    from ..server import ReplayServer

    cassette = _load_source(source)
    faults = fault_spec(fault_specs)
    try:
        server = ReplayServer(cassette, host=host, port=port, speed=speed, faults=faults,
                              max_connections=max_connections, request_timeout=request_timeout,
                              max_body_bytes=max_body_bytes, refuse_seconds=refuse_seconds, release_memory=True,
                              log=lambda line: print(line, flush=True))  # fmt: skip
    except OSError as exc:
        fail(f"cannot listen on {host}:{port} ({exc.strerror or exc}); choose another --port or --host")
    except StreamtapeError as exc:
        fail(str(exc))
    console = make_console()
    console.print(
        f"streamtape: serving {len(cassette)} interaction(s) from {source} at {server.base_url}", markup=False
    )
    if server.session.refusal_due() and not server.session.refuses_forever():
        console.print(f"note: the first attempt is refused for {refuse_seconds:g} s from now (--refuse-seconds): "
                      "start the client within it", markup=False)  # fmt: skip
    console.print("press Ctrl-C to stop", markup=False)
    with server:
        try:
            threading.Event().wait()
        except KeyboardInterrupt:
            console.print("streamtape: stopped", markup=False)


def _load_source(source: str) -> Cassette:
    """One cassette, ``starter:NAME``, or every *.yaml / *.yml under a directory, as one cassette."""
    path = Path(source)
    if not path.is_dir():
        return load(source)
    root = path.resolve()
    # never a file outside the directory, even through a symlink inside it
    files = sorted(f for pattern in ("*.yaml", "*.yml") for f in path.rglob(pattern) if f.resolve().is_relative_to(root))
    if not files:
        fail(f"{source}: no *.yaml or *.yml cassettes in this directory")
    return Cassette([item for file in files for item in load(str(file)).interactions])
