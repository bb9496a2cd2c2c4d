"""pytest glue: the ``tape`` fixture, the ``tape`` and ``tape_faults`` markers, and the options.

Registered through the ``pytest11`` entry point, so installing streamtape is enough. Every setting
is resolved in one place, ``settings_for``: command line (or its environment twin) > marker > ini >
default.
"""

from __future__ import annotations

import os
import re
import sysconfig
import types
from collections.abc import Iterator
from contextlib import contextmanager
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

import pytest

from .age import ON_STALE, parse_age
from .cassette import Cassette
from .errors import StreamtapeError
from .explore import (
    DEFAULT_BUDGET,
    LAST_TAPE,
    SOURCE,
    Explorer,
    Observer,
    drawn_faults,
    explore_client,
    plugin_hooks,
    source_of,
    split_label,
)
from .providers import PLACEHOLDER_KEY
from .tape import RecordMode, Tape

__all__ = ["PLACEHOLDER_KEY", "TapeSettings", "default_cassette_path", "settings_for"]

_TAPE_HELP = (
    "tape(cassette=None, *, faults=None, record_mode=None, match_on=None, speed=None, allow_hosts=None, "
    "record_failures=None, secrets=None, max_age=None, on_stale=None, ignore_hosts=None, ignore_localhost=None, "
    "filter_headers=None, filter_query_parameters=None, filter_post_data_parameters=None, before_record_request=None, "
    "before_record_response=None): replay (or record) the test's HTTP traffic with a streamtape cassette (no fixture "
    "needed); default path <test dir>/cassettes/<module>/<test>.yaml; project-wide defaults: the tape_config fixture"
)
_FAULTS_HELP = (
    "tape_faults(*specs): run the test once per fault spec, e.g. 'disconnect:after=*' (one test per event "
    "boundary of the cassette), 'at_byte=*/64' (every 64th byte), 'rechunk:every' (one test per byte "
    "boundary the body is split at, and one unsplit), 'rate_limit*3', 'stall:after=2'"
)
#: what a tape's other options are passed on to ``Tape`` as they are (``streamtape.hooks``, vcrpy's names)
_PASSED_ON = ("ignore_hosts", "ignore_localhost", "before_record_request", "before_record_response",
              "filter_headers", "filter_query_parameters", "filter_post_data_parameters")  # fmt: skip
_MARKER_KEYS = ("cassette", "faults", "record_mode", "match_on", "speed", "allow_hosts", "record_failures", "secrets",
                "max_age", "on_stale", *_PASSED_ON)  # fmt: skip
_RESULTS = pytest.StashKey[list[str]]()  # what the terminal summary reports: recordings that skipped faults


