"""``streamtape serve``: cassettes over real HTTP/1.1 (``streamtape.server``), for any client."""

from __future__ import annotations

import contextlib
import functools
import gc
import os
import select
import signal
import sys
import time
from collections.abc import Callable
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import click

from ..cassette import Cassette
from ..errors import StreamtapeError
from ._app import EPILOG_EXIT, fail, fault_spec, load, main, make_console

MAX_WORKERS = 64
_WAKE_EVERY = 0.5  # how often the waiting main thread runs the signal handlers due (see _wait_for_ctrl_c)
_PR_SET_PDEATHSIG = 1  # linux/prctl.h


@main.command(epilog="Examples:\n\n  streamtape serve starter:thinking --port 8080\n\n"
                     "  streamtape serve tests/cassettes --fault 'disconnect:after=5'\n\n"
                     "  streamtape serve tests/cassettes --workers 2   (Linux: two processes share the port)\n\n"
                     "  then: anthropic.Anthropic(base_url='http://127.0.0.1:8080')\n\n" + EPILOG_EXIT)  # fmt: skip
@click.argument("source")
@click.option("--host", default="127.0.0.1", show_default=True, help="the address to bind (loopback unless told)")
@click.option("--port", type=click.IntRange(0, 65535), default=0, help="the port (default: any free port)")
@click.option("--fault", "fault_specs", multiple=True, metavar="SPEC",
              help="a fault spec applied over the socket (true FIN, RST, silence); repeat to combine")  # fmt: skip
@click.option("--speed", type=click.FloatRange(min=0), default=1.0, show_default=True,
              help="1 = recorded timing, 0 = as fast as possible, N = N times faster")  # fmt: skip
@click.option("--max-connections", type=click.IntRange(min=1), default=1024, show_default=True,
              help="connections served at once (per worker); one more gets a 503 with Retry-After: 1")  # fmt: skip
@click.option("--request-timeout", type=click.FloatRange(min=0, min_open=True, max=86400), default=10.0,
              show_default=True, metavar="SECONDS",
              help="a request must arrive whole within this (else a 408); idle connections close after it")  # fmt: skip
@click.option("--max-body-bytes", type=click.IntRange(min=0), default=32 * 1024 * 1024, show_default=True,
              help="a larger request body gets a 413 (32 MiB: the Messages API's own limit)")  # fmt: skip
@click.option("--max-pending-bytes", type=click.IntRange(min=0), default=256 * 1024 * 1024, show_default=True,
              help="request bodies being received at once, all connections together (at least --max-body-bytes); "
                   "a body beyond it gets a 503 with Retry-After: 1, unread")  # fmt: skip
@click.option("--refuse-seconds", type=click.FloatRange(min=0, min_open=True, max=3600), default=0.25,
              show_default=True, metavar="SECONDS",
              help="how long nothing listens for an attempt a 'refuse' fault refuses (a refused attempt never "
                   "reaches the server, so it is counted by time; refusing every attempt needs no window)")  # fmt: skip
@click.option("--workers", default="1", show_default=True, metavar="N",
              help="processes serving the port together (Linux, SO_REUSEPORT), for more streams than one process "
                   "keeps on time; each has its own fault schedule, so a retry may meet another worker's")  # fmt: skip
