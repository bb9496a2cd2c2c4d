"""One replay session: what both executors share.

A ``ReplaySession`` holds the interactions a cassette offers, the matching (``Player``), the fault
schedule and its per-attempt count, and the log of what every request got (``Call``). The in-process
tape (``streamtape.tape``) and the socket server (``streamtape.server``) both ask it ``answer(request)``
and play the actions it returns with their own executor, so a fault, an attempt count or a harness
error means the same thing in both. Errors name the cassette and the interaction.

Not thread-safe on its own: callers hold a lock around ``answer`` (the tape's, the server's).
"""

from __future__ import annotations

from collections.abc import Sequence
from dataclasses import dataclass
from typing import TYPE_CHECKING

from ..cassette import Interaction, Request
from ..errors import ConfigError
from ..matching import Matcher, Player
from ..wire import Action, Cut, describe

if TYPE_CHECKING:
    from ..faults import Fault, Schedule

__all__ = ["Answer", "Call", "ReplaySession", "never_connects"]


@dataclass(frozen=True)
class Call:
    """One request a tape or server answered: what it matched or recorded, and how it went."""

    request: Request
    #: the cassette index of the interaction that answered it (replayed, or recorded by this call)
    index: int | None
    #: how many times this interaction had been asked for before, plus one (replay); 1 when recorded
    attempt: int
    #: ``"replayed"``, ``"recorded"``, ``"unmatched"`` (no interaction matched it), or ``"refused"``
    #: (a socket refused the connection as the faults said: the request never arrived)
    source: str
    interaction: Interaction | None = None
    #: the faults applied to this request, as specs (``"disconnect:after=5"``)
    faults: tuple[str, ...] = ()
    #: what the request met, in a few words: ``"429, complete"``, ``"200, then RemoteProtocolError"``
    outcome: str = ""
    #: seconds the SDK backed off before sending it (virtual at speed 0: nobody waited)
    waited: float = 0.0
    #: the wire actions replayed for it, faults applied (empty for a recorded call)
    played: tuple[Action, ...] = ()
    #: the HTTP stack that sent it (``httpx2``, ``httpx``, ``aiohttp``, ``urllib3``); "" over a socket
    stack: str = ""

    @property
    def recorded(self) -> bool:
        return self.source == "recorded"

    def __repr__(self) -> str:
        """One line: what was asked, where the answer came from, and how it went (never the bodies)."""
        index = "" if self.index is None else f" #{self.index}"
        attempt = f" attempt {self.attempt}" if self.attempt > 1 else ""
        faults = f" [{', '.join(self.faults)}]" if self.faults else ""
        waited = f" after {self.waited:g}s back-off" if self.waited else ""
        outcome = f": {self.outcome}" if self.outcome else ""
        via = f" via {self.stack}" if self.stack else ""
        return (f"<Call {self.request.method} {self.request.url} {self.source}{index}{attempt}{via}{faults}{waited}"
                f"{outcome}>")  # fmt: skip


@dataclass(frozen=True)
class Answer:
    """What a matched request gets: the interaction, and its actions with this attempt's faults."""

    index: int
    actions: list[Action]
    faults: tuple[Fault, ...]
    call: Call


