"""The vocabulary of what happens on the wire for one request.

A response is an ordered list of small frozen actions: ``Respond`` (status line and headers), then
body chunks (``Send``, or ``Chunks``: a recorded run of them in compact form), perhaps a ``Stall``
(silence), then ``End`` (a clean end of body) or ``Cut`` (the connection broke). A request that
got no response at all is a single ``Cut`` before any ``Respond``. The recorder produces these lists,
cassettes store them, faults transform them and both executors play them: the in-process one turns a
cut into the exception an HTTP stack raises (``streamtape.stacks``), the socket one (``streamtape
serve``) into what a socket does (``streamtape.server``).

A cut names what happened on the connection, not any library's exception: ``CUTS`` is the one table of
cut kinds, with what each one is on a socket and what a client meets before and after the response
headers. Cassette format v1 wrote httpcore's class names (``RemoteProtocolError``...); they are the
kinds' ``v1`` names, still written to files and read back, and accepted wherever a kind is.
"""

from __future__ import annotations

from collections.abc import Iterable, Iterator
from dataclasses import dataclass
from typing import Any

__all__ = ["Action", "CUTS", "CUT_ERRORS", "Chunks", "Cut", "CutKind", "End", "Raw", "Respond", "Send", "Stall", "cut_kind",
           "describe", "expand"]  # fmt: skip


@dataclass(frozen=True)
class CutKind:
    """One way a connection can break, and what it is on each side of the wire."""

    name: str
    #: the name cassette format v1 gives it (httpcore's exception class)
    v1: str
    #: what a socket does for it: ``fin`` (the server closes), ``rst`` (the server resets), ``silence``
    #: (nothing arrives; the client's own timeout decides), ``refuse`` (no listener: the connection is
    #: refused), or ``local`` (the client fails without the server doing anything: a socket cannot
    #: produce it, so ``serve`` closes the connection instead and says so in its log)
    socket: str
    #: what a client meets when it happens before the response headers
    before_headers: str
    #: ... and after them, mid-body
    mid_body: str


#: Every cut kind, by its neutral name. Executors consult this table, nothing else.
CUTS: dict[str, CutKind] = {
    kind.name: kind
    for kind in (
        CutKind("fin", "RemoteProtocolError", "fin",
                "the server closed the connection without answering",
                "the server closed the connection before the body was complete (a close-delimited body just ends)"),
        CutKind("reset", "ReadError", "rst",
                "the connection was reset before any answer", "the connection was reset while the body was read"),
        CutKind("timeout", "ReadTimeout", "silence",
                "no answer within the read timeout", "nothing more within the read timeout"),
        CutKind("refused", "ConnectError", "refuse",
                "the connection could not be made (refused, unreachable, DNS)", "(not possible after headers)"),
        CutKind("connect_timeout", "ConnectTimeout", "silence",
                "the connection could not be made within the connect timeout", "(not possible after headers)"),
        CutKind("write_error", "WriteError", "rst",
                "the request could not be sent", "(not possible after headers)"),
        CutKind("write_timeout", "WriteTimeout", "silence",
                "the request could not be sent within the write timeout", "(not possible after headers)"),
        CutKind("pool_timeout", "PoolTimeout", "local",
                "no connection became free within the pool timeout", "(not possible after headers)"),
        CutKind("local_protocol", "LocalProtocolError", "local",
                "the client broke the HTTP protocol", "the client broke the HTTP protocol"),
        CutKind("proxy", "ProxyError", "local",
                "the proxy refused or failed the request", "(not possible after headers)"),
        CutKind("unsupported_protocol", "UnsupportedProtocol", "local",
                "the URL's scheme is not supported", "(not possible after headers)"),
        # not a network failure: where a recording stops because the app closed the response early and
        # the rest could not be read; a replay that reads past it raises IncompleteRecordingError
        CutKind("client_closed", "ClientClosed", "local",
                "(not possible before headers)",
                "the app closed the response early while recording; the rest was never read"),
    )
}  # fmt: skip

_BY_NAME: dict[str, CutKind] = {**CUTS, **{kind.v1: kind for kind in CUTS.values()}}

#: The cassette v1 names, with what each means (kept for readers of format v1).
CUT_ERRORS: dict[str, str] = {kind.v1: kind.mid_body if kind.v1 == "ClientClosed" else kind.before_headers
                              for kind in CUTS.values()}  # fmt: skip


def cut_kind(name: str) -> CutKind:
    """The kind ``name`` names: a neutral name (``fin``) or its cassette v1 name (``RemoteProtocolError``)."""
    try:
        return _BY_NAME[name]
    except (KeyError, TypeError):
        valid = ", ".join(sorted(CUTS))
        raise ValueError(f"unknown cut kind {name!r}; valid: {valid} (or their v1 names)") from None


