"""The in-process executor: plays one request's wire actions as a core (pool-layer) response.

Bytes come out of the response stream in the recorded (or fault-shaped) chunks; a ``Cut`` raises the
core exception a real connection raises, with the real stack's message, so httpx2's own mapping (and
then the SDK) turns it into exactly what the app would see from a real socket. Silence is checked
against the request's read timeout: a gap as long as the timeout raises ``ReadTimeout`` when it
expires (at once in virtual time, speed 0).

``Playback`` makes every decision; ``replay_response`` / ``areplay_response`` and ``ReplayStream``
only wait (sync or async) and hand on what it decided.
"""

from __future__ import annotations

import errno
import os
from collections.abc import AsyncIterator, Iterator
from typing import Any

from ..clock import Pacer
from ..errors import ConfigError, IncompleteRecordingError
from ..wire import Action, Chunks, Cut, End, Respond, Send, Stall, expand
from .stacks import Stack

__all__ = ["Playback", "ReplayStream", "areplay_response", "real_error", "real_message", "replay_response"]


def real_message(
    error: str, *, asynchronous: bool, before_headers: bool, framing: str, received: int, expected: int | None
) -> str:
    """The text the real httpcore/httpcore2 stack gives ``error`` here (measured over real sockets)."""
    if error == "RemoteProtocolError":
        if before_headers:
            return "Server disconnected without sending a response."
        if framing == "content-length":
            return (
                "peer closed connection without sending complete message body "
                f"(received {received} bytes, expected {expected})"
            )
        return "peer closed connection without sending complete message body (incomplete chunked read)"
    if error == "ConnectError":
        return "All connection attempts failed" if asynchronous else "[Errno 111] Connection refused"
    if error in ("ReadError", "WriteError"):
        return "" if asynchronous else "[Errno 104] Connection reset by peer"
    if error in ("ReadTimeout", "ConnectTimeout", "WriteTimeout", "PoolTimeout"):
        return "" if asynchronous else "timed out"
    return ""


def real_error(
    stack: Stack, error: str, message: str, *, asynchronous: bool, address: tuple[str, int] | None = None
) -> BaseException:
    """The core exception ``error`` with the chain a real socket gives it, when ``message`` is the stack's
    own text for it (measured over real sockets, httpcore2 2.17 / anyio 4): the OS error as the core
    error's argument, and as its ``__cause__`` where the stack sets one (sync reads; async reads through
    anyio's ``BrokenResourceError``), or its ``__context__`` (connects). SDKs read that chain: anthropic
    >= 2.17 words ``APIConnectionError`` from the deepest OS error in it. Other messages (a recorded
    text the table does not know) get the core error alone."""
    inner: BaseException | None = None
    as_cause = True
    if error in ("ReadError", "WriteError"):
        reset = ConnectionResetError(errno.ECONNRESET, os.strerror(errno.ECONNRESET))
        if asynchronous and message == "":
            import anyio

            inner = anyio.BrokenResourceError()
            inner.__cause__ = reset
        elif not asynchronous and message == str(reset):
            inner = reset
    elif error == "ConnectError":
        as_cause = False
        if not asynchronous and message == f"[Errno {errno.ECONNREFUSED}] {os.strerror(errno.ECONNREFUSED)}":
            inner = ConnectionRefusedError(errno.ECONNREFUSED, os.strerror(errno.ECONNREFUSED))
        elif asynchronous and message == "All connection attempts failed" and address is not None:
            inner = OSError(message)
            inner.__cause__ = ConnectionRefusedError(errno.ECONNREFUSED, f"Connect call failed {address!r}")
    elif error in ("ReadTimeout", "ConnectTimeout", "WriteTimeout") and message == ("" if asynchronous else "timed out"):
        inner = TimeoutError() if asynchronous else TimeoutError("timed out")
    if inner is None:
        return stack.error(error, message)
    exc = getattr(stack.core, error)(inner)
    if as_cause:
        exc.__cause__ = inner
    else:
        exc.__context__, exc.__suppress_context__ = inner, True
    return exc


