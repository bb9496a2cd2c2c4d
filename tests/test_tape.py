"""Tape behaviour through real clients: record modes, matching order, the unmatched-request error,
explicit wiring, decorators, both HTTP stacks, and replay speed."""

from __future__ import annotations

import importlib
import importlib.util
from pathlib import Path
from typing import Any

import pytest

import streamtape
from streamtape import Cassette, CassetteNotFoundError, ConfigError, RecordMode, UnmatchedRequestError
from streamtape.engine.clock import RealClock, ScaledClock, VirtualClock
from streamtape.stacks import watched
from tests.support import sdk
from tests.support.wire_server import WireServer, error_reply, transcript

STACKS = [name for name in watched() if name.startswith("httpx") and importlib.util.find_spec(name) is not None]


def _record(server: WireServer, path: Path, *replies: Any, model: str = "claude-test") -> None:
    server.queue(*replies)
    with streamtape.use_cassette(path, record_mode="all"):
        for _ in replies:
            sdk.consume(server.base_url, model=model)


class TestRecordModes:
    def test_none_never_touches_the_network_or_writes(self, server: WireServer, tmp_path: Path) -> None:
        path = tmp_path / "c.yaml"
        _record(server, path, transcript("text_basic"))
        before = path.read_bytes()
        with streamtape.use_cassette(path, record_mode="none"):
            with pytest.raises(UnmatchedRequestError):
                sdk.consume(server.base_url, model="other")
        assert len(server.requests) == 1 and path.read_bytes() == before

    def test_none_with_a_missing_file_says_how_to_record(self, tmp_path: Path) -> None:
        with pytest.raises(CassetteNotFoundError) as info:
            with streamtape.use_cassette(tmp_path / "missing.yaml"):
                pass
        assert str(tmp_path / "missing.yaml") in str(info.value)
        assert "record_mode='once'" in str(info.value) and "--tape-record-mode=once" in str(info.value)

    def test_once_records_a_missing_file_then_replays(self, server: WireServer, tmp_path: Path) -> None:
        path = tmp_path / "c.yaml"
        server.queue(transcript("text_basic"))
        with streamtape.use_cassette(path, record_mode="once") as tape:
            first = sdk.consume(server.base_url)
        assert [c.source for c in tape.calls] == ["recorded"] and path.exists()
        server.stop()
        with streamtape.use_cassette(path, record_mode="once") as tape:
            assert sdk.consume(server.base_url) == first
            with pytest.raises(UnmatchedRequestError, match="record mode 'once'"):
                sdk.consume(server.base_url, model="new")
        assert [c.source for c in tape.calls] == ["replayed", "unmatched"]

    def test_new_episodes_replays_matches_and_records_the_rest(self, server: WireServer, tmp_path: Path) -> None:
        path = tmp_path / "c.yaml"
        _record(server, path, transcript("text_basic"), model="a")
        server.queue(transcript("thinking"))
        with streamtape.use_cassette(path, record_mode="new_episodes") as tape:
            sdk.consume(server.base_url, model="a")
            sdk.consume(server.base_url, model="b")
        assert [c.source for c in tape.calls] == ["replayed", "recorded"]
        assert [i.request.json["model"] for i in Cassette.load(path)] == ["a", "b"]
        assert len(server.requests) == 2

    def test_all_rewrites_with_this_runs_interactions(self, server: WireServer, tmp_path: Path) -> None:
        path = tmp_path / "c.yaml"
        _record(server, path, transcript("text_basic"), model="a")
        _record(server, path, transcript("thinking"), model="b")
        assert [i.request.json["model"] for i in Cassette.load(path)] == ["b"]

    def test_invalid_mode_lists_the_valid_ones(self, tmp_path: Path) -> None:
        with pytest.raises(ConfigError, match="'sometimes' is not a record mode; valid: none, once, new_episodes, all"):
            streamtape.use_cassette(tmp_path / "c.yaml", record_mode="sometimes")
        assert RecordMode.parse("ONCE") is RecordMode.ONCE

    @pytest.mark.parametrize("speed", [-1, "fast", float("nan"), True])
    def test_invalid_speed(self, speed: Any, tmp_path: Path) -> None:
        with pytest.raises(ConfigError, match="speed"):
            streamtape.use_cassette(tmp_path / "c.yaml", speed=speed)


