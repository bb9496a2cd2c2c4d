"""(f) Replay through the other HTTP stacks, each against its own floor.

Run from the project root::

    python benchmarks/stacks.py [--quick] [--rounds N] [--json PATH]

(``python benchmarks/run.py`` runs it too, as section (f).)

The stream is run.py's: 10,000 real Anthropic events, one chunk per event. Each stack's floor is the
least any in-process replay at that stack's layer can do: the same bytes (the same head, each event
in its own HTTP chunk) from a minimal local fake at the layer streamtape replaces, with everything
above it running as under streamtape:

- **aiohttp**: a ``BaseConnector`` whose connections are a bare ``asyncio.Transport`` that, once the
  request is written, hands aiohttp's own protocol the head and then one chunk per ``data_received``,
  waiting only while the reader has paused it (its flow control). So aiohttp's parser, its payload
  stream, the SDK's vendored ``DefaultAioHttpClient`` transport and the SDK run exactly as under
  streamtape, which replaces ``BaseConnector.connect`` and plays into the same protocol.
- **urllib3**: an ``HTTPConnection`` whose ``_new_conn`` returns a stand-in socket whose file gives one
  framed chunk per read. So http.client's parser, urllib3's ``HTTPResponse`` and ``requests`` run as
  under streamtape, which gives the connection its own stand-in socket.

Usage styles: aiohttp through the anthropic SDK (``AsyncAnthropic(http_client=DefaultAioHttpClient())``,
``stream()`` + ``text_stream``) and plain aiohttp (``content.iter_chunks()``); urllib3 through
``requests`` (``stream=True`` + ``iter_lines()``) and plain urllib3 (``preload_content=False`` +
``stream()``). Ratio = median(streamtape) / median(floor), rounds interleaved; target <= 1.10.
"""

from __future__ import annotations

import argparse
import asyncio
import json
import socket
import sys
import tempfile
import time
from collections.abc import Callable, Iterator, Sequence
from pathlib import Path
from typing import Any

_ROOT = Path(__file__).resolve().parent.parent
if str(_ROOT) not in sys.path:
    sys.path.insert(0, str(_ROOT))

import streamtape  # noqa: E402
from benchmarks.run import (  # noqa: E402
    API_KEY,
    BASE_URL,
    FULL_ROUNDS,
    QUICK_ROUNDS,
    Check,
    Samples,
    Stream,
    Summary,
    Variant,
    build_stream,
    frozen_heap,
    interleave,
    request_params,
    write_cassette,
)

TARGET = 1.10
URL = f"{BASE_URL}/v1/messages"


def _head(stream: Stream) -> bytes:
    """The status line and headers of the replayed response, chunked (as the tape replays it)."""
    kept = [(k, v) for k, v in stream.headers if k.lower() not in ("content-length", "transfer-encoding")]
    lines = ["HTTP/1.1 200 OK", *(f"{k}: {v}" for k, v in kept), "Transfer-Encoding: chunked"]
    return ("\r\n".join(lines) + "\r\n\r\n").encode("latin-1")


def framed(stream: Stream) -> list[bytes]:
    """What a floor puts on its fake wire: the head, one HTTP chunk per event, the last chunk."""
    return [_head(stream), *(b"%x\r\n%b\r\n" % (len(event), event) for event in stream.events), b"0\r\n\r\n"]


def _body(stream: Stream) -> bytes:
    return json.dumps({**request_params(), "stream": True}).encode()


# --- aiohttp ------------------------------------------------------------------------------------------


