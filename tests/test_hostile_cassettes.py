"""Hostile and mangled cassettes: each one loads and replays, or is refused in one sentence.

The starter cassettes (cassettes/anthropic) are mutated deterministically: lines deleted and
duplicated (with the footer's count left, and re-counted so the rest of the loader is reached),
values swapped for every YAML oddity that ever gave an internal error (dates, ``!!float 'abc'``,
4,300-digit integers, ``!!binary``/``!!set``/``!!timestamp``, aliases and alias bombs, ``1e999``,
``.nan``, negative times, non-Latin-1 and CR/LF header values, 100,000-deep nesting...), tags
injected, the file cut short, bytes flipped. Every mutant must either

- load, then replay through the real anthropic SDK (or the raw HTTP client, for a request that is
  not a Messages call) without an exception from inside streamtape other than a ``StreamtapeError``:
  the app may meet what a real server could make the SDK raise, never a streamtape bug; or
- raise ``CassetteFormatError`` naming the file and a line, in one line of text;

and ``streamtape lint``, ``inspect`` and ``play`` on it must end with a sentence, exit 0, 1 or 2,
and never print a traceback or an internal error.

``STREAMTAPE_FUZZ_SCALE`` (default 1) multiplies the number of random mutations per starter;
``python -m tests.test_hostile_cassettes`` runs the corpus and prints what became of it.
"""

from __future__ import annotations

import os
import random
import re
import sys
import tempfile
from collections import Counter
from collections.abc import Iterator
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

import pytest
from click.testing import CliRunner
from hypothesis import HealthCheck, given, settings
from hypothesis import strategies as st

import streamtape
from streamtape import Cassette, CassetteFormatError, StreamtapeError, Tape
from streamtape.cli import main as cli
from tests.support import sdk

ROOT = Path(__file__).resolve().parent.parent
STARTERS = sorted((ROOT / "cassettes" / "anthropic").glob("*.yaml"))
SCALE = float(os.environ.get("STREAMTAPE_FUZZ_SCALE", "1"))
PACKAGE = Path(streamtape.__file__).resolve().parent
#: Exceptions from these packages are what a real server and connection can make the app meet.
WIRE_MODULES = {"httpx", "httpx2", "httpcore", "httpcore2", "h11", "anthropic", "anyio", "pydantic"}

