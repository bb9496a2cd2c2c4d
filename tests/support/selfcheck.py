"""Self-check of `tests.support.wire_server` against the real SDK and httpx2.

Not a pytest module (the name does not start with ``test_``); run it as::

    .venv/bin/python -m tests.support.selfcheck   (from the project root)

Every check prints one PASS/FAIL line; the exit status is 1 if any failed.
"""

from __future__ import annotations

import gzip
import socket
import sys
import threading
import time
import zlib
from collections.abc import Callable, Iterator
from concurrent.futures import ThreadPoolExecutor
from contextlib import contextmanager
from dataclasses import dataclass
from typing import Any

import anthropic
import h11
import httpx2
from anthropic.types import MessageParam

from tests.support.wire_server import (
    DATA_DIR,
    Reply,
    WireServer,
    error_reply,
    list_error_bodies,
    list_transcripts,
    split_events,
    transcript,
    wire_pieces,
)

FRAMINGS = ("chunked", "content-length", "close")
INCOMPLETE_CHUNKED = "peer closed connection without sending complete message body (incomplete chunked read)"
MESSAGES: list[MessageParam] = [{"role": "user", "content": "hi"}]
_OVERLOADED = (anthropic.APIStatusError, "'type': 'overloaded_error'")

# Transcripts the SDK (anthropic 2.13.0) rejects: name -> (exception type, text).
EXPECTED_SDK_FAILURES: dict[str, tuple[type[BaseException], str]] = {
    # An in-stream `event: error` is raised as a bare APIStatusError (status 200).
    "doc_error_event": _OVERLOADED,
    "error_overloaded_in_stream": _OVERLOADED,
    "error_overloaded_in_stream_2024": _OVERLOADED,
    # The docs example's message_delta has no `usage`; the SDK dereferences it.
    "doc_thinking": (AttributeError, "object has no attribute 'output_tokens'"),
}

ERROR_CLASSES: dict[int, type[anthropic.APIStatusError]] = {
    400: anthropic.BadRequestError,
    401: anthropic.AuthenticationError,
    404: anthropic.NotFoundError,
    429: anthropic.RateLimitError,
    500: anthropic.InternalServerError,
    529: anthropic.OverloadedError,
}


# -- helpers ------------------------------------------------------------------


def sdk_client(server: WireServer) -> anthropic.Anthropic:
    """The real SDK client pointed at `server`, without retries."""
    return anthropic.Anthropic(base_url=server.base_url, api_key="test", max_retries=0)


def sdk_final_message(client: anthropic.Anthropic) -> Any:
    """Stream one request through the SDK and return `get_final_message()`."""
    with client.messages.stream(model="m", max_tokens=10, messages=MESSAGES) as stream:
        return stream.get_final_message()


def sdk_events_until_error(
    client: anthropic.Anthropic,
) -> tuple[list[str], BaseException | None]:
    """Iterate the SDK stream; return the event types seen and what ended it."""
    seen: list[str] = []
    try:
        with client.messages.stream(model="m", max_tokens=10, messages=MESSAGES) as stream:
            for event in stream:
                seen.append(event.type)
    except Exception as exc:  # the exception is the result
        return seen, exc
    return seen, None


def raw_get(client: httpx2.Client, server: WireServer) -> tuple[httpx2.Response, bytes, bytes]:
    """POST with httpx2; return the response, its raw bytes and its decoded bytes."""
    with client.stream("POST", f"{server.base_url}/v1/messages", content=b"{}") as response:
        raw = b"".join(response.iter_raw())
    decoded = gzip.decompress(raw) if response.headers.get("content-encoding") == "gzip" else raw
    return response, raw, decoded


@dataclass
class H11Exchange:
    """What a raw h11 client saw: 1xx statuses, the response, and whole chunks."""

    informational: list[int]
    response: h11.Response
    chunks: list[bytes]


