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
from ..wire import Action, Chunks, Cut, Respond, Send, expand
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
            if isinstance(action, Chunks) and self.pacer.speed == 0:
                yield from _instant(action)  # the hot path: no clock, no objects per chunk
                continue
            for step in expand((action,)):
                self.pacer.wait(step.at)
                yield from self._perform(step)

    async def __aiter__(self) -> AsyncIterator[bytes]:
        for action in self.actions:
            if isinstance(action, Chunks) and self.pacer.speed == 0:
                for piece in _instant(action):
                    yield piece
                continue
            for step in expand((action,)):
                await self.pacer.await_(step.at)
                for piece in self._perform(step):
                    yield piece

    def _perform(self, action: Action) -> Iterator[bytes]:
        if isinstance(action, Send):
            yield action.data
        elif isinstance(action, Cut):
            raise self.stack.error(action.error, action.message)

    def close(self) -> None:
        pass

    async def aclose(self) -> None:
        pass


def _instant(run: Chunks) -> Iterator[bytes]:
    data, pos = run.data, 0
    for _, size in run.timing:
        yield data[pos : pos + size]
        pos += size


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
