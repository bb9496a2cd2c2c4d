"""The working form faults edit: a response split into head, body pieces and tail.

Every body piece remembers which event of the original recording its bytes belong to and where
they sat in the original body, so ``after=5`` and ``at_byte=300`` always mean the recording's fifth
event and its byte 300, whatever other faults added, dropped or moved before. What an event is, the
response's framer says (``streamtape.framing``, by its content type: SSE events, NDJSON lines).
"""

from __future__ import annotations

import threading
import weakref
from collections.abc import Iterable, Iterator
from dataclasses import dataclass, field, replace

from ..errors import ConfigError
from ..framing import Framer, framer_for
from ..framing.sse import SSE
from ..wire import Action, Chunks, Respond, Send

__all__ = ["Piece", "Plan"]


@dataclass(frozen=True, slots=True)
class Piece:
    """Body bytes that arrive together at ``at``; ``event`` and ``offset`` locate them in the
    original recording (``None`` for bytes a fault added)."""

    data: bytes
    at: float
    event: int | None = None
    offset: int | None = None


@dataclass
class Plan:
    """One response being shaped by faults: ``head`` (up to and with the ``Respond``), the body as
    ``pieces``, and ``tail`` (``End``, ``Cut`` or ``Stall``). ``events`` and ``framer`` describe the
    recording's body; a fault of your own edits these lists and returns the plan."""

    head: list[Action]
    pieces: list[Piece] = field(default_factory=list)
    tail: list[Action] = field(default_factory=list)
    events: int = 0  # complete events in the original recording
    framer: Framer = SSE  # what an event is in this body (chosen by its content type)

    @classmethod
    def from_actions(cls, actions: list[Action]) -> Plan:
        head: list[Action] = []
        body: list[Send | Chunks] = []  # a recorded run of chunks stays one Chunks: no Send per chunk
        tail: list[Action] = []
        for action in actions:
            if isinstance(action, Chunks) and (tail or not action.timing):
                tail += action.sends()  # what a run spells out after the body has ended (or nothing)
            elif isinstance(action, (Send, Chunks)) and not tail:
                body.append(action)
            elif body or (head and isinstance(head[-1], Respond)):
                tail.append(action)
            else:
                head.append(action)
        respond = next((a for a in head if isinstance(a, Respond)), None)
        framer = framer_for(respond.headers) if respond is not None else SSE
        if len(body) == 1 and isinstance(body[0], Chunks):  # a recording's body: worked out once per run
            pieces, events = _mapped(body[0], framer)
            return cls(head, list(pieces), tail, events, framer)
        ends = framer.event_ends(b"".join(map(_data, body))) if body else []
        return cls(head, _tag(_arrivals(body), ends), tail, len(ends), framer)

    def actions(self) -> list[Action]:
        return [*self.head, *(Send(piece.data, piece.at) for piece in self.pieces), *self.tail]

    @property
    def unit(self) -> str:
        """What positions count in this body, for messages: ``SSE event``, ``event``."""
        return self.framer.unit

    @property
    def respond(self) -> Respond | None:
        return next((a for a in self.head if isinstance(a, Respond)), None)

    @property
    def last_at(self) -> float:
        """When the last thing before the tail arrived."""
        if self.pieces:
            return self.pieces[-1].at
        return self.head[-1].at if self.head else 0.0

    def position(self, fault: str, *, after: int | None, at_byte: int | None) -> int:
        """The index in ``pieces`` where a cut at ``after``/``at_byte`` falls (splitting a piece there)."""
        if self.respond is None:
            raise ConfigError(f"{fault}: this attempt has no response to cut (an earlier fault replaced it)")
        if after is not None:
            if not 0 <= after <= self.events:
                raise ConfigError(
                    f"{fault}: after={after}, but the recorded response has {self.events} {self.unit}s; "
                    f"use after=0..{self.events}"
                )
            return next(
                (i for i, p in enumerate(self.pieces) if p.event is not None and p.event > after), len(self.pieces)
            )
        assert at_byte is not None
        return self._split_at_byte(fault, at_byte)

    def _split_at_byte(self, fault: str, at_byte: int) -> int:
        for index, piece in enumerate(self.pieces):
            if piece.offset is None or piece.offset + len(piece.data) <= at_byte:
                continue
            if piece.offset >= at_byte:
                return index
            cut = at_byte - piece.offset
            first = replace(piece, data=piece.data[:cut])
            second = replace(piece, data=piece.data[cut:], offset=at_byte)
            self.pieces[index : index + 1] = [first, second]
            return index + 1
        size = sum(len(p.data) for p in self.pieces if p.offset is not None)
        if at_byte > size:
            raise ConfigError(f"{fault}: at_byte={at_byte}, but the recorded body has {size} bytes; use 0..{size}")
        return len(self.pieces)

    def announce_length(self) -> None:
        """If the response announced a Content-Length, make it announce the body it now has: a
        server sends a length for the body it is about to send (a cut then breaks that promise)."""
        respond = self.respond
        if respond is None or not any(name.lower() == "content-length" for name, _ in respond.headers):
            return
        size = str(sum(len(piece.data) for piece in self.pieces))
        headers = tuple((k, size if k.lower() == "content-length" else v) for k, v in respond.headers)
        self.head = [replace(a, headers=headers) if a is respond else a for a in self.head]

    def keep(self, index: int) -> float:
        """Keep only the pieces before ``index`` (and no tail); returns when the last kept one arrived."""
        self.pieces = self.pieces[:index]
        self.tail = []
        return self.last_at

    def shift(self, start: int, seconds: float) -> None:
        """Everything from piece ``start`` on (and the tail) arrives ``seconds`` later."""
        self.pieces[start:] = [Piece(p.data, p.at + seconds, p.event, p.offset) for p in self.pieces[start:]]
        self.tail = [later(action, seconds) for action in self.tail]


