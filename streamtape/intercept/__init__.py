"""Global interception: while a tape is entered, every httpcore2/httpcore connection pool in the
process (so every httpx2/httpx client, sync and async, however deep in the app it was built) routes
its requests through the active tape, and ``streamtape.guard`` blocks every other way to the
network (aiohttp, urllib3, raw sockets) unless the tape's ``allow_hosts`` lets it through.

Which tape is active is per context (a ``contextvars.ContextVar``): each thread and each asyncio task
sees the tapes it entered, innermost first, and inherits those of the code that started it where
Python copies the context (``asyncio.create_task``, ``asyncio.to_thread``, ``anyio.to_thread``,
``loop.run_in_executor``...). Two tests, threads or tasks with different tapes never see each
other's interactions. Code that entered no tape (a plain ``threading.Thread`` the app started) uses
the process's one entered tape; when several are entered elsewhere it cannot know which, and its
request fails with ``AmbiguousTapeError`` rather than guess.

Patching the pool *classes* catches clients created before the tape was entered and proxy pools
(which subclass the pool). The patch is installed with the first active tape and removed with the
last.

The SDKs' retry back-off goes through the tape too: they sleep with ``time.sleep`` / ``anyio.sleep``
looked up in their ``_base_client`` module, and while a tape is entered those names point at a
clock that charges the wait to the tape (``Call.waited``) and, when the tape replays only and runs
at speed 0, does not sleep at all, so "429 twice, then success" replays in milliseconds with the
SDK's own retry logic. A tape that may record waits in real time: the real API is on the other end.
"""

from __future__ import annotations

import contextvars
import importlib
import threading
import time
from types import ModuleType
from typing import TYPE_CHECKING, Any

import anyio

from .. import guard
from ..errors import AmbiguousTapeError
from .handler import ahandle, handle
from .stacks import ORIGINALS, Stack, available_stacks

if TYPE_CHECKING:
    from ..tape import Tape

__all__ = ["active_tape", "install", "uninstall"]


_CONTEXT_TAPES: contextvars.ContextVar[tuple[Tape, ...]] = contextvars.ContextVar("streamtape_tapes", default=())


class _Interceptor:
    """Every entered tape in the process (the patches stay while there is one), and per context the
    tapes that context entered, which is what a request is routed to."""

    def __init__(self) -> None:
        self.lock = threading.Lock()
        self.tapes: list[Tape] = []
        self.patched: list[Stack] = []
        self.clocks: list[tuple[ModuleType, str, Any]] = []  # (module, name, original) to put back

    def install(self, tape: Tape) -> None:
        with self.lock:
            if not self.tapes:
                self.patched = available_stacks()
                for stack in self.patched:
                    _patch(stack, self)
                self.clocks = _patch_sdk_clocks(self)
                guard.install(self.current)
            self.tapes.append(tape)
        _CONTEXT_TAPES.set((*_CONTEXT_TAPES.get(), tape))

    def uninstall(self, tape: Tape) -> None:
        # exited where it was entered, usually; an async fixture may exit in another task, where the
        # entering context's reference is then simply stale (``current`` skips exited tapes)
        _CONTEXT_TAPES.set(tuple(t for t in _CONTEXT_TAPES.get() if t is not tape))
        with self.lock:
            if tape in self.tapes:
                self.tapes.remove(tape)
            if not self.tapes:
                for (cls, name), method in list(ORIGINALS.items()):
                    setattr(cls, name, method)
                ORIGINALS.clear()
                self.patched = []
                for module, name, original in self.clocks:
                    setattr(module, name, original)
                self.clocks = []
                guard.uninstall()

    def current(self) -> Tape | None:
        """The innermost tape this context entered; else the process's only one; else none."""
        entered = self.tapes
        if not entered:
            return None
        for tape in reversed(_CONTEXT_TAPES.get()):
            if tape in entered:
                return tape
        if len(entered) == 1:
            return entered[0]
        # several tapes, entered in other threads or tasks: routing to any of them could pass a test
        # on another test's recording
        raise AmbiguousTapeError(entered)


def _patch(stack: Stack, interceptor: _Interceptor) -> None:
    def handle_request(pool: Any, request: Any) -> Any:
        tape = interceptor.current()
        if tape is None:
            return stack.sync_handle(pool, request)
        return handle(tape, stack, pool, request, stack.sync_handle)

    async def handle_async_request(pool: Any, request: Any) -> Any:
        tape = interceptor.current()
        if tape is None:
            return await stack.async_handle(pool, request)
        return await ahandle(tape, stack, pool, request, stack.async_handle)

    for cls, name, replacement in (
        (stack.core.ConnectionPool, "handle_request", handle_request),
        (stack.core.AsyncConnectionPool, "handle_async_request", handle_async_request),
    ):
        ORIGINALS.setdefault((cls, name), getattr(cls, name))
        setattr(cls, name, replacement)


_SDK_CLIENT_MODULES = ("anthropic._base_client", "openai._base_client")


class _TimeModule:
    """``time`` as an SDK sees it while a tape is entered: ``sleep`` follows the tape's clock."""

    def __init__(self, real: ModuleType, interceptor: _Interceptor) -> None:
        self._real, self._interceptor = real, interceptor

    def __getattr__(self, name: str) -> Any:
        return getattr(self._real, name)

    def sleep(self, seconds: float) -> None:
        tape = self._interceptor.current()
        if tape is not None:
            tape.note_backoff(seconds)
        if (real := _real_seconds(tape, seconds)) > 0:
            self._real.sleep(real)


class _AnyioModule(_TimeModule):
    """``anyio`` as an SDK sees it while a tape is entered: ``sleep`` follows the tape's clock."""

    async def sleep(self, seconds: float) -> None:  # type: ignore[override]
        tape = self._interceptor.current()
        if tape is not None:
            tape.note_backoff(seconds)
        if (real := _real_seconds(tape, seconds)) > 0:
            await self._real.sleep(real)


def _real_seconds(tape: Tape | None, seconds: float) -> float:
    """How long to really wait: a tape that may record waits as long as the SDK asks (the real API is
    on the other end); a replay-only tape waits ``seconds / speed``, and at speed 0 not at all."""
    if tape is None or not tape.offline:
        return seconds
    return seconds / tape.speed if tape.speed > 0 else 0.0


def _patch_sdk_clocks(interceptor: _Interceptor) -> list[tuple[ModuleType, str, Any]]:
    patched = []
    for name in _SDK_CLIENT_MODULES:
        try:
            module = importlib.import_module(name)
        except ImportError:
            continue
        for attribute, shim in (("time", _TimeModule), ("anyio", _AnyioModule)):
            original = getattr(module, attribute, None)
            if original in (time, anyio):
                setattr(module, attribute, shim(original, interceptor))
                patched.append((module, attribute, original))
    return patched


_INTERCEPTOR = _Interceptor()
install = _INTERCEPTOR.install
uninstall = _INTERCEPTOR.uninstall


def active_tape() -> Tape | None:
    """The tape a request made here would go to: the innermost one this thread or task entered, or
    the only one entered in the process; ``None`` when none is entered."""
    return _INTERCEPTOR.current()
