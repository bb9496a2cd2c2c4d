"""The differential fidelity suite's urllib3 axis: every catalogue fault through plain ``requests`` and
plain ``urllib3``, against a real misbehaving server on 127.0.0.1 and against in-process replay.

The cases (and the real side of each: a ``WireServer`` misbehaving at the socket level, the exact bytes
the fault plan makes, a ``RawServer`` that never answers, a closed port, a port that never completes a
connection) are ``tests/test_fault_fidelity.py``'s, imported; only the client differs. Each case runs
through three ways apps read a stream with this stack:

- ``requests``: ``requests.post(..., stream=True)`` and ``iter_lines()``, requests' defaults (no retries);
- ``urllib3-stream``: a ``PoolManager`` request with ``preload_content=False``, read with ``stream()``;
- ``urllib3-read``: the same, read with ``read(amt=...)`` in small pieces;

both urllib3 styles under a ``Retry`` that retries every method, connection and read errors and the
retryable statuses, without back-off (so the real side sleeps none), so urllib3's own retry loop, status
retries and ``MaxRetryError`` run over the replayed attempts as over real ones.

Compared: the status, every line or chunk the app read, the whole exception chain (each exception behind
it through ``__cause__`` and ``__context__``, with class, module and message; normalised only where the
real server and the replay must differ: ports, and the memory addresses urllib3 names connections by),
and the number of attempts (real: what the server read, or ``_make_request`` calls where nothing
listens; replay: ``len(tape.calls)``). The clean stream is recorded once per transcript and framing
through this stack, from a ``WireServer``, and replayed with the server gone.

Known mismatches are strict xfails in ``KNOWN``, each with its reason.
"""

from __future__ import annotations

import dataclasses
import re
from collections.abc import Callable, Iterator
from contextlib import contextmanager
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

import pytest

requests = pytest.importorskip("requests")
urllib3 = pytest.importorskip("urllib3")
if int(urllib3.__version__.split(".")[0]) < 2:
    pytest.skip("the urllib3 adapter needs urllib3 2.x", allow_module_level=True)

import streamtape  # noqa: E402
from streamtape.cassette import Cassette, Interaction  # noqa: E402
from streamtape.wire import End  # noqa: E402
from tests.support import sdk  # noqa: E402
from tests.support.raw_server import RawServer, blackholed_port, closed_port  # noqa: E402
from tests.support.wire_server import WireServer, transcript  # noqa: E402
from tests.test_fault_fidelity import (  # noqa: E402
    CASES,
    CLIENT_SIDE,
    STYLES_2,
    Blackholed,
    Case,
    Raw,
    Refused,
    Wire,
    planned,
)
from tests.test_protocol_faults import deaf_server  # noqa: E402

BODY = {"model": "claude-test", "max_tokens": 64, "messages": [{"role": "user", "content": "Write a story"}]}
STYLES = ("requests", "urllib3-stream", "urllib3-read")
QUICK_STYLES = ("requests", "urllib3-stream")  # the cases that wait on the real side (timeouts) run in two
READ_AMT = 100  # urllib3-read: small reads, so a body takes many


def retry() -> Any:
    """Retries as an app that wants them configures them: every method (the default list has no POST),
    the statuses worth retrying, never a real back-off sleep."""
    return urllib3.Retry(total=2, allowed_methods=None, status_forcelist=(408, 429, 500, 502, 503, 504, 529),
                         backoff_factor=0, respect_retry_after_header=False)  # fmt: skip


# --- what the app sees ------------------------------------------------------------------------------


@dataclass
class Seen:
    status: int | None = None
    body: list[bytes] = field(default_factory=list)
    chain: list[sdk.Level] = field(default_factory=list)


def neutral(levels: list[sdk.Level]) -> list[sdk.Level]:
    """``sdk.chain`` with what must differ made neutral: urllib3 names the pool's port
    (``HTTPConnectionPool(host='127.0.0.1', port=N)``) and connections by their address."""
    out = []
    for where, name, message in levels:
        message = re.sub(r"port=\d+", "port=PORT", message)
        message = re.sub(r"\bat 0x[0-9a-f]+", "at ADDR", message)
        out.append((where, name, message))
    return out


def run(style: str, base_url: str, timeout: float) -> Seen:
    seen = Seen()
    url = f"{base_url}/v1/messages"
    try:
        if style == "requests":
            with requests.post(url, json=BODY, stream=True, timeout=timeout) as response:
                seen.status = response.status_code
                for line in response.iter_lines():
                    seen.body.append(line)
        else:
            http = urllib3.PoolManager(retries=retry(), timeout=timeout)
            try:
                response = http.request("POST", url, json=BODY, preload_content=False)
                seen.status = response.status
                if style == "urllib3-stream":
                    for chunk in response.stream():
                        seen.body.append(chunk)
                else:
                    while chunk := response.read(READ_AMT):
                        seen.body.append(chunk)
                response.release_conn()
            finally:
                http.clear()
    except Exception as exc:  # noqa: BLE001 - what the app meets is what is compared
        seen.chain = neutral(sdk.chain(exc))
    return seen