def h11_exchange(port: int, headers: list[tuple[str, str]], body: bytes, *, wait_100: bool = False) -> H11Exchange:
    """One POST over a raw socket with an h11 client, collecting chunk boundaries."""
    client = h11.Connection(our_role=h11.CLIENT)
    with socket.create_connection(("127.0.0.1", port), timeout=5) as sock:
        head = h11.Request(method="POST", target="/v1/messages", headers=[("host", "x"), *headers])
        sock.sendall(client.send(head))
        events = _h11_events(client, sock)
        informational = [next(events).status_code] if wait_100 else []
        sock.sendall(client.send(h11.Data(data=body)))
        sock.sendall(client.send(h11.EndOfMessage()))
        response = next(events)
        return H11Exchange(informational, response, _collect_chunks(events))


def _h11_events(client: h11.Connection, sock: socket.socket) -> Iterator[Any]:
    while True:
        event = client.next_event()
        if event is h11.NEED_DATA:
            client.receive_data(sock.recv(65536))
            continue
        yield event
        if isinstance(event, (h11.EndOfMessage, h11.ConnectionClosed)):
            return


def _collect_chunks(events: Iterator[Any]) -> list[bytes]:
    chunks: list[bytes] = []
    for event in events:
        if isinstance(event, h11.Data):
            if event.chunk_start or not chunks:
                chunks.append(b"")
            chunks[-1] += event.data
    return chunks


@contextmanager
def thread_exceptions() -> Iterator[list[str]]:
    """Collect uncaught exceptions from any thread while the block runs."""
    caught: list[str] = []
    previous = threading.excepthook
    threading.excepthook = lambda args: caught.append(repr(args.exc_value))
    try:
        yield caught
    finally:
        threading.excepthook = previous


def expect(condition: bool, message: str) -> None:
    """Raise AssertionError(message) unless `condition`."""
    if not condition:
        raise AssertionError(message)


# -- checks -------------------------------------------------------------------


def check_split_is_byte_exact() -> str:
    """Every *.sse (even the unparseable one) splits into events that rejoin exactly."""
    paths = sorted(DATA_DIR.glob("*.sse"))
    for path in paths:
        body = path.read_bytes()
        expect(
            b"".join(split_events(body)) == body,
            f"{path.name}: split is not byte-exact",
        )
        expect(
            b"".join(transcript(path.stem).events) == body,
            f"{path.name}: transcript() is not byte-exact",
        )
    return f"{len(paths)} files"


def check_sdk_every_transcript() -> str:
    """get_final_message() on every transcript; failures as EXPECTED_SDK_FAILURES."""
    lines = []
    with WireServer() as server, sdk_client(server) as client:
        for name in list_transcripts():
            server.queue(transcript(name))
            lines.append(_sdk_outcome(client, name))
    return "\n".join(["", *lines])


def _sdk_outcome(client: anthropic.Anthropic, name: str) -> str:
    expected = EXPECTED_SDK_FAILURES.get(name)
    try:
        message = sdk_final_message(client)
    except Exception as exc:
        kind, text = expected or (type(None), "")
        expect(type(exc) is kind and text in str(exc), f"{name}: {exc!r}")
        status = getattr(exc, "status_code", None)
        detail = f"{type(exc).__name__}(status_code={status}): {exc}"
        return f"    {name:36} SDK rejects (expected) {detail}"
    expect(expected is None, f"{name}: expected {expected}, but the SDK accepted it")
    blocks = len(message.content)
    return f"    {name:36} ok stop_reason={message.stop_reason} blocks={blocks}"


def check_raw_bytes_every_framing() -> str:
    """httpx2 receives the exact file bytes under every framing, gzip or not."""
    count = 0
    with WireServer() as server, httpx2.Client() as client:
        for name in list_transcripts():
            body = (DATA_DIR / f"{name}.sse").read_bytes()
            for framing in FRAMINGS:
                for use_gzip in (False, True):
                    server.queue(transcript(name, framing=framing, gzip=use_gzip))
                    response, raw, decoded = raw_get(client, server)
                    _check_framing_headers(response, framing, use_gzip, len(raw))
                    expect(
                        decoded == body,
                        f"{name} {framing} gzip={use_gzip}: body differs",
                    )
                    count += 1
    return f"{count} responses byte-exact"


