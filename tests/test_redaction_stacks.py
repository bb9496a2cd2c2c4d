"""No secret reaches a cassette, on every road: each HTTP stack and each provider's SDK.

An echo server on 127.0.0.1 answers every request by repeating everything the request carried (each
header value, the path and query, the body) in the response's headers, in its stream events (a chunk
boundary inside each repeated value), in an error body, or inside AWS event-stream frames (plain
``converse-stream`` payloads, and ``invoke-with-response-stream``'s base64 ``bytes``). Each road records
one exchange through it, with its credentials carried the ways that road sends them (Bearer, Basic,
``x-api-key``, ``x-goog-api-key``, ``?key=``, Azure's ``api-key``, OpenAI's organisation and project,
AWS SigV4 with a session token, presigned queries); the saved file, and the file with JSON, URL and
base64 escapes undone, must hold none of them, must load, and where the road is an SDK's stream must
replay through it. ``lint`` must then find nothing, and must find (and ``--fix`` remove) each of them
in a hand-made cassette.
"""

from __future__ import annotations

import asyncio
import base64
import binascii
import contextlib
import http.server
import json
import re
import socketserver
import threading
from collections.abc import Callable, Iterator
from pathlib import Path
from typing import Any
from urllib.parse import quote, unquote

import pytest
from hypothesis import HealthCheck, given, settings
from hypothesis import strategies as st

import streamtape
from streamtape import lint
from streamtape.cassette import Cassette, Interaction, Request, Response
from streamtape.framing.eventstream import decode_frame, encode_frame, frame_spans
from streamtape.redact import REDACTED, Redactor
from tests.support.echo_server import send_chunked

# assembled, so no committed line looks like a real key to scanners
KEY = "sk-ant-api03-" + "Qw7_" * 8
ORG = "org-" + "Xy3Pq9Lm2Nb8Vc4Rt6Hj1Kd"
PROJECT = "proj_" + "Ab3Cd5Ef7Gh9Ij2Kl4Mn6"
ACCESS = "AKIA" + "STREAMTAPEREDACT"
SECRET = "Zq8" + "wErTy/uIoP+aSdFgHjKl0123456789abcdefg"
SESSION = "IQoJb3JpZ2luX2VjE" + "Ab1" * 30
PASSWORD = "pr0xy-" + "Pa55word99"
#: what the server itself sets, the client never sends, and the body repeats
SERVER_COOKIE = "Sess" + "Ab3Cd4Ef5Gh6" * 2
SERVER_ORG = "8f0e1a2b-4c3d-4e8f-9a0b-" + "1c2d3e4f5a6b"


# --- the echo server ----------------------------------------------------------------------------------


class _Echo(http.server.BaseHTTPRequestHandler):
    protocol_version = "HTTP/1.1"

    def do_POST(self) -> None:  # noqa: N802 - http.server's naming
        if self.headers.get("transfer-encoding", "").lower() == "chunked":
            body = b""
            while size := int(self.rfile.readline().split(b";")[0], 16):
                body += self.rfile.read(size + 2)[:size]
            self.rfile.readline()
        else:
            body = self.rfile.read(int(self.headers.get("content-length") or 0))
        server: EchoServer = self.server  # type: ignore[assignment]
        said = [value for _, value in self.headers.items()] + [self.path, unquote(self.path)]
        said += [body.decode("utf-8", "replace"), SERVER_COOKIE, SERVER_ORG]
        status, headers, chunks = _reply(server.kind, said)
        headers += [("Set-Cookie", f"sid={SERVER_COOKIE}; Path=/; HttpOnly"), ("anthropic-organization-id", SERVER_ORG)]
        echoed = [(f"x-echo-{index}", value) for index, value in enumerate(said[:-3])
                  if "\n" not in value and "\r" not in value]  # fmt: skip
        send_chunked(self, status, echoed + headers, chunks)

    do_GET = do_POST  # noqa: N815

    def log_message(self, *args: Any) -> None:
        pass


class EchoServer(socketserver.ThreadingMixIn, http.server.HTTPServer):
    daemon_threads = True
    kind = "anthropic"

    @property
    def base_url(self) -> str:
        return f"http://127.0.0.1:{self.server_address[1]}"


