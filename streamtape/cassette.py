"""Cassettes: recorded interactions and their YAML form (format v2, see docs/cassette-format.md).

A cassette is a list of interactions; each holds the request and what happened on the wire in
answer: status and headers, the body byte-exact, when each chunk arrived, and how the body ended.
Loading uses libyaml's safe loader only; saving writes literal blocks by hand, loads the result back
to prove every body survives, and replaces the file atomically.

A damaged file never loads as a valid one. Format v2 ends with ``lines: N``, the file's own line
count, and requires ``chunks`` and ``end`` in every response: a file cut short loses the footer (or
its count no longer matches), and a run of deleted lines changes the count, so either is rejected
with the file and the line; an in-place hand edit keeps the count (a body edit that changes its
length is caught by ``chunks``; ``streamtape lint --fix`` re-derives both). Format v1 files (no
footer, ``chunks`` optional) still load.

A hostile or mangled file gets a ``CassetteFormatError`` naming the file, the line and the field,
never an internal error: the loader (``_SafeLoader``, libyaml's parser under a small constructor of
our own) refuses anchors and aliases, every tag but the plain JSON-like ones, nesting deeper than
``MAX_DEPTH`` and files larger than ``max_cassette_bytes()``; it reads an unquoted date as the text it
is; and what loads is checked to be playable (headers encodable on the wire, times finite).
"""

from __future__ import annotations

import json
import math
import os
import re
import tempfile
import threading
import time
import uuid
from collections import OrderedDict
from collections.abc import Iterator, Sequence
from dataclasses import dataclass, field
from functools import cached_property
from operator import itemgetter, sub
from pathlib import Path
from typing import Any, cast
from urllib.parse import urlsplit

import yaml

from . import _bodytext, _filelock, _frametext, _timing
from .age import Recorded
from .errors import CassetteError, CassetteFormatError, CassetteNotFoundError, ConfigError
from .framing import framer_for
from .redact import is_secret_header
from .sse import Event
from .wire import CUT_ERRORS, CUTS, Action, Chunks, Cut, End, Respond, Send

__all__ = ["Cassette", "Interaction", "Request", "Response", "FORMAT_VERSION"]

FORMAT_VERSION = 2
_READABLE_VERSIONS = (1, 2)
_Loader = getattr(yaml, "CSafeLoader", yaml.SafeLoader)
_Dumper = getattr(yaml, "CSafeDumper", yaml.SafeDumper)
Headers = tuple[tuple[str, str], ...]

#: How deep mappings and lists may nest in a cassette file, its requests' ``json`` included.
MAX_DEPTH = 100
#: The largest time a cassette may state (``headers_at``, ``chunks``, ``at``), in seconds: 11.6 days.
MAX_SECONDS = 1_000_000
#: The environment variable that sets the largest cassette file streamtape reads, in MiB.
MAX_SIZE_VARIABLE = "STREAMTAPE_MAX_CASSETTE_MB"
_DEFAULT_MAX_MIB = 256


def max_cassette_bytes() -> int:
    """The largest cassette file streamtape reads: 256 MiB, or ``$STREAMTAPE_MAX_CASSETTE_MB`` MiB."""
    raw = os.environ.get(MAX_SIZE_VARIABLE, "").strip()
    if not raw:
        return _DEFAULT_MAX_MIB << 20
    try:
        mib = float(raw)
    except ValueError:
        mib = math.nan
    if not (math.isfinite(mib) and mib > 0):
        raise ConfigError(
            f"{MAX_SIZE_VARIABLE}={raw!r}: expected the size of the largest cassette to read, in MiB "
            f"(a positive number; unset, it is {_DEFAULT_MAX_MIB})"
        )
    return int(mib * (1 << 20))


def _too_big(size: int, limit: int) -> str:
    return (
        f"the file is {size / (1 << 20):,.1f} MiB, more than the {limit / (1 << 20):,.0f} MiB streamtape reads "
        f"(a guard against runaway files). If it really is a cassette, set {MAX_SIZE_VARIABLE} to a larger "
        "number of MiB"
    )


def _finite_float(text: str) -> float:
    value = float(text)
    if not math.isfinite(value):
        raise ValueError(f"{text} is not a finite number")
    return value


def _no_constant(name: str) -> Any:
    raise ValueError(f"{name} is not JSON")


def _json_or_none(body: bytes) -> Any:
    """The body as JSON, or ``None``: also for NaN, Infinity, numbers too large for a float, and
    nesting too deep to parse (what a cassette's ``json:`` could not hold)."""
    if not body or body.lstrip()[:1] not in (b"{", b"["):
        return None
    try:
        return json.loads(body, parse_float=_finite_float, parse_constant=_no_constant)
    except (ValueError, RecursionError):
        return None


class _Message:
    """What requests and responses share: headers looked up by name, and the body as JSON."""

    headers: Headers
    body: bytes

    @cached_property
    def json(self) -> Any:
        """The body parsed as JSON, or ``None``."""
        return _json_or_none(self.body)

    def header(self, name: str) -> str | None:
        """The first value of header ``name`` (any case), or ``None``."""
        name = name.lower()
        return next((value for key, value in self.headers if key.lower() == name), None)


@dataclass(frozen=True)
class Request(_Message):
    """What the app sent (secrets already removed)."""

    method: str
    url: str
    headers: Headers = ()
    body: bytes = b""


@dataclass(frozen=True)
class Response(_Message):
    """What came back: status, headers, body bytes, chunk timing, and how the body ended."""

    status: int
    headers: Headers = ()
    body: bytes = b""
    #: ``(arrival offset in seconds after the request, size in bytes)`` per chunk; sizes sum to len(body)
    timing: tuple[tuple[float, int], ...] = ()
    reason: str = ""
    headers_at: float = 0.0
    end: End | Cut = field(default_factory=End)

    @property
    def chunks(self) -> tuple[Send, ...]:
        return tuple(Chunks(self.body, self.timing).sends())

    @cached_property
    def events(self) -> list[Event]:
        """The body's complete events, as its content type frames them (``streamtape.framing``: SSE,
        NDJSON...; SSE without a content type). Empty for a non-stream body."""
        return framer_for(self.headers).events(self.body)

    @cached_property
    def event_ends(self) -> tuple[int, ...]:
        """Where each complete event ends in the body (what fault positions count), without parsing
        the events: the framer's cheap walk, done once per response."""
        return tuple(framer_for(self.headers).event_ends(self.body))

    @cached_property
    def run(self) -> Chunks:
        """The body as one run of chunks, the same object every time it is asked for, so what is
        worked out from it once (a fault plan's event map) is kept for it."""
        return Chunks(self.body, self.timing, self.longest_gap)

    @cached_property
    def longest_gap(self) -> float:
        """The longest silence between consecutive chunks, in seconds."""
        timing = self.timing
        ats = timing.ats if isinstance(timing, _timing.CompactTiming) else list(map(itemgetter(0), timing))
        return max(map(sub, ats[1:], ats[:-1]), default=0.0)


@dataclass(frozen=True)
class Interaction:
    """One request and what happened on the wire in answer: a response, or an error before any."""

    request: Request
    response: Response | None = None
    error: Cut | None = None
    #: when, and with which SDK and HTTP stack, it was recorded (``streamtape.age``); ``None`` for
    #: interactions recorded before streamtape dated them, built by hand, or imported: age unknown
    recorded: Recorded | None = None

    def __post_init__(self) -> None:
        if (self.response is None) == (self.error is None):
            raise ValueError("an interaction has either a response or an error before headers")

    @property
    def events(self) -> list[Event]:
        return self.response.events if self.response else []

    @property
    def body(self) -> bytes:
        return self.response.body if self.response else b""

    @property
    def chunks(self) -> tuple[Send, ...]:
        return self.response.chunks if self.response else ()

    def actions(self) -> list[Action]:
        """The wire actions that replay this interaction."""
        if self.response is None:
            assert self.error is not None
            return [self.error]
        r = self.response
        return [Respond(r.status, r.headers, r.reason, r.headers_at), r.run, r.end]

    def describe(self) -> str:
        outcome = f"{self.response.status}" if self.response else f"{self.error.error}"  # type: ignore[union-attr]
        return f"{self.request.method} {self.request.url} -> {outcome}"


