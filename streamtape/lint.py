"""What ``streamtape lint`` checks: the schema, stream well-formedness (each response's framer finds
its events, its API's provider checks their grammar), secrets, readability.

Each problem names its file and interaction and says how to fix it. ``fix_secrets`` removes secrets
(credential headers and query parameters, strings shaped like provider keys, the environment's API
keys, anywhere in requests, responses and error texts) with the recorder's own ``Redactor``, and
saves atomically.
"""

from __future__ import annotations

from dataclasses import dataclass
from pathlib import Path

from . import _bodytext, redact
from .cassette import Cassette, Interaction
from .errors import CassetteError
from .framing import stream_framer
from .providers import provider_for
from .redact import Redactor
from .tape import recording_failed
from .wire import Cut

__all__ = ["Problem", "fix_secrets", "lint_file"]


@dataclass(frozen=True)
class Problem:
    path: Path
    where: str  # "interactions[2]" or "" for the file
    kind: str  # schema | sse | secret | readability
    message: str
    fixable: bool = False
    #: False for what is only said, not counted as a problem (interactions of unknown age)
    counts: bool = True

    def __str__(self) -> str:
        place = f"{self.where}: " if self.where else ""
        return f"{self.path}: {place}{self.message}"


_RECOUNT = "lines were removed or added since it"
_RECHUNK = "chunk sizes add up to"


def _load_hand_edited(path: Path) -> tuple[Cassette, list[str]]:
    """The cassette, forgiving what a hand edit breaks and ``--fix`` repairs: the line count, and
    chunk sizes that no longer add up to an edited body. Returns what had to be forgiven."""
    try:
        return Cassette.load(path), []
    except CassetteError as exc:
        if _RECOUNT not in str(exc) and _RECHUNK not in str(exc):
            raise
    text = path.read_text(encoding="utf-8")
    repaired: list[str] = []
    cassette = Cassette.loads(text, path=path, check_lines=False, repair=repaired)
    try:
        Cassette.loads(text, path=path, repair=[])
    except CassetteError as exc:  # the line count is off too
        repaired.insert(0, str(exc).removeprefix(f"{path}: "))
    return cassette, repaired


def lint_file(path: Path, *, max_age: str | None = None) -> list[Problem]:
    """Every problem of the cassette at ``path``; with ``max_age`` (``"30d"``), also each interaction
    recorded longer ago than that, and (not counted as a problem) those of unknown age."""
    problems: list[Problem] = []
    try:
        cassette, repaired = _load_hand_edited(path)
    except CassetteError as exc:
        return [Problem(path, "", "schema", str(exc).removeprefix(f"{path}: "))]
    # a hand edit that changed the line count or a body's length: --fix re-counts and re-chunks it, and
    # the rest of the file is still checked
    problems += [Problem(path, "", "schema", f"{what}; `streamtape lint --fix` re-derives it, keeping the "
                         "recorded timing", fixable=True) for what in repaired]  # fmt: skip
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
        if (
            item.response is not None
            and isinstance(item.response.end, Cut)
            and item.response.end.error == "ClientClosed"
        ):
            problems.append(Problem(path, where, "recording", (
                "the recording stops where the app closed the response early and the rest could not be read; "
                "a replay that reads further fails with IncompleteRecordingError. Re-record it"
            )))  # fmt: skip
    if max_age is not None:
        problems += _age(path, cassette.interactions, max_age)
    return problems


def _age(path: Path, items: list[Interaction], max_age: str) -> list[Problem]:
    """One line per interaction older than ``max_age``; one line for those of unknown age (said, not
    counted: a cassette recorded before streamtape dated recordings still loads)."""
    from .age import describe_age, indices, parse_age, staleness

    found = staleness(items, parse_age(max_age, "--max-age"))
    problems = []
    for index in found.stale:
        recorded = items[index].recorded
        at = recorded.at if recorded is not None else "?"
        problems.append(Problem(path, f"interactions[{index}]", "age", (
            f"recorded {describe_age(found.ages[index])} ago ({at}), older than --max-age {max_age}; re-record it "
            f"(pytest --tape-record-mode=rewrite-stale --tape-max-age={max_age})"
        )))  # fmt: skip
    if found.undated:
        problems.append(Problem(path, "", "age", (
            f"{len(found.undated)} of {len(items)} interaction(s) ({indices(found.undated)}) have no 'recorded' time "
            "(recorded before streamtape dated recordings, or written by hand): their age is unknown; re-record "
            "them to date them"
        ), counts=False))  # fmt: skip
    return problems


def _secrets(item: Interaction) -> list[str]:
    """Everything the redactor would have removed, and anything shaped like a provider's key."""
    found = redact.scan(item, Redactor())
    return [f"{what}; run `streamtape lint --fix` to remove it" for what in dict.fromkeys(what for what, _ in found)]


def _sse(item: Interaction) -> list[str]:
    """A response that says it is a stream (its content type has a framer): it has complete events,
    and they follow the grammar of the API that sent them (its provider's rules)."""
    response = item.response
    framer = stream_framer(response.headers) if response is not None else None
    if response is None or framer is None:
        return []
    events = response.events
    if not events:
        return [f"{_a(framer.content_types[0])} response with no complete {framer.unit}"]
    request = item.request
    provider = provider_for(request.method, request.url, request.headers)
    if provider.framing != framer.name:
        return []  # its API streams another format: its grammar does not apply
    return provider.lint(events, broke=isinstance(response.end, Cut))


def _a(content_type: str) -> str:
    """``an event-stream``, ``an x-ndjson``: what the stream is called, after its media type."""
    kind = content_type.rpartition("/")[2]
    return ("an " if kind[:1] in "aeiou" or kind.startswith("x-") else "a ") + kind  # "x-" is said "ex"


def _readability(item: Interaction) -> list[str]:
    response = item.response
    if response is None or not response.body or _bodytext.is_plain_text(response.body) is not None:
        return []
    framer = stream_framer(response.headers)
    if framer is not None and framer.name == "eventstream":
        return []  # binary, but stored one decoded frame per entry (streamtape._frametext)
    body = response.body
    if b"\r\n" in body and _bodytext.is_plain_text(body.replace(b"\r\n", b"\n")) is not None \
            and b"\r" not in body.replace(b"\r\n", b""):
        return []  # CRLF line ends (Gemini's streams): each line reads as itself, ending in an escaped \r
    return ["the response body is stored escaped (CR, control bytes or invalid UTF-8); diffs of it are harder to read"]


def fix_secrets(path: Path) -> int:
    """Remove every secret ``lint`` finds (through the same redactor the recorder uses), and re-count
    a hand-edited file's lines; save atomically. Returns how many things were fixed."""
    cassette, repaired = _load_hand_edited(path)
    fixed = len(repaired)
    items = []
    for item in cassette.interactions:
        redactor = Redactor()
        found = redact.scan(item, redactor)
        redactor.learn(*(value for _, value in found if value))
        cleaned = redactor.interaction(item)
        fixed += len(dict.fromkeys(what for what, _ in found)) if cleaned != item else 0
        items.append(cleaned)
    if fixed:
        Cassette(items, path=path).save(path)
    return fixed