# --- the two sides ----------------------------------------------------------------------------------


@dataclass(frozen=True)
class Recorded:
    path: Path
    url: str
    interaction: Interaction


@pytest.fixture(scope="module")
def recordings(tmp_path_factory: pytest.TempPathFactory) -> Callable[[str, str], Recorded]:
    """The clean stream, recorded once per (transcript, framing) through urllib3 from a WireServer, with
    the chunks 1 ms apart (as ``tests/test_fault_fidelity.py`` does, so a loaded machine's gaps never
    reach a quick read timeout), the server stopped."""
    directory = tmp_path_factory.mktemp("fidelity-urllib3")
    cache: dict[tuple[str, str], Recorded] = {}

    def get(name: str, framing: str) -> Recorded:
        if (name, framing) not in cache:
            path = directory / f"{name}-{framing}.yaml"
            with WireServer() as server:
                server.queue(transcript(name, framing=framing))
                with streamtape.use_cassette(path, record_mode="all") as tape:
                    seen = run("urllib3-stream", server.base_url, 5.0)
                assert not seen.chain and [c.source for c in tape.calls] == ["recorded"], seen
                url = server.base_url
            (item,) = Cassette.load(path).interactions
            assert item.response is not None
            timing = tuple((n * 0.001, size) for n, (_, size) in enumerate(item.response.timing, 1))
            quiet = dataclasses.replace(item.response, timing=timing, headers_at=0.0005,
                                        end=End(timing[-1][0] if timing else 0.0))  # fmt: skip
            item = Interaction(item.request, quiet)
            Cassette([item]).save(path)
            cache[(name, framing)] = Recorded(path, url, item)
        return cache[(name, framing)]

    return get


@contextmanager
def counted() -> Iterator[list[int]]:
    """Counts the attempts urllib3 makes (``_make_request`` calls), for where no server can count."""
    cls = urllib3.connectionpool.HTTPConnectionPool
    original = cls._make_request
    attempts = [0]

    def _make_request(*args: Any, **kwargs: Any) -> Any:
        attempts[0] += 1
        return original(*args, **kwargs)

    with pytest.MonkeyPatch.context() as patch:
        patch.setattr(cls, "_make_request", _make_request)
        yield attempts


def run_real(case: Case, recorded: Recorded, style: str) -> tuple[Seen, int]:
    real = case.real(case, recorded.interaction)
    with counted() as attempts:
        if isinstance(real, Refused):
            seen = run(style, f"http://127.0.0.1:{closed_port()}", case.timeout)
        elif isinstance(real, Blackholed):
            with blackholed_port() as port:
                seen = run(style, f"http://127.0.0.1:{port}", case.timeout)
        elif isinstance(real, Raw):
            with RawServer(real.mode) as raw_server:  # type: ignore[arg-type]
                seen = run(style, raw_server.base_url, case.timeout)
            assert raw_server.connections == attempts[0]
        else:
            assert isinstance(real, Wire)
            with WireServer() as server:
                server.queue(*real.replies)
                seen = run(style, server.base_url, case.timeout)
            assert not server.errors
            assert len(server.requests) == attempts[0]
    return seen, attempts[0]


def run_replay(case: Case, recorded: Recorded, style: str) -> tuple[Seen, int]:
    with streamtape.use_cassette(recorded.path, faults=case.spec) as tape:
        seen = run(style, recorded.url, case.timeout)
    assert all(call.source == "replayed" and call.stack == "urllib3" for call in tape.calls), tape.calls
    return seen, len(tape.calls)


_GZIP_DECODED = (
    "streamtape gap: a gzip body is stored decoded, without its Content-Encoding (docs/architecture.md), and "
    "urllib3 lets the app see the encoding: stream() on a chunked body does not decode at all (read_chunked with "
    "decode_content=None hands on the gzip bytes), and read(amt) words a cut with the count of compressed bytes "
    "(IncompleteRead(64 bytes read)); the replay can only play the decoded bytes it has"
)
#: Mismatches that are streamtape gaps, by case id: [(style or "*", reason)].
KNOWN: dict[str, list[tuple[str, str]]] = {
    "disconnect:after=13@thinking": [("urllib3-stream", _GZIP_DECODED), ("urllib3-read", _GZIP_DECODED)],
    "reset:after=6@thinking": [("urllib3-stream", _GZIP_DECODED), ("urllib3-read", _GZIP_DECODED)],
    "disconnect:after=5@thinking@content-length": [
        (
            "*",
            "streamtape gap: a gzip body with Content-Length is recorded decoded, without its Content-Length, so a "
            "disconnect replays as chunked ('Response ended prematurely'); the wire says 'IncompleteRead(519 bytes "
            "read, 959 more expected)', counting compressed bytes",
        )
    ],
}


