"""Stream framers: where a response body's events begin and end, chosen by its content type.

Faults count positions in events (``after=5``), and ``inspect``, ``lint`` and ``report`` read events;
only a framer knows how a body is cut into them, so nothing else parses a stream format. A framer is
a small object (``Framer``) registered here:

- ``sse`` (``text/event-stream``, ``streamtape.framing.sse``): WHATWG Server-Sent Events, the
  Anthropic and OpenAI streams. It is also the fallback for a body whose content type no framer
  claims (no content type, ``application/json``...), which is what every cassette got before
  framers existed: a JSON body simply has no complete event.
- ``ndjson`` (``application/x-ndjson``, ``application/jsonl``...; ``streamtape.framing.ndjson``): one
  JSON text per line, as Ollama streams.
- ``eventstream`` (``application/vnd.amazon.eventstream``, ``streamtape.framing.eventstream``): AWS's
  binary event stream, Bedrock's ``converse-stream`` and ``invoke-with-response-stream``. Each frame
  is a 4-byte big-endian total length, a 4-byte headers length, a 4-byte CRC32 of those 8 bytes
  (the prelude), the headers (``:event-type``, ``:message-type``, ``:content-type`` as typed
  name/value pairs), the payload, and a 4-byte CRC32 of everything before it. ``event_ends`` walks
  the total lengths (an incomplete last frame is not an event); ``events`` names each by its
  ``:event-type`` header (``:exception-type`` for an exception frame) with the payload as ``data``;
  ``payload_start`` is ``12 + headers length``. A binary framer also has ``payload(event)`` and
  ``with_payload(event, payload)``: a fault that edits a payload (``corrupt``) edits that and the frame
  is made whole again (lengths and both CRCs recomputed), or the SDK would see a checksum error, which
  is a fault of its own (``bad_crc``). A cassette stores these bodies as one decoded frame per entry
  (``streamtape._frametext``).

A framer never sees the whole exchange, only one body; it must be linear in the body (faults run it
on every faulted request) and give the same events however the body was chunked.
"""

from __future__ import annotations

from collections.abc import Iterable
from typing import Protocol, runtime_checkable

from ..errors import ConfigError
from ..sse import Event

__all__ = ["Event", "Framer", "framer_for", "get", "media_type", "register", "registered", "stream_framer",
           "unregister"]  # fmt: skip


@runtime_checkable
class Framer(Protocol):
    """How one stream format cuts a body into events."""

    #: a short name: ``sse``, ``ndjson``
    name: str
    #: the media types it reads, lower case, without parameters
    content_types: tuple[str, ...]
    #: what error messages count, singular: ``SSE event``, ``event``
    unit: str

    def event_ends(self, body: bytes) -> list[int]:
        """The offset just past each complete event, in order (``[e.end for e in events(body)]``,
        but as cheap as the format allows: faults positioned by event need only this)."""
        ...

    def events(self, body: bytes) -> list[Event]:
        """The complete events, each with a name, its ``data`` as text and its byte span."""
        ...

    def payload_start(self, event: bytes) -> int:
        """Where the payload starts in one event's bytes (what ``corrupt`` damages)."""
        ...


_FRAMERS: dict[str, Framer] = {}


def register(framer: Framer, *, replace: bool = False) -> Framer:
    """Make ``framer`` the reader of its content types. A second framer for a name or content type
    already taken is refused unless ``replace=True``, so two formats never silently share one."""
    if not isinstance(framer, Framer):
        raise ConfigError(f"framing: {framer!r} is not a framer (it needs name, content_types, unit, event_ends, "
                          "events and payload_start)")  # fmt: skip
    _load_builtins()
    if not replace:
        taken = _FRAMERS.get(framer.name)
        if taken is not None and taken is not framer:
            raise ConfigError(f"framing: a framer named {framer.name!r} is already registered; pass replace=True")
        for other in _FRAMERS.values():
            shared = set(other.content_types) & set(framer.content_types)
            if other.name != framer.name and shared:
                raise ConfigError(
                    f"framing: {sorted(shared)[0]} is already read by the {other.name!r} framer; pass replace=True"
                )
    for other in list(_FRAMERS.values()):  # a replacement takes its content types from whoever had them
        if other.name != framer.name and set(other.content_types) & set(framer.content_types):
            del _FRAMERS[other.name]
    _FRAMERS[framer.name] = framer
    _BY_TYPE.clear()
    return framer


def unregister(name: str) -> None:
    """Forget the framer ``name`` (tests that registered their own)."""
    _load_builtins()
    if name == _FALLBACK:
        raise ConfigError("framing: the sse framer is the fallback for bodies no framer claims; it stays")
    if _FRAMERS.pop(name, None) is None:
        raise ConfigError(f"framing: no framer named {name!r}; registered: {', '.join(_FRAMERS)}")
    _BY_TYPE.clear()


def registered() -> tuple[Framer, ...]:
    _load_builtins()
    return tuple(_FRAMERS.values())


def get(name: str) -> Framer:
    _load_builtins()
    try:
        return _FRAMERS[name]
    except KeyError:
        raise ConfigError(f"framing: no framer named {name!r}; registered: {', '.join(_FRAMERS)}") from None


def media_type(headers: Iterable[tuple[str, str]]) -> str:
    """The response's media type, lower case without parameters (``""`` without a content type)."""
    value = next((v for k, v in headers if k.lower() == "content-type"), "")
    return value.partition(";")[0].strip().lower()


def stream_framer(headers: Iterable[tuple[str, str]]) -> Framer | None:
    """The framer that claims the response's content type, or ``None`` (not a stream format
    streamtape knows): for ``lint``, which checks only what says it is a stream."""
    _load_builtins()
    kind = media_type(headers)
    if kind not in _BY_TYPE:
        _BY_TYPE[kind] = next((f for f in _FRAMERS.values() if kind in f.content_types), None)
    return _BY_TYPE[kind]


def framer_for(headers: Iterable[tuple[str, str]]) -> Framer:
    """The framer for a response with these headers; SSE when no framer claims its content type
    (a cassette without one holds SSE or JSON, and SSE finds no event in JSON)."""
    return stream_framer(headers) or _FRAMERS[_FALLBACK]


_FALLBACK = "sse"
_BY_TYPE: dict[str, Framer | None] = {}  # media type -> framer, filled as types are seen


def _load_builtins() -> None:
    if not _FRAMERS:
        from .eventstream import EVENTSTREAM
        from .ndjson import NDJSON
        from .sse import SSE

        _FRAMERS[SSE.name] = SSE
        _FRAMERS[NDJSON.name] = NDJSON
        _FRAMERS[EVENTSTREAM.name] = EVENTSTREAM
