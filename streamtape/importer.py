"""``streamtape import``: vcrpy / pytest-recording cassettes converted to streamtape cassettes.

vcrpy's cassette format version 1 (vcrpy 1.0 and later), from its YAML and JSON serializers::

    version: 1
    interactions:
    - request: {method, uri, body, headers: {name: [value, ...]}}
      response: {status: {code, message}, headers: {name: [value, ...]}, body: {string}}

and the shapes its stubs wrote over the years, all read here:

- a body ``string`` is text, bytes (YAML ``!!binary``, when it was not UTF-8) or null; aiohttp's stub
  writes ``body: {}`` for a response without one;
- the httpx stub before vcrpy 6 wrote ``status_code`` / ``content`` / ``http_version`` instead of
  ``status`` / ``body``, with the body already decoded but ``Content-Encoding: gzip`` still in the
  headers (aiohttp's stub does the same to this day); the httpcore stub (vcrpy 8.0-8.1) wrote
  ``message: null`` and joined repeated request headers with commas;
- request bodies recorded from a file (``!!python/object/new:_io.BytesIO``), an iterator
  (``!!python/object/apply:builtins.iter``), the app's own ``json=`` / ``data=`` value (aiohttp's
  stub, which also records no User-Agent), and the ``!!python/str`` / ``!!python/tuple`` tags of
  older PyYAML dumps. Those few tags are rebuilt as plain values; any other tag is refused: no
  Python object is ever constructed from a file; anchors and aliases (vcrpy's dumper writes them
  for an object met twice) are read, within the size limit;
- the http.client and httpx stubs store compressed bodies as they came (``Content-Encoding:
  gzip``); vcrpy's ``decode_compressed_response=True`` stores them decoded.

Every interaction becomes one streamtape interaction: the body as one chunk at 0 s (vcrpy records
no timing), a clean end (vcrpy records only responses that arrived whole), gzip and deflate bodies
decoded with ``Content-Encoding`` / ``Content-Length`` dropped (as the recorder stores them), and
every secret removed by the recorder's own ``Redactor``, which first learns the credentials of
every request and response in the file, then anything ``streamtape lint`` would find by its shape.
What could not be carried over, or was changed, is reported per file (``Conversion.notes``).

A file streamtape cannot read completely is not imported at all: an error names the file and what
to do, and nothing is written. Outputs are written atomically by ``Cassette.save``, never over the
input, never over a file that is not a streamtape cassette, and over a streamtape cassette only
with ``force=True``.
"""

from __future__ import annotations

import base64
import json
import os
import re
import zlib
from collections.abc import Iterable, Iterator, Sequence
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any
from urllib.parse import urlencode, urlsplit

import yaml

from . import _bodytext, redact
from .cassette import MAX_DEPTH, Cassette, Interaction, Request, Response, _frames, _show, max_cassette_bytes
from .errors import CassetteError, CassetteFormatError, ConfigError
from .redact import Redactor, is_secret_header
from .wire import End

__all__ = [
    "AlreadyStreamtapeError",
    "Conversion",
    "Job",
    "Result",
    "beside",
    "check_target",
    "convert",
    "import_cassette",
    "plan",
    "run",
]

#: What a directory is searched for.
PATTERNS = ("*.yaml", "*.yml", "*.json")
#: The suffix of an output written beside its input (no ``--out``, no ``-o``).
BESIDE_SUFFIX = ".streamtape.yaml"
TIMING_NOTE = (
    "chunk timing: vcrpy does not record it, so each body is one chunk at 0 s and arrives at once at "
    "any speed; faults positioned by event or byte still work"
)
_STREAMTAPE_COMMENT = "# streamtape cassette"
_ALREADY = "already a streamtape cassette: use it as it is, there is nothing to import"
_GZIP = 16 + zlib.MAX_WBITS
_DECODERS: dict[str, tuple[int, ...]] = {
    "gzip": (_GZIP,),
    "x-gzip": (_GZIP,),
    # zlib-wrapped as the RFC says, or raw deflate as some servers send it (httpx tries both too)
    "deflate": (zlib.MAX_WBITS, -zlib.MAX_WBITS),
}
_NO_BODY_STATUS = frozenset({204, 304})
#: User-Agent prefixes (lower case) of clients vcrpy records and streamtape does not intercept.
_OTHER_CLIENTS = (
    ("python-requests/", "requests"),
    ("python-urllib3/", "urllib3"),
    ("python-urllib/", "urllib (http.client)"),
    ("aiohttp/", "aiohttp"),
    ("boto3/", "boto3"),
    ("botocore/", "botocore"),
    ("python-httplib2/", "httplib2"),
    ("tornado/", "tornado"),
    ("pycurl/", "pycurl"),
)
#: the clients above that a stack adapter records and replays (``streamtape.stacks``), and which one
_ADAPTED = {"requests": "urllib3", "urllib3": "urllib3", "boto3": "urllib3", "botocore": "urllib3", "aiohttp": "aiohttp"}
_TOKEN = re.compile(r"[-!#$%&'*+.^_`|~0-9A-Za-z]+")
_URL_FORBIDDEN = re.compile(r"[\x00-\x20\x7f]")
_BAD_IN_VALUE = re.compile(r"[\x00\r\n\x0b\x0c]")  # what HTTP (and a cassette) cannot carry in a header


