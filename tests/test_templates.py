"""The error templates say what the real world sends, proved against real bytes and a real SDK.

- Every measured error body (tests/data/sse/http_*.body.json, SOURCES.md) and every starter error
  cassette is rebuilt by an ``http_error`` fault from the parameters its body holds (status, error
  type, message, its request id or none) and replayed through ``use_cassette(..., faults=...)`` with
  a real HTTP client: the body is byte-identical, and the headers are the real ones.
- A proxy's HTML 502 and a plain-text 503 (``body=``, ``content_type=``) reach the real SDK as the
  same bytes from a real server do: the same exception class, message, status, request id, body.
- ``retry_after_date=N`` is an HTTP date the SDK turns into a back-off of about N seconds, charged
  to ``tape.calls[i].waited``, as a real server's date is.
- ``error_event``'s ``then=cut`` (a FIN after the event), ``data=`` and ``event=`` give the SDK what a
  real server that sends those bytes gives it, in every usage style, sync and async.
- ``corrupt``'s ``how=truncate|escape|utf8`` at a chosen ``at=`` raise what the same bytes from a
  real server raise, and read as a real truncation does ("Expecting ',' delimiter").
"""

from __future__ import annotations

import email.utils
import json
import time
from collections import Counter
from collections.abc import Iterator
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import anthropic
import pytest

import streamtape
from streamtape import Cassette, faults
from streamtape.faults import Context, apply
from streamtape.server import ReplayServer
from streamtape.wire import Send
from tests.support import sdk
from tests.support.wire_server import DATA_DIR, Reply, WireServer, list_error_bodies, split_events, transcript

pytestmark = pytest.mark.sdk

BY_PATH = ["method", "path"]
FRAMING = {"content-length", "transfer-encoding", "connection"}  # the server's to set, not the template's
TEXT_EVENTS = split_events((DATA_DIR / "text_basic.sse").read_bytes())  # 7 events; the 4th is the text delta
IN_STREAM = (DATA_DIR / "error_overloaded_in_stream.sse").read_bytes()  # the API's real in-stream overload
UPSTREAM = "upstream connect error or disconnect/reset before headers. reset reason: connection failure"


@dataclass(frozen=True)
class Recording:
    path: Path
    url: str  # the server it was recorded from (stopped); the SDK is pointed here on replay


@pytest.fixture(scope="module")
def recording(tmp_path_factory: pytest.TempPathFactory) -> Recording:
    """The clean text_basic stream, recorded once through the real SDK from a real server."""
    path = tmp_path_factory.mktemp("templates") / "text_basic.yaml"
    with WireServer() as server:
        server.queue(transcript("text_basic"))
        with streamtape.use_cassette(path, record_mode="all"):
            assert sdk.consume(server.base_url, "final").error is None
        return Recording(path, server.base_url)


def fetch(path: Path | str, faults_: Any = None) -> tuple[int, list[tuple[str, str]], bytes]:
    """Status, headers (lower-cased names, sorted) and body of one POST to the Messages API, replayed
    from ``path`` with a real HTTP client (httpx2, or httpx under anthropic 0.x)."""
    with streamtape.use_cassette(path, faults=faults_, match_on=BY_PATH), sdk.HTTP.Client() as client:
        response = client.post("https://api.anthropic.com/v1/messages", json={"model": "m", "stream": True})
        return response.status_code, sorted(response.headers.multi_items()), response.content


# --- the measured bodies and the starters, byte for byte ------------------------------------------


def measured_head(name: str) -> tuple[int, list[tuple[str, str]]] | None:
    path = DATA_DIR / f"{name}.headers.json"
    if not path.exists():
        return None
    data = json.loads(path.read_text(encoding="utf-8"))
    return int(data["status"]), [(key, value) for key, values in data["headers"].items() for value in values]


def template_for(status: int, body: bytes, headers: list[tuple[str, str]]) -> faults.HttpError:
    """The ``http_error`` fault a real error body's own fields describe: its status, error type and
    message, its request id or none, and (where they were recorded) its headers."""
    document = json.loads(body)
    return faults.http_error(
        status, error_type=document["error"]["type"], message=document["error"]["message"],
        request_id=document.get("request_id", False), headers=[(k, v) for k, v in headers if k.lower() not in FRAMING],
    )  # fmt: skip


