"""Faults below the stream: what a broken server, proxy or network does to HTTP itself.

Each one was seen in production and each one is what a real socket gives (``tests/test_fault_fidelity.py``
sends the same bytes from a real server and compares): the connection that never completes
(``connect_timeout``), a request nobody reads (``write_timeout``), a client whose pool is exhausted
(``pool_timeout``), a status line or chunk-size line that is not HTTP (``bad_status``, ``bad_chunk``),
a gzip body that breaks mid-way (``corrupt_gzip``), a byte-order mark before the first event
(``bom``), a JSON body where a stream was asked for (``json_body``), and a stream whose last event
arrives but whose body never ends (``linger``).
"""

from __future__ import annotations

import zlib
from dataclasses import dataclass, replace
from typing import ClassVar

from ..errors import ConfigError
from ..wire import Cut, End, Raw, Respond, Stall
from ._plan import Piece, Plan
from .base import CONTENT, CUT, RECHUNK, REPLACE, Context, Fault

__all__ = ["BadChunk", "BadStatus", "Bom", "ConnectTimeout", "CorruptGzip", "JsonBody", "Linger", "PoolTimeout",
           "WriteTimeout"]  # fmt: skip

_BOM = b"\xef\xbb\xbf"


def _headers_without(headers: tuple[tuple[str, str], ...], *names: str) -> tuple[tuple[str, str], ...]:
    return tuple((k, v) for k, v in headers if k.lower() not in names)


@dataclass(frozen=True, kw_only=True)
class _Replacement(Fault):
    """The whole attempt fails before any response, as ``cut`` says."""

    cut: ClassVar[str] = ""

    @property
    def phase(self) -> int:
        return REPLACE

    def __call__(self, plan: Plan, context: Context) -> Plan:
        return Plan([Cut(self.cut)])


@dataclass(frozen=True, kw_only=True)
class ConnectTimeout(_Replacement):
    """The connection is never accepted (the server's accept queue is full, or packets are dropped): the
    client's connect timeout fires (``ConnectTimeout``, which SDKs retry), not its read timeout."""

    name: ClassVar[str] = "connect_timeout"
    cut: ClassVar[str] = "connect_timeout"


@dataclass(frozen=True, kw_only=True)
class WriteTimeout(_Replacement):
    """The server stops reading while the request is being sent, and the client's write timeout fires.
    (A write *error* never reaches an httpcore app: httpcore ignores it and reads the answer, so what the
    app meets is that read's failure: use ``reset`` or ``disconnect``.)"""

    name: ClassVar[str] = "write_timeout"
    cut: ClassVar[str] = "write_timeout"


@dataclass(frozen=True, kw_only=True)
class PoolTimeout(_Replacement):
    """Every connection of the client's pool is busy for longer than its pool timeout: the request is
    never sent. It happens in the client (no server can cause it), so ``serve`` cannot play it."""

    name: ClassVar[str] = "pool_timeout"
    cut: ClassVar[str] = "pool_timeout"


@dataclass(frozen=True, kw_only=True)
class BadStatus(Fault):
    """Bytes that are not an HTTP status line arrive instead of the response (a broken proxy, a TLS or
    plain-text answer on the wrong port), then the connection closes."""

    name: ClassVar[str] = "bad_status"
    line: str = "HTTP/1.1 2OO OK"

    @property
    def phase(self) -> int:
        return REPLACE

    def __call__(self, plan: Plan, context: Context) -> Plan:
        at = plan.respond.at if plan.respond is not None else 0.0
        return Plan([Raw(self.line.encode("latin-1", "replace") + b"\r\n\r\n", at)])


@dataclass(frozen=True, kw_only=True)
class BadChunk(Fault):
    """After ``after`` events, a chunk-size line that is not one (``line``), then the connection closes:
    a proxy that mangles a chunked stream. Only a chunked response has chunk-size lines."""

    name: ClassVar[str] = "bad_chunk"
    after: int = 1
    line: str = "zz"

    def __post_init__(self) -> None:
        if isinstance(self.after, bool) or not isinstance(self.after, int) or self.after < 0:
            raise ConfigError(f"bad_chunk: after={self.after!r} must be a whole number >= 0")

    @property
    def phase(self) -> int:
        return CUT

    def __call__(self, plan: Plan, context: Context) -> Plan:
        respond = plan.respond
        if respond is not None and any(k.lower() == "content-length" for k, _ in respond.headers):
            raise ConfigError(f"{self.spec()}: this response has a Content-Length, so it has no chunk-size lines "
                              "to break; use it on a chunked (streamed) response")  # fmt: skip
        at = plan.keep(plan.position(self.spec(), after=self.after, at_byte=None))
        plan.tail = [Raw(self.line.encode("latin-1", "replace") + b"\r\n", at)]
        return plan


