"""What a provider is: one model API's wire formats, as a base class with the questions streamtape asks
(``streamtape.providers`` keeps the registry and chooses one per request)."""

from __future__ import annotations

import email.utils
import re
import time
from collections.abc import Callable, Sequence
from typing import TYPE_CHECKING, Any, ClassVar

from ..errors import ConfigError

if TYPE_CHECKING:
    import random

    from ..sse import Event

__all__ = ["PLACEHOLDER_KEY", "Headers", "Pieces", "Provider", "http_date", "merged_headers", "number_text",
           "raw_body", "retry_headers"]

Headers = tuple[tuple[str, str], ...]

#: The value a replay-only tape gives an unset key variable: SDKs refuse to send without a key, and
#: replay needs none.
PLACEHOLDER_KEY = "streamtape-replay-placeholder-key"


class Provider:
    """One model API's wire formats. Subclass it, set the class attributes, implement what your API
    has, and ``register()`` an instance; a method left alone says it is not known for this API."""

    #: a short name: ``anthropic``
    name: ClassVar[str] = ""
    #: its model API calls, a regular expression searched in ``"METHOD URL"``; "" if it has none
    requests: ClassVar[str] = ""
    #: the environment variables its SDKs read the key from
    key_variables: ClassVar[tuple[str, ...]] = ()
    #: the value a replay-only tape puts in them
    placeholder_key: ClassVar[str] = PLACEHOLDER_KEY
    #: the framer (``streamtape.framing``) its streams use: ``lint`` applies its grammar to those only
    framing: ClassVar[str] = "sse"
    #: the status the API answers "overloaded" with (the ``overloaded`` fault's): Anthropic's 529 unless
    #: a provider says otherwise (OpenAI, Gemini and Bedrock say 503)
    overloaded_status: ClassVar[int] = 529

    def claims(self, method: str, url: str, headers: Sequence[tuple[str, str]] = ()) -> bool:
        """Whether this provider's formats answer this request (default: it is one of ``requests``)."""
        return bool(self.requests) and re.search(self.requests, f"{method} {url}") is not None

    # --- what faults put on the wire --------------------------------------------------------------

    def http_error(
        self,
        status: int,
        *,
        number: int = 1,
        error_type: str | None = None,
        message: str | None = None,
        retry_after: float | None = None,
        retry_after_ms: float | None = None,
        should_retry: bool | None = None,
        request_id: str | bool | None = None,
        body: str | bytes | None = None,
        content_type: str | None = None,
        headers: Sequence[tuple[str, str]] = (),
        retry_after_date: float | None = None,
    ) -> tuple[Headers, bytes]:
        """The headers and body of the API's error response with ``status``, for the tape's
        ``number``-th request (request ids differ per request); retry headers only when given.

        ``request_id``: ``None`` the API's usual (a generated one, numbered by ``number``; none with a
        raw ``body``), ``True`` a generated one, ``False`` none, a string that one. ``body``: the
        whole body, sent as given instead of the API's (``error_type`` and ``message`` then unused),
        with ``content_type`` (default the API's); the content length is the body's.
        ``retry_after_date``: a ``retry-after`` HTTP date that many seconds from now. ``headers``:
        added last, each replacing the defaults of its name. Faults pass the options added after
        ``should_retry`` only when they are given, so a provider written before them still works."""
        raise self._unknown("error responses")

    def error_event(
        self, error_type: str | None = None, message: str | None = None, *, data: str | None = None,
        event: str | None = None,
    ) -> bytes:  # fmt: skip
        """The bytes of an error reported inside a stream (``None``: the API's usual one); ``data``:
        the event's data text instead of the API's, sent as given; ``event``: the event's name
        instead of the API's. Faults pass ``data`` and ``event`` only when they are given."""
        raise self._unknown("in-stream errors")

    def fit_event(self, event: bytes, before: Sequence[Event]) -> bytes:
        """An event a fault inserts, fitted to the stream so far (``before``: the events sent before it),
        for an API whose events carry the stream's state (OpenAI Responses' ``sequence_number``).
        Default: as it is."""
        return event

    def keep_alive(self) -> bytes:
        """The bytes of one keep-alive event, as the API sends while the model thinks."""
        raise self._unknown("keep-alive events")

    def whole_message(self, events: Sequence[Event]) -> bytes:
        """The JSON body the API sends for the same answer when no stream is asked for (what a gateway
        that ignores ``stream: true`` returns), built from a recorded stream's events."""
        raise self._unknown("whole-message bodies")

    def harness_error(
        self, status: int, error_type: str | None, message: str, *, retry: bool = False, close: bool = False
    ) -> tuple[Headers, bytes]:
        """An error in the API's shape that streamtape itself answers (``serve`` refusing a request,
        or finding no recorded match), so the app's SDK reports it as an API error with ``message``;
        ``retry`` says whether SDKs should retry it, ``close`` that the connection then closes."""
        raise self._unknown("error responses")

    # --- what lint and inspect read ---------------------------------------------------------------

    def lint(self, events: Sequence[Event], *, broke: bool) -> list[str]:
        """Problems in a recorded stream against the API's grammar (``broke``: the recording says
        the connection broke, so a missing end is expected). Default: none known."""
        return []

    def tokens(self, events: Sequence[Event]) -> dict[str, int]:
        """Token counts the stream reports (``input_tokens``...). Default: none known."""
        return {}

    def tool_calls(self, events: Sequence[Event]) -> list[str]:
        """The tool calls the stream asks for, one line each (``get_weather {"city": "Paris"}``).
        Default: none known."""
        return []

    def stop_reason(self, events: Sequence[Event]) -> str | None:
        """Why the model stopped, as the stream says. Default: not known."""
        return None

    def ending(self, events: Sequence[Event]) -> str | None:
        """How a stream that was not cut ended, when not plainly: ``in-stream error: ...``, or an
        early end. ``None``: clean."""
        return None

    # --- what synth writes ------------------------------------------------------------------------

    def stream_events(
        self,
        *,
        text: str | None,
        thinking: str | None,
        tools: list[tuple[str, Any]] | None,
        model: str,
        prompt: str,
        seed: int,
        rng: random.Random,
        pieces: Callable[[str, random.Random], list[str]],
        tokens: Callable[[str], int],
    ) -> tuple[list[bytes], tuple[str, str, Headers, bytes], Headers]:
        """A streamed response nobody recorded (``streamtape synth``), framed as the API frames one:
        its events' bytes, the request asking for it (method, URL, headers, body), and the response
        headers. ``pieces`` cuts text into deltas and ``tokens`` counts them, drawing from ``rng``."""
        raise self._unknown("streams (synth cannot write one)")

    def __repr__(self) -> str:
        return f"<provider {self.name}>"

    def _unknown(self, what: str) -> ConfigError:
        return ConfigError(f"provider {self.name!r} does not know its API's {what}; streamtape cannot fake them")


