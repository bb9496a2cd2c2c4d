"""Explicit wiring: an httpx2 (or httpx) transport bound to one tape, with no global patching.

    client = anthropic.Anthropic(http_client=httpx2.Client(transport=tape.transport()))

The transport is the stack's own ``HTTPTransport`` with its connection pool wrapped, so httpx2's
exception mapping runs exactly as in production; recording goes through the real pool.
"""

from __future__ import annotations

from typing import TYPE_CHECKING, Any

from .handler import ahandle, handle
from .stacks import Stack, get_stack

if TYPE_CHECKING:
    from ..tape import Tape

__all__ = ["make_transport"]


class _TapedPool:
    """Stands in for a transport's connection pool; sends through the tape."""

    def __init__(self, tape: Tape, stack: Stack, pool: Any) -> None:
        self.tape, self.stack, self.pool = tape, stack, pool

    def handle_request(self, request: Any) -> Any:
        return handle(self.tape, self.stack, self.pool, request, self.stack.sync_handle)

    async def handle_async_request(self, request: Any) -> Any:
        return await ahandle(self.tape, self.stack, self.pool, request, self.stack.async_handle)

    def __getattr__(self, name: str) -> Any:
        return getattr(self.pool, name)  # close(), __enter__, connections, ...

    def __enter__(self) -> _TapedPool:
        self.pool.__enter__()
        return self

    def __exit__(self, *exc_info: Any) -> None:
        self.pool.__exit__(*exc_info)

    async def __aenter__(self) -> _TapedPool:
        await self.pool.__aenter__()
        return self

    async def __aexit__(self, *exc_info: Any) -> None:
        await self.pool.__aexit__(*exc_info)


def make_transport(tape: Tape, stack_name: str, *, asynchronous: bool, **transport_options: Any) -> Any:
    stack = get_stack(stack_name)
    cls = stack.client.AsyncHTTPTransport if asynchronous else stack.client.HTTPTransport
    transport = cls(**transport_options)
    transport._pool = _TapedPool(tape, stack, transport._pool)  # noqa: SLF001 - the one seam httpx offers
    return transport
