"""Hypothesis strategies that draw faults and fault schedules valid for one cassette.

    from hypothesis import given
    from streamtape import strategies as st_faults

    @given(schedule=st_faults.schedules("tests/cassettes/story.yaml", max_attempts=3))
    def test_app_never_crashes(schedule):
        with streamtape.use_cassette("tests/cassettes/story.yaml", faults=schedule):
            result = my_app.answer(anthropic.Anthropic(), "Write a story")
        assert result.ok or result.error_shown_to_user

What is drawn comes from the whole catalogue (``streamtape.faults.CATALOGUE``: the stream faults,
the protocol faults, the chunk-boundary faults, a provider's own and the user's), less the ones that
mean nothing for this cassette (each kind is tried on the cassette's recorded responses first: a
Gemini fault on an Anthropic stream, ``bad_chunk`` on a ``Content-Length`` body, ``split_utf8`` on
ASCII text are left out). Positions are the cassette's: event positions as its framer counts them
(``streamtape.framing.framer_for``), byte positions anywhere in the body, with the places parsers
break (inside a UTF-8 character, between CR and LF, at an event's end) drawn more often.

Shrinking goes toward fewer attempts, fewer faults per attempt, simpler faults (the order of
``KINDS``: a disconnect before a rate limit before a corrupt event before a protocol fault) and
earlier positions, because the draws are ordered so: Hypothesis shrinks each choice toward its first
value. A drawn schedule is a ``Schedule`` whose ``spec()`` (and ``repr``) is a string
``streamtape.faults.parse`` reads back as the same schedule, ready for
``@pytest.mark.tape_faults(...)``; Hypothesis shows it in its failure report (``note``). The same
seed (``@hypothesis.seed(N)``, ``pytest --hypothesis-seed=N``) draws the same schedules.

Hypothesis is an optional extra: ``pip install 'pytest-streamtape[explore]'``.
"""

from __future__ import annotations

import contextlib
import functools
import os
from collections.abc import Callable, Iterable, Sequence
from dataclasses import dataclass, field, fields, replace
from pathlib import Path
from typing import Any

try:
    from hypothesis import assume, note
    from hypothesis import strategies as st
except ImportError:  # pragma: no cover - exercised in a process without hypothesis
    raise ImportError(
        "streamtape.strategies needs Hypothesis, which is not installed: pip install 'pytest-streamtape[explore]' "
        "(or pip install hypothesis)"
    ) from None

from .cassette import Cassette, Interaction
from .errors import ConfigError, StreamtapeError
from .faults import CATALOGUE, CUT, REPLACE, Context, Fault, Schedule, apply
from .faults.splits import crlf_splits, utf8_splits
from .framing import framer_for
from .providers import provider_for

__all__ = ["FAMILIES", "KINDS", "Drawn", "Shape", "as_drawn", "canonical", "drawn", "families", "faults", "refine",
           "schedules", "shape", "spec_of", "steps", "sweep", "sweep_size"]

#: The built-in faults from the simplest to the most exotic: what shrinking moves toward. Faults not
#: named here (a provider's own, the user's) come after them, in the catalogue's order.
KINDS: tuple[str, ...] = (
    "disconnect", "reset", "truncate", "rate_limit", "overloaded", "server_error", "error_event", "stall", "refuse",
    "timeout", "http_error", "connect_timeout", "drop", "duplicate", "corrupt", "ping", "delay", "rechunk", "split",
    "split_crlf", "split_utf8", "bom", "linger", "json_body", "bad_status", "bad_chunk", "corrupt_gzip",
    "write_timeout", "pool_timeout",
)  # fmt: skip

#: HTTP errors ``http_error`` draws, the commonest first
_STATUSES = (400, 401, 403, 404, 408, 409, 413, 422, 500, 502, 503, 504)