# --- what every provider's error responses are made of ------------------------------------------------


def raw_body(body: str | bytes) -> bytes:
    """A body given as text or bytes (a proxy's page a fault sends instead of the API's JSON), as bytes."""
    return body.encode() if isinstance(body, str) else bytes(body)


def http_date(seconds: float, now: float | None = None) -> str:
    """An HTTP date (RFC 9110 IMF-fixdate) ``seconds`` after ``now`` (default: this moment), to the
    nearest whole second, as a ``Retry-After`` date is written."""
    return email.utils.formatdate(round((time.time() if now is None else now) + seconds), usegmt=True)


def number_text(value: float) -> str:
    """A header's number: ``2`` for 2.0, ``0.5`` as it is."""
    return str(int(value)) if float(value).is_integer() else repr(float(value))


def retry_headers(
    *, retry_after: float | None = None, retry_after_date: float | None = None, retry_after_ms: float | None = None,
    should_retry: bool | None = None, retry_after_name: str = "retry-after",
) -> list[tuple[str, str]]:  # fmt: skip
    """The retry headers a fault asked for, in the order SDKs read them: ``retry-after`` in seconds, or as
    an HTTP date that many seconds ahead, ``retry-after-ms``, ``x-should-retry``. ``retry_after_name``:
    how the API spells ``retry-after`` (AWS: ``Retry-After``)."""
    out: list[tuple[str, str]] = []
    if retry_after is not None:
        out.append((retry_after_name, number_text(retry_after)))
    if retry_after_date is not None:
        out.append((retry_after_name, http_date(retry_after_date)))
    if retry_after_ms is not None:
        out.append(("retry-after-ms", number_text(retry_after_ms)))
    if should_retry is not None:
        out.append(("x-should-retry", "true" if should_retry else "false"))
    return out


def merged_headers(defaults: Sequence[tuple[str, str]], given: Sequence[tuple[str, str]]) -> Headers:
    """``defaults`` with ``given`` in: a given name replaces every default of that name, where the
    first of them stood; names no default has are added at the end, in the order given."""
    if not given:
        return tuple(defaults)
    names = {name.lower() for name, _ in given}
    out: list[tuple[str, str]] = []
    placed: set[str] = set()
    for name, value in defaults:
        key = name.lower()
        if key not in names:
            out.append((name, value))
        elif key not in placed:
            out += [pair for pair in given if pair[0].lower() == key]
            placed.add(key)
    out += [pair for pair in given if pair[0].lower() not in placed]
    return tuple(out)


class Pieces:
    """Text a stream builds from many deltas (a message's text, a tool call's arguments), joined once at
    the end: ``s = s + delta`` copies all of ``s`` for every delta, quadratic in the text (CPython's
    in-place concatenation never applies to a value held in a dict or a list).

    ``add(container, key, piece)`` stands for ``container[key] = (container[key] or "") + piece``; the key
    is placed at once (a dict keeps its order) and holds the text so far only after ``join()``."""

    __slots__ = ("_open",)

    def __init__(self) -> None:
        self._open: dict[tuple[int, Any], tuple[Any, Any, list[str]]] = {}

    def add(self, container: Any, key: Any, piece: str) -> None:
        slot = self._open.get((id(container), key))  # the container is kept in its slot: its id stays its own
        if slot is None:
            first = (container.get(key) if isinstance(container, dict) else container[key]) or ""
            slot = self._open[(id(container), key)] = (container, key, [first])
            container[key] = first
        slot[2].append(piece)

    def join(self) -> None:
        """Write every text built so far into its place."""
        for container, key, parts in self._open.values():
            container[key] = "".join(parts)
        self._open.clear()
