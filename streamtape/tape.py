"""The Tape: one cassette in use, its record mode, and the log of what each request got.

Library-independent: the HTTP stacks (``streamtape.stacks``) reach the tape through ``Tape.route``
(which interaction answers this request, or record it) and ``Tape.begin_recording``;
``streamtape.intercept`` routes each request to its tape. Replay itself is the engine's
(``streamtape.engine``): the tape's ``ReplaySession`` matches and applies faults, exactly as it does
for ``streamtape serve``, and the tape's clock paces both the replay and the SDK's back-off.
"""

from __future__ import annotations

import dataclasses
import functools
import inspect
import os
import threading
from collections.abc import Callable, Iterable
from enum import Enum
from pathlib import Path
from typing import TYPE_CHECKING, Any, TypeVar

from ._filelock import cassette_lock
from .age import (
    StaleCassetteError,
    StaleCassetteWarning,
    describe_age,
    parse_age,
    parse_on_stale,
    real_failure,
    staleness,
)
from .age import indices as age_indices
from .cassette import Cassette, Interaction, Request, Response
from .engine.clock import Clock, clock_for
from .engine.session import Call, ReplaySession
from .errors import (
    CassetteNotFoundError,
    ConfigError,
    RecordingFailedError,
    StreamtapeError,
    UnmatchedRequestError,
)
from .faults import resolve as resolve_faults
from .guard import AllowList
from .hooks import Hooks
from .matching import Matcher, resolve_matchers
from .providers import PLACEHOLDER_KEY, placeholder_keys
from .redact import MIN_USER_SECRET_LENGTH, Redactor
from .wire import Action, describe

if TYPE_CHECKING:
    from datetime import timedelta

    from .intercept.recorder import Recording

__all__ = ["PLACEHOLDER_KEY", "Call", "RecordMode", "Tape", "use_cassette"]

F = TypeVar("F", bound=Callable[..., Any])


class RecordMode(str, Enum):
    """When a tape may use the network and write its cassette."""

    NONE = "none"  #: replay only; never touches the network, never writes
    ONCE = "once"  #: record when the file is missing, else as ``none``
    NEW_EPISODES = "new_episodes"  #: replay what matches, record the rest
    ALL = "all"  #: always record; the file is rewritten with this run's interactions
    #: re-record the interactions older than ``max_age`` (each in its place), replay the rest and keep
    #: them byte for byte; recorded failures are kept too. Needs ``max_age``; records a missing file
    REWRITE_STALE = "rewrite_stale"

    @classmethod
    def parse(cls, value: RecordMode | str) -> RecordMode:
        try:
            return cls(value.lower().replace("-", "_") if isinstance(value, str) else value)
        except ValueError:
            valid = ", ".join(mode.value for mode in cls)
            raise ConfigError(f"record_mode: {value!r} is not a record mode; valid: {valid}") from None

    def __str__(self) -> str:
        return self.value


_RECORD = object()  # Tape.route's answer: send this request to the network and record it

#: statuses that say the recording itself went wrong (the key or the proxy), not what the API does
_AUTH_FAILURES = frozenset({401, 403, 407})