@dataclass(frozen=True)
class Shape:
    """What a cassette lets faults do: the responses they shape and the positions valid in all of them."""

    #: where it came from, for messages
    where: str
    #: the recorded interactions faults apply to (model API calls with a response)
    targets: tuple[Interaction, ...]
    #: complete events and body bytes of the shortest successful (2xx) target: positions up to these
    #: are valid in every one of them
    events: int = 0
    size: int = 0
    #: byte positions worth drawing more often: inside UTF-8 characters, between CR and LF, event ends
    traps: tuple[int, ...] = ()
    #: the payload size of each event (1-based: ``data_sizes[n - 1]``), what ``corrupt``'s ``at`` counts
    data_sizes: tuple[int, ...] = ()
    #: the fault kinds that mean something for this cassette, simplest first
    kinds: tuple[str, ...] = field(default=(), compare=False)
    #: steps already checked (``valid``)
    _checked: dict[tuple[Fault, ...], bool] = field(default_factory=dict, compare=False, repr=False)

    def valid(self, step: Sequence[Fault]) -> bool:
        """Whether these faults apply, together, to every successful target (a fault that cannot
        raises ``ConfigError`` there, as it would in the test)."""
        key = tuple(step)
        try:
            known = self._checked.get(key)
        except TypeError:  # an unhashable fault: check it every time
            return self._valid(step)
        if known is None:
            known = self._checked[key] = self._valid(step)
        return known

    def _valid(self, step: Sequence[Fault]) -> bool:
        for item in self._streams():
            context = Context(provider=provider_for(item.request.method, item.request.url, item.request.headers))
            try:
                apply(list(step), item.actions(), context)
            except StreamtapeError:
                return False
            except Exception:  # noqa: BLE001 - a user's fault that fails on this cassette: not drawn
                return False
        return True

    def _streams(self) -> tuple[Interaction, ...]:
        ok = tuple(item for item in self.targets if item.response is not None and item.response.status < 300)
        return ok or self.targets


_SHAPES: dict[tuple[Any, ...], Shape] = {}


def shape(cassette: str | os.PathLike[str] | Cassette | Shape, *, exclude: Iterable[str] = ()) -> Shape:
    """The ``Shape`` of a cassette (a path, a loaded ``Cassette``, or a shape already): which faults
    apply and where (less the kinds in ``exclude``). A cassette with no model API call to fault is a
    ``ConfigError``."""
    left_out = set(exclude)
    unknown = sorted(left_out - set(CATALOGUE))
    if unknown:
        raise ConfigError(f"strategies: exclude names unknown faults {unknown}; valid: {', '.join(CATALOGUE)}")
    found = _shape_of(cassette)
    if left_out:
        found = replace(found, kinds=tuple(name for name in found.kinds if name not in left_out))
    return found


def _shape_of(cassette: str | os.PathLike[str] | Cassette | Shape) -> Shape:
    if isinstance(cassette, Shape):
        return cassette
    if isinstance(cassette, Cassette):
        return _shape(cassette, str(cassette.path or "the cassette"))
    if not isinstance(cassette, (str, os.PathLike)):
        raise ConfigError(f"cassette: {cassette!r} is not a cassette; give its path, or a streamtape.Cassette")
    path = Path(cassette)
    try:
        stat = path.stat()
    except OSError:
        raise ConfigError(f"cassette: {path} does not exist; record it first (pytest --tape-record-mode=once)") from None
    key = (str(path.resolve()), stat.st_mtime_ns, stat.st_size, tuple(CATALOGUE.items()))  # a fault registered since
    if key not in _SHAPES:
        _SHAPES[key] = _shape(Cassette.load(path), str(path))
    return _SHAPES[key]


def _shape(cassette: Cassette, where: str) -> Shape:
    everything = Schedule(())
    targets = tuple(item for item in cassette.interactions
                    if item.response is not None and everything.applies_to(item.request.method, item.request.url))  # fmt: skip
    if not targets:
        raise ConfigError(f"cassette {where} holds no model API call with a response, so no fault can shape it; "
                          "record one (faults shape POST .../v1/messages and the other providers' API calls)")  # fmt: skip
    streams = [item for item in targets if item.response is not None and item.response.status < 300] or list(targets)
    measured = []
    for item in streams:
        assert item.response is not None
        framer = framer_for(item.response.headers)
        measured.append((len(framer.event_ends(item.response.body)), len(item.response.body), item))
    events, size, shortest = min(measured, key=lambda m: (m[0], m[1]))
    size = min(m[1] for m in measured)
    assert shortest.response is not None
    body = shortest.response.body[:size]
    framer = framer_for(shortest.response.headers)
    ends = framer.event_ends(body)
    traps = sorted({*utf8_splits(body), *crlf_splits(body), *ends} - {0})
    sizes = []
    start = 0
    for end in ends:
        sizes.append(_data_size(body[start:end], framer.payload_start))
        start = end
    base = Shape(where, targets, events, size, tuple(traps), tuple(sizes))
    return Shape(where, targets, events, size, tuple(traps), tuple(sizes), _kinds(base))


