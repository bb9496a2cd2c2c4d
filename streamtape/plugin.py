"""pytest glue: the ``tape`` fixture, the ``tape`` marker and the record-mode option.

Registered through the ``pytest11`` entry point, so installing streamtape is enough. Settings are
resolved in one place (``_record_mode``): command line > marker > ini > environment > default.
"""

from __future__ import annotations

import os
import re
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import pytest

from .tape import RecordMode, Tape

_MARKER_HELP = (
    "tape(cassette=None, *, record_mode=None, match_on=None, speed=None): replay (or record) the test's "
    "HTTP traffic from a streamtape cassette; default path <test dir>/cassettes/<module>/<test>.yaml"
)
_MARKER_KEYS = ("record_mode", "match_on", "speed")


def pytest_addoption(parser: pytest.Parser) -> None:
    group = parser.getgroup("streamtape", "streamtape: record and replay streaming HTTP")
    group.addoption(
        "--tape-record-mode",
        choices=[mode.value for mode in RecordMode],
        default=None,
        help="record mode for every tape: none (default: replay only, no network), once, new_episodes, all",
    )
    parser.addini("tape_record_mode", "default record mode for tapes (none, once, new_episodes, all)", default="")


def pytest_configure(config: pytest.Config) -> None:
    config.addinivalue_line("markers", _MARKER_HELP)


def _record_mode(config: pytest.Config, marker_value: Any) -> RecordMode:
    for value in (
        config.getoption("--tape-record-mode"),
        marker_value,
        config.getini("tape_record_mode") or None,
        os.environ.get("STREAMTAPE_RECORD_MODE") or None,
    ):
        if value is not None:
            return RecordMode.parse(value)
    return RecordMode.NONE


def _safe(name: str) -> str:
    return re.sub(r"[^\w.\-]+", "_", name).strip("._") or "_"


def default_cassette_path(node: pytest.Item) -> Path:
    """``<test dir>/cassettes/<module>/<[Class.]test name>.yaml``, as pytest-recording names them."""
    module = Path(str(node.path))
    cls = getattr(node, "cls", None)
    name = f"{cls.__name__}.{node.name}" if cls is not None else node.name
    return module.parent / "cassettes" / module.stem / f"{_safe(name)}.yaml"


@pytest.fixture
def tape(request: pytest.FixtureRequest) -> Iterator[Tape]:
    """The active streamtape ``Tape``: every httpx2/httpx request of the test goes through it."""
    marker = request.node.get_closest_marker("tape")
    args, kwargs = (marker.args, dict(marker.kwargs)) if marker else ((), {})
    unknown = sorted(set(kwargs) - {"cassette", *_MARKER_KEYS})
    if len(args) > 1 or unknown:
        raise pytest.UsageError(
            f"{request.node.nodeid}: @pytest.mark.tape takes at most one cassette path and the keywords "
            f"cassette, {', '.join(_MARKER_KEYS)}; got {len(args)} paths and keywords {unknown}"
        )
    cassette = kwargs.pop("cassette", args[0] if args else None)
    path = Path(cassette) if cassette is not None else default_cassette_path(request.node)
    if not path.is_absolute():
        path = Path(str(request.node.path)).parent / path
    mode = _record_mode(request.config, kwargs.pop("record_mode", None))
    speed = kwargs.get("speed")
    with Tape(path, record_mode=mode, match_on=kwargs.get("match_on"), speed=0.0 if speed is None else speed) as active:
        yield active