def serve(source: str, host: str, port: int, fault_specs: tuple[str, ...], speed: float, max_connections: int,
          request_timeout: float, max_body_bytes: int, max_pending_bytes: int, refuse_seconds: float,
          workers: str) -> None:  # fmt: skip
    """Serve a cassette (or every cassette in a directory) over real HTTP/1.1, at recorded timing,
    so any client (the SDK, curl, another language) meets the recorded streams and their faults."""
    from ..server import ReplayServer

    count = _workers(workers)
    console = make_console()
    console.on_broken_pipe = functools.partial(_stdout_gone, console)  # type: ignore[method-assign]
    # SIGTERM stops it as Ctrl-C does, from the first moment (with one worker as with several): one that
    # comes while it loads, forks or says it listens ends it as one while it serves does, never as
    # click's "Aborted!" (status 1: "problems found"), never without stopping the workers
    handlers = {number: signal.getsignal(number) for number in (signal.SIGINT, signal.SIGTERM)}  # restored after
    signal.signal(signal.SIGTERM, _interrupt)
    children: list[_Worker] = []
    server: ReplayServer | None = None
    stopped = False  # by Ctrl-C or SIGTERM (else by a failure, already said)
    try:
        cassette = _load_source(source)
        faults = fault_spec(fault_specs)

        def make(port: int, worker: int) -> ReplayServer:
            prefix = f"worker {worker}: " if count > 1 else ""
            return ReplayServer(cassette, host=host, port=port, speed=speed, faults=faults,
                                max_connections=max_connections, request_timeout=request_timeout,
                                max_body_bytes=max_body_bytes, max_pending_bytes=max_pending_bytes,
                                refuse_seconds=refuse_seconds, release_memory=True,
                                reuse_port=count > 1, log=lambda line: print(prefix + line, flush=True))  # fmt: skip

        try:
            server = make(port, 1)
        except OSError as exc:
            fail(f"cannot listen on {host}:{port} ({exc.strerror or exc}); choose another --port or --host")
        except StreamtapeError as exc:
            fail(str(exc))
        if count > 1 and (refusing := _never_connecting(server.session.schedule)):
            fail(f"--fault {refusing[0]} refuses connections (or lets them time out) by closing the port, which "
                 f"other workers keep open: use it with --workers 1")  # fmt: skip
        # What exists now (the cassette, the modules) lives as long as the process: out of the garbage
        # collector's sight, a full collection walks only what serving makes (one walking it all took
        # ~30 ms on a 2-vCPU VM, a stall for every stream). Before the fork, so workers share it unwritten.
        gc.freeze()
        for number in range(2, count + 1):  # one by one: a Ctrl-C between forks still stops those forked
            children.append(_fork_worker(functools.partial(make, server.port, number), server))
        if not _started(children):
            fail("a worker process could not start (its reason is above); nothing is served")
        _say(console, f"streamtape: serving {len(cassette)} interaction(s) from {source} at {server.base_url}")
        if count > 1:
            _say(console, f"{count} worker processes share the port (SO_REUSEPORT), each with its own session: a "
                          "fault schedule counts the attempts each worker sees, and a retry may reach another "
                          "worker (use --workers 1 for attempt sequences)")  # fmt: skip
        if server.session.refusal_due() and not server.session.refuses_forever():
            _say(console, f"note: the first attempt is refused for {refuse_seconds:g} s from now "
                          "(--refuse-seconds): start the client within it")  # fmt: skip
        _say(console, "press Ctrl-C to stop")
        with _signals_held():  # a Ctrl-C inside start() would leave a half-made loop or an unstarted thread
            server.start()
        _wait_for_ctrl_c()
    except KeyboardInterrupt:
        stopped = True
    finally:
        # stopping is bounded (the loop, the log, the workers): another Ctrl-C meanwhile would cut it
        # short with a traceback or "Aborted!" and leave the workers unwaited, so it waits for it
        for number in handlers:
            signal.signal(number, signal.SIG_IGN)
        try:
            if server is not None:
                server.stop()  # also when start() was interrupted, or never ran: it closes the listener
        finally:
            try:
                _stop_workers(children)
                if stopped:  # said while a second Ctrl-C is still ignored
                    _say(console, "streamtape: stopped")
            finally:
                # after a failure (a bad option: click's test runner calls this in its own process) the process's
                # handlers again; once stopped by a signal the process is ending: a second Ctrl-C stays
                # ignored, so it cannot turn a clean stop into death by SIGINT on the way out
                for number, handler in handlers.items() if not stopped else ():
                    signal.signal(number, handler if handler is not None else signal.SIG_DFL)


@contextlib.contextmanager
def _signals_held() -> Any:
    """SIGINT and SIGTERM wait (pending) while this runs, and are acted on once it is done."""
    if not hasattr(signal, "pthread_sigmask"):
        yield
        return
    previous = signal.pthread_sigmask(signal.SIG_BLOCK, {signal.SIGINT, signal.SIGTERM})
    try:
        yield
    finally:
        signal.pthread_sigmask(signal.SIG_SETMASK, previous)


def _say(console: Any, text: str) -> None:
    """One line on stdout, as a courtesy: stdout full (/dev/full) or closed by its reader (``| head -1``)
    never stops or fails the serving, nor the stopping."""
    try:
        console.print(text, markup=False)
    except OSError:
        _stdout_gone(console)


def _stdout_gone(console: Any) -> None:
    """rich's own ``on_broken_pipe`` exits with status 1 (silently): here nothing more is said on
    stdout, and stdout's descriptor is pointed at /dev/null so that the log lines and the flush at exit
    go nowhere rather than fail."""
    console.quiet = True
    with contextlib.suppress(OSError, AttributeError, ValueError):
        devnull = os.open(os.devnull, os.O_WRONLY)
        os.dup2(devnull, sys.stdout.fileno())
        os.close(devnull)


