"""The AWS event-stream framer (``application/vnd.amazon.eventstream``): Bedrock's ``converse-stream``
and ``invoke-with-response-stream`` bodies, and the codec for their frames.

A frame (AWS calls it a message) is::

    total length    u32, big-endian: the whole frame, these 4 bytes and the CRC at its end included
    headers length  u32, big-endian
    prelude CRC     CRC32 of the 8 bytes above
    headers         name (u8 length + UTF-8), type (u8), value, repeated
    payload         total length - headers length - 16 bytes
    message CRC     CRC32 of everything before it

Header types: 0 true and 1 false (no value), 2 int8, 3 int16, 4 int32, 5 int64 (big-endian, signed),
6 bytes and 7 string (u16 length, then the bytes), 8 timestamp (int64 milliseconds), 9 uuid (16 bytes).
A frame is named by ``:event-type`` (``messageStart``, ``chunk``...), or by ``:exception-type`` when its
``:message-type`` is ``exception`` (``throttlingException``...).

Written from that description; botocore's ``eventstream.py`` was read to check it, not copied. Every
header encoding is canonical for its type and value, so decoding a frame with valid CRCs and encoding
it again gives its bytes back: that is what lets a cassette hold frames readably (``streamtape._frametext``).
"""

from __future__ import annotations

import struct
import uuid
import zlib
from collections.abc import Iterator, Sequence
from dataclasses import dataclass

from ..sse import Event

__all__ = ["EVENTSTREAM", "CONTENT_TYPE", "EventStreamFramer", "Frame", "FrameError", "HeaderValue", "Typed",
           "crc_ok", "decode_frame", "encode_frame", "frame_spans", "name_of"]  # fmt: skip

CONTENT_TYPE = "application/vnd.amazon.eventstream"
PRELUDE = 12  # total length, headers length, prelude CRC
OVERHEAD = PRELUDE + 4  # and the message CRC

_INTS = {2: ("int8", ">b"), 3: ("int16", ">h"), 4: ("int32", ">i"), 5: ("int64", ">q"), 8: ("timestamp", ">q")}
_KIND_CODES = {kind: (code, fmt) for code, (kind, fmt) in _INTS.items()}
KINDS = (*_KIND_CODES, "uuid")  # the Typed kinds, as a cassette spells them


class FrameError(ValueError):
    """Bytes that are not one well-formed frame: the message says what is wrong."""


@dataclass(frozen=True)
class Typed:
    """A header value whose type a Python value does not say: ``int8``, ``int16``, ``int32``,
    ``int64``, ``timestamp`` (milliseconds since the epoch) or ``uuid`` (16 bytes)."""

    kind: str
    value: int | bytes


#: A header value: text (type 7), ``bool`` (0/1), ``bytes`` (6), or ``Typed``; a plain ``int`` encodes as int32.
HeaderValue = str | bool | bytes | int | Typed
Headers = tuple[tuple[str, HeaderValue], ...]


@dataclass(frozen=True)
class Frame:
    headers: Headers
    payload: bytes

    def header(self, name: str) -> HeaderValue | None:
        return next((value for key, value in self.headers if key == name), None)

    def encode(self) -> bytes:
        return encode_frame(self.headers, self.payload)


# --- the codec -----------------------------------------------------------------------------------


def encode_frame(headers: Sequence[tuple[str, HeaderValue]], payload: bytes) -> bytes:
    """One frame with these headers (in this order) and payload, with both CRCs."""
    block = b"".join(_encode_header(name, value) for name, value in headers)
    total = len(block) + len(payload) + OVERHEAD
    lengths = struct.pack(">II", total, len(block))
    head = lengths + struct.pack(">I", zlib.crc32(lengths)) + block
    crc = zlib.crc32(payload, zlib.crc32(head))
    return head + payload + struct.pack(">I", crc)


def _encode_header(name: str, value: HeaderValue) -> bytes:
    raw = name.encode("utf-8")
    if not 0 < len(raw) < 256:
        raise FrameError(f"header name {name!r} must be 1 to 255 bytes of UTF-8")
    out = bytes([len(raw)]) + raw
    if isinstance(value, bool):
        return out + bytes([0 if value else 1])
    if isinstance(value, (str, bytes)):
        data = value.encode("utf-8") if isinstance(value, str) else value
        if len(data) > 0xFFFF:
            raise FrameError(f"header {name!r}: a value of {len(data)} bytes; at most 65535 fit")
        return out + bytes([7 if isinstance(value, str) else 6]) + struct.pack(">H", len(data)) + data
    if isinstance(value, int):
        value = Typed("int32", value)
    if not isinstance(value, Typed):
        raise FrameError(f"header {name!r}: {type(value).__name__} is not a header value")
    if value.kind == "uuid":
        if not isinstance(value.value, bytes) or len(value.value) != 16:
            raise FrameError(f"header {name!r}: a uuid is 16 bytes")
        return out + b"\x09" + value.value
    if value.kind not in _KIND_CODES or isinstance(value.value, (bytes, bool)):
        raise FrameError(f"header {name!r}: {value.kind!r} is not a header type; valid: {', '.join(KINDS)}")
    code, fmt = _KIND_CODES[value.kind]
    try:
        return out + bytes([code]) + struct.pack(fmt, value.value)
    except struct.error:
        raise FrameError(f"header {name!r}: {value.value} does not fit in {value.kind}") from None


