"""Measure the exception chains a real socket gives, for every cut kind streamtape replays, and print JSON.

    python scripts/measure_chains.py                     # this environment (httpcore2 / httpx2, ...)
    /tmp/legacy-venv/bin/python scripts/measure_chains.py  # the legacy one (httpcore / httpx)
    python scripts/measure_chains.py --stack httpcore --repeat 5

Every scenario is provoked for real, over sockets on 127.0.0.1, by a small server in this file:

- ``refused``: a port nothing listens on (bound, then closed);
- ``connect_timeout``: a listener with backlog 0 whose accept queue is full, so SYNs are dropped
  (checked before use: a probe connection must time out), and a short connect timeout;
- ``fin`` / ``reset`` / ``timeout`` before the headers: the server reads the request, then closes
  (FIN), aborts (RST via ``SO_LINGER`` 0) or stays silent (the client's read timeout fires);
- the same mid-body, after the head and the first of two SSE events (``EVENTS``), per framing:
  ``chunked``, ``content-length`` (announcing both events) and ``close`` (close-delimited: a FIN is
  its clean end);
- ``write_error`` / ``write_timeout``: while a 32 MiB request body is sent, the server (which read
  only the head) resets the connection, or stops reading until the client's write timeout fires;
- ``pool_timeout``: the pool's only connection (``max_connections=1``) is busy with a response that
  never ends, so the next request waits out the pool timeout.

The server waits a little before the cut, so the client has read what was sent and waits in its
next read. For each, sync and async (asyncio through anyio; ``--trio`` adds trio), the exception is
caught at two levels:

- ``core``: ``ConnectionPool.handle_request`` / ``AsyncConnectionPool.handle_async_request`` of
  httpcore2 or httpcore, and the iteration of the response stream it returns: exactly the calls
  streamtape replaces, so the exception the replay must raise;
- ``client``: httpx2 or httpx above it (``Client.stream`` and ``iter_bytes``), what the SDK gets.

Each exception is written as its module-qualified class, ``str()``, ``args``, ``__suppress_context__``,
then its ``__cause__`` and ``__context__`` the same way (recursively; a context that is the cause is
written ``"=cause"``, an exception met before ``"<cycle>"``). The server's port is written ``PORT``, the
id in anyio's "Cancelled via cancel scope 7f..." (a memory address) ``ADDR``.
Each scenario runs ``--repeat`` times; ``"stable": false`` marks one whose chain varied between runs.
With ``--outer`` every request is made while the app handles an exception of its own, written
``"<outer>"`` where it appears in a chain.
"""

from __future__ import annotations

import argparse
import importlib
import importlib.util
import json
import platform
import re
import selectors
import socket
import struct
import sys
import threading
import time
from collections.abc import Callable, Iterator
from contextlib import contextmanager, suppress
from functools import partial
from importlib.metadata import version
from typing import Any

import anyio

STACKS = {"httpcore2": "httpx2", "httpcore": "httpx"}
TIMEOUT = 0.3  # the client's read / connect timeout where one must fire
SETTLE = 0.15  # the server's pause before the cut: the client has read what was sent and waits
#: the body the server means to send: two SSE events, of which it sends the first before the cut
EVENTS = (b'event: ping\ndata: {"type": "ping"}\n\n', b'event: ping\ndata: {"type": "ping", "n": 2}\n\n')
#: the response head per framing, as (name, value) pairs
HEADERS: dict[str, tuple[tuple[str, str], ...]] = {
    "chunked": (("Content-Type", "text/event-stream"), ("Transfer-Encoding", "chunked")),
    "content-length": (("Content-Type", "text/event-stream"), ("Content-Length", str(len(b"".join(EVENTS))))),
    "close": (("Content-Type", "text/event-stream"), ("Connection", "close")),
}