@pytest.fixture(scope="module")
def echo() -> Iterator[EchoServer]:
    server = EchoServer(("127.0.0.1", 0), _Echo)
    thread = threading.Thread(target=server.serve_forever, daemon=True)
    thread.start()
    yield server
    server.shutdown()
    server.server_close()
    thread.join()


def _escaped(text: str) -> str:
    """Every character as a JSON ``\\u`` escape: what an API that escapes non-ASCII-safe output sends."""
    return "".join(f"\\u{ord(c):04x}" for c in text)


_CONVERSE = ((":content-type", "application/json"), (":message-type", "event"))


def _converse_frame(event: str, payload: dict[str, Any]) -> bytes:
    return encode_frame(((":event-type", event), *_CONVERSE), json.dumps(payload, separators=(",", ":")).encode())


def _invoke_frame(event: dict[str, Any]) -> bytes:
    inner = base64.b64encode(json.dumps(event).encode()).decode("ascii")
    payload = json.dumps({"bytes": inner, "p": "abcdefgh"}, separators=(",", ":")).encode()
    return encode_frame(((":event-type", "chunk"), *_CONVERSE), payload)


def _anthropic_events(text: str) -> list[dict[str, Any]]:
    return [
        {"type": "message_start", "message": {"id": "msg_01", "type": "message", "role": "assistant", "content": [],
                                              "model": "m", "stop_reason": None, "stop_sequence": None,
                                              "usage": {"input_tokens": 1, "output_tokens": 1}}},
        {"type": "content_block_start", "index": 0, "content_block": {"type": "text", "text": ""}},
        {"type": "content_block_delta", "index": 0, "delta": {"type": "text_delta", "text": text}},
        {"type": "content_block_stop", "index": 0},
        {"type": "message_delta", "delta": {"stop_reason": "end_turn", "stop_sequence": None},
         "usage": {"output_tokens": 2}},
        {"type": "message_stop"},
    ]  # fmt: skip


def _reply(kind: str, said: list[str]) -> tuple[int, list[tuple[str, str]], list[bytes]]:
    """The answer of ``kind`` repeating ``said``: (status, headers, chunks), a chunk boundary in each value."""
    text = " | ".join(said)
    escaped = _escaped(text[:4000])
    sse = [("content-type", "text/event-stream")]
    if kind == "anthropic":
        events = _anthropic_events(text)
        events.insert(2, {"type": "ping", "note": "x"})
        body = b"".join(f"event: {e['type']}\ndata: {json.dumps(e)}\n\n".encode() for e in events)
        body = body.replace(b'"note": "x"', f'"note": "{escaped}"'.encode())
    elif kind == "openai":
        chunks = [{"id": "chatcmpl-1", "object": "chat.completion.chunk", "created": 0, "model": "m",
                   "choices": [{"index": 0, "delta": {"role": "assistant", "content": piece}, "finish_reason": None}]}
                  for piece in (text, "done")]  # fmt: skip
        body = b"".join(f"data: {json.dumps(c)}\n\n".encode() for c in chunks) + b"data: [DONE]\n\n"
    elif kind == "gemini":
        chunk = {"candidates": [{"content": {"parts": [{"text": text}], "role": "model"}, "index": 0}],
                 "modelVersion": "gemini-x"}  # fmt: skip
        body = f"data: {json.dumps(chunk)}\r\n\r\n".encode()
    elif kind == "converse":
        sse = [("content-type", "application/vnd.amazon.eventstream")]
        body = b"".join([
            _converse_frame("messageStart", {"role": "assistant", "p": "abcd"}),
            _converse_frame("contentBlockDelta", {"contentBlockIndex": 0, "delta": {"text": text}, "p": "ab"}),
            _converse_frame("contentBlockDelta", {"contentBlockIndex": 0, "delta": {"text": escaped}}),
            _converse_frame("contentBlockStop", {"contentBlockIndex": 0}),
            _converse_frame("messageStop", {"stopReason": "end_turn"}),
            _converse_frame("metadata", {"usage": {"inputTokens": 1, "outputTokens": 2, "totalTokens": 3},
                                         "metrics": {"latencyMs": 5}}),
        ])  # fmt: skip
    elif kind == "invoke":
        sse = [("content-type", "application/vnd.amazon.eventstream"), ("x-amzn-bedrock-content-type", "application/json")]
        body = b"".join(_invoke_frame(event) for event in _anthropic_events(text))
    elif kind == "error":
        sse = [("content-type", "application/json")]
        body = json.dumps({"type": "error", "error": {"type": "authentication_error", "message": f"bad: {text}",
                                                      "escaped": escaped}}).encode()  # fmt: skip
        return 401, sse, _split(body, said)
    else:
        raise AssertionError(kind)
    return 200, sse, _split(body, said)


