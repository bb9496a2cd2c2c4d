"""Global interception: while a tape is entered, every httpcore2/httpcore connection pool in the
process (so every httpx2/httpx client, sync and async, however deep in the app it was built) routes
its requests through the active tape, as do aiohttp sessions and urllib3 pools (their adapters in
``streamtape.stacks``), and ``streamtape.guard`` blocks every other way to the network (urllib3 1.x,
raw sockets) unless the tape's ``allow_hosts`` lets it through.

Which tape is active is per context (a ``contextvars.ContextVar``): each thread and each asyncio task
sees the tapes it entered, innermost first, and inherits those of the code that started it where
Python copies the context (``asyncio.create_task``, ``asyncio.to_thread``, anyio task groups and
``anyio.to_thread.run_sync``, ``contextvars.copy_context().run``). Two tests, threads or tasks with
different tapes never see each other's interactions, even through one shared client. Code that
entered no tape and inherited none (a plain ``threading.Thread``, ``ThreadPoolExecutor.submit``,
``loop.run_in_executor``: they do not copy the context; started before the tape or after) uses the
process's one entered tape; when several are entered elsewhere it cannot know which, and its request
fails with ``AmbiguousTapeError`` rather than guess (docs/replaying.md, "Which tape a request goes to").

The HTTP stacks themselves are adapters (``streamtape.stacks``): each one is installed with the first
active tape if the app has imported it, or the moment the app imports it while a tape is active (an
import hook watches for it), and undone with the last tape. Entering a tape never imports a stack or
an SDK the app has not imported itself.

Retry back-off goes through the tape too: the SDKs' own (``time.sleep`` / ``anyio.sleep`` looked up
in their ``_base_client`` module), urllib3's ``Retry``, botocore's retry handler, and the retry layers
apps put around SDKs (tenacity, backoff). While a tape is entered the place each of them finds its
sleep points at a shim (``streamtape.intercept.retry_layers``) that, when the tape replays only,
charges the wait to the tape (``Call.waited``) and waits on the tape's clock: at speed 0 (a
``VirtualClock``) not at all, so "429 twice, then success" replays in milliseconds with the app's own
retry logic. A tape that may record waits in real time: the real API is on the other end.
"""

from __future__ import annotations

import contextvars
import importlib.abc
import importlib.machinery
import sys
import threading
from collections.abc import Callable, Sequence
from types import ModuleType
from typing import TYPE_CHECKING, Any

from .. import guard
from ..errors import AmbiguousTapeError
from ..stacks import stacks, watched
from .retry_layers import SHIMS

if TYPE_CHECKING:
    from ..tape import Tape

__all__ = ["active_tape", "install", "uninstall"]


_CONTEXT_TAPES: contextvars.ContextVar[tuple[Tape, ...]] = contextvars.ContextVar("streamtape_tapes", default=())


