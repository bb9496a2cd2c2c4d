"""Cassettes: recorded interactions and their YAML form (format v2, see docs/cassette-format.md).

A cassette is a list of interactions; each holds the request and what happened on the wire in
answer: status and headers, the body byte-exact, when each chunk arrived, and how the body ended.
Loading uses libyaml's safe loader only; saving writes literal blocks by hand, loads the result back
to prove every body survives, and replaces the file atomically.

A damaged file never loads as a valid one. Format v2 ends with ``lines: N``, the file's own line
count, and requires ``chunks`` and ``end`` in every response: a file cut short loses the footer (or
its count no longer matches), and a run of deleted lines changes the count, so either is rejected
with the file and the line; an in-place hand edit keeps the count (a body edit that changes its
length is caught by ``chunks``; ``streamtape lint --fix`` re-derives both). Format v1 files (no
footer, ``chunks`` optional) still load.
"""

from __future__ import annotations

import json
import os
import re
import tempfile
import uuid
from collections.abc import Iterator, Sequence
from dataclasses import dataclass, field
from functools import cached_property
from operator import itemgetter, sub
from pathlib import Path
from typing import Any

import yaml

from . import _bodytext
from .errors import CassetteError, CassetteFormatError, CassetteNotFoundError, ConfigError
from .redact import SECRET_HEADERS
from .sse import Event, parse_events
from .wire import CUT_ERRORS, Action, Chunks, Cut, End, Respond, Send

__all__ = ["Cassette", "Interaction", "Request", "Response", "FORMAT_VERSION"]

FORMAT_VERSION = 2
_READABLE_VERSIONS = (1, 2)
_Loader = getattr(yaml, "CSafeLoader", yaml.SafeLoader)
_Dumper = getattr(yaml, "CSafeDumper", yaml.SafeDumper)
Headers = tuple[tuple[str, str], ...]


def _json_or_none(body: bytes) -> Any:
    if not body or body.lstrip()[:1] not in (b"{", b"["):
        return None
    try:
        return json.loads(body)
    except ValueError:
        return None


class _Message:
    """What requests and responses share: headers looked up by name, and the body as JSON."""

    headers: Headers
    body: bytes

    @cached_property
    def json(self) -> Any:
        """The body parsed as JSON, or ``None``."""
        return _json_or_none(self.body)

    def header(self, name: str) -> str | None:
        """The first value of header ``name`` (any case), or ``None``."""
        name = name.lower()
        return next((value for key, value in self.headers if key.lower() == name), None)


@dataclass(frozen=True)
class Request(_Message):
    """What the app sent (secrets already removed)."""

    method: str
    url: str
    headers: Headers = ()
    body: bytes = b""


@dataclass(frozen=True)
class Response(_Message):
    """What came back: status, headers, body bytes, chunk timing, and how the body ended."""

    status: int
    headers: Headers = ()
    body: bytes = b""
    #: ``(arrival offset in seconds after the request, size in bytes)`` per chunk; sizes sum to len(body)
    timing: tuple[tuple[float, int], ...] = ()
    reason: str = ""
    headers_at: float = 0.0
    end: End | Cut = field(default_factory=End)

    @property
    def chunks(self) -> tuple[Send, ...]:
        return tuple(Chunks(self.body, self.timing).sends())

    @cached_property
    def events(self) -> list[Event]:
        """The body's complete SSE events (empty for a non-stream body)."""
        return parse_events(self.body)

    @cached_property
    def longest_gap(self) -> float:
        """The longest silence between consecutive chunks, in seconds."""
        ats = list(map(itemgetter(0), self.timing))
        return max(map(sub, ats[1:], ats[:-1]), default=0.0)


@dataclass(frozen=True)
class Interaction:
    """One request and what happened on the wire in answer: a response, or an error before any."""

    request: Request
    response: Response | None = None
    error: Cut | None = None

    def __post_init__(self) -> None:
        if (self.response is None) == (self.error is None):
            raise ValueError("an interaction has either a response or an error before headers")

    @property
    def events(self) -> list[Event]:
        return self.response.events if self.response else []

    @property
    def body(self) -> bytes:
        return self.response.body if self.response else b""

    @property
    def chunks(self) -> tuple[Send, ...]:
        return self.response.chunks if self.response else ()

    def actions(self) -> list[Action]:
        """The wire actions that replay this interaction."""
        if self.response is None:
            assert self.error is not None
            return [self.error]
        r = self.response
        return [Respond(r.status, r.headers, r.reason, r.headers_at), Chunks(r.body, r.timing, r.longest_gap), r.end]

    def describe(self) -> str:
        outcome = f"{self.response.status}" if self.response else f"{self.error.error}"  # type: ignore[union-attr]
        return f"{self.request.method} {self.request.url} -> {outcome}"