def decode_frame(data: bytes, *, check: bool = True) -> Frame:
    """The frame ``data`` is exactly; ``check``: its CRCs must match (``FrameError`` otherwise)."""
    if len(data) < OVERHEAD:
        raise FrameError(f"{len(data)} bytes; a frame has at least {OVERHEAD}")
    total, size, prelude_crc = struct.unpack_from(">III", data)
    if total != len(data):
        raise FrameError(f"the prelude says {total} bytes, but the frame has {len(data)}")
    if size > total - OVERHEAD:
        raise FrameError(f"the headers length {size} does not fit in a frame of {total} bytes")
    if check and zlib.crc32(data[:8]) != prelude_crc:
        raise FrameError("the prelude CRC does not match")
    if check and zlib.crc32(data[:-4]) != struct.unpack_from(">I", data, total - 4)[0]:
        raise FrameError("the message CRC does not match")
    return Frame(_decode_headers(data[PRELUDE : PRELUDE + size]), data[PRELUDE + size : total - 4])


def _decode_headers(block: bytes) -> Headers:
    headers: list[tuple[str, HeaderValue]] = []
    pos, end = 0, len(block)
    try:
        while pos < end:
            length = block[pos]
            name = block[pos + 1 : pos + 1 + length].decode("utf-8")
            pos += 1 + length
            code = block[pos]
            pos += 1
            value: HeaderValue
            if code in (0, 1):
                value = code == 0
            elif code in (6, 7):
                (size,) = struct.unpack_from(">H", block, pos)
                raw = block[pos + 2 : pos + 2 + size]
                if len(raw) != size:
                    raise FrameError(f"header {name!r} runs past the headers")
                value = raw.decode("utf-8") if code == 7 else raw
                pos += 2 + size
            elif code in _INTS:
                kind, fmt = _INTS[code]
                (number,) = struct.unpack_from(fmt, block, pos)
                value, pos = Typed(kind, number), pos + struct.calcsize(fmt)
            elif code == 9:
                if pos + 16 > end:
                    raise FrameError(f"header {name!r} runs past the headers")
                value, pos = Typed("uuid", block[pos : pos + 16]), pos + 16
            else:
                raise FrameError(f"header {name!r} has type {code}, which is not an event-stream type")
            if not name:
                raise FrameError("a header has an empty name")
            headers.append((name, value))
    except (IndexError, struct.error):
        raise FrameError("the headers end in the middle of one") from None
    except UnicodeDecodeError:
        raise FrameError("a header name or string value is not UTF-8") from None
    if pos != end:
        raise FrameError("the headers run past the headers length")
    return tuple(headers)


def crc_ok(frame: bytes) -> bool:
    """Whether both CRCs of one frame's bytes match."""
    try:
        decode_frame(frame)
    except FrameError:
        return False
    return True


def frame_spans(body: bytes) -> Iterator[tuple[int, int]]:
    """The ``[start, end)`` of each complete frame, walking the total lengths: a frame the body cuts
    short is not one, and neither is anything after a length that cannot be a frame's."""
    pos, size = 0, len(body)
    while pos + 4 <= size:
        (total,) = struct.unpack_from(">I", body, pos)
        if total < OVERHEAD or pos + total > size:
            return
        yield pos, pos + total
        pos += total


def name_of(headers: Headers) -> str:
    """What a frame is called: its ``:exception-type`` (an exception), ``:error-code`` (an error), else
    its ``:event-type``; ``message`` when it has none (what an SSE event without a name is called)."""
    values = dict(headers)
    kind = values.get(":message-type")
    key = ":exception-type" if kind == "exception" else ":error-code" if kind == "error" else ":event-type"
    name = values.get(key, values.get(":event-type"))
    return name if isinstance(name, str) and name else "message"


# --- the framer ----------------------------------------------------------------------------------


class EventStreamFramer:
    name: str = "eventstream"
    content_types: tuple[str, ...] = (CONTENT_TYPE,)
    unit: str = "frame"

    def event_ends(self, body: bytes) -> list[int]:
        return [end for _, end in frame_spans(body)]

    def events(self, body: bytes) -> list[Event]:
        """Each complete frame, named as ``name_of`` says, its payload as ``data`` (CRCs are not
        checked: a frame with a bad CRC is still the frame it says it is)."""
        events = []
        for start, end in frame_spans(body):
            frame = body[start:end]
            try:
                decoded = decode_frame(frame, check=False)
            except FrameError:
                name, payload = "message", frame[PRELUDE + _headers_length(frame) : -4]
            else:
                name, payload = name_of(decoded.headers), decoded.payload
            events.append(Event(name, payload.decode("utf-8", errors="replace"), start, end))
        return events

    def payload_start(self, event: bytes) -> int:
        return min(PRELUDE + _headers_length(event), len(event))

    # Binary frames: what a fault that edits a payload (``corrupt``) edits, and how the frame is made
    # whole again, so the damage is in the payload and not a checksum error (a fault of its own).

    def payload(self, event: bytes) -> bytes:
        """One frame's payload (without the message CRC)."""
        return event[self.payload_start(event) : max(self.payload_start(event), len(event) - 4)]

    def with_payload(self, event: bytes, payload: bytes) -> bytes:
        """The frame ``event`` with another payload: same headers, lengths and CRCs recomputed."""
        block = event[PRELUDE : self.payload_start(event)]
        total = len(block) + len(payload) + OVERHEAD
        lengths = struct.pack(">II", total, len(block))
        head = lengths + struct.pack(">I", zlib.crc32(lengths)) + block
        return head + payload + struct.pack(">I", zlib.crc32(payload, zlib.crc32(head)))

    def __repr__(self) -> str:
        return "<framer eventstream>"


def _headers_length(frame: bytes) -> int:
    return struct.unpack_from(">I", frame, 4)[0] if len(frame) >= 8 else 0


def uuid_text(value: bytes) -> str:
    return str(uuid.UUID(bytes=value))


EVENTSTREAM = EventStreamFramer()
