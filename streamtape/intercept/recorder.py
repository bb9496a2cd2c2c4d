"""The recorder: a tee at the pool layer that hands each chunk on the moment it arrives.

Per chunk it only notes the bytes and their arrival time (no parsing, no copying beyond a list
append), so time-to-first-token is what it would be without streamtape. A stream that breaks is
recorded with the bytes that did arrive and the real error, which is then re-raised unchanged.

What the app did not read is still the truth: when the app closes a stream early (it broke out of
``text_stream``, or stopped after ``message_delta``), the rest of the body is read from the network
off the app's path (a thread, or an asyncio task), bounded by ``DRAIN_SECONDS`` and ``DRAIN_BYTES``,
and the tape waits for it before saving; a pool closing meanwhile leaves that connection open to it
(``spare``). Where that is impossible (the bound ran out, a cancelled read, trio, a sync exit from async
code) the recording ends with ``Cut("ClientClosed")``: never a clean end it did not see.
"""

from __future__ import annotations

import asyncio
import contextlib
import importlib
import socket
import threading
import time
import weakref
import zlib
from collections.abc import AsyncIterator, Callable, Iterator
from typing import Any

from ..age import Recorded, recorded_now, utc_now
from ..cassette import Interaction, Request, Response
from ..hooks import Hooks
from ..redact import Redactor
from ..wire import Cut, End

__all__ = ["Classify", "Recording", "RecordingStream", "prepare_request"]

#: a stack's ``classify``: the cut a real exception records as, or ``None`` (not a network failure)
Classify = Callable[[BaseException], "Cut | None"]


def prepare_request(
    tape: Any, method: str, url: str, headers: tuple[tuple[str, str], ...], body: bytes
) -> tuple[Request | None, Redactor]:
    """The request as matching sees it and a cassette stores it: the user's filters and hook first,
    then the secrets removed (always last). ``None``: the hook left it out of the tape. The redactor
    learns the credentials of the request as sent, whatever the filters remove from it."""
    redactor = Redactor(headers, url=url, extra_secrets=tape.secrets)
    request: Request | None = Request(method, url, headers, body)
    if tape.hooks:
        request = tape.hooks.request(request)
    return (None if request is None else redactor.request(request)), redactor


_DECODABLE = {"gzip": 16 + zlib.MAX_WBITS, "x-gzip": 16 + zlib.MAX_WBITS, "deflate": zlib.MAX_WBITS}
_DROP_WHEN_DECODED = {"content-encoding", "content-length"}

#: how long, and how much, the recorder reads on its own after the app closed a stream early
DRAIN_SECONDS = 120.0
DRAIN_BYTES = 64 * 1024 * 1024

#: every stream being recorded (the stack gives each its connection), how many background reads still use
#: each connection a closing pool left open, and the lock that guards both and the streams' ``background``
#: and ``spared`` against a pool closing meanwhile (``spare``)
_STREAMS: weakref.WeakSet[RecordingStream] = weakref.WeakSet()
_SPARED: dict[Any, int] = {}
_STREAMS_LOCK = threading.Lock()


def spare(connections: list[Any]) -> None:
    """A pool is about to close ``connections`` (its own list, under its own lock). One that only background
    reads still use (the app is done with every response on it) is taken out of the list and left open to
    them: the last of them closes it. An app that closes its client right after abandoning a stream (the
    OpenAI SDK abandons one at an in-stream error, before ``[DONE]``) would otherwise cut the recording short,
    as a reset that never happened. A connection the app still holds a response on is closed under it, as
    the pool would: each stream on it ends as ``client_closed`` (the client closed it, no network error)."""
    with _STREAMS_LOCK:
        using: dict[int, list[RecordingStream]] = {}
        for stream in list(_STREAMS):
            if not stream.done and stream.connection is not None and stream.connection in connections:
                using.setdefault(id(stream.connection), []).append(stream)
        for streams in using.values():  # (HTTP/2: several streams share one connection)
            connection = streams[0].connection
            if all(stream.background for stream in streams):
                connections.remove(connection)
                _SPARED[connection] = len(streams)
                for stream in streams:
                    stream.spared = True
            else:
                for stream in streams:
                    stream.recording.client_closed()


