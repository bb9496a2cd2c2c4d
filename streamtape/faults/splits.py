"""Faults that move chunk boundaries, and only them: the same events, split where stream parsers break.

An SDK's own decoder reads any chunking alike; an app (or a proxy, or a second SDK) that parses the
stream itself often does not. These put a chunk boundary exactly where the known traps are:

- ``split:at_byte=B``: the body in exactly two chunks, split right before byte B of the recording;
  ``split`` alone: the whole body in one chunk. ``@pytest.mark.tape_faults("rechunk:every")`` runs a
  test once per byte boundary with these (``split`` being the unsplit run it is compared with).
- ``split_crlf``: every line ends in CRLF (a body whose lines end in LF alone gets a CR before each LF:
  the same events, as the SSE grammar allows either), with a chunk boundary between each CR and its
  LF. A parser that ends a line at the CR and then reads the LF as an empty line dispatches the
  event early, or twice.
- ``split_utf8``: a chunk boundary inside every multi-byte UTF-8 character (after its first byte). A
  client that decodes each chunk on its own (``chunk.decode()``) raises ``UnicodeDecodeError``, or
  with ``errors="replace"`` silently shows U+FFFD where the text had a character.

Byte positions (``at_byte``) count the recording's bytes, as every fault's do. ``split_utf8`` and
``split`` run last, with ``rechunk``, on whatever the other faults made of the body; ``split_crlf``
changes bytes, so it runs with the content faults, before a cut and before a ``Content-Length`` is
announced.
"""

from __future__ import annotations

import re
from dataclasses import dataclass, replace
from typing import ClassVar

from ..errors import ConfigError
from ._plan import Piece, Plan
from .base import CONTENT, RECHUNK, Context, Fault

__all__ = ["Split", "SplitCrlf", "SplitUtf8", "crlf_splits", "split_points", "utf8_splits"]


_CONTINUATION = re.compile(rb"[\x80-\xbf]")
_AFTER_LEAD = re.compile(rb"(?<=[\xc0-\xf7])[\x80-\xbf]")  # the second byte of a character


def utf8_splits(body: bytes) -> list[int]:
    """Every byte boundary that falls inside a multi-byte UTF-8 character of ``body`` (the offsets of
    its continuation bytes)."""
    return [match.start() for match in _CONTINUATION.finditer(body) if match.start() > 0]


def crlf_splits(body: bytes) -> list[int]:
    """Every byte boundary between a CR and the LF right after it (the offsets of those LFs)."""
    found, start = [], 0
    while (index := body.find(b"\r\n", start)) >= 0:
        found.append(index + 1)
        start = index + 2
    return found


def split_points(body: bytes, budget: int, ends: list[int] | None = None) -> list[int]:
    """The byte boundaries ``rechunk:every`` splits ``body`` at: every one from 1 to ``len(body) - 1``
    when there are at most ``budget``; else the known traps first (inside a UTF-8 character, between
    CR and LF, then event ends and the bytes either side of them), the rest spread evenly, in order."""
    every = range(1, len(body))
    if len(every) <= budget:
        return list(every)
    chosen: dict[int, None] = {}
    near_ends = [point for end in ends or () for point in (end, end - 1, end + 1)]
    for point in (*utf8_splits(body), *crlf_splits(body), *near_ends):
        if len(chosen) >= budget:
            break
        if 0 < point < len(body):
            chosen.setdefault(point)
    spare = budget - len(chosen)
    if spare > 0:
        rest = [point for point in every if point not in chosen]
        step = len(rest) / spare  # >= 1: there are more boundaries than the budget
        for number in range(spare):
            chosen.setdefault(rest[int(number * step)])
    return sorted(chosen)


def _join(pieces: list[Piece]) -> Piece:
    """Pieces merged into one chunk: it arrives with its last byte and keeps its first byte's tags."""
    first = pieces[0]
    return Piece(b"".join(piece.data for piece in pieces), pieces[-1].at, first.event, first.offset)