class AlreadyStreamtapeError(CassetteFormatError):
    """The file is a streamtape cassette already: nothing to import."""


@dataclass
class Conversion:
    """A vcrpy cassette read and converted, not yet written."""

    source: Path
    cassette: Cassette
    #: what could not be carried over, or was changed, one line each
    notes: list[str]


@dataclass(frozen=True)
class Job:
    """One input file and where its streamtape cassette goes."""

    source: Path
    target: Path
    #: the file was found by searching a directory (not named on the command line)
    found: bool = False


@dataclass
class Result:
    """What happened to one ``Job``."""

    job: Job
    interactions: int = 0
    notes: list[str] = field(default_factory=list)
    #: one sentence naming the file, when it was not imported
    error: str | None = None
    #: why it was passed over (a streamtape cassette found in a directory)
    skipped: str | None = None

    @property
    def imported(self) -> bool:
        return self.error is None and self.skipped is None


# --- the Python API --------------------------------------------------------------------------------


def import_cassette(
    source: str | os.PathLike[str], target: str | os.PathLike[str] | None = None, *, force: bool = False
) -> Conversion:
    """Convert the vcrpy cassette ``source`` and save it as a streamtape cassette at ``target``
    (default: ``NAME.streamtape.yaml`` beside it). Returns the conversion, whose ``notes`` say what
    was not carried over. Raises a ``CassetteError`` naming the file when it cannot be imported or
    written; ``force`` allows replacing an existing streamtape cassette (never any other file)."""
    source = Path(source)
    target = Path(target) if target is not None else beside(source)
    conversion = convert(source)
    check_target(source, target, force=force)
    conversion.cassette.save(target)
    return conversion


def beside(source: Path) -> Path:
    """Where an import without ``--out`` writes: ``NAME.streamtape.yaml`` next to ``NAME.yaml``."""
    return source.with_name(_stem(source) + BESIDE_SUFFIX)


def _stem(path: Path) -> str:
    name = path.name
    for suffix in (".yaml", ".yml", ".json"):
        if name.lower().endswith(suffix) and len(name) > len(suffix):
            return name[: -len(suffix)]
    return name


def plan(paths: Sequence[str], *, out_dir: str | None = None, out_file: str | None = None) -> list[Job]:
    """The files to import and where each goes. A usage mistake (a missing path, ``-o`` with several
    inputs, an empty directory) raises ``ConfigError``: nothing is imported then."""
    if out_dir is not None and out_file is not None:
        raise ConfigError("give --out DIR (several cassettes) or -o FILE (one cassette), not both")
    found: list[tuple[Path, Path | None]] = []  # (file, the directory it was found in)
    for name in paths:
        path = Path(name)
        if path.is_dir():
            root = path.resolve()
            files = sorted(
                {
                    f
                    for pattern in PATTERNS
                    for f in path.rglob(pattern)
                    if f.is_file() and f.resolve().is_relative_to(root)
                }
            )
            if not files:
                raise ConfigError(f"{name}: no *.yaml, *.yml or *.json files in this directory")
            found += [(file, path) for file in files]
        elif path.is_file():
            found.append((path, None))
        elif path.exists():
            raise ConfigError(f"{name}: not a regular file; give vcrpy cassette files or directories holding them")
        else:
            raise ConfigError(
                f"{name}: no such file or directory; give vcrpy cassette files or directories holding them"
            )
    if out_file is not None and (len(found) != 1 or found[0][1] is not None):
        raise ConfigError(
            f"-o names one output file, but {len(found)} cassette file(s) were given or found; "
            "use --out DIR to import several"
        )
    jobs: list[Job] = []
    seen: set[Path] = set()
    for file, folder in found:
        if _identity(file) in seen:  # named twice, or named and inside a directory named too
            continue
        seen.add(_identity(file))
        if out_file is not None:
            target = Path(out_file)
        elif out_dir is not None:
            relative = file.parent.relative_to(folder) if folder is not None else Path()
            target = Path(out_dir) / relative / f"{_stem(file)}.yaml"
        else:
            target = beside(file)
        jobs.append(Job(file, target, found=folder is not None))
    return jobs


def run(jobs: Iterable[Job], *, force: bool = False) -> Iterator[Result]:
    """Import every job, whatever happens to the others, yielding how each went as it is done."""
    claimed: dict[Path, Path] = {}
    for job in jobs:
        result = Result(job)
        target_id = _identity(job.target)
        try:
            if target_id in claimed:
                raise CassetteError(
                    job.source,
                    f"not imported: {claimed[target_id]} is imported to {job.target} too (same name); "
                    "import one of them with -o FILE",
                )
            conversion = convert(job.source)
            check_target(job.source, job.target, force=force)
            conversion.cassette.save(job.target)
        except AlreadyStreamtapeError as exc:
            if job.found:
                result.skipped = "already a streamtape cassette"
            else:
                result.error = str(exc)
        except CassetteError as exc:
            result.error = str(exc)
        except Exception as exc:  # a bug must not stop the other files; STREAMTAPE_DEBUG shows it
            if os.environ.get("STREAMTAPE_DEBUG"):
                raise
            result.error = (
                f"{job.source}: internal error ({type(exc).__name__}: {exc}); this is a streamtape bug, please "
                "report it with the file if you can (STREAMTAPE_DEBUG=1 shows the traceback)"
            )
        else:
            claimed[target_id] = job.source
            result.interactions = len(conversion.cassette)
            result.notes = conversion.notes
        yield result


