"""The playback of one response: every decision, none of the effects.

``Playback`` walks an interaction's wire actions (faults already applied) and says what happens, when:
the head arrives, bytes arrive, the body ends, the connection breaks, or silence. It knows HTTP
framing (a Content-Length body is over when its bytes are in; bytes past it are never read; a FIN
ends a close-delimited body cleanly) and the client's read timeout, when the executor knows it.

It yields neutral outcomes, which each executor turns into its own behaviour:

- the in-process executor (``streamtape.stacks``) raises the HTTP stack's exception for a ``Broken``,
  with the real stack's message and chain;
- the socket executor (``streamtape.server``) sends the bytes, then FIN, RST, silence or a refused
  connection, as ``streamtape.wire.CUTS`` says for the kind.
"""

from __future__ import annotations

from collections.abc import Iterator
from dataclasses import dataclass

from ..wire import CUTS, Action, Chunks, Cut, End, Raw, Respond, Send, Stall, expand

__all__ = ["Broken", "Garbage", "Playback", "Silent", "framing_of"]


@dataclass(frozen=True, slots=True)
class Broken:
    """The connection broke (or the read timeout fired): ``kind`` is a key of ``CUTS``.

    ``message`` is the recorded text (``None``: what the stack says here, which the executor works out
    from ``framing``, ``received`` and ``expected``)."""

    kind: str
    message: str | None
    before_headers: bool
    framing: str = "chunked"
    received: int = 0
    expected: int | None = None
    #: a cut the recording ends with because the app closed it early (``client_closed``): where
    where: str = ""


@dataclass(frozen=True, slots=True)
class Silent:
    """Nothing more arrives, ever: only the client's read timeout ends the wait, and the executor did not
    give one (a socket does not know it; in-process, a client without a read timeout would hang)."""


@dataclass(frozen=True, slots=True)
class Garbage:
    """Bytes that are not HTTP where HTTP was expected, then the end of the connection: the client's
    HTTP parser fails on them (``framing`` says what it was parsing: a status line before the
    headers, a chunk-size line after them)."""

    data: bytes
    before_headers: bool
    framing: str = "chunked"


Outcome = bytes | Chunks | Broken | Silent | Garbage | None

#: cut kinds that end an attempt before the client starts reading: no read timeout applies to them
_BEFORE_READING = frozenset({"refused", "connect_timeout", "pool_timeout", "write_timeout", "write_error", "proxy",
                             "unsupported_protocol", "local_protocol"})  # fmt: skip


def framing_of(headers: tuple[tuple[str, str], ...]) -> tuple[str, int | None]:
    """How the body's end is known: ``content-length`` (and the length), ``close`` or ``chunked``."""
    lowered = {name.lower(): value.strip().lower() for name, value in headers}
    if "content-length" in lowered and lowered["content-length"].isdigit():
        return "content-length", int(lowered["content-length"])
    if "transfer-encoding" not in lowered and lowered.get("connection") == "close":
        return "close", None
    return "chunked", None  # what the Anthropic API sends, and what a recording without framing meant