BOMB = (
    "{a: &a [lol, lol, lol, lol, lol, lol, lol, lol, lol], b: &b [*a, *a, *a, *a, *a, *a, *a, *a, *a], "
    "c: &c [*b, *b, *b, *b, *b, *b, *b, *b, *b], d: &d [*c, *c, *c, *c, *c, *c, *c, *c, *c], "
    "e: &e [*d, *d, *d, *d, *d, *d, *d, *d, *d], f: &f [*e, *e, *e, *e, *e, *e, *e, *e, *e], "
    "g: &g [*f, *f, *f, *f, *f, *f, *f, *f, *f], h: &h [*g, *g, *g, *g, *g, *g, *g, *g, *g]}"
)
# Values swapped in for a scalar: every kind of thing that ever reached past the loader.
YAML_ODDITIES = [
    "2024-01-15",
    "2024-02-30",
    "2024-01-15 10:30:00",
    "2001-12-14t21:59:43.10-05:00",
    "10:30",
    "1:2:3:4",
    "yes",
    "no",
    "on",
    "~",
    "null",
    "''",
    '""',
    "=",
    "<<",
    "[]",
    "{}",
    "[1, [2, [3]]]",
    "{a: {b: {c: d}}}",
    "!!float 'abc'",
    "!!float ''",
    "!!int 'x'",
    "!!int ''",
    "!!int '0x'",
    "!!bool maybe",
    "!!str 5",
    "!!null x",
    "!!binary aGVsbG8=",
    "!!binary '%%%'",
    "!!set {a: null}",
    "!!omap [{a: 1}]",
    "!!pairs [{a: 1}]",
    "!!timestamp 2024-01-15",
    "!!timestamp nonsense",
    "!!python/object/apply:os.system ['true']",
    "!!python/name:os.system",
    "!custom x",
    "!!map {a: 1}",
    "!!seq [1]",
    "!!map x",
    "!!str [1]",
    "! 12",
    "9" * 4301,
    "9" * 4300,
    "-" + "9" * 40,
    "0x" + "f" * 3700,
    "0b" + "1" * 5000,
    "1" + ":59" * 3000,
    "1e999",
    "-1e999",
    "1.0e+999",
    ".inf",
    "-.inf",
    ".nan",
    "-1",
    "-0.5",
    "1e300",
    "1.0e+300",
    "99999999999999999999",
    "0",
    "0.0",
    "2000000",
    "&a x",
    "*a",
    "&a [*a]",
    "&a {b: *a}",
    BOMB,
    "'€'",
    "'café'",
    '"a\\r\\nb"',
    '"a\\0b"',
    '"a\\tb"',
    "' x'",
    "'x '",
    '"\\x7f"',
    '"\\u2028"',
    '"\\x85"',
    "'[/]'",
    "'[bold]x[/bold]'",
    "http://[::1",
    "'%'",
    "'\\'",
    "'{'",
    '"it\'s"',
    "[" * 120 + "]" * 120,
    "[" * 100_000 + "]" * 100_000,
    "{a: " * 150 + "1" + "}" * 150,
]
CHUNK_ODDITIES = ["nan", "inf", "-inf", "-1", "1e999", "1e400", "2000000", "0x10", "abc", ""]
SIZE_ODDITIES = ["-3", "abc", "9" * 4400, "1e3", "0x10", "+5"]
END_ODDITIES = [
    "done",
    "{error: Boom}",
    "{error: RemoteProtocolError, at: .nan}",
    "{error: RemoteProtocolError, at: -1}",
    "{error: ReadTimeout}",
    "{error: ClientClosed, message: x, at: 1}",
    "{error: ReadError, message: [1]}",
    "[]",
    "{error: RemoteProtocolError, message: '€ [/]', at: 1e300}",
]
HEADER_NAME_ODDITIES = ["'bad name'", "'€'", "'x:y'", "''", "'[/]'", "5", "~", "'a\\tb'"]
LINE_VALUE = re.compile(r"^(\s*(?:- )?)([^\s:#'\"][^:]*|'[^']*'): (\S.*)$")
BLOCK_HEADER = re.compile(r"^[|>][-+0-9]*$")
INTERESTING_KEYS = (
    *("content", "model", "max_tokens", "stream", "role", "method", "url", "status", "reason", "headers_at"),
    *("at", "error", "message", "version", "lines", "encoding", "type", "Server"),
)


@dataclass
class Mutant:
    label: str
    data: bytes


def _recount(text: str) -> str:
    """The same text with its ``lines: N`` footer made true again (if it still has one)."""
    lines = text.split("\n")
    count = len(lines) - (1 if text.endswith("\n") else 0)
    for i in range(len(lines) - 1, -1, -1):
        if lines[i].startswith("lines: "):
            lines[i] = f"lines: {count}"
            break
    return "\n".join(lines)


def _swap(lines: list[str], index: int, value: str) -> str:
    match = LINE_VALUE.match(lines[index])
    assert match is not None
    out = list(lines)
    out[index] = f"{match.group(1)}{match.group(2)}: {value}"
    return "\n".join(out)


