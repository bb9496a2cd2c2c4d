"""Faults only OpenAI's streams have: each is named by its API, and refuses any other stream.

- ``done_early`` (Chat Completions): ``data: [DONE]`` arrives before the last choice chunk (by
  default just before the chunk with the ``finish_reason``), and the body ends there: what a gateway
  that ends a stream on its own timeout sends. The SDK stops reading at ``[DONE]`` and raises
  nothing, so the app takes a cut-off answer, without its finish reason or usage, for a whole one.
- ``response_failed`` (Responses): the stream ends with a ``response.failed`` terminal event (the
  response ``response.created`` announced, with ``status: failed``, an ``error`` with ``code`` and
  ``message`` and the output items finished so far), by default in place of the recorded terminal
  event. The SDK yields it as an event and raises nothing.

What each puts on the wire comes from the request's provider (``streamtape.providers.openai``).
"""

from __future__ import annotations

from dataclasses import dataclass
from typing import ClassVar

from ..errors import ConfigError
from ..providers.openai import DONE, TERMINAL, OpenAIChat, OpenAIResponses
from ..wire import End
from ._plan import Piece, Plan
from .base import CUT, Context, Fault

__all__ = ["DoneEarly", "ResponseFailed"]


@dataclass(frozen=True, kw_only=True)
class _OpenAIFault(Fault):
    """A fault of one OpenAI API's streams: ``after`` places it (the recording's events), and a
    request another provider answers is refused in one sentence."""

    #: the provider names whose streams this fault belongs to (faults of every stream have none)
    providers: ClassVar[tuple[str, ...]] = ()
    #: the provider class whose requests it shapes, and what its API is called
    kind: ClassVar[type] = object
    api: ClassVar[str] = ""
    after: int | None = None

    def __post_init__(self) -> None:
        if self.after is not None and (isinstance(self.after, bool) or not isinstance(self.after, int)
                                       or self.after < 0):  # fmt: skip
            raise ConfigError(f"{self.name}: after={self.after!r} must be a whole number >= 0")

    @property
    def phase(self) -> int:
        return CUT

    def _check(self, context: Context) -> None:
        if not isinstance(context.provider, self.kind):
            raise ConfigError(f"{self.spec()}: a fault of {self.api} streams, but this request is answered by the "
                              f"{context.provider.name!r} provider; give it to {self.api} calls only")  # fmt: skip

    def _recorded(self, plan: Plan) -> list[bytes]:
        """Each event of the recording, as the plan holds it (``[n - 1]``: event ``n``)."""
        out: list[list[bytes]] = [[] for _ in range(plan.events)]
        for piece in plan.pieces:  # an event recorded in many chunks is joined once, not grown per piece
            if piece.event is not None:
                out[piece.event - 1].append(piece.data)
        return [b"".join(parts) for parts in out]

    def _end_with(self, plan: Plan, index: int, event: bytes) -> Plan:
        """Keep the pieces before ``index``, then ``event`` and the clean end a server makes."""
        at = plan.keep(index)
        plan.pieces.append(Piece(event, at))
        plan.announce_length()
        plan.tail = [End(at)]
        return plan


@dataclass(frozen=True, kw_only=True)
class DoneEarly(_OpenAIFault):
    """OpenAI Chat Completions: ``data: [DONE]`` after event ``after`` (default: just before the last
    chunk with choices, the one with the ``finish_reason``), then a clean end."""

    name: ClassVar[str] = "done_early"
    providers: ClassVar[tuple[str, ...]] = ("openai",)
    kind: ClassVar[type] = OpenAIChat
    api: ClassVar[str] = "OpenAI Chat Completions"

    def __call__(self, plan: Plan, context: Context) -> Plan:
        self._check(context)
        after = self.after
        if after is None:
            chunks = [number for number, raw in enumerate(self._recorded(plan), 1) if b'"choices":[{' in raw
                      or any(e.json and e.json.get("choices") for e in plan.framer.events(raw)
                             if isinstance(e.json, dict))]  # fmt: skip
            if not chunks:
                raise ConfigError(f"{self.spec()}: the recorded response has no chunk with choices to end before; "
                                  "give after=N")  # fmt: skip
            after = chunks[-1] - 1
        return self._end_with(plan, plan.position(self.spec(), after=after, at_byte=None), DONE)


@dataclass(frozen=True, kw_only=True)
class ResponseFailed(_OpenAIFault):
    """OpenAI Responses: a ``response.failed`` terminal event with ``error.code`` ``code`` and
    ``message`` (default: the API's server error) after event ``after`` (default: in place of the
    recorded terminal event), then a clean end."""

    name: ClassVar[str] = "response_failed"
    providers: ClassVar[tuple[str, ...]] = ("openai-responses",)
    kind: ClassVar[type] = OpenAIResponses
    api: ClassVar[str] = "OpenAI Responses"
    code: str = "server_error"
    message: str | None = None

    def __post_init__(self) -> None:
        super().__post_init__()
        if not self.code.strip():
            raise ConfigError(f"{self.name}: code={self.code!r}; give the error's code, e.g. server_error, "
                              "rate_limit_exceeded, invalid_prompt")  # fmt: skip

    def __call__(self, plan: Plan, context: Context) -> Plan:
        self._check(context)
        recorded = self._recorded(plan)
        after = self.after
        if after is None:
            names = [next((e.event for e in plan.framer.events(raw)), "") for raw in recorded]
            after = next((n for n, name in enumerate(names) if name in TERMINAL or name == "error"), len(names))
        index = plan.position(self.spec(), after=after, at_byte=None)
        sent = plan.framer.events(b"".join(piece.data for piece in plan.pieces[:index]))
        provider = context.provider
        assert isinstance(provider, OpenAIResponses)
        return self._end_with(plan, index, provider.failed_event(sent, self.code, self.message))