def _data_size(event: bytes, payload_start: Callable[[bytes], int]) -> int:
    """The bytes of an event's data, as ``corrupt`` counts them: after ``data:`` and its space, to the line end."""
    begin = payload_start(event)
    begin += 1 if event[begin : begin + 1] == b" " else 0
    stops = [i for i in (event.find(b"\n", begin), event.find(b"\r", begin)) if i >= 0]
    return (min(stops) if stops else len(event)) - begin


def _order() -> list[str]:
    known = [name for name in KINDS if name in CATALOGUE]
    return known + [name for name in CATALOGUE if name not in KINDS]


def _kinds(base: Shape) -> tuple[str, ...]:
    """The kinds whose simplest form applies to the cassette, simplest first."""
    usable = []
    for name in _order():
        example = _simplest(name, base)
        if example is not None and base.valid([example]):
            usable.append(name)
    return tuple(usable)


def _simplest(name: str, shape: Shape) -> Fault | None:
    """The kind's simplest form for this cassette, positions at their earliest (``None``: it cannot
    be drawn: a parameter it needs has no default, and streamtape does not know how to draw it)."""
    cls = CATALOGUE[name]
    names = {f.name for f in fields(cls)}  # type: ignore[arg-type]
    params: dict[str, Any] = {}
    if name == "truncate":
        params = {"after": 0} if shape.events else {"at_byte": 0}
    elif name == "split":
        params = {"at_byte": 1}
    elif name in ("stall", "error_event", "bad_chunk") or (name not in KINDS and "after" in names):
        params = {"after": 0}
    if "event" in names and (name in ("corrupt", "drop", "duplicate") or name not in KINDS):
        params["event"] = 1
    try:
        return cls(**params)
    except (ConfigError, TypeError, ValueError):
        return None


# --- drawing ------------------------------------------------------------------------------------------------
#
# Every fault is drawn as the same eight choices, whatever its kind: its kind, then where it goes and
# the numbers its parameters are made from (``_Choices``). Hypothesis orders examples shortlex (fewer
# choices first, then smaller ones), so with a fixed width the kind is what decides first: the simpler
# kind wins, then the simpler placement, then the earlier position. (A kind that drew fewer choices
# because it has no parameters would otherwise look simpler than a disconnect.) Each number is a raw
# draw brought into its parameter's range by ``%``: raw 0 is the smallest value, and smaller raws
# shrink toward smaller values.

@dataclass(frozen=True)
class _Choices:
    kind: int
    where: int  # 0: no position (before the headers, or the fault's default), 1: after an event, 2: at a byte
    after: int
    trap: bool  # the byte position is one of the cassette's traps
    byte: int
    flag: bool
    number: int
    variant: int


@functools.lru_cache(maxsize=64)
def _choices(kinds: int, events: int, size: int) -> st.SearchStrategy[_Choices]:
    """The eight choices of a fault among ``kinds`` kinds, for a body of ``events`` events and ``size``
    bytes (one strategy per shape, made once). Each raw number's range is about the range it is brought
    into, so shrinking it is a short search and smaller raws are smaller values."""
    after = st.integers(0, max(events, 1))
    byte = st.integers(0, max(size, 1))
    number = st.integers(0, max(events, 63))
    choices = st.tuples(st.integers(0, kinds - 1), st.integers(0, 2), after, st.booleans(), byte, st.booleans(), number,
                        st.integers(0, 3))  # fmt: skip  # in this order: the kind first
    return choices.map(lambda drawn: _Choices(*drawn))


def _event_after(c: _Choices, shape: Shape, *, last: int | None = None) -> int:
    """An ``after=`` position, 0 to ``last`` (default: the last event)."""
    top = shape.events if last is None else last
    return c.after % (top + 1)


def _byte_at(c: _Choices, shape: Shape, *, low: int = 0, high: int | None = None) -> int:
    """An ``at_byte=`` position from ``low`` to ``high`` (default the body's size): any, or a trap."""
    top = shape.size if high is None else high
    traps = [point for point in shape.traps if low <= point <= top]
    if c.trap and traps:
        return traps[c.byte % len(traps)]
    return low + c.byte % (top - low + 1)