def mutants(path: Path, scale: float = SCALE) -> Iterator[Mutant]:
    """The deterministic corpus for one starter cassette. The oddities are shared out among the
    starters (each meets a third of them, in turn), so the whole corpus meets each several times."""
    text = path.read_text(encoding="utf-8")
    lines = text.split("\n")
    rng = random.Random(path.name)
    turn = STARTERS.index(path) if path in STARTERS else 0
    share = max(1, round(3 / scale))  # a starter meets every share-th oddity

    def mine(items: list[Any]) -> list[Any]:
        return [item for i, item in enumerate(items) if (i + turn) % share == 0]

    n = max(1, round(scale * 3))
    value_lines = [
        i for i, line in enumerate(lines) if (m := LINE_VALUE.match(line)) and not BLOCK_HEADER.match(m.group(3))
    ]
    by_key: dict[str, list[int]] = {}
    for i in value_lines:
        key = LINE_VALUE.match(lines[i]).group(2).strip("'")  # type: ignore[union-attr]
        by_key.setdefault(key, []).append(i)
    header_lines = [i for i in value_lines if lines[i].startswith("      ") and not lines[i].startswith("       ")
                    and any(lines[j].strip() == "headers:" for j in range(max(0, i - 40), i))]  # fmt: skip
    keys = [key for key in INTERESTING_KEYS if key in by_key]

    # the oddities, each at a field the loader checks (in turn), and again at a random field
    for k, value in enumerate(YAML_ODDITIES):
        if (k + turn) % share:
            continue
        key = keys[(k + turn) % len(keys)]
        yield Mutant(f"{key}: {value[:40]}", _swap(lines, rng.choice(by_key[key]), value).encode())
        yield Mutant(f"random field: {value[:40]}", _swap(lines, rng.choice(value_lines), value).encode())
    # in the fields where they did harm: the request's JSON, the times, the status
    key = ("content", "headers_at", "at", "max_tokens", "status")[turn % 5]
    if key in by_key:
        for value in mine(YAML_ODDITIES):
            yield Mutant(f"{key}: {value[:40]}", _swap(lines, by_key[key][0], value).encode())
    if header_lines:
        for value in mine(YAML_ODDITIES[63:79]):
            yield Mutant(f"header value: {value[:40]}", _swap(lines, rng.choice(header_lines), value).encode())
        for name in mine(HEADER_NAME_ODDITIES):
            i = rng.choice(header_lines)
            match = LINE_VALUE.match(lines[i])
            assert match is not None
            out = list(lines)
            out[i] = f"{match.group(1)}{name}: {match.group(3)}"
            yield Mutant(f"header name: {name}", "\n".join(out).encode())
    # the chunk timing: offsets and sizes
    for i in by_key.get("chunks", []):
        prefix, value = lines[i].split("chunks: ", 1)
        pairs = value.split()
        for odd in mine(CHUNK_ODDITIES):
            at, size = pairs[0].split(":")
            out = list(lines)
            out[i] = f"{prefix}chunks: {' '.join([f'{odd}:{size}', *pairs[1:]])}"
            yield Mutant(f"chunk offset: {odd}", "\n".join(out).encode())
        for odd in mine(SIZE_ODDITIES):
            at, size = pairs[-1].split(":")
            out = list(lines)
            out[i] = f"{prefix}chunks: {' '.join([*pairs[:-1], f'{at}:{odd}'])}"
            yield Mutant(f"chunk size: {odd}", "\n".join(out).encode())
        out = list(lines)
        out[i] = f"{prefix}chunks: {' '.join(pairs[:-1])}"
        yield Mutant("chunks: one pair fewer", "\n".join(out).encode())
    for i in by_key.get("end", [])[:1]:
        for odd in mine(END_ODDITIES):
            yield Mutant(f"end: {odd}", _swap(lines, i, odd).encode())
    for i in by_key.get("reason", [])[:1]:
        for odd in mine(["escaped", "base64", "text"]):
            out = list(lines)
            out[i] = lines[i].replace(f"reason: {lines[i].split('reason: ', 1)[1]}", f"encoding: {odd}")
            yield Mutant(f"encoding: {odd}", "\n".join(out).encode())
    # an alias between two fields
    for _ in range(n):
        first, second = sorted(rng.sample(value_lines, 2))
        out = list(lines)
        m1, m2 = LINE_VALUE.match(lines[first]), LINE_VALUE.match(lines[second])
        assert m1 is not None and m2 is not None
        out[first] = f"{m1.group(1)}{m1.group(2)}: &x {m1.group(3)}"
        out[second] = f"{m2.group(1)}{m2.group(2)}: *x"
        yield Mutant("alias between fields", "\n".join(out).encode())
    # lines lost and doubled, with the footer left as it was and made true again
    for _ in range(n * 2):
        i = rng.randrange(len(lines))
        deleted = "\n".join(lines[:i] + lines[i + 1 :])
        doubled = "\n".join(lines[: i + 1] + lines[i:])
        yield Mutant("line deleted", deleted.encode())
        yield Mutant("line deleted, re-counted", _recount(deleted).encode())
        yield Mutant("line doubled", doubled.encode())
        yield Mutant("line doubled, re-counted", _recount(doubled).encode())
    for _ in range(n):  # a run of lines lost, re-counted
        i = rng.randrange(len(lines))
        yield Mutant(
            "lines deleted, re-counted", _recount("\n".join(lines[:i] + lines[i + rng.randint(2, 6) :])).encode()
        )
    # a tag before a random value
    for tag in mine(
        ["!!binary", "!!set", "!!timestamp", "!!omap", "!!python/str", "!foo", "!!float", "!!int", "!!bool"]
    ):
        i = rng.choice(value_lines)
        match = LINE_VALUE.match(lines[i])
        assert match is not None
        out = list(lines)
        out[i] = f"{match.group(1)}{match.group(2)}: {tag} {match.group(3)}"
        yield Mutant(f"tag injected: {tag}", "\n".join(out).encode())
    # cut short, and bytes flipped
    data = text.encode()
    for _ in range(n):
        cut = rng.randrange(len(data))
        yield Mutant("cut short", data[:cut])
        yield Mutant("cut short, re-counted", _recount(data[:cut].decode(errors="ignore")).encode())
    flips = [b"\x00", b"\xff", b"\xc3", b":", b"-", b"[", b"{", b"&", b"*", b"!", b"|", b">", b'"', b"'", b"\t", b"\r",
             b" ", b"#", b"\n", b"%", b"@", b"`", b"?", b"\\"]  # fmt: skip
    for _ in range(n * 3):
        at = rng.randrange(len(data))
        yield Mutant("byte flipped", data[:at] + rng.choice(flips) + data[at + 1 :])
    # the whole file
    whole = [
        Mutant("empty", b""),
        Mutant("only a comment", b"# nothing\n"),
        Mutant("CRLF line ends", text.replace("\n", "\r\n").encode()),
        Mutant("byte order mark", "\ufeff".encode() + data),
        Mutant("a second document", data + b"---\nversion: 2\n"),
        Mutant("a YAML directive", _recount("%YAML 1.1\n---\n" + text).encode()),
        Mutant("a tab for indentation", text.replace("\n  response:", "\n\tresponse:", 1).encode()),
        Mutant("not UTF-8", data.replace(b"e", b"\xe9", 1)),
        Mutant("a list at the top", b"- " + data.replace(b"\n", b"\n  ")),
    ]
    yield from mine(whole)


