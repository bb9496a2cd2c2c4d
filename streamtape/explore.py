"""``pytest --tape-explore``, ``--tape-report`` and the ``rechunk:every`` summary: the plugin's search
for the failure an app does not handle, and its verdict on what the app did with each fault.

**Exploring.** For every test that uses a tape, the plugin adds one more test, ``test_x[explore]``
(one per test, not per run of a ``tape_faults`` sweep), which runs the test many times against its
cassette, each time under another fault schedule, and fails with the simplest schedule that breaks
it, as a ready-to-paste ``@pytest.mark.tape_faults("...")`` line. It runs the test's whole protocol
each time (its function fixtures set up and torn down around each run; module and session fixtures
once), on the tape's virtual clock, so nothing sleeps. Hypothesis drives the search, in three stages
that share the budget (``--tape-explore=N`` runs, 200 by default):

1. *sweep*: every one- and two-attempt sequence of the fault families (``strategies.FAMILIES``: a
   cut, a truncation, a 429, an in-stream error, a stall...), at an early, a middle and a late
   position, a finite set Hypothesis exhausts, so a bug that needs ``rate_limit -> disconnect`` is
   found however unlikely a random draw of those two would be;
2. *refine*: each failing sequence again, every kind of its families at every position, so it
   shrinks to the earliest position and the simplest kind (``disconnect:after=25`` to
   ``disconnect:after=3``);
3. *draw*: what budget is left, on schedules drawn from the whole catalogue (``strategies.schedules``:
   up to three attempts, several faults each).

Each stage keeps its failures in Hypothesis's example database, under the rootdir in
``.hypothesis/streamtape`` (none with ``-p no:cacheprovider``), so a failure found once is replayed
first next time. A run fails "the same way" when it fails in the same phase with the same exception
at the same place; each distinct failure is reported. Before exploring, the test runs once with no
faults: a test that fails so, or that makes no model API call, is not explored (it is skipped, saying
why). A run that fails inside streamtape (the cassette cannot answer what the app asked under the
fault) does not count as the app's failure.

**Verdicts** (``--tape-report[=PATH]``). What the app did under each tape and fault, from what the
SDK was given (the tape's call log: each attempt's status, how its stream ended, the events it
carried) and what the test saw (passed, or the exception that failed it): ``raised`` (an exception
escaped the app), ``failed`` (the test's own check failed), ``retried`` (the API call took more than
one attempt; the back-off the SDK would have slept), ``partial`` (the stream broke, the SDK raised,
and the app returned what it had), ``handled`` (the call failed before any of the stream, and the
app returned normally), ``silent`` (**the app returned normally although the stream it was given
ended early without its end event, or carried an in-stream error the SDK does not raise on**: a
truncated or errored answer passed on as complete), or ``ok``. Written as a terminal summary, a JSON
file, and JUnit properties (``streamtape_verdict``, ``streamtape_faults``) on each test.
"""

from __future__ import annotations

import contextlib
import json
import time
import zlib
from collections.abc import Callable, Generator, Iterable, Iterator
from dataclasses import dataclass
from pathlib import Path
from typing import TYPE_CHECKING, Any

import pytest

from .errors import ConfigError, StreamtapeError
from .wire import Cut, End, Raw, Respond, Send, Stall

if TYPE_CHECKING:
    from .engine.session import Call
    from .faults import Schedule

__all__ = ["CLEAN", "DEFAULT_BUDGET", "DRAWN", "LAST_TAPE", "SOURCE", "Explorer", "Observer", "Verdict", "classify",
           "explore_client", "literal", "plugin_hooks", "source_of", "split_label"]  # fmt: skip

#: runs ``--tape-explore`` makes per test when given no number
DEFAULT_BUDGET = 200
#: the schedule the current run of an explore item applies (``CLEAN``: none at all)
DRAWN = pytest.StashKey[Any]()
#: the test an explore item explores
SOURCE = pytest.StashKey[pytest.Item]()
#: the tape of an item's last run, for the verdict and the explorer
LAST_TAPE = pytest.StashKey[Any]()
#: the explore item's run was stopped by streamtape itself (the cassette could not answer, a fault did not fit)
_HARNESS = pytest.StashKey[str]()
#: the call phase's outcome, for the verdict: (outcome, exception type name or None)
_OUTCOME = pytest.StashKey[tuple[str, str | None]]()
CLEAN = object()
_PROPERTIES = ("streamtape_verdict", "streamtape_faults", "streamtape_report", "streamtape_explore",
               "streamtape_split")  # fmt: skip


def literal(spec: str) -> str:
    """A spec as the Python string to paste: in double quotes, as the project's code is written."""
    return f'"{spec}"' if '"' not in spec and "\\" not in spec and spec.isprintable() else repr(spec)


def source_of(node: Any) -> Any:
    """The test an explore item explores (the node itself for any other test)."""
    stash = getattr(node, "stash", None)
    return stash.get(SOURCE, node) if stash is not None else node


