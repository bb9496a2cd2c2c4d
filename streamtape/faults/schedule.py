"""Which faults each request meets: the same ones every time, a sequence across attempts, or chaos.

Requests count in the order the tape receives them (an SDK retry is the next request), and only
requests the schedule's ``when`` pattern matches ("POST /v1/messages", a regular expression searched
in "METHOD URL") count. Without ``when``, a schedule shapes the model API calls only (the registered
providers' ``requests``, ``streamtape.providers.api_requests()``): an app's own background requests
(a price list, a health check, telemetry) do not use up its "429 twice".
"""

from __future__ import annotations

import random
import re
from collections.abc import Sequence
from dataclasses import dataclass, fields

from ..errors import ConfigError
from ..providers import api_requests
from ..wire import Action
from ._plan import Plan
from .base import CATALOGUE, CONTENT, Context, Fault, check_params

__all__ = ["API_REQUESTS", "Chaos", "Schedule", "apply", "positions"]

#: What faults shape when no ``when=`` is given, as the built-in providers say: a POST to a model API
#: endpoint (Anthropic Messages, OpenAI Chat Completions / Responses / Completions, Gemini
#: generateContent, Bedrock Converse and InvokeModel, Ollama), under any host or path prefix (proxies,
#: Azure deployments, gateways). Schedules ask ``providers.api_requests()`` each time, so a provider
#: registered later counts too.
API_REQUESTS = api_requests()

Step = tuple[Fault, ...]


@dataclass(frozen=True)
class Schedule:
    """``steps[i]`` for the i-th request (``every``: ``steps[0]`` for all of them); past the end, none."""

    steps: tuple[Step, ...]
    every: bool = False
    when: str | None = None

    def __post_init__(self) -> None:
        if self.when is not None:
            try:
                re.compile(self.when)
            except re.error as exc:
                raise ConfigError(f"faults: when={self.when!r} is not a valid regular expression ({exc})") from None

    def applies_to(self, method: str, url: str) -> bool:
        return re.search(self.when or api_requests(), f"{method} {url}") is not None

    def faults_for(self, index: int) -> Step:
        """The faults for the ``index``-th (0-based) request this schedule applies to."""
        if self.every:
            return self.steps[0] if self.steps else ()
        return self.steps[index] if index < len(self.steps) else ()

    def spec(self) -> str:
        return " -> ".join(" + ".join(f.spec() for f in step) or "ok" for step in self.steps)


@dataclass(frozen=True)
class Chaos(Schedule):
    """Each request, with probability ``p``, meets one fault drawn from ``pool`` (reproducible by seed)."""

    p: float = 0.2
    seed: int = 0
    pool: tuple[str, ...] = ("refuse", "rate_limit", "overloaded", "disconnect", "reset", "stall", "error_event",
                             "truncate")  # fmt: skip

    def __post_init__(self) -> None:
        super().__post_init__()
        if isinstance(self.p, bool) or not isinstance(self.p, (int, float)) or not 0 <= self.p <= 1:
            raise ConfigError(f"chaos: p={self.p!r} must be a probability between 0 and 1")
        unknown = [name for name in self.pool if name not in CATALOGUE]
        if unknown:
            raise ConfigError(f"chaos: unknown faults {unknown} in pool; valid: {', '.join(CATALOGUE)}")
        for name in self.pool:  # chaos draws a fault with its defaults: one that needs parameters cannot be
            try:
                check_params(CATALOGUE[name], {})
            except ConfigError as exc:
                raise ConfigError(f"chaos: {name} in pool cannot be drawn with its defaults ({exc})") from None

    def faults_for(self, index: int) -> Step:
        rng = random.Random(f"{self.seed}:{index}")
        if rng.random() >= self.p:
            return ()
        return (_Drawn(kind=rng.choice(self.pool), fraction=rng.random()),)

    def spec(self) -> str:
        return f"chaos:p={self.p},seed={self.seed}"


@dataclass(frozen=True, kw_only=True)
class _Drawn(Fault):
    """A chaos fault whose position is drawn as a fraction of the response's events."""

    kind: str = "disconnect"
    fraction: float = 0.5

    @property
    def phase(self) -> int:
        return 0

    def resolve(self, plan: Plan) -> Fault:
        cls = CATALOGUE[self.kind]
        positioned = "after" in {f.name for f in fields(cls)}  # type: ignore[arg-type]
        if positioned and plan.respond is not None and plan.events:
            return cls(after=int(self.fraction * plan.events))  # type: ignore[call-arg]
        return cls()

    def __call__(self, plan: Plan, context: Context) -> Plan:
        return self.resolve(plan)(plan, context)

    def spec(self) -> str:
        return f"{self.kind}(chaos)"


def positions(schedule: Schedule) -> list[tuple[Fault, str, int]]:
    """Every fixed position the schedule's faults name: ``(fault, "after" | "at_byte" | "event", value)``."""
    found = []
    for step in schedule.steps:
        for fault in step:
            for kind in ("after", "at_byte", "event"):
                value = getattr(fault, kind, None)
                if isinstance(value, int) and not isinstance(value, bool):
                    found.append((fault, kind, value))
    return found


def apply(faults: Sequence[Fault], actions: list[Action], context: Context) -> list[Action]:
    """``actions`` as the faults reshape them; no faults, no work (the replay fast path stays)."""
    if not faults:
        return actions
    plan = Plan.from_actions(actions)
    resolved = [fault.resolve(plan) if isinstance(fault, _Drawn) else fault for fault in faults]
    announced = False
    for fault in sorted(resolved, key=lambda f: f.phase):
        if fault.phase > CONTENT and not announced:
            plan.announce_length()  # the body the server means to send, before any cut
            announced = True
        plan = fault(plan, context)
    if not announced:
        plan.announce_length()
    return plan.actions()
