"""Back-off on the tape's clock: the SDKs' own retry loops, and the retry layers apps put around them.

While a replay-only tape is entered, nothing on the other end makes a retry wait mean anything: each
wait is charged to the tape (``tape.note_backoff``, so it shows as the next call's ``Call.waited``) and
taken on the tape's clock, which at speed 0 (a ``VirtualClock``) takes no time at all. A tape that may
record waits in real time: the real API is on the other end.

``time.sleep`` and ``asyncio.sleep`` themselves are never replaced. Each retry layer finds its sleep
somewhere of its own, and only that place points at the tape while a tape is entered:

=========================================  ==============================================================
module                                     how it sleeps (what is pointed at the tape)
=========================================  ==============================================================
``anthropic._base_client``,                ``time.sleep`` / ``anyio.sleep`` through its ``time`` and
``openai._base_client``                    ``anyio`` globals (the SDKs' ``max_retries``)
``urllib3.util.retry``                     ``time.sleep`` through its ``time`` global (``Retry``)
``botocore.endpoint``                      ``time.sleep`` through its ``time`` global: every boto3 retry
                                           mode (legacy, standard, adaptive) only computes the delay,
                                           ``Endpoint._needs_retry`` sleeps it (adaptive's client-side
                                           rate limiter waits on a condition variable: real time)
``tenacity.nap``                           ``time.sleep`` through its ``time`` global: ``tenacity.nap.sleep``
                                           is the default ``sleep`` of ``Retrying`` and ``@retry``
``tenacity.asyncio``                       ``AsyncRetrying``'s default ``sleep`` (asyncio or trio), bound
                                           to each retrying object: a class attribute ``sleep`` answers
                                           the tape's sleep for an object that kept the default
``backoff._sync``, ``backoff._async``      ``time.sleep`` / ``asyncio.sleep`` through their globals
                                           (``on_exception``, ``on_predicate``)
``google.genai._api_client``               ``time.sleep`` / ``asyncio.sleep`` through its globals, for
                                           the retries it makes besides tenacity's (the async client's
                                           retry of an aiohttp connection error, the upload retries)
=========================================  ==============================================================

Decorators and retrying objects made before the tape was entered are covered: they look their sleep
up when they sleep. A sleep the app passed itself (tenacity's ``sleep=``) is the app's, and is left
alone.

Where a retry layer gives up by time (tenacity's ``stop_after_delay``, backoff's ``max_time``), the
time it reads moves with the tape's clock too (``tenacity``'s ``time.monotonic``, backoff's
``datetime.now``): a loop that gives up after 60 s in production gives up after 60 virtual seconds in
replay, where it would otherwise retry forever.
"""

from __future__ import annotations

import datetime
import inspect
import operator
import threading
import weakref
from collections.abc import Awaitable, Callable
from types import ModuleType
from typing import TYPE_CHECKING, Any, Generic, Protocol, TypeVar

from ..errors import AmbiguousTapeError

if TYPE_CHECKING:
    from ..tape import Tape

__all__ = ["SHIMS", "Interceptor", "Undo"]

Undo = Callable[[], None]
_T = TypeVar("_T")


class Interceptor(Protocol):
    """What a shim asks: the tape of the code sleeping now."""

    def current(self) -> Tape | None: ...


#: installs one module's shim; returns its undo, or ``None`` when the module has nothing to shim (a
#: version without the name), to be tried again at the next import
Installer = Callable[[ModuleType, Interceptor], "Undo | None"]


def _replaying(interceptor: Interceptor) -> Tape | None:
    """The replay-only tape of the code waiting now; ``None``: the wait is real (no tape, a tape that may
    record, or several tapes entered elsewhere and none here: then the request raises, not the wait)."""
    try:
        tape = interceptor.current()
    except AmbiguousTapeError:
        return None
    return tape if tape is not None and tape.offline else None


def _wait(tape: Tape, seconds: float) -> None:
    tape.note_backoff(float(seconds))
    tape.clock.sleep(float(seconds))


async def _await(tape: Tape, seconds: float, real_sleep: Callable[[float], Awaitable[Any]]) -> None:
    tape.note_backoff(float(seconds))
    await tape.clock.asleep(float(seconds))
    await real_sleep(0)  # a real wait lets the loop's other tasks run: so does a virtual one


