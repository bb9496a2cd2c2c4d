"""Chunk timing: when each chunk of a body arrived and how large it was, kept compact.

A response's ``timing`` is a sequence of ``(seconds, size)`` pairs, one per chunk. A long stream has
one per event, and two forms keep that cheap:

- **in memory**, ``CompactTiming``: two arrays (8 + 4 bytes a chunk) that read as the tuple of pairs
  they stand for, instead of a tuple of pairs (about 90 bytes a chunk: more than a typical SSE event
  is long). What a response of ``COMPACT_FROM`` chunks or more loads as.
- **on disk**, a response's ``chunks`` field is ``SECONDS:BYTES`` pairs, readable, or for one of
  ``COMPACT_FROM`` chunks or more ``packed N DATA``: N chunks; DATA the base64 of N little-endian
  float64 arrival times in seconds, then N little-endian uint32 sizes (docs/cassette-format.md).
  Reading it is decoding it: no number is parsed, so a 100,000-chunk stream's timing loads in about
  a millisecond where its text takes tens.

The functions here return a message (one sentence, for ``CassetteFormatError``) where a value is
wrong; the cassette reader adds the file, the line and the field.
"""

from __future__ import annotations

import base64
import binascii
import json
import re
import sys
from array import array
from collections.abc import Iterable, Iterator, Sequence
from itertools import starmap
from operator import eq, itemgetter
from typing import Any, Final, overload

__all__ = ["COMPACT_FROM", "CompactTiming", "dump", "parse_packed", "parse_text"]

#: From how many chunks a response's timing is held as ``CompactTiming`` and written packed.
COMPACT_FROM = 1000
PACKED = "packed"
_F64: Final = "d"
_U32 = next(code for code in "IL" if array(code).itemsize == 4)
_BIG_ENDIAN = sys.byteorder == "big"


class CompactTiming(Sequence[tuple[float, int]]):
    """``(seconds, size)`` per chunk, held as two arrays; it reads as the tuple of pairs it stands for
    (iteration, ``len``, indexing, slicing, equality with that tuple, hashing as it), so whatever reads
    a response's ``timing`` reads either."""

    __slots__ = ("ats", "sizes", "_hash")

    def __init__(self, ats: array[float], sizes: array[int]) -> None:
        if len(ats) != len(sizes):
            raise ValueError(f"{len(ats)} arrival times for {len(sizes)} sizes")
        self.ats = ats
        self.sizes = sizes
        self._hash: int | None = None

    @classmethod
    def of(cls, pairs: Iterable[tuple[float, int]]) -> CompactTiming:
        pairs = tuple(pairs)
        ats = array(_F64, map(itemgetter(0), pairs))
        try:
            sizes = array(_U32, map(itemgetter(1), pairs))
        except OverflowError:  # a size beyond 4 GiB, or below 0: kept as it is
            sizes = array("q", map(itemgetter(1), pairs))
        return cls(ats, sizes)

    def __len__(self) -> int:
        return len(self.sizes)

    def __iter__(self) -> Iterator[tuple[float, int]]:
        return zip(self.ats, self.sizes, strict=True)

    def __reversed__(self) -> Iterator[tuple[float, int]]:
        return zip(reversed(self.ats), reversed(self.sizes), strict=True)

    @overload
    def __getitem__(self, index: int) -> tuple[float, int]: ...
    @overload
    def __getitem__(self, index: slice) -> tuple[tuple[float, int], ...]: ...
    def __getitem__(self, index: int | slice) -> Any:
        if isinstance(index, slice):
            return tuple(zip(self.ats[index], self.sizes[index], strict=True))
        return self.ats[index], self.sizes[index]

    def __eq__(self, other: object) -> bool:
        if isinstance(other, CompactTiming):
            return self.sizes == other.sizes and self.ats == other.ats
        if isinstance(other, tuple):
            return len(other) == len(self) and all(starmap(eq, zip(self, other, strict=True)))
        return NotImplemented

    def __ne__(self, other: object) -> bool:
        equal = self.__eq__(other)
        return equal if equal is NotImplemented else not equal

    def __hash__(self) -> int:
        if self._hash is None:
            self._hash = hash(tuple(self))
        return self._hash

    def __lt__(self, other: object) -> bool:
        return tuple(self) < _as_tuple(other)

    def __le__(self, other: object) -> bool:
        return tuple(self) <= _as_tuple(other)

    def __gt__(self, other: object) -> bool:
        return tuple(self) > _as_tuple(other)

    def __ge__(self, other: object) -> bool:
        return tuple(self) >= _as_tuple(other)

    def __add__(self, other: object) -> tuple[tuple[float, int], ...]:
        return tuple(self) + _as_tuple(other)

    def __radd__(self, other: object) -> tuple[tuple[float, int], ...]:
        return _as_tuple(other) + tuple(self)

    def __repr__(self) -> str:
        return repr(tuple(self))

    def __copy__(self) -> CompactTiming:
        return self  # immutable, as a tuple is

    def __deepcopy__(self, memo: dict[int, Any]) -> CompactTiming:
        return self

    def __reduce__(self) -> tuple[Any, ...]:
        return _restore, (self.ats.tobytes(), self.sizes.typecode, self.sizes.tobytes())