# --- checking one mutant -----------------------------------------------------------------------------


@dataclass
class Verdict:
    outcome: str  # "refused", "replayed"
    failures: list[str] = field(default_factory=list)


def _in_streamtape(exc: BaseException) -> bool:
    tb = exc.__traceback__
    while tb is not None:
        if Path(tb.tb_frame.f_code.co_filename).resolve().is_relative_to(PACKAGE):
            return True
        tb = tb.tb_next
    return False


def internal_errors(exc: BaseException) -> list[str]:
    """Exceptions in ``exc``'s chain that streamtape's own code raised, other than its own errors
    and the wire errors (httpcore's, mapped by httpx) it raises on purpose to replay a cut."""
    found, seen, todo = [], set(), [exc]
    while todo:
        item = todo.pop()
        if item is None or id(item) in seen:
            continue
        seen.add(id(item))
        module = type(item).__module__.split(".")[0]
        if not isinstance(item, StreamtapeError) and module not in WIRE_MODULES and _in_streamtape(item):
            found.append(f"{type(item).__name__}: {str(item)[:200]}")
        todo += [item.__cause__, item.__context__]
    return found


_CLIENTS: dict[str, Any] = {}


def _client(origin: str) -> Any:
    """One SDK client per origin for the whole run (each new one builds an SSL context: 30 ms)."""
    if origin not in _CLIENTS:
        if "raw" not in _CLIENTS:
            _CLIENTS["raw"] = sdk.HTTP.Client()
        _CLIENTS[origin] = sdk.client(origin, http_client=_CLIENTS["raw"])
    return _CLIENTS[origin]