class Tape:
    """A cassette in use: a context manager (sync and async) and a decorator.

    While entered it intercepts every httpx2 and httpx client in the process. To wire it into one
    client without global patching, pass ``tape.transport()`` (or ``tape.async_transport()``) as the
    client's transport.
    """

    def __init__(
        self,
        path: str | os.PathLike[str],
        *,
        record_mode: RecordMode | str = RecordMode.NONE,
        match_on: Iterable[str | Matcher] | None = None,
        speed: float = 0.0,
        faults: Any = None,
        allow_hosts: Iterable[str] | None = None,
        record_failures: bool = False,
        secrets: Iterable[str] = (),
        ignore_hosts: Iterable[str] | None = None,
        ignore_localhost: bool = False,
        before_record_request: Callable[[Request], Request | None] | None = None,
        before_record_response: Callable[[Response], Response | None] | None = None,
        filter_headers: Iterable[Any] | None = None,
        filter_query_parameters: Iterable[Any] | None = None,
        filter_post_data_parameters: Iterable[Any] | None = None,
        clock: Clock | None = None,
        max_age: str | float | timedelta | None = None,
        on_stale: str = "warn",
    ) -> None:
        self.path = Path(path)
        self.record_mode = RecordMode.parse(record_mode)
        #: interactions recorded longer ago than this many seconds are stale (``streamtape.age``)
        self.max_age = None if max_age is None else parse_age(max_age)
        self._max_age_text = str(max_age) if isinstance(max_age, str) else describe_age(self.max_age or 0)
        #: what a stale cassette does: ``warn``, ``fail``, or ``rerecord`` (as ``rewrite_stale``)
        self.on_stale = parse_on_stale(on_stale)
        if self.record_mode is RecordMode.REWRITE_STALE and self.max_age is None:
            raise ConfigError(
                "record_mode 'rewrite_stale' re-records the interactions older than max_age, and none was given; "
                "pass max_age (e.g. max_age='30d'; pytest: --tape-max-age=30d or the ini option tape_max_age)"
            )
        self.matchers = resolve_matchers(match_on)
        self.speed = _check_speed(speed)
        #: the time replay is paced by, and the SDK's back-off waits on (when replaying only): by
        #: default virtual at speed 0, real at 1, scaled otherwise (``streamtape.engine.clock``)
        self.clock: Clock = clock if clock is not None else clock_for(self.speed)
        self.schedule = resolve_faults(faults)
        #: hosts requests may reach unrecorded while the tape is entered (see ``streamtape.guard``)
        self.allow_hosts = AllowList(_hosts(allow_hosts, ignore_hosts, ignore_localhost))
        #: the user's filters and hooks: what is matched and recorded (``streamtape.hooks``)
        self.hooks = Hooks(
            before_record_request=before_record_request,
            before_record_response=before_record_response,
            filter_headers=filter_headers,
            filter_query_parameters=filter_query_parameters,
            filter_post_data_parameters=filter_post_data_parameters,
        )
        #: keep a recording that only shows it went wrong (no response at all, or 401/403/407)
        self.record_failures = bool(record_failures)
        #: values removed wherever they appear in what is recorded, besides the ones streamtape knows
        self.secrets = _check_secrets(secrets)
        #: True once a request was recorded while faults were asked for: they shape replays only
        self.faults_skipped = False
        self._placeholders: list[tuple[str, str]] = []
        self.cassette = Cassette(path=self.path)
        self._lock = threading.RLock()
        self._loaded = 0  # interactions loaded from the file: the ones replay may answer with
        self._session = ReplaySession([], self.matchers, self.schedule, where=f"cassette {self.path}")
        self._recordings: list[Recording] = []
        self._record_all = False
        self._stale: frozenset[int] = frozenset()  # loaded interactions to re-record in their place
        self._targets: list[tuple[Request, int]] = []  # requests routed to re-record a stale interaction
        self._replaces: dict[int, int] = {}  # position in _recordings -> the interaction index it replaces
        self._entered = 0
        self._backoff = 0.0  # the SDK's retry wait not yet charged to a call

    def __repr__(self) -> str:
        return f"<Tape {str(self.path)!r} mode={self.record_mode.value} interactions={len(self.cassette)}>"

    # --- lifecycle ---------------------------------------------------------------------------

    def load(self) -> Tape:
        """(Re)read the cassette and reset the call log; ``__enter__`` does this."""
        with self._lock:
            exists = self.path.exists()
            if exists and self.record_mode is not RecordMode.ALL:
                self.cassette = Cassette.load(self.path)
            elif not exists and self.record_mode is RecordMode.NONE:
                raise CassetteNotFoundError(
                    self.path,
                    "no such cassette, and record mode 'none' never records. Record it once with "
                    "record_mode='once' (pytest: --tape-record-mode=once), or check the path.",
                )
            else:
                self.cassette = Cassette(path=self.path)
            self._record_all = self.record_mode is RecordMode.ALL or (
                self.record_mode in (RecordMode.ONCE, RecordMode.REWRITE_STALE) and not exists
            )
            self._loaded = len(self.cassette)
            self._session = ReplaySession(self.cassette.interactions, self.matchers, self.schedule,
                                          where=f"cassette {self.path}")  # fmt: skip
            self._recordings = []
            self._backoff = 0.0
            self.faults_skipped = False
            self._stale, self._targets, self._replaces = frozenset(), [], {}
            if not self._record_all:
                self._judge_age()
                self._check_positions()
        return self

    def _judge_age(self) -> None:
        """``max_age``: stale interactions are re-recorded (``rewrite_stale``, ``on_stale="rerecord"``),
        fail the tape (``"fail"``) or warn (``"warn"``); interactions of unknown age are only said."""
        if self.max_age is None or not self.cassette.interactions:
            return
        import warnings

        items = self.cassette.interactions
        found = staleness(items, self.max_age)
        where = f"cassette {self.path}"
        if self.record_mode is RecordMode.REWRITE_STALE or self.on_stale == "rerecord":
            failures = [index for index in found.stale if real_failure(items[index])]
            self._stale = frozenset(found.stale) - set(failures)
            if failures:
                warnings.warn(f"{where}: kept {len(failures)} interaction(s) older than max_age {self._max_age_text} "
                              f"as they are ({age_indices(failures)}): they hold real failures (an error status or "
                              "a cut connection) that re-recording would lose", StaleCassetteWarning, stacklevel=4)  # fmt: skip
        elif found.stale:
            oldest = describe_age(found.oldest or 0.0)
            message = (
                f"{len(found.stale)} of {len(items)} interaction(s) ({age_indices(found.stale)}) were recorded "
                f"more than max_age {self._max_age_text} ago (the oldest {oldest} ago); re-record them with "
                "--tape-record-mode=rewrite-stale (record_mode='rewrite_stale'), or raise max_age"
            )
            if self.on_stale == "fail":
                raise StaleCassetteError(self.path, message)
            warnings.warn(f"{where}: {message}", StaleCassetteWarning, stacklevel=4)
        if found.undated:
            warnings.warn(f"{where}: {len(found.undated)} interaction(s) ({age_indices(found.undated)}) have no "
                          "'recorded' time (recorded before streamtape dated recordings, or written by hand): their "
                          f"age is unknown, so max_age {self._max_age_text} cannot judge them; re-record them to date "
                          "them", StaleCassetteWarning, stacklevel=4)  # fmt: skip

    def _check_positions(self) -> None:
        """A fault position no interaction the schedule applies to can reach fails here, at once,
        naming the cassette and the valid range (not later, inside the app's HTTP call)."""
        if self.schedule is None:
            return
        from .faults import positions
        from .framing import framer_for

        targets = [
            item for item in self.cassette.interactions
            if item.response is not None and self.schedule.applies_to(item.request.method, item.request.url)
        ]  # fmt: skip
        if not targets:
            return
        longest = max(targets, key=lambda item: len(item.response.event_ends) if item.response else 0)
        events = len(longest.response.event_ends) if longest.response is not None else 0
        unit = framer_for(longest.response.headers).unit if longest.response is not None else "SSE event"
        size = max(len(item.body) for item in targets)
        for fault, kind, value in positions(self.schedule):
            limit, low = {"after": (events, 0), "at_byte": (size, 0), "event": (events, 1)}[kind]
            if value > limit:
                what = f"{unit}s" if kind != "at_byte" else "body bytes"
                raise ConfigError(
                    f"cassette {self.path}: fault {fault.spec()!r} asks for {kind}={value}, but the longest "
                    f"response it applies to has {limit} {what}; use {kind}={low}..{limit}"
                )

    def save(self) -> Path | None:
        """Write what this run recorded (merged as the record mode says); ``__exit__`` does this.

        Under a cross-process lock, the file is read again and this run's recordings are appended to
        what is there now, so parallel workers recording into one cassette never lose each other's
        interactions (``all`` rewrites the file with this run's, as it says)."""
        import time

        deadline = time.monotonic() + _drain_seconds()
        for recording in list(self._recordings):
            recording.settle(deadline)  # what the app did not read is read first (bounded)
        with self._lock:
            if not self._recordings:
                return None
            snapshots = self._redacted_across([recording.snapshot() for recording in self._recordings])
            self._note_recorded_outcomes(snapshots)
            new = [item for item in snapshots if item is not None]
            if not new:  # before_record_response dropped every one
                self._recordings = []
                return None
            if not self.record_failures and all(recording_failed(item) for item in new):
                self._recordings = []
                raise RecordingFailedError(_failure_report(self.path, new))
            with cassette_lock(self.path):
                kept = (
                    []
                    if self.record_mode is RecordMode.ALL or not self.path.exists()
                    else Cassette.load(self.path).interactions
                )
                if self._replaces:
                    kept, new = self._rewritten(kept, snapshots)
                self.cassette = Cassette([*kept, *new], path=self.path)
                return self.cassette.save(self.path)

    def _redacted_across(self, snapshots: list[Interaction | None]) -> list[Interaction | None]:
        """Each exchange's secrets removed from every other exchange of the run too: a cookie or an
        organisation id one response set, repeated in another exchange that never carried it."""
        known = [set(recording.redactor.secrets) for recording in self._recordings]
        every = set().union(*known)
        cleaned: list[Interaction | None] = []
        for item, own in zip(snapshots, known, strict=True):
            missing = every - own
            if item is not None and missing:
                item = Redactor(extra_secrets=missing, environment=False).interaction(item)
            cleaned.append(item)
        return cleaned

    def _rewritten(
        self, current: list[Interaction], snapshots: list[Interaction | None]
    ) -> tuple[list[Interaction], list[Interaction]]:
        """The file's interactions with each stale one replaced, in its place, by what re-recording it
        got (every attempt the SDK made for it), every other one as it is; and the recordings that
        replace nothing (appended). A stale interaction another process changed meanwhile is left to
        it, and this run's recording of it appended: nothing is lost."""
        loaded = self._session.interactions
        placed: dict[int, list[Interaction]] = {}
        rest: list[Interaction] = []
        for position, item in enumerate(snapshots):
            target = self._replaces.get(position)
            if item is None:
                continue
            if target is not None and target < len(current) and current[target] == loaded[target]:
                placed.setdefault(target, []).append(item)
            else:
                rest.append(item)
        for index, items in list(placed.items()):  # a refused key or no answer never replaces a recording
            if not self.record_failures and all(recording_failed(item) for item in items):
                del placed[index]
                import warnings

                warnings.warn(f"cassette {self.path}: interaction #{index} was kept as it was: re-recording it got "
                              f"{describe(items[-1].actions())}", StaleCassetteWarning, stacklevel=2)  # fmt: skip
        return [new for index, old in enumerate(current) for new in placed.get(index, [old])], rest

    def _note_recorded_outcomes(self, snapshots: list[Interaction | None]) -> None:
        """The recorded calls say how they went, once the recordings are complete."""
        recorded = [i for i, call in enumerate(self.calls) if call.source == "recorded"]
        for position, item in zip(recorded, snapshots, strict=False):
            call = self.calls[position]
            outcome = describe(item.actions()) if item is not None else "not saved (before_record_response)"
            self.calls[position] = dataclasses.replace(call, interaction=item, outcome=outcome)

    def __enter__(self) -> Tape:
        from .intercept import install

        if self._entered:
            raise StreamtapeError(f"tape {self.path} is already in use; a Tape cannot be entered twice at once")
        self.load()
        install(self)
        self._entered = 1
        if self.offline:
            self._set_placeholder_keys()
        return self

    def __exit__(self, *exc_info: object) -> None:
        from .intercept import uninstall

        self._entered = 0
        uninstall(self)
        self._restore_keys()
        self.save()
        if exc_info[0] is None:
            self._check_faults_were_used()

    def _check_faults_were_used(self) -> None:
        """Faults were asked for, requests were replayed, and none of them was one the schedule
        shapes: the test passed without meeting its faults. Never let that look like a pass."""
        replayed = [call for call in self.calls if call.source == "replayed"]
        if self.schedule is None or self._session.faulted or not replayed:
            return
        seen = ", ".join(sorted({f"{call.request.method} {call.request.url}" for call in replayed})[:3])
        which = f"when={self.schedule.when!r}" if self.schedule.when else "the default (model API calls: POST .../v1/messages, .../chat/completions, ...)"
        raise ConfigError(
            f"cassette {self.path}: the faults {self.schedule.spec()!r} shaped no request: {len(replayed)} were "
            f"replayed ({seen}) and none matched {which}; pass when='METHOD URL-REGEX' to choose them"
        )

    async def __aenter__(self) -> Tape:
        return self.__enter__()

    async def __aexit__(self, *exc_info: object) -> None:
        await self._asettle()
        self.__exit__(*exc_info)

    def _set_placeholder_keys(self) -> None:
        """Replay needs no key, but the SDKs refuse to send without one: for the duration of a
        replay-only tape, the unset key variables hold a placeholder (restored on exit)."""
        for name, value in placeholder_keys().items():
            if not os.environ.get(name):
                os.environ[name] = value
                self._placeholders.append((name, value))

    def _restore_keys(self) -> None:
        for name, value in self._placeholders:
            if os.environ.get(name) == value:
                del os.environ[name]
        self._placeholders = []

    async def _asettle(self) -> None:
        import time

        deadline = time.monotonic() + _drain_seconds()
        for recording in list(self._recordings):
            await recording.asettle(deadline)

    def __call__(self, func: F) -> F:
        """Use the tape as a decorator, sync or async: entered for each call."""
        if inspect.iscoroutinefunction(func):

            @functools.wraps(func)
            async def async_wrapper(*args: Any, **kwargs: Any) -> Any:
                async with self:
                    return await func(*args, **kwargs)

            return async_wrapper  # type: ignore[return-value]

        @functools.wraps(func)
        def wrapper(*args: Any, **kwargs: Any) -> Any:
            with self:
                return func(*args, **kwargs)

        return wrapper  # type: ignore[return-value]

    # --- explicit wiring ---------------------------------------------------------------------

    def transport(self, *, stack: str = "httpx2") -> Any:
        """A sync transport for ``httpx2.Client(transport=...)`` (or ``httpx``) that uses this tape
        without patching anything globally. ``load()`` the tape first; ``save()`` it after recording
        (entering the tape with ``with`` does both)."""
        from .stacks import get_stack

        return get_stack(stack).transport(self, asynchronous=False)

    def async_transport(self, *, stack: str = "httpx2") -> Any:
        """The async twin of ``transport()``, for ``httpx2.AsyncClient(transport=...)``."""
        from .stacks import get_stack

        return get_stack(stack).transport(self, asynchronous=True)

    # --- what the interceptors call ----------------------------------------------------------

    @property
    def calls(self) -> list[Call]:
        """What each request this run got, in order (replayed, recorded or unmatched)."""
        return self._session.calls

    def route(self, request: Request, *, stack: str = "") -> list[Action] | object:
        """The wire actions that answer ``request`` (the recording, reshaped by this attempt's faults),
        or ``_RECORD``; raises when it cannot be answered. ``stack`` names the HTTP stack asking."""
        with self._lock:
            if not self._record_all:
                waited = self._take_backoff()
                answer = self._session.answer(request, waited=waited, stack=stack)
                if answer is not None and answer.index not in self._stale:
                    return answer.actions
                if answer is not None:  # older than max_age: re-recorded, in its place (rewrite_stale)
                    self._session.calls.pop()  # begin_recording logs it
                    self._backoff = waited
                    self._targets.append((request, answer.index))
                    return _RECORD
                if self.record_mode is not RecordMode.NEW_EPISODES:
                    raise self._unmatched(request)
                self._session.calls.pop()  # it is recorded instead: begin_recording logs it
                self._backoff = waited
            return _RECORD

    @property
    def offline(self) -> bool:
        """True when no request can reach the network (replay only): only then may time be virtual."""
        return not self._record_all and self.record_mode is not RecordMode.NEW_EPISODES and not self._stale

    def note_backoff(self, seconds: float) -> None:
        """The SDK is about to wait ``seconds`` before retrying; charged to the next call."""
        with self._lock:
            self._backoff += seconds

    def _take_backoff(self) -> float:
        waited, self._backoff = self._backoff, 0.0
        return waited

    def begin_recording(self, recording: Recording, *, stack: str = "") -> None:
        with self._lock:
            self.faults_skipped = self.faults_skipped or self.schedule is not None
            self._recordings.append(recording)
            recording.stack = stack  # the interaction's ``recorded.stack``
            index = self._loaded + len(self._recordings) - 1
            target = next((n for n, (asked, _) in enumerate(self._targets) if asked is recording.request), None)
            if target is not None:  # it re-records a stale interaction: saved in its place
                index = self._replaces[len(self._recordings) - 1] = self._targets.pop(target)[1]
            self._session.calls.append(Call(recording.request, index, 1, "recorded", outcome="recording",
                                            waited=self._take_backoff(), stack=stack))  # fmt: skip

    def _unmatched(self, request: Request) -> UnmatchedRequestError:
        lines = [
            f"No interaction in cassette {self.path} matches {request.method} {request.url} "
            f"(record mode '{self.record_mode.value}', matching on {', '.join(m.__name__ for m in self.matchers)})."
        ]
        lines += self._session.explain(request)
        lines.append(
            "To record it, use record_mode='new_episodes' (or 'all' to re-record the whole cassette); "
            "pytest: --tape-record-mode=new_episodes."
        )
        return UnmatchedRequestError("\n".join(lines))

    # --- what tests ask --------------------------------------------------------------------------

    @property
    def unplayed(self) -> list[Interaction]:
        """Recorded interactions this run never replayed."""
        with self._lock:
            return self._session.unplayed

    @property
    def loaded(self) -> list[Interaction]:
        """The interactions loaded from the cassette (the ones replay may answer with)."""
        return list(self._session.interactions)

    @property
    def played_indices(self) -> set[int]:
        """The cassette indices of the loaded interactions this run replayed."""
        with self._lock:
            return self._session.played_indices

    @property
    def all_played(self) -> bool:
        """True when every interaction loaded from the cassette was replayed at least once."""
        return not self.unplayed

    @property
    def recorded(self) -> list[Interaction]:
        """What this run recorded so far."""
        with self._lock:
            return [item for item in (r.snapshot() for r in self._recordings) if item is not None]