def drawn_faults(node: Any) -> tuple[bool, Any]:
    """``(True, schedule)`` while an explore item runs under a drawn schedule (``None``: clean)."""
    stash = getattr(node, "stash", None)
    if stash is None or DRAWN not in stash:
        return False, None
    value = stash[DRAWN]
    return True, None if value is CLEAN else value


# --- the verdict ----------------------------------------------------------------------------------------------


@dataclass(frozen=True)
class Verdict:
    """What the app did under one tape and fault schedule."""

    test: str
    cassette: str
    faults: str
    #: ``raised``, ``failed``, ``retried``, ``partial``, ``handled``, ``silent``, ``ok`` or ``error``
    verdict: str
    #: the exception that failed the test, by class name
    exception: str | None = None
    #: attempts the most-tried API call took
    attempts: int = 0
    #: seconds the SDK backed off in all (virtual: nobody waited)
    waited: float = 0.0
    #: one sentence saying what happened
    detail: str = ""
    #: each call's outcome, as the call log words it
    calls: tuple[str, ...] = ()

    def as_dict(self) -> dict[str, Any]:
        return {"test": self.test, "cassette": self.cassette, "faults": self.faults, "verdict": self.verdict,
                "exception": self.exception, "attempts": self.attempts, "waited": round(self.waited, 3),
                "detail": self.detail, "calls": list(self.calls)}  # fmt: skip


@dataclass(frozen=True)
class _Delivered:
    """What one call gave the SDK, read from the actions it replayed."""

    status: int | None
    #: ``end`` (the body ended cleanly), ``broken`` (a cut, silence, or bytes that are not HTTP), ``none``
    ending: str
    events: int  # complete events delivered
    recorded_events: int
    #: how the stream ended when it ended cleanly but not plainly (the provider's words), or None
    early: str | None = None
    #: the stream carried an error event the SDK raises on (named ``error``), or an event whose data
    #: does not parse where the recording's did (the SDK's JSON decoding raises)
    raising_error: bool = False


def _delivered(call: Call) -> _Delivered:
    from .framing import framer_for
    from .providers import provider_for

    actions = call.played
    respond = next((a for a in actions if isinstance(a, Respond)), None)
    tail = actions[-1] if actions else None
    broken = isinstance(tail, (Cut, Raw)) or (isinstance(tail, Stall) and tail.seconds is None)
    ending = "broken" if broken else "end" if isinstance(tail, End) else "none"
    if respond is None:
        return _Delivered(None, "broken" if broken else ending, 0, 0)
    body = b"".join(a.data for a in actions if isinstance(a, Send))
    framer = framer_for(respond.headers)
    events = framer.events(body) if respond.status < 300 else []
    recorded = call.interaction.response if call.interaction is not None else None
    recorded_events = len(recorded.events) if recorded is not None else 0
    raising = any(event.event == "error" for event in events)
    malformed = next((index for index, event in enumerate(events) if event.data.strip() and event.json is None), None)
    if malformed is not None and recorded is not None and len(recorded.events) > malformed:
        recorded_event = recorded.events[malformed]
        if recorded_event.json is not None or not recorded_event.data.strip():
            raising, events = True, events[:malformed]  # the SDK's JSON decoding raised there
    disguised = next((event.event for event in events if event.event != "error" and isinstance(event.json, dict)
                      and event.json.get("type") == "error"), None)  # fmt: skip
    early = None
    if ending == "end" and events and not raising:
        provider = provider_for(call.request.method, call.request.url, call.request.headers)
        try:
            early = provider.ending(events)
        except Exception:  # noqa: BLE001 - a provider without the notion: judge by the recording
            early = None
        if early is None and len(events) < recorded_events:
            early = f"clean, but early: {len(events)} of the recording's {recorded_events} events"
        if disguised is not None:
            early = f"carried an in-stream error as an event named {disguised!r}, which the SDK reads on"
    content = sum(1 for event in events if event.event != "error" and event.event != disguised)
    return _Delivered(respond.status, ending, content, recorded_events, early, raising)


def _it(early: str) -> str:
    """The provider's word for how a stream ended, as what "it" did."""
    if early.startswith("clean, but early"):
        return "ended cleanly, but early" + early.removeprefix("clean, but early").replace(" (", ": ").rstrip(")")
    if early.startswith("in-stream error"):
        return f"carried an {early}"
    return early