def replay(cassette: Cassette, workdir: Path) -> list[str]:
    """Replay every interaction through the SDK (or the raw client); the internal errors met."""
    failures: list[str] = []
    for index, item in enumerate(cassette.interactions):
        single = Cassette([item]).save(workdir / f"replay-{index}.yaml")  # what loads must save and load again
        Cassette.load(single)
        request = item.request
        try:
            with Tape(single, speed=0, match_on=["method", "path"]):
                if isinstance(request.json, dict) and "messages" in request.json:
                    params = {k: v for k, v in request.json.items() if k != "stream"}
                    origin = request.url.split("/v1/")[0]
                    with _client(origin).messages.stream(**params) as stream:
                        for _ in stream:
                            pass
                        stream.get_final_message()
                else:
                    with _client("raw").stream(request.method, request.url) as response:
                        for _ in response.iter_bytes():
                            pass
        except StreamtapeError:
            pass  # the harness speaking (an unmatched request, an incomplete recording): by design
        except Exception as exc:  # what the app met: a wire or SDK error is fine, a streamtape bug is not
            failures += [f"replay #{index}: {error}" for error in internal_errors(exc)]
    return failures


_RUNNER = CliRunner()


def run_cli(path: Path, refused: str | None) -> list[str]:
    """``lint``, ``inspect`` (text and JSON) and ``play`` on the file; what went wrong."""
    failures: list[str] = []
    for args in (["lint", str(path)], ["inspect", str(path)], ["inspect", "--json", str(path)],
                 ["play", str(path), "--speed", "0"]):  # fmt: skip
        result = _RUNNER.invoke(cli, args)
        output = result.output + (result.stderr if result.stderr_bytes is not None else "")
        name = args[0] if args[1] != "--json" else "inspect --json"
        if result.exception is not None and not isinstance(result.exception, SystemExit):
            failures.append(f"{name}: raised {type(result.exception).__name__}: {result.exception}")
        elif result.exit_code not in (0, 1, 2):
            failures.append(f"{name}: exit code {result.exit_code}")
        if "Traceback" in output or "internal error" in output:
            failures.append(f"{name}: {output.strip()[-300:]}")
        alone = result.exit_code == 2 and result.stderr == f"streamtape: {refused}\n"
        if refused is not None and args[0] in ("inspect", "play") and not alone:
            failures.append(f"{name}: expected the load error alone, got {result.exit_code}: {output[-300:]!r}")
        if (
            refused is not None
            and args[0] == "lint"
            and (result.exit_code != 1 or f"[schema] {path}: line " not in output)
        ):
            failures.append(
                f"lint: expected a problem naming the file and a line, got {result.exit_code}: {output[-300:]!r}"
            )
    return failures