def _drain_seconds() -> float:
    from .intercept.recorder import DRAIN_SECONDS

    return DRAIN_SECONDS


def recording_failed(item: Interaction) -> bool:
    """The recording shows that recording went wrong: no response at all, or the key was refused."""
    return item.response is None or item.response.status in _AUTH_FAILURES


def _failure_report(path: Path, items: list[Interaction]) -> str:
    answers = []
    for item in items:
        if item.response is None:
            assert item.error is not None
            answers.append(f"{item.request.method} {item.request.url} got no response ({item.error.error}"
                           f"{': ' + item.error.message if item.error.message else ''})")  # fmt: skip
        else:
            answers.append(f"{item.request.method} {item.request.url} got {item.response.status} "
                           f"({item.response.body[:200].decode('utf-8', 'replace')})")  # fmt: skip
    return (
        f"recording failed, so nothing was saved to {path}: {'; '.join(answers)}. Check the network, the "
        "base URL and the API key, then run again (to keep such a failure as a cassette on purpose, "
        "pass record_failures=True)."
    )


def _check_speed(speed: float) -> float:
    if isinstance(speed, bool) or not isinstance(speed, (int, float)) or speed < 0 or speed != speed:
        raise ConfigError(
            f"speed: {speed!r} is not valid; use 0 (instant, the default), 1 (recorded timing) "
            "or N > 0 (N times faster)"
        )
    return float(speed)