def _identity(path: Path) -> Path:
    try:
        return path.resolve()
    except OSError:
        return path.absolute()


def check_target(source: Path, target: Path, *, force: bool) -> None:
    """Refuse to write over the input, over anything that is not a streamtape cassette, and over a
    streamtape cassette unless ``force``."""
    if _identity(target) == _identity(source):
        raise CassetteError(
            source, "not imported: the output would replace this vcrpy cassette itself; choose another --out or -o"
        )
    if not target.exists() and not target.is_symlink():
        return
    if target.is_dir() or not target.is_file():
        raise CassetteError(source, f"not imported: {target} exists and is not a file; choose another --out or -o")
    if not _is_streamtape_file(target):
        raise CassetteError(
            source,
            f"not imported: {target} exists and is not a streamtape cassette; streamtape import never "
            "replaces other files, even with --force: move it, or choose another --out or -o",
        )
    if not force:
        raise CassetteError(
            source, f"not imported: {target} already exists (a streamtape cassette); add --force to replace it"
        )


def _is_streamtape_file(path: Path) -> bool:
    try:
        with open(path, "rb") as handle:
            head = handle.read(4096)
    except OSError:
        return False
    if head.lstrip().startswith(_STREAMTAPE_COMMENT.encode()):
        return True
    try:
        Cassette.load(path)
    except CassetteError:
        return False
    return True


# --- reading a vcrpy file --------------------------------------------------------------------------


def convert(path: str | os.PathLike[str]) -> Conversion:
    """Read the vcrpy cassette at ``path`` and convert it (nothing is written). Raises
    ``CassetteFormatError`` naming the file when it is not a vcrpy cassette streamtape can read
    whole, and ``AlreadyStreamtapeError`` when it is a streamtape cassette."""
    path = Path(path)
    text = _read_text(path)
    if text.lstrip().startswith(_STREAMTAPE_COMMENT):
        raise AlreadyStreamtapeError(path, "", _ALREADY)
    document = _parse(text, path)
    raw_items, metadata = _interactions(document, path)
    converter = _Converter(path)
    items = [converter.interaction(raw, index) for index, raw in enumerate(raw_items)]
    items = converter.redact(items)
    cassette = Cassette(items)
    try:
        text = cassette.dumps()  # what save() writes, checked now: a problem names the input file
    except CassetteFormatError as exc:
        raise CassetteFormatError(
            path, exc.place, f"cannot be written as a streamtape cassette: {exc.detail}"
        ) from None
    limit = max_cassette_bytes()
    if len(text) > limit:
        raise _fail(
            path, f"as a streamtape cassette it would be more than the {limit / (1 << 20):,.0f} MiB streamtape reads; "
            "set STREAMTAPE_MAX_CASSETTE_MB to a larger number of MiB to import it"
        )  # fmt: skip
    notes = converter.report(items, metadata)
    return Conversion(path, cassette, notes)


def _fail(path: Path, message: str) -> CassetteFormatError:
    return CassetteFormatError(path, "", message)


def _read_text(path: Path) -> str:
    limit = max_cassette_bytes()
    try:
        with open(path, "rb") as handle:
            data = handle.read(limit + 1)
    except FileNotFoundError:
        raise _fail(path, "no such file; give vcrpy cassette files or directories holding them") from None
    except IsADirectoryError:
        raise _fail(path, "is a directory, not a cassette file") from None
    except OSError as exc:
        raise _fail(path, f"cannot read the file ({exc.strerror or exc}); check its permissions") from None
    if len(data) > limit:
        raise _fail(
            path, f"the file is larger than the {limit / (1 << 20):,.0f} MiB streamtape reads; if it really is a "
            "cassette, set STREAMTAPE_MAX_CASSETTE_MB to a larger number of MiB"
        )  # fmt: skip
    if data.startswith(b"\xef\xbb\xbf"):
        data = data[3:]
    try:
        text = data.decode("utf-8")
    except UnicodeDecodeError as exc:
        raise _fail(
            path, f"not UTF-8 text (byte {exc.start}), so not a vcrpy cassette (vcrpy writes YAML or JSON text)"
        ) from None
    if not text.strip():
        raise _fail(path, "the file is empty (vcrpy treats an empty cassette as not recorded); nothing to import")
    return text


