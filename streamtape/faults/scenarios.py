"""Scenario files: named fault schedules in YAML, referred to as ``scenario:NAME``.

    # scenarios/flaky-network.yaml
    description: Two rate limits, a dropped stream, then a clean one.
    faults: rate_limit:retry_after=1 -> rate_limit -> disconnect:after=5 -> ok
    when: POST /v1/messages        # optional: only requests whose "METHOD URL" this matches

``faults`` may also be a list of steps (one per attempt; ``ok`` or null for a clean one). Names are
looked up in the directories of ``STREAMTAPE_SCENARIOS`` (separated like ``PATH``), then
``./scenarios``, then the scenarios that ship with streamtape.

This module finds and reads the files; ``streamtape.faults.spec.load_scenario`` turns one into a
schedule (so reading a file needs nothing from the fault machinery, and nothing imports in circles).
"""

from __future__ import annotations

import os
from dataclasses import dataclass
from importlib import resources
from pathlib import Path
from typing import Any

import yaml

from ..errors import CassetteFormatError, ConfigError

__all__ = ["Scenario", "read_scenario", "scenario_dirs", "scenario_names"]

_KEYS = {"description", "faults", "when"}


@dataclass(frozen=True)
class Scenario:
    """A scenario file as written: ``faults`` a spec string or a list of steps (``None``: clean)."""

    path: Path
    faults: str | list[str | None]
    when: str | None = None
    description: Any = None


def scenario_dirs() -> list[Path]:
    extra = [Path(p) for p in os.environ.get("STREAMTAPE_SCENARIOS", "").split(os.pathsep) if p]
    return [*extra, Path.cwd() / "scenarios", Path(str(resources.files("streamtape"))) / "scenarios"]


def scenario_names() -> list[str]:
    return sorted({path.stem for folder in scenario_dirs() if folder.is_dir() for path in folder.glob("*.yaml")})


def read_scenario(name_or_path: str) -> Scenario:
    """The scenario file ``name_or_path`` (a name or a path to a .yaml file), checked for shape;
    errors name the file and the field."""
    path = _find(name_or_path)
    try:
        document = yaml.load(path.read_text(encoding="utf-8"), Loader=getattr(yaml, "CSafeLoader", yaml.SafeLoader))
    except yaml.YAMLError as exc:
        raise CassetteFormatError(path, "", f"not valid YAML ({getattr(exc, 'problem', exc)})") from None
    return _parse(path, document)


def _find(name: str) -> Path:
    candidate = Path(name)
    if candidate.suffix in (".yaml", ".yml") and candidate.is_file():
        return candidate
    for folder in scenario_dirs():
        path = folder / f"{name}.yaml"
        if path.is_file():
            return path
    known = ", ".join(scenario_names()) or "none"
    raise ConfigError(
        f"scenario {name!r} not found in {', '.join(str(d) for d in scenario_dirs())}; known scenarios: {known}"
    )


def _parse(path: Path, document: Any) -> Scenario:
    if not isinstance(document, dict) or "faults" not in document:
        raise CassetteFormatError(
            path, "top level", "expected a mapping with 'faults' (and optional description, when)"
        )
    unknown = sorted(set(document) - _KEYS)
    if unknown:
        raise CassetteFormatError(path, unknown[0], f"unknown key; valid: {', '.join(sorted(_KEYS))}")
    when = document.get("when")
    if when is not None and not isinstance(when, str):
        raise CassetteFormatError(path, "when", "expected a pattern (text), e.g. 'POST /v1/messages'")
    faults = document["faults"]
    description = document.get("description")
    if isinstance(faults, str):
        return Scenario(path, faults, when, description)
    if isinstance(faults, list):
        steps = [None if step in (None, "ok") else str(step) for step in faults]
        return Scenario(path, steps, when, description)
    raise CassetteFormatError(path, "faults", "expected a spec string or a list of steps")