@dataclass
class Cassette:
    """A list of interactions, loaded from or saved to a YAML file."""

    interactions: list[Interaction] = field(default_factory=list)
    path: Path | None = None

    def __iter__(self) -> Iterator[Interaction]:
        return iter(self.interactions)

    def __len__(self) -> int:
        return len(self.interactions)

    @classmethod
    def load(cls, path: str | os.PathLike[str]) -> Cassette:
        """Read and check the cassette at ``path``. A file whose text is exactly what it was when it
        was last loaded is not parsed again: its interactions are immutable, so a sweep of a thousand
        tests over one cassette parses it once, and what was worked out from its responses (event
        maps, fault plans) is kept with them."""
        path = Path(path)
        data = _read_data(path)
        key = str(path.resolve())
        cached = _LOADED.get(key, data)
        if cached is not None:
            return cls(list(cached), path)
        fast = _read_fast(data, path)
        loaded = cls(fast, path) if fast is not None else cls(_read_slow(_decode_text(data, path), path), path)
        _LOADED.put(key, data, tuple(loaded.interactions))
        return loaded

    @classmethod
    def loads(
        cls, text: str, *, path: Path | None = None, check_lines: bool = True, repair: list[str] | None = None
    ) -> Cassette:
        """Parse cassette text. For ``lint --fix`` repairing a hand-edited file (nothing else should
        need them): ``check_lines=False`` skips v2's line-count check, and a ``repair`` list makes a
        body whose length changed get its chunk layout re-derived (appending where it did so)."""
        limit = max_cassette_bytes()
        if len(text) > limit:
            raise CassetteFormatError(path, "", _too_big(len(text), limit))
        try:
            data = text.encode("utf-8")
        except UnicodeEncodeError:  # a lone surrogate: the YAML reader says where
            data = b""
        fast = _read_fast(data, path, check_lines, repair) if data else None
        return cls(fast if fast is not None else _read_slow(text, path, check_lines, repair), path)

    def save(self, path: str | os.PathLike[str] | None = None) -> Path:
        """Write atomically (a crash never leaves a torn file) and return the path written.

        Temporary files that earlier saves of this cassette left behind when they were killed are
        removed first (see ``_remove_stale_temps``)."""
        target = Path(path) if path is not None else self.path
        if target is None:
            raise ConfigError("Cassette.save() needs a path: this cassette was not loaded from a file")
        try:
            data = _Writer(self.interactions).render()
        except CassetteFormatError as exc:  # what was built in Python would not load back: say what
            raise CassetteFormatError(target, exc.place, f"{exc.detail}; nothing was written") from None
        try:
            _atomic_write(target, data)
        except OSError as exc:
            reason = exc.strerror or str(exc)
            raise CassetteError(
                target, f"cannot write the cassette ({reason}); the old file, if any, is unchanged"
            ) from exc
        self.path = target
        return target

    def dumps(self) -> str:
        return _Writer(self.interactions).render().decode("utf-8")


# --- reading ---------------------------------------------------------------------------------------


class _LoadCache:
    """The most recently loaded cassettes' bytes and interactions, by path; bounded by total size. A hit
    needs the very same bytes (compared whole: a hand edit that keeps the size and the modification
    time is still seen)."""

    LIMIT = 256 * 1024 * 1024

    def __init__(self) -> None:
        self._entries: OrderedDict[str, tuple[bytes, tuple[Interaction, ...], int]] = OrderedDict()
        self._lock = threading.Lock()

    def get(self, key: str, data: bytes) -> tuple[Interaction, ...] | None:
        with self._lock:
            found = self._entries.get(key)
            if found is None or found[0] != data:
                return None
            self._entries.move_to_end(key)
            return found[1]

    def put(self, key: str, data: bytes, interactions: tuple[Interaction, ...]) -> None:
        size = len(data) + sum(len(item.body) + len(item.request.body) for item in interactions)
        with self._lock:
            self._entries.pop(key, None)
            if size > self.LIMIT // 4:
                return  # a huge cassette is not kept: parsing it again is cheaper than holding it
            self._entries[key] = (data, interactions, size)
            while sum(entry[2] for entry in self._entries.values()) > self.LIMIT:
                self._entries.popitem(last=False)


_LOADED = _LoadCache()


def _read_text(path: Path) -> str:
    """The file's text (newlines translated as ``open()`` does), no more than the size limit."""
    return _decode_text(_read_data(path), path)


def _read_data(path: Path) -> bytes:
    """The file's bytes, no more than the size limit."""
    limit = max_cassette_bytes()
    try:
        with open(path, "rb") as handle:
            size = os.fstat(handle.fileno()).st_size
            if size > limit:
                raise CassetteFormatError(path, "", _too_big(size, limit))
            # a device or a pipe states no size (and a file may grow): never more than the limit
            data = handle.read(size + 1 if size else limit + 1)
            if size and len(data) > size:
                data += handle.read(limit + 1 - len(data))
    except FileNotFoundError:
        raise CassetteNotFoundError(path, "no such cassette file") from None
    except OSError as exc:
        raise CassetteNotFoundError(path, f"cannot read: {exc.strerror or exc}") from None
    if len(data) > limit:
        raise CassetteFormatError(path, "", _too_big(len(data), limit))
    return data


def _decode_text(data: bytes, path: Path) -> str:
    """A file's bytes as its text, newlines translated as ``open()`` does."""
    try:
        text = data.decode("utf-8")
    except UnicodeDecodeError as exc:
        line = data.count(b"\n", 0, exc.start) + 1
        raise CassetteFormatError(
            path, f"line {line}", f"not UTF-8 text (byte {exc.start}); is this a cassette?"
        ) from None
    if "\r" in text:
        text = text.replace("\r\n", "\n").replace("\r", "\n")
    return text


def _read_slow(text: str, path: Path | None, check_lines: bool = True, repair: list[str] | None = None,
               lifted: dict[str, tuple[int, int, Any]] | None = None, locate: bool = True,
               lifted_feeds: int = 0) -> list[Interaction]:  # fmt: skip
    """The interactions in cassette text, the YAML parser reading all of it (or, with ``lifted``, the
    text ``_lift`` left, short of ``lifted_feeds`` line feeds); every failure a ``CassetteFormatError``
    with the line (``locate=False``: a field's error with the field only, for text not yet a file)."""
    document, positions = _read_yaml(text, path, lifted)
    if check_lines and isinstance(document, dict) and document.get("version") == 2:
        _check_line_count(document, text, path, lifted_feeds)
    try:
        interactions = _parse_document(document, path, repair)
        if repair:  # each repaired field named with its line, as an error about it would be
            for number, note in enumerate(repair):
                place, _, message = note.partition("\0")
                repair[number] = f"line {_locate(text, document, positions, place)}, {place}: {message}"
        return interactions
    except CassetteFormatError as exc:
        if not locate:
            raise
        line = _locate(text, document, positions, exc.place)
        raise CassetteFormatError(
            path, f"line {line}, {exc.place}" if exc.place else f"line {line}", exc.detail
        ) from None


def _read_fast(
    data: bytes, path: Path | None, check_lines: bool = True, repair: list[str] | None = None
) -> list[Interaction] | None:
    """The interactions in a cassette's bytes, its bodies' literal blocks and packed chunk timings read
    from the bytes (``_lift``) and only the rest by the YAML parser; or ``None``, to read it all with
    the YAML parser (``_read_slow``): when there is nothing to lift, when what was lifted is not
    where the parser finds it, and when anything is wrong with the file, so that the parser, the one
    authority on YAML, says what (the same error, at the same line)."""
    lifted = _lift(data)
    if lifted is None:
        return None
    text, values, feeds = lifted
    notes: list[str] | None = None if repair is None else []
    try:
        interactions = _read_slow(text, path, check_lines, notes, values, lifted_feeds=feeds)
    except (CassetteFormatError, _Unlifted):
        return None
    if notes:  # a repair names its line, which only the whole text has
        return None
    return interactions


