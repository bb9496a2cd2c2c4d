"""Fail closed: while a tape is entered, no request that streamtape cannot record or replay reaches the
network unnoticed.

streamtape records and replays what goes through httpx2/httpx (their connection pools) and aiohttp
(its connector: plain ``aiohttp.ClientSession`` code, both SDKs' ``DefaultAioHttpClient``, LiteLLM,
google-genai; ``streamtape.stacks.aiohttp``, which lets ``allow_hosts`` through itself). Everything else
an app might use is guarded at two layers while any tape is entered:

- **transport patches** with the best message: urllib3's ``HTTPConnectionPool.urlopen``
  (``requests``, boto3) under urllib3 1.x, when those libraries are imported, raise
  ``NetworkBlockedError`` naming the request before anything is sent (urllib3 2.x is recorded and
  replayed: ``streamtape.stacks.urllib3``);
- **a socket guard** under everything: ``socket.socket.connect`` / ``connect_ex`` refuse any TCP/UDP
  connection (loopback included) that streamtape itself did not open for a recording, so a library
  imported after the tape was entered, or one nobody thought of, fails the same way (except the
  loopback connection ``socket.socketpair`` makes where the platform has no socketpair: Windows,
  for every asyncio event loop's self-pipe).

A test that must reach its own services (a database on 127.0.0.1, a local health check) names them in
``allow_hosts``: host names, IP addresses or ``*`` patterns (``"localhost"``, ``"127.0.0.1"``,
``"*.internal"``). Requests to them pass through untouched: neither recorded nor blocked. Loopback is
blocked unless listed, because the "real server" of a test is often on 127.0.0.1 too.

``NetworkBlockedError`` is a ``StreamtapeError`` (a ``BaseException``), so neither an SDK's retry loop
nor an app's ``except Exception`` can swallow it.

Which tape's rules apply is decided per context, as for requests (``streamtape.intercept``): the tape the
thread or task entered; in code that entered none (a thread the app started, before or after the tape),
the process's one entered tape, so such a thread is blocked exactly as the test's own code is. With
several tapes entered elsewhere, its connection goes through when every one of them allows the host, and
raises ``AmbiguousTapeError`` (naming the connection) otherwise.
"""

from __future__ import annotations

import contextvars
import fnmatch
import functools
import socket
import sys
import threading
from collections.abc import Callable, Iterable, Iterator
from contextlib import contextmanager
from typing import TYPE_CHECKING, Any

from .errors import AmbiguousTapeError, ConfigError, NetworkBlockedError

if TYPE_CHECKING:
    from .tape import Tape

__all__ = ["AllowList", "forwarding", "install", "uninstall"]

#: set while streamtape itself sends a request on to the network to record it
_FORWARDING: contextvars.ContextVar[bool] = contextvars.ContextVar("streamtape_forwarding", default=False)


@contextmanager
def forwarding() -> Iterator[None]:
    """Connections opened inside are streamtape's own (a recording): the socket guard lets them through."""
    token = _FORWARDING.set(True)
    try:
        yield
    finally:
        _FORWARDING.reset(token)


class AllowList:
    """Hosts a test may reach while its tape is entered: exact names or addresses, or ``*`` patterns."""

    def __init__(self, hosts: Iterable[str] | None) -> None:
        if isinstance(hosts, str):
            hosts = [hosts]
        patterns = []
        for host in hosts or ():
            if not isinstance(host, str) or not host.strip():
                raise ConfigError(
                    f"allow_hosts: {host!r} is not a host; give names, addresses or patterns such as "
                    "['localhost', '127.0.0.1', '*.internal']"
                )
            patterns.append(host.strip().lower().strip("[]"))
        self.patterns = tuple(patterns)
        self._addresses: set[str] | None = None

    def __bool__(self) -> bool:
        return bool(self.patterns)

    def allows(self, host: str, *, resolve: bool = True) -> bool:
        """Whether ``host`` is listed. The socket guard sees addresses, so it also accepts the addresses
        the listed names resolve to; an HTTP request (``resolve=False``) must name a listed host itself:
        ``localhost`` listed for a health check must not let the API faked on ``127.0.0.1`` through
        unrecorded."""
        host = host.lower().strip("[]")
        if any(fnmatch.fnmatchcase(host, pattern) for pattern in self.patterns):
            return True
        return resolve and host in self._resolved()

    def _resolved(self) -> set[str]:
        """The addresses the listed names resolve to: the socket guard sees addresses, not names."""
        if self._addresses is None:
            addresses: set[str] = set()
            for pattern in self.patterns:
                if "*" in pattern or "?" in pattern:
                    continue
                try:
                    infos = socket.getaddrinfo(pattern, None)
                except (OSError, UnicodeError):
                    continue
                addresses.update(str(info[4][0]) for info in infos)
            self._addresses = addresses
        return self._addresses