def classify(calls: Iterable[Call], outcome: str, exception: str | None, *, test: str = "", cassette: str = "",
             faults: str = "") -> Verdict:  # fmt: skip
    """The verdict for a test whose API calls went as ``calls`` say and which ended ``outcome``
    (``passed``, ``failed``, ``skipped``, ``error``) with ``exception`` (its class name) if it failed."""
    from .faults import Schedule

    everything = Schedule(())
    api = [call for call in calls if call.source == "replayed" and everything.applies_to(call.request.method,
                                                                                         call.request.url)]  # fmt: skip
    outcomes = tuple(call.outcome for call in api)
    attempts: dict[tuple[str, str, bytes], int] = {}
    for call in api:
        key = (call.request.method, call.request.url, call.request.body)
        attempts[key] = attempts.get(key, 0) + 1
    most = max(attempts.values(), default=0)
    waited = sum(call.waited for call in api)

    def verdict(kind: str, detail: str, exception: str | None = None) -> Verdict:
        return Verdict(test, cassette, faults, kind, exception, most, waited, detail, outcomes)

    if outcome == "error":
        return verdict("error", f"the test errored before or after it ran ({exception or 'setup'})", exception)
    if outcome == "skipped":
        return verdict("skipped", "the test was skipped")
    if outcome == "failed":
        if exception in ("AssertionError", "Failed"):
            return verdict("failed", "the app returned, and the test's own check failed", exception)
        return verdict("raised", f"{exception or 'an exception'} escaped the app", exception)
    # the test passed: what did the app pass on?
    keys = [(call.request.method, call.request.url, call.request.body) for call in api]
    last_of = {key: index for index, key in enumerate(keys)}  # a call retried later was noticed
    silent = partial = handled = None
    for index, call in enumerate(api):
        if last_of[keys[index]] != index:
            continue
        seen = _delivered(call)
        if seen.status is not None and seen.status < 300 and seen.ending == "end" and seen.early is not None:
            silent = silent or f"returned a truncated or errored stream as if complete (it {_it(seen.early)})"
        elif seen.ending == "broken" or (seen.status is not None and seen.status >= 400) or seen.raising_error:
            if seen.events:
                partial = partial or (f"the stream broke after {seen.events} of {seen.recorded_events} events "
                                      "(the SDK raised) and the app returned a partial answer")  # fmt: skip
            else:
                what = f"a {seen.status}" if seen.status is not None and seen.status >= 400 else "a broken connection"
                tries = f" after {attempts[keys[index]]} attempts" if attempts[keys[index]] > 1 else ""
                handled = handled or f"the call failed ({what}{tries}) and the app returned normally"
    if silent:
        return verdict("silent", silent)
    if partial:
        return verdict("partial", partial)
    if handled:
        return verdict("handled", handled)
    if most > 1:
        return verdict("retried", f"{most} attempts, {waited:.2f} s of back-off (virtual), then the whole stream")
    return verdict("ok", "the whole stream, and the test passed")


# --- the observer: verdicts, split summaries ------------------------------------------------------------------


_ORDER = ("silent", "raised", "failed", "error", "partial", "handled", "retried", "ok", "skipped")
_LABEL = {"silent": "SILENT", "raised": "raised", "failed": "failed", "error": "error", "partial": "partial",
          "handled": "handled", "retried": "retried", "ok": "ok", "skipped": "skipped"}  # fmt: skip