class _Strict:
    """``--tape-strict`` judges a cassette once, across every test that uses it: when its last user
    in this session finishes, or at the end of the session (under xdist, on the controller, from
    every worker's share), never per test: a cassette shared by three tests is played by all three.
    """

    def __init__(self, *, worker: bool) -> None:
        self.worker = worker  # an xdist worker only reports what it saw
        self.users: dict[Path, int] = {}  # tests still to run, per cassette
        self.played: dict[Path, set[int]] = {}
        self.described: dict[Path, list[str]] = {}  # every loaded interaction, described
        self.ran: dict[Path, int] = {}
        self.judged: set[Path] = set()

    def count_users(self, session: pytest.Session) -> None:
        for item in session.items:
            if not _uses_tape(item) or SOURCE in item.stash:  # an explore item: its runs are not judged
                continue
            try:
                path = settings_for(item, session.config).path
            except pytest.UsageError:
                continue  # reported when the test runs
            self.users[path] = self.users.get(path, 0) + 1

    def finished(self, path: Path, tape: Tape) -> str | None:
        """Note what ``tape`` played; the verdict when this was the cassette's last test."""
        self.played.setdefault(path, set()).update(tape.played_indices)
        self.described.setdefault(path, [item.describe() for item in tape.loaded])
        self.ran[path] = self.ran.get(path, 0) + 1
        self.users[path] = self.users.get(path, 1) - 1
        if self.worker or self.users[path] > 0:
            return None
        return self.verdict(path)

    def verdict(self, path: Path) -> str | None:
        self.judged.add(path)
        missing = [d for i, d in enumerate(self.described.get(path, [])) if i not in self.played.get(path, set())]
        if not missing:
            return None
        listed = "\n".join(f"  - #{i}: {d}" for i, d in enumerate(self.described[path])
                           if i not in self.played[path])  # fmt: skip
        tests = self.ran[path]
        return (
            f"{len(missing)} recorded interaction(s) in {path} were never played by the {tests} test(s) that "
            f"use it (strict mode: --tape-strict / tape_strict):\n{listed}\nDelete them from the cassette "
            "(re-record it with --tape-record-mode=all), or add the test that needs them"
        )

    def share(self) -> dict[str, Any]:
        """What a worker sends the controller (plain data: it crosses a process boundary)."""
        return {str(p): [sorted(self.played.get(p, ())), self.described.get(p, []), self.ran.get(p, 0)]
                for p in self.described}  # fmt: skip

    def merge(self, shared: dict[str, Any]) -> None:
        for name, (played, described, ran) in shared.items():
            path = Path(name)
            self.played.setdefault(path, set()).update(played)
            self.described.setdefault(path, described)
            self.ran[path] = self.ran.get(path, 0) + ran

    def unjudged(self) -> list[str]:
        """The verdicts the session end still owes (cassettes whose last test never got to say it)."""
        return [v for path in sorted(self.described) if path not in self.judged if (v := self.verdict(path))]


_STRICT = pytest.StashKey[_Strict]()


def _uses_tape(item: Any) -> bool:
    return bool(
        "tape" in getattr(item, "fixturenames", ())
        or item.get_closest_marker("tape")
        or item.get_closest_marker("tape_faults")
    )


def pytest_collection_finish(session: pytest.Session) -> None:
    if hasattr(session.config, "workerinput"):
        return  # an xdist worker runs a share of the tests: only the controller can judge
    session.config.stash[_STRICT].count_users(session)


def pytest_sessionfinish(session: pytest.Session, exitstatus: int) -> None:
    strict = session.config.stash.get(_STRICT, None)
    if strict is None:
        return
    if hasattr(session.config, "workerinput"):
        session.config.workeroutput["streamtape_strict"] = strict.share()  # type: ignore[attr-defined]
        return
    verdicts = strict.unjudged()
    if verdicts:
        session.config.stash[_RESULTS].extend(verdicts)
        session.exitstatus = pytest.ExitCode.TESTS_FAILED


@pytest.hookimpl(optionalhook=True)
def pytest_testnodedown(node: Any, error: Any) -> None:
    """xdist: a worker finished; its share of what strict cassettes played joins the controller's."""
    shared = getattr(node, "workeroutput", {}).get("streamtape_strict")
    if shared:
        node.config.stash[_STRICT].merge(shared)


@dataclass(frozen=True)
class TapeSettings:
    """Everything one test's tape is made from."""

    path: Path
    record_mode: RecordMode
    faults: Any = None
    match_on: Any = None
    speed: float = 0.0
    strict: bool = False
    allow_hosts: tuple[str, ...] = ()
    record_failures: bool = False
    secrets: tuple[str, ...] = ()
    #: the hooks and filters, passed on to ``Tape`` unchanged
    options: dict[str, Any] = field(default_factory=dict)
    #: how old recordings may be (``"30d"``), and what older ones do: warn, fail, rerecord (docs/drift.md)
    max_age: Any = None
    on_stale: str = "warn"


