"""Fault specs as strings, for markers, the command line and YAML files.

    disconnect:after=5                          one fault, on every request
    delay:first_byte=2.5,per_event=0.05 + stall:after=10
                                                several faults on every request
    rate_limit*2 -> ok                          a sequence across attempts: 429, 429, then clean
    rate_limit:retry_after=1 -> disconnect:after=5 -> ok
    chaos:p=0.3,seed=7                          random faults, reproducible
    scenario:flaky-network                      a named scenario file (see streamtape.faults.scenarios)

``ok`` (or ``none``) is a clean attempt; ``STEP*N`` repeats a step; attempts past the end are clean.
A fault name is any registered one (``streamtape.faults.CATALOGUE``), a user's own included.

A value in single or double quotes is a string, taken as written: it may hold ``,``, ``+``, ``->``,
``*`` and ``=``, and its own quote doubled (``message='it''s busy'``), as in YAML's single-quoted
strings; backslashes are plain characters. A quote opens a quoted value only right after ``=``.
``Fault.spec()`` quotes a value that needs it, so specs read back as the faults they came from.
"""

from __future__ import annotations

from collections.abc import Iterable
from typing import Any

from ..errors import CassetteFormatError, ConfigError
from .base import CATALOGUE, Fault
from .scenarios import read_scenario
from .schedule import Chaos, Schedule, Step

__all__ = ["load_scenario", "parse", "parse_fault", "step"]

_CLEAN = ("ok", "none", "clean", "")


def parse(text: str, *, when: str | None = None) -> Schedule:
    """A ``Schedule`` from a spec string; errors name the part that is wrong and list what is valid."""
    text = text.strip()
    if text.startswith("scenario:"):
        return load_scenario(text.removeprefix("scenario:"))
    if text.startswith("chaos"):
        return _chaos(text, when)
    parts = [part.strip() for part in _split(text, "->", text)]
    if len(parts) == 1 and "*" not in _strip_params(parts[0]):
        return Schedule((_step(parts[0], text),), every=True, when=when)
    steps: list[Step] = []
    for part in parts:
        step_text, count = _repeat(part, text)
        steps += [_step(step_text, text)] * count
    return Schedule(tuple(steps), when=when)


def load_scenario(name_or_path: str) -> Schedule:
    """The schedule a scenario file describes (``streamtape.faults.scenarios``); a fault the file
    gets wrong is a ``CassetteFormatError`` naming the file and the field."""
    scenario = read_scenario(name_or_path)
    try:
        if isinstance(scenario.faults, str):
            return parse(scenario.faults, when=scenario.when)
        return Schedule(tuple(step(item) for item in scenario.faults), when=scenario.when)
    except ConfigError as exc:
        raise CassetteFormatError(scenario.path, "faults", str(exc)) from None


def step(item: Fault | Iterable[Fault] | str | None) -> Step:
    """One attempt's faults from what ``faults.sequence`` takes: a fault, several, a spec string
    (of one step), or ``None``/``"ok"`` for a clean attempt."""
    if item is None:
        return ()
    if isinstance(item, Fault):
        return (item,)
    if isinstance(item, str):
        schedule = parse(item)
        if not schedule.every and len(schedule.steps) != 1:
            raise ConfigError(f"faults: sequence step {item!r} is itself a sequence; give one step per argument")
        return schedule.steps[0] if schedule.steps else ()
    items = list(item)
    bad = [each for each in items if not isinstance(each, Fault)]
    if bad:
        raise ConfigError(f"faults: {bad[0]!r} is not a fault (in {items!r})")
    return tuple(items)


def parse_fault(text: str, *, whole: str | None = None) -> Fault:
    """One fault: ``name`` or ``name:key=value,key=value``."""
    whole = whole or text
    name, _, params = text.strip().partition(":")
    name = name.strip()
    if name not in CATALOGUE:
        raise ConfigError(f"fault spec {whole!r}: unknown fault {name!r}; valid: {', '.join(CATALOGUE)}")
    cls = CATALOGUE[name]
    kwargs = dict(_param(item, name, whole) for item in _split(params, ",", whole) if item.strip())
    try:
        return cls(**kwargs)
    except ConfigError as exc:  # the constructor's own sentence, which the Python API gives too
        raise ConfigError(f"fault spec {whole!r}: {exc}") from None