class Observer:
    """Always registered: the verdict of every test that used a tape (kept only with ``--tape-report``)
    and the ``rechunk:every`` summary. Reads reports as they are logged, so under xdist the
    controller sees every worker's."""

    def __init__(self, config: pytest.Config, report: str | None) -> None:
        self.config = config
        self.report = report
        self.verdicts: list[dict[str, Any]] = []
        self.splits: dict[str, dict[str, tuple[str, str]]] = {}  # test -> run id -> (outcome, where)
        self.explored: list[tuple[str, list[dict[str, str]]]] = []
        self.written: Path | None = None

    # -- on the process that runs the test -------------------------------------------------------------

    @pytest.hookimpl(wrapper=True, tryfirst=True)
    def pytest_runtest_makereport(self, item: pytest.Item,
                                  call: pytest.CallInfo[None]) -> Generator[None, pytest.TestReport, pytest.TestReport]:  # fmt: skip
        if call.when == "setup":
            _forget(item.stash, _OUTCOME)
        if call.when == "teardown" and self.report is not None:
            self._judge(item)
        report: pytest.TestReport = yield
        if call.when == "call" or (call.when == "setup" and report.failed):
            typename = call.excinfo.typename if call.excinfo is not None else None
            outcome: str = "error" if call.when == "setup" else report.outcome
            item.stash[_OUTCOME] = (outcome, typename)
        return report

    def _judge(self, item: pytest.Item) -> None:
        tape = item.stash.get(LAST_TAPE, None)
        if tape is None:
            return
        if DRAWN not in item.stash:  # an explore item's runs read it after this: they forget it themselves
            del item.stash[LAST_TAPE]  # a test's tape holds its cassette: not kept to the end of the session
        outcome, exception = item.stash.get(_OUTCOME, ("passed", None))
        written = getattr(getattr(item, "callspec", None), "params", {}).get("tape_fault")  # as the marker says it
        faults = written if isinstance(written, str) and DRAWN not in item.stash else _spec(tape.schedule)
        verdict = classify(tape.calls, outcome, exception, test=item.nodeid, cassette=_relative(tape.path, item.config),
                           faults=faults)  # fmt: skip
        item.user_properties[:] = [p for p in item.user_properties if p[0] not in _PROPERTIES[:3]]
        item.user_properties.append(("streamtape_verdict", f"{verdict.verdict}: {verdict.detail}"))
        item.user_properties.append(("streamtape_faults", verdict.faults))
        item.user_properties.append(("streamtape_report", json.dumps(verdict.as_dict())))

    # -- wherever reports are logged (the controller under xdist) --------------------------------------

    def pytest_runtest_logreport(self, report: pytest.TestReport) -> None:
        if report.when != "teardown" and not (report.when == "setup" and report.skipped):
            if report.when == "call":
                self._note_split(report)
            return
        for name, value in report.user_properties:
            if name == "streamtape_report" and report.when == "teardown":
                self.verdicts.append(json.loads(str(value)))
            elif name == "streamtape_explore" and report.when == "teardown":
                self.explored.append((report.nodeid, json.loads(str(value))))
        if report.when == "setup" and report.skipped:
            self._note_split(report)

    def _note_split(self, report: pytest.TestReport) -> None:
        where = next((value for name, value in report.user_properties if name == "streamtape_split"), None)
        if where is None:
            return
        test, _, run = report.nodeid.rpartition("[")
        self.splits.setdefault(test, {})[run.rstrip("]")] = (report.outcome, str(where))

    def pytest_terminal_summary(self, terminalreporter: Any) -> None:
        if self.explored:
            self._explore_summary(terminalreporter)
        if self.splits:
            self._split_summary(terminalreporter)
        if self.report is not None:
            self._report_summary(terminalreporter)

    def _explore_summary(self, writer: Any) -> None:
        found = [(test, items) for test, items in self.explored if items]
        if not found:
            return
        writer.section("streamtape explore")
        for test, items in found:
            writer.write_line(f"{test}: {len(items)} failing fault schedule(s), shrunk:")
            for entry in items:
                writer.write_line(f"    @pytest.mark.tape_faults({literal(entry['spec'])})    # {entry['error']}")

    def _split_summary(self, writer: Any) -> None:
        lines = []
        for test, runs in sorted(self.splits.items()):
            oracle = runs.get("split")
            failed = sorted(((where, run) for run, (outcome, where) in runs.items()
                             if run != "split" and outcome == "failed"), key=lambda pair: _byte(pair[1]))  # fmt: skip
            total = sum(1 for run in runs if run != "split")
            if oracle is not None and oracle[0] == "failed":
                lines.append(f"{test}: fails unsplit too, so its split runs say nothing about chunk boundaries")
            elif failed and oracle is not None:
                shown = ", ".join(f"{run.partition('=')[2]} ({where})" if where else run.partition("=")[2]
                                  for where, run in failed[:6]) + (", ..." if len(failed) > 6 else "")  # fmt: skip
                lines.append(f"{test}: passes unsplit, fails at {len(failed)} of {total} split points: bytes {shown}. "
                             f"Paste @pytest.mark.tape_faults({literal(failed[0][1])}) to keep the first")  # fmt: skip
            elif failed:
                lines.append(f"{test}: fails at {len(failed)} of {total} split points (the unsplit run did not run)")
        if lines:
            writer.section("streamtape rechunk")
            for line in lines:
                writer.write_line(line)

    def _report_summary(self, writer: Any) -> None:
        rows = sorted(self.verdicts, key=lambda row: (row["cassette"], _ORDER.index(row["verdict"])
                                                      if row["verdict"] in _ORDER else 99, row["test"]))  # fmt: skip
        writer.section("streamtape report")
        counts: dict[str, int] = {}
        for row in rows:
            counts[row["verdict"]] = counts.get(row["verdict"], 0) + 1
        writer.write_line(", ".join(f"{counts[v]} {_LABEL.get(v, v)}" for v in _ORDER if v in counts) or "no tapes used")
        cassette = None
        for row in rows:
            if row["cassette"] != cassette:
                cassette = row["cassette"]
                writer.write_line(cassette)
            what = row["exception"] if row["verdict"] in ("raised", "failed", "error") else row["detail"]
            faults = row["faults"] or "(no faults)"
            writer.write_line(f"  {_LABEL.get(row['verdict'], row['verdict']):8} {faults:32} {what}   {row['test']}")
        if self.written is not None:
            writer.write_line(f"verdicts written to {self.written}")

    def pytest_sessionfinish(self, session: pytest.Session) -> None:
        """Write the JSON file (on the controller: a worker's verdicts reach it with its reports); the
        terminal summary comes after this."""
        if not hasattr(self.config, "workerinput"):
            self.written = self._write()

    def _write(self) -> Path | None:
        if not self.report:
            return None
        path = Path(self.report)
        if not path.is_absolute():
            path = Path(str(self.config.rootpath)) / path
        counts: dict[str, int] = {}
        for row in self.verdicts:
            counts[row["verdict"]] = counts.get(row["verdict"], 0) + 1
        document = {"version": 1, "counts": counts, "verdicts": self.verdicts,
                    "explored": [{"test": test, "found": items} for test, items in self.explored]}  # fmt: skip
        path.parent.mkdir(parents=True, exist_ok=True)
        path.write_text(json.dumps(document, indent=2) + "\n", encoding="utf-8")
        return path


