"""What ``streamtape lint`` checks: the schema, SSE well-formedness, secrets, readability.

Each problem names its file and interaction and says how to fix it. ``fix`` removes secrets (the
headers that must never be stored, and strings shaped like API keys) and saves atomically.
"""

from __future__ import annotations

import re
from dataclasses import dataclass
from pathlib import Path

from . import _bodytext
from .cassette import Cassette, Interaction, Request, Response
from .errors import CassetteError
from .redact import REDACTED, SECRET_HEADERS
from .tape import recording_failed
from .wire import Cut

__all__ = ["Problem", "fix_secrets", "lint_file"]

_KEY_SHAPES = re.compile(r"sk-ant-[A-Za-z0-9_\-]{10,}|sk-(?:proj-)?[A-Za-z0-9]{20,}|Bearer [A-Za-z0-9._\-]{20,}")


@dataclass(frozen=True)
class Problem:
    path: Path
    where: str  # "interactions[2]" or "" for the file
    kind: str  # schema | sse | secret | readability
    message: str
    fixable: bool = False

    def __str__(self) -> str:
        place = f"{self.where}: " if self.where else ""
        return f"{self.path}: {place}{self.message}"


_RECOUNT = "lines were removed or added since it"


def lint_file(path: Path) -> list[Problem]:
    problems: list[Problem] = []
    try:
        cassette = Cassette.load(path)
    except CassetteError as exc:
        message = str(exc).removeprefix(f"{path}: ")
        if _RECOUNT not in message:
            return [Problem(path, "", "schema", message)]
        # a hand edit that changed the line count (the footer is there): --fix re-counts it, and the
        # rest of the file is still checked
        problems.append(Problem(path, "", "schema", message, fixable=True))
        try:
            cassette = Cassette.loads(path.read_text(encoding="utf-8"), path=path, check_lines=False)
        except CassetteError as inner:
            return [Problem(path, "", "schema", str(inner).removeprefix(f"{path}: "))]
    if cassette.interactions and all(recording_failed(item) for item in cassette.interactions):
        problems.append(Problem(path, "", "recording", (
            "every interaction shows only that the recording failed (no response, or 401/403/407): "
            "replaying it tests nothing of the API. Re-record it with network and key in order"
        )))  # fmt: skip
    for index, item in enumerate(cassette.interactions):
        where = f"interactions[{index}]"
        problems += [Problem(path, where, "secret", m, True) for m in _secrets(item)]
        problems += [Problem(path, where, "sse", m) for m in _sse(item)]
        problems += [Problem(path, where, "readability", m) for m in _readability(item)]
        if item.response is not None and isinstance(item.response.end, Cut) and item.response.end.error == "ClientClosed":
            problems.append(Problem(path, where, "recording", (
                "the recording stops where the app closed the response early and the rest could not be read; "
                "a replay that reads further fails with IncompleteRecordingError. Re-record it"
            )))  # fmt: skip
    return problems



def _secrets(item: Interaction) -> list[str]:
    found = []
    for side, headers in (
        ("request", item.request.headers),
        ("response", item.response.headers if item.response else ()),
    ):
        for name, _ in headers:
            if name.lower() in SECRET_HEADERS:
                found.append(f"{side} header {name!r} must not be stored; run `streamtape lint --fix` to remove it")
    texts = [item.request.url, item.request.body.decode("utf-8", "replace"), *(v for _, v in item.request.headers)]
    if any(_KEY_SHAPES.search(text) for text in texts):
        found.append("the request holds something shaped like an API key; run `streamtape lint --fix` to redact it")
    return found


def _sse(item: Interaction) -> list[str]:
    response = item.response
    if response is None or "event-stream" not in (response.header("content-type") or ""):
        return []
    events = response.events
    names = [event.event for event in events]
    problems: list[str] = []
    if not names:
        return ["an event-stream response with no complete SSE event"]
    if names[0] not in ("message_start", "error"):
        problems.append(f"the first event is {names[0]!r}; an Anthropic stream starts with message_start")
    for number, event in enumerate(events, 1):
        data = event.json
        if data is None:
            problems.append(f"event {number} ({event.event}): its data is not JSON")
        elif isinstance(data, dict) and data.get("type") not in (event.event, None):
            problems.append(f"event {number}: named {event.event!r} but its data says type {data.get('type')!r}")
    problems += _block_indices(events)
    cut = isinstance(response.end, Cut)
    if names[-1] != "message_stop" and not cut and "error" not in names:
        problems.append(
            f"the stream ends with {names[-1]!r}, not message_stop, and the recording does not say it broke"
        )
    return problems


def _block_indices(events: list) -> list[str]:
    problems, open_blocks, started = [], set(), -1
    for number, event in enumerate(events, 1):
        data = event.json if isinstance(event.json, dict) else {}
        index = data.get("index")
        if event.event == "content_block_start":
            if index != started + 1:
                problems.append(f"event {number}: content block {index} starts after block {started}")
            started = index if isinstance(index, int) else started
            open_blocks.add(index)
        elif event.event in ("content_block_delta", "content_block_stop") and index not in open_blocks:
            problems.append(f"event {number}: {event.event} for block {index}, which is not open")
        if event.event == "content_block_stop":
            open_blocks.discard(index)
    return problems


def _readability(item: Interaction) -> list[str]:
    response = item.response
    if response is None or not response.body or _bodytext.is_plain_text(response.body) is not None:
        return []
    return ["the response body is stored escaped (CR, control bytes or invalid UTF-8); diffs of it are harder to read"]


def fix_secrets(path: Path) -> int:
    """Remove secret headers and key-shaped strings, and re-count a hand-edited file's lines; save
    atomically. Returns how many things were fixed."""
    try:
        cassette = Cassette.load(path)
        recount = 0
    except CassetteError as exc:
        if _RECOUNT not in str(exc):
            raise
        cassette = Cassette.loads(path.read_text(encoding="utf-8"), path=path, check_lines=False)
        recount = 1
    fixed = recount
    items = []
    for item in cassette.interactions:
        request, count = _clean_request(item.request)
        response = item.response
        if response is not None:
            kept = tuple((k, v) for k, v in response.headers if k.lower() not in SECRET_HEADERS)
            count += len(response.headers) - len(kept)
            response = Response(response.status, kept, response.body, response.timing, response.reason,
                                response.headers_at, response.end)  # fmt: skip
        fixed += count
        items.append(Interaction(request, response, item.error))
    if fixed:
        Cassette(items, path=path).save(path)
    return fixed


def _clean_request(request: Request) -> tuple[Request, int]:
    headers = tuple((k, v) for k, v in request.headers if k.lower() not in SECRET_HEADERS)
    count = len(request.headers) - len(headers)
    url, n_url = _KEY_SHAPES.subn(REDACTED, request.url)
    body_text = request.body.decode("utf-8", "surrogateescape")
    body, n_body = _KEY_SHAPES.subn(REDACTED, body_text)
    headers2 = []
    for name, value in headers:
        value, n = _KEY_SHAPES.subn(REDACTED, value)
        count += n
        headers2.append((name, value))
    cleaned = Request(request.method, url, tuple(headers2), body.encode("utf-8", "surrogateescape"))
    return cleaned, count + n_url + n_body
