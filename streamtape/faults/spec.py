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
    parts = [part.strip() for part in text.split("->")]
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
    kwargs = dict(_param(item, name, whole) for item in params.split(",") if item.strip())
    try:
        return cls(**kwargs)
    except ConfigError as exc:  # the constructor's own sentence, which the Python API gives too
        raise ConfigError(f"fault spec {whole!r}: {exc}") from None


def _strip_params(part: str) -> str:
    return " ".join(piece.partition(":")[0] for piece in part.split("+"))


def _repeat(part: str, whole: str) -> tuple[str, int]:
    head, star, count = part.rpartition("*")
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
    return tuple(parse_fault(piece, whole=whole) for piece in text.split("+"))


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
    return key.strip(), _value(raw)


def _value(raw: str) -> Any:
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


def _chaos(text: str, when: str | None) -> Schedule:
    _, _, params = text.partition(":")
    kwargs = dict(_param(item, "chaos", text) for item in params.split(",") if item.strip())
    allowed = {"p", "seed"}
    if set(kwargs) - allowed:
        raise ConfigError(f"fault spec {text!r}: chaos takes p= and seed=; got {sorted(set(kwargs) - allowed)}")
    return Chaos((), every=False, when=when, **kwargs)