_LOCALHOST = ("localhost", "127.0.0.1", "::1")


def _hosts(allow: Iterable[str] | None, ignore: Iterable[str] | None, localhost: bool) -> list[str]:
    """``allow_hosts``, with vcrpy's names for the same thing: ``ignore_hosts`` and ``ignore_localhost``."""
    hosts: list[str] = []
    for value in (allow, ignore):
        if value is None:
            continue
        if isinstance(value, str):
            value = [value]
        hosts += list(value)
    return hosts + list(_LOCALHOST) if localhost else hosts


def _check_secrets(secrets: Iterable[str]) -> tuple[str, ...]:
    if isinstance(secrets, (str, bytes)):
        secrets = [secrets]  # type: ignore[list-item]
    values = tuple(secrets)
    for value in values:
        if not isinstance(value, str):
            raise ConfigError(f"secrets: {value!r} is not text; pass a list of strings to remove from recordings")
        if len(value.strip()) < MIN_USER_SECRET_LENGTH:
            raise ConfigError(
                f"secrets: {value!r} is shorter than {MIN_USER_SECRET_LENGTH} characters; removing it would "
                "change ordinary text in the recording. List longer values"
            )
    return values


def use_cassette(
    path: str | os.PathLike[str],
    *,
    record_mode: RecordMode | str = RecordMode.NONE,
    match_on: Iterable[str | Matcher] | None = None,
    speed: float = 0.0,
    faults: Any = None,
    allow_hosts: Iterable[str] | None = None,
    record_failures: bool = False,
    secrets: Iterable[str] = (),
    ignore_hosts: Iterable[str] | None = None,
    ignore_localhost: bool = False,
    before_record_request: Callable[[Request], Request | None] | None = None,
    before_record_response: Callable[[Response], Response | None] | None = None,
    filter_headers: Iterable[Any] | None = None,
    filter_query_parameters: Iterable[Any] | None = None,
    filter_post_data_parameters: Iterable[Any] | None = None,
    clock: Clock | None = None,
    max_age: str | float | timedelta | None = None,
    on_stale: str = "warn",
) -> Tape:
    """A ``Tape`` for ``path``: use it as ``with``/``async with`` or as a decorator.

    ``max_age``: how old a recording may be (``"30d"``, ``"12h"``, ``"2w"``, seconds, a ``timedelta``);
    ``on_stale`` says what older interactions do when the tape is entered: ``"warn"`` (a
    ``StaleCassetteWarning``), ``"fail"`` (``StaleCassetteError``), or ``"rerecord"`` (re-recorded in
    their place, as ``record_mode="rewrite_stale"`` does). See docs/drift.md.

    ``faults``: what replayed responses go through (``streamtape.faults``): a fault, a list of
    faults (every request), ``faults.sequence(...)`` (per attempt), or a spec string such as
    ``"rate_limit*2 -> ok"`` or ``"scenario:flaky-network"``.

    ``allow_hosts``: hosts (names, addresses, ``*`` patterns) requests may reach unrecorded while the
    tape is entered; every other request streamtape cannot record or replay fails with
    ``NetworkBlockedError`` (``streamtape.guard``). ``record_failures``: keep a recording that only
    shows the recording went wrong (no response, or 401/403/407); by default it is not saved and the
    exit raises ``RecordingFailedError``. ``secrets``: more values (a customer id, a
    password) to remove wherever they appear in a recording, raw or JSON/URL-escaped; credentials
    in headers, query parameters and the environment are removed without being listed
    (``streamtape.redact``).

    vcrpy's escape hatches, with vcrpy's names (``streamtape.hooks``): ``ignore_hosts`` and
    ``ignore_localhost`` add to ``allow_hosts``; ``filter_headers``, ``filter_query_parameters`` and
    ``filter_post_data_parameters`` (JSON fields, dotted paths allowed) remove or replace what is
    matched and recorded; ``before_record_request`` / ``before_record_response`` rewrite it, or
    return ``None`` to leave the exchange out. Redaction always runs after them.

    ``clock``: the time replay runs on (``streamtape.engine.clock``): a ``VirtualClock`` for instant
    replay that still orders waits (the default at speed 0), ``RealClock``, ``ScaledClock(n)``, or
    your own object with ``real``, ``now()``, ``sleep()`` and ``asleep()``.

    >>> with use_cassette("tests/cassettes/story.yaml", record_mode="once") as tape:  # doctest: +SKIP
    ...     ...
    """
    return Tape(path, record_mode=record_mode, match_on=match_on, speed=speed, faults=faults,
                allow_hosts=allow_hosts, record_failures=record_failures, secrets=secrets,
                ignore_hosts=ignore_hosts, ignore_localhost=ignore_localhost,
                before_record_request=before_record_request, before_record_response=before_record_response,
                filter_headers=filter_headers, filter_query_parameters=filter_query_parameters,
                filter_post_data_parameters=filter_post_data_parameters, clock=clock, max_age=max_age,
                on_stale=on_stale)  # fmt: skip