class Playback:
    """The decisions for one request: when things arrive, and what happens instead of them.

    ``read_timeout`` is the client's (``None`` when unknown or unset): silence as long as it becomes a
    ``Broken("timeout")`` at the moment it fires; without it, endless silence is ``Silent``.
    ``whole_runs``: a recorded run of chunks may be handed on whole (``Chunks``) where nothing inside it
    can fail; the caller then times its pieces itself. A tape whose time is virtual takes runs whole (the
    hot path), and so does ``streamtape serve``, which paces each piece on its own clock."""

    __slots__ = ("actions", "timeout", "whole_runs", "position", "last_at", "received", "framing", "expected")

    def __init__(self, actions: list[Action], *, read_timeout: float | None, whole_runs: bool) -> None:
        self.actions = actions
        self.timeout = read_timeout
        self.whole_runs = whole_runs
        self.position = 0  # index of the next action to play
        self.last_at = 0.0  # when the last thing arrived (seconds after the request)
        self.received = 0
        self.framing = "chunked"
        self.expected: int | None = None

    def head(self) -> tuple[float, Respond | Broken | Silent | Garbage]:
        """When the response head arrives, or what happens instead of it."""
        while self.position < len(self.actions):
            action = self.actions[self.position]
            self.position += 1
            late = self._late(action, before_headers=True)
            if late is not None:
                return late
            self.last_at = action.at
            if isinstance(action, Respond):
                self.framing, self.expected = framing_of(action.headers)
                return action.at, action
            if isinstance(action, Cut):
                return action.at, self._broken(action, before_headers=True)
            if isinstance(action, Raw):
                return action.at, Garbage(action.data, True)
        return self.last_at, Broken("fin", None, True)

    def body(self) -> Iterator[tuple[float, Outcome]]:
        """``(at, outcome)``: bytes to hand on, a ``Chunks`` run to hand on at once, ``Broken``,
        ``Silent``, ``Garbage``, or ``None`` for the clean end (always the last)."""
        for action in self.actions[self.position :]:
            if isinstance(action, Chunks) and self._whole(action):
                self.last_at = action.timing[-1][0] if action.timing else self.last_at
                self.received += len(action.data)
                yield action.at, action
                continue
            for step in expand((action,)) if isinstance(action, Chunks) else (action,):  # a Send: no generator
                late = self._late(step, before_headers=False)
                if late is not None:
                    yield late
                    return
                self.last_at = step.at
                if isinstance(step, Send):
                    yield step.at, self._take(step.data)
                    if self._complete():
                        yield step.at, None  # a Content-Length body is whole: the client stops reading
                        return
                elif isinstance(step, End) or (isinstance(step, Cut) and self._clean_close(step)):
                    yield step.at, None
                    return
                elif isinstance(step, Cut):
                    yield step.at, self._broken(step, before_headers=False)
                    return
                elif isinstance(step, Raw):
                    yield step.at, Garbage(step.data, False, self.framing)
                    return
        yield self.last_at, None

    def _take(self, data: bytes) -> bytes:
        if self.expected is not None:
            data = data[: max(self.expected - self.received, 0)]  # bytes past the length are never read
        self.received += len(data)
        return data

    def _complete(self) -> bool:
        return self.expected is not None and self.received >= self.expected

    def _whole(self, run: Chunks) -> bool:
        if not self.whole_runs or self.expected is not None:
            return False
        return self.timeout is None or (run.longest_gap < self.timeout and run.at - self.last_at < self.timeout)

    def _late(self, action: Action, *, before_headers: bool) -> tuple[float, Broken | Silent] | None:
        """The read timeout firing before ``action`` arrives, if its silence is that long. Not before a
        cut that ends the attempt before anything was read (a refused or timed-out connect, a full
        pool, a failed write): the read timeout never started for it."""
        if isinstance(action, Cut) and before_headers and action.kind in _BEFORE_READING:
            return None
        if isinstance(action, Stall) and action.seconds is None:
            if self.timeout is None:
                return action.at, Silent()
            return action.at + self.timeout, self._timed_out(before_headers)
        if self.timeout is not None and action.at - self.last_at >= self.timeout:
            return self.last_at + self.timeout, self._timed_out(before_headers)
        return None

    def _timed_out(self, before_headers: bool) -> Broken:
        return Broken("timeout", None, before_headers, self.framing, self.received, self.expected)

    def _clean_close(self, cut: Cut) -> bool:
        # A FIN ends a close-delimited body cleanly: the client cannot tell it from the end.
        return cut.kind == "fin" and cut.message is None and self.framing == "close"

    def _broken(self, cut: Cut, *, before_headers: bool) -> Broken:
        where = (cut.message or "") if cut.kind == "client_closed" else ""
        message = None if cut.kind == "client_closed" else cut.message
        assert cut.kind in CUTS
        return Broken(cut.kind, message, before_headers, self.framing, self.received, self.expected, where)


def harness_error(outcome: Broken | Silent) -> BaseException | None:
    """The streamtape error an outcome stands for, when it is not a network event: the end of what a
    recording holds (``client_closed``), or silence nobody will end. ``None`` for a network event."""
    from ..errors import ConfigError, IncompleteRecordingError

    if isinstance(outcome, Silent):
        return ConfigError(
            "a stall that lasts forever would hang this request: it has no read timeout. "
            "Give the stall seconds=..., or give the client a timeout."
        )
    if outcome.kind == "client_closed":
        where = f"{outcome.where}: " if outcome.where else ""
        return IncompleteRecordingError(
            f"{where}the recording of this response stops at byte {outcome.received}, where the app closed it while "
            "recording and the rest could not be read; this replay read past that point. Re-record with "
            "an app that reads the whole stream (streamtape then reads the rest itself), or keep this "
            "replay from reading further."
        )
    return None