#: scenario -> what the server does: "refused", "connect_timeout", or (the framing of the head and first
#: event it sends, None: none; then "fin" / "rst" / "silence" / "deaf": silent and never reading)
SCENARIOS: dict[str, Any] = {
    "refused": "refused",
    "connect_timeout": "connect_timeout",
    "fin/before": (None, "fin"),
    "reset/before": (None, "rst"),
    "timeout/before": (None, "silence"),
    "fin/chunked": ("chunked", "fin"),
    "fin/content-length": ("content-length", "fin"),
    "fin/close": ("close", "fin"),
    "reset/chunked": ("chunked", "rst"),
    "reset/content-length": ("content-length", "rst"),
    "reset/close": ("close", "rst"),
    "timeout/chunked": ("chunked", "silence"),
    "timeout/content-length": ("content-length", "silence"),
    "timeout/close": ("close", "silence"),
    # while the request body is sent: the server reads only the head, then resets / stops reading
    "write_error": (None, "rst"),
    "write_timeout": (None, "deaf"),
    # the client's pool (one connection) is busy with a response that never ends
    "pool_timeout": ("chunked", "silence"),
}
#: the request body's size: a few bytes, or (while the body is sent) more than loopback buffers hold
LARGE = 32 << 20


def body_size(scenario: str) -> int:
    return LARGE if scenario.startswith("write_") else 2


# --- the chain -------------------------------------------------------------------------------------


def qualname(exc: BaseException) -> str:
    return f"{type(exc).__module__}.{type(exc).__qualname__}"


def chain(exc: BaseException | None, port: int | None, seen: set[int] | None = None) -> Any:
    """``exc`` and everything behind it, as JSON-able data."""
    if exc is None:
        return None
    seen = set() if seen is None else seen
    if isinstance(exc, Outer):
        return "<outer>"
    if id(exc) in seen:
        return "<cycle>"
    seen.add(id(exc))
    node: dict[str, Any] = {
        "class": qualname(exc),
        "str": _portless(str(exc), port),
        "args": [_arg(arg, exc, port) for arg in exc.args],
        "suppress_context": exc.__suppress_context__,
    }
    if isinstance(exc, OSError):
        node["errno"] = exc.errno
    if isinstance(exc, BaseExceptionGroup):
        node["exceptions"] = [chain(inner, port, seen) for inner in exc.exceptions]
    node["cause"] = chain(exc.__cause__, port, seen)
    if exc.__context__ is not None and exc.__context__ is exc.__cause__:
        node["context"] = "=cause"
    else:
        node["context"] = chain(exc.__context__, port, seen)
    return node


def _arg(arg: Any, owner: BaseException, port: int | None) -> Any:
    if isinstance(arg, BaseException):
        same = "cause" if arg is owner.__cause__ else "context" if arg is owner.__context__ else None
        return {"exception": qualname(arg), "str": _portless(str(arg), port), "is": same}
    if isinstance(arg, str):
        return _portless(arg, port)
    return arg if isinstance(arg, int | float | bool | type(None)) else _portless(repr(arg), port)


def _portless(text: str, port: int | None) -> str:
    """The server's port as ``PORT``, and anyio's cancel scope's id (a memory address) as ``ADDR``."""
    text = re.sub(r"(cancel scope )[0-9a-f]+", r"\1ADDR", text)
    return text if port is None else re.sub(rf"\b{port}\b", "PORT", text)


# --- the misbehaving server ------------------------------------------------------------------------


class Server:
    """Accepts on 127.0.0.1; each connection: read one request's head, then (optionally) a response head
    and the first event, wait ``SETTLE``, then ``end``: ``fin``, ``rst``, ``silence`` (reading until the client closes)
    or ``deaf`` (silent, never reading: the client's writes block)."""

    def __init__(self, framing: str | None, end: str) -> None:
        self.framing, self.end = framing, end
        self.listener = socket.create_server(("127.0.0.1", 0), backlog=16)
        self.listener.settimeout(0.05)
        self.port = int(self.listener.getsockname()[1])
        self.stopping = threading.Event()
        self.threads: list[threading.Thread] = []
        self.acceptor = threading.Thread(target=self._accept, daemon=True)

    def __enter__(self) -> Server:
        self.acceptor.start()
        return self

    def __exit__(self, *exc_info: object) -> None:
        self.stopping.set()
        self.acceptor.join(5)
        for thread in self.threads:
            thread.join(5)
        self.listener.close()

    def _accept(self) -> None:
        while not self.stopping.is_set():
            try:
                sock, _ = self.listener.accept()
            except TimeoutError:
                continue
            thread = threading.Thread(target=self._serve, args=(sock,), daemon=True)
            self.threads.append(thread)
            thread.start()

    def _serve(self, sock: socket.socket) -> None:
        try:
            data = b""
            while b"\r\n\r\n" not in data:
                piece = sock.recv(65536)
                if not piece:
                    return
                data += piece
            if self.framing is not None:
                head = "".join(f"{name}: {value}\r\n" for name, value in HEADERS[self.framing])
                first = EVENTS[0]
                body = b"%x\r\n%s\r\n" % (len(first), first) if self.framing == "chunked" else first
                sock.sendall(f"HTTP/1.1 200 OK\r\n{head}\r\n".encode("ascii") + body)
            time.sleep(SETTLE)
            if self.end == "deaf":
                self.stopping.wait()
            elif self.end == "silence":
                with selectors.DefaultSelector() as selector:
                    selector.register(sock, selectors.EVENT_READ)
                    while not self.stopping.is_set():
                        if selector.select(0.05) and not sock.recv(65536):
                            return
        except OSError:
            pass
        finally:
            if self.end == "rst":
                with suppress(OSError):
                    sock.setsockopt(socket.SOL_SOCKET, socket.SO_LINGER, struct.pack("ii", 1, 0))
            else:
                with suppress(OSError):
                    sock.shutdown(socket.SHUT_RDWR)
            sock.close()


