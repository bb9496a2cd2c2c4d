"""Small cassettes for tests, built in one place: a request to a URL answered 200 with a body.

The default body is the real ``text_basic`` transcript (7 SSE events, tests/data/sse/SOURCES.md),
sent as ``text/event-stream`` in one chunk; the request carries the JSON body ``{"a":1}``, which is
what an ``httpx2.post(url, json={"a": 1})`` sends. Every part can be changed by keyword::

    save(tmp_path / "c.yaml", "http://api.test/v1/a", "http://api.test/v1/b")   # two interactions
    cassette(body=b"data: x\\n\\n", end=Cut("RemoteProtocolError", "peer closed", 0.5))
    interaction("http://api.test/v1/who", method="GET", request_body=b"", headers=(), body=b"from a")

Tests that need a recording with real chunking and timing record one (tests/support/wire_server)
or load a starter (``streamtape.starter(...)``) instead.
"""

from __future__ import annotations

from pathlib import Path
from typing import Any

from streamtape import Cassette, Interaction, Request, Response
from streamtape.wire import Cut, End
from tests.support.wire_server import DATA_DIR

__all__ = ["MESSAGES_URL", "SSE", "TEXT_BASIC", "cassette", "interaction", "save"]

TEXT_BASIC: bytes = (DATA_DIR / "text_basic.sse").read_bytes()
"""A real Anthropic stream: message_start, content_block_start, ping, one text delta, the three stops."""

MESSAGES_URL = "https://api.anthropic.com/v1/messages"
SSE: tuple[tuple[str, str], ...] = (("content-type", "text/event-stream"),)

Headers = tuple[tuple[str, str], ...]


def interaction(
    url: str = MESSAGES_URL,
    body: bytes = TEXT_BASIC,
    *,
    method: str = "POST",
    request_body: bytes = b'{"a":1}',
    request_headers: Headers = (),
    status: int = 200,
    headers: Headers = SSE,
    at: float = 0.1,
    timing: tuple[tuple[float, int], ...] | None = None,
    reason: str = "",
    headers_at: float = 0.0,
    end: End | Cut | None = None,
) -> Interaction:
    """One request to ``url``, answered ``status`` with ``body`` arriving in one chunk ``at`` seconds
    after the request (no chunk for an empty body) or as ``timing`` says ((offset, size) per chunk),
    and ending with ``end`` (default: cleanly)."""
    if timing is None:
        timing = ((at, len(body)),) if body else ()
    ending = {} if end is None else {"end": end}
    response = Response(status, headers, body, timing, reason, headers_at, **ending)
    return Interaction(Request(method, url, request_headers, request_body), response)


def cassette(*urls: str, body: bytes = TEXT_BASIC, **options: Any) -> Cassette:
    """One interaction per URL (default: one to the Messages API), each as ``interaction()`` builds it."""
    return Cassette([interaction(url, body, **options) for url in urls or (MESSAGES_URL,)])


def save(path: Path, *urls: str, body: bytes = TEXT_BASIC, **options: Any) -> Path:
    """``cassette(*urls, ...)`` written to ``path`` (parent directories made); returns the path."""
    return cassette(*urls, body=body, **options).save(path)
