"""Faults: put any recorded stream through the failures production sees.

    from streamtape import faults, use_cassette

    with use_cassette("story.yaml", faults=[faults.disconnect(after=5)]):
        ...  # events 1-5, then httpx2.RemoteProtocolError, as from a real dropped connection

    with use_cassette("story.yaml", faults=faults.sequence(faults.rate_limit(), faults.rate_limit(), None)):
        ...  # attempts 1 and 2 get a faithful 429, attempt 3 the recording: the SDK's retries succeed

The same as strings: ``"disconnect:after=5"``, ``"rate_limit*2 -> ok"``,
``"delay:first_byte=2.5,per_event=0.05 + stall:after=10"`` (see ``streamtape.faults.spec``).

Your own fault, usable in spec strings, ``faults=[...]`` and chaos pools once defined::

    @faults.register("slow_start")
    def slow_start(plan: faults.Plan, context: faults.Context, *, seconds: float = 1.0) -> faults.Plan:
        plan.shift(0, seconds)  # every body piece arrives ``seconds`` later
        return plan

    with use_cassette("story.yaml", faults="slow_start:seconds=2"): ...

or a ``Fault`` subclass with a ``name`` (``streamtape.faults.base``); ``faults.unregister(name)``
forgets either. A fault edits a ``Plan`` (``streamtape.faults._plan``) and learns the API's formats
from ``context.provider`` (``streamtape.providers``).
"""

from __future__ import annotations

from collections.abc import Iterable
from typing import Any

from ..errors import ConfigError
from ._plan import Piece, Plan
from .base import CATALOGUE, CONTENT, CUT, PHASES, RECHUNK, REPLACE, TIMING, Context, register, unregister
from .bedrock import BadCrc, ExceptionFrame  # noqa: F401 - AWS event streams' own faults register themselves
from .catalogue import (
    Corrupt,
    Delay,
    Disconnect,
    Drop,
    Duplicate,
    ErrorEvent,
    Fault,
    HttpError,
    Overloaded,
    Ping,
    RateLimit,
    Rechunk,
    Refuse,
    Reset,
    ServerError,
    Stall_,
    Timeout,
    Truncate,
)
from .gemini import CandidateFinish, PromptBlocked  # noqa: F401 - Gemini's own faults register themselves
from .openai import DoneEarly, ResponseFailed  # noqa: F401 - OpenAI's own faults register themselves
from .protocol import BadChunk, BadStatus, Bom, ConnectTimeout, CorruptGzip, JsonBody, Linger, PoolTimeout, WriteTimeout
from .schedule import Chaos, Schedule, apply, positions
from .spec import load_scenario, parse, parse_fault, step
from .splits import Split, SplitCrlf, SplitUtf8  # noqa: F401 - chunk-boundary faults register themselves

__all__ = [
    "CATALOGUE", "CONTENT", "CUT", "Chaos", "Context", "Fault", "PHASES", "Piece", "Plan", "RECHUNK", "REPLACE",
    "Schedule", "TIMING", "apply", "chaos", "corrupt", "delay", "disconnect", "drop", "duplicate", "error_event",
    "http_error", "load_scenario", "overloaded", "parse", "parse_fault", "ping", "positions", "rate_limit", "rechunk",
    "refuse", "register", "reset", "resolve", "sequence", "server_error", "stall", "timeout", "truncate", "unregister",
    "bad_chunk", "bad_status", "bom", "connect_timeout", "corrupt_gzip", "json_body", "linger", "pool_timeout",
    "write_timeout",
]  # fmt: skip

refuse = Refuse
reset = Reset
disconnect = Disconnect
timeout = Timeout
rate_limit = RateLimit
overloaded = Overloaded
server_error = ServerError
stall = Stall_
error_event = ErrorEvent
truncate = Truncate
delay = Delay
rechunk = Rechunk
corrupt = Corrupt
duplicate = Duplicate
drop = Drop
ping = Ping
connect_timeout = ConnectTimeout
write_timeout = WriteTimeout
pool_timeout = PoolTimeout
bad_status = BadStatus
bad_chunk = BadChunk
corrupt_gzip = CorruptGzip
bom = Bom
json_body = JsonBody
linger = Linger


def http_error(status: int, **options: Any) -> HttpError:
    """The API's own error response with ``status``, as the request's provider words it. Optional:
    ``error_type``, ``message``, ``request_id`` (``False``: none, as some real bodies have; a string:
    that id), ``retry_after`` / ``retry_after_ms`` / ``retry_after_date`` (an HTTP date that many
    seconds ahead), ``should_retry``, and for what a proxy sends instead of the API: ``body`` (raw,
    verbatim), ``content_type`` and ``headers``."""
    return HttpError(status=status, **options)


def sequence(*steps: Fault | Iterable[Fault] | str | None, when: str | None = None) -> Schedule:
    """One step per attempt, in the order requests reach the tape: a fault, several faults, a spec
    string, or ``None``/``"ok"`` for a clean attempt. Attempts past the end are clean."""
    return Schedule(tuple(step(item) for item in steps), when=when)


def chaos(p: float = 0.2, *, seed: int = 0, when: str | None = None, pool: Iterable[str] | None = None) -> Chaos:
    """Each request, with probability ``p``, meets one fault from ``pool``; the same ``seed``, the same draws."""
    options: dict[str, Any] = {"pool": tuple(pool)} if pool is not None else {}
    return Chaos((), p=p, seed=seed, when=when, **options)


def resolve(faults: Any, *, when: str | None = None) -> Schedule | None:
    """Whatever a tape was given as ``faults=`` as a ``Schedule`` (``None``: no faults)."""
    if faults is None or isinstance(faults, Schedule):
        return faults
    if isinstance(faults, str):
        return parse(faults, when=when)
    if isinstance(faults, Fault):
        return Schedule(((faults,),), every=True, when=when)
    if isinstance(faults, Iterable):
        return Schedule((step(list(faults)),), every=True, when=when)
    raise ConfigError(
        f"faults: {faults!r} is not a fault; give a fault (faults.disconnect(after=5)), a list of them, "
        "faults.sequence(...), or a spec string like 'rate_limit*2 -> ok'"
    )
