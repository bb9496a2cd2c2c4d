"""The vocabulary of what happens on the wire for one request.

A response is an ordered list of small frozen actions: ``Respond`` (status line and headers), then
body chunks (``Send``, or ``Chunks``: a recorded run of them in compact form), perhaps a ``Stall``
(silence), then ``End`` (a clean end of body) or ``Cut`` (the connection broke). A request that
got no response at all is a single ``Cut`` before any ``Respond``. The recorder produces these lists,
cassettes store them, faults transform them and executors (in-process, or over a socket) play them.

Errors are named by their class in the httpcore hierarchy (``RemoteProtocolError``, ``ReadError``,
``ReadTimeout``, ``ConnectError``, ...), which ``httpcore`` and ``httpcore2`` share, so one recording
replays on either stack.
"""

from __future__ import annotations

from collections.abc import Iterable, Iterator
from dataclasses import dataclass

__all__ = ["Action", "Chunks", "Cut", "End", "Respond", "Send", "Stall", "CUT_ERRORS", "describe", "expand"]

#: The httpcore exception classes a Cut may name, with what each means on the wire.
CUT_ERRORS: dict[str, str] = {
    "RemoteProtocolError": "the peer closed the connection (FIN) before the message was complete",
    "ReadError": "the connection was reset (RST) or failed while reading",
    "ReadTimeout": "nothing arrived within the read timeout",
    "WriteError": "the request could not be sent",
    "WriteTimeout": "the request could not be sent within the write timeout",
    "ConnectError": "the connection could not be made (refused, unreachable, DNS)",
    "ConnectTimeout": "the connection could not be made within the connect timeout",
    "PoolTimeout": "no connection became free within the pool timeout",
    "LocalProtocolError": "the client broke the HTTP protocol",
    "ProxyError": "the proxy refused or failed the request",
    "UnsupportedProtocol": "the URL's scheme is not supported",
    # not a network failure: where a recording stops because the app closed the response early and the
    # rest could not be read; a replay that reads past it raises IncompleteRecordingError
    "ClientClosed": "the app closed the response early while recording; the rest was never read",
}


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


@dataclass(frozen=True, slots=True)
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
class End:
    """The body ended cleanly."""

    at: float = 0.0


@dataclass(frozen=True, slots=True)
class Cut:
    """The connection broke: ``error`` is the httpcore exception class name, ``message`` its text.

    ``message=None`` means "what the real stack says here", which depends on sync or async, the
    body's framing and how many bytes arrived; the executor fills it in."""

    error: str
    message: str | None = None
    at: float = 0.0

    def __post_init__(self) -> None:
        if self.error not in CUT_ERRORS:
            valid = ", ".join(sorted(CUT_ERRORS))
            raise ValueError(f"unknown wire error {self.error!r}; valid: {valid}")


Action = Respond | Send | Chunks | Stall | End | Cut


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
            words.append(action.error if not words else f"then {action.error}")
        elif isinstance(action, Stall) and action.seconds is None:
            words.append("no response (silence)" if not words else "then silence")
        elif isinstance(action, End) and words:
            words.append("complete")
    return ", ".join(words)