def _byte(run: str) -> int:
    try:
        return int(run.rpartition("=")[2])
    except ValueError:
        return -1


def _relative(path: Path, config: pytest.Config) -> str:
    try:
        return str(Path(path).resolve().relative_to(Path(str(config.rootpath)).resolve()))
    except ValueError:
        return str(path)


def _spec(schedule: Schedule | None) -> str:
    return "" if schedule is None else schedule.spec()


def split_label(body: bytes, point: int) -> str:
    """Which trap a split point falls on, in a few words ("" for none)."""
    if 0 < point < len(body) and 0x80 <= body[point] < 0xC0:
        return "inside a UTF-8 character"
    if 0 < point < len(body) and body[point - 1 : point + 1] == b"\r\n":
        return "between CR and LF"
    return ""


# --- the explorer ---------------------------------------------------------------------------------------------


class _Failure(Exception):
    """A run that failed: one subclass per way of failing, so Hypothesis shrinks each on its own."""


_FAILURE_TYPES: dict[tuple[str, ...], type[_Failure]] = {}


def _failure_type(signature: tuple[str, ...]) -> type[_Failure]:
    if signature not in _FAILURE_TYPES:
        name = "Failure_" + format(zlib.crc32(repr(signature).encode()), "08x")
        _FAILURE_TYPES[signature] = type(name, (_Failure,), {})
    return _FAILURE_TYPES[signature]


@dataclass
class _Run:
    """How one run of an explored test went."""

    failed: bool
    #: it was stopped by streamtape itself (what the app asked, the cassette could not answer)
    harness: str | None = None
    #: the way it failed: the phase, the exception's class and where it was raised
    signature: tuple[str, ...] = ()
    error: str = ""
    api_calls: int = 0


@dataclass
class _Found:
    spec: str
    error: str
    signature: tuple[str, ...]
    schedule: Any
    stage: str


@dataclass
class _Budget:
    total: int
    runs: int = 0
    rejected: int = 0

    @property
    def left(self) -> int:
        return max(self.total - self.runs, 0)


#: what one run's failure was, as the explorer reads it from the exception (not from the report)
_FAILED = pytest.StashKey[tuple[tuple[str, ...], str]]()
#: an explore item's shared SDK clients, by factory (``explore_client``)
_CLIENTS = pytest.StashKey[dict[Any, Any]]()


def explore_client(node: Any, factory: Any) -> Any:
    """The client an explore item's runs share (made once with ``factory``), or ``None`` for any other
    test: making an SDK client loads the CA certificates, ~50 ms, more than a replayed run costs."""
    stash = getattr(node, "stash", None)
    if stash is None or SOURCE not in stash:
        return None
    clients = stash.setdefault(_CLIENTS, {})
    if factory not in clients:
        clients[factory] = factory()
    return clients[factory]


def plugin_hooks(uses_tape: Callable[[Any], bool], settings_for: Callable[[Any, pytest.Config], Any],
                 not_runs: tuple[type, ...]) -> _Plugin:  # fmt: skip
    """What ``Explorer`` needs of the plugin, handed over by it (this module never imports it back)."""
    return _Plugin(uses_tape, settings_for, not_runs)


def _forget(stash: Any, key: Any) -> None:
    if key in stash:
        del stash[key]


@dataclass(frozen=True)
class _Plugin:
    """What the explorer asks of the plugin (``streamtape.plugin``, which imports this module)."""

    #: whether a test uses a tape
    uses_tape: Callable[[Any], bool]
    #: a test's tape settings (its cassette path, its record mode)
    settings_for: Callable[[Any, pytest.Config], Any]
    #: the ``tape_fault`` values that are not a run of a sweep (a recording first, a spec that failed)
    not_runs: tuple[type, ...]