def check(path: Path, workdir: Path, cli_too: bool = True) -> Verdict:
    try:
        cassette = Cassette.load(path)
    except CassetteFormatError as exc:
        message = str(exc)
        failures = []
        if not message.startswith(f"{path}: ") or not re.match(r"line \d+", message[len(f"{path}: ") :]):
            failures.append(f"the error does not name the file and a line: {message[:300]}")
        if "\n" in message:
            failures.append(f"the error is not one line: {message[:300]!r}")
        verdict = Verdict("refused", failures)
        if cli_too:
            verdict.failures += run_cli(path, message)
        return verdict
    except BaseException as exc:  # noqa: BLE001 - anything else is the bug this test is for
        return Verdict("crashed", [f"load: {type(exc).__name__}: {str(exc)[:300]}"])
    verdict = Verdict("replayed", replay(cassette, workdir))
    if cli_too:
        verdict.failures += run_cli(path, None)
    return verdict


def run_corpus(starters: list[Path], workdir: Path, scale: float = SCALE) -> tuple[Counter[str], dict[str, list[str]]]:
    """Every mutant of ``starters``: outcomes counted, and failures by what went wrong (with examples)."""
    outcomes: Counter[str] = Counter()
    failures: dict[str, list[str]] = {}
    for starter in starters:
        for number, mutant in enumerate(mutants(starter, scale)):
            path = workdir / f"{starter.stem}-{number}.yaml"
            path.write_bytes(mutant.data)
            verdict = check(path, workdir)
            outcomes[verdict.outcome] += 1
            for failure in verdict.failures:
                key = re.sub(r"\d+", "N", failure.replace(str(path), "FILE"))[:160]
                failures.setdefault(key, []).append(f"{starter.name} / {mutant.label}")
            path.unlink()
    return outcomes, failures


@pytest.fixture
def one_ssl_context(monkeypatch: pytest.MonkeyPatch) -> None:
    """Every SDK client ``play`` builds loads the CA bundle (40 ms, a third of this test's time); a
    replay never opens TLS, so one context can serve them all."""
    import functools
    import ssl

    monkeypatch.setattr(ssl, "create_default_context", functools.lru_cache(maxsize=None)(ssl.create_default_context))


@pytest.mark.sdk
@pytest.mark.parametrize("starter", STARTERS, ids=lambda p: p.stem)
@pytest.mark.usefixtures("one_ssl_context")
def test_every_mutant_replays_or_is_refused_in_one_sentence(starter: Path, tmp_path: Path) -> None:
    outcomes, failures = run_corpus([starter], tmp_path)
    assert sum(outcomes.values()) > 50
    report = "\n".join(f"{key}\n    e.g. {', '.join(examples[:3])}" for key, examples in failures.items())
    assert not failures, f"{sum(len(v) for v in failures.values())} failure(s) in {dict(outcomes)}:\n{report}"


# --- properties -------------------------------------------------------------------------------------

TEXT = (ROOT / "cassettes" / "anthropic" / "text.yaml").read_text(encoding="utf-8")
TEXT_LINES = TEXT.split("\n")
TEXT_VALUE_LINES = [i for i, line in enumerate(TEXT_LINES) if LINE_VALUE.match(line)]
SCALARS = st.one_of(
    st.sampled_from(YAML_ODDITIES),
    st.text(st.characters(blacklist_categories=("Cs",)), max_size=12).map(lambda s: repr(s).replace("\\", "\\\\")),
    st.integers().map(str),
    st.floats().map(str),
    st.from_regex(r"[-+]?[0-9]{1,5}(\.[0-9]*)?([eE][-+]?[0-9]{1,4})?", fullmatch=True),
    st.from_regex(r"[0-9]{4}-[0-9]{1,2}-[0-9]{1,2}([Tt ][0-9]{1,2}:[0-9]{2}:[0-9]{2}(\.[0-9]+)?)?", fullmatch=True),
)


