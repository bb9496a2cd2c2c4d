"""Time for replay, injectable: real, scaled or virtual.

One ``Clock`` serves a whole tape or server: the in-process executor, the socket executor and the SDK's
retry back-off (while a tape is entered) all wait through it, so a test can swap time out without
patching ``time``:

- ``RealClock``: recorded timing (speed 1). Waits really wait.
- ``ScaledClock(n)``: ``n`` times faster than recorded. A wait of ``s`` seconds takes ``s / n``.
- ``VirtualClock``: no wait takes any time; ``now()`` moves forward by what was waited, so timing
  decisions (a read timeout firing, a back-off) are still made, instantly. Speed 0, the default for
  replay-only tapes. ``VirtualClock(paced=True)`` has replay wait for every arrival as a real clock
  would (still instantly), and keeps the list of ``waits``: what tests use to measure pacing.

``clock_for(speed)`` picks one. A ``Pacer`` turns the recorded offsets of one request's actions ("0.41 s
after the request") into waits on its clock.
"""

from __future__ import annotations

import threading
import time
from typing import Protocol

__all__ = ["Clock", "Pacer", "RealClock", "ScaledClock", "VirtualClock", "clock_for"]


class Clock(Protocol):
    """What executors need of time: where it is now, and to wait."""

    #: True when replay must wait for every arrival (real time); False: time is virtual, and a recorded
    #: run of chunks may be handed on at once (the fast path)
    paced: bool

    def now(self) -> float: ...

    def sleep(self, seconds: float) -> None: ...

    async def asleep(self, seconds: float) -> None: ...

    def wall(self, seconds: float) -> float:
        """How many wall-clock seconds a wait of ``seconds`` on this clock takes (0 for virtual time):
        what lets a server wait interruptibly on its own stop event instead of sleeping."""
        ...


class RealClock:
    """Wall-clock time (``time.monotonic``); waits block (sync) or yield to the event loop (async)."""

    paced = True

    def now(self) -> float:
        return time.monotonic()

    def sleep(self, seconds: float) -> None:
        if seconds > 0:
            time.sleep(seconds)

    async def asleep(self, seconds: float) -> None:
        if seconds > 0:
            import anyio  # an async caller has it: the stacks it replays run on it

            await anyio.sleep(seconds)

    def wall(self, seconds: float) -> float:
        return seconds


class ScaledClock:
    """Recorded time ``speed`` times faster than ``base`` (the wall clock unless given): ``now()`` runs
    ``speed`` times as fast, and a wait of ``s`` takes ``s / speed`` on the base clock."""

    paced = True

    def __init__(self, speed: float, base: Clock | None = None) -> None:
        if isinstance(speed, bool) or not isinstance(speed, int | float) or not speed > 0:
            raise ValueError(f"ScaledClock speed must be a number > 0, not {speed!r}")
        self.speed = float(speed)
        self.base: Clock = base if base is not None else RealClock()
        self._origin = self.base.now()

    def now(self) -> float:
        return self._origin + (self.base.now() - self._origin) * self.speed

    def sleep(self, seconds: float) -> None:
        self.base.sleep(seconds / self.speed)

    async def asleep(self, seconds: float) -> None:
        await self.base.asleep(seconds / self.speed)

    def wall(self, seconds: float) -> float:
        return self.base.wall(seconds / self.speed)


class VirtualClock:
    """Time that only moves when someone waits: every wait returns at once and advances ``now()``.

    Shared by everything one tape replays, so the order of events is kept (a back-off of 2 s puts the
    retry 2 s later) while the test runs in microseconds."""

    def __init__(self, start: float = 0.0, *, paced: bool = False) -> None:
        self.paced = paced
        self._now = start
        self._lock = threading.Lock()
        #: every wait asked of this clock, in order (seconds)
        self.waits: list[float] = []

    def now(self) -> float:
        return self._now

    def sleep(self, seconds: float) -> None:
        if seconds > 0:
            with self._lock:
                self._now += seconds
                self.waits.append(seconds)

    async def asleep(self, seconds: float) -> None:
        self.sleep(seconds)

    def wall(self, seconds: float) -> float:
        return 0.0

    def advance(self, seconds: float) -> None:
        """Move time forward, as a test's own step."""
        self.sleep(seconds)


def clock_for(speed: float) -> Clock:
    """The clock for a replay ``speed``: 0 virtual, 1 real, N scaled."""
    if speed == 0:
        return VirtualClock()
    if speed == 1:
        return RealClock()
    return ScaledClock(speed)


class Pacer:
    """Waits until a recorded offset, measured from the moment this request was sent."""

    __slots__ = ("clock", "start")

    def __init__(self, clock: Clock) -> None:
        self.clock = clock
        self.start = clock.now()

    def delay(self, at: float) -> float:
        """Seconds to wait now so that something recorded ``at`` seconds in arrives on time."""
        return max(0.0, self.start + at - self.clock.now())

    def wait(self, at: float) -> None:
        if (seconds := self.delay(at)) > 0:
            self.clock.sleep(seconds)

    async def await_(self, at: float) -> None:
        if (seconds := self.delay(at)) > 0:
            await self.clock.asleep(seconds)