@dataclass(frozen=True, kw_only=True)
class CorruptGzip(Fault):
    """The body arrives gzip-encoded (``Content-Encoding: gzip``, each piece flushed as it is sent, as a
    compressing proxy does) with one byte of the compressed stream damaged at byte ``at`` of it: by default
    the first byte of the middle piece, a deflate block header, so the client's decoder fails there,
    after decoding what came before (a damaged byte inside a block's data decodes to other bytes)."""

    name: ClassVar[str] = "corrupt_gzip"
    at: int | None = None

    def __post_init__(self) -> None:
        if self.at is not None and (isinstance(self.at, bool) or not isinstance(self.at, int)
                                         or self.at < 10):  # fmt: skip
            raise ConfigError(f"corrupt_gzip: at={self.at!r} must be a whole number >= 10 (the gzip "
                              "header is the first 10 bytes)")  # fmt: skip

    @property
    def phase(self) -> int:
        return RECHUNK  # it encodes what every other fault made of the body

    def __call__(self, plan: Plan, context: Context) -> Plan:
        respond = plan.respond
        if respond is None:
            raise ConfigError(f"{self.spec()}: this attempt has no response to encode")
        compressor = zlib.compressobj(wbits=31)
        encoded = [compressor.compress(piece.data) + compressor.flush(zlib.Z_SYNC_FLUSH) for piece in plan.pieces]
        encoded.append(compressor.flush())
        total = sum(map(len, encoded))
        sizes = [len(part) for part in encoded]
        middle = max(1, (len(sizes) - 1) // 2)  # a piece's own block, never the gzip header's
        at = sum(sizes[:middle]) if self.at is None else self.at
        if at >= total:
            raise ConfigError(f"{self.spec()}: the encoded body has {total} bytes; use at=10..{total - 1}")
        data = bytearray(b"".join(encoded))
        data[at] ^= 0xFF
        pieces, position = [], 0
        times = [piece.at for piece in plan.pieces] + [plan.last_at]
        for size, when in zip(map(len, encoded), times, strict=True):
            pieces.append(Piece(bytes(data[position : position + size]), when))
            position += size
        headers = _headers_without(respond.headers, "content-encoding")
        if any(k.lower() == "content-length" for k, _ in headers):
            headers = tuple((k, str(total) if k.lower() == "content-length" else v) for k, v in headers)
        plan.head = [replace(a, headers=(*headers, ("content-encoding", "gzip"))) if a is respond else a
                     for a in plan.head]  # fmt: skip
        plan.pieces = [piece for piece in pieces if piece.data]
        return plan


@dataclass(frozen=True, kw_only=True)
class Bom(Fault):
    """A UTF-8 byte-order mark before the first event, as some proxies and hand-written servers send."""

    name: ClassVar[str] = "bom"

    @property
    def phase(self) -> int:
        return CONTENT

    def __call__(self, plan: Plan, context: Context) -> Plan:
        if not plan.pieces:
            raise ConfigError(f"{self.spec()}: the response has no body to put a byte-order mark before")
        first = plan.pieces[0]
        plan.pieces[0] = replace(first, data=_BOM + first.data)
        return plan


@dataclass(frozen=True, kw_only=True)
class JsonBody(Fault):
    """A 200 whose body is one JSON document, where a stream was asked for (a gateway that ignores
    ``stream: true``, or a cached answer): ``body`` as given, else the provider's whole-message form of
    the recorded stream."""

    name: ClassVar[str] = "json_body"
    body: str | None = None

    @property
    def phase(self) -> int:
        return REPLACE

    def __call__(self, plan: Plan, context: Context) -> Plan:
        respond = plan.respond
        if self.body is not None:
            body = self.body.encode("utf-8")
        else:
            events = plan.framer.events(b"".join(piece.data for piece in plan.pieces))
            body = context.provider.whole_message(events)
        at = respond.at if respond is not None else 0.0
        headers = (("content-type", "application/json"), ("content-length", str(len(body))))
        return Plan([Respond(200, headers, "OK", at)], [Piece(body, at)], [End(at)])


@dataclass(frozen=True, kw_only=True)
class Linger(Fault):
    """Every event arrives, the last one included, but the body never ends and the connection stays
    open: a client that waits for the end of the body meets its read timeout."""

    name: ClassVar[str] = "linger"

    @property
    def phase(self) -> int:
        return CUT

    def __call__(self, plan: Plan, context: Context) -> Plan:
        plan.tail = [Stall(None, plan.last_at)]
        return plan