def pytest_addoption(parser: pytest.Parser) -> None:
    group = parser.getgroup("streamtape", "streamtape: record and replay streaming HTTP")
    group.addoption(
        "--tape-record-mode",
        choices=[
            *(mode.value for mode in RecordMode),
            *(m.value.replace("_", "-") for m in RecordMode if "_" in m.value),
        ],
        default=None,
        help="none (default: replay only, never the network), once, new_episodes, all, or rewrite-stale (re-record "
        "only what is older than --tape-max-age); env STREAMTAPE_RECORD_MODE",
    )
    group.addoption("--tape-dir", default=None, help="where cassettes live (default: <test dir>/cassettes)")
    group.addoption("--tape-max-age", type=_max_age, default=None, metavar="AGE",
                    help="recordings older than this (30d, 12h, 2w) are stale: see --tape-on-stale (ini tape_max_age)")  # fmt: skip
    group.addoption("--tape-on-stale", choices=list(ON_STALE), default=None,
                    help="what a cassette with stale recordings does: warn (default), fail, or rerecord them in "
                    "place (ini tape_on_stale)")  # fmt: skip
    group.addoption(
        "--tape-strict", action="store_true", default=None, help="fail tests that leave recorded interactions unplayed"
    )
    group.addoption(
        "--tape-explore", nargs="?", type=_runs, const=DEFAULT_BUDGET, default=None, metavar="N",
        help=f"for every test that uses a tape, also run it under N drawn fault schedules (default {DEFAULT_BUDGET}) "
        "and report the simplest one that fails it, as a tape_faults line (needs hypothesis)",
    )  # fmt: skip
    group.addoption("--tape-explore-seed", type=int, default=None, metavar="SEED",
                    help="the seed --tape-explore draws from (default: one per test, the same every run)")  # fmt: skip
    group.addoption(
        "--tape-report", nargs="?", type=_report_path, const="streamtape-report.json", default=None, metavar="PATH",
        help="a verdict per tape and fault (raised, retried, partial, silent success...): a terminal summary and a "
        "JSON file (default streamtape-report.json under the rootdir), and JUnit properties",
    )  # fmt: skip
    group.addoption("--tape-rechunk-budget", type=_runs, default=None, metavar="N",
                    help="at most N split points per rechunk:every sweep (default 256; ini tape_rechunk_budget)")  # fmt: skip
    parser.addini("tape_rechunk_budget", "at most this many split points per rechunk:every sweep", default="256")
    parser.addini("tape_explore_exclude", "faults --tape-explore never draws (default drop and duplicate: events lost "
                  "or repeated inside one connection, which no server sends and no app can tell)", type="linelist",
                  default=["drop", "duplicate"])  # fmt: skip
    parser.addini("tape_record_mode", "record mode for tapes: none, once, new_episodes, all, rewrite_stale", default="")
    parser.addini("tape_max_age", "recordings older than this (30d, 12h, 2w) are stale (see tape_on_stale)", default="")
    parser.addini("tape_on_stale", "what a cassette with stale recordings does: warn, fail, rerecord", default="")
    parser.addini("tape_cassette_dir", "where cassettes live (default: <test dir>/cassettes)", default="")
    parser.addini("tape_strict", "fail tests that leave recorded interactions unplayed", type="bool", default=False)
    parser.addini(
        "tape_allow_hosts",
        "hosts tests may reach unrecorded while a tape is entered (names, addresses, * patterns; "
        "loopback only when listed)",
        type="linelist",
        default=[],
    )
    parser.addini(
        "tape_record_failures",
        "save recordings that only show the recording failed (no response, 401/403/407)",
        type="bool",
        default=False,
    )
    parser.addini(
        "tape_secrets",
        "more values to remove from recordings wherever they appear (credentials in headers, query "
        "parameters and *_API_KEY variables are removed without being listed)",
        type="linelist",
        default=[],
    )


def pytest_configure(config: pytest.Config) -> None:
    config.addinivalue_line("markers", _TAPE_HELP)
    config.addinivalue_line("markers", _FAULTS_HELP)
    config.stash[_RESULTS] = []
    config.stash[_STRICT] = _Strict(worker=hasattr(config, "workerinput"))
    if config.getoption("--tape-rechunk-budget", None) is None:
        _ini_runs(config, "tape_rechunk_budget")  # a bad ini value is the suite's mistake: said once, at start
    report = config.getoption("--tape-report", None)
    config.pluginmanager.register(Observer(config, report), "streamtape-observer")
    runs = config.getoption("--tape-explore", None)
    if runs is not None:
        try:
            import hypothesis  # noqa: F401
        except ImportError:
            raise pytest.UsageError("--tape-explore needs Hypothesis, which is not installed: pip install "
                                    "'pytest-streamtape[explore]' (or pip install hypothesis)") from None  # fmt: skip
        explorer = Explorer(config, runs, config.getoption("--tape-explore-seed", None),
                            exclude=tuple(config.getini("tape_explore_exclude")),
                            plugin=plugin_hooks(_uses_tape, settings_for, (_RecordFirst, _Unexpandable)))  # fmt: skip
        config.pluginmanager.register(explorer, "streamtape-explorer")