def _split(body: bytes, said: list[str]) -> list[bytes]:
    """``body`` in chunks, with a boundary inside every repeated value of 8 characters or more."""
    cuts: set[int] = set()
    for value in said:
        raw = value.encode("utf-8", "replace")
        if len(raw) >= 8:
            start = body.find(raw[:8])
            if start >= 0:
                cuts.add(start + 4)
    points = sorted(point for point in cuts if 0 < point < len(body))
    return [body[a:b] for a, b in zip([0, *points], [*points, len(body)], strict=True)]


# --- what "no leak" means -----------------------------------------------------------------------------


def _decodings(text: str) -> list[str]:
    unescaped = re.sub(r"\\u([0-9a-fA-F]{4})", lambda m: chr(int(m[1], 16)), text).replace("\\/", "/")
    return [text, unescaped, unquote(unescaped), unquote(text), unquote(unquote(text))]


def _base64_texts(text: str) -> list[str]:
    """What every base64-looking run in ``text`` decodes to (a frame kept ``raw``, a Basic token)."""
    out = []
    for match in re.finditer(r"[A-Za-z0-9+/]{16,}={0,2}", text):
        for shift in range(4):
            piece = match.group()[shift:]
            piece = piece[: len(piece) - len(piece) % 4]
            with contextlib.suppress(binascii.Error, ValueError):
                out.append(base64.b64decode(piece).decode("latin-1"))
    return out


def assert_no_leak(path: Path, secrets: list[str]) -> None:
    text = path.read_text(encoding="utf-8")
    cassette = Cassette.load(path)  # still a valid cassette: chunk sizes, JSON, frames, line count
    texts = _decodings(text)
    texts += [form for decoded in _base64_texts(text) for form in _decodings(decoded)]
    for item in cassette.interactions:
        if item.response is not None:
            body = item.response.body
            for start, end in frame_spans(body):
                payload = decode_frame(body[start:end]).payload  # every frame still has valid CRCs
                texts += _decodings(payload.decode("utf-8", "replace"))
            if b"\x00" in body[:12] and body:
                assert list(frame_spans(body)), "the event stream lost its frames"
    for secret in secrets:
        for form in texts:
            assert secret not in form, f"{secret!r} reached the cassette:\n{text[:6000]}"


def _lint_clean(path: Path) -> None:
    problems = [str(p) for p in lint.lint_file(path) if p.kind == "secret"]
    assert not problems, problems


# --- the roads -----------------------------------------------------------------------------------------

Road = Callable[[str, str], None]  # (base_url, key) -> None: one exchange, whatever it raises swallowed


def _httpx2(base: str, key: str) -> None:
    import httpx2

    with httpx2.Client(base_url=base) as client:
        client.post("/v1/messages", params={"key": key}, headers={"authorization": f"Bearer  {key}"},
                    content=json.dumps({"prompt": f"is {key} valid"})).read()  # fmt: skip


def _anthropic(base: str, key: str) -> None:
    import anthropic

    with anthropic.Anthropic(api_key=key, base_url=base, max_retries=0) as client:
        with client.messages.stream(model="m", max_tokens=5, messages=[{"role": "user", "content": "hi"}]) as stream:
            stream.get_final_text()


def _anthropic_aiohttp(base: str, key: str) -> None:
    import anthropic

    try:
        anthropic.DefaultAioHttpClient()
    except (AttributeError, RuntimeError):  # an older anthropic, or one without its aiohttp extra
        pytest.skip("this anthropic has no DefaultAioHttpClient")

    async def run() -> None:
        async with anthropic.AsyncAnthropic(api_key=key, base_url=base, max_retries=0,
                                            http_client=anthropic.DefaultAioHttpClient()) as client:  # fmt: skip
            async with client.messages.stream(model="m", max_tokens=5,
                                              messages=[{"role": "user", "content": "hi"}]) as stream:  # fmt: skip
                await stream.get_final_text()

    asyncio.run(run())