def _decoder(encoding: str, accepted: str = "") -> Any | None:
    """A fresh incremental decoder (``.decompress(bytes) -> bytes``) for a ``Content-Encoding``, or
    ``None`` (the body is stored as it came). Brotli is decoded when the client asked for it
    (``accepted``: the request's ``Accept-Encoding``; httpx, urllib3 and aiohttp offer ``br`` only when
    they can decode it) and a brotli library is installed. Stored decoded, the cassette is readable
    and a key the body repeats is found by the redactor, as in a gzip body. zstd is kept as it came:
    whether a client decodes it depends on more than an installed library."""
    if encoding in _DECODABLE:
        return zlib.decompressobj(_DECODABLE[encoding])
    if encoding == "br" and "br" in [part.split(";")[0].strip() for part in accepted.lower().split(",")]:
        for name in ("brotli", "brotlicffi"):
            try:
                module = importlib.import_module(name)
            except ImportError:
                continue
            return _Brotli(module.Decompressor())
    return None


class _Brotli:
    """brotli's decompressor under zlib's method name (brotli calls it ``process``; brotlicffi has both)."""

    def __init__(self, inner: Any) -> None:
        self.decompress = getattr(inner, "process", None) or inner.decompress


class Recording:
    """What has been seen of one exchange so far; ``snapshot()`` makes it an ``Interaction``."""

    def __init__(self, request: Request, redactor: Redactor, hooks: Hooks | None = None) -> None:
        self.request = request
        self.redactor = redactor
        self.hooks = hooks
        self.start = time.monotonic()
        self.started = utc_now()  # the interaction's ``recorded.at``
        #: the HTTP stack that sent it (``Tape.begin_recording`` sets it): the interaction's ``recorded.stack``
        self.stack = ""
        self.status = 0
        self.reason = ""
        self.headers: tuple[tuple[str, str], ...] = ()
        self.headers_at = 0.0
        self.chunks: list[tuple[float, bytes]] = []
        self.end: End | Cut | None = None
        self.error: Cut | None = None
        self._encoding = ""  # the body's Content-Encoding, when streamtape can decode it
        self._accepted = ""  # the request's Accept-Encoding
        self._lock = threading.Lock()
        self.stream: RecordingStream | None = None
        #: the background read of what the app did not read (a thread or an asyncio task), if any
        self.pending: threading.Thread | asyncio.Task[None] | None = None
        #: how to wake a background read thread blocked on a server that sends nothing more, set by the stack
        #: that started it (shutting its socket down), for ``settle`` to call when it stops waiting
        self.wake: Callable[[], None] | None = None
        self.abandoned = False  # the tape stopped waiting for the background read

    def now(self) -> float:
        return time.monotonic() - self.start

    def failed(self, classify: Classify, exc: BaseException) -> None:
        """The request failed before any response (refused, reset, timed out)."""
        self.error = self._cut(classify, exc)

    def _cut(self, classify: Classify, exc: BaseException) -> Cut | None:
        cut = classify(exc)
        if cut is None:
            return None
        # no message: the stack gave none of its own, so a replay words it as its own stack does
        message = None if cut.message is None else self.redactor.text(cut.message)
        return Cut(cut.kind, message, self.now())

    def respond(self, status: int, reason: bytes, raw_headers: list[tuple[bytes, bytes]]) -> None:
        self.headers_at = self.now()
        self.status, self.reason = status, reason.decode("latin-1")
        headers = [(k.decode("latin-1"), v.decode("latin-1")) for k, v in raw_headers]
        encoding = next((v.strip().lower() for k, v in headers if k.lower() == "content-encoding"), "")
        accepted = ",".join(v for k, v in self.request.headers if k.lower() == "accept-encoding")
        self._accepted = accepted
        self._encoding = encoding if _decoder(encoding, accepted) is not None else ""
        self.headers = self.redactor.headers(headers)

    def chunk(self, data: bytes) -> None:
        at = self.now()
        with self._lock:
            if not self.abandoned:
                self.chunks.append((at, data))

    def finish(self, classify: Classify, exc: BaseException | None = None) -> None:
        """The body ended: cleanly (``exc`` None), or with a network error, recorded as its cut. Any other
        exception (a cancelled task, ``KeyboardInterrupt``) stopped the read, not the stream: nothing more
        can be read, and the recording ends as ``client_closed``, never as an end it did not see."""
        if self.end is not None:
            return
        if exc is None:
            self.end = End(self.now())
            return
        cut = self._cut(classify, exc)
        if cut is None:
            self.client_closed()
        else:
            self.end = cut

    def client_closed(self) -> None:
        """The app closed the response early and the rest of it could not be read."""
        with self._lock:
            self.abandoned = True
            if self.end is None:
                self.end = Cut("client_closed", None, self.now())

    @property
    def unfinished(self) -> bool:
        return self.status != 0 and self.end is None

    def settle(self, deadline: float) -> None:
        """Before a save (sync): wait for a background read until ``deadline`` (monotonic), reading a stream
        the app neither read to its end nor closed in the background too; whatever is still open then ends
        as ``ClientClosed``, and a read still blocked on a silent server is woken (``RecordingStream.wake``)."""
        pending, stream = self.pending, self.stream
        if self.unfinished and pending is None and stream is not None and stream.sync:
            stream.read_on()
            pending = self.pending
        if isinstance(pending, threading.Thread):
            pending.join(max(deadline - time.monotonic(), 0.0))
        if self.unfinished:
            self.client_closed()
            if isinstance(pending, threading.Thread) and self.wake is not None:
                self.wake()
            if isinstance(pending, asyncio.Task) and not pending.done():
                _cancel(pending)

    async def asettle(self, deadline: float) -> None:
        """``settle`` for an async exit: awaits a background task, or reads an unclosed async stream, until
        ``deadline`` (a read past it is cancelled: ``client_closed``)."""
        pending = self.pending
        if isinstance(pending, asyncio.Task):
            # asyncio.wait neither raises the task's outcome nor swallows a cancellation of the caller
            await asyncio.wait({pending}, timeout=max(deadline - time.monotonic(), 0.0))
        elif self.unfinished and pending is None and self.stream is not None and not self.stream.sync:
            with contextlib.suppress(TimeoutError):
                await asyncio.wait_for(self.stream.adrain(deadline), max(deadline - time.monotonic(), 0.0))
        self.settle(deadline)

    def snapshot(self) -> Interaction | None:
        """The exchange as it will be saved (``before_record_response`` applied, then redaction), or
        ``None`` when the hook dropped it."""
        if self.status == 0:
            error = self.error or Cut("refused", "the request was interrupted before any response", self.now())
            return self.redactor.interaction(Interaction(self.request, error=error, recorded=self._recorded()))
        with self._lock:
            chunks = list(self.chunks)
        headers, chunks = self._decoded(chunks)
        timing = tuple((at, len(data)) for at, data in chunks if data)
        body = b"".join(data for _, data in chunks)
        end = self.end or Cut("client_closed", None, self.now())  # not seen to end: never claim it did
        response: Response | None = Response(self.status, headers, body, timing, self.reason, self.headers_at, end)
        if self.hooks:
            response = self.hooks.response(response)  # type: ignore[arg-type]
            if response is None:
                return None
        # everything that reaches the cassette passes the redactor once more, whole: the body (a key the
        # API echoed, split across chunks or not), the error texts, and what the response taught it
        return self.redactor.interaction(Interaction(self.request, response, recorded=self._recorded()))

    def _recorded(self) -> Recorded:
        """When the exchange started (UTC), the SDK that sent it and the stack it went through: never a
        host name or a secret (``streamtape.age``)."""
        return recorded_now(self.request, self.stack, self.started)

    def _decoded(
        self, chunks: list[tuple[float, bytes]]
    ) -> tuple[tuple[tuple[str, str], ...], list[tuple[float, bytes]]]:
        """Store what the app reads, not compressed wire bytes, so the cassette stays readable."""
        decoder = _decoder(self._encoding, self._accepted) if self._encoding else None
        if decoder is None:
            return self.headers, chunks
        try:
            decoded = [(at, decoder.decompress(data)) for at, data in chunks]
        except Exception:  # noqa: BLE001 - zlib.error, brotli.error, ZstdError: not what the header said
            return self.headers, chunks  # keep the bytes as they came
        return tuple((k, v) for k, v in self.headers if k.lower() not in _DROP_WHEN_DECODED), decoded