# What _lift takes out of a file: a body's literal block (a key's ``body: |``, with the writer's
# indicators), and a packed ``chunks`` line.
_LIFTS = re.compile(rb"body: \|(2?)([-+]?)\n|chunks: packed ")


def _lift(data: bytes) -> tuple[str, dict[str, tuple[int, int, Any]], int] | None:
    """The file's text with each body's literal block (read by ``_bodytext.read_block``) and each packed
    timing taken out, a placeholder in its place; the values, by placeholder, with the line (of that
    text) and column where each stands; and how many line feeds were taken out with them. ``None``
    when there is nothing to take out (or the file has CR line ends, or is not UTF-8)."""
    if b"\r" in data:
        return None
    nonce = uuid.uuid4().hex
    values: dict[str, tuple[int, int, Any]] = {}
    pieces: list[bytes] = []
    line = pos = taken = 0
    found = _LIFTS.search(data)
    while found is not None:
        at = found.start()
        start = data.rfind(b"\n", 0, at) + 1
        if data.count(b" ", start, at) != at - start:  # not a key at the start of its line
            found = _LIFTS.search(data, found.end())
            continue
        value: Any
        if found.group(0).startswith(b"body"):
            key_end = at + len(b"body: ")
            read = _bodytext.read_block(data, found.end(), at - start, found.group(1) == b"2", found.group(2))
            if read is None:
                found = _LIFTS.search(data, found.end())
                continue
            body, end, feeds = read
            value = _Block(body)
        else:
            key_end = at + len(b"chunks: ")
            end = data.find(b"\n", at) + 1
            packed = data[key_end : end - 1]
            if not end or not packed.isascii():
                found = _LIFTS.search(data, found.end())
                continue
            value, feeds = packed.decode("ascii"), 0
        line += data.count(b"\n", pos, at)
        placeholder = f"_streamtape_{nonce}_{len(values)}"
        values[placeholder] = (line, key_end - start, value)
        pieces += [data[pos:key_end], placeholder.encode(), b"\n"]
        line += 1
        taken += feeds
        pos = end
        found = _LIFTS.search(data, end)
    if not values:
        return None
    pieces.append(data[pos:])
    try:
        return b"".join(pieces).decode("utf-8"), values, taken
    except UnicodeDecodeError:
        return None


_YAML = "tag:yaml.org,2002:"
_STR, _INT, _FLOAT, _BOOL, _NULL = (_YAML + name for name in ("str", "int", "float", "bool", "null"))
_SEQ, _MAP = _YAML + "seq", _YAML + "map"
#: Plain values YAML 1.1 would turn into something else, read as the text they are: an unquoted
#: ``2024-01-15`` (a date, valid or not), ``<<`` (a merge key) and ``=``.
_AS_TEXT = frozenset({_YAML + "timestamp", _YAML + "merge", _YAML + "value"})
_NUMBER_TEXT = 4300  # the longest number read: Python prints integers of up to 4,300 digits
_SURROGATE = re.compile("[\ud800-\udfff]")
_NO_KEY = object()
_ALIAS = (
    "YAML anchors and aliases ('&name', '*name') are not allowed in a cassette (it never needs them, and "
    "they can make a small file expand to gigabytes): write the value out in full"
)


class _Refused(Exception):
    """Something the loader will not read, with where it is."""

    def __init__(self, mark: Any, field: str, message: str) -> None:
        super().__init__(message)
        self.line = mark.line + 1 if mark is not None else 1
        self.field = field
        self.message = message


class _SafeLoader(_Loader):  # type: ignore[misc, valid-type]
    """libyaml's parser (when installed) under a constructor of our own, which reads one document
    of mappings, lists, text, numbers, booleans and nulls, and refuses anything else with the line
    and the field: anchors and aliases, tags other than those, nesting deeper than ``MAX_DEPTH``,
    numbers longer than 4,300 digits, mapping keys that are not plain values.

    It works from the parser's events, iteratively (a deep file cannot exhaust the stack; libyaml's
    own composer is recursive C), and never builds the node graph. ``positions`` maps each mapping's
    id to ``{key: line}`` and each list's id to its items' lines, for error messages.

    ``lifted``: the values ``_lift`` took out of the text, by the placeholder that stands for each; a
    placeholder is read as its value where ``_lift`` put it, and anywhere else is ``_Unlifted``."""

    def __init__(self, stream: str, lifted: dict[str, tuple[int, int, Any]] | None = None) -> None:
        super().__init__(stream)
        self.positions: dict[int, Any] = {}
        self.lifted = lifted
        self.flow: set[int] = set()  # the ids of flow-style containers ({...}, [...])

    def get_single_data(self) -> Any:
        self.get_event()  # stream start
        if self.check_event(yaml.StreamEndEvent):
            return None  # an empty file
        self.get_event()  # document start
        data = self._document()
        self.get_event()  # document end
        if not self.check_event(yaml.StreamEndEvent):
            raise _Refused(self.get_event().start_mark, "", "a second YAML document starts here; a cassette is one")
        return data

    def _document(self) -> Any:
        get_event, positions = self.get_event, self.positions
        scalar_event, map_start, seq_start = yaml.ScalarEvent, yaml.MappingStartEvent, yaml.SequenceStartEvent
        # one frame per open mapping or list: [container, its lines, the key awaiting its value, the last key]
        stack: list[list[Any]] = []
        while True:
            event = get_event()
            kind = type(event)
            if kind is scalar_event:
                value = self._scalar(event, stack)
            elif kind is map_start or kind is seq_start:
                if event.anchor is not None:
                    raise _Refused(event.start_mark, _field(stack), _ALIAS)
                if event.tag not in (None, "!", _MAP if kind is map_start else _SEQ):
                    raise _Refused(event.start_mark, _field(stack), _bad_tag(event.tag))
                value = {} if kind is map_start else []
                if event.flow_style:
                    self.flow.add(id(value))
            elif kind is yaml.MappingEndEvent or kind is yaml.SequenceEndEvent:
                frame = stack.pop()
                if not stack:
                    return frame[0]
                continue
            else:  # an alias
                raise _Refused(event.start_mark, _field(stack), _ALIAS)
            line = event.start_mark.line + 1
            if stack:
                frame = stack[-1]
                container = frame[0]
                if type(container) is dict:
                    key = frame[2]
                    if key is _NO_KEY:
                        if kind is not scalar_event:
                            raise _Refused(event.start_mark, _field(stack),
                                           "a mapping key must be a plain value, not a list or a mapping")  # fmt: skip
                        frame[2] = value
                        frame[1][value] = line
                        continue
                    container[key] = value
                    frame[2], frame[3] = _NO_KEY, key
                else:
                    container.append(value)
                    frame[1].append(line)
            if kind is scalar_event:
                if not stack:
                    return value
                continue
            if len(stack) >= MAX_DEPTH:
                deep = f"mappings and lists nest more than {MAX_DEPTH} deep here; a cassette never needs that"
                raise _Refused(event.start_mark, _field(stack, placed=True), deep)
            lines: Any = {} if kind is map_start else []
            positions[id(value)] = lines
            stack.append([value, lines, _NO_KEY, _NO_KEY])

    def _scalar(self, event: Any, stack: list[list[Any]]) -> Any:
        if event.anchor is not None:
            raise _Refused(event.start_mark, _field(stack), _ALIAS)
        tag, value = event.tag, event.value
        if tag is None or tag == "!":
            if not event.implicit[0]:  # quoted, or a block: text
                if event.style == '"' and _SURROGATE.search(value):
                    raise _Refused(
                        event.start_mark, _field(stack), "a \\u escape names half a UTF-16 pair, not a character"
                    )
                return value
            if self.lifted and value in self.lifted:
                return self._lifted(event, value, stack)
            tag = self.resolve(yaml.ScalarNode, value, event.implicit)
            if tag == _STR or tag in _AS_TEXT:
                return value
        elif tag == _STR:
            return value
        if tag not in (_INT, _FLOAT, _BOOL, _NULL):
            raise _Refused(event.start_mark, _field(stack), _bad_tag(tag))
        kind = tag[len(_YAML) :]
        if len(value) > _NUMBER_TEXT:
            long = f"a number of {len(value):,} characters; streamtape reads numbers of up to {_NUMBER_TEXT:,}"
            raise _Refused(event.start_mark, _field(stack), long)
        node = yaml.ScalarNode(tag, value)
        try:
            if tag == _INT:
                number = self.construct_yaml_int(node)
                if number.bit_length() > 14_000 and not _printable(number):  # hex or base 60, say
                    large = f"a number of more than {_NUMBER_TEXT:,} digits; streamtape reads no larger"
                    raise _Refused(event.start_mark, _field(stack), large)
                return number
            if tag == _FLOAT:
                return self.construct_yaml_float(node)
            if tag == _BOOL:
                return self.construct_yaml_bool(node)
            return None
        except (ValueError, KeyError, IndexError, OverflowError):
            raise _Refused(event.start_mark, _field(stack), f"{_show(value)} is not a valid {kind}") from None

    def _lifted(self, event: Any, value: str, stack: list[list[Any]]) -> Any:
        """What ``_lift`` took out where it put ``value``: the value of a key in a block mapping, at the
        line and column of the original; the body itself (``_Block``) as a request's or response's
        ``body``, else the text it is."""
        line, column, lifted = self.lifted.pop(value)  # type: ignore[union-attr]
        mark, frame = event.start_mark, stack[-1] if stack else None
        if (mark.line, mark.column) != (line, column) or frame is None or type(frame[0]) is not dict:
            raise _Unlifted
        if frame[2] is _NO_KEY or id(frame[0]) in self.flow:
            raise _Unlifted
        # the frames around hold the key each is the value of as their last key (see _field)
        if type(lifted) is _Block and not (
            len(stack) == 4
            and frame[2] == "body"
            and stack[2][3] in ("request", "response")
            and stack[0][3] == "interactions"
        ):
            return lifted.data.decode("utf-8")
        return lifted