class Explorer:
    """Registered with ``--tape-explore``: adds the explore items and runs them."""

    def __init__(self, config: pytest.Config, budget: int, seed: int | None, *, exclude: tuple[str, ...] = (),
                 plugin: _Plugin) -> None:  # fmt: skip
        self.config = config
        self.budget = budget
        self.seed = seed
        self.exclude = exclude
        self.plugin = plugin

    # -- collection ------------------------------------------------------------------------------------

    @pytest.hookimpl(tryfirst=True)
    def pytest_collection_modifyitems(self, session: pytest.Session, config: pytest.Config,
                                      items: list[pytest.Item]) -> None:  # fmt: skip
        out: list[pytest.Item] = []
        seen: set[tuple[Any, ...]] = set()
        for item in items:
            out.append(item)
            if not isinstance(item, pytest.Function) or SOURCE in item.stash or not self.plugin.uses_tape(item):
                continue
            params = dict(getattr(getattr(item, "callspec", None), "params", {}))
            if isinstance(params.get("tape_fault"), self.plugin.not_runs):
                continue
            group = (item.parent.nodeid if item.parent else "", item.originalname,
                     tuple(sorted((k, repr(v)) for k, v in params.items() if k != "tape_fault")))  # fmt: skip
            if group in seen:
                continue  # one exploration per test, not one per run of its tape_faults sweep
            seen.add(group)
            out.append(self._item_for(item, params))
        items[:] = out

    def _item_for(self, item: pytest.Function, params: dict[str, Any]) -> pytest.Function:
        if set(params) == {"tape_fault"}:
            name = f"{item.originalname}[explore]"
        elif item.name.endswith("]"):
            name = f"{item.name[:-1]}-explore]"
        else:
            name = f"{item.name}[explore]"
        explore = pytest.Function.from_parent(
            item.parent, name=name, callspec=getattr(item, "callspec", None),
            fixtureinfo=item._fixtureinfo, originalname=item.originalname,  # the source's fixture closure
        )  # fmt: skip
        explore.stash[SOURCE] = item
        return explore

    # -- running ---------------------------------------------------------------------------------------

    @pytest.hookimpl(wrapper=True)
    def pytest_runtest_makereport(self, item: pytest.Item, call: pytest.CallInfo[None]) -> Iterator[Any]:
        """While an explore item runs, note how each run failed, from the exception itself."""
        excinfo = call.excinfo
        if excinfo is not None and DRAWN in item.stash and _FAILED not in item.stash:
            if isinstance(excinfo.value, StreamtapeError):
                item.stash[_HARNESS] = str(excinfo.value).splitlines()[0]
            elif not isinstance(excinfo.value, (pytest.skip.Exception, pytest.xfail.Exception)):
                item.stash[_FAILED] = ((call.when, excinfo.typename, *_escaped(excinfo, item)), _one_line(excinfo))
        return (yield)

    @pytest.hookimpl(tryfirst=True)
    def pytest_runtest_protocol(self, item: pytest.Item, nextitem: pytest.Item | None) -> bool | None:
        if SOURCE not in item.stash:
            return None
        item.ihook.pytest_runtest_logstart(nodeid=item.nodeid, location=item.location)
        for report in self._explore(item, nextitem):
            item.ihook.pytest_runtest_logreport(report=report)
        item.ihook.pytest_runtest_logfinish(nodeid=item.nodeid, location=item.location)
        return True

    def _explore(self, item: pytest.Item, nextitem: pytest.Item | None) -> list[pytest.TestReport]:
        from _pytest.runner import runtestprotocol

        started = time.monotonic()
        properties = [p for p in item.user_properties if p[0] not in _PROPERTIES]
        budget = _Budget(self.budget)
        found: list[_Found] = []
        replayed = False
        style = item.config.option.tbstyle
        item.config.option.tbstyle = "native"  # a run's report is read for its outcome only: no source parsing
        try:
            reason = self._unexplorable(item)
            if reason is None:
                reason = self._baseline(item)
            if reason is None:
                found, replayed = self._search(item, budget)
        finally:
            item.config.option.tbstyle = style
        item.user_properties[:] = properties
        if reason is not None:
            item.add_marker(pytest.mark.skip(reason=f"streamtape explore: {reason}"))
        summary = [{"spec": hit.spec, "error": hit.error} for hit in found]
        item.user_properties.append(("streamtape_explore", json.dumps(summary)))
        item.stash[DRAWN] = found[0].schedule if found else CLEAN
        try:
            reports = runtestprotocol(item, log=False, nextitem=nextitem)
        finally:
            _forget(item.stash, DRAWN)
            for client in item.stash.get(_CLIENTS, {}).values():
                close = getattr(client, "close", None)
                if close is not None:
                    close()
            _forget(item.stash, _CLIENTS)
        if reason is None:
            self._describe(item, reports, found, budget, replayed, time.monotonic() - started)
        return reports

    def _unexplorable(self, item: pytest.Item) -> str | None:
        from .tape import RecordMode

        if getattr(getattr(item, "obj", None), "is_hypothesis_test", False):
            return "the test is a Hypothesis test itself (draw schedules in it with streamtape.strategies instead)"
        try:
            settings = self.plugin.settings_for(source_of(item), item.config)
        except pytest.UsageError as exc:
            return str(exc)
        if getattr(settings, "on_stale", None) == "rerecord":
            return "it re-records what is stale (on_stale='rerecord'), and exploring only replays"
        if settings.record_mode not in (RecordMode.NONE, RecordMode.ONCE) or not settings.path.exists():
            return (f"it needs its recorded cassette ({settings.path}) and a replay mode (none, or once with the "
                    "cassette recorded): record it first, then explore")  # fmt: skip
        from . import strategies

        try:
            self._shape = strategies.shape(settings.path, exclude=self.exclude)
        except ConfigError as exc:
            return str(exc)
        return None

    def _baseline(self, item: pytest.Item) -> str | None:
        clean = self._run(item, CLEAN)
        if clean.harness:
            return f"its run with no faults stopped inside streamtape: {clean.harness}"
        if clean.failed:
            return "the test fails with no faults at all (see its own run); exploring it would only find that"
        if not clean.api_calls:
            return "the test made no model API call, so no fault can reach it"
        return None

    def _run(self, item: pytest.Item, schedule: Any) -> _Run:
        """One run of the test's whole protocol under ``schedule``: its function fixtures set up and
        torn down around it, the module's and the session's kept."""
        from _pytest.runner import runtestprotocol

        item.stash[DRAWN] = schedule
        for key in (_HARNESS, _FAILED, LAST_TAPE):
            _forget(item.stash, key)
        reports = runtestprotocol(item, log=False, nextitem=item.parent)  # type: ignore[arg-type]
        harness = item.stash.get(_HARNESS, None)
        tape = item.stash.get(LAST_TAPE, None)
        api = 0
        if tape is not None:
            from .faults import Schedule

            everything = Schedule(())
            api = sum(1 for call in tape.calls if everything.applies_to(call.request.method, call.request.url))
        if not any(report.failed for report in reports):
            return _Run(False, harness, api_calls=api)
        signature, error = item.stash.get(_FAILED, (("failed",), "failed"))
        return _Run(True, harness, signature, error, api)

    # -- the search ------------------------------------------------------------------------------------

    def _seed(self, item: pytest.Item) -> int:
        return self.seed if self.seed is not None else zlib.crc32(source_of(item).nodeid.encode())

    def _database(self, item: pytest.Item) -> Any:
        """Hypothesis's example database under the rootdir (``None`` with ``-p no:cacheprovider``)."""
        if not item.config.pluginmanager.has_plugin("cacheprovider"):
            return None
        from hypothesis.database import DirectoryBasedExampleDatabase

        return DirectoryBasedExampleDatabase(Path(str(item.config.rootpath)) / ".hypothesis" / "streamtape")

    def _key(self, item: pytest.Item, stage: str) -> bytes:
        return f"streamtape-explore|{source_of(item).nodeid}|{stage}".encode()

    def _search(self, item: pytest.Item, budget: _Budget) -> tuple[list[_Found], bool]:
        """The failures to report: the ones found last time, if they still fail; else a new search."""
        from . import strategies
        from .faults import parse

        database = self._database(item)
        key = self._key(item, "found")
        stored = sorted(set(database.fetch(key))) if database is not None else []
        again: dict[tuple[str, ...], _Found] = {}
        for value in stored:  # found last time: replayed first
            spec = value.decode("utf-8", "replace")
            try:
                schedule = strategies.as_drawn(parse(spec), spec)
            except StreamtapeError:
                database.delete(key, value)
                continue
            run = self._run(item, schedule)
            budget.runs += 1
            if run.failed and not run.harness:
                again.setdefault(run.signature, _Found(spec, run.error, run.signature, schedule, "replayed"))
            else:
                database.delete(key, value)
        if again:
            return self._ordered(again), True
        found = self._sweep(item, budget)
        for signature, hit in list(found.items()):
            if not budget.left:
                break
            refined = self._hypothesis(item, strategies.refine(self._shape, hit.schedule), f"refine|{hit.spec}",
                                       min(budget.left, 60), budget, only=signature, known={})  # fmt: skip
            if signature in refined and _simpler(refined[signature].spec, hit.spec):
                found[signature] = refined[signature]
        if budget.left:
            drawn = strategies.schedules(self._shape, max_attempts=3)
            for signature, hit in self._hypothesis(item, drawn, "draw", budget.left, budget, only=None,
                                                   known=found).items():  # fmt: skip
                found.setdefault(signature, hit)
        if database is not None:
            for hit in found.values():
                database.save(key, hit.spec.encode())
        return self._ordered(found), False

    def _ordered(self, found: dict[tuple[str, ...], _Found]) -> list[_Found]:
        return sorted(found.values(), key=lambda hit: (hit.spec.count("->"), hit.spec.count("+")))  # stable: sweep order

    def _sweep(self, item: pytest.Item, budget: _Budget) -> dict[tuple[str, ...], _Found]:
        """Every canonical short schedule, simplest first (``strategies.canonical``): the first that
        fails each way is that failure's simplest canonical form."""
        from . import strategies

        found: dict[tuple[str, ...], _Found] = {}
        for schedule in strategies.canonical(self._shape):
            if not budget.left:
                break
            budget.runs += 1
            run = self._run(item, schedule)
            if run.harness:
                budget.rejected += 1
            elif run.failed and run.signature not in found:
                found[run.signature] = _Found(schedule.spec(), run.error, run.signature, schedule, "sweep")
        return found

    def _hypothesis(self, item: pytest.Item, strategy: Any, stage: str, runs: int, budget: _Budget, *,
                    only: tuple[str, ...] | None, known: dict[tuple[str, ...], _Found]) -> dict[tuple[str, ...], _Found]:  # fmt: skip
        """Hypothesis runs the test under schedules from ``strategy`` (``runs`` examples at most) and
        shrinks each new way of failing (``only``: just that one)."""
        from hypothesis import HealthCheck, Phase, Verbosity, given, reject, settings
        from hypothesis import seed as seeded

        new: dict[tuple[str, ...], _Found] = {}

        def explore_one(schedule: Any) -> None:
            budget.runs += 1
            run = self._run(item, schedule)
            if run.harness is not None:
                budget.rejected += 1
                reject()
            if not run.failed or (only is not None and run.signature != only) or run.signature in known:
                return  # a pass, or a failure reported already: search on
            new[run.signature] = _Found(schedule.spec(), run.error, run.signature, schedule, stage.split("|")[0])
            raise _failure_type(run.signature)(schedule.spec())

        database = self._database(item)
        test = settings(
            database=None if database is None else _namespaced(database, self._key(item, stage)),
            max_examples=max(1, runs), deadline=None, suppress_health_check=list(HealthCheck),
            verbosity=Verbosity.quiet, print_blob=False, report_multiple_bugs=only is None,
            phases=(Phase.explicit, Phase.reuse, Phase.generate, Phase.shrink),
        )(given(strategy)(explore_one))  # fmt: skip
        with contextlib.suppress(Exception):  # Hypothesis raises what it shrank (or a group of them): kept in ``new``
            seeded(self._seed(item))(test)()
        return new

    def _describe(self, item: pytest.Item, reports: list[pytest.TestReport], found: list[_Found], budget: _Budget,
                  replayed: bool, seconds: float) -> None:  # fmt: skip
        how = "replayed from the example database" if replayed else f"seed {self._seed(item)}"
        tail = f"{budget.runs} run{'' if budget.runs == 1 else 's'} in {seconds:.1f} s, {how}" + (
            f"; {budget.rejected} runs asked for what the cassette does not hold and were not counted"
            if budget.rejected else "")  # fmt: skip
        if not found:
            for report in reports:
                if report.when == "call":
                    report.sections.append(("streamtape explore", f"no failing fault schedule found ({tail})"))
            return
        lines = [f"{len(found)} failing fault schedule(s) found ({tail}), each shrunk; paste one to keep it:"]
        lines += [f"    @pytest.mark.tape_faults({literal(hit.spec)})    # {hit.error}" for hit in found]
        text = "\n".join(lines)
        failing = next((report for report in reports if report.failed), None)
        if failing is None:  # the shrunk schedule passed when run once more: say so, and fail anyway
            call = next((report for report in reports if report.when == "call"), reports[-1])
            call.outcome = "failed"
            call.longrepr = (f"{text}\n(run once more, {found[0].spec!r} passed: the failure depends on more than "
                             "the faults)")  # fmt: skip
            return
        longrepr = failing.longrepr
        add = getattr(longrepr, "addsection", None)
        if add is not None:
            add("streamtape explore", text)
            crash = getattr(longrepr, "reprcrash", None)
            if crash is not None:
                crash.message = f"[tape_faults({literal(found[0].spec)})] {crash.message}"
        else:
            failing.longrepr = f"{longrepr}\n\n{text}"


