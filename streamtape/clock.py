"""Time for replay: instant (speed 0), recorded (speed 1) or scaled (speed N, N times faster).

A ``Pacer`` is created when a request is sent and turns the recorded offsets of that request's
actions ("0.41 s after the request") into waits. At speed 0 it never waits.
"""

from __future__ import annotations

import time

import anyio

__all__ = ["Pacer"]


class Pacer:
    """Waits until a recorded offset, measured from the moment this request was sent."""

    def __init__(self, speed: float) -> None:
        self.speed = speed
        self.start = time.monotonic()

    def delay(self, at: float) -> float:
        """Seconds to wait now so that something recorded ``at`` seconds in arrives on time."""
        if self.speed == 0:
            return 0.0
        return max(0.0, self.start + at / self.speed - time.monotonic())

    def wait(self, at: float) -> None:
        if (seconds := self.delay(at)) > 0:
            time.sleep(seconds)

    async def await_(self, at: float) -> None:
        if (seconds := self.delay(at)) > 0:
            await anyio.sleep(seconds)