def _placed(c: _Choices, shape: Shape, *, before_headers: bool, last: int | None = None,
            bytes_high: int | None = None) -> dict[str, int]:  # fmt: skip
    """Where a positioned fault goes: no position (when it may have none), after an event, or at a byte."""
    top = shape.events if last is None else last
    where = c.where if before_headers else max(c.where, 1)
    if where == 2 and shape.size and (bytes_high is None or bytes_high >= 0):
        return {"at_byte": _byte_at(c, shape, high=bytes_high)}
    if where >= 1 and top >= 0:
        return {"after": _event_after(c, shape, last=top)}
    if where >= 1:
        return {"at_byte": _byte_at(c, shape, high=bytes_high)}
    return {}


_HOWS = ("json", "truncate", "utf8", "escape")


@functools.lru_cache(maxsize=8192)
def _made(cls: type[Fault], params: tuple[tuple[str, Any], ...]) -> Fault:
    return cls(**dict(params))


def _maker(cls: type[Fault]) -> Callable[..., Fault]:
    """``cls``, but each fault made once: faults are immutable, and checking a fault's parameters
    (its type hints) costs more than drawing them; shrinking makes the same ones again and again."""

    def make(**params: Any) -> Fault:
        try:
            return _made(cls, tuple(sorted(params.items())))
        except TypeError:  # a parameter value that cannot be a cache key
            return cls(**params)

    return make


def _fault(name: str, c: _Choices, shape: Shape) -> Fault:
    """The fault of kind ``name`` these choices make, with parameters valid for ``shape``."""
    cls = _maker(CATALOGUE[name])
    events = shape.events
    number = c.number
    if name in ("disconnect", "reset"):
        return cls(**_placed(c, shape, before_headers=True))
    if name == "truncate":  # after the last event it would cut nothing
        return cls(**_placed(c, shape, before_headers=False, last=events - 1, bytes_high=shape.size - 1))
    if name == "stall":
        seconds = {"seconds": 1 + number % 30} if c.flag else {}  # silence for good first
        return cls(**_placed(c, shape, before_headers=False), **seconds)
    if name == "error_event":
        extra: dict[str, Any] = {"then": "cut"} if c.flag else {}
        if c.variant == 3:  # a name the SDK does not raise on, as some proxies send
            extra["event"] = "overloaded"
        return cls(**_placed(c, shape, before_headers=False), **extra)
    if name in ("rate_limit", "overloaded", "server_error"):
        return cls(retry_after=number % 31) if c.flag else cls()
    if name == "http_error":
        return cls(status=_STATUSES[number % len(_STATUSES)])
    if name in ("drop", "duplicate"):
        return cls(event=1 + c.after % max(1, events))
    if name == "corrupt":
        event = 1 + c.after % max(1, events)
        how = _HOWS[c.variant]
        size = shape.data_sizes[event - 1] if event <= len(shape.data_sizes) else 0
        if how == "truncate" and size:
            return cls(event=event, how=how, at=number % size)
        if how == "utf8":
            return cls(event=event, how=how, at=number % (size + 1))
        return cls(event=event) if how == "truncate" else cls(event=event, how=how)
    if name == "ping":
        return cls(every=1 + number % max(1, events))
    if name == "delay":
        return cls(first_byte=number % 31, per_event=(0, 0.01, 0.1, 1)[c.variant])
    if name == "rechunk":
        return cls(seed=number % 1001) if c.flag else cls(size=1 + number % 64)
    if name == "split":
        return cls(at_byte=_byte_at(c, shape, low=1, high=max(1, shape.size - 1)))
    if name == "bad_chunk":
        return cls(after=_event_after(c, shape))
    if name in KINDS:
        return cls()
    return _other(CATALOGUE[name], c, shape)


def _other(cls: type[Fault], c: _Choices, shape: Shape) -> Fault:
    """A fault streamtape does not know (a provider's own, the user's): its position parameters drawn,
    every other parameter at its default."""
    names = {f.name for f in fields(cls)}  # type: ignore[arg-type]
    params: dict[str, Any] = {}
    if "after" in names and "at_byte" in names:
        params.update(_placed(c, shape, before_headers=False))
    elif "after" in names:
        params["after"] = _event_after(c, shape)
    elif "at_byte" in names:
        params["at_byte"] = _byte_at(c, shape)
    if "event" in names:
        params["event"] = 1 + c.after % max(1, shape.events)
    return _maker(cls)(**params)