#: Faults the imported case list does not run yet, each as its cases there would be.
EXTRA = [
    Case("split:at_byte=700", planned, None),
    Case("split", planned, None),
    Case("split_crlf", planned, None),
    Case("split_utf8", planned, None, name="thinking"),
]
ALL_CASES = CASES + [case for case in EXTRA if case.id not in {c.id for c in CASES}]


def _params() -> Iterator[Any]:
    for case in ALL_CASES:
        styles = STYLES if set(case.styles) != set(STYLES_2) and len(case.styles) > 1 else QUICK_STYLES
        for style in styles:
            reasons = [r for s, r in KNOWN.get(case.id, []) if s in ("*", style)]
            marks = [pytest.mark.xfail(strict=True, reason=reasons[0])] if reasons else []
            yield pytest.param(case, style, id=f"{case.id}-{style}", marks=marks)


@pytest.mark.parametrize(("case", "style"), list(_params()))
def test_fault_is_faithful(case: Case, style: str, recordings: Callable[[str, str], Recorded]) -> None:
    recorded = recordings(case.name, case.framing)
    real, real_attempts = run_real(case, recorded, style)
    replayed, replay_attempts = run_replay(case, recorded, style)
    assert (replayed.status, replayed.chain[:1], replay_attempts) == (real.status, real.chain[:1], real_attempts)
    assert replayed.chain == real.chain
    assert replayed.body == real.body


# --- the faults no server can be the oracle for (CLIENT_SIDE), each against its real counterpart ------------

URL = "http://127.0.0.1:9/v1/messages"  # replay never connects


def raised(call: Callable[[], Any]) -> list[sdk.Level]:
    try:
        call()
    except Exception as exc:  # noqa: BLE001 - what the client raises is what is compared
        return neutral(sdk.chain(exc))
    raise AssertionError("nothing was raised")


@pytest.mark.parametrize("client", ["requests", "urllib3"])
def test_write_timeout_is_what_a_server_that_stops_reading_gives(client: str, tmp_path: Path) -> None:
    def post(url: str, body: bytes) -> Callable[[], Any]:
        if client == "requests":
            return lambda: requests.post(url, data=body, timeout=(0.2, 5.0))
        return lambda: urllib3.PoolManager().request("POST", url, body=body, retries=False,
                                                     timeout=urllib3.Timeout(connect=0.2, read=5.0))  # fmt: skip

    with deaf_server() as url:
        real = raised(post(url, b"x" * (32 << 20)))  # more than the loopback's socket buffers hold
    from tests.support import builders

    builders.save(tmp_path / "c.yaml", URL)  # the replay's body need not be large: it is never sent
    with streamtape.use_cassette(tmp_path / "c.yaml", faults="write_timeout", match_on=["method", "path"]):
        replayed = raised(post(URL, b'{"a":1}'))
    assert replayed == real
    assert real[-1][1] == "builtins.TimeoutError"  # urllib3 writes under the connect timeout


def test_pool_timeout_is_what_an_exhausted_pool_gives(tmp_path: Path) -> None:
    """urllib3's pool blocks only when built with ``block=True`` and a ``pool_timeout`` is given (requests
    passes none: through requests a pool never times out, it waits)."""
    from tests.support import builders

    with WireServer() as server:
        server.queue(transcript("text_basic"))
        url = f"{server.base_url}/v1/messages"
        http = urllib3.PoolManager(maxsize=1, block=True)
        held = http.request("POST", url, json=BODY, preload_content=False)  # holds the pool's only connection
        real = raised(lambda: http.request("POST", url, json=BODY, pool_timeout=0.05))
        held.drain_conn()
        held.release_conn()
    builders.save(tmp_path / "c.yaml", URL)
    with streamtape.use_cassette(tmp_path / "c.yaml", faults="pool_timeout -> ok", match_on=["method", "path"]) as tape:
        http = urllib3.PoolManager(maxsize=1, block=True)
        replayed = raised(lambda: http.request("POST", URL, json=BODY, pool_timeout=0.05))
        # the connection the failed attempt took is back in the pool: the next request gets it at once
        assert http.request("POST", URL, json=BODY, pool_timeout=0.05).status == 200
    assert replayed == real
    assert real[0][1] == "urllib3.exceptions.EmptyPoolError"
    assert [call.faults for call in tape.calls] == [("pool_timeout",), ()]


def test_the_cases_cover_the_catalogue() -> None:
    """Every fault any stream can meet; a provider's own faults (``streamtape.faults.openai``,
    ``.gemini``, ``.bedrock``: one API's streams) are that provider's differential suite's."""
    providers = {provider.name for provider in streamtape.providers.registered()}
    general = {name for name, fault in streamtape.faults.CATALOGUE.items()
               if fault.__module__.rsplit(".", 1)[1] not in providers}  # fmt: skip
    covered = {fault.name for case in ALL_CASES for step in streamtape.faults.parse(case.spec).steps
               for fault in step}  # fmt: skip
    assert covered | set(CLIENT_SIDE) >= general
    assert set(CLIENT_SIDE) == {"pool_timeout", "write_timeout"}  # both checked above