def aiohttp_floor_connector(stream: Stream) -> Any:
    import aiohttp
    from aiohttp.client_proto import ResponseHandler

    pieces = framed(stream)

    class Wire(asyncio.Transport):
        def __init__(self, loop: asyncio.AbstractEventLoop, protocol: Any) -> None:
            super().__init__()
            self.loop, self.protocol, self.task = loop, protocol, None
            self.paused, self.resumed, self.closed = False, None, False

        def write(self, data: Any) -> None:
            if self.task is None:
                self.task = self.loop.create_task(self.play())

        def writelines(self, list_of_data: Any) -> None:
            self.write(b"")

        async def play(self) -> None:
            for piece in pieces:
                while self.paused and not self.closed:
                    self.resumed = self.loop.create_future()
                    await self.resumed
                if self.closed:
                    return
                self._hold()
                self.protocol.data_received(piece)
                self._hold()

        def _hold(self) -> None:
            """Keep each chunk its own read, as a socket's pacing would: the reader pauses this transport
            after every chunk (a reader's ``set_read_chunk_size`` raises the marks again: reset them)."""
            payload = getattr(self.protocol, "_payload", None)
            if payload is not None:
                payload._high_water, payload._low_water = 0, 1  # noqa: SLF001

        def pause_reading(self) -> None:
            self.paused = True

        def resume_reading(self) -> None:
            self.paused = False
            if self.resumed is not None and not self.resumed.done():
                self.resumed.set_result(None)

        def is_reading(self) -> bool:
            return not self.paused

        def is_closing(self) -> bool:
            return self.closed

        def close(self) -> None:
            if not self.closed:
                self.closed = True
                self.resume_reading()
                self.loop.call_soon(self.protocol.connection_lost, None)

        def abort(self) -> None:
            self.close()

        def get_extra_info(self, name: str, default: Any = None) -> Any:
            return default

        def get_write_buffer_size(self) -> int:
            return 0

        def can_write_eof(self) -> bool:
            return True

        def write_eof(self) -> None:
            pass

    class FloorConnector(aiohttp.BaseConnector):
        async def _create_connection(self, req: Any, traces: Any, timeout: Any) -> Any:
            loop = asyncio.get_running_loop()
            protocol = ResponseHandler(loop)
            protocol.connection_made(Wire(loop, protocol))
            return protocol

    return FloorConnector(force_close=True)


async def _sdk_text(client: Any) -> str:
    async with client.messages.stream(**request_params()) as stream:
        return "".join([text async for text in stream.text_stream])


async def _plain_chunks(session: Any, stream: Stream) -> tuple[int, int]:
    """The HTTP chunks the app read whole, and the bytes."""
    chunks = size = 0
    async with session.post(URL, data=_body(stream), headers={"content-type": "application/json"}) as response:
        async for data, end_of_chunk in response.content.iter_chunks():
            chunks += end_of_chunk
            size += len(data)
    return chunks, size


def aiohttp_variants(stream: Stream, path: Path, loop: asyncio.AbstractEventLoop) -> tuple[dict[str, Variant], Any]:
    import aiohttp
    import anthropic

    def sdk_client(connector: Any | None) -> Any:
        http_client = anthropic.DefaultAioHttpClient()
        if connector is not None:
            http_client._transport.client = aiohttp.ClientSession(connector=connector)  # noqa: SLF001
        return anthropic.AsyncAnthropic(api_key=API_KEY, base_url=BASE_URL, http_client=http_client, max_retries=0)

    async def build() -> tuple[Any, Any, Any, Any]:
        return (sdk_client(aiohttp_floor_connector(stream)), sdk_client(None),
                aiohttp.ClientSession(connector=aiohttp_floor_connector(stream)), aiohttp.ClientSession())  # fmt: skip

    floor_sdk, replay_sdk, floor_plain, replay_plain = loop.run_until_complete(build())

    def timed_async(make: Callable[[], Any]) -> float:
        start = time.perf_counter()
        loop.run_until_complete(make())
        return time.perf_counter() - start

    def replayed(metric: str, make: Callable[[], Any]) -> Variant:
        def run() -> dict[str, float]:
            with streamtape.use_cassette(path) as tape:
                seconds = timed_async(make)
            if [(call.source, call.stack) for call in tape.calls] != [("replayed", "aiohttp")]:
                raise RuntimeError(f"{metric}: expected one call replayed through aiohttp, got {tape.calls}")
            return {metric: seconds}

        return run

    with streamtape.use_cassette(path):
        replay_text = loop.run_until_complete(_sdk_text(replay_sdk))
        replay_count = loop.run_until_complete(_plain_chunks(replay_plain, stream))
    floor_text = loop.run_until_complete(_sdk_text(floor_sdk))
    floor_count = loop.run_until_complete(_plain_chunks(floor_plain, stream))
    # the same text and bytes, and every event its own read on both sides (the floor also reports the
    # last-chunk marker as one)
    if (replay_text, replay_count[1]) != (floor_text, floor_count[1]) or floor_count[1] != len(stream.body) \
            or min(replay_count[0], floor_count[0]) < len(stream.events):
        raise RuntimeError(f"aiohttp: streamtape and the floor disagree ({replay_count} vs {floor_count} chunks, bytes)")

    variants: dict[str, Variant] = {
        "aiohttp.floor.sdk": lambda: {"aiohttp.floor.sdk": timed_async(lambda: _sdk_text(floor_sdk))},
        "aiohttp.replay.sdk": replayed("aiohttp.replay.sdk", lambda: _sdk_text(replay_sdk)),
        "aiohttp.floor.plain": lambda: {"aiohttp.floor.plain": timed_async(lambda: _plain_chunks(floor_plain, stream))},
        "aiohttp.replay.plain": replayed("aiohttp.replay.plain", lambda: _plain_chunks(replay_plain, stream)),
    }

    async def close() -> None:
        for client in (floor_sdk, replay_sdk):
            await client.close()
        for session in (floor_plain, replay_plain):
            await session.close()

    return variants, close