def _report_path(text: str) -> str:
    """Where ``--tape-report`` writes: a ``.json`` path, so a test path after the option is never taken
    for it (and overwritten)."""
    import argparse

    if not text.endswith(".json"):
        raise argparse.ArgumentTypeError(f"{text!r} is not a .json file to write the verdicts to; give one with = "
                                         "(--tape-report=report.json), or put the option after the test paths")  # fmt: skip
    return text


def _max_age(text: str) -> str:
    """``--tape-max-age``: an age such as ``30d``, checked when the command line is read."""
    import argparse

    try:
        parse_age(text, "--tape-max-age")
    except StreamtapeError as exc:
        raise argparse.ArgumentTypeError(str(exc)) from None
    return text


def _runs(text: str) -> int:
    """A positive number of runs, for the options that take one."""
    import argparse

    try:
        value = int(text)
    except ValueError:
        raise argparse.ArgumentTypeError(f"{text!r} is not a number of runs; give one with = (--tape-explore=200), "
                                         "or put it after the test paths") from None  # fmt: skip
    if value < 1:
        raise argparse.ArgumentTypeError(f"{value} runs; give a number of 1 or more")
    return value


def pytest_terminal_summary(terminalreporter: Any, exitstatus: int, config: pytest.Config) -> None:
    notes = config.stash.get(_RESULTS, [])
    if notes:
        terminalreporter.section("streamtape")
        for note in notes:
            terminalreporter.write_line(note)


def settings_for(node: Any, config: pytest.Config, base: dict[str, Any] | None = None) -> TapeSettings:
    """The one place settings are resolved: command line (or env) > marker > the ``tape_config``
    fixture (``base``) > ini > default."""
    marker = node.get_closest_marker("tape")
    args, marked = (marker.args, dict(marker.kwargs)) if marker else ((), {})
    unknown = sorted(set(marked) - set(_MARKER_KEYS))
    if len(args) > 1 or unknown or (args and "cassette" in marked):
        raise pytest.UsageError(
            f"{node.nodeid}: @pytest.mark.tape takes at most one cassette path and the keywords "
            f"{', '.join(_MARKER_KEYS)}; got {len(args)} paths and keywords {sorted(marked)}"
        )
    base = dict(base or {})
    if not isinstance(base, dict) or set(base) - set(_MARKER_KEYS) or "cassette" in base:
        raise pytest.UsageError(
            f"{node.nodeid}: the tape_config fixture must return a dict of the keywords "
            f"{', '.join(k for k in _MARKER_KEYS if k != 'cassette')}; got {sorted(base)}"
        )
    kwargs = {**base, **{k: v for k, v in marked.items() if v is not None}}
    cassette = kwargs.get("cassette", args[0] if args else None)
    mode = _first(
        config.getoption("--tape-record-mode"),
        os.environ.get("STREAMTAPE_RECORD_MODE"),
        kwargs.get("record_mode"),
        config.getini("tape_record_mode"),
    )
    strict = _first(config.getoption("--tape-strict"), config.getini("tape_strict"))
    speed = kwargs.get("speed")
    allow_hosts = kwargs.get("allow_hosts")
    if allow_hosts is None:
        allow_hosts = config.getini("tape_allow_hosts")
    elif isinstance(allow_hosts, str):
        allow_hosts = [allow_hosts]
    record_failures = _first(kwargs.get("record_failures"), config.getini("tape_record_failures"))
    secrets = config.getini("tape_secrets")  # the project's list always applies; tape_config and a marker add
    for source in (base, marked):
        value = source.get("secrets")
        secrets = secrets + ([value] if isinstance(value, str) else list(value or ()))
    try:
        record_mode = RecordMode.parse(mode or "none")
    except StreamtapeError as exc:
        raise pytest.UsageError(f"{node.nodeid}: {exc}") from None
    return TapeSettings(
        path=_cassette_path(node, config, cassette),
        record_mode=record_mode,
        faults=kwargs.get("faults"),
        match_on=kwargs.get("match_on"),
        speed=0.0 if speed is None else speed,
        strict=bool(strict),
        allow_hosts=tuple(allow_hosts),
        record_failures=bool(record_failures),
        secrets=tuple(secrets),
        options={key: kwargs[key] for key in _PASSED_ON if kwargs.get(key) is not None},
        max_age=_first(config.getoption("--tape-max-age", None), kwargs.get("max_age"), config.getini("tape_max_age")),
        on_stale=_stale_policy(config, kwargs),
    )


