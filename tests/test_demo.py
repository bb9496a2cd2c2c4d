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
    assert ("not caught: httpx" in out and "RemoteProtocolError: peer closed connection" in out) or (
        "app printed: Connection lost. Please retry." in out and "✓ caught by the docs' handler" in out
    )
    assert "app printed: API error: 200" in out
    assert "\033[" not in out  # no colour when not on a terminal
    assert result.stderr == ""


EXPECTED = {
    "text": "end_turn", "text_multi_delta": "end_turn", "long_thinking": "end_turn", "thinking": "end_turn",
    "redacted_thinking": "end_turn", "tool_use": "tool_use", "parallel_tool_use": "tool_use",
    "web_search_citations": "end_turn", "pause_turn": "pause_turn", "max_tokens": "max_tokens",
    "stop_sequence": "stop_sequence", "refusal": "refusal", "cache_read": "max_tokens", "cache_write": "max_tokens",
    "overloaded_in_stream": "APIStatusError", "rate_limited": "RateLimitError", "overloaded": "OverloadedError",
    "server_error": "InternalServerError",
}  # fmt: skip


def test_every_starter_is_listed() -> None:
    assert set(starter_names("anthropic")) == set(EXPECTED)
    others = [name for name in starter_names() if "/" in name]
    assert {name.split("/")[0] for name in others} == {"openai", "gemini", "bedrock"}
    assert starter_names()[: len(EXPECTED)] == sorted(EXPECTED)  # Anthropic's first, bare
    assert all(starter(name).is_file() for name in others)
    with pytest.raises(ConfigError, match="no starter cassette 'gemini/nope'; available: gemini/max_tokens"):
        starter("gemini/nope")
    with pytest.raises(ConfigError, match="no starter cassette '../anthropic/text'"):
        starter("../anthropic/text")
    with pytest.raises(ConfigError, match="no starter cassette 'nope'; available: cache_read, cache_write"):
        streamtape.starters.starter("nope")


@pytest.mark.filterwarnings(
    "ignore:The model .* is deprecated:DeprecationWarning"
)  # the models they were recorded with
@pytest.mark.parametrize("name", sorted(EXPECTED))
def test_every_starter_replays_through_the_sdk(name: str) -> None:
    """Each starter, replayed by name through the real SDK, ends as its real source did."""
    import anthropic

    item = Cassette.load(starter(name)).interactions[0]
    params = {k: v for k, v in item.request.json.items() if k != "stream"}
    with streamtape.use_cassette(streamtape.starter(name)) as tape:
        with anthropic.Anthropic(api_key="test-key", max_retries=2) as client:
            try:
                with client.messages.stream(**params) as stream:
                    outcome = stream.get_final_message().stop_reason
            except anthropic.APIError as exc:
                outcome = type(exc).__name__
    assert outcome == EXPECTED[name] and tape.all_played