def _as_tuple(other: object) -> tuple[Any, ...]:
    if isinstance(other, CompactTiming):
        return tuple(other)
    if isinstance(other, tuple):
        return other
    raise TypeError(f"cannot combine chunk timing with {type(other).__name__}")


def _restore(ats: bytes, code: str, sizes: bytes) -> CompactTiming:
    a, s = array(_F64), array(code)
    a.frombytes(ats)
    s.frombytes(sizes)
    return CompactTiming(a, s)


# --- reading -----------------------------------------------------------------------------------------

_TEXT = re.compile(r"[0-9.: ]*")


def parse_text(text: str) -> CompactTiming | None:
    """The writer's text form (``0.4129:106 0.4327:132``) read at C speed, or ``None`` when it is spelt
    any other way (then the caller's general reading applies, with its messages). Only digits, points,
    colons and single spaces: then JSON reads the same numbers that splitting at ':' and spaces does,
    or fails (an empty or malformed number); and none is negative, NaN or infinite unless it overflowed."""
    if not _TEXT.fullmatch(text):
        return None
    try:
        numbers = json.loads(f"[{text.replace(':', ',').replace(' ', ',')}]")
        if len(numbers) % 2:
            return None
        ats = array(_F64, numbers[0::2])
        sizes = array(_U32, numbers[1::2])  # a float (132.0) is a TypeError: no size
    except (ValueError, TypeError, OverflowError):
        return None
    return CompactTiming(ats, sizes)


def parse_packed(text: str, limit: float) -> CompactTiming | str:
    """``packed N DATA``: the timing, or what is wrong with it (a message)."""
    gap = text.find(" ", len(PACKED) + 1)
    count, data = text[len(PACKED) + 1 : gap], text[gap + 1 :] if gap > 0 else ""
    if text[len(PACKED) : len(PACKED) + 1] != " " or gap < 0 or not count.isdigit() or not count.isascii():
        return (
            f"expected 'packed N DATA' (N chunks, DATA their packed timing in base64), found {_start(text)}; "
            "was it edited by hand?"
        )
    if len(count) > 15:  # more chunks than any file holds (and more digits than int() may read)
        return (
            f"the packed timing claims {_start(count)} chunks, more than a cassette can hold: it was edited by "
            "hand or damaged; re-record the cassette, or restore it from version control"
        )
    n = int(count)
    try:
        raw = binascii.a2b_base64(data, strict_mode=True)
    except (binascii.Error, ValueError):
        return (
            f"the packed timing of {_chunks(n)} is damaged (not base64: edited by hand, or cut?); re-record "
            "the cassette, or restore it from version control"
        )
    if len(raw) != 12 * n:
        return (
            f"the packed timing holds {len(raw):,} bytes, but {_chunks(n)} take {12 * n:,} (8 for each time, 4 "
            "for each size): it was cut or edited by hand; re-record the cassette, or restore it from version control"
        )
    ats, sizes = array(_F64), array(_U32)
    view = memoryview(raw)
    ats.frombytes(view[: 8 * n])
    sizes.frombytes(view[8 * n :])
    if _BIG_ENDIAN:
        ats.byteswap()
        sizes.byteswap()
    # At C speed: the top byte of each time (its sign and the top of its exponent) is at most 0x40
    # for 0 <= t < 2**17 seconds, and larger for a negative number, NaN or infinity: then, or for a
    # time of 36 hours or more, each is checked.
    if raw[0 if _BIG_ENDIAN else 7 : 8 * n : 8].translate(None, _SMALL_TOP):
        for number, at in enumerate(ats, 1):
            if not 0 <= at <= limit:  # NaN compares false too
                return f"chunk {number} arrives at {at!r} seconds; expected 0 to {limit:,}"
    return CompactTiming(ats, sizes)


_SMALL_TOP = bytes(range(0x41))


def _chunks(n: int) -> str:
    return f"{n:,} chunk" if n == 1 else f"{n:,} chunks"


def _start(text: str) -> str:
    shown = repr(text)
    return shown if len(shown) <= 40 else f"{shown[:35]}...{shown[-1]}"


# --- writing -----------------------------------------------------------------------------------------


def dump(timing: Sequence[tuple[float, int]]) -> str:
    """The ``chunks`` field: ``SECONDS:BYTES`` pairs, or for ``COMPACT_FROM`` chunks or more the
    packed form (times exactly as held; the pairs round them to 0.1 ms)."""
    if len(timing) >= COMPACT_FROM:
        packed = _pack(timing)
        if packed is not None:
            return packed
    return " ".join(f"{at:.4f}:{size}" for at, size in timing)


def _pack(timing: Sequence[tuple[float, int]]) -> str | None:
    if isinstance(timing, CompactTiming) and timing.sizes.typecode == _U32:
        ats, sizes = timing.ats, timing.sizes
    else:
        try:
            ats = array(_F64, map(itemgetter(0), timing))
            sizes = array(_U32, map(itemgetter(1), timing))
        except (OverflowError, TypeError):  # a size that uint32 cannot hold: written out as text
            return None
    if _BIG_ENDIAN:
        ats, sizes = array(_F64, ats), array(_U32, sizes)
        ats.byteswap()
        sizes.byteswap()
    data = base64.b64encode(ats.tobytes() + sizes.tobytes()).decode("ascii")
    return f"{PACKED} {len(sizes)} {data}"
