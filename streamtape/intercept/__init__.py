"""Global interception: while a tape is entered, every httpcore2/httpcore connection pool in the
process (so every httpx2/httpx client, sync and async, however deep in the app it was built) routes
its requests through the innermost active tape.

Patching the pool *classes* catches clients created before the tape was entered and proxy pools
(which subclass the pool). The patch is installed with the first active tape and removed with the
last.
"""

from __future__ import annotations

import threading
from typing import TYPE_CHECKING, Any

from .handler import ahandle, handle
from .stacks import Stack, available_stacks

if TYPE_CHECKING:
    from ..tape import Tape

__all__ = ["active_tape", "install", "uninstall"]


class _Interceptor:
    """The process-wide stack of active tapes and the patches that route to the innermost one."""

    def __init__(self) -> None:
        self.lock = threading.Lock()
        self.tapes: list[Tape] = []
        self.patched: list[Stack] = []

    def install(self, tape: Tape) -> None:
        with self.lock:
            if not self.tapes:
                self.patched = available_stacks()
                for stack in self.patched:
                    _patch(stack, self)
            self.tapes.append(tape)

    def uninstall(self, tape: Tape) -> None:
        with self.lock:
            if tape in self.tapes:
                self.tapes.remove(tape)
            if not self.tapes:
                for stack in self.patched:
                    stack.core.ConnectionPool.handle_request = stack.sync_handle
                    stack.core.AsyncConnectionPool.handle_async_request = stack.async_handle
                self.patched = []

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

    stack.core.ConnectionPool.handle_request = handle_request
    stack.core.AsyncConnectionPool.handle_async_request = handle_async_request


_INTERCEPTOR = _Interceptor()
install = _INTERCEPTOR.install
uninstall = _INTERCEPTOR.uninstall


def active_tape() -> Tape | None:
    """The innermost entered tape, if any."""
    return _INTERCEPTOR.current()