def _stale_policy(config: pytest.Config, kwargs: dict[str, Any]) -> str:
    """``on_stale``: the command line > the marker > ``tape_config`` > the ini file > ``warn``."""
    value = _first(config.getoption("--tape-on-stale", None), kwargs.get("on_stale"), config.getini("tape_on_stale"))
    return str(value or "warn")


def _first(*values: Any) -> Any:
    return next((value for value in values if value not in (None, "")), None)


def _cassette_dir(node: Any, config: pytest.Config) -> Path:
    test_dir = Path(str(node.path)).parent
    configured = _first(config.getoption("--tape-dir"), config.getini("tape_cassette_dir"))
    if not configured:
        return test_dir / "cassettes"
    folder = Path(configured)
    return folder if folder.is_absolute() else Path(str(config.rootpath)) / folder


def _cassette_path(node: Any, config: pytest.Config, cassette: Any) -> Path:
    if cassette is not None:
        path = Path(cassette)
        return path if path.is_absolute() else Path(str(node.path)).parent / path
    return default_cassette_path(node, _cassette_dir(node, config))


_FORBIDDEN = re.compile(r"[<>?%*:|\"'/\\\x00-\x1f]")
_RESERVED = re.compile(r"^(con|prn|aux|nul|com\d|lpt\d)(\..*)?$", re.IGNORECASE)


def _safe(name: str) -> str:
    """A file name every filesystem takes: pytest-recording's replacements, plus Windows' rules."""
    name = _FORBIDDEN.sub("-", name).rstrip(". ")[:150] or "_"
    return f"_{name}" if _RESERVED.match(name) else name


def default_cassette_path(node: Any, folder: Path | None = None) -> Path:
    """``<test dir>/cassettes/<module>/<[Class.]test name>.yaml``, named as pytest-recording names them
    (a parametrized test's id is part of its name); the runs of a ``tape_faults`` sweep share the
    cassette of the test they shape."""
    module = Path(str(node.path))
    cls = getattr(node, "cls", None)
    params = getattr(getattr(node, "callspec", None), "params", {})
    swept_only = set(params) == {"tape_fault"}  # the runs of a sweep replay one recording
    name = getattr(node, "originalname", node.name) if swept_only else node.name
    name = f"{cls.__name__}.{name}" if cls is not None else name
    return (folder or module.parent / "cassettes") / module.stem / f"{_safe(name)}.yaml"


# --- sweeps ----------------------------------------------------------------------------------------


@dataclass(frozen=True)
class _Unexpandable:
    spec: str
    reason: str


@dataclass(frozen=True)
class _RecordFirst:
    """A sweep whose cassette is not recorded yet, in a recording mode: one run that records it clean."""

    specs: tuple[str, ...]

    def __str__(self) -> str:
        return "record"


