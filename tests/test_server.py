"""The socket executor serves cassettes over real sockets: the SDK meets recorded streams and
their failures as real FIN/RST, and an unmatched request gets a clear, non-retried 404."""

from __future__ import annotations

from pathlib import Path

import pytest

import streamtape
import streamtape.wire
from streamtape import Cassette
from streamtape.server import ReplayServer
from tests.support import sdk
from tests.support.wire_server import WireServer, transcript

pytestmark = pytest.mark.sdk


def _recorded(server: WireServer, tmp_path: Path, **reply: object) -> tuple[Cassette, sdk.Outcome]:
    server.queue(transcript("text_basic", **reply))
    with streamtape.use_cassette(tmp_path / "c.yaml", record_mode="all"):
        outcome = sdk.consume(server.base_url)
    return Cassette.load(tmp_path / "c.yaml"), outcome


@pytest.mark.parametrize("fault", [{}, {"fin_after": 3}, {"rst_after": 3}], ids=["clean", "fin", "rst"])
def test_the_sdk_sees_what_it_saw_from_the_original_server(fault: dict, server: WireServer, tmp_path: Path) -> None:
    cassette, original = _recorded(server, tmp_path, **fault)
    with ReplayServer(cassette, speed=0) as replay:
        assert sdk.consume(replay.base_url) == original


async def test_async_clients(server: WireServer, tmp_path: Path) -> None:
    cassette, original = _recorded(server, tmp_path)
    with ReplayServer(cassette, speed=0) as replay:
        assert await sdk.aconsume(replay.base_url) == original


def test_unmatched_request_gets_a_404_naming_the_difference(server: WireServer, tmp_path: Path) -> None:
    cassette, _ = _recorded(server, tmp_path)
    with ReplayServer(cassette, speed=0) as replay:
        outcome = sdk.consume(replay.base_url, model="other", options={"max_retries": 2})
        assert len(replay.requests) == 1  # x-should-retry: false
    assert outcome.status == 404
    assert "body.model: 'claude-test' != 'other'" in outcome.error[1]


def test_silence_lasts_until_stop(tmp_path: Path) -> None:
    """A recorded read timeout is served as silence; stopping the server ends it at once (FIN)."""
    request = streamtape.Request("POST", "http://h/v1/messages", (), b'{"a":1}')
    stalled = streamtape.Response(
        200,
        (("content-type", "text/event-stream"),),
        b"data: 1\n\n",
        ((0.0, 9),),
        end=streamtape.wire.Cut("ReadTimeout", "timed out"),
    )
    replay = ReplayServer(Cassette([streamtape.Interaction(request, stalled)]), speed=1).start()
    with (
        sdk.HTTP.Client() as client,
        client.stream("POST", f"{replay.base_url}/v1/messages", json={"a": 1}) as response,
    ):
        chunks = response.iter_raw()
        assert next(chunks) == b"data: 1\n\n"
        replay.stop()
        with pytest.raises(sdk.HTTP.RemoteProtocolError):
            next(chunks)