def _check_framing_headers(response: httpx2.Response, framing: str, use_gzip: bool, raw_length: int) -> None:
    headers = response.headers
    expected = {
        "chunked": (headers.get("transfer-encoding") == "chunked" and "content-length" not in headers),
        "content-length": (headers.get("content-length") == str(raw_length) and "transfer-encoding" not in headers),
        "close": (headers.get("connection") == "close" and not {"content-length", "transfer-encoding"} & set(headers)),
    }[framing]
    expect(expected, f"{framing}: wrong framing headers {dict(headers)}")
    expect(
        (headers.get("content-encoding") == "gzip") == use_gzip,
        f"content-encoding wrong: {dict(headers)}",
    )


def check_one_chunk_per_piece() -> str:
    """Under chunked framing each piece is one HTTP chunk (gzip: sync-flushed)."""
    with WireServer() as server:
        for name in list_transcripts():
            for use_gzip in (False, True):
                reply = transcript(name, gzip=use_gzip)
                server.queue(reply)
                exchange = h11_exchange(server.port, [("content-length", "2")], b"{}")
                expect(
                    exchange.chunks == wire_pieces(reply.events, use_gzip),
                    f"{name} gzip={use_gzip}: chunks differ",
                )
                if use_gzip:
                    _check_each_chunk_decodes(exchange.chunks, reply.events, name)
    return "chunks == SSE events; each gzip chunk decodes to its event on arrival"


def _check_each_chunk_decodes(chunks: list[bytes], events: list[bytes], name: str) -> None:
    decompressor = zlib.decompressobj(wbits=31)
    for index, (chunk, event) in enumerate(zip(chunks, events, strict=True)):
        expect(
            decompressor.decompress(chunk) == event,
            f"{name}: gzip chunk {index} does not decode alone",
        )


def check_transcript_headers() -> str:
    """Recorded headers are replayed in order; stale framing headers are replaced."""
    with WireServer() as server, httpx2.Client() as client:
        # compaction.headers.json records both content-length and transfer-encoding
        reply = transcript("compaction")
        server.queue(reply)
        response, _, _ = raw_get(client, server)
    expected = [
        (n.lower(), v)
        for n, v in reply.headers
        if n.lower() not in ("content-length", "transfer-encoding", "connection")
    ]
    received = [(n.lower(), v) for n, v in response.headers.multi_items() if n.lower() != "transfer-encoding"]
    expect(received == expected, f"headers differ: {received} != {expected}")
    expect(
        transcript("thinking").gzip and not transcript("thinking", gzip=False).gzip,
        "gzip detection",
    )
    expect(transcript("tool_use").reason == "OK", "go-vcr reason '200 OK' kept")
    return "order kept, framing headers replaced, gzip detected, reason normalised"


def check_fin_after() -> str:
    """A FIN mid-body reaches the SDK caller as httpx2.RemoteProtocolError."""
    with WireServer() as server, sdk_client(server) as client:
        server.queue(transcript("text_basic", fin_after=3))
        seen, exc = sdk_events_until_error(client)
        expect(type(exc) is httpx2.RemoteProtocolError, f"chunked: got {exc!r}")
        expect(str(exc) == INCOMPLETE_CHUNKED, f"chunked: text {exc}")
        expect(seen[:1] == ["message_start"], f"no events before the FIN: {seen}")
        server.queue(transcript("text_basic", fin_after=3, framing="content-length"))
        _, exc2 = sdk_events_until_error(client)
        expect(
            type(exc2) is httpx2.RemoteProtocolError and "expected 1159" in str(exc2),
            f"content-length: {exc2!r}",
        )
    return f"events before FIN {seen}; chunked: {exc}; content-length: {exc2}"


def check_rst_after() -> str:
    """An RST mid-body reaches the SDK caller as httpx2.ReadError."""
    with WireServer() as server, sdk_client(server) as client:
        server.queue(transcript("text_basic", rst_after=3))
        seen, exc = sdk_events_until_error(client)
    expect(type(exc) is httpx2.ReadError, f"got {exc!r}")
    expect(seen[:1] == ["message_start"], f"no events before the RST: {seen}")
    return f"events before RST {seen}; {type(exc).__name__}: {exc}"


