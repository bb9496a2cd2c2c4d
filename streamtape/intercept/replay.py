"""The in-process executor: plays one interaction's wire actions as a core (pool-layer) response.

Bytes come out of the response stream in the recorded chunks; a ``Cut`` raises the core exception
the real connection raised, so httpx2's own mapping (and then the SDK) turns it into exactly what the
app saw while recording. Interception is below the SDK: its decoding, error mapping and retries run
as in production.
"""

from __future__ import annotations

from collections.abc import AsyncIterator, Iterator
from typing import Any

from ..clock import Pacer
from ..wire import Action, Cut, Respond, Send
from .stacks import Stack

__all__ = ["ReplayStream", "replay_response", "areplay_response"]


class ReplayStream:
    """A response body that yields recorded chunks, then ends or raises as the recording did."""

    def __init__(self, actions: list[Action], stack: Stack, pacer: Pacer) -> None:
        self.actions = actions
        self.stack = stack
        self.pacer = pacer

    def __iter__(self) -> Iterator[bytes]:
        for action in self.actions:
            self.pacer.wait(action.at)
            if isinstance(action, Send):
                yield action.data
            elif isinstance(action, Cut):
                raise self.stack.error(action.error, action.message)

    async def __aiter__(self) -> AsyncIterator[bytes]:
        for action in self.actions:
            await self.pacer.await_(action.at)
            if isinstance(action, Send):
                yield action.data
            elif isinstance(action, Cut):
                raise self.stack.error(action.error, action.message)

    def close(self) -> None:
        pass

    async def aclose(self) -> None:
        pass


def _response(stack: Stack, head: Respond, body: list[Action], pacer: Pacer) -> Any:
    return stack.core.Response(
        status=head.status,
        headers=[(name.encode("latin-1"), value.encode("latin-1")) for name, value in head.headers],
        content=ReplayStream(body, stack, pacer),
        extensions={"http_version": b"HTTP/1.1", "reason_phrase": head.reason.encode("latin-1")},
    )


def replay_response(stack: Stack, actions: list[Action], speed: float) -> Any:
    """The core response for ``actions`` (sync); raises at once if they fail before headers."""
    pacer = Pacer(speed)
    head = actions[0]
    pacer.wait(head.at)
    if isinstance(head, Cut):
        raise stack.error(head.error, head.message)
    assert isinstance(head, Respond)
    return _response(stack, head, actions[1:], pacer)


async def areplay_response(stack: Stack, actions: list[Action], speed: float) -> Any:
    pacer = Pacer(speed)
    head = actions[0]
    await pacer.await_(head.at)
    if isinstance(head, Cut):
        raise stack.error(head.error, head.message)
    assert isinstance(head, Respond)
    return _response(stack, head, actions[1:], pacer)