def _aiohttp(base: str, key: str) -> None:
    aiohttp = pytest.importorskip("aiohttp")

    async def run() -> None:
        async with aiohttp.ClientSession() as session:
            async with session.post(f"{base}/v1beta/models/g:streamGenerateContent?alt=sse&key={key}",
                                    headers={"x-goog-api-key": key, "Cookie": f"sid={key}"},
                                    json={"contents": [{"parts": [{"text": key}]}]}) as response:  # fmt: skip
                await response.read()

    asyncio.run(run())


def _requests(base: str, key: str) -> None:
    requests = pytest.importorskip("requests")
    requests.post(f"{base}/openai/deployments/d/chat/completions", params={"api-version": "2024-06-01", "api_key": key},
                  headers={"api-key": key, "OpenAI-Organization": ORG, "OpenAI-Project": PROJECT},
                  auth=("user", key), json={"messages": [{"role": "user", "content": f"{ORG} {PROJECT}"}]},
                  timeout=5)  # fmt: skip


def _urllib3(base: str, key: str) -> None:
    urllib3 = pytest.importorskip("urllib3")
    with urllib3.PoolManager() as pool:
        pool.request("POST", f"{base}/v1/x%2F{quote(key, safe='')}?api_key={quote(key, safe='')}",
                     headers={"x-auth-token": key, "Authorization": f"ApiKey\t{key}"}, body=b"{}")  # fmt: skip


def _openai(base: str, key: str) -> None:
    openai = pytest.importorskip("openai")
    with openai.OpenAI(api_key=key, base_url=base, organization=ORG, project=PROJECT, max_retries=0) as client:
        for _ in client.chat.completions.create(model="m", stream=True, messages=[{"role": "user", "content": "hi"}]):
            pass


def _azure(base: str, key: str) -> None:
    openai = pytest.importorskip("openai")
    client = openai.AzureOpenAI(api_key=key, azure_endpoint=base, api_version="2024-06-01", max_retries=0)
    with client:
        for _ in client.chat.completions.create(model="d", stream=True, messages=[{"role": "user", "content": "hi"}]):
            pass


def _gemini(base: str, key: str) -> None:
    genai = pytest.importorskip("google.genai")
    from google.genai import types

    retry = types.HttpRetryOptions(attempts=1)
    client = genai.Client(api_key=key, http_options=types.HttpOptions(base_url=base, retry_options=retry))
    try:
        for _ in client.models.generate_content_stream(model="gemini-x", contents="hi"):
            pass
    finally:
        client.close()


def _boto3(base: str, key: str) -> None:
    boto3 = pytest.importorskip("boto3")
    import botocore.config

    client = boto3.client("bedrock-runtime", endpoint_url=base, region_name="us-east-1",
                          config=botocore.config.Config(retries={"total_max_attempts": 1}))  # fmt: skip
    for _ in client.converse_stream(modelId="m", messages=[{"role": "user", "content": [{"text": key}]}])["stream"]:
        pass


def _bedrock_anthropic(base: str, key: str) -> None:
    import anthropic

    if not hasattr(anthropic, "AnthropicBedrock"):
        pytest.skip("this anthropic has no AnthropicBedrock")
    with anthropic.AnthropicBedrock(base_url=base, aws_region="us-east-1", aws_access_key=ACCESS,
                                    aws_secret_key=SECRET, aws_session_token=SESSION, max_retries=0) as client:
        with client.messages.stream(model="anthropic.claude-x", max_tokens=5,
                                    messages=[{"role": "user", "content": key}]) as stream:  # fmt: skip
            stream.get_final_text()