def _blocked(tape: Tape, what: str, library: str) -> NetworkBlockedError:
    mode = tape.record_mode.value
    return NetworkBlockedError(
        f"{what}: streamtape blocked this request while tape {tape.path} (record mode '{mode}') is active: "
        f"{library} is not recorded or replayed by streamtape, and a test must not reach the network "
        "unnoticed. Send it through an httpx2/httpx or aiohttp client (anthropic.Anthropic() / "
        "AsyncAnthropic(), with or without DefaultAioHttpClient), or let the host through unrecorded "
        "with allow_hosts=[...] "
        "(pytest: @pytest.mark.tape(allow_hosts=[...]) or the tape_allow_hosts ini option)."
    )


class _Guard:
    """The patches, installed while any tape is entered; ``current`` names the tape of this context."""

    def __init__(self) -> None:
        self.lock = threading.Lock()
        self.undo: list[Callable[[], None]] = []
        self.current: Callable[[], Tape | None] = lambda: None
        self.entered: Callable[[], Iterable[Tape]] = lambda: ()

    def install(self, current: Callable[[], Tape | None], entered: Callable[[], Iterable[Tape]] = tuple) -> None:
        """``current``: the tape of the calling context (``AmbiguousTapeError`` where several could be
        meant); ``entered``: every tape entered in the process."""
        with self.lock:
            if self.undo:
                return
            self.current, self.entered = current, entered
            self.undo = [_patch_socket(self)]
            if "urllib3" in sys.modules:
                self.undo.append(_patch_urllib3(self))

    def uninstall(self) -> None:
        with self.lock:
            for undo in reversed(self.undo):
                undo()
            self.undo = []

    def check(self, host: str, what: Callable[[], str], library: str) -> None:
        """Raise ``NetworkBlockedError`` unless a tape is off, streamtape is recording, or ``host`` is allowed."""
        if _FORWARDING.get():
            return
        try:
            tape = self.current()
        except AmbiguousTapeError as exc:  # no tape here, several elsewhere: pass only what all of them allow
            tapes = list(self.entered())
            if tapes and all(tape.allow_hosts.allows(host) for tape in tapes):
                return
            exc.args = (f"{what()}: {exc.args[0] if exc.args else exc}",)
            raise
        if tape is None or tape.allow_hosts.allows(host):
            return
        raise _blocked(tape, what(), library)


def _patch_socket(guard: _Guard) -> Callable[[], None]:
    originals = {name: getattr(socket.socket, name) for name in ("connect", "connect_ex")}

    def wrap(name: str) -> Any:
        original = originals[name]

        @functools.wraps(original)
        def guarded(sock: socket.socket, address: Any, *args: Any) -> Any:
            if sock.family in (socket.AF_INET, socket.AF_INET6) and isinstance(address, tuple):
                host, port = str(address[0]), address[1]
                guard.check(host, lambda: f"a connection to {host}:{port}", "this socket connection")
            return original(sock, address, *args)

        return guarded

    for name in originals:
        setattr(socket.socket, name, wrap(name))
    # where the platform has no socketpair (Windows), Python makes one by connecting to a listener of its
    # own on loopback: that is the process talking to itself (every asyncio event loop makes one), not
    # the network
    original_pair = socket.socketpair

    @functools.wraps(original_pair)
    def socketpair(*args: Any, **kwargs: Any) -> Any:
        with forwarding():
            return original_pair(*args, **kwargs)

    socket.socketpair = socketpair

    def undo() -> None:
        for name, original in originals.items():
            setattr(socket.socket, name, original)
        if socket.socketpair is socketpair:
            socket.socketpair = original_pair

    return undo


def _patch_urllib3(guard: _Guard) -> Callable[[], None]:
    """urllib3 2.x is recorded and replayed by its stack adapter (``streamtape.stacks.urllib3``), which
    also lets ``allow_hosts`` through: only urllib3 1.x, which it does not adapt, is blocked here."""
    import urllib3.connectionpool

    if int(urllib3.__version__.split(".")[0]) >= 2:
        return lambda: None
    cls = urllib3.connectionpool.HTTPConnectionPool
    original = cls.urlopen

    @functools.wraps(original)
    def urlopen(pool: Any, method: str, url: str, *args: Any, **kwargs: Any) -> Any:
        def what() -> str:
            port = f":{pool.port}" if pool.port else ""
            return f"{method} {pool.scheme}://{pool.host}{port}{url if url.startswith('/') else ''}"

        guard.check(str(pool.host or ""), what, "urllib3 (requests, boto3)")
        return original(pool, method, url, *args, **kwargs)

    cls.urlopen = urlopen  # type: ignore[method-assign,assignment]

    def undo() -> None:
        cls.urlopen = original  # type: ignore[method-assign]

    return undo


_GUARD = _Guard()
install = _GUARD.install
uninstall = _GUARD.uninstall
check = _GUARD.check