@dataclass
class Cassette:
    """A list of interactions, loaded from or saved to a YAML file."""

    interactions: list[Interaction] = field(default_factory=list)
    path: Path | None = None

    def __iter__(self) -> Iterator[Interaction]:
        return iter(self.interactions)

    def __len__(self) -> int:
        return len(self.interactions)

    @classmethod
    def load(cls, path: str | os.PathLike[str]) -> Cassette:
        path = Path(path)
        try:
            text = path.read_text(encoding="utf-8")
        except FileNotFoundError:
            raise CassetteNotFoundError(path, "no such cassette file") from None
        except UnicodeDecodeError as exc:
            raise CassetteFormatError(path, "", f"not UTF-8 text (byte {exc.start}); is this a cassette?") from None
        except OSError as exc:
            raise CassetteNotFoundError(path, f"cannot read: {exc.strerror}") from None
        return cls.loads(text, path=path)

    @classmethod
    def loads(cls, text: str, *, path: Path | None = None, check_lines: bool = True) -> Cassette:
        """Parse cassette text. ``check_lines=False`` skips v2's line-count check, for ``lint --fix``
        repairing a hand-edited file; nothing else should need it."""
        try:
            document = yaml.load(text, Loader=_Loader)  # noqa: S506 - a safe loader
        except yaml.YAMLError as exc:
            mark = getattr(exc, "problem_mark", None)
            place = f"line {mark.line + 1}, column {mark.column + 1}" if mark else ""
            problem = getattr(exc, "problem", None) or str(exc)
            raise CassetteFormatError(path, place, f"not valid YAML ({problem})") from None
        if check_lines and isinstance(document, dict) and document.get("version") == 2:
            _check_line_count(document, text, path)
        try:
            return cls(_parse_document(document, path), path)
        except CassetteFormatError as exc:
            if exc.place.startswith("line"):
                raise
            line = _locate(text, exc.place)
            raise CassetteFormatError(
                path, f"line {line}, {exc.place}" if exc.place else f"line {line}", exc.detail
            ) from None

    def save(self, path: str | os.PathLike[str] | None = None) -> Path:
        """Write atomically (a crash never leaves a torn file) and return the path written."""
        target = Path(path) if path is not None else self.path
        if target is None:
            raise ConfigError("Cassette.save() needs a path: this cassette was not loaded from a file")
        text = self.dumps()
        try:
            _atomic_write(target, text)
        except OSError as exc:
            reason = exc.strerror or str(exc)
            raise CassetteError(
                target, f"cannot write the cassette ({reason}); the old file, if any, is unchanged"
            ) from exc
        self.path = target
        return target

    def dumps(self) -> str:
        return _Writer(self.interactions).render()


# --- reading ---------------------------------------------------------------------------------------


class _Reader:
    """Walks a loaded document with a path for error messages: ``interactions[2].response.status``."""

    def __init__(self, path: Path | None) -> None:
        self.path = path
        self.strict = False  # format v2: every response states its chunks and its end

    def fail(self, place: str, message: str) -> CassetteFormatError:
        return CassetteFormatError(self.path, place, message)

    def mapping(self, value: Any, place: str) -> dict[str, Any]:
        if not isinstance(value, dict):
            raise self.fail(place, f"expected a mapping, found {_kind(value)}")
        return value

    def required(self, mapping: dict[str, Any], key: str, place: str, kind: type | tuple[type, ...]) -> Any:
        if key not in mapping:
            raise self.fail(place, f"missing required field {key!r}")
        return self.typed(mapping[key], f"{place}.{key}", kind)

    def typed(self, value: Any, place: str, kind: type | tuple[type, ...]) -> Any:
        if not isinstance(value, kind) or isinstance(value, bool) and kind is not bool:
            names = " or ".join(k.__name__ for k in (kind if isinstance(kind, tuple) else (kind,)))
            raise self.fail(place, f"expected {names}, found {_kind(value)}")
        return value


def _kind(value: Any) -> str:
    if value is None:
        return "nothing"
    names: dict[type, str] = {dict: "a mapping", list: "a list", str: "text"}
    return names.get(type(value), f"{type(value).__name__} {value!r}")