def _parse(text: str, path: Path) -> Any:
    first = text.lstrip()[:1]
    json_error: ValueError | None = None
    if first in ("{", "["):
        try:
            return json.loads(text)
        except RecursionError:
            raise _fail(path, f"nested more than {MAX_DEPTH} levels deep, so not a vcrpy cassette") from None
        except ValueError as exc:  # perhaps YAML in flow style; if that fails too, say what JSON said
            json_error = exc
    try:
        _check_depth(text)
        return yaml.load(text, Loader=_VcrLoader)  # noqa: S506 - a safe loader plus vcrpy's few plain tags
    except _TooDeep:
        raise _fail(path, f"nested more than {MAX_DEPTH} levels deep, so not a vcrpy cassette") from None
    except yaml.constructor.ConstructorError as exc:
        found = re.search(r"constructor for the tag '([^']*)'", getattr(exc, "problem", None) or "")
        if found is None:  # a value its tag cannot hold: !!binary that is not base64, say
            raise _fail(path, f"not valid YAML ({_mark(exc)}{exc.problem}), so not a vcrpy cassette") from None
        tag = f"the YAML tag {found.group(1).replace('tag:yaml.org,2002:', '!!')!r}"
        raise _fail(
            path, f"{_mark(exc)}holds {tag}, which vcrpy's own cassettes never need; streamtape never builds "
            "Python objects from a file, so it does not import it (remove that value, or re-record with vcrpy)"
        ) from None  # fmt: skip
    except ValueError as exc:  # a !!binary or !!python/bytes value that is not base64
        raise _fail(path, f"not valid YAML ({exc}), so not a vcrpy cassette") from None
    except (IndexError, KeyError):  # a tagged value its tag cannot hold: !!float '', !!bool maybe
        raise _fail(path, "not valid YAML (a tagged value its tag cannot hold), so not a vcrpy cassette") from None
    except yaml.YAMLError as exc:
        if json_error is not None or path.suffix.lower() == ".json":
            detail = f"{json_error}" if json_error is not None else f"{_mark(exc)}{getattr(exc, 'problem', exc)}"
            raise _fail(path, f"not valid JSON ({detail}), so not a vcrpy cassette") from None
        raise _fail(
            path, f"not valid YAML ({_mark(exc)}{getattr(exc, 'problem', None) or exc}), so not a vcrpy cassette"
        ) from None


def _mark(exc: Exception) -> str:
    mark = getattr(exc, "problem_mark", None) or getattr(exc, "context_mark", None)
    return f"line {mark.line + 1}, column {mark.column + 1}: " if mark is not None else ""


class _TooDeep(Exception):
    pass


_BaseLoader = getattr(yaml, "CSafeLoader", yaml.SafeLoader)


def _check_depth(text: str) -> None:
    """Refuse nesting deeper than ``MAX_DEPTH`` before composing (libyaml's composer recurses in C)."""
    depth = 0
    starts = (yaml.MappingStartEvent, yaml.SequenceStartEvent)
    ends = (yaml.MappingEndEvent, yaml.SequenceEndEvent)
    for event in yaml.parse(text, Loader=_BaseLoader):
        if isinstance(event, starts):
            depth += 1
            if depth > MAX_DEPTH:
                raise _TooDeep
        elif isinstance(event, ends):
            depth -= 1


class _VcrLoader(_BaseLoader):  # type: ignore[misc, valid-type]
    """The safe loader, plus the few Python tags vcrpy's own loader accepts, rebuilt as plain values
    (text, lists, bytes) without touching Python's object machinery."""


def _python_str(loader: Any, node: Any) -> str:
    return str(loader.construct_scalar(node))


def _python_bytes(loader: Any, node: Any) -> bytes:
    return base64.decodebytes(str(loader.construct_scalar(node)).encode("ascii"))


def _python_tuple(loader: Any, node: Any) -> list[Any]:
    return list(loader.construct_sequence(node))


def _bytesio(loader: Any, node: Any) -> bytes:
    # ``!!python/object/new:_io.BytesIO`` with ``state: [content, position, dict]``: the content only
    mapping = loader.construct_mapping(node, deep=True)
    state = mapping.get("state") or [b""]
    data = state[0] if isinstance(state, (list, tuple)) and state else b""
    if isinstance(data, str):
        data = data.encode("utf-8")
    return data if isinstance(data, bytes) else b""


class _Chunks(list):  # type: ignore[type-arg]
    """The chunks of a request body the app gave as an iterator (not a list it sent as JSON)."""


def _iterator(loader: Any, node: Any) -> _Chunks:
    # ``!!python/object/apply:builtins.iter`` with ``args: [[chunk, ...]]``: the chunks
    mapping = loader.construct_mapping(node, deep=True)
    args = mapping.get("args") or [[]]
    chunks = args[0] if isinstance(args, (list, tuple)) and args else []
    return _Chunks(chunks if isinstance(chunks, (list, tuple)) else [])


for _tag, _constructor in (
    ("timestamp", _python_str),  # an unquoted date in a hand-edited file: the text it is
    ("python/str", _python_str),
    ("python/unicode", _python_str),
    ("python/bytes", _python_bytes),
    ("python/tuple", _python_tuple),
    ("python/object/new:_io.BytesIO", _bytesio),
    ("python/object/apply:builtins.iter", _iterator),
):
    _VcrLoader.add_constructor(f"tag:yaml.org,2002:{_tag}", _constructor)


