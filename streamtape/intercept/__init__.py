"""Global interception: while a tape is entered, every httpcore2/httpcore connection pool in the
process (so every httpx2/httpx client, sync and async, however deep in the app it was built) routes
its requests through the innermost active tape, and ``streamtape.guard`` blocks every other way to the
network (aiohttp, urllib3, raw sockets) unless the tape's ``allow_hosts`` lets it through.

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

import importlib
import threading
import time
from types import ModuleType
from typing import TYPE_CHECKING, Any

import anyio

from .. import guard
from .handler import ahandle, handle
from .stacks import ORIGINALS, Stack, available_stacks

if TYPE_CHECKING:
    from ..tape import Tape

__all__ = ["active_tape", "install", "uninstall"]


class _Interceptor:
    """The process-wide stack of active tapes and the patches that route to the innermost one."""

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

    def uninstall(self, tape: Tape) -> None:
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
        tapes = self.tapes
        return tapes[-1] if tapes else None


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
    """The innermost entered tape, if any."""
    return _INTERCEPTOR.current()