def _parse_document(document: Any, path: Path | None) -> list[Interaction]:
    r = _Reader(path)
    if document is None:
        raise r.fail("", "the file is empty; a cassette starts with 'version: 1'")
    top = r.mapping(document, "top level")
    version = top.get("version")
    if version not in _READABLE_VERSIONS or isinstance(version, bool):
        hint = (
            "a newer streamtape wrote it; upgrade streamtape"
            if isinstance(version, int) and version > FORMAT_VERSION
            else ("is this a streamtape cassette? (vcrpy cassettes are not)")
        )
        raise r.fail("version", f"expected 'version: {FORMAT_VERSION}' (or 1), found {version!r}; {hint}")
    r.strict = version >= 2
    if r.strict and "lines" not in top:
        raise r.fail("end of file", _CUT_SHORT)
    items = r.required(top, "interactions", "top level", list)
    return [_parse_interaction(r, item, f"interactions[{i}]") for i, item in enumerate(items)]


def _locate(text: str, place: str) -> int:
    """The line a field's error is about (the safe loader keeps no positions): the start of
    ``interactions[i]``, the ``version`` line, or the first line."""
    lines = text.splitlines()
    match = re.match(r"interactions\[(\d+)\]", place)
    if match:
        starts = [n for n, line in enumerate(lines, 1) if line.startswith("- ")]
        index = int(match.group(1))
        return starts[index] if index < len(starts) else len(lines)
    if place.startswith("version"):
        return next((n for n, line in enumerate(lines, 1) if line.startswith("version:")), 1)
    return next((n for n, line in enumerate(lines, 1) if line.strip() and not line.startswith("#")), 1)


_CUT_SHORT = (
    "the file ends before its closing 'lines: N' field: it was cut short (an interrupted copy, a bad "
    "merge?). Re-record it, or restore it from version control"
)


def _check_line_count(document: dict[str, Any], text: str, path: Path | None) -> None:
    """v2's footer: the file's line count, written last, so truncation and deleted lines are seen."""
    declared = document.get("lines")
    actual = text.count("\n") + (0 if text.endswith("\n") else 1)
    where = f"line {actual}"
    if "lines" not in document:
        raise CassetteFormatError(path, where, _CUT_SHORT)
    if list(document)[-1] != "lines":
        raise CassetteFormatError(path, where, f"'lines' must be the last field of the file; {_CUT_SHORT}")
    if isinstance(declared, bool) or not isinstance(declared, int):
        raise CassetteFormatError(path, where, f"expected 'lines: N' with N the file's line count, found {declared!r}")
    if declared != actual:
        raise CassetteFormatError(
            path,
            where,
            f"the file has {actual} lines but says it has {declared}: lines were removed or added since it "
            "was written (cut short, or a bad merge). If you edited it by hand, run `streamtape lint --fix "
            f"{path if path is not None else 'FILE'}` to check and re-count it; else re-record it",
        )


def _parse_interaction(r: _Reader, item: Any, place: str) -> Interaction:
    item = r.mapping(item, place)
    request = _parse_request(r, r.required(item, "request", place, dict), f"{place}.request")
    if "error" in item:
        return Interaction(request, error=_parse_cut(r, item["error"], f"{place}.error"))
    response = _parse_response(r, r.required(item, "response", place, dict), f"{place}.response")
    return Interaction(request, response)


def _parse_request(r: _Reader, raw: dict[str, Any], place: str) -> Request:
    method = r.required(raw, "method", place, str)
    url = r.required(raw, "url", place, str)
    headers = _parse_headers(r, raw.get("headers"), f"{place}.headers")
    if "json" in raw:
        body = json.dumps(raw["json"], separators=(",", ":"), ensure_ascii=False).encode("utf-8")
    else:
        body = _parse_body(r, raw, place)
    return Request(method, url, headers, body)