def _interactions(document: Any, path: Path) -> tuple[list[Any], Any]:
    """The raw interactions and metadata, once the document is known to be a vcrpy cassette."""
    if isinstance(document, list) and document and isinstance(document[0], dict) and "request" in document[0]:
        raise _fail(
            path, "written by vcrpy before 1.0 (a list without 'version'); convert it with vcrpy's own "
            "'python -m vcr.migration FILE' first, then import it"
        )  # fmt: skip
    if not isinstance(document, dict) or "interactions" not in document:
        raise _fail(
            path, "not a vcrpy cassette: expected 'version: 1' and a list of 'interactions', each a "
            "'request' and a 'response'"
        )  # fmt: skip
    raw_items = document["interactions"]
    version = document.get("version")
    if (
        "lines" in document
        or version == 2
        or (isinstance(raw_items, list) and any(_streamtape_shaped(item) for item in raw_items))
    ):
        raise AlreadyStreamtapeError(path, "", _ALREADY)
    if version not in (1, None):
        raise _fail(
            path, f"vcrpy cassette format version {_show(version)}; streamtape import reads version 1 (vcrpy 1.0 "
            "and later): is it from a newer vcrpy?"
        )  # fmt: skip
    if not isinstance(raw_items, list):
        raise _fail(path, "not a vcrpy cassette: 'interactions' is not a list")
    return raw_items, document.get("metadata")


def _streamtape_shaped(item: Any) -> bool:
    request = item.get("request") if isinstance(item, dict) else None
    if isinstance(request, dict) and "url" in request and "uri" not in request:
        return True
    response = item.get("response") if isinstance(item, dict) else None
    return isinstance(response, dict) and isinstance(response.get("status"), int) and "chunks" in response


# --- converting one interaction --------------------------------------------------------------------


class _Notes:
    """Report lines, grouped: the same remark about several interactions is one line."""

    def __init__(self) -> None:
        self.file: list[str] = []
        self.by_text: dict[str, list[int]] = {}

    def add(self, index: int, text: str) -> None:
        indices = self.by_text.setdefault(text, [])
        if index not in indices:
            indices.append(index)

    def lines(self) -> list[str]:
        return self.file + [f"{_which(indices)}: {text}" for text, indices in self.by_text.items()]


def _which(indices: list[int]) -> str:
    runs: list[list[int]] = []
    for index in sorted(indices):
        if runs and index == runs[-1][1] + 1:
            runs[-1][1] = index
        else:
            runs.append([index, index])
    spelled = ", ".join(f"#{a}" if a == b else f"#{a}, #{b}" if b == a + 1 else f"#{a}-#{b}" for a, b in runs)
    return f"interaction {spelled}" if len(indices) == 1 else f"interactions {spelled}"


