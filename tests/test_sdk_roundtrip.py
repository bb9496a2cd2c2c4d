"""Every real transcript, recorded through streamtape from a real server over a real socket and
replayed with that server stopped, gives the app the same bytes, events and final message."""

from __future__ import annotations

from pathlib import Path

import pytest

import streamtape
from tests.support import sdk
from tests.support.wire_server import WireServer, error_reply, list_error_bodies, list_transcripts, transcript

pytestmark = pytest.mark.sdk


def _record_then_stop(server: WireServer, path: Path, reply, run):  # type: ignore[no-untyped-def]
    server.queue(reply)
    with streamtape.use_cassette(path, record_mode="all") as tape:
        recorded = run(server.base_url)
    server.stop()
    assert [c.source for c in tape.calls] == ["recorded"]
    return recorded


@pytest.mark.parametrize("name", list_transcripts())
def test_sync_stream_replays_identically(name: str, server: WireServer, tmp_path: Path) -> None:
    path = tmp_path / f"{name}.yaml"
    run = lambda url: sdk.consume(url, "events")  # noqa: E731
    recorded = _record_then_stop(server, path, transcript(name), run)
    with streamtape.use_cassette(path) as tape:
        replayed = run(server.base_url)
    assert replayed == recorded
    assert tape.all_played and [c.source for c in tape.calls] == ["replayed"]
    assert recorded.events or recorded.error  # the comparison compared something


@pytest.mark.parametrize("name", list_transcripts())
async def test_async_stream_replays_identically(name: str, server: WireServer, tmp_path: Path) -> None:
    path = tmp_path / f"{name}.yaml"
    server.queue(transcript(name))
    async with streamtape.use_cassette(path, record_mode="all"):
        recorded = await sdk.aconsume(server.base_url, "events")
    server.stop()
    async with streamtape.use_cassette(path):
        replayed = await sdk.aconsume(server.base_url, "events")
    assert replayed == recorded


@pytest.mark.parametrize("name", list_transcripts())
def test_bytes_and_chunk_boundaries_are_identical(name: str, server: WireServer, tmp_path: Path) -> None:
    path = tmp_path / f"{name}.yaml"
    recorded = _record_then_stop(server, path, transcript(name), sdk.raw_chunks)
    with streamtape.use_cassette(path):
        replayed = sdk.raw_chunks(server.base_url)
    assert replayed == recorded
    assert b"".join(replayed[1]) == transcript(name).body  # gzip bodies too: stored as the app reads them


async def test_async_bytes_are_identical(server: WireServer, tmp_path: Path) -> None:
    path = tmp_path / "c.yaml"
    server.queue(transcript("tool_use"))
    async with streamtape.use_cassette(path, record_mode="all"):
        recorded = await sdk.araw_chunks(server.base_url)
    server.stop()
    async with streamtape.use_cassette(path):
        replayed = await sdk.araw_chunks(server.base_url)
    assert replayed == recorded and len(replayed[1]) > 5


@pytest.mark.parametrize("style", sdk.STYLES)
def test_every_usage_style(style: str, server: WireServer, tmp_path: Path) -> None:
    path = tmp_path / "c.yaml"
    recorded = _record_then_stop(server, path, transcript("thinking"), lambda url: sdk.consume(url, style))
    with streamtape.use_cassette(path):
        assert sdk.consume(server.base_url, style) == recorded
    assert recorded.error is None and (recorded.events or recorded.text or recorded.final)


@pytest.mark.parametrize("name", list_error_bodies())
@pytest.mark.parametrize("asynchronous", [False, True], ids=["sync", "async"])
async def test_http_errors_replay_identically(
    name: str, asynchronous: bool, server: WireServer, tmp_path: Path
) -> None:
    path = tmp_path / "c.yaml"
    server.queue(error_reply(name))
    # record_failures: a 401 is a failed recording, kept here on purpose (it is what this test replays)
    async with streamtape.use_cassette(path, record_mode="all", record_failures=True):
        recorded = await _consume(server.base_url, asynchronous)
    server.stop()
    async with streamtape.use_cassette(path):
        replayed = await _consume(server.base_url, asynchronous)
    assert replayed == recorded
    assert recorded.status == int(name.split("_")[1])


async def _consume(url: str, asynchronous: bool) -> sdk.Outcome:
    if asynchronous:
        return await sdk.aconsume(url)
    return sdk.consume(url)


def test_recorded_error_body_is_kept_when_the_sdk_retries_without_reading_it(
    server: WireServer, tmp_path: Path
) -> None:
    """The SDK closes a retried 429 unread; the cassette must still hold its body and headers."""
    path = tmp_path / "c.yaml"
    rate_limited = error_reply(
        "http_429_rate_limit", headers=[("retry-after-ms", "1"), ("content-type", "application/json")]
    )
    server.queue(rate_limited, transcript("text_basic"))
    with streamtape.use_cassette(path, record_mode="all"):
        recorded = sdk.consume(server.base_url, options={"max_retries": 2})
    server.stop()
    cassette = streamtape.Cassette.load(path)
    assert [i.response.status for i in cassette] == [429, 200]
    assert cassette.interactions[0].response.json["error"]["type"] == "rate_limit_error"
    with streamtape.use_cassette(path) as tape:
        replayed = sdk.consume(server.base_url, options={"max_retries": 2})
    assert replayed == recorded and recorded.error is None
    assert [(c.index, c.source) for c in tape.calls] == [(0, "replayed"), (1, "replayed")]