@dataclass(frozen=True, kw_only=True)
class Split(Fault):
    """The body in exactly two chunks, split right before byte ``at_byte`` of the recording; without a
    position, the whole body in one chunk (the unsplit run a ``rechunk:every`` sweep compares with)."""

    name: ClassVar[str] = "split"
    at_byte: int | None = None

    def __post_init__(self) -> None:
        if self.at_byte is not None and (isinstance(self.at_byte, bool) or not isinstance(self.at_byte, int)
                                         or self.at_byte < 0):  # fmt: skip
            raise ConfigError(f"split: at_byte={self.at_byte!r} must be a whole number >= 0 (a byte of the body)")

    @property
    def phase(self) -> int:
        return RECHUNK

    def __call__(self, plan: Plan, context: Context) -> Plan:
        if not plan.pieces:
            if self.at_byte:
                raise ConfigError(f"{self.spec()}: the response has no body to split")
            return plan
        if self.at_byte is None:
            plan.pieces = [_join(plan.pieces)]
            return plan
        index = plan.position(self.spec(), after=None, at_byte=self.at_byte)  # splits the piece there
        groups = [plan.pieces[:index], plan.pieces[index:]]
        plan.pieces = [_join(group) for group in groups if group and any(piece.data for piece in group)]
        return plan


@dataclass(frozen=True, kw_only=True)
class SplitCrlf(Fault):
    """Every line end a CRLF (a CR added before each LF that has none: the same events), with a chunk
    boundary between each CR and its LF."""

    name: ClassVar[str] = "split_crlf"

    @property
    def phase(self) -> int:
        return CONTENT  # it adds bytes: before any cut, and before a Content-Length is announced

    def __call__(self, plan: Plan, context: Context) -> Plan:
        if not any(b"\n" in piece.data for piece in plan.pieces):
            raise ConfigError(f"{self.spec()}: the response's body has no line end to split")
        out: list[Piece] = []
        previous = b""  # the last byte before this piece: a CR there already pairs with an LF here
        for piece in plan.pieces:
            data, start = piece.data, 0  # start: where the chunk being cut begins
            index = data.find(b"\n")
            while index >= 0:
                before = data[index - 1 : index] if index > 0 else previous
                head = data[start:index] + (b"" if before == b"\r" else b"\r")
                if head:
                    out.append(Piece(head, piece.at, piece.event, _plus(piece.offset, start)))
                start = index  # the LF begins the next chunk
                index = data.find(b"\n", index + 1)
            if start < len(data):
                out.append(Piece(data[start:], piece.at, piece.event, _plus(piece.offset, start)))
            previous = data[-1:] or previous
        plan.pieces = out
        return plan


@dataclass(frozen=True, kw_only=True)
class SplitUtf8(Fault):
    """A chunk boundary inside every multi-byte UTF-8 character of the body (after its first byte)."""

    name: ClassVar[str] = "split_utf8"

    @property
    def phase(self) -> int:
        return RECHUNK

    def __call__(self, plan: Plan, context: Context) -> Plan:
        if not any(max(piece.data, default=0) >= 0x80 for piece in plan.pieces):
            raise ConfigError(f"{self.spec()}: the response's body has no multi-byte UTF-8 character to split "
                              "(its text is ASCII)")  # fmt: skip
        out: list[Piece] = []
        for piece in plan.pieces:
            data, start = piece.data, 0
            for match in _AFTER_LEAD.finditer(data):  # just after a character's first byte
                index = match.start()
                out.append(Piece(data[start:index], piece.at, piece.event, _plus(piece.offset, start)))
                start = index
            out.append(replace(piece, data=data[start:], offset=_plus(piece.offset, start)) if start else piece)
        plan.pieces = out
        return plan


def _plus(offset: int | None, delta: int) -> int | None:
    return None if offset is None else offset + delta