@dataclass(frozen=True, slots=True)
class Respond:
    """The status line and headers arrived, ``at`` seconds after the request was sent."""

    status: int
    headers: tuple[tuple[str, str], ...]
    reason: str = ""
    at: float = 0.0


@dataclass(frozen=True, slots=True)
class Send:
    """A chunk of body bytes arrived, ``at`` seconds after the request was sent."""

    data: bytes
    at: float = 0.0


@dataclass(frozen=True, slots=True, weakref_slot=True)
class Chunks:
    """A run of chunks as recorded: ``data`` arrived in pieces of the ``timing`` sizes, each at its
    offset. The same thing as one ``Send`` per piece, kept compact so a 10,000-chunk replay does not
    build 10,000 objects; ``sends()`` expands it for anything that edits single chunks."""

    data: bytes
    timing: tuple[tuple[float, int], ...]
    #: the longest silence inside the run (between consecutive chunks), for read-timeout checks
    longest_gap: float = 0.0

    @property
    def at(self) -> float:
        return self.timing[0][0] if self.timing else 0.0

    def pieces(self) -> Iterator[tuple[bytes, float]]:
        """``(bytes, at)`` per chunk, sliced lazily."""
        data, pos = self.data, 0
        for at, size in self.timing:
            yield data[pos : pos + size], at
            pos += size

    def sends(self) -> list[Send]:
        return [Send(piece, at) for piece, at in self.pieces()]


@dataclass(frozen=True, slots=True)
class Stall:
    """Nothing arrives from ``at`` on: for ``seconds``, or (``None``) ever again.

    Silence shorter than the request's read timeout only delays what follows; silence as long as the
    read timeout raises the stack's ``ReadTimeout`` when that timeout expires."""

    seconds: float | None = None
    at: float = 0.0


@dataclass(frozen=True, slots=True)
class Raw:
    """Bytes that are not HTTP arrived where HTTP was expected (instead of the status line, or instead of
    a chunk-size line), and then the connection ended: what a broken server or proxy sends. Only faults
    make it; the client's parser meets it and fails as its stack does."""

    data: bytes
    at: float = 0.0


@dataclass(frozen=True, slots=True)
class End:
    """The body ended cleanly."""

    at: float = 0.0


@dataclass(frozen=True, slots=True, init=False)
class Cut:
    """The connection broke: ``kind`` names how (a key of ``CUTS``), ``message`` is the text the client's
    stack gave when it was recorded.

    ``message=None`` means "what the real stack says here", which depends on the stack, sync or async,
    the body's framing and how many bytes arrived; the executor fills it in."""

    kind: str
    message: str | None
    at: float

    def __init__(self, kind: str | None = None, message: str | None = None, at: float = 0.0, *,
                 error: str | None = None) -> None:  # fmt: skip
        name = kind if kind is not None else error
        if name is None:
            raise ValueError("Cut needs a kind, e.g. Cut('fin')")
        object.__setattr__(self, "kind", cut_kind(name).name)
        object.__setattr__(self, "message", message)
        object.__setattr__(self, "at", at)

    @property
    def error(self) -> str:
        """The cassette v1 name of the kind (``RemoteProtocolError`` for ``fin``)."""
        return CUTS[self.kind].v1

    @property
    def means(self) -> CutKind:
        return CUTS[self.kind]

    def __replace__(self, **changes: Any) -> Cut:
        return Cut(changes.get("kind", self.kind), changes.get("message", self.message), changes.get("at", self.at))


Action = Respond | Send | Chunks | Stall | End | Cut | Raw


def expand(actions: Iterable[Action]) -> Iterator[Action]:
    """The same actions with every ``Chunks`` run spelled out as ``Send``s, lazily."""
    for action in actions:
        if isinstance(action, Chunks):
            yield from (Send(piece, at) for piece, at in action.pieces())
        else:
            yield action


def describe(actions: Iterable[Action]) -> str:
    """What these actions do to a client, in a few words: ``200, then RemoteProtocolError``."""
    words: list[str] = []
    for action in actions:
        if isinstance(action, Respond):
            words.append(str(action.status))
        elif isinstance(action, Cut):
            words.append(action.error if not words else f"then {action.error}")  # the names users know
        elif isinstance(action, Raw):
            words.append("malformed HTTP" if not words else "then malformed HTTP")
        elif isinstance(action, Stall) and action.seconds is None:
            words.append("no response (silence)" if not words else "then silence")
        elif isinstance(action, End) and words:
            words.append("complete")
    return ", ".join(words)
