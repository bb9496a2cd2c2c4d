"""The HTTP stacks streamtape intercepts, described once so every other module is stack-neutral.

httpcore2 (under httpx2, anthropic >= 1.0) and httpcore (under httpx, anthropic 0.x) share their
API: the same pool classes, the same exception names. A ``Stack`` names the modules as they are in
``sys.modules`` now (a module imported again, by ``importlib.reload`` or a test harness that purges
modules, is a new module with new exception classes) and reaches the pool methods as they were
before any patching, so a tape can always reach the real network.
"""

from __future__ import annotations

import importlib
from dataclasses import dataclass
from types import ModuleType
from typing import Any

from ..errors import ConfigError

__all__ = ["ORIGINALS", "Stack", "available_stacks", "get_stack"]

_STACKS = {"httpx2": "httpcore2", "httpx": "httpcore"}

#: (class, method name) -> the method before streamtape patched it; filled by the patcher
ORIGINALS: dict[tuple[type, str], Any] = {}


def original(cls: type, name: str) -> Any:
    return ORIGINALS.get((cls, name)) or getattr(cls, name)


@dataclass(frozen=True, eq=False)
class Stack:
    """One HTTP stack: its client library and its core library, with the core's unpatched pool methods."""

    name: str
    client: ModuleType
    core: ModuleType

    @property
    def sync_handle(self) -> Any:
        return original(self.core.ConnectionPool, "handle_request")

    @property
    def async_handle(self) -> Any:
        return original(self.core.AsyncConnectionPool, "handle_async_request")

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


def _load(name: str) -> Stack | None:
    try:
        return Stack(name, importlib.import_module(name), importlib.import_module(_STACKS[name]))
    except ImportError:
        return None


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
