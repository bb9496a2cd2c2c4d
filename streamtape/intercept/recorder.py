"""The recorder: a tee at the pool layer that hands each chunk on the moment it arrives.

Per chunk it only notes the bytes and their arrival time (no parsing, no copying beyond a list
append), so time-to-first-token is what it would be without streamtape. A stream that breaks is
recorded with the bytes that did arrive and the real error, which is then re-raised unchanged.
"""

from __future__ import annotations

import threading
import time
import zlib
from collections.abc import AsyncIterator, Iterator
from typing import Any

from ..cassette import Interaction, Request, Response
from ..redact import Redactor
from ..wire import Cut, End
from .stacks import Stack

__all__ = ["Recording", "RecordingStream"]

_DECODABLE = {"gzip": 16 + zlib.MAX_WBITS, "x-gzip": 16 + zlib.MAX_WBITS, "deflate": zlib.MAX_WBITS}
_DROP_WHEN_DECODED = {"content-encoding", "content-length"}


class Recording:
    """What has been seen of one exchange so far; ``snapshot()`` makes it an ``Interaction``."""

    def __init__(self, request: Request, redactor: Redactor) -> None:
        self.request = request
        self.redactor = redactor
        self.start = time.monotonic()
        self.status = 0
        self.reason = ""
        self.headers: tuple[tuple[str, str], ...] = ()
        self.headers_at = 0.0
        self.chunks: list[tuple[float, bytes]] = []
        self.end: End | Cut | None = None
        self.error: Cut | None = None
        self._wbits: int | None = None  # set when the body is gzip/deflate encoded
        self._lock = threading.Lock()

    def now(self) -> float:
        return time.monotonic() - self.start

    def failed(self, stack: Stack, exc: BaseException) -> None:
        """The request failed before any response (refused, reset, timed out)."""
        self.error = Cut(type(exc).__name__, str(exc), self.now()) if isinstance(exc, stack.errors) else None

    def respond(self, status: int, reason: bytes, raw_headers: list[tuple[bytes, bytes]]) -> None:
        self.headers_at = self.now()
        self.status, self.reason = status, reason.decode("latin-1")
        headers = [(k.decode("latin-1"), v.decode("latin-1")) for k, v in raw_headers]
        encoding = next((v.strip().lower() for k, v in headers if k.lower() == "content-encoding"), "")
        self._wbits = _DECODABLE.get(encoding)
        self.headers = self.redactor.headers(headers)

    def chunk(self, data: bytes) -> None:
        at = self.now()
        with self._lock:
            self.chunks.append((at, data))

    def finish(self, stack: Stack, exc: BaseException | None = None) -> None:
        if self.end is not None:
            return
        if exc is not None and isinstance(exc, stack.errors):
            self.end = Cut(type(exc).__name__, str(exc), self.now())
        else:
            self.end = End(self.now())

    def snapshot(self) -> Interaction:
        if self.status == 0:
            error = self.error or Cut("ConnectError", "the request was interrupted before any response", self.now())
            return Interaction(self.request, error=error)
        with self._lock:
            chunks = list(self.chunks)
        headers, chunks = self._decoded(chunks)
        timing = tuple((at, len(data)) for at, data in chunks if data)
        body = b"".join(data for _, data in chunks)
        end = self.end or End(self.now())
        return Interaction(
            self.request, Response(self.status, headers, body, timing, self.reason, self.headers_at, end)
        )

    def _decoded(
        self, chunks: list[tuple[float, bytes]]
    ) -> tuple[tuple[tuple[str, str], ...], list[tuple[float, bytes]]]:
        """Store what the app reads, not compressed wire bytes, so the cassette stays readable."""
        if self._wbits is None:
            return self.headers, chunks
        decoder = zlib.decompressobj(self._wbits)
        try:
            decoded = [(at, decoder.decompress(data)) for at, data in chunks]
        except zlib.error:
            return self.headers, chunks  # not what the header said: keep the bytes as they came
        return tuple((k, v) for k, v in self.headers if k.lower() not in _DROP_WHEN_DECODED), decoded


class RecordingStream:
    """Wraps the real core response stream: yields each chunk at once and notes it."""

    def __init__(self, inner: Any, recording: Recording, stack: Stack, drain_on_close: bool) -> None:
        self.inner = inner
        self.recording = recording
        self.stack = stack
        self.drain_on_close = drain_on_close
        self.done = False

    def __iter__(self) -> Iterator[bytes]:
        try:
            for chunk in self.inner:
                self.recording.chunk(chunk)
                yield chunk
        except BaseException as exc:
            self._finish(exc)
            raise
        self._finish(None)

    async def __aiter__(self) -> AsyncIterator[bytes]:
        try:
            async for chunk in self.inner:
                self.recording.chunk(chunk)
                yield chunk
        except BaseException as exc:
            self._finish(exc)
            raise
        self._finish(None)

    def _finish(self, exc: BaseException | None) -> None:
        if not self.done:
            self.done = True
            self.recording.finish(self.stack, exc)

    def close(self) -> None:
        if not self.done and self.drain_on_close:
            # The SDK closes a retried 429 without reading it: read the rest so the cassette keeps it.
            try:
                for _ in self:
                    pass
            except Exception:  # noqa: BLE001 - the drain is best effort; the error is recorded
                pass
        self._finish(None)
        self.inner.close()

    async def aclose(self) -> None:
        if not self.done and self.drain_on_close:
            try:
                async for _ in self:
                    pass
            except Exception:  # noqa: BLE001
                pass
        self._finish(None)
        await self.inner.aclose()