ERROR_BODIES = list_error_bodies()


def test_every_measured_error_body_is_here() -> None:
    assert ERROR_BODIES == [
        "http_400_invalid_request", "http_400_invalid_request_2026", "http_401_authentication", "http_404_not_found",
        "http_429_rate_limit", "http_500_api_error", "http_529_overloaded", "http_529_overloaded_2024",
    ]  # fmt: skip


@pytest.mark.parametrize("name", ERROR_BODIES)
def test_a_measured_error_body_replays_byte_identical(name: str, recording: Recording) -> None:
    real_body = (DATA_DIR / f"{name}.body.json").read_bytes()
    head = measured_head(name)
    status, real_headers = head if head else (int(name.split("_")[1]), [])
    fault = template_for(status, real_body, real_headers)
    spec = fault.spec()
    assert faults.parse_fault(spec) == fault  # the string form says the same (quotes where a message has commas)

    got_status, got_headers, got_body = fetch(recording.path, spec)

    assert (got_status, got_body) == (status, real_body)
    served = Counter((k, v) for k, v in got_headers if k not in FRAMING)
    recorded = Counter((k.lower(), v) for k, v in real_headers if k.lower() not in FRAMING)
    assert not recorded - served  # every recorded header, as recorded
    # beyond them, only what the recording lacks: the JSON content type, and the body's own request id
    # as a header (the 2026 recordings kept a whitelist of headers without it)
    allowed = {("content-type", "application/json"), ("request-id", json.loads(real_body).get("request_id"))}
    assert set(served - recorded) <= allowed
    assert dict(got_headers)["content-length"] == str(len(real_body))


def test_the_2024_body_has_no_request_id_but_its_header_does() -> None:
    """``request_id=False`` leaves the id out of body and headers; ``headers=`` puts back the one the
    2024 response carried in its header only."""
    fault = faults.http_error(400, error_type="invalid_request_error", request_id=False,
                              message="messages.0: Input does not match the expected shape.")  # fmt: skip
    headers, body = Context().provider.http_error(400, error_type=fault.error_type, message=fault.message,
                                                  request_id=False)  # fmt: skip
    assert body == (DATA_DIR / "http_400_invalid_request.body.json").read_bytes()
    assert headers == (("content-type", "application/json"), ("content-length", "122"))
    with_header = faults.http_error(400, request_id=False, headers={"request-id": "req_01BjwuzUpsYgKjQJguJyvKb3"})
    assert (
        with_header.spec()
        == 'http_error:status=400,request_id=false,headers=\'[["request-id","req_01BjwuzUpsYgKjQJguJyvKb3"]]\''
    )


@pytest.mark.parametrize("name", ["overloaded", "rate_limited", "server_error"])
def test_a_starter_error_cassette_replays_identical(name: str) -> None:
    """The fault on a clean stream answers what the starter's real error answers: the status, every
    header and the body; and the body's request id as a header, as the API sends it (the sources of
    the 529 and 500 starters printed their bodies only)."""
    recorded = Cassette.load(streamtape.starter(name)).interactions[0].response
    assert recorded is not None
    fault = template_for(recorded.status, recorded.body, list(recorded.headers))
    status, headers, body = fetch(streamtape.starter("text"), fault.spec())
    real_status, real_headers, real_body = fetch(streamtape.starter(name))
    assert (status, body) == (real_status, real_body)
    extra = set(headers) - set(real_headers)
    assert set(real_headers) <= set(headers) and len(headers) == len(real_headers) + len(extra)
    assert extra <= {("request-id", json.loads(real_body)["request_id"])}
    assert bool(extra) == (name != "rate_limited")  # the 429's recorded headers carry their own request-id


def test_the_in_stream_error_starter_and_the_2024_and_doc_events() -> None:
    """The API's in-stream overload is the default ``error_event``; the 2024 one (eight spaces of
    padding) and the docs' are its ``data=`` as given."""
    starter = Cassette.load(streamtape.starter("overloaded_in_stream")).interactions[0].response
    assert starter is not None
    assert fetch(streamtape.starter("text"), "error_event:after=0")[2] == starter.body == IN_STREAM
    for name in ("error_overloaded_in_stream_2024", "doc_error_event"):
        real = (DATA_DIR / f"{name}.sse").read_bytes()
        data = real.decode().split("\ndata: ", 1)[1].removesuffix("\n\n")
        fault = faults.error_event(after=0, data=data)
        assert faults.parse_fault(fault.spec()) == fault
        assert fetch(streamtape.starter("text"), fault.spec())[2] == real