def _cancel(task: asyncio.Task[None]) -> None:
    """Cancel a background read, from its loop's thread or any other (``Task.cancel`` is not thread-safe)."""
    loop = task.get_loop()
    try:
        running = asyncio.get_running_loop()
    except RuntimeError:
        running = None
    if running is loop:
        task.cancel()
        return
    with contextlib.suppress(RuntimeError):  # its loop is closed: the task was cancelled with it
        loop.call_soon_threadsafe(task.cancel)


class RecordingStream:
    """Wraps the real core response stream: yields each chunk at once and notes it."""

    def __init__(self, inner: Any, recording: Recording, classify: Classify, drain_on_close: bool, *,
                 sync: bool) -> None:  # fmt: skip
        self.inner = inner
        self.recording = recording
        self.classify = classify
        self.drain_on_close = drain_on_close
        self.sync = sync
        self.done = False
        #: the one iterator over the real stream: the app reads from it, and a drain reads on where the
        #: app stopped. Held here, it outlives the app's generator: finalizing that one (the app dropped it
        #: mid-stream) must neither close the connection under the drain nor count as the stream's end.
        self._chunks: Iterator[bytes] | AsyncIterator[bytes] | None = None
        #: the connection the response arrives on (set by the stack), and whether a closing pool left it
        #: open for the background read (``spare``), which then closes it
        self.connection: Any = None
        #: the socket it arrives on, and whether other responses share it (HTTP/2), set by the stack
        self.socket: Any = None
        self.multiplexed = False
        self.background = False  # the rest is being read off the app's path
        self.spared = False
        recording.stream = self
        with _STREAMS_LOCK:
            _STREAMS.add(self)

    def __iter__(self) -> Iterator[bytes]:
        if self._chunks is None:
            self._chunks = iter(self.inner)
        chunks: Any = self._chunks
        while True:
            try:
                chunk = next(chunks)
                self.recording.chunk(chunk)  # in the try: a Ctrl-C between the two must not lose the chunk
            except StopIteration:
                self._finish(None)
                return
            except BaseException as exc:
                self._finish(exc)
                raise
            yield chunk  # GeneratorExit here: the app stopped reading, not the stream ending (close drains)

    async def __aiter__(self) -> AsyncIterator[bytes]:
        if self._chunks is None:
            self._chunks = aiter(self.inner)
        chunks: Any = self._chunks
        while True:
            try:
                chunk = await anext(chunks)
                self.recording.chunk(chunk)
            except StopAsyncIteration:
                self._finish(None)
                return
            except BaseException as exc:
                self._finish(exc)
                raise
            yield chunk  # as in __iter__

    def _finish(self, exc: BaseException | None) -> None:
        if not self.done:
            self.done = True
            self.recording.finish(self.classify, exc)

    def drain(self, deadline: float) -> None:
        """Read the rest (sync) into the recording, until the end, an error or the bound."""
        read = 0
        try:
            for chunk in self:
                read += len(chunk)
                if self._past_bound(deadline, read):
                    return
        except Exception:  # noqa: BLE001 - a real error mid-drain is recorded as the stream's end
            pass

    async def adrain(self, deadline: float) -> None:
        """``drain`` for an async stream."""
        read = 0
        try:
            async for chunk in self:
                read += len(chunk)
                if self._past_bound(deadline, read):
                    return
        except Exception:  # noqa: BLE001
            pass

    def _past_bound(self, deadline: float, read: int) -> bool:
        """Stop reading on our own: the tape gave up waiting, or the time or size bound ran out."""
        if self.recording.abandoned or time.monotonic() > deadline or read > DRAIN_BYTES:
            self.recording.client_closed()
            return True
        return False

    def close(self) -> None:
        if self.done:
            self.inner.close()
        elif self.drain_on_close:
            # The SDK closes a retried 429 without reading it: read the rest so the cassette keeps it.
            self.drain(time.monotonic() + DRAIN_SECONDS)
            self.inner.close()
        else:
            self.read_on()  # a stream the app stopped reading: the rest is read off the app's path

    def read_on(self) -> None:
        """Read the rest in a background thread (the tape waits for it: ``Recording.settle``), then close the
        response, and the connection too when a closing pool left it to this read (``spare``)."""

        def run() -> None:
            try:
                self.drain(time.monotonic() + DRAIN_SECONDS)
            finally:
                with contextlib.suppress(Exception):
                    self.inner.close()
                if self._background_done():
                    with contextlib.suppress(Exception):
                        self.connection.close()

        thread = threading.Thread(target=run, name="streamtape-drain", daemon=True)
        self.recording.pending, self.recording.wake = thread, self.wake
        self._background_start()
        try:
            thread.start()
        except BaseException:
            self.recording.pending = None
            self._background_done()
            raise

    def wake(self) -> None:
        """The tape stopped waiting for the background read: a read blocked on a server that sends nothing
        more is woken by shutting its socket down, so neither the thread nor the socket outlives the tape.
        Only where nothing else reads that socket: one response at a time (HTTP/1.1), or a connection a
        closing pool left to background reads alone."""
        if self.socket is not None and (self.spared or not self.multiplexed):
            with contextlib.suppress(OSError, AttributeError):
                self.socket.shutdown(socket.SHUT_RDWR)

    def _background_start(self) -> None:
        with _STREAMS_LOCK:
            self.background = True

    def _background_done(self) -> bool:
        """The background read ended; ``True``: it was the last to use a connection a closing pool left to
        such reads, which it is now to close."""
        with _STREAMS_LOCK:
            self.background = False
            if not self.spared:
                return False
            left = _SPARED.get(self.connection, 1) - 1
            if left > 0:
                _SPARED[self.connection] = left
                return False
            _SPARED.pop(self.connection, None)
            return True

    async def aclose(self) -> None:
        if self.done:
            await self.inner.aclose()
        elif self.drain_on_close:
            await self.adrain(time.monotonic() + DRAIN_SECONDS)
            await self.inner.aclose()
        else:
            try:
                loop = asyncio.get_running_loop()
            except RuntimeError:  # not asyncio (trio): nothing can read on after this call returns
                self.recording.client_closed()
                await self.inner.aclose()
                return

            async def run() -> None:
                try:
                    await self.adrain(time.monotonic() + DRAIN_SECONDS)
                finally:
                    if not self.done:
                        self.recording.client_closed()
                    with contextlib.suppress(BaseException):
                        await self.inner.aclose()
                    if self._background_done():
                        with contextlib.suppress(BaseException):
                            await self.connection.aclose()

            self._background_start()
            self.recording.pending = loop.create_task(run(), name="streamtape-drain")