@settings(max_examples=150, deadline=None, suppress_health_check=[HealthCheck.function_scoped_fixture])
@given(index=st.sampled_from(TEXT_VALUE_LINES), value=SCALARS)
def test_any_value_anywhere_loads_and_saves_or_is_refused(index: int, value: str) -> None:
    """Whatever plain or quoted YAML value any field gets: a ``CassetteFormatError`` with file and line,
    or a cassette that saves and loads back the same."""
    text = _swap(TEXT_LINES, index, value)
    with tempfile.TemporaryDirectory() as tmp:
        path = Path(tmp) / "c.yaml"
        path.write_text(text, encoding="utf-8")
        try:
            cassette = Cassette.load(path)
        except CassetteFormatError as exc:
            assert re.match(rf"{re.escape(str(path))}: line \d+", str(exc)), str(exc)
            return
        again = Cassette.load(cassette.save(Path(tmp) / "again.yaml"))
        assert [i.request.body for i in again] == [i.request.body for i in cassette]
        assert [i.response and i.response.headers for i in again] == [
            i.response and i.response.headers for i in cassette
        ]


# --- a few mutants through the real command, as a user runs it ---------------------------------------

HOSTILE = {
    "date": ("content: Say hello", "content: 2024-01-15"),  # a hand-edited request: read as the text it is
    "euro": ("Server: cloudflare", "Server: €"),
    "float": ("max_tokens: 1024", "max_tokens: !!float 'abc'"),
    "bomb": ("max_tokens: 1024", f"max_tokens: {BOMB}"),
    "deep": ("content: Say hello", "content: " + "[" * 100_000 + "]" * 100_000),
    "nan": ("headers_at: 0.35", "headers_at: .nan"),
}


def test_the_command_says_one_sentence_per_file(tmp_path: Path) -> None:
    """``lint DIR`` reports every file and goes on past the broken ones; ``inspect`` and ``play`` say
    one sentence; no traceback anywhere."""
    import subprocess

    for name, (old, new) in HOSTILE.items():
        assert old in TEXT, name
        (tmp_path / f"{name}.yaml").write_text(TEXT.replace(old, new, 1), encoding="utf-8")
    (tmp_path / "fine.yml").write_text(TEXT, encoding="utf-8")  # *.yml is a cassette too

    def run(*args: str) -> subprocess.CompletedProcess[str]:
        result = subprocess.run([sys.executable, "-m", "streamtape", *args], capture_output=True, text=True,
                                timeout=120, cwd=ROOT)  # fmt: skip
        assert "Traceback" not in result.stdout + result.stderr, (args, result.stderr)
        assert "internal error" not in result.stdout + result.stderr, (args, result.stdout, result.stderr)
        return result

    lint = run("lint", str(tmp_path))
    assert lint.returncode == 1
    assert "7 cassette(s)" in lint.stdout
    for name in ("euro", "float", "bomb", "deep", "nan"):
        assert re.search(rf"^\[schema\] {re.escape(str(tmp_path / name))}\.yaml: line \d+", lint.stdout, re.M), name
    assert f"{tmp_path / 'date.yaml'}: line" not in lint.stdout and "fine.yml" not in lint.stdout
    for name in ("euro", "deep"):
        result = run("inspect", str(tmp_path / f"{name}.yaml"))
        assert result.returncode == 2 and result.stderr.startswith(f"streamtape: {tmp_path / name}.yaml: line ")
        assert result.stderr.count("\n") == 1, result.stderr
    play = run("play", str(tmp_path / "date.yaml"), "--speed", "0")
    assert play.returncode == 0 and "stop_reason end_turn" in play.stdout, play.stdout + play.stderr


def main() -> None:  # pragma: no cover - a tool for people
    scale = float(sys.argv[1]) if len(sys.argv) > 1 else SCALE
    with tempfile.TemporaryDirectory() as tmp:
        outcomes, failures = run_corpus(STARTERS, Path(tmp), scale)
    print(f"{sum(outcomes.values())} mutants: {dict(outcomes)}")
    print(f"{len(failures)} distinct failure(s), {sum(len(v) for v in failures.values())} in all")
    for key, examples in failures.items():
        print(f"- {key}\n    {len(examples)}x, e.g. {', '.join(examples[:3])}")


if __name__ == "__main__":  # pragma: no cover
    main()