def _split(text: str, separator: str, whole: str | None = None) -> list[str]:
    """``text.split(separator)``, except inside a quoted value (a quote right after ``=``, to its
    closing quote; the quote doubled inside stands for itself)."""
    parts: list[str] = []
    start = index = 0
    value_start = False  # the last character that is not a space was "="
    while index < len(text):
        char = text[index]
        if value_start and char in "'\"":
            index = _closing(text, index, whole)
            value_start = False
        elif text.startswith(separator, index):
            parts.append(text[start:index])
            index += len(separator)
            start = index
            value_start = False
            continue
        elif not char.isspace():
            value_start = char == "="
        index += 1
    parts.append(text[start:])
    return parts


def _closing(text: str, opening: int, whole: str | None) -> int:
    """The index of the quote closing the value quoted at ``opening``."""
    quote, index = text[opening], opening + 1
    while True:
        index = text.find(quote, index)
        if index < 0:
            raise ConfigError(
                f"fault spec {whole or text!r}: the value quoted at {text[opening : opening + 20]!r} has no closing "
                f"{quote} (a {quote} inside it is written twice)"
            )
        if text.startswith(quote, index + 1):
            index += 2
            continue
        return index


def _strip_params(part: str) -> str:
    return " ".join(piece.partition(":")[0] for piece in _split(part, "+", part))


def _repeat(part: str, whole: str) -> tuple[str, int]:
    pieces = _split(part, "*", whole)
    head, star, count = "*".join(pieces[:-1]), len(pieces) > 1, pieces[-1]
    if not star or ":" in count or "=" in count:
        return part, 1
    try:
        times = int(count)
    except ValueError:
        raise ConfigError(
            f"fault spec {whole!r}: {part!r} repeats {count!r} times; write STEP*N with N a number"
        ) from None
    if times < 1:
        raise ConfigError(f"fault spec {whole!r}: {part!r} repeats {times} times; N must be 1 or more")
    return head, times


def _step(text: str, whole: str) -> Step:
    if text.strip().lower() in _CLEAN:
        return ()
    return tuple(parse_fault(piece, whole=whole) for piece in _split(text, "+", whole))


def _param(item: str, name: str, whole: str) -> tuple[str, Any]:
    key, eq, raw = item.partition("=")
    if not eq:
        raise ConfigError(f"fault spec {whole!r}: {name} parameter {item.strip()!r} needs a value: key=value")
    raw = raw.strip()
    if raw == "*":
        raise ConfigError(
            f"fault spec {whole!r}: {key.strip()}=* is a sweep; the pytest plugin's tape_faults marker expands it. "
            "Give a number here."
        )
    return key.strip(), _value(raw, whole)


def _value(raw: str, whole: str = "") -> Any:
    if raw[:1] in ("'", '"') and len(raw) >= 2:
        return _unquoted(raw, whole)
    lowered = raw.lower()
    if lowered in ("true", "false"):
        return lowered == "true"
    if lowered in ("none", "null", "forever"):
        return None
    for convert in (int, float):
        try:
            return convert(raw)
        except ValueError:
            pass
    return raw.strip("'\"")


def _unquoted(raw: str, whole: str) -> str:
    """The string a quoted value stands for: a string whatever it looks like (``'5'`` is ``"5"``)."""
    quote = raw[0]
    try:
        closing = _closing(raw, 0, whole)
    except ConfigError:
        return raw.strip("'\"")  # a quote at one end only: read as before quoting existed
    if raw[closing + 1 :].strip():
        raise ConfigError(
            f"fault spec {whole or raw!r}: {raw[closing + 1 :].strip()!r} follows the quoted value {raw[: closing + 1]}; "
            "quote the whole value"
        )
    return raw[1:closing].replace(quote * 2, quote)


def _chaos(text: str, when: str | None) -> Schedule:
    _, _, params = text.partition(":")
    kwargs = dict(_param(item, "chaos", text) for item in _split(params, ",", text) if item.strip())
    allowed = {"p", "seed"}
    if set(kwargs) - allowed:
        raise ConfigError(f"fault spec {text!r}: chaos takes p= and seed=; got {sorted(set(kwargs) - allowed)}")
    return Chaos((), every=False, when=when, **kwargs)