class _Interceptor:
    """Every entered tape in the process (the patches stay while there is one), and per context the
    tapes that context entered, which is what a request is routed to."""

    def __init__(self) -> None:
        self.lock = threading.RLock()
        self.tapes: list[Tape] = []
        self.undo: dict[str, Callable[[], None]] = {}  # what each installed stack or SDK shim puts back

    def install(self, tape: Tape) -> None:
        with self.lock:
            if not self.tapes:
                _HOOK.watch(self)
                self.refresh()
                guard.install(self.current, lambda: tuple(self.tapes))
            self.tapes.append(tape)
        _CONTEXT_TAPES.set((*_CONTEXT_TAPES.get(), tape))

    def refresh(self) -> None:
        """Install what the app has imported and is not installed yet: stacks, then back-off shims."""
        with self.lock:
            # a package still running its ``__init__`` (urllib3 imports urllib3.util.retry from it) is in
            # sys.modules half made: what it watches is installed when its own import ends
            busy = _HOOK.importing
            for stack in stacks():
                if stack.name not in self.undo and busy.isdisjoint(watched().get(stack.name, ())):
                    self.undo[stack.name] = stack.install(self)
            for name, shim in SHIMS.items():
                module = sys.modules.get(name)
                if module is not None and name not in self.undo and name not in busy:
                    undo = shim(module, self)
                    if undo is not None:  # else it has nothing to shim (yet)
                        self.undo[name] = undo

    def uninstall(self, tape: Tape) -> None:
        # exited where it was entered, usually; an async fixture may exit in another task, where the
        # entering context's reference is then simply stale (``current`` skips exited tapes)
        _CONTEXT_TAPES.set(tuple(t for t in _CONTEXT_TAPES.get() if t is not tape))
        with self.lock:
            if tape in self.tapes:
                self.tapes.remove(tape)
            if not self.tapes:
                _HOOK.unwatch()
                for undo in reversed(list(self.undo.values())):
                    undo()
                self.undo = {}
                guard.uninstall()

    def current(self, what: Callable[[], str] | None = None) -> Tape | None:
        """The innermost tape this context entered; else the process's only one; else none. ``what``
        names the request when no tape can claim it."""
        entered = self.tapes
        if not entered:
            return None
        for tape in reversed(_CONTEXT_TAPES.get()):
            if tape in entered:
                return tape
        if len(entered) == 1:
            return entered[0]
        # several tapes, entered in other threads or tasks: routing to any of them could pass a test
        # on another test's recording
        raise AmbiguousTapeError(entered, what() if what is not None else None)


class _ImportHook(importlib.abc.MetaPathFinder):
    """While a tape is entered: when the app imports a stack or an SDK streamtape adapts, install the
    adapter right after the module runs, so a client built after the tape was entered is taped too."""

    def __init__(self) -> None:
        self.interceptor: _Interceptor | None = None
        #: watched modules whose import is running now (a package's ``__init__`` importing its parts)
        self.importing: set[str] = set()

    def watch(self, interceptor: _Interceptor) -> None:
        self.interceptor = interceptor
        if self not in sys.meta_path:
            sys.meta_path.insert(0, self)

    def unwatch(self) -> None:
        self.interceptor = None
        if self in sys.meta_path:
            sys.meta_path.remove(self)

    def find_spec(self, name: str, path: Sequence[str] | None, target: ModuleType | None = None) -> Any:
        if not self._watched(name):
            return None
        for finder in sys.meta_path:
            if finder is self or not hasattr(finder, "find_spec"):
                continue
            spec = finder.find_spec(name, path, target)
            if spec is not None:
                if spec.loader is not None and hasattr(spec.loader, "exec_module"):
                    spec.loader = _InstallAfter(spec.loader, self)
                return spec
        return None

    def _watched(self, name: str) -> bool:
        return name in SHIMS or any(name in modules for modules in watched().values())

    def loaded(self) -> None:
        interceptor = self.interceptor
        if interceptor is not None:
            interceptor.refresh()


class _InstallAfter(importlib.abc.Loader):
    """A loader that runs the real one, then installs what the new module makes possible."""

    def __init__(self, loader: Any, hook: _ImportHook) -> None:
        self.loader, self.hook = loader, hook

    def create_module(self, spec: importlib.machinery.ModuleSpec) -> ModuleType | None:
        return self.loader.create_module(spec)  # type: ignore[no-any-return]

    def exec_module(self, module: ModuleType) -> None:
        self.hook.importing.add(module.__name__)
        try:
            self.loader.exec_module(module)
        finally:
            self.hook.importing.discard(module.__name__)
        self.hook.loaded()

    def __getattr__(self, name: str) -> Any:
        return getattr(self.loader, name)


_HOOK = _ImportHook()


_INTERCEPTOR = _Interceptor()
install = _INTERCEPTOR.install
uninstall = _INTERCEPTOR.uninstall


def active_tape() -> Tape | None:
    """The tape a request made here would go to: the innermost one this thread or task entered, or
    the only one entered in the process; ``None`` when none is entered."""
    return _INTERCEPTOR.current()