def _framing(headers: tuple[tuple[str, str], ...]) -> tuple[str, int | None]:
    lowered = {name.lower(): value.strip().lower() for name, value in headers}
    if "content-length" in lowered and lowered["content-length"].isdigit():
        return "content-length", int(lowered["content-length"])
    if "transfer-encoding" not in lowered and lowered.get("connection") == "close":
        return "close", None
    return "chunked", None  # what the Anthropic API sends, and what a recording without framing meant


class Playback:
    """The decisions for one request: when things arrive, and what is raised instead of them."""

    def __init__(
        self,
        actions: list[Action],
        stack: Stack,
        *,
        asynchronous: bool,
        read_timeout: float | None,
        speed: float,
        address: tuple[str, int] | None = None,
    ) -> None:
        self.actions = actions
        self.address = address
        self.stack = stack
        self.asynchronous = asynchronous
        self.timeout = read_timeout
        self.speed = speed
        self.position = 0  # index of the next action to play
        self.last_at = 0.0  # when the last thing arrived (virtual time, seconds after the request)
        self.received = 0
        self.framing = "chunked"
        self.expected: int | None = None

    def head(self) -> tuple[float, Respond | BaseException]:
        """When the response head arrives, or the error raised instead of it."""
        while self.position < len(self.actions):
            action = self.actions[self.position]
            self.position += 1
            late = self._late(action)
            if late is not None:
                return late
            self.last_at = action.at
            if isinstance(action, Respond):
                self.framing, self.expected = _framing(action.headers)
                return action.at, action
            if isinstance(action, Cut):
                return action.at, self._error(action, before_headers=True)
        return self.last_at, self.stack.error("RemoteProtocolError", "Server disconnected without sending a response.")

    def body(self) -> Iterator[tuple[float, bytes | Chunks | BaseException | None]]:
        """``(at, item)``: bytes to hand on, a ``Chunks`` run to play instantly, an error, or ``None``
        for the clean end."""
        for action in self.actions[self.position :]:
            if isinstance(action, Chunks) and self._instant(action):
                self.last_at = action.timing[-1][0] if action.timing else self.last_at
                self.received += len(action.data)
                yield action.at, action
                continue
            for step in expand((action,)) if isinstance(action, Chunks) else (action,):  # a Send: no generator
                late = self._late(step)
                if late is not None:
                    yield late
                    return
                self.last_at = step.at
                if isinstance(step, Send):
                    yield step.at, self._take(step.data)
                    if self._complete():
                        yield step.at, None  # a Content-Length body is whole: the client stops reading
                        return
                elif isinstance(step, End) or (isinstance(step, Cut) and self._clean_close(step)):
                    yield step.at, None
                    return
                elif isinstance(step, Cut):
                    yield step.at, self._error(step, before_headers=False)
                    return
        yield self.last_at, None

    def _take(self, data: bytes) -> bytes:
        if self.expected is not None:
            data = data[: max(self.expected - self.received, 0)]  # bytes past the length are never read
        self.received += len(data)
        return data

    def _complete(self) -> bool:
        return self.expected is not None and self.received >= self.expected

    def _instant(self, run: Chunks) -> bool:
        if self.speed != 0 or self.expected is not None:
            return False
        return self.timeout is None or (run.longest_gap < self.timeout and run.at - self.last_at < self.timeout)

    def _late(self, action: Action) -> tuple[float, BaseException] | None:
        """The read timeout firing before ``action`` arrives, if its silence is that long."""
        if isinstance(action, Stall) and action.seconds is None:
            if self.timeout is None:
                raise ConfigError(
                    "a stall that lasts forever would hang this request: it has no read timeout. "
                    "Give the stall seconds=..., or give the client a timeout."
                )
            return action.at + self.timeout, self._timeout()
        if self.timeout is not None and action.at - self.last_at >= self.timeout:
            return self.last_at + self.timeout, self._timeout()
        return None

    def _timeout(self) -> BaseException:
        return real_error(self.stack, "ReadTimeout", "" if self.asynchronous else "timed out",
                          asynchronous=self.asynchronous)  # fmt: skip

    def _clean_close(self, cut: Cut) -> bool:
        # A FIN ends a close-delimited body cleanly: the client cannot tell it from the end.
        return cut.error == "RemoteProtocolError" and cut.message is None and self.framing == "close"

    def _error(self, cut: Cut, *, before_headers: bool) -> BaseException:
        if cut.error == "ClientClosed":
            where = f"{cut.message}: " if cut.message else ""
            return IncompleteRecordingError(
                f"{where}the recording of this response stops at byte {self.received}, where the app closed it while "
                "recording and the rest could not be read; this replay read past that point. Re-record with "
                "an app that reads the whole stream (streamtape then reads the rest itself), or keep this "
                "replay from reading further."
            )
        message = cut.message
        if message is None:
            message = real_message(
                cut.error,
                asynchronous=self.asynchronous,
                before_headers=before_headers,
                framing=self.framing,
                received=self.received,
                expected=self.expected,
            )
        return real_error(self.stack, cut.error, message, asynchronous=self.asynchronous, address=self.address)


