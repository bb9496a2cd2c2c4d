"""The faults below the stream that no misbehaving server can be the oracle for in the differential
suite (``CLIENT_SIDE`` there), each checked against its real counterpart here, and the protocol
faults' own rules."""

from __future__ import annotations

import socket
import threading
from collections.abc import Iterator
from contextlib import contextmanager
from pathlib import Path
from typing import Any

import pytest

import streamtape
from streamtape import ConfigError
from tests.support import builders, sdk
from tests.support.wire_server import WireServer, transcript

URL = "http://127.0.0.1:9/v1/messages"  # replay never connects; the real side uses its own server


def chain(exc: BaseException | None) -> list[tuple[str, str, str]]:
    """Every level of the exception: (how it is linked, class, message), through causes and contexts."""
    out, seen, link = [], set(), "raised"
    while exc is not None and id(exc) not in seen:
        seen.add(id(exc))
        out.append((link, f"{type(exc).__module__}.{type(exc).__qualname__}", str(exc)))
        link, exc = ("cause", exc.__cause__) if exc.__cause__ is not None else ("context", exc.__context__)
    return out


def _raised(call: Any) -> BaseException:
    try:
        call()
    except Exception as exc:  # noqa: BLE001 - what the client raises is what is compared
        return exc
    raise AssertionError("nothing was raised")


@contextmanager
def deaf_server() -> Iterator[str]:
    """A server that accepts a connection and never reads from it: a large request stalls."""
    listener = socket.create_server(("127.0.0.1", 0))
    accepted: list[socket.socket] = []
    stop = threading.Event()

    def accept() -> None:
        listener.settimeout(0.05)
        while not stop.is_set():
            try:
                accepted.append(listener.accept()[0])
            except OSError:
                continue

    thread = threading.Thread(target=accept, daemon=True)
    thread.start()
    try:
        yield f"http://127.0.0.1:{listener.getsockname()[1]}/v1/messages"
    finally:
        stop.set()
        thread.join()
        for sock in (*accepted, listener):
            sock.close()


def test_write_timeout_is_what_a_server_that_stops_reading_gives(tmp_path: Path) -> None:
    body = b"x" * (32 << 20)  # more than the loopback's socket buffers hold
    timeout = sdk.HTTP.Timeout(5.0, write=0.2)
    with deaf_server() as url, sdk.HTTP.Client(timeout=timeout) as client:
        real = _raised(lambda: client.post(url, content=body))
    builders.save(tmp_path / "c.yaml", URL, request_body=body)
    with streamtape.use_cassette(tmp_path / "c.yaml", faults="write_timeout", match_on=["method", "path"]):
        with sdk.HTTP.Client(timeout=timeout) as client:
            replayed = _raised(lambda: client.post(URL, content=body))
    assert chain(replayed) == chain(real) and isinstance(real, sdk.HTTP.WriteTimeout)


def test_pool_timeout_is_what_an_exhausted_pool_gives(tmp_path: Path) -> None:
    limits, timeout = sdk.HTTP.Limits(max_connections=1), sdk.HTTP.Timeout(5.0, pool=0.05)
    with WireServer() as server, sdk.HTTP.Client(limits=limits, timeout=timeout) as client:
        server.queue(transcript("text_basic"), transcript("text_basic"))
        url = f"{server.base_url}/v1/messages"
        with client.stream("POST", url, json={"a": 1}):  # holds the pool's only connection
            real = _raised(lambda: client.post(url, json={"a": 1}))
    builders.save(tmp_path / "c.yaml", URL)
    with streamtape.use_cassette(tmp_path / "c.yaml", faults="pool_timeout", match_on=["method", "path"]):
        with sdk.HTTP.Client(limits=limits, timeout=timeout) as client:
            replayed = _raised(lambda: client.post(URL, json={"a": 1}))
    assert chain(replayed) == chain(real) and isinstance(real, sdk.HTTP.PoolTimeout)


def test_a_bad_chunk_needs_a_chunked_response(tmp_path: Path) -> None:
    builders.save(tmp_path / "c.yaml", headers=(("content-type", "text/event-stream"), ("content-length", "1159")))
    with pytest.raises(ConfigError, match="bad_chunk:after=2: this response has a Content-Length"):
        with streamtape.use_cassette(tmp_path / "c.yaml", faults="bad_chunk:after=2"):
            with sdk.HTTP.Client() as client:
                client.post(builders.MESSAGES_URL, json={"a": 1})


def test_corrupt_gzip_names_the_valid_range(tmp_path: Path) -> None:
    with pytest.raises(ConfigError, match="at=5 must be a whole number >= 10"):
        streamtape.faults.parse("corrupt_gzip:at=5")
    builders.save(tmp_path / "c.yaml")
    with pytest.raises(ConfigError, match=r"corrupt_gzip:at=99999: the encoded body has \d+ bytes; use"):
        with streamtape.use_cassette(tmp_path / "c.yaml", faults="corrupt_gzip:at=99999"):
            with sdk.HTTP.Client() as client:
                client.post(builders.MESSAGES_URL, json={"a": 1})


def test_json_body_is_the_whole_message_the_stream_built(tmp_path: Path) -> None:
    """What a gateway that ignores ``stream: true`` sends: the SDK's non-streaming call reads it."""
    import anthropic

    builders.save(tmp_path / "c.yaml")
    with streamtape.use_cassette(tmp_path / "c.yaml", faults="json_body", match_on=["method", "path"]):
        with anthropic.Anthropic(api_key="k") as client:
            message = client.messages.create(**sdk.PARAMS)
    assert message.content[0].text == "Hello" and message.stop_reason == "end_turn"  # type: ignore[union-attr]


def test_connect_timeout_then_ok_over_serve_times_out_the_first_attempt(tmp_path: Path) -> None:
    """serve makes a connect time out for real: its port completes no connection while it is due."""
    from streamtape.server import ReplayServer

    cassette = builders.cassette("http://h/v1/messages")
    with ReplayServer(cassette, speed=0, faults="connect_timeout", match_on=["method", "path"]) as replay:
        with sdk.HTTP.Client(timeout=sdk.HTTP.Timeout(5.0, connect=0.1)) as client:
            with pytest.raises(sdk.HTTP.ConnectTimeout):
                client.post(f"{replay.base_url}/v1/messages", json={"a": 1})
        assert replay.request_count == 0 and [c.outcome for c in replay.calls] == ["ConnectTimeout"]