# --- urllib3 ------------------------------------------------------------------------------------------


class _Dropped:
    """A descriptor that reads as closed by its peer, so urllib3 never reuses a floor connection."""

    def __init__(self) -> None:
        self.ours, theirs = socket.socketpair()
        theirs.close()


def urllib3_floor_pool(stream: Stream, dropped: _Dropped) -> Any:
    import io

    import urllib3

    pieces = framed(stream)

    class Reader(io.RawIOBase):
        def __init__(self) -> None:
            super().__init__()
            self.pieces: Iterator[bytes] = iter(pieces)
            self.pending = b""

        def readable(self) -> bool:
            return True

        def readinto(self, buffer: Any) -> int:
            if not self.pending:
                self.pending = next(self.pieces, b"")
            n = min(len(buffer), len(self.pending))
            buffer[:n], self.pending = self.pending[:n], self.pending[n:]
            return n

    class Socket:
        def sendall(self, data: Any) -> None:
            pass

        def makefile(self, mode: str = "r", buffering: int | None = None, **_: Any) -> Any:
            return io.BufferedReader(Reader())

        def settimeout(self, timeout: float | None) -> None:
            pass

        def gettimeout(self) -> None:
            return None

        def setsockopt(self, *args: Any) -> None:
            pass

        def close(self) -> None:
            pass

        def fileno(self) -> int:
            return dropped.ours.fileno()

    class Connection(urllib3.connection.HTTPConnection):
        def _new_conn(self) -> Any:
            return Socket()

    class Pool(urllib3.HTTPConnectionPool):
        ConnectionCls = Connection

    host = BASE_URL.removeprefix("http://")
    return Pool(host, 80)


def urllib3_variants(stream: Stream, path: Path) -> dict[str, Variant]:
    import requests
    import requests.adapters
    import urllib3

    dropped = _Dropped()
    floor_pool = urllib3_floor_pool(stream, dropped)
    replay_pool = urllib3.HTTPConnectionPool(BASE_URL.removeprefix("http://"), 80)

    class FloorAdapter(requests.adapters.HTTPAdapter):
        def get_connection_with_tls_context(self, *args: Any, **kwargs: Any) -> Any:
            return floor_pool

    floor_session, replay_session = requests.Session(), requests.Session()
    floor_session.mount("http://", FloorAdapter())
    body, headers = _body(stream), {"content-type": "application/json"}

    def via_requests(session: Any) -> int:
        with session.post(URL, data=body, headers=headers, stream=True) as response:
            return sum(1 for _ in response.iter_lines())

    def via_urllib3(pool: Any) -> int:
        response = pool.urlopen("POST", "/v1/messages", body=body, headers=headers, preload_content=False)
        count = sum(1 for _ in response.stream(None))
        response.release_conn()
        return count

    def timed(func: Callable[[], object]) -> float:
        start = time.perf_counter()
        func()
        return time.perf_counter() - start

    def replayed(metric: str, func: Callable[[], object]) -> Variant:
        def run() -> dict[str, float]:
            with streamtape.use_cassette(path) as tape:
                seconds = timed(func)
            if [(call.source, call.stack) for call in tape.calls] != [("replayed", "urllib3")]:
                raise RuntimeError(f"{metric}: expected one call replayed through urllib3, got {tape.calls}")
            return {metric: seconds}

        return run

    with streamtape.use_cassette(path):
        replayed_out = (via_requests(replay_session), via_urllib3(replay_pool))
    floor_out = (via_requests(floor_session), via_urllib3(floor_pool))
    if replayed_out != floor_out or floor_out[1] != len(stream.events):
        raise RuntimeError(f"urllib3: streamtape and the floor disagree ({replayed_out} vs {floor_out})")
    return {
        "urllib3.floor.requests": lambda: {"urllib3.floor.requests": timed(lambda: via_requests(floor_session))},
        "urllib3.replay.requests": replayed("urllib3.replay.requests", lambda: via_requests(replay_session)),
        "urllib3.floor.plain": lambda: {"urllib3.floor.plain": timed(lambda: via_urllib3(floor_pool))},
        "urllib3.replay.plain": replayed("urllib3.replay.plain", lambda: via_urllib3(replay_pool)),
    }