@st.composite
def _one(draw: st.DrawFn, found: Shape, pool: Sequence[str]) -> Fault:
    c = draw(_choices(len(pool), found.events, found.size))
    try:
        return _fault(pool[c.kind], c, found)
    except ConfigError:
        assume(False)
        raise  # pragma: no cover - assume raised


def faults(
    cassette: str | os.PathLike[str] | Cassette | Shape,
    *,
    kinds: Iterable[str] | None = None,
    exclude: Iterable[str] = (),
) -> st.SearchStrategy[Fault]:
    """One fault valid for the cassette: any kind of the catalogue that means something for it
    (``kinds`` to choose some, ``exclude`` to leave some out), with parameters and positions valid
    for its recorded responses. Shrinks toward simpler kinds and earlier positions."""
    found = shape(cassette)
    return _one(found, _pool(found, kinds, exclude)).filter(lambda fault: found.valid([fault]))


def _pool(found: Shape, kinds: Iterable[str] | None, exclude: Iterable[str]) -> list[str]:
    excluded = set(exclude)
    unknown = sorted({*(kinds or ()), *excluded} - set(CATALOGUE))
    if unknown:
        raise ConfigError(f"strategies: unknown faults {unknown}; valid: {', '.join(CATALOGUE)}")
    wanted = list(found.kinds) if kinds is None else [name for name in _order() if name in set(kinds)]
    pool = [name for name in wanted if name not in excluded and name in found.kinds]
    if not pool:
        meaningless = sorted(set(kinds or ()) - set(found.kinds))
        raise ConfigError(
            f"strategies: no fault left to draw for {found.where}"
            + (f" ({', '.join(meaningless)} mean nothing for its recorded responses)" if meaningless else "")
            + "; pass other kinds= or a shorter exclude="
        )
    return pool


def _count(name: str, value: object) -> int:
    if isinstance(value, bool) or not isinstance(value, int) or value < 1:
        raise ConfigError(f"strategies: {name}={value!r} must be a whole number >= 1")
    return value


def steps(
    cassette: str | os.PathLike[str] | Cassette | Shape,
    *,
    max_faults: int = 2,
    kinds: Iterable[str] | None = None,
    exclude: Iterable[str] = (),
) -> st.SearchStrategy[tuple[Fault, ...]]:
    """One attempt's faults: up to ``max_faults`` of different kinds (a fault that replaces the response
    stands alone; one cut per attempt)."""
    found = shape(cassette)
    return _step(found, _pool(found, kinds, exclude), _count("max_faults", max_faults))


@st.composite
def _step(draw: st.DrawFn, found: Shape, pool: Sequence[str], max_faults: int) -> tuple[Fault, ...]:
    """Up to ``max_faults`` faults of different kinds, each a whole draw (so shrinking can drop any of
    them), then made one attempt's worth: a fault that replaces the response stands alone, and one cut
    is enough (the first of each kept)."""
    drawn_faults = draw(st.lists(_one(found, pool), min_size=1, max_size=max_faults, unique_by=lambda f: f.name))
    replacing = [fault for fault in drawn_faults if fault.phase == REPLACE]
    if replacing:
        return (replacing[0],)
    chosen: list[Fault] = []
    for fault in drawn_faults:
        if fault.phase == CUT and any(other.phase == CUT for other in chosen):
            continue
        chosen.append(fault)
    assume(found.valid(chosen))
    return tuple(chosen)


@dataclass(frozen=True, repr=False)
class Drawn(Schedule):
    """A drawn schedule: a ``Schedule`` that remembers the spec string it reads back from."""

    text: str = ""

    def spec(self) -> str:
        return self.text

    def __repr__(self) -> str:
        return f"faults.parse({self.text!r})"

    def _repr_pretty_(self, printer: Any, cycle: bool) -> None:  # Hypothesis's pretty printer
        printer.text(repr(self))


def spec_of(attempts: Sequence[Sequence[Fault]], *, every: bool = False) -> str:
    """The spec string of a schedule: ``every`` (one step, on every attempt) or a sequence whose
    attempts after the last are clean (``X -> ok`` for a single step)."""
    parts = [" + ".join(fault.spec() for fault in step) or "ok" for step in attempts]
    if every:
        if len(parts) != 1:
            raise ConfigError("strategies: only a one-step schedule applies to every attempt")
        return parts[0]
    return " -> ".join(parts) if len(parts) > 1 else f"{parts[0]} -> ok"