class _TimeModule:
    """``time`` as a retry loop sees it while a tape is entered: ``sleep`` follows the tape's clock."""

    def __init__(self, real: ModuleType, interceptor: Interceptor) -> None:
        self._real, self._interceptor = real, interceptor

    def __getattr__(self, name: str) -> Any:
        return getattr(self._real, name)

    def sleep(self, seconds: float) -> None:
        tape = _replaying(self._interceptor)
        if tape is None or seconds <= 0:
            self._real.sleep(seconds)  # the real API is on the other end: its back-off is real
            return
        _wait(tape, seconds)


class _AnyioModule(_TimeModule):
    """``anyio`` as an SDK sees it while a tape is entered: ``sleep`` follows the tape's clock."""

    async def sleep(self, seconds: float) -> None:  # type: ignore[override]
        tape = _replaying(self._interceptor)
        if tape is None or seconds <= 0:  # sleep(0) is a checkpoint: it still yields to the loop
            await self._real.sleep(seconds)
            return
        await _await(tape, seconds, self._real.sleep)


class _AsyncioModule(_TimeModule):
    """``asyncio`` as backoff sees it while a tape is entered: ``sleep`` follows the tape's clock."""

    async def sleep(self, delay: float, result: Any = None) -> Any:  # type: ignore[override]
        tape = _replaying(self._interceptor)
        if tape is None or delay <= 0:
            return await self._real.sleep(delay, result)
        await _await(tape, delay, self._real.sleep)
        return result


class _TapeTime(Generic[_T]):
    """Time as one retry layer reads it under a replay-only tape: what the layer read the first time it
    looked under that tape, plus how far the tape's clock moved since (at speed 0 time stands still
    between waits, exactly; at speed 1 it is real time). Without such a tape, real time."""

    def __init__(self, interceptor: Interceptor, add: Callable[[_T, float], _T]) -> None:
        self._interceptor, self._add = interceptor, add
        self._origins: weakref.WeakKeyDictionary[Tape, tuple[float, _T]] = weakref.WeakKeyDictionary()
        self._lock = threading.Lock()

    def read(self, real: _T) -> _T:
        tape = _replaying(self._interceptor)
        if tape is None:
            return real
        now = tape.clock.now()
        with self._lock:
            start, first = self._origins.setdefault(tape, (now, real))
        return self._add(first, now - start)


class _ClockTimeModule(_TimeModule):
    """``time`` as tenacity's retry state reads it (``stop_after_delay``): ``monotonic`` on the tape's time."""

    def __init__(self, real: ModuleType, interceptor: Interceptor) -> None:
        super().__init__(real, interceptor)
        self._time: _TapeTime[float] = _TapeTime(interceptor, operator.add)

    def monotonic(self) -> float:
        return self._time.read(float(self._real.monotonic()))


class _DatetimeModule:
    """``datetime`` as backoff reads it (``max_time``): ``datetime.now()`` on the tape's time."""

    def __init__(self, real: ModuleType, interceptor: Interceptor) -> None:
        self._real = real
        self.datetime = _Now(real.datetime, _TapeTime(interceptor, _later))

    def __getattr__(self, name: str) -> Any:
        return getattr(self._real, name)


def _later(moment: datetime.datetime, seconds: float) -> datetime.datetime:
    return moment + datetime.timedelta(seconds=seconds)


class _Now:
    """``datetime.datetime`` whose ``now()`` is on the tape's time; everything else is the real class's."""

    def __init__(self, real: type[datetime.datetime], time: _TapeTime[datetime.datetime]) -> None:
        self._real, self._time = real, time

    def __getattr__(self, name: str) -> Any:
        return getattr(self._real, name)

    def now(self, tz: datetime.tzinfo | None = None) -> datetime.datetime:
        local = self._time.read(self._real.now())
        return local if tz is None else local.astimezone(tz)