def _parse_response(r: _Reader, raw: dict[str, Any], place: str) -> Response:
    status = r.required(raw, "status", place, int)
    if not 100 <= status <= 999:
        raise r.fail(f"{place}.status", f"expected an HTTP status between 100 and 999, found {status}")
    body = _parse_body(r, raw, place)
    if r.strict:
        for key in ("body", "chunks", "end"):
            if key not in raw:
                raise r.fail(place, f"missing required field {key!r} (format v2 states every response's body, "
                                    "chunks and end; was the file cut short?)")  # fmt: skip
    timing = _parse_timing(r, raw.get("chunks"), f"{place}.chunks", body)
    end = raw.get("end", "clean")
    if not (end == "clean" or isinstance(end, dict)):
        raise r.fail(f"{place}.end", f"expected 'clean' or a mapping with 'error' and 'message', found {_kind(end)}")
    return Response(
        status=status,
        headers=_parse_headers(r, raw.get("headers"), f"{place}.headers"),
        body=body,
        timing=timing,
        reason=r.typed(raw.get("reason", ""), f"{place}.reason", str),
        headers_at=float(r.typed(raw.get("headers_at", 0.0), f"{place}.headers_at", (int, float))),
        end=End(timing[-1][0] if timing else 0.0) if end == "clean" else _parse_cut(r, end, f"{place}.end"),
    )


def _parse_headers(r: _Reader, raw: Any, place: str) -> Headers:
    if raw is None:
        return ()
    if isinstance(raw, list):  # [[name, value], ...], as other tools write them
        items = [_pair(r, item, f"{place}[{i}]") for i, item in enumerate(raw)]
    else:
        items = list(r.mapping(raw, place).items())
    pairs: list[tuple[str, str]] = []
    for name, value in items:
        values = value if isinstance(value, list) else [value]
        for v in values:
            if not isinstance(v, (str, int, float)) or isinstance(v, bool):
                raise r.fail(f"{place}.{name}", f"expected a header value (text), found {_kind(v)}")
            pairs.append((str(name), str(v)))
    return tuple(pairs)


def _pair(r: _Reader, item: Any, place: str) -> tuple[str, Any]:
    if not (isinstance(item, list) and len(item) == 2 and isinstance(item[0], str)):
        raise r.fail(place, f"expected a [name, value] pair, found {_kind(item)}")
    return item[0], item[1]


def _parse_body(r: _Reader, raw: dict[str, Any], place: str) -> bytes:
    text = r.typed(raw.get("body", ""), f"{place}.body", str)
    encoding = raw.get("encoding", "text")
    if encoding == "text":
        return text.encode("utf-8")
    if encoding == "escaped":
        return _bodytext.decode_escaped(text)
    raise r.fail(f"{place}.encoding", f"expected 'text' or 'escaped', found {encoding!r}")


def _parse_timing(r: _Reader, raw: Any, place: str, body: bytes) -> tuple[tuple[float, int], ...]:
    if raw is None:
        return ((0.0, len(body)),) if body else ()
    fields = r.typed(raw, place, str).replace(":", " ").split()
    try:
        timing = tuple(zip(map(float, fields[0::2]), map(int, fields[1::2]), strict=True))
    except ValueError:
        raise r.fail(place, "expected 'SECONDS:BYTES' pairs separated by spaces, e.g. '0.412:490 0.415:132'") from None
    total = sum(size for _, size in timing)
    if total != len(body):
        raise r.fail(place, f"chunk sizes add up to {total} bytes but the body has {len(body)}")
    return timing


def _parse_cut(r: _Reader, raw: Any, place: str) -> Cut:
    raw = r.mapping(raw, place)
    error = r.required(raw, "error", place, str)
    if error not in CUT_ERRORS:
        raise r.fail(f"{place}.error", f"unknown error {error!r}; expected one of {', '.join(sorted(CUT_ERRORS))}")
    message = r.typed(raw["message"], f"{place}.message", str) if "message" in raw else None
    return Cut(error, message, float(r.typed(raw.get("at", 0.0), f"{place}.at", (int, float))))


# --- writing ---------------------------------------------------------------------------------------

_HEADER = "# streamtape cassette, format v2 (docs/cassette-format.md). Bodies are byte-exact.\n"


