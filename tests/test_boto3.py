"""boto3 end to end: Bedrock's ``converse_stream`` over urllib3, recorded from a real local endpoint that
streams real recorded AWS event streams (tests/support/eventstream_server.py), replayed byte-exact with
the endpoint gone, and every failure a stream meets raising what the same failure from a real socket
makes boto3 raise: the same classes, messages and ``__cause__``/``__context__`` chains.

What boto3 raises, by where the failure is (measured here against the real server):

- before the response: botocore's own exceptions (``EndpointConnectionError``, ``ConnectTimeoutError``,
  ``ReadTimeoutError``, ``ConnectionClosedError``), each with urllib3's error as its ``__context__``;
- an HTTP error: the modelled service error (``ThrottlingException``, ``InternalServerException``,
  ``ServiceUnavailableException``), or ``ClientError`` for a body without an error type;
- mid-stream, while ``response["stream"]`` is iterated: urllib3's own ``ProtocolError`` (a cut) and
  ``ReadTimeoutError`` (a stall) reach the app unwrapped; an exception frame is botocore's
  ``EventStreamError``; bytes that are not a valid frame are ``botocore.eventstream.ChecksumMismatch``.

Each fault's real side is a ``BedrockServer`` misbehaving at the socket level (FIN, RST, silence), or sending
exactly the bytes the fault plan makes of the recording with the Bedrock provider's formats; the two sides'
events and whole exception chains must be equal.

Retries are off (``total_max_attempts: 1``) wherever a retry would make the real side sleep.
"""

from __future__ import annotations

import threading
import time
from collections.abc import Callable
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

import pytest

boto3 = pytest.importorskip("boto3")
urllib3 = pytest.importorskip("urllib3")
if int(urllib3.__version__.split(".")[0]) < 2:
    pytest.skip("the urllib3 adapter needs urllib3 2.x", allow_module_level=True)

import botocore.config  # noqa: E402

import streamtape  # noqa: E402
from streamtape.cassette import Cassette, Interaction  # noqa: E402
from streamtape.faults import Context, apply, parse  # noqa: E402
from streamtape.providers import provider_for  # noqa: E402
from streamtape.wire import End  # noqa: E402
from tests.support import sdk  # noqa: E402
from tests.support.eventstream_server import (  # noqa: E402
    DATA_DIR,
    BedrockServer,
    bedrock_error,
    converse_stream,
    frames,
    list_streams,
)
from tests.support.raw_server import blackholed_port, closed_port  # noqa: E402
from tests.support.wire_server import Reply  # noqa: E402
from tests.test_fault_fidelity import _reply  # noqa: E402
from tests.test_fidelity_urllib3 import neutral  # noqa: E402

MODEL = "us.amazon.nova-micro-v1:0"
MESSAGES = [{"role": "user", "content": [{"text": "What is the capital of France?"}]}]
ACCESS_KEY = "AKIAZ7STREAMTAPETEST"  # the shape of a real access key id, so a leak would be found by shape too
SECRET_KEY = "wJalrXUtnFEMI/K7MDENG/bPxRfiCYstreamtapeKEY"
SESSION_TOKEN = "IQoJb3JpZ2luX2VjEJr//////////streamtape+session+token/test=="
PATIENT = 5.0
QUICK = 0.2  # the read (or connect) timeout where one must fire on the real side
FOREVER = 30.0  # silence on the real side; the server's stop() ends it at once
TEXT = (DATA_DIR / "converse_stream_text.eventstream").read_bytes()
FRAMES = frames(TEXT)
AFTER_3 = sum(map(len, FRAMES[:3]))  # the byte after the third frame
INSIDE_4 = AFTER_3 + 40  # inside the fourth frame: past its prelude and headers' start


