"""The recorder passes every chunk through the moment it arrives, records real network failures
with the bytes that did arrive, and never writes a secret."""

from __future__ import annotations

import os
import threading
from pathlib import Path

import pytest

import streamtape
from streamtape import Cassette
from tests.support import sdk
from tests.support.wire_server import WireServer, transcript

pytestmark = pytest.mark.sdk


class TestPassThrough:
    """The server does not send event k+1 until the app has received event k: nothing is buffered."""

    def test_raw_chunks(self, server: WireServer, tmp_path: Path) -> None:
        reply = transcript("text_basic", gate_timeout=3.0)
        reply.gate = [threading.Event() for _ in reply.events[1:]]
        server.queue(reply)
        received = []
        with streamtape.use_cassette(tmp_path / "c.yaml", record_mode="all"), sdk.HTTP.Client() as http:
            with http.stream("POST", f"{server.base_url}/v1/messages", json=sdk.PARAMS) as response:
                for chunk in response.iter_bytes():
                    received.append(chunk)
                    if len(received) <= len(reply.gate):
                        reply.gate[len(received) - 1].set()
        assert received == reply.events and not server.errors
        assert Cassette.load(tmp_path / "c.yaml").interactions[0].body == reply.body

    async def test_async_sdk_events(self, server: WireServer, tmp_path: Path) -> None:
        # no pings, so create(stream=True) yields exactly one event per piece the server sends
        reply = transcript("web_search_citations", gate_timeout=3.0)
        reply.gate = [threading.Event() for _ in reply.events[1:]]
        server.queue(reply)
        seen = 0
        async with streamtape.use_cassette(tmp_path / "c.yaml", record_mode="all"):
            async with sdk.async_client(server.base_url) as client:
                async for _event in await client.messages.create(stream=True, **sdk.PARAMS):
                    if seen < len(reply.gate):
                        reply.gate[seen].set()
                    seen += 1
        assert seen == len(reply.events) and not server.errors

    def test_sync_sdk_events(self, server: WireServer, tmp_path: Path) -> None:
        reply = transcript("web_search_citations", gate_timeout=3.0)
        reply.gate = [threading.Event() for _ in reply.events[1:]]
        server.queue(reply)
        seen = 0
        with streamtape.use_cassette(tmp_path / "c.yaml", record_mode="all"), sdk.client(server.base_url) as client:
            for _event in client.messages.create(stream=True, **sdk.PARAMS):
                if seen < len(reply.gate):
                    reply.gate[seen].set()
                seen += 1
        assert seen == len(reply.events) and not server.errors


FAULTS = {
    "fin": ({"fin_after": 3}, "RemoteProtocolError", "incomplete chunked read"),
    "fin-content-length": ({"fin_after": 3, "framing": "content-length"}, "RemoteProtocolError", "expected 1159"),
    "fin-right-after-headers": ({"fin_after": 0}, "RemoteProtocolError", "incomplete chunked read"),
    "rst": ({"rst_after": 3}, "ReadError", ""),
}


class TestRealFailures:
    """A stream cut by the real network is recorded with what arrived and the real error, and the
    app sees the same exception, message, cause and partial data in replay."""

    @pytest.mark.parametrize("fault", FAULTS)
    @pytest.mark.parametrize("style", sdk.STYLES)
    def test_sync(self, fault: str, style: str, server: WireServer, tmp_path: Path) -> None:
        options, error, message = FAULTS[fault]
        server.queue(transcript("text_basic", **options))
        with streamtape.use_cassette(tmp_path / "c.yaml", record_mode="all"):
            recorded = sdk.consume(server.base_url, style)
        server.stop()
        with streamtape.use_cassette(tmp_path / "c.yaml"):
            replayed = sdk.consume(server.base_url, style)
        assert replayed == recorded
        assert error in sdk.raised(recorded.error) and message in recorded.error[1]
        end = Cassette.load(tmp_path / "c.yaml").interactions[0].response.end
        assert end.error == error and end.message in recorded.error[1]

    @pytest.mark.parametrize("fault", FAULTS)
    async def test_async(self, fault: str, server: WireServer, tmp_path: Path) -> None:
        options, error, _ = FAULTS[fault]
        server.queue(transcript("text_basic", **options))
        async with streamtape.use_cassette(tmp_path / "c.yaml", record_mode="all"):
            recorded = await sdk.aconsume(server.base_url, "text_stream")
        server.stop()
        async with streamtape.use_cassette(tmp_path / "c.yaml"):
            replayed = await sdk.aconsume(server.base_url, "text_stream")
        assert replayed == recorded and error in sdk.raised(recorded.error)

    def test_partial_body_is_kept(self, server: WireServer, tmp_path: Path) -> None:
        reply = transcript("text_basic", fin_after=4)
        server.queue(reply)
        with streamtape.use_cassette(tmp_path / "c.yaml", record_mode="all"):
            sdk.consume(server.base_url)
        item = Cassette.load(tmp_path / "c.yaml").interactions[0]
        assert item.body == b"".join(reply.events[:4])
        assert [e.event for e in item.events] == ["message_start", "content_block_start", "ping", "content_block_delta"]

    def test_refused_connection_is_recorded_and_replayed(self, tmp_path: Path) -> None:
        with WireServer() as server:
            url = server.base_url
        with streamtape.use_cassette(tmp_path / "c.yaml", record_mode="all", record_failures=True):
            recorded = sdk.consume(url)
        with streamtape.use_cassette(tmp_path / "c.yaml"):
            replayed = sdk.consume(url)
        assert replayed == recorded
        assert recorded.error[0] == "anthropic.APIConnectionError"
        assert recorded.error[1] in ("Connection error.", "Connection to 127.0.0.1:PORT failed: [Errno 111] Connection refused")
        assert recorded.error[2] == f"{sdk.STACK}.ConnectError"
        assert Cassette.load(tmp_path / "c.yaml").interactions[0].error.error == "ConnectError"