def _globals(**shims: Callable[[ModuleType, Interceptor], object]) -> Installer:
    """An installer pointing a module's own globals (``time``, ``anyio``...) at shims, where each is the
    real module of that name."""

    def install(module: ModuleType, interceptor: Interceptor) -> Undo | None:
        patched: list[tuple[str, ModuleType, object]] = []
        for attribute, shim in shims.items():
            original = vars(module).get(attribute)
            if isinstance(original, ModuleType) and original.__name__ == attribute:
                replacement = shim(original, interceptor)
                setattr(module, attribute, replacement)
                patched.append((attribute, original, replacement))
        if not patched:
            return None

        def undo() -> None:
            for attribute, original, replacement in patched:
                if vars(module).get(attribute) is replacement:  # unless someone replaced it since
                    setattr(module, attribute, original)

        return undo

    return install


class _TapeSleep:
    """tenacity's default async sleep while a tape is entered: the tape's clock when it replays only,
    else the default itself (asyncio's or trio's sleep)."""

    def __init__(self, default: Callable[[float], Awaitable[None]], interceptor: Interceptor) -> None:
        self._default, self._interceptor = default, interceptor

    def __call__(self, seconds: float) -> Awaitable[None]:
        tape = _replaying(self._interceptor)
        if tape is None or seconds <= 0:
            return self._default(seconds)
        return _await(tape, seconds, self._default)

    def __repr__(self) -> str:
        return repr(self._default)


class _DefaultSleep:
    """``AsyncRetrying.sleep`` while a tape is entered. Each retrying object keeps its ``sleep`` in its
    own ``__dict__`` (bound when it was made, often before the tape); this data descriptor answers the
    tape's sleep for an object that kept tenacity's default, and the object's own for any other."""

    def __init__(self, default: object, virtual: _TapeSleep) -> None:
        self.default, self.virtual = default, virtual

    def __get__(self, instance: object, owner: type | None = None) -> Any:
        if instance is None:
            return self
        try:
            value = vars(instance)["sleep"]
        except KeyError:
            raise AttributeError("sleep") from None
        return self.virtual if value is self.default else value

    def __set__(self, instance: object, value: object) -> None:
        vars(instance)["sleep"] = value

    def __delete__(self, instance: object) -> None:
        del vars(instance)["sleep"]


def _tenacity_async(module: ModuleType, interceptor: Interceptor) -> Undo | None:
    """``AsyncRetrying``'s default sleep is a function bound to each object as it is made (not looked up
    when it sleeps), and looks ``asyncio`` up with an ``import`` inside it: the only place to catch it is
    the ``sleep`` attribute itself, on the class."""
    cls = vars(module).get("AsyncRetrying")
    if not isinstance(cls, type) or "sleep" in vars(cls):
        return None
    try:
        default = inspect.signature(cls).parameters["sleep"].default
    except (KeyError, TypeError, ValueError):
        return None
    if default is inspect.Parameter.empty or not callable(default):
        return None
    attribute = _DefaultSleep(default, _TapeSleep(default, interceptor))
    cls.sleep = attribute  # type: ignore[attr-defined]

    def undo() -> None:
        if vars(cls).get("sleep") is attribute:
            delattr(cls, "sleep")

    return undo


_SDK = _globals(time=_TimeModule, anyio=_AnyioModule)

#: every module whose back-off goes on the tape's clock while a tape is entered, and how: installed
#: when a tape is entered if the app imported it, else the moment the app imports it; undone with the
#: last tape
SHIMS: dict[str, Installer] = {
    "anthropic._base_client": _SDK,
    "openai._base_client": _SDK,
    "urllib3.util.retry": _globals(time=_TimeModule),
    "botocore.endpoint": _globals(time=_TimeModule),
    "tenacity": _globals(time=_ClockTimeModule),  # RetryCallState's timestamps: stop_after_delay
    "tenacity.nap": _globals(time=_TimeModule),
    "tenacity.asyncio": _tenacity_async,
    "tenacity._asyncio": _tenacity_async,  # tenacity < 8.4 kept AsyncRetrying here
    "backoff._sync": _globals(time=_TimeModule, datetime=_DatetimeModule),
    "backoff._async": _globals(asyncio=_AsyncioModule, datetime=_DatetimeModule),
    # its own retries besides tenacity's: the aiohttp connection retry, the upload retries (all its sleeps)
    "google.genai._api_client": _globals(time=_TimeModule, asyncio=_AsyncioModule),
}
