"""HTTP stack adapters: the in-process executor, one module per stack.

An adapter is everything streamtape knows about one HTTP client stack, behind a small protocol:

- ``install(router)`` patches the stack so its requests go through the tape ``router.current()``
  names (or straight on when there is none), and returns its own undo: no global state;
- ``exception(broken, ...)`` builds the exception the stack raises for a neutral ``Broken`` outcome,
  from the stack's measured message table;
- ``classify(exc)`` maps a real exception back to a ``Cut`` for the recorder;
- ``transport(tape, ...)`` wires one client to a tape explicitly, without patching.

Adapters register by name in ``STACKS``; ``streamtape.intercept`` installs each one when the modules it
``watches`` are imported, never importing them itself, so an app that does not use a stack never loads
it. httpcore2 (httpx2, anthropic >= 1, openai 3) and httpcore (httpx, anthropic 0.x) live in
``streamtape.stacks.httpcore``; aiohttp (plain, and the SDKs' ``DefaultAioHttpClient``) in
``streamtape.stacks.aiohttp``. A new stack is one module here plus one line in ``_BUILTIN``.
"""

from __future__ import annotations

import importlib
import sys
from collections.abc import Callable, Iterator
from contextlib import contextmanager
from typing import TYPE_CHECKING, Any, Protocol

from ..errors import ConfigError, HarnessError, StreamtapeError

if TYPE_CHECKING:
    from ..engine.playback import Broken
    from ..wire import Cut

__all__ = ["STACKS", "Patches", "Router", "StackAdapter", "get_stack", "harness", "register_stack", "stacks"]


class Router(Protocol):
    """What an installed stack asks for each request: the tape it goes to (``None``: none entered)."""

    def current(self, what: Callable[[], str] | None = None) -> Any:
        """``what``: the request, named only if it must be (a request no tape can claim)."""


class StackAdapter(Protocol):
    """One HTTP stack, as the engine sees it."""

    #: the name users pass (``tape.transport(stack="httpx2")``)
    name: str
    #: the modules whose presence in ``sys.modules`` means the app uses this stack
    watches: tuple[str, ...]

    def install(self, router: Router) -> Callable[[], None]: ...

    def exception(self, broken: Broken, *, asynchronous: bool, address: tuple[str, int] | None) -> BaseException: ...

    def classify(self, exc: BaseException) -> Cut | None: ...

    def transport(self, tape: Any, *, asynchronous: bool, **options: Any) -> Any: ...


#: name -> "module:attribute" of the adapter, loaded on first use
_BUILTIN: dict[str, str] = {
    "httpx2": "streamtape.stacks.httpcore:HTTPX2",
    "httpx": "streamtape.stacks.httpcore:HTTPX",
    "urllib3": "streamtape.stacks.urllib3:URLLIB3",
    "aiohttp": "streamtape.stacks.aiohttp:AIOHTTP",
}
#: name -> the adapter, for adapters registered as objects (a user's own, or a built-in once loaded)
STACKS: dict[str, StackAdapter] = {}
#: name -> what the adapter watches, known before its module loads (so nothing loads early)
_WATCHES: dict[str, tuple[str, ...]] = {
    "httpx2": ("httpcore2",),
    "httpx": ("httpcore",),
    "urllib3": ("urllib3",),
    "aiohttp": ("aiohttp",),
}


def register_stack(adapter: StackAdapter) -> StackAdapter:
    """Add an adapter (replacing one of the same name); it is installed with the next tape entered."""
    STACKS[adapter.name] = adapter
    _WATCHES[adapter.name] = tuple(adapter.watches)
    return adapter


def _load(name: str) -> StackAdapter:
    if name not in STACKS:
        module, _, attribute = _BUILTIN[name].partition(":")
        STACKS[name] = getattr(importlib.import_module(module), attribute)
    return STACKS[name]


def watched() -> dict[str, tuple[str, ...]]:
    """Every known stack and the modules that mean it is in use."""
    return dict(_WATCHES)


def in_use(name: str) -> bool:
    return all(module in sys.modules for module in _WATCHES[name])


def stacks() -> list[StackAdapter]:
    """The adapters of the stacks the app has imported (httpx2 first); loads nothing else."""
    return [_load(name) for name in _WATCHES if in_use(name)]


def get_stack(name: str) -> StackAdapter:
    """The adapter called ``name``, importing its stack (an explicit ``tape.transport(stack=...)``)."""
    if name not in _WATCHES:
        raise ConfigError(f"stack: {name!r} is not supported; valid: {', '.join(_WATCHES)}")
    try:
        for module in _WATCHES[name]:
            importlib.import_module(module)
    except ImportError:
        raise ConfigError(f"stack: {name!r} is not installed; pip install {name}") from None
    return _load(name)


@contextmanager
def harness(what: str) -> Iterator[None]:
    """Around streamtape's own work on a request (never around the network): an ordinary exception
    raised there is a harness failure, so it becomes a ``HarnessError`` the SDK cannot mistake for a
    connection error and retry, and the test sees it as itself."""
    try:
        yield
    except StreamtapeError:
        raise
    except Exception as exc:
        raise HarnessError(
            f"{what}: streamtape failed while answering it ({type(exc).__name__}: {exc}); if a matcher, hook or "
            "fault of yours is in the traceback, fix it there, else please report this as a streamtape bug"
        ) from exc


class Patches:
    """The methods one adapter replaced on a library's classes: the originals, to call while patched
    (a tape must always reach the real network) and to put back."""

    def __init__(self) -> None:
        self._saved: dict[tuple[type, str], Any] = {}

    def original(self, cls: type, name: str) -> Any:
        """``cls.name`` as it was before this adapter patched it (as it is, when not patched)."""
        return self._saved.get((cls, name)) or getattr(cls, name)

    def apply(self, replacements: list[tuple[type, str, Any]]) -> Callable[[], None]:
        """Set each ``(cls, name, replacement)``; returns the undo that puts the originals back."""
        for cls, name, replacement in replacements:
            self._saved.setdefault((cls, name), getattr(cls, name))
            setattr(cls, name, replacement)

        def undo() -> None:
            for cls, name, _ in replacements:
                setattr(cls, name, self._saved.pop((cls, name)))

        return undo