class ReplayStream:
    """A response body that hands on what ``Playback`` decided, waiting as the pacer says."""

    def __init__(self, playback: Playback, pacer: Pacer) -> None:
        self.playback = playback
        self.pacer = pacer

    def __iter__(self) -> Iterator[bytes]:
        for at, item in self.playback.body():
            if isinstance(item, Chunks):
                yield from _instant(item)  # the hot path: no clock, no object per chunk
                continue
            self.pacer.wait(at)
            if isinstance(item, BaseException):
                raise item
            if item is not None:
                yield item

    async def __aiter__(self) -> AsyncIterator[bytes]:
        for at, item in self.playback.body():
            if isinstance(item, Chunks):
                for piece in _instant(item):
                    yield piece
                continue
            await self.pacer.await_(at)
            if isinstance(item, BaseException):
                raise item
            if item is not None:
                yield item

    def close(self) -> None:
        pass

    async def aclose(self) -> None:
        pass


def _instant(run: Chunks) -> Iterator[bytes]:
    data, pos = run.data, 0
    for _, size in run.timing:
        yield data[pos : pos + size]
        pos += size


def _response(stack: Stack, head: Respond, stream: ReplayStream) -> Any:
    return stack.core.Response(
        status=head.status,
        headers=[(name.encode("latin-1"), value.encode("latin-1")) for name, value in head.headers],
        content=stream,
        extensions={"http_version": b"HTTP/1.1", "reason_phrase": head.reason.encode("latin-1")},
    )


def replay_response(
    stack: Stack,
    actions: list[Action],
    *,
    speed: float,
    read_timeout: float | None,
    address: tuple[str, int] | None = None,
) -> Any:
    """The core response for ``actions`` (sync); raises when they fail before headers."""
    playback = Playback(actions, stack, asynchronous=False, read_timeout=read_timeout, speed=speed, address=address)
    pacer = Pacer(speed)
    at, head = playback.head()
    pacer.wait(at)
    if isinstance(head, BaseException):
        raise head
    return _response(stack, head, ReplayStream(playback, pacer))


async def areplay_response(
    stack: Stack,
    actions: list[Action],
    *,
    speed: float,
    read_timeout: float | None,
    address: tuple[str, int] | None = None,
) -> Any:
    playback = Playback(actions, stack, asynchronous=True, read_timeout=read_timeout, speed=speed, address=address)
    pacer = Pacer(speed)
    at, head = playback.head()
    await pacer.await_(at)
    if isinstance(head, BaseException):
        raise head
    return _response(stack, head, ReplayStream(playback, pacer))