class _Unlifted(Exception):
    """A placeholder of ``_lift`` read anywhere but where it was put: the YAML parser reads the file."""


class _Block:
    """A literal block's text, read from the file's bytes (``_bodytext.read_block``): a body."""

    __slots__ = ("data",)

    def __init__(self, data: bytes) -> None:
        self.data = data


def _printable(number: int) -> bool:
    try:
        str(number)
    except ValueError:  # more digits than Python prints
        return False
    return True


def _name(key: Any) -> str:
    """A mapping key as a message shows it: as it is, or quoted when it holds a tab or a control."""
    return key if isinstance(key, str) and key.isprintable() and key else _show(key)


def _field(stack: list[list[Any]], placed: bool = False) -> str:
    """The path to where the walk is, for a message: ``interactions[0].request.json.model``.
    ``placed``: the value the walk is at was already put in the innermost container."""
    parts: list[str] = []
    for depth, (container, _, key, last) in enumerate(stack):
        inner = placed or depth + 1 < len(stack)
        if type(container) is dict:
            name = last if inner else key
            if name is _NO_KEY:
                break
            parts.append(f".{_name(name)}" if parts else _name(name))
        else:
            parts.append(f"[{len(container) - 1 if inner else len(container)}]")
    path = "".join(parts)
    return path if len(path) <= 160 else f"{path[:100]}...{path[-50:]}"


def _bad_tag(tag: str) -> str:
    shown = "!!" + tag[len(_YAML) :] if tag.startswith(_YAML) else tag
    return (
        f"the YAML tag {shown} is not allowed in a cassette, which holds only text, numbers, true/false, null, "
        "lists and mappings; remove the tag (quote the value to keep it as text)"
    )


def _show(value: Any, limit: int = 60) -> str:
    """A value for a message, shortened."""
    try:
        text = repr(value)
    except ValueError:  # an integer too long to print
        return "a number too long to show"
    return text if len(text) <= limit else f"{text[: limit - 5]}...{text[-1]}"


def _read_yaml(
    text: str, path: Path | None, lifted: dict[str, tuple[int, int, Any]] | None = None
) -> tuple[Any, dict[int, Any]]:
    """The document and its positions; every failure a ``CassetteFormatError`` with the line.
    ``lifted``: see ``_SafeLoader``; one not read where it was put is ``_Unlifted``."""
    loader: _SafeLoader | None = None
    try:
        loader = _SafeLoader(text, lifted)
        document = loader.get_single_data()
        if loader.lifted:
            raise _Unlifted
        return document, loader.positions
    except _Refused as exc:
        where = f"line {exc.line}, {exc.field}" if exc.field else f"line {exc.line}"
        raise CassetteFormatError(path, where, exc.message) from None
    except yaml.reader.ReaderError as exc:
        # libyaml counts the position in UTF-8 bytes, PyYAML's own reader in characters
        if issubclass(_Loader, getattr(yaml, "CParser", ())):
            line = text.encode("utf-8", "surrogatepass")[: exc.position].count(b"\n") + 1
        else:
            line = text.count("\n", 0, exc.position) + 1
        character = exc.character if isinstance(exc.character, int) else ord(str(exc.character)[:1] or "\0")
        raise CassetteFormatError(
            path, f"line {line}", f"not valid YAML (the character U+{character:04X} is not allowed: {exc.reason})"
        ) from None
    except yaml.YAMLError as exc:
        mark = getattr(exc, "problem_mark", None) or getattr(exc, "context_mark", None)
        place = f"line {mark.line + 1}, column {mark.column + 1}" if mark else "line 1"
        problem = getattr(exc, "problem", None) or str(exc).splitlines()[0]
        raise CassetteFormatError(path, place, f"not valid YAML ({problem})") from None
    except UnicodeEncodeError as exc:  # text handed to loads() holding a lone surrogate
        line = text.count("\n", 0, exc.start) + 1
        raise CassetteFormatError(
            path, f"line {line}", "not UTF-8 text (a lone surrogate); is this a cassette?"
        ) from None
    finally:
        if loader is not None:
            loader.dispose()


class _Reader:
    """Walks a loaded document with a path for error messages: ``interactions[2].response.status``."""

    def __init__(self, path: Path | None) -> None:
        self.path = path
        self.strict = False  # format v2: every response states its chunks and its end
        self.repair: list[str] | None = None  # lint --fix: re-derive chunks that no longer add up, noted here

    def fail(self, place: str, message: str) -> CassetteFormatError:
        return CassetteFormatError(self.path, place, message)

    def mapping(self, value: Any, place: str) -> dict[str, Any]:
        if not isinstance(value, dict):
            raise self.fail(place, f"expected a mapping, found {_kind(value)}")
        return value

    def required(self, mapping: dict[str, Any], key: str, place: str, kind: type | tuple[type, ...]) -> Any:
        if key not in mapping:
            raise self.fail(place, f"missing required field {key!r}")
        return self.typed(mapping[key], f"{place}.{key}", kind)

    def typed(self, value: Any, place: str, kind: type | tuple[type, ...]) -> Any:
        if not isinstance(value, kind) or isinstance(value, bool) and kind is not bool:
            names = " or ".join(k.__name__ for k in (kind if isinstance(kind, tuple) else (kind,)))
            raise self.fail(place, f"expected {names}, found {_kind(value)}")
        return value

    def seconds(self, value: Any, place: str) -> float:
        """A time offset: a finite number from 0 to ``MAX_SECONDS``."""
        self.typed(value, place, (int, float))
        if not 0 <= value <= MAX_SECONDS:  # NaN compares false too
            raise self.fail(place, f"expected seconds from 0 to {MAX_SECONDS:,}, found {_show(value)}")
        return float(value)