@pytest.fixture(autouse=True)
def no_aws_config(monkeypatch: pytest.MonkeyPatch) -> None:
    """Nothing from this machine's AWS setup: no config or credentials files, no instance metadata."""
    for name in ("AWS_PROFILE", "AWS_DEFAULT_PROFILE", "AWS_ACCESS_KEY_ID", "AWS_SECRET_ACCESS_KEY",
                 "AWS_SESSION_TOKEN", "AWS_RETRY_MODE", "AWS_MAX_ATTEMPTS", "AWS_ENDPOINT_URL"):  # fmt: skip
        monkeypatch.delenv(name, raising=False)
    monkeypatch.setenv("AWS_CONFIG_FILE", "/dev/null")
    monkeypatch.setenv("AWS_SHARED_CREDENTIALS_FILE", "/dev/null")
    monkeypatch.setenv("AWS_EC2_METADATA_DISABLED", "true")


_SESSION: list[Any] = []


def client(base_url: str, *, timeout: float = PATIENT, retries: dict[str, Any] | None = None) -> Any:
    """A bedrock-runtime client for ``base_url`` (one boto3 session for the module: its loaders cache the
    service model, the cost of a client)."""
    if not _SESSION:
        _SESSION.append(boto3.session.Session())
    config = botocore.config.Config(retries=retries or {"total_max_attempts": 1}, read_timeout=timeout,
                                    connect_timeout=timeout)  # fmt: skip
    return _SESSION[0].client("bedrock-runtime", endpoint_url=base_url, region_name="us-east-1",
                              aws_access_key_id=ACCESS_KEY, aws_secret_access_key=SECRET_KEY,
                              aws_session_token=SESSION_TOKEN, config=config)  # fmt: skip


@dataclass
class Seen:
    """What the app saw: each event as boto3 parsed it, and the exception's whole chain."""

    events: list[dict[str, Any]] = field(default_factory=list)
    chain: list[sdk.Level] = field(default_factory=list)


def converse(base_url: str, *, timeout: float = PATIENT, retries: dict[str, Any] | None = None,
             on_event: Callable[[int], None] | None = None) -> Seen:  # fmt: skip
    seen = Seen()
    bedrock = client(base_url, timeout=timeout, retries=retries)
    try:
        response = bedrock.converse_stream(modelId=MODEL, messages=MESSAGES)
        for event in response["stream"]:
            seen.events.append(event)
            if on_event is not None:
                on_event(len(seen.events))
    except Exception as exc:  # noqa: BLE001 - what the app meets is what is compared
        seen.chain = neutral(sdk.chain(exc))
    finally:
        bedrock.close()
    return seen


@dataclass(frozen=True)
class Recorded:
    path: Path
    url: str
    interaction: Interaction
    events: list[dict[str, Any]]


_RECORDED: dict[str, Recorded] = {}


def record(name: str, directory: Path) -> Recorded:
    """``name`` recorded through boto3 from a BedrockServer, the server stopped (once per module)."""
    if name not in _RECORDED:
        path = directory / f"{name}.yaml"
        with BedrockServer() as server:
            server.queue(converse_stream(name))
            with streamtape.use_cassette(path, record_mode="all") as tape:
                seen = converse(server.base_url)
            assert not seen.chain and not server.errors, seen.chain
            assert [(c.source, c.stack) for c in tape.calls] == [("recorded", "urllib3")]
        (item,) = Cassette.load(path).interactions
        _RECORDED[name] = Recorded(path, server.base_url, item, seen.events)
    return _RECORDED[name]


@pytest.fixture(scope="module")
def recordings(tmp_path_factory: pytest.TempPathFactory) -> Callable[[str], Recorded]:
    directory = tmp_path_factory.mktemp("boto3")
    return lambda name: record(name, directory)


# --- record and replay ---------------------------------------------------------------------------------


