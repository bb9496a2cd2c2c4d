"""The replay engine both executors share (see docs/architecture.md):

- ``session``: matching, the fault schedule, the call log (``ReplaySession``, ``Call``);
- ``playback``: one response's decisions as neutral outcomes (``Playback``, ``Broken``, ``Silent``);
- ``clock``: injectable time (``RealClock``, ``ScaledClock``, ``VirtualClock``, ``Pacer``).

The executors are ``streamtape.stacks`` (in-process, per HTTP stack) and ``streamtape.server`` (a socket).
"""