def _kind(value: Any) -> str:
    if value is None:
        return "nothing"
    names: dict[type, str] = {dict: "a mapping", list: "a list", str: "text"}
    return names.get(type(value), f"{type(value).__name__} {_show(value)}")


def _parse_document(document: Any, path: Path | None, repair: list[str] | None = None) -> list[Interaction]:
    r = _Reader(path)
    r.repair = repair
    if document is None:
        raise r.fail("", "the file is empty; a cassette starts with 'version: 1'")
    top = r.mapping(document, "top level")
    version = top.get("version")
    if version not in _READABLE_VERSIONS or isinstance(version, bool):
        hint = (
            "a newer streamtape wrote it; upgrade streamtape"
            if isinstance(version, int) and version > FORMAT_VERSION
            else ("is this a streamtape cassette? (vcrpy cassettes are not)")
        )
        raise r.fail("version", f"expected 'version: {FORMAT_VERSION}' (or 1), found {_show(version)}; {hint}")
    r.strict = version >= 2
    if r.strict and "lines" not in top:
        raise r.fail("end of file", _CUT_SHORT)
    items = r.required(top, "interactions", "top level", list)
    return [_parse_interaction(r, item, f"interactions[{i}]") for i, item in enumerate(items)]


def _locate(text: str, document: Any, positions: dict[int, Any], place: str) -> int:
    """The line a field's error is about: the field's own line when the loader saw it, else that
    of the nearest field around it that it saw, else the first line (the end for ``end of file``)."""
    if place == "end of file":
        return text.count("\n") + (0 if text.endswith("\n") else 1)
    line, node, rest = None, document, place
    while rest and isinstance(node, (dict, list)):
        table = positions.get(id(node))
        if table is None:
            break
        if isinstance(node, list):
            match = re.match(r"\[(\d+)\]", rest)
            if not match or int(match.group(1)) >= len(node):
                break
            index = int(match.group(1))
            line, node, rest = table[index], node[index], rest[match.end() :]
            continue
        step = rest[1:] if rest.startswith(".") and line is not None else rest
        # the longest key the rest of the place starts with (a header name may hold dots)
        keys = [k for k in node if step.startswith(str(k)) and step[len(str(k)) : len(str(k)) + 1] in ("", ".", "[")]
        if not keys:
            break
        key = max(keys, key=lambda k: len(str(k)))
        line, node, rest = table.get(key, line), node[key], step[len(str(key)) :]
    if line is not None:
        return int(line)
    return next((n for n, row in enumerate(text.splitlines(), 1) if row.strip() and not row.startswith("#")), 1)


_CUT_SHORT = (
    "the file ends before its closing 'lines: N' field: it was cut short (an interrupted copy, a bad "
    "merge?). Re-record it, or restore it from version control"
)


def _check_line_count(document: dict[str, Any], text: str, path: Path | None, lifted: int = 0) -> None:
    """v2's footer: the file's line count, written last, so truncation and deleted lines are seen.
    ``lifted``: the line feeds ``_lift`` took out of ``text``."""
    declared = document.get("lines")
    actual = text.count("\n") + lifted + (0 if text.endswith("\n") else 1)
    where = f"line {actual}"
    if "lines" not in document:
        raise CassetteFormatError(path, where, _CUT_SHORT)
    if list(document)[-1] != "lines":
        raise CassetteFormatError(path, where, f"'lines' must be the last field of the file; {_CUT_SHORT}")
    if isinstance(declared, bool) or not isinstance(declared, int):
        raise CassetteFormatError(
            path, where, f"expected 'lines: N' with N the file's line count, found {_show(declared)}"
        )
    if declared != actual:
        raise CassetteFormatError(
            path,
            where,
            f"the file has {actual} lines but says it has {_show(declared)}: lines were removed or added since "
            "it was written (cut short, or a bad merge). If you edited it by hand, run `streamtape lint --fix "
            f"{path if path is not None else 'FILE'}` to check and re-count it; else re-record it",
        )


def _parse_interaction(r: _Reader, item: Any, place: str) -> Interaction:
    item = r.mapping(item, place)
    request = _parse_request(r, r.required(item, "request", place, dict), f"{place}.request")
    recorded = _parse_recorded(r, item["recorded"], f"{place}.recorded") if "recorded" in item else None
    if "error" in item:
        return Interaction(request, error=_parse_cut(r, item["error"], f"{place}.error"), recorded=recorded)
    response = _parse_response(r, r.required(item, "response", place, dict), f"{place}.response")
    return Interaction(request, response, recorded=recorded)


def _parse_recorded(r: _Reader, raw: Any, place: str) -> Recorded:
    """``recorded: {at: 2026-12-07T01:40:00Z, sdk: anthropic 2.17.0, stack: httpx2}``; keys it does
    not know are left (a newer streamtape may add some)."""
    raw = r.mapping(raw, place)
    at = r.required(raw, "at", place, str)
    if Recorded(at).when is None:
        raise r.fail(f"{place}.at", f"expected a UTC time stamp such as '2026-12-07T01:40:00Z', found {_show(at)}")
    sdk, stack = (r.typed(raw[key], f"{place}.{key}", str) if raw.get(key) is not None else None
                  for key in ("sdk", "stack"))  # fmt: skip
    return Recorded(at, sdk, stack)


# What HTTP (and h11, which frames `streamtape serve`'s responses) allows on the wire.
_TOKEN = re.compile(r"[-!#$%&'*+.^_`|~0-9A-Za-z]+")
_FIELD_VALUE = re.compile(r"(?:[^\x00\s]+(?:[ \t]+[^\x00\s]+)*)?", re.ASCII)
_REASON = re.compile(r"[^\x00\n\r\f\v]*")
_URL_FORBIDDEN = re.compile(r"[\x00-\x20\x7f]")
_MAX_URL = 65536  # httpx's limit


def _parse_request(r: _Reader, raw: dict[str, Any], place: str) -> Request:
    method = r.required(raw, "method", place, str)
    if not _TOKEN.fullmatch(method):
        raise r.fail(f"{place}.method", f"expected an HTTP method such as POST or GET, found {_show(method)}")
    url = r.required(raw, "url", place, str)
    _check_url(r, url, f"{place}.url")
    headers = _parse_headers(r, raw.get("headers"), f"{place}.headers")
    body = _json_body(r, raw["json"], f"{place}.json") if "json" in raw else _parse_body(r, raw, place)
    return Request(method, url, headers, body)


def _check_url(r: _Reader, url: str, place: str) -> None:
    found = _URL_FORBIDDEN.search(url)
    if found:
        raise r.fail(place, f"the URL holds {found.group()!r}, which a URL cannot; percent-encode it ({_show(url)})")
    if len(url) > _MAX_URL:
        raise r.fail(place, f"a URL of {len(url):,} characters; HTTP clients send at most {_MAX_URL:,}")
    try:
        parts = urlsplit(url)
        parts.port  # noqa: B018 - what matching reads, checked now
    except ValueError as exc:
        raise r.fail(place, f"not a valid URL ({exc}): {_show(url)}") from None
    if parts.scheme.lower() not in ("http", "https") or not parts.hostname:
        raise r.fail(place, f"expected an absolute http:// or https:// URL with a host, such as "
                            f"https://api.anthropic.com/v1/messages, found {_show(url)}")  # fmt: skip
    if not parts.hostname.isascii():
        raise r.fail(place, f"the host {_show(parts.hostname)} is not ASCII: write it as HTTP sends it, "
                            "in its xn-- (punycode) form")  # fmt: skip


def _json_body(r: _Reader, value: Any, place: str) -> bytes:
    """A request's ``json:`` as the body bytes; it must be JSON (no NaN or infinity)."""
    try:
        text = json.dumps(value, separators=(",", ":"), ensure_ascii=False, allow_nan=False)
    except ValueError:
        where, bad = _non_finite(value, place)
        raise r.fail(where, f"{_show(bad)} is not a JSON number; quote it to keep it as text") from None
    return text.encode("utf-8")