def pytest_generate_tests(metafunc: pytest.Metafunc) -> None:
    marker = metafunc.definition.get_closest_marker("tape_faults")
    if marker is None:
        return
    nodeid = metafunc.definition.nodeid
    if not marker.args or not all(isinstance(spec, str) for spec in marker.args):
        # one failing run, not a collection error: the other tests still run, and no pluggy frames are shown
        problem = _Unexpandable("tape_faults", f"{nodeid}: @pytest.mark.tape_faults takes one or more fault spec "
                                               f"strings, such as 'disconnect:after=*'; got {marker.args!r}")  # fmt: skip
        metafunc.parametrize("tape_fault", [problem], ids=[problem.spec], indirect=True)
        return
    try:
        params = _sweep(metafunc, marker.args)
    except (pytest.UsageError, StreamtapeError, OSError) as exc:  # a bad marker, an unreadable cassette
        text = str(exc) if isinstance(exc, (pytest.UsageError, StreamtapeError)) else f"cannot read it: {exc}"
        reason = text if text.startswith(nodeid) else f"{nodeid}: @pytest.mark.tape_faults: {text}"
        params = [_Unexpandable(spec, reason) for spec in marker.args]
    if params and isinstance(params[0], _RecordFirst):
        metafunc.parametrize("tape_fault", params, ids=["record"], indirect=True)
        return
    ids = [item.spec if isinstance(item, _Unexpandable) else item for item in params]
    metafunc.parametrize("tape_fault", params, ids=ids, indirect=True)


def _sweep(metafunc: pytest.Metafunc, specs: tuple[str, ...]) -> list[Any]:
    """The runs of a ``tape_faults`` test: one per spec, a sweep expanded against its cassette."""
    settings = settings_for(metafunc.definition, metafunc.config)
    sweeps = [spec for spec in specs if "=*" in spec or _rechunks(spec)]
    if sweeps and not settings.path.exists() and settings.record_mode is not RecordMode.NONE:
        # nothing to sweep over yet: one run records the clean stream; the next run expands
        return [_RecordFirst(tuple(specs))]
    config = metafunc.config
    budget = config.getoption("--tape-rechunk-budget", None) or _ini_runs(config, "tape_rechunk_budget")
    return [item for spec in specs for item in _expand(spec, settings.path, metafunc.definition.nodeid, budget)]


class _Split(str):
    """A run of a ``rechunk:every`` sweep: its spec, and which trap its split point falls on."""

    where: str = ""


def _rechunks(spec: str) -> bool:
    return spec.strip() == "rechunk:every"


def _ini_runs(config: pytest.Config, name: str) -> int:
    value = config.getini(name)
    try:
        runs = int(value)
    except (TypeError, ValueError):
        runs = 0
    if runs < 1:
        raise pytest.UsageError(f"{name} = {value!r} in the ini file is not a number of runs; give a whole number >= 1")
    return runs


def _expand_rechunk(spec: str, path: Path, budget: int) -> list[Any]:
    """``rechunk:every``: the unsplit run (the oracle), then one run per split point of the body."""
    from .faults.splits import split_points
    from .framing import framer_for

    streams = [item.response for item in Cassette.load(path).interactions if item.response is not None]
    if not streams:
        return [_Unexpandable(spec, f"{spec!r} splits the body of the cassette {path}, which has no response")]
    longest = max(streams, key=lambda response: len(response.body))
    body = longest.body
    runs = [_split("split", "unsplit")]
    ends = framer_for(longest.headers).event_ends(body)
    runs += [_split(f"split:at_byte={point}", split_label(body, point)) for point in split_points(body, budget, ends)]
    return runs


def _split(spec: str, where: str) -> _Split:
    run = _Split(spec)
    run.where = where
    return run


