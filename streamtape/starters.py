"""Starter cassettes: real recorded streams shipped with streamtape, usable without an API key.

Anthropic's are named bare (``"text"``, ``"thinking"``); the other providers' by their folder:
``"openai/chat_text"``, ``"gemini/text"``, ``"bedrock/text"`` (cassettes/README.md lists them all).
"""

from __future__ import annotations

from importlib import resources
from pathlib import Path

from .errors import ConfigError

__all__ = ["starter", "starter_names"]

#: the provider whose starters are named without a folder
_BARE = "anthropic"


def _root() -> Path:
    return Path(str(resources.files("streamtape.cassettes")))


def starter_names(provider: str | None = None) -> list[str]:
    """The names ``starter()`` accepts: Anthropic's first, bare, then ``provider/name`` for the others
    (only ``provider``'s, when given)."""
    root = _root()
    folders = sorted((p for p in root.iterdir() if p.is_dir() and any(p.glob("*.yaml"))),
                     key=lambda p: (p.name != _BARE, p.name))  # fmt: skip
    names = []
    for folder in folders:
        if provider is not None and folder.name != provider:
            continue
        prefix = "" if folder.name == _BARE else f"{folder.name}/"
        names += sorted(prefix + path.stem for path in folder.glob("*.yaml"))
    return names


def starter(name: str) -> Path:
    """The path of the starter cassette ``name`` (``"text"``, ``"thinking"``, ``"openai/chat_text"``...).

    Also accepts ``"starter:NAME"``, as the command line does.
    """
    name = name.removeprefix("starter:")
    folder, _, stem = name.rpartition("/")
    path = _root() / (folder or _BARE) / f"{stem}.yaml"
    if ".." in name.split("/") or not path.is_file():
        provider = folder if folder and (_root() / folder).is_dir() else None
        available = ", ".join(starter_names(provider))
        raise ConfigError(f"starter: no starter cassette {name!r}; available: {available}")
    return path