SECRET = "fake-api-key-for-redaction-0123456789"


class TestSecrets:
    """Credentials, cookies, organisation ids and the API key never reach the cassette."""

    def test_nothing_secret_is_written(
        self, server: WireServer, tmp_path: Path, monkeypatch: pytest.MonkeyPatch
    ) -> None:
        monkeypatch.delenv("ANTHROPIC_API_KEY", raising=False)
        server.queue(transcript("text_basic"))  # its recorded headers carry set-cookie and anthropic-organization-id
        with streamtape.use_cassette(tmp_path / "c.yaml", record_mode="all"):
            with sdk.HTTP.Client(
                headers={"Cookie": "session=abc123secret", "Proxy-Authorization": "Basic cHJveHk6cHc="}
            ) as http:
                http.post(
                    f"{server.base_url}/v1/messages?key={SECRET}",
                    headers={"Authorization": f"Bearer {SECRET}", "x-api-key": SECRET},
                    json={**sdk.PARAMS, "metadata": {"user_id": f"echo {SECRET}"}},
                )
        text = (tmp_path / "c.yaml").read_text()
        for secret in (SECRET, "abc123secret", "cHJveHk6cHc=", "b320df16-c763-4455-b901-3f7d54e9a012", "_cfuvid"):
            assert secret not in text
        for header in ("authorization", "x-api-key", "cookie", "set-cookie", "anthropic-organization-id"):
            assert f"{header}:" not in text.lower()
        assert "key=REDACTED" in text and "echo REDACTED" in text

    def test_key_from_the_environment(
        self, server: WireServer, tmp_path: Path, monkeypatch: pytest.MonkeyPatch
    ) -> None:
        monkeypatch.setenv("ANTHROPIC_API_KEY", SECRET)
        server.queue(transcript("text_basic"))
        with streamtape.use_cassette(tmp_path / "c.yaml", record_mode="all"):
            with sdk.HTTP.Client() as http:
                http.post(f"{server.base_url}/v1/messages", json={"note": SECRET})
        assert SECRET not in (tmp_path / "c.yaml").read_text()
        assert os.environ["ANTHROPIC_API_KEY"] == SECRET


@pytest.mark.parametrize("accepted", ["gzip, deflate, br", "gzip, deflate"])
def test_a_brotli_body_the_client_asked_for_is_stored_decoded_and_redacted(
    monkeypatch: pytest.MonkeyPatch, accepted: str
) -> None:
    """Brotli is decoded (so redacted) when the client offered ``br``, as httpx, urllib3 and aiohttp do
    exactly when a brotli library is installed. The library here is a stand-in with brotli's interface
    (``Decompressor().process``) over raw deflate; the real one was checked by hand (brotli 1.2.1)."""
    import json
    import sys
    import types
    import zlib

    from streamtape.cassette import Request
    from streamtape.intercept.recorder import Recording
    from streamtape.redact import Redactor

    class Decompressor:
        def __init__(self) -> None:
            self.inner = zlib.decompressobj(-zlib.MAX_WBITS)

        def process(self, data: bytes) -> bytes:
            return self.inner.decompress(data)

    monkeypatch.setitem(sys.modules, "brotli", types.SimpleNamespace(Decompressor=Decompressor))
    key = "sk-ant-api03-" + "Zq8" * 20
    squeeze = zlib.compressobj(wbits=-zlib.MAX_WBITS)
    wire = squeeze.compress(json.dumps({"echo": key}).encode()) + squeeze.flush()
    headers = (("x-api-key", key), ("accept-encoding", accepted))
    recording = Recording(Request("POST", "https://api.example/v1/x", headers, b"{}"), Redactor(headers))
    recording.respond(200, b"OK", [(b"content-encoding", b"br"), (b"content-length", b"%d" % len(wire))])
    recording.chunk(wire[:7])
    recording.chunk(wire[7:])
    recording.finish(lambda exc: None, None)  # type: ignore[arg-type, return-value]
    item = recording.snapshot()
    assert item is not None and item.response is not None
    if "br" in accepted:
        assert json.loads(item.response.body) == {"echo": "REDACTED"}
        assert [name for name, _ in item.response.headers] == []  # encoding and length describe other bytes
    else:  # the client could not have decoded it: the bytes are kept as they came
        assert item.response.body == wire and ("content-encoding", "br") in item.response.headers