class ReplaySession:
    """Matching, the fault schedule and the call log for one cassette in use.

    ``where`` names the cassette in messages (its path, or "the served cassette")."""

    def __init__(
        self,
        interactions: Sequence[Interaction],
        matchers: Sequence[Matcher],
        schedule: Schedule | None = None,
        *,
        where: str = "the cassette",
    ) -> None:
        self.player = Player(interactions, matchers)
        self.schedule = schedule
        self.where = where
        self.calls: list[Call] = []
        #: requests the fault schedule has applied to (the attempt count of ``faults.sequence``)
        self.faulted = 0

    @property
    def interactions(self) -> list[Interaction]:
        return self.player.interactions

    def answer(self, request: Request, *, waited: float = 0.0, stack: str = "") -> Answer | None:
        """The answer to ``request``, logged as a call; ``None`` (logged as unmatched) when no
        interaction matches. A fault that cannot apply raises ``ConfigError`` naming the cassette."""
        index = self.player.choose(request)
        if index is None:
            self.calls.append(Call(request, None, 1, "unmatched", waited=waited, stack=stack))
            return None
        interaction = self.player.interactions[index]
        actions = interaction.actions()
        applied: tuple[Fault, ...] = ()
        if self.schedule is not None and self.schedule.applies_to(request.method, request.url):
            applied = self.schedule.faults_for(self.faulted)
            self.faulted += 1
            actions = self._shaped(applied, actions, request, index)
        if actions and isinstance(actions[-1], Cut) and actions[-1].kind == "client_closed":
            where = f"{self.where}, interaction #{index} ({request.method} {request.url})"
            actions = [*actions[:-1], Cut("client_closed", where, actions[-1].at)]
        call = Call(request, index, self.player.plays[index], "replayed", interaction,
                    tuple(f.spec() for f in applied), describe(actions), waited, tuple(actions), stack)  # fmt: skip
        self.calls.append(call)
        return Answer(index, actions, applied, call)

    def _shaped(self, faults: tuple[Fault, ...], actions: list[Action], request: Request, index: int) -> list[Action]:
        from ..faults import Context, apply
        from ..providers import provider_for

        context = Context(number=len(self.calls) + 1, provider=provider_for(request.method, request.url, request.headers))
        try:
            return apply(faults, actions, context)
        except ConfigError as exc:
            raise ConfigError(f"{self.where}, interaction #{index} ({request.method} {request.url}): {exc}") from None

    # --- attempts that never reach an executor: a socket's refused connections ---------------------

    def upcoming(self) -> tuple[Fault, ...]:
        """The faults the next attempt the schedule counts will meet."""
        return () if self.schedule is None else self.schedule.faults_for(self.faulted)

    def unconnected(self) -> str | None:
        """How the next counted attempt fails before it connects (``refused`` or ``connect_timeout``:
        its faults end it so before any response), or ``None``. On a socket such an attempt must
        never be accepted."""
        return never_connects(self.upcoming())

    def refusal_due(self) -> bool:
        """The next counted attempt never connects (refused, or its connect times out)."""
        return self.unconnected() is not None

    def refuses_forever(self) -> bool:
        """Every attempt from now on is refused (``refuse`` on its own, not a sequence)."""
        return self.schedule is not None and self.schedule.every and self.refusal_due()

    def refused(self, where: str) -> Call:
        """Count the due attempt as made and refused (it never reached the executor), and log it."""
        kind = self.unconnected() or "refused"
        faults = self.upcoming()
        self.faulted += 1
        call = Call(Request("CONNECT", where), None, 1, "refused", faults=tuple(f.spec() for f in faults),
                    outcome=describe([Cut(kind)]))  # fmt: skip
        self.calls.append(call)
        return call

    def explain(self, request: Request) -> list[str]:
        """Lines saying which recorded request came closest to ``request`` and what differs."""
        return self.player.explain(request)

    @property
    def unplayed(self) -> list[Interaction]:
        return [item for item, plays in zip(self.player.interactions, self.player.plays, strict=True) if plays == 0]

    @property
    def played_indices(self) -> set[int]:
        return {index for index, plays in enumerate(self.player.plays) if plays}


def never_connects(faults: tuple[Fault, ...]) -> str | None:
    """The cut kind, when these faults replace the response with a connection that is never made
    (only the faults that replace the whole response are tried, on a stand-in response)."""
    if not faults:
        return None
    from ..faults import REPLACE, Context, apply
    from ..wire import End, Respond

    replacing = [fault for fault in faults if getattr(fault, "phase", None) == REPLACE]
    if not replacing:
        return None
    try:
        actions = apply(replacing, [Respond(200, ()), End()], Context())
    except ConfigError:
        return None
    first = actions[0] if actions else None
    return first.kind if isinstance(first, Cut) and first.kind in ("refused", "connect_timeout") else None