# --- not the API's JSON: a proxy's pages through the real SDK --------------------------------------

HTML_502 = (
    "<html>\r\n<head><title>502 Bad Gateway</title></head>\r\n<body>\r\n<center><h1>502 Bad Gateway</h1></center>\r\n"
    "<hr><center>cloudflare</center>\r\n</body>\r\n</html>\r\n"
)
PAGES = [
    pytest.param(502, "text/html", HTML_502, {"InternalServerError"}, id="html-502"),
    pytest.param(503, "text/plain", UPSTREAM, {"ServiceUnavailableError", "InternalServerError"}, id="text-503"),
]


def app_error(url: str) -> dict[str, Any]:
    """What an app that catches ``anthropic.APIStatusError`` learns from one streamed call."""
    with sdk.client(url) as client:
        try:
            with client.messages.stream(**sdk.PARAMS) as stream:
                stream.get_final_message()
        except anthropic.APIStatusError as exc:
            return _seen(exc)
    raise AssertionError("no APIStatusError")


async def async_app_error(url: str) -> dict[str, Any]:
    async with sdk.async_client(url) as client:
        try:
            async with client.messages.stream(**sdk.PARAMS) as stream:
                await stream.get_final_message()
        except anthropic.APIStatusError as exc:
            return _seen(exc)
    raise AssertionError("no APIStatusError")


def _seen(exc: anthropic.APIStatusError) -> dict[str, Any]:
    return {"class": type(exc).__name__, "message": str(exc), "status": exc.status_code,
            "request_id": exc.request_id, "body": exc.body,
            "content_type": exc.response.headers.get("content-type")}  # fmt: skip


@pytest.mark.parametrize(("status", "content_type", "page", "classes"), PAGES)
async def test_a_proxy_page_reaches_the_sdk_as_from_a_real_server(
    status: int, content_type: str, page: str, classes: set[str], recording: Recording
) -> None:
    fault = faults.http_error(status, body=page, content_type=content_type)
    with WireServer() as server:
        server.queue(Reply(status=status, headers=[("content-type", content_type)], events=[page.encode()],
                           framing="content-length"))  # fmt: skip
        real, real_async = app_error(server.base_url), await async_app_error(server.base_url)
    with streamtape.use_cassette(recording.path, faults=[fault]):
        replayed = app_error(recording.url)
    async with streamtape.use_cassette(recording.path, faults=[fault]):
        replayed_async = await async_app_error(recording.url)
    assert replayed == real and replayed_async == real_async
    assert real["class"] in classes and real["status"] == status and real["request_id"] is None
    assert real["body"] == page.strip() and page.strip() in real["message"]


def test_a_raw_body_in_a_spec_string() -> None:
    page = "<html><body><h1>502 Bad Gateway</h1>, try again</body></html>"
    spec = f"http_error:status=502,body='{page}',content_type=text/html -> ok"
    assert faults.parse(spec) == faults.sequence(faults.http_error(502, body=page, content_type="text/html"), None)
    assert faults.parse(spec).spec() == spec
    status, headers, body = fetch(streamtape.starter("text"), spec)
    assert (status, body) == (502, page.encode())
    assert dict(headers) == {"content-type": "text/html", "content-length": str(len(page))}  # no request id


# --- retry-after as an HTTP date ------------------------------------------------------------------


def test_retry_after_date_is_an_http_date_that_many_seconds_ahead() -> None:
    before = time.time()
    (head, *_) = apply([faults.rate_limit(retry_after_date=20)], [], Context())
    date = email.utils.parsedate_to_datetime(dict(head.headers)["retry-after"]).timestamp()
    assert before + 19.5 <= date <= time.time() + 20.5
    assert dict(head.headers)["retry-after"].endswith(" GMT")