class TestMatching:
    def test_identical_requests_answer_in_order_then_the_last_repeats(self, server: WireServer, tmp_path: Path) -> None:
        path = tmp_path / "c.yaml"
        _record(server, path, error_reply("http_529_overloaded"), transcript("text_basic"))
        with streamtape.use_cassette(path) as tape:
            outcomes = [sdk.consume(server.base_url) for _ in range(3)]
        assert [o.status for o in outcomes] == [529, None, None]
        assert [(c.index, c.attempt) for c in tape.calls] == [(0, 1), (1, 1), (1, 2)]
        assert tape.all_played

    def test_unplayed(self, server: WireServer, tmp_path: Path) -> None:
        path = tmp_path / "c.yaml"
        _record(server, path, transcript("text_basic"), model="a")
        with streamtape.use_cassette(path) as tape:
            pass
        assert not tape.all_played and [i.request.json["model"] for i in tape.unplayed] == ["a"]

    def test_unmatched_reaches_the_test_at_once_with_a_near_miss_report(
        self, server: WireServer, tmp_path: Path
    ) -> None:
        path = tmp_path / "c.yaml"
        _record(server, path, transcript("text_basic"), model="claude-a")
        server.stop()
        with streamtape.use_cassette(path) as tape, sdk.client(server.base_url, max_retries=5) as client:
            with pytest.raises(UnmatchedRequestError) as info:
                with client.messages.stream(**{**sdk.PARAMS, "model": "claude-b"}) as stream:
                    stream.get_final_message()
        message = str(info.value)
        assert str(path) in message and "record mode 'none'" in message
        assert "body.model: 'claude-a' != 'claude-b'" in message
        assert "record_mode='new_episodes'" in message
        # one attempt: the SDK neither wrapped it as "Connection error." nor retried it
        assert [(c.source, c.index) for c in tape.calls] == [("unmatched", None)]

    def test_custom_match_on(self, server: WireServer, tmp_path: Path) -> None:
        path = tmp_path / "c.yaml"
        _record(server, path, transcript("text_basic"), model="a")
        with streamtape.use_cassette(path, match_on=["method", "path"]) as tape:
            assert sdk.consume(server.base_url.replace("127.0.0.1", "localhost"), model="zzz").error is None
        assert tape.all_played