#: road -> (what it sends, the response kind its SDK reads)
ROADS: dict[str, tuple[Road, str]] = {
    "httpx2": (_httpx2, "anthropic"),
    "anthropic": (_anthropic, "anthropic"),
    "anthropic-aiohttp": (_anthropic_aiohttp, "anthropic"),
    "aiohttp": (_aiohttp, "gemini"),
    "requests": (_requests, "openai"),
    "urllib3": (_urllib3, "openai"),
    "openai": (_openai, "openai"),
    "azure": (_azure, "openai"),
    "gemini": (_gemini, "gemini"),
    "boto3": (_boto3, "converse"),
    "bedrock-anthropic": (_bedrock_anthropic, "invoke"),
}
_AWS_ENV = {"AWS_ACCESS_KEY_ID": ACCESS, "AWS_SECRET_ACCESS_KEY": SECRET, "AWS_SESSION_TOKEN": SESSION}


def _record(echo: EchoServer, path: Path, road: str, kind: str, key: str, monkeypatch: pytest.MonkeyPatch,
            *, aws_env: bool = True, secrets: tuple[str, ...] = ()) -> None:  # fmt: skip
    drive, _ = ROADS[road]
    for name in ("AWS_PROFILE", "AWS_CONFIG_FILE", "AWS_SHARED_CREDENTIALS_FILE"):
        monkeypatch.delenv(name, raising=False)
    monkeypatch.setenv("AWS_CONFIG_FILE", "/nonexistent")
    monkeypatch.setenv("AWS_SHARED_CREDENTIALS_FILE", "/nonexistent")
    for name, value in _AWS_ENV.items():
        if aws_env:
            monkeypatch.setenv(name, value)
        else:
            monkeypatch.delenv(name, raising=False)
    echo.kind = kind
    with streamtape.use_cassette(path, record_mode="all", record_failures=True, secrets=list(secrets)):
        with contextlib.suppress(Exception):
            drive(echo.base_url, key)
    assert path.exists(), f"{road}: nothing was recorded"


_SECRETS = [KEY, ORG, PROJECT, ACCESS, SECRET, SESSION, SERVER_COOKIE, SERVER_ORG]
_AWS_ROADS = ("boto3", "bedrock-anthropic")  # the key there is only the prompt's text; AWS signs the request


def _secrets(road: str) -> list[str]:
    return [ACCESS, SECRET, SESSION, SERVER_COOKIE, SERVER_ORG] if road in _AWS_ROADS else _SECRETS


@pytest.mark.parametrize("kind", ["stream", "error"])
@pytest.mark.parametrize("road", list(ROADS))
def test_every_road_keeps_every_credential_out(
    echo: EchoServer, tmp_path: Path, monkeypatch: pytest.MonkeyPatch, road: str, kind: str
) -> None:
    path = tmp_path / "echo.yaml"
    prompt = "hello there" if road in _AWS_ROADS else KEY  # on AWS roads the key is only the prompt's text
    _record(echo, path, road, ROADS[road][1] if kind == "stream" else "error", prompt, monkeypatch)
    assert_no_leak(path, _secrets(road))
    _lint_clean(path)


@pytest.mark.parametrize("road", ["boto3", "bedrock-anthropic"])
def test_aws_credentials_from_the_request_alone(
    echo: EchoServer, tmp_path: Path, monkeypatch: pytest.MonkeyPatch, road: str
) -> None:
    """No AWS variables to learn from: the access key id, the signature and the session token are
    known from the request's SigV4 headers only (boto3 is given its keys in code)."""
    path = tmp_path / "aws.yaml"
    if road == "boto3":
        boto3 = pytest.importorskip("boto3")

        def drive(base: str, key: str) -> None:
            client = boto3.client("bedrock-runtime", endpoint_url=base, region_name="us-east-1",
                                  aws_access_key_id=ACCESS, aws_secret_access_key=SECRET,
                                  aws_session_token=SESSION)  # fmt: skip
            for _ in client.converse_stream(modelId="m", messages=[{"role": "user", "content": [{"text": "x"}]}])["stream"]:
                pass

        monkeypatch.setitem(ROADS, "boto3", (drive, "converse"))
    _record(echo, path, road, ROADS[road][1], "hello there", monkeypatch, aws_env=False)
    text = path.read_text()
    assert "AWS4-HMAC-SHA256" not in text or "Signature=" not in text
    signatures = [line for line in text.splitlines() if re.search(r"[0-9a-f]{64}", line)]
    assert not signatures, signatures  # the echoed SigV4 signature
    assert_no_leak(path, [ACCESS, SESSION, SERVER_COOKIE, SERVER_ORG])
    _lint_clean(path)