@pytest.mark.parametrize("spec", ["rate_limit:retry_after_date=20 -> ok", "overloaded:retry_after_date=7 -> ok"])
async def test_retry_after_date_drives_the_sdk_back_off(spec: str, recording: Recording) -> None:
    seconds = float(spec.split("=")[1].split(" ")[0])
    with streamtape.use_cassette(recording.path, faults=spec) as tape:
        outcome = sdk.consume(recording.url, "final", options={"max_retries": 2})
    async with streamtape.use_cassette(recording.path, faults=spec) as async_tape:
        async_outcome = await sdk.aconsume(recording.url, "final", options={"max_retries": 2})
    for run, calls in ((outcome, tape.calls), (async_outcome, async_tape.calls)):
        assert run.error is None and [call.outcome.split(",")[0] for call in calls] == ["429" if "rate" in spec
                                                                                       else "529", "200"]  # fmt: skip
        # the SDK reads the date against its clock: the wait is the date's distance, to the whole second
        assert calls[1].waited == pytest.approx(seconds, abs=0.6)


def test_a_real_server_s_retry_after_date_gives_the_same_back_off(
    recording: Recording, monkeypatch: pytest.MonkeyPatch
) -> None:
    """The same header from a real server: the SDK computes the same wait (its sleep is noted, not slept)."""
    import importlib

    base = importlib.import_module("anthropic._base_client")
    slept: list[float] = []

    class Time:
        def __getattr__(self, name: str) -> Any:
            return getattr(time, name)

        def sleep(self, seconds: float) -> None:
            slept.append(seconds)

    monkeypatch.setattr(base, "time", Time())
    headers, body = Context().provider.http_error(429, retry_after_date=20)
    with WireServer() as server:
        server.queue(Reply(status=429, headers=list(headers), events=[body], framing="content-length"),
                     transcript("text_basic"))  # fmt: skip
        assert sdk.consume(server.base_url, "final", options={"max_retries": 2}).error is None
    assert slept == [pytest.approx(20, abs=0.6)]


# --- in-stream errors: what comes after, and what the data is --------------------------------------


def stream_reply(events: list[bytes], **options: Any) -> Reply:
    return transcript("text_basic", events=events, **options)


IN_STREAM_CASES = [
    pytest.param("error_event:after=4,then=cut", stream_reply([*TEXT_EVENTS[:4], IN_STREAM], fin_after=5), id="cut"),
    pytest.param("error_event:after=4", stream_reply([*TEXT_EVENTS[:4], IN_STREAM]), id="end"),
    pytest.param("error_event:then=cut", stream_reply([IN_STREAM], fin_after=1), id="alone-cut"),
    pytest.param(f"error_event:after=4,then=cut,data={UPSTREAM}",
                 stream_reply([*TEXT_EVENTS[:4], f"event: error\ndata: {UPSTREAM}\n\n".encode()], fin_after=5),
                 id="upstream-cut"),
    pytest.param(f"error_event:after=2,data={UPSTREAM}",
                 stream_reply([*TEXT_EVENTS[:2], f"event: error\ndata: {UPSTREAM}\n\n".encode()]), id="upstream-end"),
    pytest.param("error_event:after=4,event=overloaded,then=cut",  # a name the SDK does not know: it reads on
                 stream_reply([*TEXT_EVENTS[:4], b"event: overloaded" + IN_STREAM[len(b"event: error"):]],
                              fin_after=5), id="other-name-cut"),
]  # fmt: skip


@pytest.fixture
def real_server() -> Iterator[WireServer]:
    with WireServer() as server:
        yield server


async def _both_ways(spec: str, reply: Reply, server: WireServer, recording: Recording) -> None:
    """In every usage style, sync and async: the app sees the same from the real server and from
    the replay (the replay pointed at the same URL, so messages that name it agree)."""
    for style in sdk.STYLES:
        server.queue(reply)
        real = sdk.consume(server.base_url, style)
        real_async = await sdk.aconsume(server.base_url, style)
        with streamtape.use_cassette(recording.path, faults=spec, match_on=BY_PATH):
            replayed = sdk.consume(server.base_url, style)
        async with streamtape.use_cassette(recording.path, faults=spec, match_on=BY_PATH):
            replayed_async = await sdk.aconsume(server.base_url, style)
        assert (style, replayed) == (style, real)
        assert (style, replayed_async) == (style, real_async)


