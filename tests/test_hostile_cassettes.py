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

import logging
import math
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
    if "raw" not in _CLIENTS:
        _CLIENTS["raw"] = sdk.HTTP.Client()
    if origin not in _CLIENTS:
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


# --- every cassette kind: provider starters, event-stream frames, packed timing, recorded ---------------

PROVIDER_STARTERS = [ROOT / "cassettes" / name for name in
                     ("openai/chat_text.yaml", "openai/responses_function_call.yaml", "gemini/text.yaml",
                      "bedrock/text.yaml", "bedrock/invoke_cohere.yaml")]  # fmt: skip


def _kinds_seeds(directory: Path) -> list[Path]:
    """Cassettes of the kinds the starters lack: streams of 1,500 chunks (packed timing), SSE and Bedrock
    frames; event-stream frames with typed headers, a binary payload, a bad CRC and a cut frame; and
    escaped bodies, an error before headers, repeated headers and a ``recorded`` field."""
    from streamtape.age import Recorded
    from streamtape.cassette import Interaction, Request, Response
    from streamtape.framing.eventstream import Typed, encode_frame
    from streamtape.wire import Cut, End

    def split(body: bytes) -> tuple[tuple[float, int], ...]:  # 1,500 chunks or more: written packed
        size = max(1, len(body) // 1500)
        sizes = [size] * (len(body) // size)
        sizes[-1] += len(body) - sum(sizes)
        return tuple((0.3 + i / 1000, n) for i, n in enumerate(sizes))

    text = Cassette.load(ROOT / "cassettes" / "anthropic" / "text.yaml").interactions[0]
    timing = split(text.body)
    sse = Response(200, text.response.headers, text.body, timing, "OK", 0.25, End(timing[-1][0]))  # type: ignore[union-attr]
    bedrock = Cassette.load(ROOT / "cassettes" / "bedrock" / "text.yaml").interactions[0]
    ftiming = split(bedrock.body)
    stream = (("content-type", "application/vnd.amazon.eventstream"),)
    packed = Response(200, stream, bedrock.body, ftiming, "OK", 0.25, End(ftiming[-1][0]))
    typed = [
        encode_frame(
            [(":event-type", "chunk"), (":message-type", "event"), ("flag", True)],
            b'{"bytes":"eyJ0ZXh0IjoiaGkifQ==","p":"ab"}',
        ),  # fmt: skip
        encode_frame([(":event-type", "x"), (":message-type", "event")], b"\x00\xff\x10binary"),
        encode_frame(
            [
                ("n", Typed("int32", 5)),
                ("t", Typed("timestamp", 1_700_000_000_000)),
                ("u", Typed("uuid", b"0123456789abcdef")),
                ("b", b"\x01\x02"),
                ("i64", Typed("int64", 2**40)),
            ],
            b"{}",
        ),  # fmt: skip
    ]
    bad = bytearray(typed[0])
    bad[-1] ^= 1
    tbody = b"".join(typed) + bytes(bad) + typed[0][:10]
    cohere = Request("POST", "https://bedrock-runtime.us-east-1.amazonaws.com/model/cohere.command-r-v1%3A0/"
                     "invoke-with-response-stream", (("Content-Type", "application/json"),), b'{"message":"hi"}')  # fmt: skip
    raw = Response(200, stream, tbody, ((0.3, len(tbody)),), "OK", 0.25, Cut("RemoteProtocolError", None, 0.4))
    escaped = Response(200, (("content-type", "text/event-stream"), ("x-a", "1"), ("x-a", "2")),
                       b"data: \x00\xff binary\r\n\r\n", ((0.1, 5), (0.2, 14)), "", 0.05, End(0.2))  # fmt: skip
    when = Recorded("2026-12-01T10:00:00Z", "anthropic 2.17.0", "httpx2")
    cassettes = {
        "packed_sse": [Interaction(text.request, sse, recorded=when)],
        "packed_frames": [Interaction(bedrock.request, packed)],
        "typed_frames": [Interaction(cohere, raw)],
        "mixed": [
            Interaction(Request("POST", "https://api.example.com/v1/raw", (), b"\x00\x01binary\xff"), escaped),
            Interaction(
                text.request, error=Cut("ConnectError", "boom", 0.0), recorded=Recorded("2020-01-01T00:00:00Z")
            ),
        ],
    }
    return [Cassette(items).save(directory / f"{name}.yaml") for name, items in cassettes.items()]


# What the hidden adversarial runs met, aimed at the newer parts of a cassette: (a line it applies to,
# what that line becomes). ``{v}`` is the line's own value.
_KEY = r"^(\s*(?:- )?)(?P<key>[^\s:#'\"][^:]*|'[^']*'): (?P<value>\S.*)$"
FRAME_HEADER = r"^ {8}(?:\S[^:]*|'[^']*'): "
KIND_MUTATIONS: list[tuple[str, str, list[str]]] = [
    (
        FRAME_HEADER,
        "value",
        [
            "{int32: 99999999999}",
            "{int8: 300}",
            "{int64: 99999999999999999999}",
            "{timestamp: -1}",
            "{uuid: nope}",
            "{uuid: [1]}",
            "{bytes: '%%%'}",
            "{bytes: 5}",
            "{float: 1}",
            "{int32: 1.5}",
            "{int32: true}",
            "{int32: 1, int8: 2}",
            "{}",
            "[]",
            "5",
            ".nan",
            "~",
            "'" + "x" * 70_000 + "'",
            "2024-01-15",
            "!!binary aGk=",
        ],
    ),  # fmt: skip
    (FRAME_HEADER, "key", ["''", "'" + "n" * 300 + "'", "5", "~", "true", "'€'", '"a\\r\\nb"', '"\\x00"', "1.5"]),
    (
        r"^ {4}[- ] (payload|bytes|p): ",
        "value",
        ["5", "~", "[]", "{}", "!!binary aGk=", '"\\x00\\xff"', "2024-01-15", "'" + "{" * 5000 + "'"],
    ),  # fmt: skip
    (r"^ {4}[- ] (raw|payload_base64): ", "value", ["'%%%'", "AAAA", "''", "5", "AAAAaQ", "[]", "'AAAA AAAA'"]),
    (
        r"^ {6}(payload|bytes|raw): ",
        "after",
        ["crc: 12345", "raw: AAAA", "headers: 5", "payload_base64: 'AA=='", '"a\\r\\nb": 1'],
    ),  # fmt: skip
    (
        r"^ +at: '?\d{4}-",
        "value",
        [
            "2024-02-30T00:00:00Z",
            "'0001-01-01T00:00:00+05:00'",
            "'9999-12-31T23:59:59-05:00'",
            "'2024-01-15T25:00:00Z'",
            "'" + "9" * 5000 + "'",
            "1e999",
            "~",
            "[]",
            "!!timestamp 2024-01-15",
        ],
    ),  # fmt: skip
    (r"^ {4}(sdk|stack): ", "value", ["5", "[]", "{}", "'\\x00'", "true"]),
    (
        r"^ {6}[A-Za-z][-A-Za-z0-9_]*: ",
        "value",
        [
            "'€'",
            '"a\\r\\nb"',
            '"a\\x00b"',
            '"\\u2028"',
            "' lead'",
            "[]",
            "[[1]]",
            "{a: 1}",
            "1e999",
            ".nan",
            "!!binary aGk=",
        ],
    ),  # fmt: skip
    (r"^ {6}[A-Za-z][-A-Za-z0-9_]*: ", "key", ["'bad name'", "'€'", "''", '"a\\r\\nb"', "5", "~", "'[/]'"]),
    (
        r"^ {4}url: ",
        "value",
        [
            "1e999",
            "'uuu'",
            "'ftp://h/x'",
            "'http:///x'",
            "'//h/x'",
            "'http://€/x'",
            "'http://h/" + "u" * 70_000 + "'",
            "'http://h:99999/'",
        ],
    ),  # fmt: skip
    (
        r"^ +(headers_at|at|status|reason|method|encoding|lines|version): ",
        "value",
        ["1e999", "-1", ".nan", "1e300", "9" * 4300, "0x10", "1:30", "2024-01-15", "[]", "~", "!!float 'abc'", "'€'"],
    ),
]


def _packed_mutations(line: str) -> list[str]:
    """A packed ``chunks`` line cut, miscounted, re-spelt, or holding NaN, infinite or negative times."""
    import base64
    import struct

    prefix, rest = line.split("chunks: packed ", 1)
    count, blob = rest.split(" ", 1)
    raw, n = base64.b64decode(blob), int(count)

    def times(first: float) -> str:
        return base64.b64encode(struct.pack("<d", first) + raw[8:]).decode()

    return [prefix + "chunks: " + value for value in (
        f"packed {count} {blob[: len(blob) // 2]}", f"packed {count} {blob[:-4]}", f"packed {n + 1} {blob}",
        f"packed {n - 1} {blob}", f"packed 0 {blob}", f"packed {'9' * 5000} {blob}", f"packed -1 {blob}",
        f"packed {count}", f"packed {count} {blob[:10]}!!{blob[12:]}", f"packed {count} {times(math.nan)}",
        f"packed {count} {times(math.inf)}", f"packed {count} {times(-1.0)}", f"packed {count} {times(1e300)}",
        f"PACKED {count} {blob}", f"'packed {count} {blob}'", f"packed {count}\n  {blob}",
        " ".join(("nan" if i == 5 else f"{0.3 + i / 1000:.4f}") + ":1" for i in range(n)),
    )]  # fmt: skip


def kind_mutants(path: Path, values: int = 3, fields: bool = True) -> Iterator[Mutant]:
    """Deterministic mutants of ``path`` aimed at its frames, packed timing, ``recorded`` field, headers
    and URL: for each pattern (unless not ``fields``: a long stream's are those of a short one), one line
    and ``values`` of its values (seeded by the file's name and scaled by ``STREAMTAPE_FUZZ_SCALE``),
    re-counted so that the loader's checks of the value itself are reached; then the whole-file ones."""
    text = path.read_text(encoding="utf-8")
    lines = text.split("\n")
    rng = random.Random(path.name)
    values = max(1, round(values * SCALE))
    for pattern, where, choices in KIND_MUTATIONS if fields else ():
        found = [i for i, line in enumerate(lines) if re.match(pattern, line) and re.match(_KEY, line)]
        for i in rng.sample(found, min(1, len(found))):
            match = re.match(_KEY, lines[i])
            assert match is not None
            for value in rng.sample(choices, min(len(choices), values)):
                out = list(lines)
                if where == "value":
                    out[i] = f"{match.group(1)}{match.group('key')}: {value}"
                elif where == "key":
                    out[i] = f"{match.group(1)}{value}: {match.group('value')}"
                else:
                    out.insert(i + 1, " " * (len(lines[i]) - len(lines[i].lstrip())) + value)
                yield Mutant(f"{pattern[:20]} {where}: {value[:30]}", _recount("\n".join(out)).encode())
    for i, line in enumerate(lines):
        if "chunks: packed " in line:
            for value in _packed_mutations(line):
                yield Mutant(f"packed: {value.split('chunks: ', 1)[1][:30]}",
                             _recount("\n".join([*lines[:i], value, *lines[i + 1 :]])).encode())  # fmt: skip
            break
    data = text.encode()
    yield Mutant("invalid UTF-8", data[: len(data) // 2] + b"\xff\xfe" + data[len(data) // 2 :])
    yield Mutant("UTF-16", text.encode("utf-16"))
    yield Mutant("byte order mark", b"\xef\xbb\xbf" + data)
    yield Mutant("CR line ends", data.replace(b"\n", b"\r"))
    yield Mutant("a very long line", _recount(text.replace("\n", "\n# " + "x" * 1_000_000 + "\n", 1)).encode())
    cut = rng.randrange(len(data))
    yield Mutant("cut short", data[:cut])
    yield Mutant("cut short, re-counted", _recount(data[:cut].decode(errors="ignore")).encode())


def serve_errors(cassette: Cassette, caplog: pytest.LogCaptureFixture) -> list[str]:
    """Every recorded request sent to a ``ReplayServer`` of the cassette: what went wrong inside it."""
    from urllib.parse import urlsplit

    from streamtape.server import ReplayServer

    failures: list[str] = []
    caplog.clear()
    with ReplayServer(cassette, speed=0, log=lambda line: None) as server:
        for item in cassette.interactions:
            parts = urlsplit(item.request.url)
            target = f"{server.base_url}/{parts.path.lstrip('/')}" + (f"?{parts.query}" if parts.query else "")
            try:
                with _client("raw").stream(item.request.method, target, content=item.request.body) as response:
                    for _ in response.iter_bytes():
                        pass
            except sdk.HTTP.HTTPError:
                pass  # a recorded cut, over a socket
    failures += [f"serve: {record.getMessage()} {record.exc_info and record.exc_info[1]!r}"
                 for record in caplog.records if record.levelno >= logging.ERROR]  # fmt: skip
    return failures


@pytest.fixture(scope="module")
def kinds_dir(tmp_path_factory: pytest.TempPathFactory) -> Path:
    directory = tmp_path_factory.mktemp("kinds")
    _kinds_seeds(directory)
    return directory


KIND_SEEDS = [*(f"starter:{p.parent.name}/{p.stem}" for p in PROVIDER_STARTERS),
              "packed_sse", "packed_frames", "typed_frames", "mixed"]  # fmt: skip


@pytest.mark.parametrize("seed", KIND_SEEDS)
@pytest.mark.usefixtures("one_ssl_context")
def test_every_kind_of_cassette_mutated_replays_or_is_refused(
    seed: str, kinds_dir: Path, tmp_path: Path, caplog: pytest.LogCaptureFixture
) -> None:
    """Provider starters (OpenAI, Gemini, Bedrock), event-stream frames, packed timing and ``recorded``,
    mutated: each mutant is refused with the file and a line by load, lint, inspect and play, or it
    loads, and then lint, inspect, play (the provider's own SDK), a tape and ``ReplayServer`` all
    replay it without an internal error."""
    source = ROOT / "cassettes" / f"{seed.removeprefix('starter:')}.yaml" if seed.startswith("starter:") \
        else kinds_dir / f"{seed}.yaml"  # fmt: skip
    caplog.set_level(logging.ERROR)
    outcomes: Counter[str] = Counter()
    failures: dict[str, list[str]] = {}
    for number, mutant in enumerate(kind_mutants(source, fields=not seed.startswith("packed"))):
        path = tmp_path / f"m{number}.yaml"
        path.write_bytes(mutant.data)
        verdict = check(path, tmp_path, cli_too=True)
        if verdict.outcome == "replayed":
            verdict.failures += serve_errors(Cassette.load(path), caplog)
        outcomes[verdict.outcome] += 1
        for failure in verdict.failures:
            failures.setdefault(re.sub(r"\d+", "N", failure.replace(str(path), "FILE"))[:160], []).append(mutant.label)
    assert outcomes["refused"] > 10 and outcomes["replayed"] > 0, outcomes
    report = "\n".join(f"{key}\n    e.g. {', '.join(examples[:3])}" for key, examples in failures.items())
    assert not failures, f"{sum(len(v) for v in failures.values())} failure(s) in {dict(outcomes)}:\n{report}"


# --- what the hidden adversarial runs met, one by one ----------------------------------------------------

BEDROCK_TEXT = (ROOT / "cassettes" / "bedrock" / "text.yaml").read_text(encoding="utf-8")
REFUSED_KINDS = {
    "url-scheme": (
        TEXT,
        "url: https://api.anthropic.com/v1/messages",
        "url: ftp://h/v1/messages",
        "request.url: expected an absolute http:// or https:// URL",
    ),
    "url-relative": (
        TEXT,
        "url: https://api.anthropic.com/v1/messages",
        "url: /v1/messages",
        "request.url: expected an absolute http:// or https:// URL",
    ),
    "url-number": (
        TEXT,
        "url: https://api.anthropic.com/v1/messages",
        "url: 1e999",
        "request.url: expected an absolute http:// or https:// URL",
    ),
    "url-host": (
        TEXT,
        "url: https://api.anthropic.com/v1/messages",
        "url: https://€.com/v1/messages",
        "request.url: the host '€.com' is not ASCII",
    ),
    "url-long": (
        TEXT,
        "url: https://api.anthropic.com/v1/messages",
        "url: https://h/" + "u" * 70_000,
        "request.url: a URL of 70,010 characters",
    ),
    "recorded-offset": (
        TEXT,
        "- request:",
        "- recorded: {at: '0001-01-01T00:00:00+05:00'}\n  request:",
        "recorded.at: expected a UTC time stamp",
    ),
    "frame-header-crlf": (
        BEDROCK_TEXT,
        '        :message-type: event\n      payload: \'{"p":"abcdefghijklmnopqr"',
        '        :message-type: event\n        "a\\r\\nb": 1\n      payload: \'{"p":"abcdefghijklmnopqr"',
        "response.body[0].headers.'a\\r\\nb': a number needs its type",
    ),
    "frame-field-crlf": (
        BEDROCK_TEXT,
        '        :message-type: event\n      payload: \'{"p":"abcdefghijklmnopqr"',
        '        :message-type: event\n      "a\\r\\nb": 1\n      payload: \'{"p":"abcdefghijklmnopqr"',
        "response.body[0].'a\\r\\nb': unknown field",
    ),
    "frame-header-number-name": (
        BEDROCK_TEXT,
        '        :message-type: event\n      payload: \'{"p":"abcdefghijklmnopqr"',
        '        :message-type: event\n        5: x\n      payload: \'{"p":"abcdefghijklmnopqr"',
        "response.body[0].headers: the header name 5 is not text",
    ),
}


@pytest.mark.parametrize("case", REFUSED_KINDS)
def test_what_cannot_replay_is_refused_at_load_with_the_line(case: str, tmp_path: Path) -> None:
    text, old, new, message = REFUSED_KINDS[case]
    assert old in text
    path = tmp_path / "c.yaml"
    path.write_text(_recount(text.replace(old, new, 1)), encoding="utf-8")
    with pytest.raises(CassetteFormatError) as caught:
        Cassette.load(path)
    shown = str(caught.value)
    assert re.match(rf"{re.escape(str(path))}: line \d+, interactions\[0\]\.", shown) and message in shown, shown
    assert "\n" not in shown and "\r" not in shown


def test_a_packed_count_of_5000_digits_is_refused_in_one_sentence(tmp_path: Path, kinds_dir: Path) -> None:
    text = (kinds_dir / "packed_sse.yaml").read_text(encoding="utf-8")
    path = tmp_path / "c.yaml"
    path.write_text(re.sub(r"chunks: packed \d+ ", "chunks: packed " + "9" * 5000 + " ", text), encoding="utf-8")
    with pytest.raises(CassetteFormatError, match=r"line \d+, interactions\[0\]\.response\.chunks: the packed "
                                                  r"timing claims '9+\.\.\.' chunks"):  # fmt: skip
        Cassette.load(path)


def test_lint_says_when_a_directory_holds_no_cassette(tmp_path: Path) -> None:
    (tmp_path / "empty" / "sub").mkdir(parents=True)
    (tmp_path / "empty" / "dir.yaml").mkdir()  # a directory named like a cassette is not one
    result = _RUNNER.invoke(cli, ["lint", str(tmp_path / "empty")])
    assert result.exit_code == 2 and "no cassettes (*.yaml, *.yml) in this directory" in result.stderr


def test_lint_fix_that_cannot_fix_leaves_the_file_as_it_was(tmp_path: Path) -> None:
    """A file ``--fix`` cannot load keeps its bytes; the problem is reported with the file and line."""
    for name, data in {"deep": TEXT.replace("content: Say hello", "content: " + "[" * 500 + "]" * 500, 1),
                       "alias": TEXT.replace("max_tokens: 1024", f"max_tokens: {BOMB}", 1),
                       "frames": BEDROCK_TEXT.replace("payload: '{\"p\"", "payload_base64: '%%%'\n      x: '{\"p\"", 1),
                       "cut": TEXT[: len(TEXT) // 2]}.items():  # fmt: skip
        path = tmp_path / f"{name}.yaml"
        path.write_text(data, encoding="utf-8")
        before = path.read_bytes()
        result = _RUNNER.invoke(cli, ["lint", "--fix", str(path)])
        assert result.exit_code == 1 and f"[schema] {path}: line " in result.output, (name, result.output)
        assert path.read_bytes() == before, name
        assert [p.name for p in tmp_path.iterdir() if p.name.startswith(".")] == [], name  # no temp file left


def test_a_latin1_header_that_loads_is_served(tmp_path: Path, caplog: pytest.LogCaptureFixture) -> None:
    """A header value in Latin-1 (``café``, ``\\x85``) loads, lints clean and replays in process: so
    ``streamtape serve`` must send it too."""
    path = tmp_path / "c.yaml"
    path.write_text(TEXT.replace("Server: cloudflare", "Server: café", 1), encoding="utf-8")
    cassette = Cassette.load(path)
    caplog.set_level(logging.ERROR)
    assert serve_errors(cassette, caplog) == []


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