@pytest.mark.parametrize("name", list_streams())
def test_converse_stream_records_live_and_replays_byte_exact_with_the_server_gone(name: str, tmp_path: Path) -> None:
    body = (DATA_DIR / f"{name}.eventstream").read_bytes()
    pieces = frames(body)
    gate = [threading.Event() for _ in pieces]
    path = tmp_path / "c.yaml"
    with BedrockServer() as server:
        # the server sends frame k+1 only once the app has seen event k: the recorder hands each frame on
        server.queue(converse_stream(name, gate=gate[1:], gate_timeout=5.0))
        with streamtape.use_cassette(path, record_mode="once"):
            live = converse(server.base_url, on_event=lambda n: gate[n].set() if n < len(gate) else None)
        assert not live.chain and not server.errors
        (request,) = server.requests
    assert request.path == "/model/us.amazon.nova-micro-v1%3A0/converse-stream"
    assert request.header("content-type") == "application/json"
    (item,) = Cassette.load(path).interactions
    assert item.response is not None and item.response.body == body  # byte-exact
    assert [size for _, size in item.response.timing] == [len(p) for p in pieces]  # one chunk per frame
    assert isinstance(item.response.end, End)
    with streamtape.use_cassette(path) as tape:
        replayed = converse(server.base_url)
    assert replayed == live and len(live.events) == len(pieces)
    assert [(c.source, c.stack) for c in tape.calls] == [("replayed", "urllib3")]


def test_secrets_never_reach_the_cassette(recordings: Callable[[str], Recorded]) -> None:
    """SigV4's ``Authorization`` (the access key id sits in its ``Credential=``), ``X-Amz-Security-Token``,
    and the secret key (never sent; nothing derived from it may be stored either: the signature)."""
    recorded = recordings("converse_stream_text")
    text = recorded.path.read_text(encoding="utf-8")
    for secret in (ACCESS_KEY, SECRET_KEY, SESSION_TOKEN, "AWS4-HMAC-SHA256", "Signature=", "Credential="):
        assert secret not in text
    names = {name.lower() for name, _ in recorded.interaction.request.headers}
    assert "authorization" not in names and "x-amz-security-token" not in names
    assert "x-amz-date" in names  # what is not a secret stays
    # ... and the real request did carry them all (a test that signs nothing proves nothing)
    with BedrockServer() as server:
        server.queue(converse_stream())
        assert not converse(server.base_url).chain
        (request,) = server.requests
    authorization = request.header("authorization") or ""
    assert authorization.startswith(f"AWS4-HMAC-SHA256 Credential={ACCESS_KEY}/") and "Signature=" in authorization
    assert request.header("x-amz-security-token") == SESSION_TOKEN


def test_a_credential_the_service_echoes_never_reaches_the_cassette(tmp_path: Path) -> None:
    """An error that quotes the access key id alone (it travels only inside SigV4's ``Credential=``) and
    the session token: both are found in the body and in the error message boto3 builds from it."""
    body = f'{{"message":"The security token for {ACCESS_KEY} is invalid: {SESSION_TOKEN}"}}'.encode()
    path = tmp_path / "c.yaml"
    with BedrockServer() as server:
        server.queue(Reply(status=403, headers=[("content-type", "application/json"), ("x-amzn-ErrorType", "Unre"
                           "cognizedClientException:http://internal.amazon.com/coral/com.amazon.coral.service/")],
                           events=[body], framing="content-length"))  # fmt: skip
        with streamtape.use_cassette(path, record_mode="once", record_failures=True):
            live = converse(server.base_url)
    assert ACCESS_KEY in live.chain[0][2]  # the app saw it: the test is about what is written
    text = path.read_text(encoding="utf-8")
    assert ACCESS_KEY not in text and SESSION_TOKEN not in text and "for REDACTED is invalid: REDACTED" in text


def test_a_recorded_bedrock_error_replays_as_boto3_raised_it(tmp_path: Path) -> None:
    """The recorded 400 (invalid model id) and 500 bodies, recorded through boto3 and replayed."""
    for name in ("http_400_invalid_model_converse_stream", "http_500_internal_error"):
        path = tmp_path / f"{name}.yaml"
        with BedrockServer() as server:
            server.queue(bedrock_error(name))
            with streamtape.use_cassette(path, record_mode="once", record_failures=True):
                live = converse(server.base_url)
        with streamtape.use_cassette(path):
            replayed = converse(server.base_url)
        assert live.chain and replayed == live, name
        assert live.chain[0][1] == "botocore.exceptions.ClientError"


# --- faults: the same failure as from a real misbehaving endpoint ---------------------------------------------