@pytest.mark.parametrize(("spec", "reply"), IN_STREAM_CASES)
async def test_an_in_stream_error_reaches_the_sdk_as_from_a_real_server(
    spec: str, reply: Reply, real_server: WireServer, recording: Recording
) -> None:
    await _both_ways(spec, reply, real_server, recording)


@pytest.mark.parametrize(("spec", "reply"), IN_STREAM_CASES[:2])
def test_then_cut_is_a_fin_on_the_wire_and_end_is_not(spec: str, reply: Reply, real_server: WireServer,
                                                      recording: Recording) -> None:  # fmt: skip
    """Below the SDK: the raw client reads the event, then the real server's FIN (an incomplete
    chunked body) or its clean end; the in-process replay and ``serve`` give the same."""
    real_server.queue(reply)
    real = sdk.raw_chunks(real_server.base_url)
    with streamtape.use_cassette(recording.path, faults=spec, match_on=BY_PATH):
        replayed = sdk.raw_chunks(real_server.base_url)
    with ReplayServer(Cassette.load(recording.path), faults=spec) as served_by:  # what `streamtape serve` does
        served = sdk.raw_chunks(served_by.base_url)
    for seen in (replayed, served):
        assert (seen[0], b"".join(seen[1]), seen[2]) == (real[0], b"".join(real[1]), real[2])
    assert b"".join(real[1]).endswith(IN_STREAM)
    assert (real[2] is not None) == ("then=cut" in spec)
    if real[2] is not None:
        assert real[2].startswith("RemoteProtocolError: peer closed connection without sending complete message body")


# --- corrupt: how and where -------------------------------------------------------------------------


CORRUPT = [
    "corrupt:event=4",
    "corrupt:event=4,how=truncate",
    "corrupt:event=4,how=truncate,at=39",
    "corrupt:event=1,how=truncate,at=0",
    "corrupt:event=4,how=escape",
    "corrupt:event=4,how=escape,at=70",
    "corrupt:event=4,how=utf8",
    "corrupt:event=4,how=utf8,at=10",
    "corrupt:event=2,how=utf8,at=0",
]


def corrupted(spec: str, recording: Recording) -> list[bytes]:
    """The faulted body's pieces: the bytes the real server sends in its place."""
    (item,) = Cassette.load(recording.path).interactions
    return [a.data for a in apply([faults.parse_fault(spec)], item.actions(), Context()) if isinstance(a, Send)]


@pytest.mark.parametrize("spec", CORRUPT)
async def test_a_corrupt_event_raises_what_the_same_bytes_from_a_real_server_raise(
    spec: str, real_server: WireServer, recording: Recording
) -> None:
    await _both_ways(spec, stream_reply(corrupted(spec, recording)), real_server, recording)


@pytest.mark.parametrize(
    ("spec", "error"),
    [
        # cut right after a value, the JSON lacks its comma: what a real truncated delta reads as
        ("corrupt:event=4,how=truncate,at=39", ("JSONDecodeError", "Expecting ',' delimiter: line 1 column 40 (char 39)")),
        ("corrupt:event=4,how=truncate,at=40",
         ("JSONDecodeError", "Expecting property name enclosed in double quotes: line 1 column 41 (char 40)")),
        ("corrupt:event=4,how=truncate", ("JSONDecodeError", "Unterminated string starting at: line 1 column 50 (char 49)")),
        ("corrupt:event=4,how=escape", ("JSONDecodeError", "Invalid \\escape: line 1 column 3 (char 2)")),
        ("corrupt:event=4,how=utf8,at=10",
         ("UnicodeDecodeError", "'utf-8' codec can't decode byte 0xff in position 16: invalid start byte")),
    ],
)  # fmt: skip
def test_the_damage_reads_as_a_real_one(spec: str, error: tuple[str, str], recording: Recording) -> None:
    with streamtape.use_cassette(recording.path, faults=spec):
        seen = sdk.consume(recording.url, "events")
    assert seen.error is not None and (seen.error[0].rsplit(".", 1)[1], seen.error[1]) == error
    if error[0] == "JSONDecodeError":  # the message is json's own for the data cut or broken there
        event = split_events(b"".join(corrupted(spec, recording)))[3]
        data = event.split(b"\ndata: ", 1)[1].split(b"\n")[0]
        with pytest.raises(json.JSONDecodeError) as parsed:
            json.loads(data)
        assert str(parsed.value) == error[1]