def _non_finite(value: Any, place: str) -> tuple[str, Any]:
    """Where in a ``json:`` value a NaN or an infinity is (as a value or a key)."""
    stack = [(value, place)]
    while stack:
        item, where = stack.pop()
        if isinstance(item, float) and not math.isfinite(item):
            return where, item
        if isinstance(item, dict):
            for key, child in item.items():
                if isinstance(key, float) and not math.isfinite(key):
                    return where, key
                stack.append((child, f"{where}.{key}"))
        elif isinstance(item, list):
            stack.extend((child, f"{where}[{i}]") for i, child in enumerate(item))
    return place, value


def _parse_response(r: _Reader, raw: dict[str, Any], place: str) -> Response:
    status = r.required(raw, "status", place, int)
    if not 100 <= status <= 999:
        raise r.fail(f"{place}.status", f"expected an HTTP status between 100 and 999, found {_show(status)}")
    body = _parse_body(r, raw, place)
    if r.strict:
        for key in ("body", "chunks", "end"):
            if key not in raw:
                raise r.fail(place, f"missing required field {key!r} (format v2 states every response's body, "
                                    "chunks and end; was the file cut short?)")  # fmt: skip
    headers = _parse_headers(r, raw.get("headers"), f"{place}.headers")
    timing = _parse_timing(r, raw.get("chunks"), f"{place}.chunks", body, headers)
    end = raw.get("end", "clean")
    if not (end == "clean" or isinstance(end, dict)):
        raise r.fail(f"{place}.end", f"expected 'clean' or a mapping with 'error' and 'message', found {_kind(end)}")
    reason = r.typed(raw.get("reason", ""), f"{place}.reason", str)
    _check_wire_text(r, reason, f"{place}.reason", "the reason phrase", _REASON)
    return Response(
        status=status,
        headers=headers,
        body=body,
        timing=timing,
        reason=reason,
        headers_at=r.seconds(raw.get("headers_at", 0.0), f"{place}.headers_at"),
        end=End(timing[-1][0] if timing else 0.0) if end == "clean" else _parse_cut(r, end, f"{place}.end"),
    )


def _parse_headers(r: _Reader, raw: Any, place: str) -> Headers:
    if raw is None:
        return ()
    if isinstance(raw, list):  # [[name, value], ...], as other tools write them
        items = [_pair(r, item, f"{place}[{i}]") for i, item in enumerate(raw)]
    else:
        items = list(r.mapping(raw, place).items())
    pairs: list[tuple[str, str]] = []
    for name, value in items:
        if not isinstance(name, str) or not _TOKEN.fullmatch(name):
            where = f"{place}.{_name(name)}" if isinstance(name, str) and len(name) < 100 else place
            raise r.fail(where, f"{_show(name)} is not a header name (HTTP allows letters, digits and "
                                "!#$%&'*+-.^_`|~ in one)")  # fmt: skip
        values = value if isinstance(value, list) else [value]
        for v in values:
            if not isinstance(v, (str, int, float)) or isinstance(v, bool):
                raise r.fail(f"{place}.{name}", f"expected a header value (text), found {_kind(v)}")
            text = str(v)
            _check_wire_text(r, text, f"{place}.{name}", "a header value", _FIELD_VALUE)
            pairs.append((name, text))
    return tuple(pairs)


def _check_wire_text(r: _Reader, text: str, place: str, what: str, pattern: re.Pattern[str]) -> None:
    """Text that goes on the wire as it is: Latin-1, and what ``pattern`` (HTTP's grammar) allows."""
    try:
        text.encode("latin-1")
    except UnicodeEncodeError as exc:
        why = f"{text[exc.start]!r} is not Latin-1, and HTTP sends header text as bytes 0-255"
        raise r.fail(
            place, f"{_show(text)} cannot be sent as {what}: {why}. Replace it (or percent-encode it)"
        ) from None
    if not pattern.fullmatch(text):
        ends = ", and white space at its start or end" if pattern is _FIELD_VALUE else ""
        raise r.fail(place, f"{_show(text)} cannot be sent as {what}: HTTP forbids CR, LF and NUL in it{ends}")


def _pair(r: _Reader, item: Any, place: str) -> tuple[str, Any]:
    if not (isinstance(item, list) and len(item) == 2 and isinstance(item[0], str)):
        raise r.fail(place, f"expected a [name, value] pair, found {_kind(item)}")
    return item[0], item[1]


def _parse_body(r: _Reader, raw: dict[str, Any], place: str) -> bytes:
    encoding = raw.get("encoding", "text")
    if type(raw.get("body")) is _Block:  # a literal block read from the bytes: the body, or the text it is
        if encoding == "text":
            return cast(_Block, raw["body"]).data
        raw = {**raw, "body": raw["body"].data.decode("utf-8")}
    if encoding == _frametext.ENCODING:  # an AWS event stream, one decoded frame per entry
        return _frametext.body_of(raw.get("body", []), f"{place}.body", r.fail)
    text = r.typed(raw.get("body", ""), f"{place}.body", str)
    if encoding == "text":
        return text.encode("utf-8")
    if encoding == "escaped":
        return _bodytext.decode_escaped(text)
    raise r.fail(f"{place}.encoding", f"expected 'text', 'escaped' or 'eventstream', found {_show(encoding)}")


_TIMING_FORM = "expected 'SECONDS:BYTES' pairs separated by spaces, e.g. '0.412:490 0.415:132'"


def _parse_timing(
    r: _Reader, raw: Any, place: str, body: bytes, headers: Headers = ()
) -> tuple[tuple[float, int], ...]:
    if raw is None:
        return ((0.0, len(body)),) if body else ()
    text = r.typed(raw, place, str)
    compact = _compact_timing(r, text, place)
    ats: Sequence[float]
    sizes: Sequence[int]
    if compact is not None:
        ats, sizes = compact.ats, compact.sizes
    else:
        fields = text.replace(":", " ").split()
        try:
            ats = tuple(map(float, fields[0::2]))
            sizes = tuple(map(int, fields[1::2]))
        except ValueError:
            raise r.fail(place, _TIMING_FORM) from None
        if len(ats) != len(sizes):
            raise r.fail(place, _TIMING_FORM)
    # Fast (a 10,000-chunk stream is read on every replay): with no '-' in the text no number is
    # negative, and with no 'n' none is NaN or infinite unless it overflowed, which max() sees.
    if compact is None and ("-" in raw or "n" in raw or "N" in raw or (ats and max(ats) > MAX_SECONDS)):
        for number, (at, size) in enumerate(zip(ats, sizes, strict=True), 1):
            if not 0 <= at <= MAX_SECONDS:  # NaN compares false too
                raise r.fail(place, f"chunk {number} arrives at {_show(at)} seconds; expected 0 to {MAX_SECONDS:,}")
            if size < 0:
                raise r.fail(place, f"chunk {number} has {size} bytes; a chunk cannot be smaller than 0")
    total = sum(sizes)
    if total != len(body):
        if r.repair is None:
            raise r.fail(place, f"chunk sizes add up to {total} bytes but the body has {len(body)}")
        r.repair.append(f"{place}\0chunk sizes add up to {total} bytes but the body has {len(body)} (edited by hand?)")
        return _rechunked(tuple(ats), tuple(sizes), len(body), _event_ends(headers, body))
    if compact is not None:
        return cast(tuple[tuple[float, int], ...], compact)  # reads as that tuple, in an eighth of its memory
    return tuple(zip(ats, sizes, strict=True))


