"""Starter cassettes: real Anthropic streams shipped with streamtape, usable without an API key."""

from __future__ import annotations

from importlib import resources
from pathlib import Path

from .errors import ConfigError

__all__ = ["starter", "starter_names"]


def _folder() -> Path:
    return Path(str(resources.files("streamtape.cassettes"))) / "anthropic"


def starter_names() -> list[str]:
    """The names ``starter()`` accepts."""
    return sorted(path.stem for path in _folder().glob("*.yaml"))


def starter(name: str) -> Path:
    """The path of the starter cassette ``name`` (``"text"``, ``"thinking"``, ...).

    Also accepts ``"starter:NAME"``, as the command line does.
    """
    name = name.removeprefix("starter:")
    path = _folder() / f"{name}.yaml"
    if not path.is_file():
        raise ConfigError(f"starter: no starter cassette {name!r}; available: {', '.join(starter_names())}")
    return path
