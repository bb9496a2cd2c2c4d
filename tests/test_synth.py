"""`streamtape synth`: streams nobody recorded, which the real SDK accepts and gives back exactly."""

from __future__ import annotations

import json
import subprocess
import sys
from pathlib import Path
from typing import Any

import anthropic
import pytest
from hypothesis import assume, given, settings
from hypothesis import strategies as st

import streamtape
from streamtape import Cassette, ConfigError
from streamtape.lint import lint_file
from streamtape.synth import Timing, parse_timing, synthesize

pytestmark = pytest.mark.sdk
TEXT = st.text(st.characters(blacklist_categories=("Cs",)), min_size=1, max_size=80)
JSON = st.recursive(st.none() | st.booleans() | st.integers() | st.text(max_size=10),
                    lambda inner: st.lists(inner, max_size=3) | st.dictionaries(st.text(max_size=5), inner, max_size=3),
                    max_leaves=6)  # fmt: skip


def final_message(path: Path) -> Any:
    item = Cassette.load(path).interactions[0]
    params = {k: v for k, v in item.request.json.items() if k != "stream"}
    with streamtape.use_cassette(path), anthropic.Anthropic(api_key="test-key", max_retries=0) as client:
        with client.messages.stream(**params) as stream:
            return stream.get_final_message()


@settings(max_examples=25, deadline=None)
@given(
    text=st.none() | TEXT,
    thinking=st.none() | TEXT,
    tool_input=st.none() | st.dictionaries(st.text(max_size=8), JSON, max_size=3),
)
def test_the_sdk_gives_back_what_was_asked(tmp_path_factory: pytest.TempPathFactory, text: str | None,
                                           thinking: str | None, tool_input: dict | None) -> None:  # fmt: skip
    assume(text or thinking or tool_input is not None)  # a message with no block at all is not a message
    tools = [("get_weather", tool_input)] if tool_input is not None else []
    path = Cassette([synthesize(text=text, thinking=thinking, tools=tools, seed=7)]).save(
        tmp_path_factory.mktemp("synth") / "s.yaml"
    )
    final = final_message(path)
    blocks = {block.type: block for block in final.content}
    if thinking:
        assert blocks["thinking"].thinking == thinking and blocks["thinking"].signature
    if text:
        assert blocks["text"].text == text
    if tools:
        assert blocks["tool_use"].name == "get_weather" and blocks["tool_use"].input == tool_input
        assert final.stop_reason == "tool_use"
    else:
        assert final.stop_reason == "end_turn"
    assert [p for p in lint_file(path) if p.kind != "readability"] == []  # odd characters may be stored escaped


def test_real_framing_and_timing() -> None:
    item = synthesize(text="Hello there, how are you today?", timing=Timing(headers=0.5, first=1.0, per_event=0.1,
                                                                            jitter=0), seed=1)  # fmt: skip
    names = [event.event for event in item.events]
    assert names[:3] == ["message_start", "content_block_start", "ping"] and names[-2:] == [
        "message_delta",
        "message_stop",
    ]
    assert b'"type":"text","text":""}' in item.body and b'{"type": "ping"}' in item.body
    assert item.response.headers_at == 0.5 and item.chunks[0].at == 1.5 and item.chunks[1].at == pytest.approx(1.6)
    assert synthesize(text="same", seed=3) == synthesize(text="same", seed=3)


def test_several_tools_in_order(tmp_path: Path) -> None:
    calls = [("search", {"q": "pelicans"}), ("fetch", {"url": "https://example.com", "n": [1, 2]})]
    path = Cassette([synthesize(text="Looking.", tools=calls)]).save(tmp_path / "t.yaml")
    final = final_message(path)
    assert [(b.name, b.input) for b in final.content if b.type == "tool_use"] == calls


@pytest.mark.parametrize(
    ("text", "message"),
    [("first=abc", "first='abc' is not a number"), ("fast=1", "unknown key 'fast'; valid: headers, first"),
     ("per_event=-1", "must be >= 0")],
)  # fmt: skip
def test_timing_errors(text: str, message: str) -> None:
    with pytest.raises(ConfigError, match=message):
        parse_timing(text)


def test_the_command(tmp_path: Path) -> None:
    def run(*args: str) -> subprocess.CompletedProcess[str]:
        return subprocess.run([sys.executable, "-m", "streamtape", "synth", *args], capture_output=True, text=True,
                              timeout=60)  # fmt: skip

    out = tmp_path / "w.yaml"
    ok = run(str(out), "--text", "Checking.", "--tool", "get_weather", "--input", json.dumps({"city": "Paris"}))
    assert ok.returncode == 0 and "wrote" in ok.stdout
    assert final_message(out).content[1].input == {"city": "Paris"}
    bad = run(str(tmp_path / "x.yaml"), "--tool", "get_weather")
    assert bad.returncode == 2 and "give one --input per --tool" in bad.stderr
    empty = run(str(tmp_path / "y.yaml"))
    assert empty.returncode == 2 and "give at least --text, --thinking or --tool" in empty.stderr
    again = run(str(out), "--text", "Replaced.")  # a cassette is replaced
    assert again.returncode == 0 and "Replaced." in final_message(out).content[0].text
    notes = tmp_path / "notes.txt"
    notes.write_text("mine\n")
    for target, said in [(notes, "exists and is not a streamtape cassette"), (notes / "z.yaml", "is a file, not a directory")]:
        refused = run(str(target), "--text", "Hi")
        assert refused.returncode == 2 and said in refused.stderr and refused.stderr.count("\n") == 1, refused.stderr
    assert notes.read_text() == "mine\n"