def _compact_timing(r: _Reader, text: str, place: str) -> _timing.CompactTiming | None:
    """A long stream's timing, read without parsing a number at a time (``streamtape._timing``): the
    packed form, or the text form as the writer spells it; ``None`` for the text form otherwise (its
    messages say what is wrong)."""
    first = text.split(" ", 1)[0] if len(text) < 64 else text[:64].split(" ", 1)[0]
    if text.startswith(_timing.PACKED) or (first.isalpha() and first.isascii()):  # packed, or meant to be
        timing = _timing.parse_packed(text, MAX_SECONDS)
        if isinstance(timing, str):
            raise r.fail(place, timing)
        return timing
    if text.count(" ") + 1 < _timing.COMPACT_FROM:
        return None
    pairs = _timing.parse_text(text)
    if pairs is None or max(pairs.ats, default=0.0) > MAX_SECONDS:  # beyond: the message says which
        return None
    return pairs


def _event_ends(headers: Headers, body: bytes) -> frozenset[int]:
    """Where the body's events end (its content type's framer), for fitting chunks to an edited body."""
    from .framing import framer_for

    try:
        return frozenset(framer_for(headers).event_ends(body))
    except Exception:  # noqa: BLE001 - a body no framer reads: the size-keeping layout below
        return frozenset()


def _rechunked(
    ats: tuple[float, ...], sizes: tuple[int, ...], length: int, ends: frozenset[int] = frozenset()
) -> tuple[tuple[float, int], ...]:
    """The recorded layout fitted to a body edited by hand (or by a response hook). When the stream's
    events are known (``ends``), each recorded chunk boundary stays on an event boundary: where it
    was, if that is still the end of an event, else moved by what the edit added or removed (the
    boundaries after the edit), else the chunk joins the next one; every chunk keeps its arrival time.
    Otherwise every chunk keeps its arrival time and size while the body lasts, and the last one takes
    what was added, or the cut ones go."""
    if ends and ats:
        delta = length - sum(sizes)
        timing, last, position = [], 0, 0
        for at, size in zip(ats[:-1], sizes[:-1], strict=True):
            position += size
            for boundary in (position, position + delta):
                if last < boundary < length and boundary in ends:
                    timing.append((at, boundary - last))
                    last = boundary
                    break
        if last < length or not timing:
            timing.append((ats[-1], length - last))
        return tuple(timing)
    timing, left = [], length
    for at, size in zip(ats, sizes, strict=True):
        if left <= 0:
            break
        timing.append((at, min(size, left)))
        left -= timing[-1][1]
    if left > 0:
        at = timing[-1][0] if timing else (ats[-1] if ats else 0.0)
        timing = [*timing[:-1], (at, (timing[-1][1] if timing else 0) + left)]
    return tuple(timing)


def _parse_cut(r: _Reader, raw: Any, place: str) -> Cut:
    raw = r.mapping(raw, place)
    error = r.required(raw, "error", place, str)
    if error not in CUT_ERRORS and error not in CUTS:  # a v1 name, or a cut kind's own name
        raise r.fail(f"{place}.error", f"unknown error {_show(error)}; expected one of {', '.join(sorted(CUT_ERRORS))}")
    message = r.typed(raw["message"], f"{place}.message", str) if "message" in raw else None
    return Cut(error, message, r.seconds(raw.get("at", 0.0), f"{place}.at"))


# --- writing ---------------------------------------------------------------------------------------

_HEADER = "# streamtape cassette, format v2 (docs/cassette-format.md). Bodies are byte-exact.\n"


class _PlainDumper(_Dumper):  # type: ignore[misc, valid-type]
    """Never writes an anchor and an alias for an object met twice (one request's ``json`` in two
    interactions): a cassette spells every value out, and the loader refuses aliases."""

    def ignore_aliases(self, data: Any) -> bool:
        return True


class _Writer:
    """Renders interactions, as UTF-8; bodies become hand-written literal blocks (and long timings
    packed), and the whole is checked by loading it back as ``Cassette.load`` would."""

    def __init__(self, interactions: Sequence[Interaction]) -> None:
        self.interactions = interactions
        self.nonce = uuid.uuid4().hex
        self.bodies: list[tuple[bytes, int]] = []  # (body, key indent), in document order
        self.written: list[bytes] = []  # every body written, literal blocks and event-stream frames, in order
        self.packed: list[str] = []  # the packed timings, in document order
        self.escaped: set[int] = set()  # the bodies written escaped although they are text

    def render(self) -> bytes:
        doc = {"version": FORMAT_VERSION, "interactions": [self._interaction(i) for i in self.interactions]}
        text = yaml.dump(doc, Dumper=_PlainDumper, sort_keys=False, allow_unicode=True, width=1 << 30)
        skeleton = text.encode("utf-8")
        rendered = self._fill(skeleton)
        failed = self._verify(rendered)
        if failed:  # text that did not load back as itself: written escaped, and checked again
            self.escaped |= failed
            rendered = self._fill(skeleton)
            if self._verify(rendered):
                raise AssertionError("streamtape bug: a body does not survive the YAML round trip; nothing was written")
        return rendered

    def _fill(self, skeleton: bytes) -> bytes:
        """The document with every placeholder filled in, its header and its footer."""
        placeholder = re.compile(rb" __streamtape_(body|chunks)_(\d+)_" + self.nonce.encode() + rb"__\n")
        pieces: list[bytes | memoryview] = [_HEADER.encode()]
        feeds, at = 1, 0
        for found in placeholder.finditer(skeleton):
            pieces.append(skeleton[at : found.start()])
            feeds += skeleton.count(b"\n", at, found.start())
            index = int(found.group(2))
            if found.group(1) == b"body":
                block, lines = self._block(index)
                pieces += block
                feeds += lines
            else:
                pieces.append(f" {self.packed[index]}\n".encode("ascii"))
                feeds += 1
            at = found.end()
        pieces.append(skeleton[at:])
        feeds += skeleton.count(b"\n", at)
        pieces.append(f"lines: {feeds + 1}\n".encode())  # the footer counts itself
        return b"".join(pieces)

    def _placeholder(self, body: bytes, indent: int) -> str:
        self.bodies.append((body, indent))
        self.written.append(body)
        return f"__streamtape_body_{len(self.bodies) - 1}_{self.nonce}__"

    def _block(self, index: int) -> tuple[list[bytes | memoryview], int]:
        """The body as a literal block, in text form when it is text a literal block carries (unless
        it failed to load back as itself), else escaped; and how many line feeds it takes."""
        body, indent = self.bodies[index]
        if index not in self.escaped and _bodytext.is_plain(body):
            return _bodytext.block(body, indent)
        pieces, feeds = _bodytext.block(_bodytext.encode_escaped(body).encode("utf-8"), indent)
        return [*pieces, b" " * indent + b"encoding: escaped\n"], feeds + 1

    def _chunks(self, timing: Sequence[tuple[float, int]]) -> str:
        """The ``chunks`` field (``streamtape._timing``); a packed one by a placeholder."""
        text = _timing.dump(timing)
        if not text.startswith(_timing.PACKED):
            return text
        self.packed.append(text)
        return f"__streamtape_chunks_{len(self.packed) - 1}_{self.nonce}__"

    def _interaction(self, item: Interaction) -> dict[str, Any]:
        out: dict[str, Any] = {"recorded": item.recorded.as_dict()} if item.recorded is not None else {}
        out["request"] = self._request(item.request)
        if item.response is not None:
            out["response"] = self._response(item.response)
        else:
            out["error"] = _cut_dict(item.error)  # type: ignore[arg-type]
        return out

    def _request(self, req: Request) -> dict[str, Any]:
        out: dict[str, Any] = {"method": req.method, "url": req.url, "headers": _headers_dict(req.headers)}
        if _json_form(req) is not None:
            out["json"] = req.json  # readable; matching compares parsed JSON, never bytes
        elif req.body:
            out["body"] = self._placeholder(req.body, 4)
        return out

    def _response(self, resp: Response) -> dict[str, Any]:
        out: dict[str, Any] = {"status": resp.status}
        if resp.reason:
            out["reason"] = resp.reason
        out["headers"] = _headers_dict(resp.headers)
        out["headers_at"] = round(resp.headers_at, 4)
        frames = _frames(resp)
        if frames is not None:  # an AWS event stream: readable frames, encoded again on load
            out["encoding"] = _frametext.ENCODING
            out["body"] = frames
            self.written.append(resp.body)
        else:
            out["body"] = self._placeholder(resp.body, 4)
        out["chunks"] = self._chunks(resp.timing)
        out["end"] = "clean" if isinstance(resp.end, End) else _cut_dict(resp.end)
        return out

    def _verify(self, rendered: bytes) -> set[int]:
        """Load the whole document back before anything is written, as ``Cassette.load`` reads it: a
        save never corrupts a file, nor writes one that would not load (a header value HTTP cannot
        carry, a NaN time). Returns the bodies (by placeholder) that did not load back as themselves."""
        loaded = _read_fast(rendered, None)
        if loaded is None:  # the YAML parser reads it all
            loaded = _read_slow(rendered.decode("utf-8"), None, locate=False)
        actual: list[bytes] = []
        for item in loaded:
            if _json_form(item.request) is None and item.request.body:  # as _request decided
                actual.append(item.request.body)
            if item.response is not None:
                actual.append(item.response.body)
        if len(actual) != len(self.written):
            raise AssertionError("streamtape bug: a body does not survive the YAML round trip; nothing was written")
        failed: set[int] = set()
        for got, wanted in zip(actual, self.written, strict=True):
            if got != wanted:
                indexes = {i for i, (body, _) in enumerate(self.bodies) if body is wanted}
                if not indexes or indexes & self.escaped:  # event-stream frames, or escaped already
                    raise AssertionError(
                        "streamtape bug: a body does not survive the YAML round trip; nothing was written"
                    )
                failed |= indexes
        return failed