class _Converter:
    def __init__(self, path: Path) -> None:
        self.path = path
        self.notes = _Notes()
        self.clients: dict[tuple[str, str], list[int]] = {}  # (client, how we know) -> interactions
        self.dropped: dict[str, dict[str, None]] = {}  # credential headers dropped, by side
        self.limit = max_cassette_bytes()
        self.total = 0  # body bytes so far: a file of aliases to one big body cannot exhaust memory

    def count(self, body: bytes, index: int) -> bytes:
        self.total += len(body)
        if self.total > self.limit:
            raise self.too_big(index, "the bodies add up to")
        return body

    def too_big(self, index: int, what: str) -> CassetteFormatError:
        return self.fail(
            index, f"{what} more than the {self.limit / (1 << 20):,.0f} MiB streamtape reads; set "
            "STREAMTAPE_MAX_CASSETTE_MB to a larger number of MiB to import it"
        )  # fmt: skip

    def fail(self, index: int, message: str) -> CassetteFormatError:
        return CassetteFormatError(self.path, "", f"interaction #{index}: {message}; nothing was imported")

    def interaction(self, raw: Any, index: int) -> Interaction:
        if (
            not isinstance(raw, dict)
            or not isinstance(raw.get("request"), dict)
            or not isinstance(raw.get("response"), dict)
        ):
            raise self.fail(index, "expected a mapping with a 'request' and a 'response' mapping")
        request = self.request(raw["request"], index)
        response = self.response(raw["response"], index, request.method)
        return Interaction(request, response)

    # the request

    def request(self, raw: dict[str, Any], index: int) -> Request:
        method = raw.get("method")
        if not isinstance(method, str) or not _TOKEN.fullmatch(method):
            raise self.fail(index, f"the request's method is {_show(method)}, not an HTTP method")
        uri = raw.get("uri", raw.get("url"))
        if not isinstance(uri, str):
            raise self.fail(index, "the request has no 'uri'")
        if _URL_FORBIDDEN.search(uri):
            uri = _URL_FORBIDDEN.sub(lambda m: f"%{ord(m.group()):02X}", uri)
            self.notes.add(index, "spaces or control characters in the request's URL were percent-encoded")
        try:
            parts = urlsplit(uri)
            parts.port  # noqa: B018 - what matching reads
        except ValueError as exc:
            raise self.fail(index, f"the request's uri {_show(uri)} is not a valid URL ({exc})") from None
        if not (parts.scheme and parts.netloc):
            raise self.fail(index, f"the request's uri {_show(uri)} is not an absolute URL")
        headers = self.headers(raw.get("headers"), index, "request")
        body = self.count(self.body(raw.get("body"), index, "request"), index)
        self.client(headers, raw.get("body"), index)
        return Request(method, uri, headers, body)

    def client(self, headers: tuple[tuple[str, str], ...], body: Any, index: int) -> None:
        """Note a request that a client streamtape does not intercept sent."""
        agent = next((value for name, value in headers if name.lower() == "user-agent"), None)
        if agent is not None:
            client = next((client for prefix, client in _OTHER_CLIENTS if prefix in agent.lower()), None)
            if client is not None:
                self.clients.setdefault((client, "says its User-Agent"), []).append(index)
        elif isinstance(body, (dict, list)) and not isinstance(body, _Chunks):
            why = "its request body is the app's json= or data= value, as only vcrpy's aiohttp stub records it"
            self.clients.setdefault(("aiohttp", why), []).append(index)
        else:
            why = "probably: it has no User-Agent, as vcrpy's aiohttp stub records requests"
            self.clients.setdefault(("aiohttp", why), []).append(index)

    # the response

    def response(self, raw: dict[str, Any], index: int, method: str) -> Response:
        if "status_code" in raw and "status" not in raw:  # the httpx stub before vcrpy 6
            code, message = raw.get("status_code"), None
            body_value: Any = raw.get("content")
        else:
            status = raw.get("status")
            code, message = (status.get("code"), status.get("message")) if isinstance(status, dict) else (status, None)
            body_value = raw.get("body")
            if isinstance(body_value, dict):
                body_value = body_value.get("string")
        if isinstance(code, str) and code.strip().isdigit():
            code = int(code)
        if not isinstance(code, int) or isinstance(code, bool) or not 100 <= code <= 999:
            raise self.fail(index, f"the response's status code is {_show(code)}, not an HTTP status (100-999)")
        reason = self.reason(message, index)
        headers = self.headers(raw.get("headers"), index, "response")
        body = self.count(self.body(body_value, index, "response"), index)
        headers, body = self.decoded(headers, body, index)
        headers = self.length(headers, body, index, method, code)
        return Response(code, headers, body, ((0.0, len(body)),) if body else (), reason, 0.0, End(0.0))

    def reason(self, message: Any, index: int) -> str:
        if message is None:
            return ""
        if isinstance(message, bytes):
            message = message.decode("latin-1")
        if not isinstance(message, str):
            raise self.fail(index, f"the response's status message is {_show(message)}, not text")
        message = message.strip(" \t\r\n\x0b\x0c")
        try:
            message.encode("latin-1")
        except UnicodeEncodeError:
            message = message.encode("utf-8").decode("latin-1")
        if _BAD_IN_VALUE.search(message):
            self.notes.add(index, "the reason phrase holds a line break or NUL, which HTTP cannot send; dropped")
            return ""
        return message

    def headers(self, raw: Any, index: int, side: str) -> tuple[tuple[str, str], ...]:
        if raw is None:
            return ()
        if isinstance(raw, list):  # [[name, value], ...], as some tools write them
            items = [tuple(pair) for pair in raw if isinstance(pair, (list, tuple)) and len(pair) == 2]
            if len(items) != len(raw):
                raise self.fail(index, f"the {side} headers are neither a mapping nor a list of [name, value] pairs")
        elif isinstance(raw, dict):
            items = list(raw.items())
        else:
            raise self.fail(index, f"the {side} headers are {_kind(raw)}, not a mapping of names to values")
        out: list[tuple[str, str]] = []
        for name, values in items:
            if isinstance(name, bytes):
                name = name.decode("latin-1")
            if not isinstance(name, str) or not _TOKEN.fullmatch(name):
                self.notes.add(index, f"a {side} header named {_show(name)} was dropped: not a valid header name")
                continue
            for value in values if isinstance(values, (list, tuple)) else [values]:
                text = self.header_value(value, index, side, name)
                if text is not None:
                    out.append((name, text))
        return tuple(out)

    def header_value(self, value: Any, index: int, side: str, name: str) -> str | None:
        if isinstance(value, bytes):
            value = value.decode("latin-1")
        elif isinstance(value, (int, float)) and not isinstance(value, bool):
            value = str(value)
        elif value is None:
            return None
        if not isinstance(value, str):
            raise self.fail(index, f"the {side} header {name!r} holds {_kind(value)}, not text")
        value = value.strip(" \t\r\n\x0b\x0c")
        try:
            value.encode("latin-1")
        except UnicodeEncodeError:
            value = value.encode("utf-8").decode("latin-1")  # the bytes it was sent as, read as HTTP reads them
        if _BAD_IN_VALUE.search(value):
            if not is_secret_header(name):  # a credential is dropped anyway; never say what it held
                self.notes.add(index, f"the {side} header {name!r} was dropped: its value holds a line break or NUL")
            return None
        return value

    def body(self, value: Any, index: int, side: str) -> bytes:
        if value is None:
            return b""
        if isinstance(value, bytes):
            return value
        if isinstance(value, str):
            try:
                return value.encode("utf-8")
            except UnicodeEncodeError:
                raise self.fail(
                    index, f"the {side} body holds text that is not valid Unicode (a lone surrogate)"
                ) from None
        if isinstance(value, _Chunks) and all(isinstance(chunk, (bytes, str)) for chunk in value):
            return b"".join(self.body(chunk, index, side) for chunk in value)  # an iterator body's chunks
        if side == "request" and isinstance(value, (dict, list)):
            return self.aiohttp_body(value, index)
        raise self.fail(index, f"the {side} body is {_kind(value)}, not text or bytes")

    def aiohttp_body(self, value: dict[Any, Any] | list[Any], index: int) -> bytes:
        """aiohttp's stub records the app's ``json=`` or ``data=`` argument itself: JSON when it can be,
        else form fields (``data={"name": value}`` or a list of pairs) URL-encoded."""
        try:
            body = json.dumps(value, ensure_ascii=False, separators=(",", ":"), allow_nan=False).encode("utf-8")
        except (TypeError, ValueError):
            pass
        else:
            self.notes.add(index, "the request body was recorded as the app's json= or data= value (aiohttp), not "
                                  "as bytes: written as JSON")  # fmt: skip
            return body
        fields = list(value.items()) if isinstance(value, dict) else value
        if not all(isinstance(f, (list, tuple)) and len(f) == 2 and isinstance(f[0], str) for f in fields):
            raise self.fail(index, "the request body is a Python value that is neither JSON nor form fields")
        pairs = [(name, v) for name, item in fields for v in (item if isinstance(item, list) else [item])]
        if not all(isinstance(v, (str, bytes, int, float)) for _, v in pairs):
            raise self.fail(index, "the request body is form fields with values that are not text")
        self.notes.add(index, "the request body was recorded as the app's form fields (aiohttp data=), not as "
                              "bytes: written URL-encoded")  # fmt: skip
        return urlencode(pairs).encode("ascii")

    def decoded(
        self, headers: tuple[tuple[str, str], ...], body: bytes, index: int
    ) -> tuple[tuple[tuple[str, str], ...], bytes]:
        """A gzip or deflate body stored decoded, with Content-Encoding and Content-Length dropped."""
        codings = [
            coding.strip().lower()
            for name, value in headers
            if name.lower() == "content-encoding"
            for coding in value.split(",")
            if coding.strip() and coding.strip().lower() != "identity"
        ]
        if not codings or not body:
            return headers, body
        plain = tuple((k, v) for k, v in headers if k.lower() not in ("content-encoding", "content-length"))
        if len(codings) > 1 or codings[0] not in _DECODERS:
            self.notes.add(
                index, f"the response body is compressed ({', '.join(codings)}), which streamtape does not decode: "
                "kept compressed, so its events cannot be read and faults can be positioned by byte only"
            )  # fmt: skip
            return headers, body
        room = self.limit - self.total
        for wbits in _DECODERS[codings[0]]:
            decoder = zlib.decompressobj(wbits)
            try:
                decoded = decoder.decompress(body, room + 1)
                if len(decoded) > room or decoder.unconsumed_tail:
                    raise self.too_big(index, "decompressed, the response bodies add up to")
                decoded += decoder.flush()
            except zlib.error:
                continue
            if not decoder.eof:  # not a whole compressed stream: vcrpy records whole bodies only
                continue
            self.notes.add(
                index, f"the {codings[0]} body is stored decoded; Content-Encoding and Content-Length dropped"
            )
            self.total += len(decoded) - len(body)
            return plain, decoded
        if not _looks_compressed(codings[0], body):
            # aiohttp's stub, and the httpx stub before vcrpy 6, store the body already decoded
            self.notes.add(
                index, f"the body was stored already decoded (as aiohttp and vcrpy < 6 record it), though its headers "
                f"say {codings[0]}: kept as it is, Content-Encoding and Content-Length dropped"
            )  # fmt: skip
            return plain, body
        self.notes.add(
            index, f"the response body does not decode as {codings[0]}, as its headers say: kept as recorded, so a "
            "replay fails to decode it, as vcrpy's did"
        )  # fmt: skip
        return headers, body

    def length(
        self, headers: tuple[tuple[str, str], ...], body: bytes, index: int, method: str, status: int
    ) -> tuple[tuple[str, str], ...]:
        """A Content-Length that no longer matches the body (vcrpy's filters edit bodies without it) is fixed."""
        if method.upper() == "HEAD" or status in _NO_BODY_STATUS or status < 200:
            return headers
        out = []
        for name, value in headers:
            if name.lower() == "content-length" and value.isdigit() and int(value) != len(body):
                self.notes.add(
                    index, f"Content-Length said {value} bytes but the body has {len(body)} (vcrpy's "
                    f"filter_sensitive_data edits bodies without it): set to {len(body)}"
                )  # fmt: skip
                value = str(len(body))
            out.append((name, value))
        return tuple(out)

    # secrets, then the report

    def redact(self, items: list[Interaction]) -> list[Interaction]:
        """Every secret removed, through the recorder's redactor: it first learns the credentials of every
        request and response in the file (one interaction's key may be echoed in another's body), then
        what ``lint`` finds by shape in what is left."""
        redactor = Redactor()
        for item in items:
            redactor.learn_headers(item.request.headers)
            redactor.learn_url(item.request.url)
            if item.response is not None:
                redactor.learn_headers(item.response.headers)
        cleaned = [redactor.interaction(item) for item in items]
        found: dict[str, list[int]] = {}
        values: list[str] = []
        for index, item in enumerate(cleaned):
            for what, value in redact.scan(item, redactor):
                if value:
                    values.append(value)
                    found.setdefault(what, []).append(index)
        if values:
            redactor.learn(*values)
            cleaned = [redactor.interaction(item) for item in items]
            for what, indices in found.items():
                for index in indices:
                    self.notes.add(index, f"{_lower_first(what)}: replaced by REDACTED")
        for index, (before, after) in enumerate(zip(items, cleaned, strict=True)):
            self.secrets_note(index, before, after)
        return cleaned

    def secrets_note(self, index: int, before: Interaction, after: Interaction) -> None:
        for side, headers in (
            ("request", before.request.headers),
            ("response", before.response.headers if before.response else ()),
        ):
            for name in (name.lower() for name, _ in headers if is_secret_header(name)):
                self.dropped.setdefault(side, {}).setdefault(name, None)
        changed = []
        if before.request.url != after.request.url:
            changed.append("the URL")
        if before.request.body != after.request.body:
            changed.append("the request body")
        if before.response is not None and after.response is not None and before.response.body != after.response.body:
            changed.append("the response body")
        if _kept_values(before.request.headers) != [v for _, v in after.request.headers] or (
            before.response is not None
            and after.response is not None
            and _kept_values(before.response.headers) != [v for _, v in after.response.headers]
        ):
            changed.append("a header value")
        if changed:
            self.notes.add(index, f"a secret in {' and '.join(changed)} was replaced by REDACTED")

    def report(self, items: list[Interaction], metadata: Any) -> list[str]:
        for index, item in enumerate(items):
            if item.response is not None and item.response.body and _bodytext.is_plain_text(item.response.body) is None:
                if _frames(item.response) is not None:  # an AWS event stream: written frame by frame, readable
                    self.notes.add(index, "the response body is an AWS event stream: stored one decoded frame per "
                                          "entry (encoding: eventstream; still byte-exact)")  # fmt: skip
                else:
                    self.notes.add(index, "the response body is not UTF-8 text with plain line ends, so it is stored "
                                          "escaped (encoding: escaped; still byte-exact)")  # fmt: skip
            if item.request.body and item.request.json is None and _bodytext.is_plain_text(item.request.body) is None:
                self.notes.add(index, "the request body is not UTF-8 text, so it is stored escaped (still byte-exact)")
        notes = self.notes
        if any(item.body for item in items):
            notes.file.append(TIMING_NOTE)
        if not items:
            notes.file.append("the cassette holds no interactions: the streamtape cassette is empty too")
        for (client, why), indices in self.clients.items():
            recorded = f"{_which(indices)} {'was' if len(indices) == 1 else 'were'} recorded by {client} ({why})"
            if client in _ADAPTED:
                notes.file.append(f"{recorded}; streamtape replays {client} too (its {_ADAPTED[client]} stack)")
                continue
            notes.file.append(
                f"{recorded}; streamtape intercepts httpx2, httpx, aiohttp and urllib3 2.x, not {client}, so while "
                "a tape is entered such a call fails with NetworkBlockedError instead of replaying: move that code "
                "to one of those (or let its host through with allow_hosts, unrecorded)"
            )
        if self.dropped:
            sides = "; ".join(
                f"the {side} header{'s' if len(names) > 1 else ''} {', '.join(map(repr, names))}"
                for side, names in self.dropped.items()
            )
            notes.file.append(f"credentials removed, with their values wherever they appeared: {sides}")
        if metadata:
            keys = ", ".join(map(repr, metadata)) if isinstance(metadata, dict) else "it"
            notes.file.append(f"the cassette's metadata ({keys}) is not carried over: a streamtape cassette holds "
                              "interactions only")  # fmt: skip
        return notes.lines()


def _looks_compressed(coding: str, body: bytes) -> bool:
    """Whether ``body`` starts as a ``coding`` stream does (gzip's magic number, a zlib header)."""
    if coding in ("gzip", "x-gzip"):
        return body[:2] == b"\x1f\x8b"
    return len(body) >= 2 and body[0] & 0x0F == 8 and (body[0] << 8 | body[1]) % 31 == 0


def _kept_values(headers: tuple[tuple[str, str], ...]) -> list[str]:
    return [value for name, value in headers if not is_secret_header(name)]


def _lower_first(text: str) -> str:
    return text[:1].lower() + text[1:]


def _kind(value: Any) -> str:
    return {dict: "a mapping", list: "a list", bool: "true/false", type(None): "null"}.get(
        type(value), type(value).__name__
    )