#: the event map of each recorded run planned so far, by the run's identity: a sweep of a thousand
#: faults over one recording (``after=*``) maps its events once, not once per fault. Pieces are
#: immutable, so every plan shares them; an entry goes when its run is collected.
_MAPPED: dict[int, tuple[weakref.ref[Chunks], str, tuple[Piece, ...], int]] = {}
_MAPPED_LOCK = threading.Lock()


def _mapped(run: Chunks, framer: Framer) -> tuple[tuple[Piece, ...], int]:
    """The run's pieces, split at event boundaries and tagged, and its number of complete events."""
    key = id(run)
    entry = _MAPPED.get(key)
    if entry is not None and entry[0]() is run and entry[1] == framer.name:
        return entry[2], entry[3]
    ends = framer.event_ends(_data(run))
    pieces = tuple(_tag(run.pieces(), ends))

    def forget(_: object, key: int = key) -> None:
        with _MAPPED_LOCK:
            current = _MAPPED.get(key)
            if current is not None and current[0]() is None:
                del _MAPPED[key]

    with _MAPPED_LOCK:
        _MAPPED[key] = (weakref.ref(run, forget), framer.name, pieces, len(ends))
    return pieces, len(ends)


def later(action: Action, seconds: float) -> Action:
    """``action``, ``seconds`` later."""
    return action if isinstance(action, Chunks) else replace(action, at=action.at + seconds)  # type: ignore[arg-type]


def _data(run: Send | Chunks) -> bytes:
    """The bytes a body action delivers (a run's chunks may not cover all of its ``data``)."""
    if isinstance(run, Send):
        return run.data
    return run.data[: sum(size for _, size in run.timing)]


def _arrivals(body: list[Send | Chunks]) -> Iterator[tuple[bytes, float]]:
    """``(bytes, at)`` per chunk of the body, in order."""
    for run in body:
        if isinstance(run, Chunks):
            yield from run.pieces()
        else:
            yield run.data, run.at


def _tag(chunks: Iterable[tuple[bytes, float]], ends: list[int]) -> list[Piece]:
    """Split chunks at event boundaries and tag each piece with its event (1-based) and offset.

    Linear in the body: a chunk is cut at the boundaries inside it by position, never by slicing off
    what is left of it (which copied a one-chunk body of n events n times)."""
    pieces: list[Piece] = []
    offset, event, total = 0, 0, len(ends)
    for data, at in chunks:
        size, pos = len(data), 0
        while pos < size:
            if event < total:
                cut, number = min(size, pos + ends[event] - offset), event + 1
            else:
                cut, number = size, None
            pieces.append(Piece(data[pos:cut], at, number, offset))
            offset += cut - pos
            pos = cut
            if event < total and offset == ends[event]:
                event += 1
    return pieces
