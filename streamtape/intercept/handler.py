"""One request through a tape, at the pool layer: replay it, or send it on and record it.

``handle`` / ``ahandle`` replace ``ConnectionPool.handle_request`` /
``AsyncConnectionPool.handle_async_request`` of httpcore2 and httpcore (globally while a tape is
entered, or in one client through ``Tape.transport()``). ``forward`` is the pool's original method.
"""

from __future__ import annotations

from collections.abc import AsyncIterator, Iterator
from typing import TYPE_CHECKING, Any

from ..cassette import Request
from ..guard import forwarding
from ..redact import Redactor
from .recorder import Recording, RecordingStream
from .replay import areplay_response, replay_response
from .stacks import Stack

if TYPE_CHECKING:
    from ..tape import Tape

__all__ = ["ahandle", "handle"]


class _Body:
    """A request body that was read once for matching, handed on for sending (sync or async)."""

    def __init__(self, data: bytes) -> None:
        self.data = data

    def __iter__(self) -> Iterator[bytes]:
        yield self.data

    async def __aiter__(self) -> AsyncIterator[bytes]:
        yield self.data


def _url(core_request: Any) -> str:
    url = core_request.url
    scheme, host = url.scheme.decode("ascii"), url.host.decode("ascii")
    default = {"http": 80, "https": 443}.get(scheme)
    port = f":{url.port}" if url.port is not None and url.port != default else ""
    return f"{scheme}://{host}{port}{url.target.decode('latin-1')}"


def _request(tape: Tape, core_request: Any, body: bytes) -> tuple[Request | None, Redactor]:
    """The request as matching sees it and a cassette stores it: the user's filters and hook first,
    then the secrets removed (always last). ``None``: the hook left it out of the tape."""
    headers = tuple((k.decode("latin-1"), v.decode("latin-1")) for k, v in core_request.headers)
    url = _url(core_request)
    # learns the credentials of the request as sent, whatever the filters remove from it
    redactor = Redactor(headers, url=url, extra_secrets=tape.secrets)
    request: Request | None = Request(core_request.method.decode("ascii"), url, headers, body)
    if tape.hooks:
        request = tape.hooks.request(request)  # type: ignore[arg-type]
    return (None if request is None else redactor.request(request)), redactor


def _read_timeout(core_request: Any) -> float | None:
    timeout = core_request.extensions.get("timeout", {}).get("read")
    return None if timeout is None else float(timeout)


def _address(core_request: Any) -> tuple[str, int]:
    url = core_request.url
    port = url.port or {b"http": 80, b"https": 443}.get(url.scheme, 0)
    return url.host.decode("ascii"), port


def _is_stream(headers: list[tuple[bytes, bytes]]) -> bool:
    return any(k.lower() == b"content-type" and b"event-stream" in v.lower() for k, v in headers)


def handle(tape: Tape, stack: Stack, pool: Any, core_request: Any, forward: Any) -> Any:
    if tape.allow_hosts and tape.allow_hosts.allows(core_request.url.host.decode("ascii")):
        with forwarding():  # the test's own service: neither recorded nor blocked
            return forward(pool, core_request)
    body = b"".join(core_request.stream)
    core_request.stream = _Body(body)
    request, redactor = _request(tape, core_request, body)
    if request is None:  # before_record_request left it out: neither recorded nor replayed
        with forwarding():
            return forward(pool, core_request)
    route = tape.route(request)
    if isinstance(route, list):
        return replay_response(
            stack, route, speed=tape.speed, read_timeout=_read_timeout(core_request), address=_address(core_request)
        )
    recording = Recording(request, redactor, tape.hooks)
    tape.begin_recording(recording)
    try:
        with forwarding():
            response = forward(pool, core_request)
    except BaseException as exc:
        recording.failed(stack, exc)
        raise
    return _tee(response, recording, stack, sync=True)


async def ahandle(tape: Tape, stack: Stack, pool: Any, core_request: Any, forward: Any) -> Any:
    if tape.allow_hosts and tape.allow_hosts.allows(core_request.url.host.decode("ascii")):
        with forwarding():
            return await forward(pool, core_request)
    body = b"".join([part async for part in core_request.stream])
    core_request.stream = _Body(body)
    request, redactor = _request(tape, core_request, body)
    if request is None:
        with forwarding():
            return await forward(pool, core_request)
    route = tape.route(request)
    if isinstance(route, list):
        return await areplay_response(
            stack, route, speed=tape.speed, read_timeout=_read_timeout(core_request), address=_address(core_request)
        )
    recording = Recording(request, redactor, tape.hooks)
    tape.begin_recording(recording)
    try:
        with forwarding():
            response = await forward(pool, core_request)
    except BaseException as exc:
        recording.failed(stack, exc)
        raise
    return _tee(response, recording, stack, sync=False)


def _tee(response: Any, recording: Recording, stack: Stack, *, sync: bool) -> Any:
    recording.respond(response.status, response.extensions.get("reason_phrase", b""), response.headers)
    response.stream = RecordingStream(
        response.stream, recording, stack, drain_on_close=not _is_stream(response.headers), sync=sync
    )
    return response
