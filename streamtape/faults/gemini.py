"""Faults only a Gemini stream has: a candidate stopped by the API's filters, and a prompt it refuses.

Both end in HTTP 200 with no error, which is what makes them worth a test: google-genai raises nothing,
and the app meets a chunk whose ``text`` is ``None``.

- ``candidate_finish:reason=SAFETY,after=N``: after the recording's event N (default: all but the last),
  a last chunk whose candidate stops with ``reason`` (``SAFETY``, ``RECITATION``, ``PROHIBITED_CONTENT``,
  ``BLOCKLIST``, ``SPII``, ``MALFORMED_FUNCTION_CALL``, ``OTHER``...) and no content;
- ``prompt_blocked:reason=SAFETY``: instead of the answer, one chunk with no candidates and
  ``promptFeedback.blockReason`` (``SAFETY``, ``OTHER``, ``BLOCKLIST``, ``PROHIBITED_CONTENT``).

Their bytes come from the Gemini provider (``GeminiProvider.finish_chunk`` / ``blocked_chunk``), modelled
on the API's documented ``GenerateContentResponse``: no recording of either was found.
"""

from __future__ import annotations

from dataclasses import dataclass
from typing import Any, ClassVar

from ..errors import ConfigError
from ..providers.gemini import GeminiProvider
from ..wire import End
from ._plan import Piece, Plan
from .base import CUT, REPLACE, Context, Fault

__all__ = ["CandidateFinish", "PromptBlocked"]


@dataclass(frozen=True, kw_only=True)
class _GeminiFault(Fault):
    #: the providers whose streams this fault applies to (the fidelity tables list it under them only)
    providers: ClassVar[tuple[str, ...]] = ("gemini",)
    reason: str = "SAFETY"

    def __post_init__(self) -> None:
        if not self.reason or not self.reason.replace("_", "").isalpha() or not self.reason.isupper():
            raise ConfigError(f"{self.name}: reason={self.reason!r} must be one of the API's words in capitals, "
                              "e.g. SAFETY, RECITATION, PROHIBITED_CONTENT, OTHER")  # fmt: skip

    def _provider(self, context: Context) -> GeminiProvider:
        if not isinstance(context.provider, GeminiProvider):
            raise ConfigError(f"{self.spec()}: a Gemini fault, but this request goes to the {context.provider.name!r} "
                              "API; give it when= for the Gemini calls")  # fmt: skip
        return context.provider

    def _recorded(self, plan: Plan, upto: int | None = None) -> dict[str, Any] | None:
        """The last recorded chunk (among the first ``upto``) that parses, for its usage, model and id."""
        if plan.respond is None:
            raise ConfigError(f"{self.spec()}: this attempt has no response to change (an earlier fault replaced it)")
        events = plan.framer.events(b"".join(piece.data for piece in plan.pieces))
        chunks = [e.json for e in events[:upto] if isinstance(e.json, dict)] or \
            [e.json for e in events if isinstance(e.json, dict)]  # fmt: skip
        return chunks[-1] if chunks else None


@dataclass(frozen=True, kw_only=True)
class CandidateFinish(_GeminiFault):
    """After event ``after`` (default: all but the last), the candidate stops with ``reason`` and no
    content, and the stream ends cleanly: a safety stop mid-answer."""

    name: ClassVar[str] = "candidate_finish"
    after: int | None = None

    def __post_init__(self) -> None:
        super().__post_init__()
        if self.after is not None and (isinstance(self.after, bool) or self.after < 0):
            raise ConfigError(f"{self.name}: after={self.after!r} must be a whole number >= 0")

    @property
    def phase(self) -> int:
        return CUT

    def __call__(self, plan: Plan, context: Context) -> Plan:
        provider = self._provider(context)
        after = max(plan.events - 1, 0) if self.after is None else self.after
        index = plan.position(self.spec(), after=after, at_byte=None)
        like = self._recorded(plan, max(after, 1))
        at = plan.keep(index)
        plan.pieces.append(Piece(provider.finish_chunk(self.reason, like), at))
        plan.announce_length()
        plan.tail = [End(at)]
        return plan


@dataclass(frozen=True, kw_only=True)
class PromptBlocked(_GeminiFault):
    """Instead of the answer, one chunk saying the prompt was blocked for ``reason`` (HTTP 200)."""

    name: ClassVar[str] = "prompt_blocked"

    @property
    def phase(self) -> int:
        return REPLACE

    def __call__(self, plan: Plan, context: Context) -> Plan:
        provider = self._provider(context)
        like = self._recorded(plan, 1)
        at = plan.keep(0)
        plan.pieces = [Piece(provider.blocked_chunk(self.reason, like), at)]
        plan.announce_length()
        plan.tail = [End(at)]
        return plan