class TestWiring:
    def test_decorator_sync_and_async(self, server: WireServer, tmp_path: Path) -> None:
        path = tmp_path / "c.yaml"
        _record(server, path, transcript("text_basic"))
        server.stop()

        @streamtape.use_cassette(path)
        def replay() -> sdk.Outcome:
            return sdk.consume(server.base_url)

        @streamtape.use_cassette(path)
        async def areplay() -> sdk.Outcome:
            return await sdk.aconsume(server.base_url)

        import anyio

        assert replay() == replay() == anyio.run(areplay)
        assert replay().events

    def test_clients_built_before_the_tape_are_intercepted(self, server: WireServer, tmp_path: Path) -> None:
        path = tmp_path / "c.yaml"
        _record(server, path, transcript("text_basic"))
        server.stop()
        with sdk.client(server.base_url) as early:
            with streamtape.use_cassette(path) as tape, early.messages.stream(**sdk.PARAMS) as stream:
                assert stream.get_final_message().stop_reason == "end_turn"
        assert tape.all_played

    def test_innermost_tape_wins_and_patches_are_removed(self, server: WireServer, tmp_path: Path) -> None:
        _record(server, tmp_path / "a.yaml", transcript("text_basic"))
        _record(server, tmp_path / "b.yaml", transcript("thinking"))
        core = importlib.import_module(sdk.STACK.replace("httpx", "httpcore"))
        original = core.ConnectionPool.handle_request
        with streamtape.use_cassette(tmp_path / "a.yaml"):
            with streamtape.use_cassette(tmp_path / "b.yaml") as inner:
                assert sdk.consume(server.base_url).final["content"][0]["type"] == "thinking"
            assert sdk.consume(server.base_url).final["content"][0]["text"] == "Hello"
        assert core.ConnectionPool.handle_request is original and inner.all_played

    def test_explicit_transport_patches_nothing(self, server: WireServer, tmp_path: Path) -> None:
        if sdk.SDK_MAJOR < 1:
            pytest.skip("anthropic 0.x takes an httpx client; covered by the httpx stack test")
        import anthropic
        import httpx2

        path = tmp_path / "c.yaml"
        _record(server, path, transcript("text_basic"))
        tape = streamtape.Tape(path).load()
        http = httpx2.Client(transport=tape.transport())
        with anthropic.Anthropic(base_url=server.base_url, api_key="k", http_client=http, max_retries=0) as client:
            with client.messages.stream(**sdk.PARAMS) as stream:
                assert stream.get_final_message().content[0].text == "Hello"
        assert tape.all_played
        server.stop()
        assert sdk.consume(server.base_url).error[0] == "anthropic.APIConnectionError"  # nothing global

    async def test_explicit_async_transport(self, server: WireServer, tmp_path: Path) -> None:
        if sdk.SDK_MAJOR < 1:
            pytest.skip("anthropic 0.x takes an httpx client")
        import anthropic
        import httpx2

        path = tmp_path / "c.yaml"
        _record(server, path, transcript("text_basic"))
        server.stop()
        tape = streamtape.Tape(path).load()
        http = httpx2.AsyncClient(transport=tape.async_transport())
        async with anthropic.AsyncAnthropic(base_url=server.base_url, api_key="k", http_client=http) as client:
            async with client.messages.stream(**sdk.PARAMS) as stream:
                assert (await stream.get_final_message()).content[0].text == "Hello"

    def test_unknown_stack(self, tmp_path: Path) -> None:
        with pytest.raises(ConfigError, match="'requests' is not supported; valid: httpx2, httpx"):
            streamtape.Tape(tmp_path / "c.yaml").transport(stack="requests")


@pytest.mark.parametrize("stack", STACKS)
class TestPlainClients:
    """Both stacks, sync and async, with plain clients (no SDK): the httpx stack is anthropic 0.x's."""

    def test_sync(self, stack: str, server: WireServer, tmp_path: Path) -> None:
        http = importlib.import_module(stack)
        server.queue(transcript("tool_use", fin_after=5))

        def run() -> tuple[list[bytes], str]:
            chunks: list[bytes] = []
            with http.Client() as client, pytest.raises(http.RemoteProtocolError) as info:
                with client.stream("POST", f"{server.base_url}/v1/messages", json={"a": 1}) as response:
                    chunks.extend(response.iter_raw())
            return chunks, str(info.value)

        with streamtape.use_cassette(tmp_path / "c.yaml", record_mode="all"):
            recorded = run()
        server.stop()
        with streamtape.use_cassette(tmp_path / "c.yaml"):
            assert run() == recorded
        assert len(recorded[0]) == 5

    async def test_async(self, stack: str, server: WireServer, tmp_path: Path) -> None:
        http = importlib.import_module(stack)
        server.queue(transcript("tool_use"))

        async def run() -> list[bytes]:
            async with http.AsyncClient() as client:
                async with client.stream("POST", f"{server.base_url}/v1/messages", json={"a": 1}) as response:
                    return [chunk async for chunk in response.aiter_raw()]

        async with streamtape.use_cassette(tmp_path / "c.yaml", record_mode="all"):
            recorded = await run()
        server.stop()
        async with streamtape.use_cassette(tmp_path / "c.yaml"):
            assert await run() == recorded
        assert b"".join(recorded) == transcript("tool_use").body