def _expand(spec: str, path: Path, nodeid: str, budget: int = 256) -> list[Any]:
    from .faults import parse

    if _rechunks(spec) and path.exists():
        return _expand_rechunk(spec, path, budget)
    if "=*" not in spec and not _rechunks(spec):
        problem = _check(parse, spec, nodeid)
        return [problem or spec]
    if not path.exists():
        return [_Unexpandable(spec, f"{spec!r} sweeps the cassette {path}, which is not recorded yet, and "
                                    "record mode 'none' never records. Record it once: run with "
                                    "--tape-record-mode=once (the sweep then collapses to one run that "
                                    "records the clean stream), then run again to sweep.")]  # fmt: skip
    events, size = _stream_shape(path)
    if "after=*" in spec:
        expanded = [spec.replace("after=*", f"after={n}") for n in range(events + 1)]
    else:
        match = re.search(r"at_byte=\*(?:/(\d+))?", spec)
        assert match is not None
        step = int(match.group(1) or 1)
        expanded = [spec.replace(match.group(0), f"at_byte={b}") for b in range(0, size + 1, step)]
    problem = _check(parse, expanded[0], nodeid) if expanded else None  # they share one form: checked once
    return [problem] if problem else expanded


def _check(parse: Any, spec: str, nodeid: str) -> _Unexpandable | None:
    """A spec that does not parse fails its test with the one sentence (collection goes on, and no
    pluggy frames are shown)."""
    try:
        parse(spec)
    except StreamtapeError as exc:
        return _Unexpandable(spec, f"{nodeid}: @pytest.mark.tape_faults: {exc}")
    return None


def _stream_shape(path: Path) -> tuple[int, int]:
    """Events and body bytes of the cassette's longest stream."""
    interactions = Cassette.load(path).interactions
    streams = [item for item in interactions if item.response is not None]
    if not streams:
        return 0, 0
    longest = max(streams, key=lambda item: len(item.events))
    return len(longest.events), len(longest.body)


# --- fixtures --------------------------------------------------------------------------------------


@contextmanager
def _as_failure() -> Iterator[None]:
    __tracebackhide__ = True
    message = None
    try:
        yield
    except StreamtapeError as exc:
        message = str(exc)
    if message is not None:  # the one sentence, without a "During handling of ..." repeat of it
        raise pytest.fail.Exception(message, pytrace=False) from None


_LIBRARY_DIRS = tuple(
    {str(Path(path)) for key in ("stdlib", "platstdlib", "purelib", "platlib") if (path := sysconfig.get_path(key))}
)
_OWN_DIR = str(Path(__file__).resolve().parent)


@pytest.hookimpl(wrapper=True)
def pytest_runtest_makereport(item: pytest.Item, call: pytest.CallInfo[None]) -> Any:
    """A streamtape error in a test shows the test's own lines and the message, not the frames of
    streamtape, the SDK and httpx it was raised through."""
    excinfo = call.excinfo
    if excinfo is not None and isinstance(excinfo.value, StreamtapeError):
        tb = _user_traceback(excinfo.tb)
        if tb is not None:
            call.excinfo = pytest.ExceptionInfo.from_exc_info((excinfo.type, excinfo.value, tb))
    return (yield)


def _user_traceback(tb: types.TracebackType | None) -> types.TracebackType | None:
    """``tb`` relinked without the frames of streamtape and of installed libraries (pytest re-reads
    the raw chain, so filtering its entries is not enough)."""
    frames = []
    while tb is not None:
        path = tb.tb_frame.f_code.co_filename
        if not path.startswith(_OWN_DIR) and not path.startswith(_LIBRARY_DIRS):
            frames.append(tb)
        tb = tb.tb_next
    relinked = None
    for entry in reversed(frames):
        relinked = types.TracebackType(relinked, entry.tb_frame, entry.tb_lasti, entry.tb_lineno)
    return relinked


@pytest.fixture
def tape_fault(request: pytest.FixtureRequest) -> Any:
    """The fault spec this run of a ``tape_faults`` test applies (``None`` outside a sweep, and in the
    run that records a sweep's cassette first)."""
    param = getattr(request, "param", None)
    if isinstance(param, _Unexpandable):
        pytest.fail(param.reason, pytrace=False)
    exploring, drawn = drawn_faults(request.node)  # a run of --tape-explore: the schedule it draws
    if exploring:
        return None if drawn is None else drawn.spec()
    return param


@pytest.fixture(autouse=True)
def _streamtape_marker(request: pytest.FixtureRequest, tape_fault: Any) -> None:
    """A test marked ``tape`` (or ``tape_faults``) gets its tape without asking for the fixture, and a
    test that asks for it gets it before any other function fixture (a client fixture then sees the
    replay's placeholder key): autouse fixtures are set up first."""
    node = request.node
    if _uses_tape(node):
        request.getfixturevalue("tape")


