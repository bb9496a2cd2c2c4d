"""The socket executor serves cassettes over real sockets: the SDK meets recorded streams and
their failures as real FIN/RST, and an unmatched request gets a clear, non-retried 404."""

from __future__ import annotations

from pathlib import Path

import pytest

import streamtape
import streamtape.wire
from streamtape import Cassette
from streamtape.server import ReplayServer
from tests.support import builders, sdk
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
    stalled = builders.cassette("http://h/v1/messages", body=b"data: 1\n\n", at=0.0,
                                end=streamtape.wire.Cut("timeout", "timed out"))  # fmt: skip
    replay = ReplayServer(stalled, speed=1).start()
    with (
        sdk.HTTP.Client() as client,
        client.stream("POST", f"{replay.base_url}/v1/messages", json={"a": 1}) as response,
    ):
        chunks = response.iter_raw()
        assert next(chunks) == b"data: 1\n\n"
        replay.stop()
        with pytest.raises(sdk.HTTP.RemoteProtocolError):
            next(chunks)


# --- one engine: what the tape does, serve does over the socket ------------------------------------


def test_refuse_then_ok_refuses_the_first_attempt_and_serves_the_retry(server: WireServer, tmp_path: Path) -> None:
    """``refuse -> ok``: nothing listens while the refused attempt is due (a true ConnectError), then the
    listener is back for the SDK's retry, which its back-off brings after the refusal window."""
    import anthropic._base_client as base

    cassette, _ = _recorded(server, tmp_path)
    server.queue(transcript("text_basic"))
    original = sdk.consume(server.base_url, "text_stream")  # what the real server's stream reads as
    replay = ReplayServer(cassette, speed=0, faults="refuse -> ok", refuse_seconds=0.2)
    client = sdk.client(replay.base_url, max_retries=1)  # ready before the window opens: it is short
    real = base.time
    shortened = type("Time", (), {"__getattr__": lambda self, name: getattr(real, name),
                                  "sleep": staticmethod(lambda seconds: real.sleep(0.3))})()  # fmt: skip
    with replay, pytest.MonkeyPatch.context() as patch, client:
        patch.setattr(base, "time", shortened)  # the SDK's back-off: 0.3 s, past the refusal window
        with client.messages.stream(**sdk.PARAMS) as stream:
            text = "".join(stream.text_stream)
        assert [call.source for call in replay.calls] == ["refused", "replayed"]
        assert replay.calls[0].faults == ("refuse",) and replay.calls[0].outcome == "ConnectError"
    assert text and text == original.text


def test_refuse_on_every_attempt_is_a_refused_connection(server: WireServer, tmp_path: Path) -> None:
    cassette, _ = _recorded(server, tmp_path)
    with ReplayServer(cassette, speed=0, faults="refuse", match_on=["method", "path"]) as replay:
        with sdk.HTTP.Client() as client, pytest.raises(sdk.HTTP.ConnectError):
            client.post(f"{replay.base_url}/v1/messages", json=sdk.PARAMS)
        assert replay.request_count == 0


def test_a_content_length_cut_says_how_many_bytes_were_missing(server: WireServer, tmp_path: Path) -> None:
    """The recorded framing is kept on the socket: a cut in a Content-Length body leaves the client
    expecting the rest, as a real server does (not an "incomplete chunked read")."""
    cassette, _ = _recorded(server, tmp_path, framing="content-length")
    size = len(cassette.interactions[0].body)
    with ReplayServer(cassette, speed=0, faults="disconnect:at_byte=300", match_on=["method", "path"]) as replay:
        with sdk.HTTP.Client() as client, pytest.raises(sdk.HTTP.RemoteProtocolError) as caught:
            client.post(f"{replay.base_url}/v1/messages", json=sdk.PARAMS).read()
    assert f"(received 300 bytes, expected {size})" in str(caught.value)


def test_a_fault_that_cannot_apply_is_a_500_naming_it_never_a_fake_disconnect(
    server: WireServer, tmp_path: Path, capsys: pytest.CaptureFixture[str]
) -> None:
    cassette, _ = _recorded(server, tmp_path)
    with ReplayServer(cassette, speed=0, faults="drop:event=99") as replay:
        outcome = sdk.consume(replay.base_url, options={"max_retries": 2})
        assert len(replay.requests) == 1  # x-should-retry: false: a harness mistake is never retried
    assert outcome.status == 500 and outcome.error is not None
    assert "drop:event=99" in outcome.error[1] and "the served cassette" in outcome.error[1]
    err = capsys.readouterr().err
    assert "Traceback" not in err and err.count("\n") == 1


def test_a_faults_own_exception_is_a_500_saying_it_is_the_harness(server: WireServer, tmp_path: Path) -> None:
    from streamtape import faults

    cassette, _ = _recorded(server, tmp_path)

    @faults.register("explodes")
    def explodes(plan: faults.Plan, context: faults.Context) -> faults.Plan:
        raise ValueError("boom")

    try:
        with ReplayServer(cassette, speed=0, faults="explodes") as replay:
            outcome = sdk.consume(replay.base_url)
    finally:
        faults.unregister("explodes")
    assert outcome.status == 500 and outcome.error is not None and "ValueError: boom" in outcome.error[1]


def test_an_unmatched_request_is_answered_in_its_providers_shape() -> None:
    """serve's own 404 for an OpenAI request is OpenAI's error body, so the openai SDK reports the
    message (not Anthropic's shape, which it would show as raw JSON) and does not retry."""
    openai = pytest.importorskip("openai")
    cassette = Cassette.load(streamtape.starter("openai/chat_text"))
    with ReplayServer(cassette, speed=0) as replay:
        client = openai.OpenAI(base_url=f"{replay.base_url}/v1", api_key="test-key-not-a-secret", max_retries=2)
        with pytest.raises(openai.NotFoundError) as caught:
            client.chat.completions.create(model="another-model", messages=[{"role": "user", "content": "?"}],
                                           stream=True)  # fmt: skip
        assert len(replay.requests) == 1
    assert caught.value.status_code == 404
    assert isinstance(caught.value.body, dict) and "no recorded interaction matches" in caught.value.body["message"]