def _frames(resp: Response) -> list[dict[str, Any]] | None:
    """An event-stream body as readable frames (``streamtape._frametext``), when they load back as
    its bytes; ``None`` for any other body (a literal block)."""
    if not resp.body or framer_for(resp.headers).name != "eventstream":
        return None
    frames = _frametext.entries(resp.body)
    text = yaml.dump({"body": frames}, Dumper=_PlainDumper, sort_keys=False, allow_unicode=True, width=1 << 30)
    try:
        document, _ = _read_yaml(text, None)
        loaded = _frametext.body_of(document["body"], "body", _Reader(None).fail)
    except CassetteFormatError:
        return None
    return frames if loaded == resp.body else None


def _json_form(req: Request) -> Any:
    """The request's JSON, when the ``json:`` form can hold it, else ``None`` (the body is then written
    as it is): not nested deeper than a cassette allows, and with no lone surrogate in a string."""
    value = req.json
    if value is None:
        return None
    body, room = req.body, MAX_DEPTH - 4  # the document, interactions, the item and request hold it
    if body.count(b"[") + body.count(b"{") > room and not _nests_within(value, room):
        return None
    if b"\\u" in body:  # only a \u escape can make a lone surrogate
        try:
            json.dumps(value, ensure_ascii=False).encode("utf-8")
        except UnicodeEncodeError:
            return None
    return value


def _nests_within(value: Any, limit: int) -> bool:
    stack = [(value, 1)]
    while stack:
        item, depth = stack.pop()
        children = item.values() if isinstance(item, dict) else item if isinstance(item, list) else None
        if children is None:
            continue
        if depth > limit:
            return False
        stack.extend((child, depth + 1) for child in children)
    return True


def _headers_dict(headers: Headers) -> dict[str, Any]:
    out: dict[str, Any] = {}
    for name, value in headers:
        if is_secret_header(name):
            continue  # a last line of defence: the recorder has removed them already
        if name in out:
            out[name] = [*out[name], value] if isinstance(out[name], list) else [out[name], value]
        else:
            out[name] = value
    return out


def _cut_dict(cut: Cut) -> dict[str, Any]:
    out: dict[str, Any] = {"error": cut.error}
    if cut.message is not None:
        out["message"] = cut.message
    out["at"] = round(cut.at, 4)
    return out


# --- the atomic write, and what killed writes leave behind -----------------------------------------
#
# A save writes ``.NAME.XXXXXXXX.tmp`` beside the cassette and renames it over ``NAME``. A process
# killed between the two leaves the temporary file, so every save first removes those of its
# cassette that no live save is writing. A save holds a lock on its temporary file (``_filelock``)
# from just after creating it until it has renamed it, so on POSIX a temporary file nobody holds a
# lock on is abandoned, empty ones included (a save killed before it wrote anything). A save that is
# between creating its file and locking it may find it removed meanwhile: once it holds the lock it
# checks that the name still leads to its file, and starts over with a new one if not (a remover holds
# the lock while it removes, so after that check nobody can). Windows cannot rename an open file, so
# there a save unlocks it just before the rename, and only a temporary file a minute old is removed.

_WINDOWS = os.name == "nt"
_STALE_SECONDS = 60.0


def _atomic_write(target: Path, data: bytes) -> None:
    target.parent.mkdir(parents=True, exist_ok=True)
    _remove_stale_temps(target)
    fd, tmp = _locked_temp(target)
    try:
        try:
            with os.fdopen(fd, "wb", closefd=False) as handle:
                handle.write(data)
            os.fsync(fd)
            os.chmod(tmp, target.stat().st_mode & 0o777 if target.exists() else 0o644)
            if _WINDOWS:
                os.close(fd)
                fd = -1
            os.replace(tmp, target)
        finally:
            if fd >= 0:
                os.close(fd)
    except BaseException:
        Path(tmp).unlink(missing_ok=True)
        raise


def _locked_temp(target: Path) -> tuple[int, str]:
    """A new temporary file beside ``target``, open and locked (in use: no other save removes it)."""
    while True:
        fd, tmp = tempfile.mkstemp(prefix=f".{target.name}.", suffix=".tmp", dir=target.parent)
        try:
            _filelock.lock(fd)
            held, named = os.fstat(fd), os.stat(tmp, follow_symlinks=False)
        except FileNotFoundError:  # another save found it empty and unlocked, and removed it
            os.close(fd)
            continue
        except BaseException:
            os.close(fd)
            Path(tmp).unlink(missing_ok=True)
            raise
        if (held.st_dev, held.st_ino) == (named.st_dev, named.st_ino):
            return fd, tmp
        os.close(fd)  # removed, and the name taken again since: not ours to touch


def _temp_names(target: Path) -> re.Pattern[str]:
    """The names ``tempfile.mkstemp`` gives a save's temporary files of ``target``, and no others."""
    return re.compile(re.escape(f".{target.name}.") + r"[a-z0-9_]{8}" + re.escape(".tmp"))


def _remove_stale_temps(target: Path) -> int:
    """Remove the temporary files that killed saves of ``target`` left; returns how many. Never
    fails a save: what cannot be examined or removed is left."""
    names = _temp_names(target)
    try:
        entries = [entry for entry in os.scandir(target.parent) if names.fullmatch(entry.name)]
    except OSError:
        return 0
    removed = 0
    for entry in entries:
        try:
            removed += entry.is_file(follow_symlinks=False) and _remove_if_abandoned(Path(entry.path))
        except OSError:
            continue
    return removed


def _remove_if_abandoned(path: Path) -> bool:
    fd = os.open(path, os.O_RDONLY | getattr(os, "O_NOFOLLOW", 0) | getattr(os, "O_BINARY", 0))
    try:
        if not _filelock.try_lock(fd):
            return False  # a live save is writing it
        info = os.fstat(fd)
        age = time.time() - info.st_mtime
        if _WINDOWS and age < _STALE_SECONDS:
            return False  # perhaps a save that has unlocked it to rename it
        now = os.stat(path, follow_symlinks=False)
        if (now.st_dev, now.st_ino) != (info.st_dev, info.st_ino):
            return False
        if not _WINDOWS:
            path.unlink()  # while holding its lock
            return True
    finally:
        os.close(fd)
    path.unlink()  # Windows removes no file that is open, ours included
    return True