def _simpler(new: str, old: str) -> bool:
    """Whether ``new`` is at least as simple a spec as ``old`` (fewer attempts, fewer faults, earlier)."""
    return (new.count("->"), new.count("+"), _positions_of(new)) <= (old.count("->"), old.count("+"), _positions_of(old))


def _positions_of(spec: str) -> tuple[int, ...]:
    import re

    return tuple(int(n) for n in re.findall(r"(?:after|at_byte|event)=(\d+)", spec))


def _escaped(excinfo: pytest.ExceptionInfo[BaseException], item: pytest.Item) -> tuple[str, str]:
    """Where an exception left the test's own code: the last line of the test's file it passed
    through (the assert, or the call into the app it escaped from), else the innermost frame. Two runs
    that fail with the same exception there fail the same way, however deep inside the SDK it began."""
    entries = list(excinfo.traceback)
    own = [entry for entry in entries if Path(str(entry.path)) == Path(str(item.path))]
    chosen = own or entries
    if not chosen:
        return ("", "")
    return (str(chosen[-1].path), str(chosen[-1].lineno + 1))


def _one_line(excinfo: pytest.ExceptionInfo[BaseException]) -> str:
    text = str(excinfo.value).strip().splitlines()
    return f"{excinfo.typename}: {text[0]}" if text else excinfo.typename


def _namespaced(inner: Any, prefix: bytes) -> Any:
    """A Hypothesis example database whose keys are prefixed (one test's stage per prefix)."""
    from hypothesis.database import ExampleDatabase

    class Namespaced(ExampleDatabase):
        def _key(self, key: bytes) -> bytes:
            return prefix + b"|" + key

        def save(self, key: bytes, value: bytes) -> None:
            inner.save(self._key(key), value)

        def fetch(self, key: bytes) -> Iterable[bytes]:
            return inner.fetch(self._key(key))

        def delete(self, key: bytes, value: bytes) -> None:
            inner.delete(self._key(key), value)

        def move(self, src: bytes, dest: bytes, value: bytes) -> None:
            inner.move(self._key(src), self._key(dest), value)

        def __repr__(self) -> str:
            return f"Namespaced({inner!r}, {prefix!r})"

    return Namespaced()
