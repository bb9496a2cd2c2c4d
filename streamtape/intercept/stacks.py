"""The HTTP stacks streamtape intercepts, described once so every other module is stack-neutral.

httpcore2 (under httpx2, anthropic >= 1.0) and httpcore (under httpx, anthropic 0.x) share their
API: the same pool classes, the same exception names. A ``Stack`` names the modules and keeps the
pool methods as they were before any patching, so a tape can always reach the real network.
"""

from __future__ import annotations

import importlib
from dataclasses import dataclass
from functools import cache
from types import ModuleType
from typing import Any

from ..errors import ConfigError

__all__ = ["Stack", "available_stacks", "get_stack"]

_STACKS = {"httpx2": "httpcore2", "httpx": "httpcore"}


@dataclass(frozen=True, eq=False)
class Stack:
    """One HTTP stack: its client library, its core library and the core's original pool methods."""

    name: str
    client: ModuleType
    core: ModuleType
    sync_handle: Any
    async_handle: Any

    def error(self, name: str, message: str) -> Exception:
        """An instance of the core's exception class ``name`` (as the real network would raise)."""
        return getattr(self.core, name)(message)

    @property
    def errors(self) -> tuple[type[Exception], ...]:
        """Every exception the core raises for a network or protocol failure."""
        return (
            self.core.NetworkError,
            self.core.TimeoutException,
            self.core.ProtocolError,
            self.core.ProxyError,
            self.core.UnsupportedProtocol,
        )


@cache
def _load(name: str) -> Stack | None:
    try:
        client = importlib.import_module(name)
        core = importlib.import_module(_STACKS[name])
    except ImportError:
        return None
    return Stack(
        name,
        client,
        core,
        sync_handle=core.ConnectionPool.handle_request,
        async_handle=core.AsyncConnectionPool.handle_async_request,
    )


def available_stacks() -> list[Stack]:
    """The installed stacks, httpx2 first."""
    return [stack for name in _STACKS if (stack := _load(name)) is not None]


def get_stack(name: str) -> Stack:
    if name not in _STACKS:
        raise ConfigError(f"stack: {name!r} is not supported; valid: {', '.join(_STACKS)}")
    stack = _load(name)
    if stack is None:
        raise ConfigError(f"stack: {name!r} is not installed; pip install {name}")
    return stack