class _Writer:
    """Renders interactions; bodies become hand-written literal blocks, checked by loading back."""

    def __init__(self, interactions: Sequence[Interaction]) -> None:
        self.interactions = interactions
        self.nonce = uuid.uuid4().hex
        self.bodies: list[tuple[bytes, int]] = []  # (body, key indent), in document order

    def render(self) -> str:
        doc = {"version": FORMAT_VERSION, "interactions": [self._interaction(i) for i in self.interactions]}
        text = yaml.dump(doc, Dumper=_Dumper, sort_keys=False, allow_unicode=True, width=1 << 30)
        placeholder = re.compile(rf" __streamtape_body_(\d+)_{self.nonce}__\n")
        rendered = _HEADER + placeholder.sub(lambda m: self._block(int(m.group(1))), text)
        rendered += f"lines: {rendered.count(chr(10)) + 1}\n"  # the footer counts itself
        self._verify(rendered)
        return rendered

    def _placeholder(self, body: bytes, indent: int) -> str:
        self.bodies.append((body, indent))
        return f"__streamtape_body_{len(self.bodies) - 1}_{self.nonce}__"

    def _block(self, index: int) -> str:
        """The body as a literal block, in text form if it survives a load, else escaped."""
        body, indent = self.bodies[index]
        plain = _bodytext.is_plain_text(body)
        if plain is not None:
            block = _bodytext.literal_block(plain, indent)
            if _loads_back(block, indent) == plain:
                return block
        block = _bodytext.literal_block(_bodytext.encode_escaped(body), indent)
        return block + " " * indent + "encoding: escaped\n"

    def _interaction(self, item: Interaction) -> dict[str, Any]:
        out: dict[str, Any] = {"request": self._request(item.request)}
        if item.response is not None:
            out["response"] = self._response(item.response)
        else:
            out["error"] = _cut_dict(item.error)  # type: ignore[arg-type]
        return out

    def _request(self, req: Request) -> dict[str, Any]:
        out: dict[str, Any] = {"method": req.method, "url": req.url, "headers": _headers_dict(req.headers)}
        if req.json is not None:
            out["json"] = req.json  # readable; matching compares parsed JSON, never bytes
        elif req.body:
            out["body"] = self._placeholder(req.body, 4)
        return out

    def _response(self, resp: Response) -> dict[str, Any]:
        out: dict[str, Any] = {"status": resp.status}
        if resp.reason:
            out["reason"] = resp.reason
        out["headers"] = _headers_dict(resp.headers)
        out["headers_at"] = round(resp.headers_at, 4)
        out["body"] = self._placeholder(resp.body, 4)
        out["chunks"] = " ".join(f"{at:.4f}:{size}" for at, size in resp.timing)
        out["end"] = "clean" if isinstance(resp.end, End) else _cut_dict(resp.end)
        return out

    def _verify(self, rendered: str) -> None:
        """Load the whole document back before anything is written: a save never corrupts a file."""
        document = yaml.load(rendered, Loader=_Loader)  # noqa: S506
        loaded = _parse_document(document, None)
        _check_line_count(document, rendered, None)
        actual: list[bytes] = []
        for item in loaded:
            if item.request.json is None and item.request.body:
                actual.append(item.request.body)
            if item.response is not None:
                actual.append(item.response.body)
        if actual != [body for body, _ in self.bodies]:
            raise AssertionError("streamtape bug: a body does not survive the YAML round trip; nothing was written")


def _loads_back(block: str, indent: int) -> str | None:
    nesting = "".join(" " * level + f"k{level}:\n" for level in range(0, indent, 2))
    try:
        value: Any = yaml.load(f"{nesting}{' ' * indent}body:{block}", Loader=_Loader)  # noqa: S506
    except yaml.YAMLError:
        return None
    for level in range(0, indent, 2):
        value = value[f"k{level}"]
    return value["body"] if isinstance(value["body"], str) else None


def _headers_dict(headers: Headers) -> dict[str, Any]:
    out: dict[str, Any] = {}
    for name, value in headers:
        if name.lower() in SECRET_HEADERS:
            continue  # a last line of defence: the recorder has removed them already
        if name in out:
            out[name] = [*out[name], value] if isinstance(out[name], list) else [out[name], value]
        else:
            out[name] = value
    return out


def _cut_dict(cut: Cut) -> dict[str, Any]:
    out: dict[str, Any] = {"error": cut.error}
    if cut.message is not None:
        out["message"] = cut.message
    out["at"] = round(cut.at, 4)
    return out


def _atomic_write(target: Path, text: str) -> None:
    target.parent.mkdir(parents=True, exist_ok=True)
    fd, tmp = tempfile.mkstemp(prefix=f".{target.name}.", suffix=".tmp", dir=target.parent)
    try:
        with os.fdopen(fd, "w", encoding="utf-8", newline="\n") as handle:
            handle.write(text)
            handle.flush()
            os.fsync(handle.fileno())
        if target.exists():
            os.chmod(tmp, target.stat().st_mode & 0o777)
        else:
            os.chmod(tmp, 0o644)
        os.replace(tmp, target)
    except BaseException:
        Path(tmp).unlink(missing_ok=True)
        raise