def _cut_inside(at_byte: int, **misbehaviour: Any) -> Callable[[Interaction], Reply]:
    """The text stream with the frame holding ``at_byte`` split there, and the misbehaviour right before it."""

    def build(_: Interaction) -> Reply:
        pieces, offset = [], 0
        for frame in FRAMES:
            cut = at_byte - offset
            pieces += [frame[:cut], frame[cut:]] if 0 < cut < len(frame) else [frame]
            offset += len(frame)
        index = next(i for i in range(len(pieces) + 1) if sum(map(len, pieces[:i])) == at_byte)
        return converse_stream(events=pieces, **{key: index if value is None else value
                                                 for key, value in misbehaviour.items()})  # fmt: skip

    return build


def _natural(**misbehaviour: Any) -> Callable[[Interaction], Reply]:
    return lambda _: converse_stream(**misbehaviour)


def _planned(spec: str) -> Callable[[Interaction], Reply]:
    """Exactly the bytes the fault plan makes of the recording for the first attempt, over the socket, with
    the formats of the provider the tape picks for the request (Bedrock's error bodies and frames)."""

    def build(item: Interaction) -> Reply:
        request = item.request
        provider = provider_for(request.method, request.url, request.headers)
        actions = apply(parse(spec).faults_for(0), item.actions(), Context(number=1, provider=provider))
        return _reply(actions, "chunked")

    return build


@dataclass(frozen=True)
class Fault:
    spec: str
    real: Callable[[Interaction], Reply] | str  # a reply, or "refused" / "blackholed"
    raised: str  # the class the app meets, as sdk.chain names it
    timeout: float = PATIENT