class TestSpeed:
    """Replay pacing, measured on an injected virtual clock: no test waits for real time."""

    @pytest.mark.parametrize(("speed", "expected"), [(1, [0.5, 0.25, 0.25]), (2, [0.25, 0.125, 0.125])])
    def test_waits(self, speed: float, expected: list[float], tmp_path: Path) -> None:
        base = VirtualClock(100.0, paced=True)
        clock = base if speed == 1 else ScaledClock(speed, base=base)
        response = streamtape.Response(200, (), b"abc", ((0.75, 2), (1.0, 1)), headers_at=0.5)
        item = streamtape.Interaction(streamtape.Request("GET", "http://h/x"), response)
        Cassette([item]).save(tmp_path / "c.yaml")
        with streamtape.use_cassette(tmp_path / "c.yaml", speed=speed, clock=clock):
            with importlib.import_module(sdk.STACK).Client() as client:
                assert client.get("http://h/x").content == b"abc"
        assert [round(w, 6) for w in base.waits] == expected

    def test_speed_zero_runs_on_virtual_time(self, tmp_path: Path) -> None:
        response = streamtape.Response(200, (), b"abc", ((0.75, 2), (1.0, 1)), headers_at=0.5)
        Cassette([streamtape.Interaction(streamtape.Request("GET", "http://h/x"), response)]).save(tmp_path / "c.yaml")
        with streamtape.use_cassette(tmp_path / "c.yaml") as tape:
            with importlib.import_module(sdk.STACK).Client() as client:
                assert client.get("http://h/x").content == b"abc"
        # virtual time still moves to when the response ended, without anybody waiting for it
        assert isinstance(tape.clock, VirtualClock) and not tape.clock.paced and tape.clock.now() == 1.0

    def test_the_default_clock_follows_the_speed(self, tmp_path: Path) -> None:
        kinds = {speed: type(streamtape.Tape(tmp_path / "c.yaml", speed=speed).clock) for speed in (0, 1, 3)}
        assert kinds == {0: VirtualClock, 1: RealClock, 3: ScaledClock}


async def test_async_pacing_on_a_virtual_clock(tmp_path: Path) -> None:
    """The async executor waits through the clock, offset by offset, without real time passing."""
    base = VirtualClock(50.0, paced=True)
    response = streamtape.Response(200, (), b"abc", ((0.75, 2), (1.0, 1)), headers_at=0.5)
    Cassette([streamtape.Interaction(streamtape.Request("GET", "http://h/x"), response)]).save(tmp_path / "c.yaml")
    async with streamtape.use_cassette(tmp_path / "c.yaml", speed=4, clock=ScaledClock(4, base=base)):
        async with importlib.import_module(sdk.STACK).AsyncClient() as client:
            assert (await client.get("http://h/x")).content == b"abc"
    assert [round(w, 6) for w in base.waits] == [0.125, 0.0625, 0.0625]


def test_recorded_calls_say_how_they_went_and_print_in_one_line(tmp_path: Path) -> None:
    import httpx2

    from tests.support.echo_server import echo_server

    with echo_server() as server:
        server.plan = {"status": 200, "headers": [("content-type", "text/plain")], "chunks": [b"x" * 5000]}
        with streamtape.use_cassette(tmp_path / "r.yaml", record_mode="all") as tape:
            with httpx2.Client() as client:
                client.post(f"{server.base_url}/v1/messages", content=b"y" * 5000).read()
            assert tape.calls[0].outcome == "recording"
    call = tape.calls[0]
    assert call.outcome == "200, complete" and call.interaction is not None
    assert repr(call) == f"<Call POST {server.base_url}/v1/messages recorded #0 via httpx2: 200, complete>"
    assert len(repr(tape.calls)) < 200  # no bodies