# --- the section ------------------------------------------------------------------------------------------

STYLES = (
    ("aiohttp", "sdk", "anthropic DefaultAioHttpClient, stream() + text_stream"),
    ("aiohttp", "plain", "plain aiohttp, content.iter_chunks()"),
    ("urllib3", "requests", "requests stream=True + iter_lines()"),
    ("urllib3", "plain", "urllib3 preload_content=False + stream()"),
)


def bench_stacks(stream: Stream, rounds: int, workdir: Path) -> Samples:
    """Every stack's variants, interleaved together round by round."""
    path = workdir / "stacks-10k.yaml"
    write_cassette(stream, path)
    loop = asyncio.new_event_loop()
    try:
        aio, close = aiohttp_variants(stream, path, loop)
        try:
            return interleave({**aio, **urllib3_variants(stream, path)}, rounds)
        finally:
            loop.run_until_complete(close())
    finally:
        loop.close()


def checks(summaries: dict[str, Summary]) -> list[Check]:
    out = []
    for stack, style, label in STYLES:
        replay, floor = summaries[f"{stack}.replay.{style}"].median, summaries[f"{stack}.floor.{style}"].median
        out.append(Check(f"f.{stack}.{style}", f"(f) {stack}: {label}", replay / floor, "ratio",
                         f"{replay:.1f} vs {floor:.1f} ms", limit=TARGET))  # fmt: skip
    return out


def main(argv: Sequence[str] | None = None) -> int:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0] if __doc__ else None)
    parser.add_argument("--quick", action="store_true", help="few rounds (a smoke test), not for numbers")
    parser.add_argument("--rounds", type=int, help=f"rounds (default {FULL_ROUNDS}, quick {QUICK_ROUNDS})")
    parser.add_argument("--json", type=Path, metavar="PATH", help="also write the results as JSON to PATH")
    args = parser.parse_args(argv)
    rounds = args.rounds or (QUICK_ROUNDS if args.quick else FULL_ROUNDS)
    if rounds < 1:
        parser.error("--rounds must be at least 1")
    stream = build_stream()
    began = time.perf_counter()
    with frozen_heap(), tempfile.TemporaryDirectory(prefix="streamtape-bench-") as tmp:
        samples = bench_stacks(stream, rounds, Path(tmp))
    summaries = {key: Summary.of(values) for key, values in samples.items()}
    print(f"streamtape benchmarks (f): replay through each stack vs its own floor, {rounds} rounds interleaved")
    print(f"  stream: {stream.describe()}")
    for key in sorted(summaries):
        print(f"  {key:<28} median {summaries[key].median:8.2f} ms  p25 {summaries[key].p25:8.2f}  "
              f"p75 {summaries[key].p75:8.2f}")  # fmt: skip
    results = checks(summaries)
    for check in results:
        value, target = check.cells()
        print(f"  {check.label:<70} {value:>7} {target:>8}  {check.verdict}  {check.note}")
    print(f"  total: {time.perf_counter() - began:.1f} s")
    if args.json is not None:
        payload = {"summaries_ms": {k: vars(v) for k, v in summaries.items()},
                   "checks": [{**vars(c), "verdict": c.verdict} for c in results]}  # fmt: skip
        args.json.write_text(json.dumps(payload, indent=2) + "\n", encoding="utf-8")
    return 0


if __name__ == "__main__":
    sys.exit(main())