def check_http_errors() -> str:
    """Every error body raises the matching SDK exception; 429 -> RateLimitError."""
    results = []
    with WireServer() as server, sdk_client(server) as client:
        for name in list_error_bodies():
            reply = error_reply(name)
            server.queue(reply)
            try:
                sdk_final_message(client)
            except anthropic.APIStatusError as exc:
                expect(
                    type(exc) is ERROR_CLASSES[reply.status],
                    f"{name}: {type(exc).__name__}",
                )
                results.append(f"{reply.status}:{type(exc).__name__}")
            else:
                raise AssertionError(f"{name}: no exception")
    expect("429:RateLimitError" in results, "429 did not raise RateLimitError")
    return ", ".join(results)


def check_nothing_queued_and_repeat() -> str:
    """Nothing queued -> 500 JSON; queue order, then the last repeats; keep-alive."""
    with WireServer() as server, httpx2.Client() as client:
        first = client.post(f"{server.base_url}/a", content=b"1")
        expect(first.status_code == 500 and first.json()["type"] == "error", first.text)
        server.queue(error_reply("http_429_rate_limit"), transcript("text_basic"))
        url = f"{server.base_url}/b"
        statuses = [client.post(url, content=b"2").status_code for _ in range(4)]
        requests = server.requests
    expect(statuses == [429, 200, 200, 200], f"statuses {statuses}")
    expect(
        {r.connection_id for r in requests} == {1},
        f"keep-alive not reused: {[r.connection_id for r in requests]}",
    )
    expect(requests[1].body == b"2" and requests[0].path == "/a", "request recording")
    return f"statuses 500 then {statuses} on 1 keep-alive connection"


def check_concurrent_stalls() -> str:
    """Four clients stalled at once finish in about one stall (concurrency)."""
    replies = [transcript("text_basic", stall_after=2, stall_seconds=0.3) for _ in range(4)]
    with WireServer() as server, httpx2.Client() as client:
        server.queue(*replies)
        started = time.monotonic()
        with ThreadPoolExecutor(4) as pool:
            bodies = list(pool.map(lambda _: raw_get(client, server)[2], range(4)))
        elapsed = time.monotonic() - started
        connections = {request.connection_id for request in server.requests}
    gaps = [reply.sent_at[2] - reply.sent_at[1] for reply in replies]
    expect(all(body == replies[0].body for body in bodies), "bodies differ")
    expect(
        0.3 <= elapsed < 0.9 and len(connections) == 4,
        f"elapsed {elapsed:.2f}s on {len(connections)} connections",
    )
    expect(min(gaps) >= 0.3, f"sent_at gaps {gaps}")
    return f"4 x 0.3 s stalls on 4 connections took {elapsed:.2f}s in all"


def check_gate() -> str:
    """The server holds piece k until gate[k-1] is set."""
    gate = [threading.Event() for _ in range(6)]
    reply = transcript("text_basic", gate=gate)
    with WireServer() as server, httpx2.Client() as client:
        server.queue(reply)
        url = f"{server.base_url}/v1/messages"
        with client.stream("POST", url, content=b"{}") as response:
            received = _read_gated(response, reply, gate)
    expect(received == reply.events, "gated reads are not one event each")
    return f"{len(received)} pieces released one by one"


def _read_gated(response: httpx2.Response, reply: Reply, gate: list[threading.Event]) -> list[bytes]:
    received: list[bytes] = []
    for raw in response.iter_raw():
        received.append(raw)
        time.sleep(0.02)
        expect(
            len(reply.sent_at) == len(received),
            f"piece {len(received)} sent before its gate was set",
        )
        if len(received) <= len(gate):
            gate[len(received) - 1].set()
    return received


def check_gate_timeout() -> str:
    """A gate never set: RST, and the failure is in server.errors (and stderr)."""
    with WireServer() as server, sdk_client(server) as client:
        server.queue(transcript("text_basic", gate=[threading.Event()], gate_timeout=0.2))
        _, exc = sdk_events_until_error(client)
        errors = server.errors
    expect(
        type(exc) is httpx2.ReadError and len(errors) == 1 and "gate[0]" in errors[0],
        f"{exc!r} {errors}",
    )
    return f"client got {type(exc).__name__}; server.errors={errors}"