# --- replays: a redacted cassette still plays through the SDK that recorded it --------------------------


def test_a_redacted_converse_stream_replays_through_boto3(
    echo: EchoServer, tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    boto3 = pytest.importorskip("boto3")
    path = tmp_path / "converse.yaml"
    _record(echo, path, "boto3", "converse", KEY, monkeypatch)
    assert_no_leak(path, _secrets("boto3"))
    client = boto3.client("bedrock-runtime", endpoint_url=echo.base_url, region_name="us-east-1")
    with streamtape.use_cassette(path, record_mode="none"):
        events = list(client.converse_stream(modelId="m", messages=[{"role": "user", "content": [{"text": KEY}]}])["stream"])
    text = "".join(e["contentBlockDelta"]["delta"]["text"] for e in events if "contentBlockDelta" in e)
    assert REDACTED in text and ACCESS not in text
    assert "messageStop" in events[-2] and "metadata" in events[-1]


def test_a_redacted_invoke_stream_replays_through_anthropic_bedrock(
    echo: EchoServer, tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    import anthropic

    if not hasattr(anthropic, "AnthropicBedrock"):
        pytest.skip("this anthropic has no AnthropicBedrock")
    path = tmp_path / "invoke.yaml"
    _record(echo, path, "bedrock-anthropic", "invoke", KEY, monkeypatch)
    assert_no_leak(path, _secrets("bedrock-anthropic"))
    with streamtape.use_cassette(path, record_mode="none"):
        with anthropic.AnthropicBedrock(base_url=echo.base_url, aws_region="us-east-1", aws_access_key=ACCESS,
                                        aws_secret_key=SECRET, aws_session_token=SESSION, max_retries=0) as client:
            with client.messages.stream(model="anthropic.claude-x", max_tokens=5,
                                        messages=[{"role": "user", "content": KEY}]) as stream:  # fmt: skip
                text = stream.get_final_text()
    assert REDACTED in text and SESSION not in text


# --- Hypothesis: random keys, placements and encodings through the non-httpx roads ------------------------

_ALPHABET = "ABCDEFGHIJKLMNOPQRSTUVWXYZabcdefghijklmnopqrstuvwxyz0123456789-_"


@st.composite
def keys(draw: Any) -> str:
    shape = draw(st.sampled_from(["sk-ant", "sk-proj", "google", "hex", "random"]))
    body = draw(st.text(alphabet=_ALPHABET, min_size=20, max_size=40))
    return {
        "sk-ant": f"sk-ant-api03-{body}",
        "sk-proj": f"sk-proj-{body}",
        "google": f"AIza{body}",
        "hex": draw(st.text(alphabet="0123456789abcdef", min_size=32, max_size=64)),
        "random": body,
    }[shape]


@settings(max_examples=25, deadline=None, suppress_health_check=[HealthCheck.function_scoped_fixture])
@given(key=keys(), road=st.sampled_from(["aiohttp", "requests", "urllib3", "boto3"]),
       kind=st.sampled_from(["anthropic", "gemini", "converse", "invoke", "error"]))  # fmt: skip
def test_random_keys_through_every_stack(
    echo: EchoServer, tmp_path_factory: pytest.TempPathFactory, key: str, road: str, kind: str
) -> None:
    path = tmp_path_factory.mktemp("fuzz") / "fuzz.yaml"
    with pytest.MonkeyPatch.context() as monkeypatch:
        # boto3 sends the key only as the prompt: there it is the user's own secret (``secrets=``)
        _record(echo, path, road, kind, key, monkeypatch, secrets=(key,) if road in _AWS_ROADS else ())
    assert_no_leak(path, [key, *_secrets(road)])


# --- frames and lint -------------------------------------------------------------------------------------


def _frames_body(secret: str) -> bytes:
    plain = _converse_frame("contentBlockDelta", {"contentBlockIndex": 0, "delta": {"text": f"k {secret}"}})
    wrapped = _invoke_frame({"type": "content_block_delta", "delta": {"text": f"k {secret}"}})
    header = encode_frame(((":event-type", "x"), ("note", f"from {secret}"), *_CONVERSE), b"{}")
    return plain + wrapped + header


def test_a_redacted_event_stream_keeps_valid_frames_and_its_chunk_layout() -> None:
    body = _frames_body(KEY)
    sizes = [len(body[s:e]) for s, e in frame_spans(body)]
    cut = body.index(KEY.encode()) + 5  # one chunk boundary inside the key
    timing = ((0.1, cut), (0.2, sizes[0] - cut), (0.3, sizes[1]), (0.4, sizes[2]))
    response = Response(200, (("content-type", "application/vnd.amazon.eventstream"),
                              ("content-length", str(len(body)))), body, timing)  # fmt: skip
    cleaned = Redactor([("x-api-key", KEY)], environment=False).response(response)
    spans = list(frame_spans(cleaned.body))
    assert sum(e - s for s, e in spans) == len(cleaned.body) and len(spans) == 3
    payloads = [decode_frame(cleaned.body[s:e]) for s, e in spans]
    assert json.loads(payloads[0].payload)["delta"]["text"] == f"k {REDACTED}"
    inner = base64.b64decode(json.loads(payloads[1].payload)["bytes"])
    assert json.loads(inner)["delta"]["text"] == f"k {REDACTED}"
    assert dict(payloads[2].headers)["note"] == f"from {REDACTED}"
    assert sum(size for _, size in cleaned.timing) == len(cleaned.body)
    assert [size for _, size in cleaned.timing][1:] == [spans[0][1] - sum(s for _, s in cleaned.timing[:1]),
                                                        spans[1][1] - spans[1][0], spans[2][1] - spans[2][0]]
    assert cleaned.header("content-length") == str(len(cleaned.body))


def _hand_made(tmp_path: Path) -> tuple[Path, list[str]]:
    """A cassette written past the recorder, every credential in it."""
    google = "AIza" + "Sy9" * 11 + "xy"
    hex40 = "0123456789abcdef0123456789abcdef01234567"
    sig = "fedcba9876543210" * 4
    jwt = "eyJhbGciOiJIUzI1NiJ9." + "eyJzdWIiOiIxMjM0NTY3ODkwIn0." + "SflKxwRJSMeKKF2QT4fwpMeJf36POk6yJV"
    bodies = [f'{{"k":"{KEY}","g":"{_escaped(google)}","aws":"{ACCESS}","h":"{hex40}","t":"Bearer {jwt}"}}']
    event = _frames_body(f"{KEY} {google}")
    error_body = json.dumps({"error": f"api_key={hex40} sk-proj-{'Ab1' * 10}"}).encode()
    items = [
        Interaction(
            Request("POST", f"https://bedrock.example/model/m/invoke?key={google}&X-Amz-Credential={ACCESS}%2F2024"
                            f"%2Fus-east-1%2Fbedrock%2Faws4_request&X-Amz-Signature={sig}",
                    (("x-trace", f"Bearer {jwt}"),), bodies[0].encode()),
            Response(200, (("content-type", "application/vnd.amazon.eventstream"),), event, ((0.1, len(event)),)),
        ),
        Interaction(Request("GET", f"http://user:{PASSWORD}@proxy.example/v1/{quote(KEY, safe='')}"),
                    Response(401, (("content-type", "application/json"),),
                             error_body, ((0.1, len(error_body)),))),
    ]  # fmt: skip
    path = tmp_path / "hand.yaml"
    path.write_text(Cassette(items).dumps())
    return path, [KEY, google, ACCESS, hex40, sig, jwt, PASSWORD, f"sk-proj-{'Ab1' * 10}"]


def test_lint_finds_and_fix_removes_every_shape(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    for name in _AWS_ENV:
        monkeypatch.delenv(name, raising=False)
    path, secrets = _hand_made(tmp_path)
    found = [p for p in lint.lint_file(path) if p.kind == "secret"]
    assert len(found) >= 6, found
    assert lint.fix_secrets(path) > 0
    assert_no_leak(path, secrets)
    _lint_clean(path)
    for item in Cassette.load(path):
        if item.response is not None and item.response.body.startswith(b"\x00"):
            assert [decode_frame(item.response.body[s:e]) for s, e in frame_spans(item.response.body)]


def test_lint_leaves_ordinary_ids_alone(tmp_path: Path) -> None:
    body = json.dumps({"id": "msg_01XFDUDYJgAACzvnptvVoYEL", "request_id": "req_011CSHoEeqs5C35K2UUqR7Fy",
                       "uuid": "b0cf6d2a-e435-4e9e-972d-a129006e1acc", "fp": "fp_44709d6fcb",
                       "chatcmpl": "chatcmpl-AbCdEfGhIjKlMnOpQrStUvWxYz012345",
                       "resp": "resp_67ccd2bed1ec8190b14f964abc0542670bb6a6b452e3a6b1"}).encode()  # fmt: skip
    path = tmp_path / "ids.yaml"
    path.write_text(Cassette([Interaction(Request("POST", "https://api.example/v1/messages"),
                                          Response(200, (("content-type", "application/json"),), body,
                                                   ((0.1, len(body)),)))]).dumps())
    _lint_clean(path)


def test_lint_fix_on_a_hand_edited_event_stream_leaves_one_boto3_replays(
    echo: EchoServer, tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    """A key put by hand into a recorded converse stream's decoded frames (an older recorder let it
    through): lint finds it, ``--fix`` removes it and re-encodes the frames, boto3 replays the file."""
    boto3 = pytest.importorskip("boto3")
    path = tmp_path / "converse.yaml"
    _record(echo, path, "boto3", "converse", "hello there", monkeypatch)
    google = "AIza" + "Vb5" * 11 + "qq"
    text = path.read_text()
    assert "hello there" in text
    path.write_text(text.replace("hello there", f"hello {google}"))
    assert [p for p in lint.lint_file(path) if p.kind == "secret"]
    assert lint.fix_secrets(path) > 0
    assert_no_leak(path, [google, *_secrets("boto3")])
    _lint_clean(path)
    client = boto3.client("bedrock-runtime", endpoint_url=echo.base_url, region_name="us-east-1")
    with streamtape.use_cassette(path, record_mode="none"):
        events = list(client.converse_stream(modelId="m", messages=[{"role": "user", "content": [{"text": "hello REDACTED"}]}])["stream"])
    assert "metadata" in events[-1]
    assert "hello REDACTED" in "".join(e["contentBlockDelta"]["delta"]["text"] for e in events if "contentBlockDelta" in e)


def test_what_is_not_a_valid_frame_is_masked_at_its_own_length() -> None:
    """A frame with a bad CRC and the incomplete frame a cut stream ends with are kept as recorded
    (``raw`` in the cassette), so a secret in them is overwritten in place: every boundary stays."""
    good = _converse_frame("contentBlockDelta", {"delta": {"text": f"k {KEY}"}})
    bad = bytearray(_converse_frame("contentBlockDelta", {"delta": {"text": f"bad {KEY}"}}))
    bad[-1] ^= 0xFF  # its message CRC no longer matches
    cut = _converse_frame("contentBlockDelta", {"delta": {"text": f"cut {KEY} here"}})[:-10]
    body = good + bytes(bad) + cut
    response = Response(200, (("content-type", "application/vnd.amazon.eventstream"),), body,
                        ((0.1, len(good) + 7), (0.2, len(body) - len(good) - 7)))  # fmt: skip
    cleaned = Redactor([("x-api-key", KEY)], environment=False).response(response)
    assert KEY.encode() not in cleaned.body and sum(size for _, size in cleaned.timing) == len(cleaned.body)
    spans = list(frame_spans(cleaned.body))
    assert len(spans) == 2 and spans[1][1] - spans[1][0] == len(bad) and b"bad REDACTEDRED" in cleaned.body
    assert len(cleaned.body) - spans[1][1] == len(cut)  # the cut frame: same length, masked
    assert json.loads(decode_frame(cleaned.body[: spans[0][1]]).payload)["delta"]["text"] == f"k {REDACTED}"
    path_text = Cassette([Interaction(Request("POST", "http://x/model/m/converse-stream"), cleaned)]).dumps()
    assert KEY not in path_text and "raw:" in path_text