@contextmanager
def target(behaviour: Any) -> Iterator[int]:
    """A port on 127.0.0.1 that behaves as the scenario says."""
    if behaviour == "refused":
        with socket.create_server(("127.0.0.1", 0)) as listener:
            port = int(listener.getsockname()[1])
        yield port
    elif behaviour == "connect_timeout":
        with full_listener() as port:
            yield port
    else:
        with Server(*behaviour) as server:
            yield server.port


@contextmanager
def full_listener() -> Iterator[int]:
    """A listener (backlog 0, never accepting) whose accept queue is full: new SYNs are dropped."""
    listener = socket.socket(socket.AF_INET, socket.SOCK_STREAM)
    fillers: list[socket.socket] = []
    try:
        listener.bind(("127.0.0.1", 0))
        listener.listen(0)
        address = listener.getsockname()
        for _ in range(16):
            filler = socket.socket(socket.AF_INET, socket.SOCK_STREAM)
            filler.setblocking(False)
            filler.connect_ex(address)
            fillers.append(filler)
            time.sleep(0.02)
            probe = socket.socket(socket.AF_INET, socket.SOCK_STREAM)
            probe.settimeout(0.1)
            try:
                probe.connect(address)
            except TimeoutError:
                break  # the queue is full: this SYN was dropped
            except OSError:
                pass
            finally:
                probe.close()
        else:
            raise RuntimeError("could not fill the accept queue: no connect timeout on this machine")
        yield int(address[1])
    finally:
        for filler in fillers:
            filler.close()
        listener.close()


# --- the two levels, sync and async ----------------------------------------------------------------


def _timeouts() -> dict[str, float]:
    return {"connect": TIMEOUT, "read": TIMEOUT, "write": TIMEOUT, "pool": TIMEOUT}


def _headers(url: str, size: int) -> list[tuple[bytes, bytes]]:
    """The headers httpx would add: httpcore sends what it is given."""
    return [(b"Host", url.split("/")[2].encode("ascii")), (b"Content-Length", str(size).encode("ascii"))]


def core_sync(core: Any, url: str, size: int, hold: bool) -> BaseException | None:
    with core.ConnectionPool(max_connections=1) as pool:
        if hold:  # the pool's only connection stays busy: the request waits for the pool timeout
            pool.handle_request(core.Request("POST", url, headers=_headers(url, 2), content=b"{}"))
        request = core.Request("POST", url, headers=_headers(url, size), content=b"x" * size,
                               extensions={"timeout": _timeouts()})  # fmt: skip
        try:
            response = pool.handle_request(request)
            try:
                for _ in response.stream:
                    pass
            finally:
                response.close()
        except Exception as exc:  # noqa: BLE001 - the point
            return exc
    return None


async def core_async(core: Any, url: str, size: int, hold: bool) -> BaseException | None:
    async with core.AsyncConnectionPool(max_connections=1) as pool:
        if hold:
            await pool.handle_async_request(core.Request("POST", url, headers=_headers(url, 2), content=b"{}"))
        request = core.Request("POST", url, headers=_headers(url, size), content=b"x" * size,
                               extensions={"timeout": _timeouts()})  # fmt: skip
        try:
            response = await pool.handle_async_request(request)
            try:
                async for _ in response.stream:
                    pass
            finally:
                await response.aclose()
        except Exception as exc:  # noqa: BLE001
            return exc
    return None