FAULTS = [
    # mid-stream: urllib3's own errors reach the app through botocore's EventStream unwrapped
    Fault(f"disconnect:at_byte={AFTER_3}", _natural(fin_after=3), "urllib3.exceptions.ProtocolError"),
    Fault(f"disconnect:at_byte={INSIDE_4}", _cut_inside(INSIDE_4, fin_after=None), "urllib3.exceptions.ProtocolError"),
    Fault(f"reset:at_byte={AFTER_3}", _natural(rst_after=3), "urllib3.exceptions.ProtocolError"),
    Fault(f"reset:at_byte={INSIDE_4}", _cut_inside(INSIDE_4, rst_after=None), "urllib3.exceptions.ProtocolError"),
    Fault(f"stall:at_byte={AFTER_3}", _natural(stall_after=3, stall_seconds=FOREVER),
          "urllib3.exceptions.ReadTimeoutError", QUICK),  # fmt: skip
    Fault(f"stall:at_byte={INSIDE_4}", _cut_inside(INSIDE_4, stall_after=None, stall_seconds=FOREVER),
          "urllib3.exceptions.ReadTimeoutError", QUICK),  # fmt: skip
    Fault("bad_chunk:after=3", _planned("bad_chunk:after=3"), "urllib3.exceptions.ProtocolError"),
    Fault("linger", _planned("linger"), "urllib3.exceptions.ReadTimeoutError", QUICK),  # the end never comes
    # the stream's content (events counted by the event-stream framer, streamtape.framing.eventstream)
    Fault(f"truncate:at_byte={AFTER_3}", _planned(f"truncate:at_byte={AFTER_3}"), ""),  # a clean, early end
    Fault("rechunk:size=100", _planned("rechunk:size=100"), ""),  # frames split across reads: the same events
    Fault("delay:per_event=0.005", _planned("delay:per_event=0.005"), ""),
    Fault("duplicate:event=3", _planned("duplicate:event=3"), ""),
    Fault("drop:event=3", _planned("drop:event=3"), ""),
    Fault("corrupt:event=3", _planned("corrupt:event=3"), ""),  # CRCs made right: botocore reads the payload
    Fault("corrupt:event=3,how=utf8", _planned("corrupt:event=3,how=utf8"), "builtins.UnicodeDecodeError"),
    Fault("error_event:after=3", _planned("error_event:after=3"), "botocore.exceptions.EventStreamError"),
    Fault("error_event:after=0", _planned("error_event:after=0"), "botocore.exceptions.EventStreamError"),
    Fault("exception_frame:after=3", _planned("exception_frame:after=3"), "botocore.exceptions.EventStreamError"),
    Fault("exception_frame:type=internalServerException,after=2,then=cut",
          _planned("exception_frame:type=internalServerException,after=2,then=cut"),
          "botocore.exceptions.EventStreamError"),  # fmt: skip
    Fault("bad_crc:event=3", _planned("bad_crc:event=3"), "botocore.eventstream.ChecksumMismatch"),
    Fault("bad_crc:event=3,which=prelude", _planned("bad_crc:event=3,which=prelude"),
          "botocore.eventstream.ChecksumMismatch"),  # fmt: skip
    # chunk boundaries where parsers break: botocore's buffers frames whole
    Fault("split:at_byte=700", _planned("split:at_byte=700"), ""),
    Fault("split_utf8", _planned("split_utf8"), ""),
    Fault("split_crlf", _planned("split_crlf"), "botocore.eventstream.ChecksumMismatch"),  # a CR in a binary frame
    # not an event stream where one was asked for: botocore's frame parser fails
    Fault("bom", _planned("bom"), "botocore.eventstream.ChecksumMismatch"),
    Fault("json_body", _planned("json_body"), "botocore.eventstream.ChecksumMismatch"),
    Fault("corrupt_gzip", _planned("corrupt_gzip"), "botocore.eventstream.ChecksumMismatch"),  # botocore decodes none
    # before the response: botocore's own exceptions
    Fault("timeout", _natural(head_delay=FOREVER), "botocore.exceptions.ReadTimeoutError", QUICK),
    Fault("disconnect", _natural(before_head="fin"), "botocore.exceptions.ConnectionClosedError"),
    Fault("reset", _natural(before_head="rst"), "botocore.exceptions.ConnectionClosedError"),
    Fault("refuse", "refused", "botocore.exceptions.EndpointConnectionError"),
    Fault("connect_timeout", "blackholed", "botocore.exceptions.ConnectTimeoutError", QUICK),
    Fault("bad_status", _planned("bad_status"), "botocore.exceptions.ConnectionClosedError"),
    # HTTP errors: the service's modelled errors
    Fault("http_error:status=429", _planned("http_error:status=429"), "botocore.errorfactory.ThrottlingException"),
    Fault("rate_limit", _planned("rate_limit"), "botocore.errorfactory.ThrottlingException"),
    Fault("http_error:status=500", _planned("http_error:status=500"), "botocore.errorfactory.InternalServerException"),
    Fault("http_error:status=503", _planned("http_error:status=503"),
          "botocore.errorfactory.ServiceUnavailableException"),  # fmt: skip
    Fault("server_error", _planned("server_error"), "botocore.errorfactory.InternalServerException"),
    Fault("overloaded", _planned("overloaded"), "botocore.errorfactory.ServiceUnavailableException"),
    Fault("http_error:status=400", _planned("http_error:status=400"), "botocore.errorfactory.ValidationException"),
    # a 403's ExpiredTokenException is not in bedrock-runtime's service model: a plain ClientError
    Fault("http_error:status=403", _planned("http_error:status=403"), "botocore.exceptions.ClientError"),
]

#: Catalogue faults not run here, and why.
ELSEWHERE = {
    "ping": "a Bedrock event stream has no keep-alive event (the provider refuses it with a ConfigError)",
    "pool_timeout": "botocore's pools never block (no pool timeout to meet); urllib3's own in test_fidelity_urllib3",
    "write_timeout": "a request nobody reads, at the urllib3 layer boto3 sends through: test_fidelity_urllib3",
}


def run_real(fault: Fault, recorded: Recorded) -> tuple[Seen, int | None]:
    if fault.real == "refused":
        return converse(f"http://127.0.0.1:{closed_port()}", timeout=fault.timeout), None
    if fault.real == "blackholed":
        with blackholed_port() as port:
            return converse(f"http://127.0.0.1:{port}", timeout=fault.timeout), None
    assert callable(fault.real)
    with BedrockServer() as server:
        server.queue(fault.real(recorded.interaction))
        seen = converse(server.base_url, timeout=fault.timeout)
    assert not server.errors
    return seen, len(server.requests)