@pytest.fixture
def tape_config() -> dict[str, Any]:
    """Settings every tape in scope starts from: override it once in a ``conftest.py`` (as
    pytest-recording's ``vcr_config``) instead of repeating keywords on each marker. Any keyword of
    ``@pytest.mark.tape`` but the cassette path; a marker's own keywords win, and ``secrets`` add up.

    >>> @pytest.fixture  # doctest: +SKIP
    ... def tape_config():
    ...     return {"match_on": ["method", "path", "body"], "filter_headers": ["x-request-id"]}
    """
    return {}


@pytest.fixture
def anthropic_client(tape: Tape, request: pytest.FixtureRequest) -> Iterator[Any]:
    """An ``anthropic.Anthropic()`` client made while the test's tape is entered (so it replays with
    no key, and records with yours), closed after the test. Asking for it gives the test a tape. In
    an async test, make ``anthropic.AsyncAnthropic()`` in the test: the tape is entered already."""
    import anthropic

    shared = explore_client(request.node, anthropic.Anthropic)  # the runs of --tape-explore share one
    if shared is not None:
        yield shared
        return
    with anthropic.Anthropic() as client:
        yield client


def _settings(request: pytest.FixtureRequest, tape_config: dict[str, Any]) -> TapeSettings:
    """The test's settings; a marker or ``tape_config`` mistake as a ``ConfigError`` (``_as_failure``
    shows its one sentence, not the plugin's frames)."""
    from .errors import ConfigError

    try:
        return settings_for(source_of(request.node), request.config, tape_config)
    except pytest.UsageError as exc:
        raise ConfigError(str(exc)) from None


@pytest.fixture
def tape(request: pytest.FixtureRequest, tape_fault: Any, tape_config: dict[str, Any]) -> Iterator[Tape]:
    """The active streamtape ``Tape``: every httpx2/httpx request of the test goes through it, and
    nothing else reaches the network (``allow_hosts`` aside)."""
    with _as_failure():
        settings = _settings(request, tape_config)
    recording_first = isinstance(tape_fault, _RecordFirst)
    faults = None if recording_first else tape_fault if tape_fault is not None else settings.faults
    exploring, drawn = drawn_faults(request.node)
    if exploring:
        faults = drawn  # the schedule this run of --tape-explore draws (None: its clean run)
    elif isinstance(tape_fault, _Split):
        request.node.user_properties.append(("streamtape_split", tape_fault.where))
    with _as_failure():
        active = Tape(settings.path, record_mode=settings.record_mode, match_on=settings.match_on,
                      speed=0.0 if exploring else settings.speed, faults=faults, allow_hosts=settings.allow_hosts,
                      record_failures=settings.record_failures, secrets=settings.secrets,
                      max_age=settings.max_age, on_stale=settings.on_stale, **settings.options)  # fmt: skip
        # A harness error at setup or teardown fails the test with its message (pytest's fixture
        # machinery only expects Exceptions there; streamtape's errors are BaseExceptions).
        active.__enter__()
    try:
        yield active
    finally:
        with _as_failure():
            active.__exit__(None, None, None)
        request.node.stash[LAST_TAPE] = active  # for --tape-report's verdict and --tape-explore
    notes = request.config.stash.get(_RESULTS, [])
    if recording_first and active.recorded:
        specs = ", ".join(tape_fault.specs)
        notes.append(f"{request.node.nodeid}: recorded the clean stream to {settings.path}; run again to sweep "
                     f"{specs}")  # fmt: skip
    elif active.faults_skipped:
        notes.append(f"{request.node.nodeid}: recorded to {settings.path} without its faults (faults shape "
                     "replays only); run again to test them")  # fmt: skip
    if settings.strict and not exploring:
        verdict = request.config.stash[_STRICT].finished(settings.path, active)
        if verdict:
            pytest.fail(verdict, pytrace=False)