def client_sync(http: Any, url: str, size: int, hold: bool) -> BaseException | None:
    with http.Client(timeout=TIMEOUT, limits=http.Limits(max_connections=1)) as client:
        if hold:
            client.send(client.build_request("POST", url, content=b"{}"), stream=True)
        try:
            with client.stream("POST", url, content=b"x" * size) as response:
                for _ in response.iter_bytes():
                    pass
        except Exception as exc:  # noqa: BLE001
            return exc
    return None


async def client_async(http: Any, url: str, size: int, hold: bool) -> BaseException | None:
    async with http.AsyncClient(timeout=TIMEOUT, limits=http.Limits(max_connections=1)) as client:
        if hold:
            await client.send(client.build_request("POST", url, content=b"{}"), stream=True)
        try:
            async with client.stream("POST", url, content=b"x" * size) as response:
                async for _ in response.aiter_bytes():
                    pass
        except Exception as exc:  # noqa: BLE001
            return exc
    return None


class Outer(Exception):
    """With ``--outer``: the exception the app is handling while it makes the request."""


def measure(scenario: str, call: Callable[..., Any], backend: str | None, outer: bool) -> Any:
    with target(SCENARIOS[scenario]) as port:
        url = f"http://127.0.0.1:{port}/v1/messages"
        exc = invoke(call, url, body_size(scenario), scenario == "pool_timeout", backend=backend, outer=outer)
        return chain(exc, port)


def invoke(call: Callable[..., Any], *args: Any, backend: str | None, outer: bool = False) -> Any:
    """``call(*args)``: sync (``backend`` None) or in a new event loop, and with ``outer`` while the
    caller handles an exception of its own (an ``Outer``)."""
    if backend is None:
        return _within(call, *args) if outer else call(*args)
    return anyio.run(_awithin if outer else _await, call, *args, backend=backend)


def _within(call: Callable[..., Any], *args: Any) -> Any:
    try:
        raise Outer("the app was handling this")
    except Outer:
        return call(*args)


async def _awithin(call: Callable[..., Any], *args: Any) -> Any:
    try:
        raise Outer("the app was handling this")
    except Outer:
        return await call(*args)


async def _await(call: Callable[..., Any], *args: Any) -> Any:
    return await call(*args)


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--stack", action="append", choices=sorted(STACKS), help="default: every one installed")
    parser.add_argument("--scenario", action="append", choices=sorted(SCENARIOS), help="default: all")
    parser.add_argument("--repeat", type=int, default=2, help="runs per scenario (default 2)")
    parser.add_argument("--trio", action="store_true", help="also async under trio (key 'async/trio')")
    parser.add_argument("--outer", action="store_true", help="request while handling an exception ('<outer>')")
    options = parser.parse_args()
    stacks = options.stack or [name for name in STACKS if importlib.util.find_spec(name)]
    packages = ("anthropic", "anyio", "h11", *stacks, *(STACKS[name] for name in stacks))
    report: dict[str, Any] = {
        "platform": platform.platform(),
        "python": platform.python_version(),
        "versions": {name: version(name) for name in packages if importlib.util.find_spec(name)},
        "stacks": {},
    }
    for name in stacks:
        core, http = importlib.import_module(name), importlib.import_module(STACKS[name])
        results: dict[str, Any] = {}
        for scenario in options.scenario or SCENARIOS:
            entry: dict[str, Any] = {}
            modes = [("sync", None), ("async", "asyncio"), *([("async/trio", "trio")] if options.trio else [])]
            for mode, backend in modes:
                levels = {
                    "core": partial(core_async if backend else core_sync, core),
                    "client": partial(client_async if backend else client_sync, http),
                }
                for level, call in levels.items():
                    runs = [measure(scenario, call, backend, options.outer) for _ in range(max(options.repeat, 1))]
                    stable = all(run == runs[0] for run in runs)
                    entry.setdefault(mode, {})[level] = runs[0] if stable else {"stable": False, "runs": runs}
            results[scenario] = entry
            print(f"{name} {scenario}: done", file=sys.stderr)
        report["stacks"][name] = results
    json.dump(report, sys.stdout, indent=1)
    print()


if __name__ == "__main__":
    main()