@pytest.mark.parametrize("fault", FAULTS, ids=[f.spec for f in FAULTS])
def test_a_fault_raises_what_the_real_failure_raises(fault: Fault, recordings: Callable[[str], Recorded]) -> None:
    recorded = recordings("converse_stream_text")
    real, requests = run_real(fault, recorded)
    started = time.monotonic()
    with streamtape.use_cassette(recorded.path, faults=fault.spec) as tape:
        replayed = converse(recorded.url, timeout=fault.timeout)
    elapsed = time.monotonic() - started
    assert replayed.chain == real.chain
    assert replayed.events == real.events
    assert requests in (None, len(tape.calls))
    assert (real.chain[0][1] if real.chain else "") == fault.raised  # ... and the real side did what it is about
    assert elapsed < max(fault.timeout, 1.0)  # virtual time: a stall or a timeout raised at once


def test_a_stall_replays_at_once_and_raises_urllib3s_read_timeout(recordings: Callable[[str], Recorded]) -> None:
    recorded = recordings("converse_stream_text")
    started = time.monotonic()
    with streamtape.use_cassette(recorded.path, faults=f"stall:at_byte={AFTER_3}") as tape:
        seen = converse(recorded.url, timeout=60.0)
    assert time.monotonic() - started < 2.0 and tape.clock.now() >= 60.0
    assert seen.events == recorded.events[:3]
    assert [name for _, name, _ in seen.chain[:2]] == ["urllib3.exceptions.ReadTimeoutError", "builtins.TimeoutError"]
    with streamtape.use_cassette(recorded.path, faults="timeout") as tape:
        seen = converse(recorded.url, timeout=60.0)
    assert seen.chain[0][1] == "botocore.exceptions.ReadTimeoutError" and tape.clock.now() >= 60.0


def test_boto3s_own_retries_run_over_replayed_attempts(recordings: Callable[[str], Recorded]) -> None:
    """botocore's retry handler decides, as in production: a throttled attempt, then the stream."""
    recorded = recordings("converse_stream_text")
    with streamtape.use_cassette(recorded.path, faults="rate_limit -> ok") as tape:
        seen = converse(recorded.url, retries={"total_max_attempts": 2, "mode": "standard"})
    assert not seen.chain and seen.events == recorded.events
    assert [call.outcome for call in tape.calls] == ["429, complete", "200, complete"]
    assert [call.attempt for call in tape.calls] == [1, 2]


def test_an_event_stream_closed_early_while_recording_is_read_to_its_end(tmp_path: Path) -> None:
    """The app stops after two events and closes the stream: the rest is read in the background, and the
    cassette holds the whole stream (replayed in full to an app that reads it all)."""
    gate = [threading.Event() for _ in FRAMES]  # the server sends frame 3 only once the app has closed
    path = tmp_path / "c.yaml"
    with BedrockServer() as server:
        server.queue(converse_stream(gate=gate[1:], gate_timeout=5.0))
        with streamtape.use_cassette(path, record_mode="once"):
            bedrock = client(server.base_url)
            stream = bedrock.converse_stream(modelId=MODEL, messages=MESSAGES)["stream"]
            events = []
            for event in stream:
                events.append(event)
                if len(events) == 1:
                    gate[1].set()
                if len(events) == 2:
                    break
            stream.close()
            for event in gate:
                event.set()
        assert not server.errors
    (item,) = Cassette.load(path).interactions
    assert item.response is not None and item.response.body == TEXT and isinstance(item.response.end, End)
    with streamtape.use_cassette(path):
        replayed = converse(server.base_url)
    assert replayed.events[:2] == events and len(replayed.events) == len(FRAMES)


def test_the_faults_cover_the_catalogue() -> None:
    """Every fault any stream can meet, and Bedrock's own (another provider's are its suite's)."""
    others = {provider.name for provider in streamtape.providers.registered()} - {"bedrock"}
    general = {name for name, fault in streamtape.faults.CATALOGUE.items()
               if fault.__module__.rsplit(".", 1)[1] not in others}  # fmt: skip
    covered = {fault.name for f in FAULTS for step in parse(f.spec).steps for fault in step}
    assert covered | set(ELSEWHERE) >= general and not covered & set(ELSEWHERE)
