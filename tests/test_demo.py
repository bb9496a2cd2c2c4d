"""`streamtape demo`, run as a user runs it: a subprocess, no API key, no network but 127.0.0.1."""

from __future__ import annotations

import os
import subprocess
import sys
from pathlib import Path

import pytest

import streamtape
from streamtape import Cassette, ConfigError
from streamtape.starters import starter, starter_names

pytestmark = pytest.mark.sdk


def test_demo_shows_the_record_replay_and_the_trap(tmp_path: Path) -> None:
    env = {k: v for k, v in os.environ.items() if k not in ("ANTHROPIC_API_KEY", "ANTHROPIC_BASE_URL")}
    result = subprocess.run(
        [sys.executable, "-m", "streamtape", "demo", "--speed", "0"],
        capture_output=True,
        text=True,
        timeout=120,
        env=env,
        cwd=tmp_path,
    )
    assert result.returncode == 0, result.stderr
    out = result.stdout
    assert "recorded 17 events, 3463 bytes" in out
    assert "✓ identical final message: stop_reason=end_turn" in out
    assert "not caught: httpx" in out and "RemoteProtocolError: peer closed connection" in out
    assert "app printed: API error: 200" in out
    assert "\033[" not in out  # no colour when not on a terminal
    assert result.stderr == ""


def test_starters_are_real_streams() -> None:
    assert {"text", "thinking", "tool_use", "overloaded_in_stream"} <= set(starter_names())
    for name in starter_names():
        item = Cassette.load(starter(f"starter:{name}")).interactions[0]
        assert item.events and item.response.status == 200
    with pytest.raises(ConfigError, match="no starter cassette 'nope'; available: overloaded_in_stream, text"):
        streamtape.starters.starter("nope")