def drawn(attempts: Sequence[Sequence[Fault]], *, every: bool = False) -> Drawn:
    """The schedule of these attempts, as a ``Drawn``: exactly what ``parse`` makes of its spec (a
    single step on the first attempt only is ``X -> ok``: the step, then a clean one)."""
    text = spec_of(attempts, every=every)
    steps = tuple(tuple(step) for step in attempts)
    if not every and len(steps) == 1:
        steps += ((),)
    return Drawn(steps, every, None, text)


def schedules(
    cassette: str | os.PathLike[str] | Cassette | Shape,
    *,
    max_attempts: int = 3,
    max_faults: int = 2,
    kinds: Iterable[str] | None = None,
    exclude: Iterable[str] = (),
) -> st.SearchStrategy[Drawn]:
    """A fault schedule for the cassette: up to ``max_attempts`` attempts in order (an SDK retry, or
    the app's next request, is the next attempt), the last one faulted, earlier ones faulted or clean
    (``ok``); a one-attempt schedule applies to every attempt (``X``) or to the first only
    (``X -> ok``). Each attempt holds up to ``max_faults`` faults drawn as ``faults()`` draws them.
    Shrinks toward fewer attempts, fewer and simpler faults and earlier positions."""
    found = shape(cassette)
    pool = _pool(found, kinds, exclude)
    attempts = _count("max_attempts", max_attempts)
    faulted = _step(found, pool, _count("max_faults", max_faults))

    @st.composite
    def earlier(draw: st.DrawFn) -> tuple[Fault, ...]:
        """An attempt before the last: clean when its gate draws 0 (the simplest), faulted otherwise."""
        return () if draw(st.integers(0, 4)) == 0 else draw(faulted)

    @st.composite
    def draw_schedule(draw: st.DrawFn) -> Drawn:
        first_only = draw(st.booleans())  # one attempt: on every attempt first ("X"), then the first only
        before = draw(st.lists(earlier(), max_size=attempts - 1))
        last = draw(faulted)
        schedule = drawn([*before, last], every=not before and not first_only)
        _note(schedule)
        return schedule

    return draw_schedule()


def _literal(spec: str) -> str:
    return f'"{spec}"' if '"' not in spec and "\\" not in spec and spec.isprintable() else repr(spec)


def _note(schedule: Drawn) -> None:
    with contextlib.suppress(Exception):  # drawn outside a test (strategy.example()): nothing to note in
        note(f"streamtape fault schedule: {schedule.text!r}  (pytest: @pytest.mark.tape_faults({_literal(schedule.text)}))")


# --- families: what ``pytest --tape-explore`` sweeps first ----------------------------------------------

#: Kinds grouped by what the app meets, the commonest first: a sweep over every one- and two-attempt
#: sequence of families finds a bug that needs a specific short sequence within a fixed budget,
#: where drawing kinds at random would find a two-fault sequence out of thirty kinds by luck.
FAMILIES: tuple[tuple[str, tuple[str, ...]], ...] = (
    ("cut", ("disconnect", "reset")),  # the connection breaks mid-stream: the SDK raises, some text arrived
    ("truncate", ("truncate",)),  # the stream ends cleanly, early: nothing raises
    ("rate_limit", ("rate_limit",)),  # 429: the SDK backs off and retries
    ("error_event", ("error_event",)),  # an error inside a 200 stream
    ("stall", ("stall",)),  # silence mid-stream: the read timeout
    ("overload", ("overloaded", "server_error")),  # 529 / 500: retried
    ("no_response", ("refuse", "connect_timeout")),  # no connection: retried
    ("timeout", ("timeout",)),  # no headers in time: retried
    ("http_error", ("http_error",)),  # 4xx: not retried
    ("content", ("corrupt", "drop", "duplicate", "ping", "bom")),  # events damaged
    ("chunks", ("split_utf8", "split_crlf", "split", "rechunk")),  # the same bytes, other chunks
    ("protocol", ("linger", "json_body", "bad_status", "bad_chunk", "corrupt_gzip", "delay", "write_timeout",
                  "pool_timeout")),  # fmt: skip
)
#: the families two-attempt sequences are swept over (the rest come in one-attempt schedules, and
#: in the drawn ones)
_PAIRED = 9