def check_expect_continue() -> str:
    """`Expect: 100-continue` gets a 100 before the body is sent, then the reply."""
    with WireServer() as server:
        server.queue(transcript("doc_text_basic"))
        headers = [("content-length", "2"), ("expect", "100-continue")]
        exchange = h11_exchange(server.port, headers, b"{}", wait_100=True)
        recorded = server.requests[0]
    expect(
        exchange.informational == [100] and exchange.response.status_code == 200,
        f"{exchange}",
    )
    expect(
        recorded.body == b"{}" and recorded.header("Expect") == "100-continue",
        f"{recorded}",
    )
    return "100 Continue, then 200 with the body"


def check_misbehaving_clients() -> str:
    """Early disconnects and garbage requests end quietly; the server keeps serving."""
    with WireServer() as server:
        server.queue(transcript("pause_turn_web_search", stall_after=1, stall_seconds=0.05))
        with httpx2.Client() as raw_client:
            for _ in range(3):
                with raw_client.stream("POST", f"{server.base_url}/x", content=b"{}") as response:
                    next(response.iter_raw())  # then close mid-body
        garbage_status = _send_garbage(server.port)
        server.queue(transcript("text_basic"))
        with sdk_client(server) as client:
            message = sdk_final_message(client)
        errors = server.errors
    expect(garbage_status.startswith(b"HTTP/1.1 400"), f"garbage got {garbage_status!r}")
    expect(
        message.stop_reason == "end_turn" and not errors,
        f"{message.stop_reason} {errors}",
    )
    return "3 early disconnects + 1 garbage request (-> 400), then a normal stream"


def _send_garbage(port: int) -> bytes:
    with socket.create_connection(("127.0.0.1", port), timeout=5) as sock:
        sock.sendall(b"NOT HTTP AT ALL\r\n\r\n")
        return sock.recv(100)


def check_stop() -> str:
    """stop() mid-stall: immediate, idempotent, port refused, every thread joined."""
    server = WireServer().start()
    server.queue(transcript("text_basic", stall_after=1, stall_seconds=30))
    pool = ThreadPoolExecutor(1)
    client = sdk_client(server)
    pending = pool.submit(sdk_events_until_error, client)
    while not server.requests:
        time.sleep(0.01)
    started = time.monotonic()
    server.stop()
    server.stop()
    took = time.monotonic() - started
    _, exc = pending.result(timeout=5)
    pool.shutdown()
    client.close()
    expect(took < 1.0, f"stop took {took:.2f}s")
    expect(isinstance(exc, httpx2.RemoteProtocolError), f"client saw {exc!r}")
    expect(_refused(server.port), "port still accepts connections")
    leftovers = [t.name for t in threading.enumerate() if t.name.startswith("wire-server-")]
    expect(not leftovers, f"threads left: {leftovers}")
    return f"stopped a 30 s stall in {took * 1000:.0f} ms; then refused; no threads"


def _refused(port: int) -> bool:
    try:
        socket.create_connection(("127.0.0.1", port), timeout=1).close()
    except ConnectionRefusedError:
        return True
    return False


CHECKS: list[Callable[[], str]] = [
    check_split_is_byte_exact,
    check_sdk_every_transcript,
    check_raw_bytes_every_framing,
    check_one_chunk_per_piece,
    check_transcript_headers,
    check_fin_after,
    check_rst_after,
    check_http_errors,
    check_nothing_queued_and_repeat,
    check_concurrent_stalls,
    check_gate,
    check_gate_timeout,
    check_expect_continue,
    check_misbehaving_clients,
    check_stop,
]


def main() -> int:
    """Run every check, print a line each, and return the exit status."""
    started = time.monotonic()
    failures = 0
    with thread_exceptions() as crashed:
        for check in CHECKS:
            failures += _run(check)
    if crashed:
        failures += 1
        print(f"FAIL uncaught thread exceptions: {crashed}")
    elapsed = time.monotonic() - started
    print(f"{len(CHECKS) - failures}/{len(CHECKS)} checks passed in {elapsed:.2f}s")
    return 1 if failures else 0


def _run(check: Callable[[], str]) -> int:
    name = check.__name__.removeprefix("check_")
    try:
        detail = check()
    except Exception as exc:  # report and carry on
        print(f"FAIL {name}: {type(exc).__name__}: {exc}", flush=True)
        return 1
    print(f"PASS {name}: {detail}", flush=True)
    return 0


if __name__ == "__main__":
    sys.exit(main())