def _workers(value: str) -> int:
    """``--workers``: a whole number from 1 to ``MAX_WORKERS``; more than one only where the kernel
    spreads a port's connections over its listeners (Linux's SO_REUSEPORT)."""
    try:
        count = int(value)
    except ValueError:
        count = 0
    if not 1 <= count <= MAX_WORKERS:
        fail(f"--workers {value}: give a whole number of processes from 1 to {MAX_WORKERS} "
             f"(this machine has {os.cpu_count() or 1} CPUs; more workers than CPUs adds nothing)")  # fmt: skip
    if count > 1 and not sys.platform.startswith("linux"):
        fail(f"--workers {count} needs Linux, where SO_REUSEPORT spreads the connections to a port over the "
             f"processes listening on it; on {sys.platform} run one process per port (--workers 1)")  # fmt: skip
    return count


def _never_connecting(schedule: Any) -> list[str]:
    """The faults of ``schedule`` that make an attempt's connection fail before it is made (refused,
    or timed out): a worker does that by closing the port, which the other workers keep open."""
    from ..engine.session import never_connects
    from ..faults import CATALOGUE

    if schedule is None:
        return []
    found = [fault.spec() for step in schedule.steps for fault in step if never_connects((fault,))]
    for name in getattr(schedule, "pool", ()):  # chaos draws from these
        with contextlib.suppress(Exception):
            if never_connects((CATALOGUE[name](),)):
                found.append(name)
    return found


def _wait_for_ctrl_c() -> None:
    """Wait until a signal's handler raises (Ctrl-C: KeyboardInterrupt; SIGTERM: ``_interrupt``). Python
    runs signal handlers in the main thread only, and a wait without a timeout is not woken when the
    kernel delivered the signal to another thread (the server's block them; a thread of anyone else's
    may not): waking every half second runs a handler that is due, whichever thread took the signal."""
    while True:
        time.sleep(_WAKE_EVERY)


def _interrupt(signum: int, frame: Any) -> None:
    raise KeyboardInterrupt


@dataclass
class _Worker:
    pid: int
    ready: int  # the read end of a pipe the worker writes one byte to once it listens


def _fork_worker(make: Callable[[], Any], parent_server: Any) -> _Worker:
    """A worker process with its own server on the same port (and its own session). It ends when it
    gets SIGINT or SIGTERM, or when this process ends."""
    parent = os.getpid()
    sys.stdout.flush()
    sys.stderr.flush()
    ready, tell = os.pipe()
    pid = os.fork()
    if pid:
        os.close(tell)
        return _Worker(pid, ready)
    status = 0
    try:
        os.close(ready)
        _die_with(parent)
        parent_server._listener.close()  # this process's copy only: the parent keeps listening on it
        signal.signal(signal.SIGTERM, _interrupt)
        with make(), contextlib.suppress(KeyboardInterrupt):
            os.write(tell, b"1")  # listening
            os.close(tell)
            _wait_for_ctrl_c()
    except KeyboardInterrupt:
        pass
    except BaseException as exc:  # noqa: BLE001 - one sentence, never a traceback, and never the parent's code
        print(f"streamtape serve: a worker stopped: {exc}", file=sys.stderr, flush=True)
        status = 1
    finally:
        sys.stdout.flush()
        os._exit(status)


def _die_with(parent: int) -> None:
    """Have the kernel send this process SIGTERM when its parent ends (Linux's PR_SET_PDEATHSIG)."""
    import ctypes

    with contextlib.suppress(OSError, AttributeError):
        ctypes.CDLL(None).prctl(_PR_SET_PDEATHSIG, signal.SIGTERM)
    if os.getppid() != parent:  # it ended before that was set
        raise KeyboardInterrupt


def _started(children: list[_Worker], wait: float = 60.0) -> bool:
    """Whether every worker listens (within ``wait`` seconds): each says so on its pipe, or ends."""
    deadline = time.monotonic() + wait
    for child in children:
        readable, _, _ = select.select([child.ready], [], [], max(0.0, deadline - time.monotonic()))
        said = os.read(child.ready, 1) if readable else b""
        os.close(child.ready)
        if not said:
            return False
    return True


def _stop_workers(children: list[_Worker], wait: float = 10.0) -> None:
    for child in children:
        with contextlib.suppress(ProcessLookupError):
            os.kill(child.pid, signal.SIGTERM)
    deadline = time.monotonic() + wait
    for pid in (child.pid for child in children):
        while True:
            try:
                done, _ = os.waitpid(pid, os.WNOHANG)
            except ChildProcessError:
                break
            if done:
                break
            if time.monotonic() > deadline:
                with contextlib.suppress(ProcessLookupError):
                    os.kill(pid, signal.SIGKILL)
                with contextlib.suppress(ChildProcessError):
                    os.waitpid(pid, 0)
                break
            time.sleep(0.01)


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