def _variants(found: Shape, kinds: Sequence[str]) -> list[Fault]:
    """A family's canonical faults for the cassette: its first usable kind, at an early, a middle and a
    late position where it takes one."""
    usable = [name for name in kinds if name in found.kinds]
    if not usable:
        return []
    name, last = usable[0], found.events
    cls = _maker(CATALOGUE[name])
    if name in ("disconnect", "reset", "stall") and last:
        points = [1, max(1, last // 2), last]
    elif name in ("truncate", "error_event") and last > 1:
        points = [1, max(1, last // 2), last - 1]
    elif name == "corrupt" and last:
        return [cls(event=max(1, last // 2))]
    elif name == "http_error":
        return [cls(status=400)]
    else:
        example = _simplest(name, found)
        return [example] if example is not None else []
    out = []
    for point in dict.fromkeys(points):
        try:
            fault = cls(after=point)
        except ConfigError:
            continue
        if found.valid([fault]):
            out.append(fault)
    return out


def families(cassette: str | os.PathLike[str] | Cassette | Shape) -> list[tuple[str, list[Fault]]]:
    """The families that mean something for the cassette, each with its canonical faults."""
    found = shape(cassette)
    out = []
    for name, kinds in FAMILIES:
        variants = [fault for fault in _variants(found, kinds) if found.valid([fault])]
        if variants:
            out.append((name, variants))
    return out


def canonical(cassette: str | os.PathLike[str] | Cassette | Shape) -> list[Drawn]:
    """Every canonical short schedule for the cassette, simplest first: each family's canonical faults
    alone (on every attempt, then on the first only), then every two-attempt sequence of the common
    families (their middle fault each, the attempts after clean). What ``--tape-explore`` sweeps
    before it draws: a bug that needs ``rate_limit -> disconnect`` is found whatever the luck."""
    found = families(cassette)
    out = []
    for _, variants in found:
        for fault in variants:
            out.append(drawn([[fault]], every=True))
            out.append(drawn([[fault]]))
    paired = [variants[len(variants) // 2] for _, variants in found[:_PAIRED]]
    for first in paired:
        for second in paired:
            out.append(drawn([[first], [second]]))
    return out


def sweep(cassette: str | os.PathLike[str] | Cassette | Shape) -> st.SearchStrategy[Drawn]:
    """The ``canonical`` schedules as a strategy: a finite set Hypothesis exhausts with
    ``max_examples >= sweep_size(cassette)``, shrinking toward the first (the simplest)."""
    return st.sampled_from(canonical(cassette))


def sweep_size(cassette: str | os.PathLike[str] | Cassette | Shape) -> int:
    """How many schedules ``canonical`` (and ``sweep``) hold."""
    return len(canonical(cassette))


def as_drawn(schedule: Schedule, spec: str) -> Drawn:
    """``schedule`` (parsed from ``spec``) as a ``Drawn``, which remembers its spec."""
    return Drawn(schedule.steps, schedule.every, schedule.when, spec)


def family_of(fault: Fault) -> int:
    """The index in ``FAMILIES`` of a fault's kind (a kind in none: the last family)."""
    return next((index for index, (_, kinds) in enumerate(FAMILIES) if fault.name in kinds), len(FAMILIES) - 1)


def refine(cassette: str | os.PathLike[str] | Cassette | Shape, schedule: Schedule) -> st.SearchStrategy[Drawn]:
    """Schedules shaped like ``schedule`` (as many attempts, each one fault of the same family, the same
    ``every``) with every kind of the family and every position drawn: what turns a canonical failure
    into the simplest one (the earliest position, the simplest kind)."""
    found = shape(cassette)
    pools = []
    for step in schedule.steps:
        kinds = FAMILIES[family_of(step[0])][1] if step else ()
        pool = [name for name in kinds if name in found.kinds]
        pools.append(pool)
    every = schedule.every

    @st.composite
    def draw_refined(draw: st.DrawFn) -> Drawn:
        attempts: list[tuple[Fault, ...]] = []
        for pool in pools:
            if not pool:
                attempts.append(())
                continue
            fault = draw(_one(found, pool))
            assume(found.valid([fault]))
            attempts.append((fault,))
        result = drawn(attempts, every=every) if every else drawn(_trimmed(attempts))
        _note(result)
        return result

    return draw_refined()


def _trimmed(attempts: list[tuple[Fault, ...]]) -> list[tuple[Fault, ...]]:
    while len(attempts) > 1 and not attempts[-1]:
        attempts = attempts[:-1]
    return attempts
