"""No secret reaches a cassette: one redactor for everything recorded, and lint that finds the rest.

The fuzz test records real exchanges over a real socket on 127.0.0.1 (through httpx2, the SDKs'
stack) with a credential carried every way HTTP and the SDKs allow, repeated in every place a
request, a response, a stream event or an error text can hold it, raw and JSON/URL-escaped, and then
reads the saved file back as text: the key must appear in no form.
"""

from __future__ import annotations

import asyncio
import base64
import contextlib
import json
import os
import random
import re
import tempfile
from collections.abc import Iterator
from pathlib import Path
from typing import Any
from urllib.parse import quote, unquote

import httpx2
import pytest
from hypothesis import HealthCheck, given, settings
from hypothesis import strategies as st

import streamtape
from streamtape import lint
from streamtape.cassette import Cassette, Interaction, Request, Response
from streamtape.redact import KEY_SHAPES, REDACTED, Redactor, add_secret_headers, add_secret_params, scan
from streamtape.wire import Cut
from tests.support.echo_server import EchoServer, echo_server


@pytest.fixture(scope="module")
def echo() -> Iterator[EchoServer]:
    with echo_server() as server:
        yield server


# --- encodings and forms ----------------------------------------------------------------------------


def _json_escaped(secret: str, rng: random.Random) -> str:
    return "".join(f"\\u{ord(c):04x}" if rng.random() < 0.5 else ("\\/" if c == "/" else c) for c in secret)


def _url_escaped(secret: str, rng: random.Random) -> str:
    return "".join(f"%{ord(c):02X}" if rng.random() < 0.5 else quote(c, safe="") for c in secret)


def _every_decoding(text: str) -> list[str]:
    """The file, and the file with JSON and URL escapes undone (what a reader of it could recover)."""
    unescaped = re.sub(r"\\u([0-9a-fA-F]{4})", lambda m: chr(int(m[1], 16)), text).replace("\\/", "/")
    return [text, unescaped, unquote(unescaped), unquote(text)]


def assert_no_leak(path: Path, secret: str) -> None:
    text = path.read_text(encoding="utf-8")
    for form in _every_decoding(text):
        for value in {secret, secret.strip()}:
            assert value not in form, f"the secret reached the cassette:\n{text}"
    Cassette.load(path)  # still a valid cassette: chunk sizes, JSON, line count


_ALPHABET = "ABCDEFGHIJKLMNOPQRSTUVWXYZabcdefghijklmnopqrstuvwxyz0123456789-_./+="


@st.composite
def secrets_(draw: Any) -> str:
    shape = draw(st.sampled_from(["sk-ant", "sk-proj", "google", "hex", "random"]))
    body = draw(st.text(alphabet=_ALPHABET, min_size=16, max_size=40))
    hexes = draw(st.text(alphabet="0123456789abcdef", min_size=32, max_size=40))
    return {
        "sk-ant": f"sk-ant-api03-{body}",
        "sk-proj": f"sk-proj-{body}",
        "google": f"AIza{body}",
        "hex": hexes,
        "random": body,
    }[shape]


_CARRIERS = [
    "bearer", "basic", "token", "digest", "apikey-scheme", "x-api-key", "x-goog-api-key", "api-key",
    "x-auth-token", "custom-suffix", "cookie", "query-key", "query-api_key", "environment", "user-secret",
    "basic-user", "digest-username", "bare-authorization", "sigv4", "x-amz-security-token", "apikey",
    "x-api-token", "x_api_key", "openai-organization", "openai-project", "proxy-authorization",
    "query-X-Amz-Signature", "query-x-goog-api-key", "query-access-token", "proxy-environment",
]  # fmt: skip
_PLACES = [
    "url-path", "other-header", "body-raw", "body-json-escaped", "body-url-escaped", "response-body",
    "response-body-escaped", "response-event-split", "response-header", "error-body", "response-cookie",
    "body-url-escaped-twice", "body-url-of-json-escape", "stainless-version", "response-bearer-quote",
]  # fmt: skip


def _casing(name: str, rng: random.Random) -> str:
    return "".join(c.upper() if rng.random() < 0.5 else c.lower() for c in name)


def _carry(carrier: str, secret: str, rng: random.Random) -> tuple[dict[str, str], dict[str, str], dict[str, str], list[str]]:
    """(headers, query, environment, user secrets) that carry ``secret`` the way ``carrier`` says."""
    space = rng.choice([" ", "  ", "\t", " \t"])
    headers: dict[str, str] = {}
    query: dict[str, str] = {}
    if carrier in ("bearer", "token", "apikey-scheme"):
        scheme = {"bearer": "Bearer", "token": "Token", "apikey-scheme": "ApiKey"}[carrier]
        headers[_casing("authorization", rng)] = f"{scheme}{space}{secret}"
    elif carrier == "basic":
        user = rng.choice(["", "user", "api"])
        token = base64.b64encode(f"{user}:{secret}".encode()).decode()
        headers[_casing("authorization", rng)] = f"Basic{space}{token}"
    elif carrier == "digest":
        headers["Authorization"] = f'Digest username="bob", realm="api", uri="/v1/x", response="{secret}"'
    elif carrier == "digest-username":
        headers["Authorization"] = f'Digest username="{secret}", realm="api", uri="/v1/x", response="0a1b"'
    elif carrier == "basic-user":  # the key as the user name, a dummy password (``KEY:X``)
        token = base64.b64encode(f"{secret}:{rng.choice(['', 'X'])}".encode()).decode()
        headers[_casing("authorization", rng)] = f"Basic{space}{token}"
    elif carrier == "bare-authorization":
        headers[_casing("authorization", rng)] = secret
    elif carrier == "sigv4":
        credential = f"{secret}/20260101/us-east-1/bedrock/aws4_request"
        headers["Authorization"] = (f"AWS4-HMAC-SHA256 Credential={credential}, SignedHeaders=host;x-amz-date, "
                                    f"Signature={'0a1b2c3d' * 8}")  # fmt: skip
    elif carrier == "proxy-authorization":
        headers["Proxy-Authorization"] = "Basic " + base64.b64encode(f"u:{secret}".encode()).decode()
    elif carrier == "custom-suffix":
        headers[_casing("x-acme-api-key", rng)] = secret
    elif carrier == "cookie":
        headers["Cookie"] = f"theme=dark; session={secret}"
    elif carrier.startswith("query-"):
        query[carrier.removeprefix("query-")] = secret
    elif carrier not in ("environment", "user-secret", "proxy-environment"):
        headers[_casing(carrier, rng)] = secret
    environment = {"ACME_SERVICE_API_KEY": secret} if carrier == "environment" else {}
    if carrier == "proxy-environment":  # the proxy is not used (no_proxy), but its password is known
        environment = {"HTTPS_PROXY": f"http://me:{quote(secret, safe='')}@127.0.0.1:9", "NO_PROXY": "*"}
    return headers, query, environment, [secret] if carrier == "user-secret" else []


def _plan(places: list[str], secret: str, rng: random.Random) -> tuple[str, dict[str, str], bytes, dict[str, Any]]:
    """Where the secret is repeated: (url path, extra request headers, request body, server plan)."""
    path = f"/v1/{quote(secret, safe='')}/messages" if "url-path" in places else "/v1/messages"
    extra = {"x-trace": f"trace {secret} end"} if "other-header" in places else {}
    body: dict[str, Any] = {"model": "m", "messages": [{"role": "user", "content": "hi"}]}
    raw = json.dumps(body)
    if "body-raw" in places:
        raw = raw.replace('"hi"', json.dumps(f"my key is {secret}"))
    if "body-json-escaped" in places:
        raw = raw.replace('"m"', f'"{_json_escaped(secret, rng)}"')
    if "body-url-escaped" in places:
        raw = raw.replace('"user"', f'"user?next={_url_escaped(secret, rng)}"')
    if "body-url-escaped-twice" in places:
        raw = raw.replace('"messages"', f'"messages", "u": "{quote(_url_escaped(secret, rng), safe="")}"')
    if "body-url-of-json-escape" in places:
        raw = raw.replace('"messages"', f'"messages", "v": "{quote(_json_escaped(secret, rng), safe="")}"')
    if "stainless-version" in places:
        extra["x-stainless-package-version"] = secret
    status, headers, payload = 200, [("content-type", "text/event-stream")], b""
    events = [{"type": "message_start"}, {"type": "content_block_delta", "text": "Hello"}]
    if "response-body" in places:
        events.append({"type": "content_block_delta", "text": f"echo {secret}"})
    if "response-body-escaped" in places:
        events.append({"type": "content_block_delta", "text": "x"})
        payload += f'event: ping\ndata: {{"k": "{_json_escaped(secret, rng)}"}}\n\n'.encode()
    if "response-event-split" in places:
        events.append({"type": "error", "error": {"message": f"invalid key {secret}"}})
    payload = b"".join(f"event: {e['type']}\ndata: {json.dumps(e)}\n\n".encode() for e in events) + payload
    if "error-body" in places:
        status, headers = 401, [("content-type", "application/json")]
        payload = json.dumps({"type": "error", "error": {"message": f"bad key: {secret}"}}).encode()
    if "response-bearer-quote" in places:
        events.append({"type": "error", "error": {"message": f"rejected header Authorization: Bearer {secret}"}})
    if "response-header" in places:
        headers.append(("x-echo", f"you sent {secret}"))
    if "response-cookie" in places:
        headers.append(("Set-Cookie", f"session={secret}; Path=/; HttpOnly"))
    cuts = sorted(rng.sample(range(1, len(payload)), min(6, len(payload) - 1)))
    chunks = [payload[a:b] for a, b in zip([0, *cuts], [*cuts, len(payload)], strict=True)]
    return path, extra, raw.encode(), {"status": status, "headers": headers, "chunks": chunks}


@settings(max_examples=120, deadline=None, suppress_health_check=[HealthCheck.function_scoped_fixture])
@given(
    secret=secrets_(),
    carrier=st.sampled_from(_CARRIERS),
    places=st.lists(st.sampled_from(_PLACES), min_size=1, max_size=5, unique=True),
    trailing_newline=st.booleans(),
    seed=st.integers(0, 2**16),
)
def test_no_placement_encoding_casing_or_scheme_leaks(
    echo: EchoServer, secret: str, carrier: str, places: list[str], trailing_newline: bool, seed: int
) -> None:
    rng = random.Random(seed)
    headers, query, environment, user_secrets = _carry(carrier, secret, rng)
    if trailing_newline and headers:  # a key read from a file: the stack refuses it, and quotes it
        name = next(iter(headers))
        headers[name] += "\n"
    path, extra, body, plan = _plan(places, secret, rng)
    echo.plan = plan  # type: ignore[attr-defined]
    saved = dict(os.environ)
    os.environ.update(environment)
    with tempfile.TemporaryDirectory() as tmp:
        cassette = Path(tmp) / "leak.yaml"
        try:
            with streamtape.use_cassette(cassette, record_mode="all", record_failures=True, secrets=user_secrets):
                with httpx2.Client(base_url=f"http://127.0.0.1:{echo.server_address[1]}") as client:
                    # the illegal header value raises: the failure is recorded, with its message
                    with contextlib.suppress(httpx2.HTTPError, httpx2.InvalidURL):
                        client.post(path, params=query, headers={**headers, **extra}, content=body).read()
        finally:
            os.environ.clear()
            os.environ.update(saved)
        assert cassette.exists()
        assert_no_leak(cassette, secret)


# --- the pieces ------------------------------------------------------------------------------------

KEY = "sk-ant-api03-" + "Zx9_" * 8  # assembled: no committed line looks like a real key to scanners


@pytest.mark.parametrize(
    "value",
    [f"Bearer {KEY}", f"Bearer  {KEY}", f"Bearer\t{KEY}", f"Token {KEY}", f"ApiKey {KEY}", f"bearer {KEY}\n"],
)
def test_every_authorization_scheme_and_spacing_is_parsed(value: str) -> None:
    redactor = Redactor([("Authorization", value)], environment=False)
    assert redactor.text(f"x{KEY}y") == f"x{REDACTED}y"


def test_basic_credentials_are_decoded() -> None:
    token = base64.b64encode(f"user:{KEY}".encode()).decode()
    redactor = Redactor([("authorization", f"Basic {token}")], environment=False)
    assert KEY not in redactor.text(f"password={KEY}") and token not in redactor.text(token)


def test_digest_parameters_but_not_the_uri() -> None:
    redactor = Redactor([("Authorization", f'Digest username="bob", uri="/v1/messages", response="{KEY}"')],
                        environment=False)  # fmt: skip
    assert redactor.text(f"/v1/messages {KEY}") == f"/v1/messages {REDACTED}"


def test_query_credentials_keep_their_name() -> None:
    redactor = Redactor(url=f"https://g.example/v1?alt=sse&key={KEY}", environment=False)
    assert redactor.text(f"https://g.example/v1?alt=sse&key={KEY}") == f"https://g.example/v1?alt=sse&key={REDACTED}"
    assert redactor.text("https://g.example/v1?API_KEY=abc12345") == f"https://g.example/v1?API_KEY={REDACTED}"


def test_escaped_forms_are_found() -> None:
    redactor = Redactor([("x-api-key", KEY)], environment=False)
    escaped = "".join(f"\\u{ord(c):04X}" for c in KEY)
    assert redactor.body(f'{{"k": "{escaped}"}}'.encode()) == b'{"k": "REDACTED"}'
    assert redactor.text(quote(KEY, safe="").replace("-", "%2d")) == REDACTED


def test_a_response_keeps_its_chunks_and_content_length_consistent() -> None:
    body = b'data: {"echo": "' + KEY.encode() + b'"}\n\n'
    split = body.index(b"Zx9") + 2  # a chunk boundary inside the key
    response = Response(200, (("Content-Length", str(len(body))),), body, ((0.1, split), (0.2, len(body) - split)))
    cleaned = Redactor([("x-api-key", KEY)], environment=False).response(response)
    assert cleaned.body == b'data: {"echo": "REDACTED"}\n\n'
    assert sum(size for _, size in cleaned.timing) == len(cleaned.body)
    assert cleaned.header("content-length") == str(len(cleaned.body))
    json.loads(cleaned.body[6:])


def test_error_texts_are_redacted() -> None:
    redactor = Redactor([("x-api-key", KEY + "\n")], environment=False)
    item = Interaction(Request("POST", "http://x/v1"), error=Cut("LocalProtocolError", f"Illegal header value b'{KEY}\\n'"))
    assert KEY not in str(redactor.interaction(item).error)


def test_a_set_cookie_value_is_removed_from_the_body_too() -> None:
    response = Response(200, (("set-cookie", "session=abcdefgh12345678; Path=/"),), b"token abcdefgh12345678")
    item = Redactor(environment=False).interaction(Interaction(Request("GET", "http://x/"), response))
    assert item.response is not None and item.response.body == b"token REDACTED" and not item.response.headers


def test_the_lists_are_extensible() -> None:
    add_secret_headers("X-Internal-Session")
    add_secret_params("sessionid")
    redactor = Redactor([("x-internal-session", "abcdefgh1234")], url="http://x/?sessionid=zzzzzzzz9", environment=False)
    assert redactor.headers([("X-Internal-Session", "abcdefgh1234")]) == ()
    assert redactor.text("zzzzzzzz9 abcdefgh1234") == f"{REDACTED} {REDACTED}"


def test_short_or_non_text_user_secrets_are_refused(tmp_path: Path) -> None:
    with pytest.raises(streamtape.ConfigError, match="shorter than 4"):
        streamtape.use_cassette(tmp_path / "x.yaml", secrets=["abc"])
    with pytest.raises(streamtape.ConfigError, match="not text"):
        streamtape.use_cassette(tmp_path / "x.yaml", secrets=[b"abcdef"])  # type: ignore[list-item]


def test_key_shapes_of_the_major_providers() -> None:
    keys = ["sk-ant-api03-" + "a" * 20, "sk-proj-" + "b" * 30, "AIza" + "c" * 35, "AKIA" + "D" * 16, "gsk_" + "e" * 40]
    assert [KEY_SHAPES.search(f" {key} ").group() for key in keys] == keys  # type: ignore[union-attr]
    assert not KEY_SHAPES.search("a task-management-system-design-document")  # not inside a word


# --- lint finds what was missed, and --fix removes it through the same redactor -----------------------


def _leaky(tmp_path: Path) -> Path:
    hexkey = "0123456789abcdef" * 2
    google = "AIza" + "Q" * 35
    body = f'event: message_start\ndata: {{"type":"message_start","note":"{KEY}"}}\n\n'.encode()
    items = [
        Interaction(
            Request("POST", f"https://generativelanguage.example/v1?key={google}", (("x-goog-api-key", google),),
                    json.dumps({"api_key": hexkey}).encode()),
            Response(200, (("content-type", "text/event-stream"),), body, ((0.1, len(body)),),
                     end=Cut("ReadError", f"reset while sending {KEY}")),
        ),
    ]  # fmt: skip
    path = tmp_path / "leaky.yaml"
    # written past the recorder (a cassette from before this version, or hand-made)
    # (the writer drops credential headers itself, so this one is put in by hand, keeping the line count)
    text = Cassette(items).dumps().replace("    headers: {}\n", f"    headers: {{x-goog-api-key: {google}}}\n", 1)
    path.write_text(text)
    return path


def test_lint_scans_responses_errors_and_other_key_shapes(tmp_path: Path) -> None:
    path = _leaky(tmp_path)
    messages = [str(problem) for problem in lint.lint_file(path) if problem.kind == "secret"]
    text = "\n".join(messages)
    for where in ("x-goog-api-key", "query parameter 'key'", "response body", "error message", "assigns"):
        assert where in text, text
    assert lint.fix_secrets(path) >= 5
    assert not [p for p in lint.lint_file(path) if p.kind == "secret"]
    saved = path.read_text()
    for value in (KEY, "AIza" + "Q" * 35, "0123456789abcdef" * 2):
        assert value not in saved
    item = Cassette.load(path).interactions[0]
    assert item.response is not None and sum(size for _, size in item.response.timing) == len(item.response.body)


def test_scan_reports_nothing_on_clean_starters() -> None:
    for path in sorted(Path(streamtape.__file__).parent.parent.joinpath("cassettes").rglob("*.yaml")):
        for item in Cassette.load(path):
            assert scan(item) == [], path


@pytest.mark.parametrize("asynchronous", [False, True])
def test_through_the_sdk_a_key_the_api_echoes_never_reaches_the_file(
    echo: EchoServer, tmp_path: Path, asynchronous: bool
) -> None:
    import asyncio

    import anthropic

    events = [
        {"type": "message_start", "message": {"id": "msg_1", "type": "message", "role": "assistant", "content": [],
                                              "model": "m", "stop_reason": None, "stop_sequence": None,
                                              "usage": {"input_tokens": 1, "output_tokens": 1}}},
        {"type": "content_block_start", "index": 0, "content_block": {"type": "text", "text": ""}},
        {"type": "content_block_delta", "index": 0, "delta": {"type": "text_delta", "text": f"your key: {KEY}"}},
        {"type": "content_block_stop", "index": 0},
        {"type": "message_delta", "delta": {"stop_reason": "end_turn", "stop_sequence": None},
         "usage": {"output_tokens": 2}},
        {"type": "message_stop"},
    ]  # fmt: skip
    payload = b"".join(f"event: {e['type']}\ndata: {json.dumps(e)}\n\n".encode() for e in events)
    echo.plan = {"status": 200, "headers": [("content-type", "text/event-stream")],  # type: ignore[attr-defined]
                 "chunks": [payload[:200], payload[200:230], payload[230:]]}  # fmt: skip
    base_url = f"http://127.0.0.1:{echo.server_address[1]}"
    path = tmp_path / "echo.yaml"
    ask = {"model": "m", "max_tokens": 5, "messages": [{"role": "user", "content": f"is {KEY} valid?"}]}
    with streamtape.use_cassette(path, record_mode="all"):
        if asynchronous:
            async def run() -> str:
                async with anthropic.AsyncAnthropic(api_key=KEY, base_url=base_url, max_retries=0) as client:
                    async with client.messages.stream(**ask) as stream:
                        return await stream.get_final_text()

            text = asyncio.run(run())
        else:
            with anthropic.Anthropic(api_key=KEY, base_url=base_url, max_retries=0) as client:
                with client.messages.stream(**ask) as stream:
                    text = stream.get_final_text()
    assert text == f"your key: {KEY}"  # the app saw the real bytes; only the file is cleaned
    assert_no_leak(path, KEY)
    with streamtape.use_cassette(path), anthropic.Anthropic(api_key="k", base_url=base_url) as client:
        with client.messages.stream(**{**ask, "messages": [{"role": "user", "content": "is REDACTED valid?"}]}) as stream:
            assert stream.get_final_text() == "your key: REDACTED"


@settings(max_examples=200, deadline=None)
@given(
    secrets=st.lists(st.text(alphabet="abcdef-_", min_size=8, max_size=12), min_size=1, max_size=3),
    pieces=st.lists(st.one_of(st.text(alphabet="abcdef-_ x?&=key", max_size=12), st.integers(0, 2)), max_size=12),
)
def test_the_fast_path_finds_what_the_full_pattern_finds(secrets: list[str], pieces: list[Any]) -> None:
    """Bodies with no escape in them are searched by plain substring search; same spans as the regex."""
    body = "".join(secrets[p % len(secrets)] if isinstance(p, int) else p for p in pieces).encode()
    redactor = Redactor(extra_secrets=secrets, environment=False)
    assert redactor._raw_spans(body) == redactor._regex_spans(bytes, body)


def test_a_variable_only_named_like_a_credential_needs_a_key_like_value(monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setenv("DJANGO_SECRET", "development")  # a setting, not a key: the word stays
    monkeypatch.setenv("ACME_API_KEY", "acme-4f9b2c7d1e8a6b3c")
    assert Redactor().text("development acme-4f9b2c7d1e8a6b3c") == f"development {REDACTED}"


# --- what the stacks and providers added: AWS, URL passwords, quoted tokens, nested escapes ---------


def test_a_presigned_credential_teaches_the_access_key_id() -> None:
    access = "AKIA" + "PRESIGNEDKEY1234"
    url = f"https://b.example/o?X-Amz-Credential={access}%2F20260101%2Fus-east-1%2Fs3%2Faws4_request&X-Amz-Signature=ab12"
    redactor = Redactor(url=url, environment=False)
    assert redactor.text(f'{{"AccessKeyId": "{access}"}}') == f'{{"AccessKeyId": "{REDACTED}"}}'
    assert redactor.text(url) == f"https://b.example/o?X-Amz-Credential={REDACTED}&X-Amz-Signature={REDACTED}"


def test_url_passwords_are_removed_known_or_not(monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setenv("HTTPS_PROXY", "http://me:s3cr3t-proxy-pw@proxy.example:3128")
    redactor = Redactor(url="http://bob:Hunter2Hunter2@api.example/v1")
    assert redactor.text("Hunter2Hunter2 and s3cr3t-proxy-pw") == f"{REDACTED} and {REDACTED}"
    unknown = Redactor(environment=False).text("Cannot connect to proxy http://u:0therPassw0rd@10.0.0.1:8080/")
    assert unknown == f"Cannot connect to proxy http://u:{REDACTED}@10.0.0.1:8080/"


def test_a_bearer_or_basic_token_is_removed_wherever_it_is_quoted() -> None:
    redactor = Redactor(environment=False)
    token = base64.b64encode(b"proxyuser:proxy-password-1").decode()
    assert redactor.body(f'{{"echo": "Basic {token}"}}'.encode()) == b'{"echo": "Basic REDACTED"}'
    assert redactor.text("upstream said: authorization: bearer tok_9f8e7d6c5b4a3210") == \
        f"upstream said: authorization: bearer {REDACTED}"  # fmt: skip
    plain = "the bearer of responsibilities, Basic authentication, Bearer tokens"
    assert redactor.text(plain) == plain  # words, not tokens


@pytest.mark.parametrize(
    "form",
    [
        quote(quote(KEY, safe=""), safe="").replace("-", "%252D"),  # URL-escaped twice
        "%5Cu0073" + KEY[1:],  # a JSON escape, URL-escaped
        "\\u002573" + KEY[1:],  # a URL escape, JSON-escaped
    ],
)
def test_nested_escapes_are_found(form: str) -> None:
    assert Redactor([("x-api-key", KEY)], environment=False).text(f"[{form}]") == f"[{REDACTED}]"


def test_the_recorded_sdk_is_cleaned_too() -> None:
    from streamtape.age import Recorded

    item = Interaction(Request("GET", "http://x/"), error=Cut("ReadError", "x"),
                       recorded=Recorded("2026-01-01T00:00:00Z", f"stainless-sdk {KEY}", "httpx2"))  # fmt: skip
    cleaned = Redactor([("x-api-key", KEY)], environment=False).interaction(item)
    assert cleaned.recorded is not None and cleaned.recorded.sdk == f"stainless-sdk {REDACTED}"
    assert scan(item) and not scan(cleaned)


@pytest.mark.parametrize("name", ["x_api_key", "APIKEY", "X-Vault-Token", "x-api-token", "Token"])
def test_credential_header_names_in_either_spelling(name: str) -> None:
    redactor = Redactor([(name, KEY)], environment=False)
    assert redactor.headers([(name, KEY), ("x-note", KEY)]) == (("x-note", REDACTED),)


@pytest.mark.parametrize("param", ["access-token", "Access_Token", "x-goog-api-key", "signature", "%6Bey"])
def test_credential_parameters_in_either_spelling(param: str) -> None:
    redactor = Redactor(url=f"http://x/v1?{param}={KEY}", environment=False)
    assert KEY not in redactor.text(f"http://x/v1?{param}={KEY} {KEY}")


@pytest.mark.parametrize("userinfo", [f"{KEY}:", f"{KEY}:X", f"api:{KEY}"])
def test_either_half_of_basic_credentials(userinfo: str) -> None:
    token = base64.b64encode(userinfo.encode()).decode()
    assert Redactor([("Authorization", f"Basic {token}")], environment=False).text(KEY) == REDACTED


def test_a_digest_username_is_a_value_too() -> None:
    redactor = Redactor([("Authorization", f'Digest username="{KEY}", realm="api", uri="/v1/messages"')],
                        environment=False)  # fmt: skip
    assert redactor.text(f"/v1/messages {KEY} api") == f"/v1/messages {REDACTED} api"


def test_a_secret_one_exchange_taught_is_removed_from_the_others(echo: EchoServer, tmp_path: Path) -> None:
    """A session cookie the first response set, repeated by the app in a later request that never
    carried it as a cookie, and echoed back: the run's redaction knows it in every exchange."""
    session = "sess-" + "q7Wz3kLm9PxR2vTn8YbC4dFh"
    path = tmp_path / "c.yaml"
    with streamtape.use_cassette(path, record_mode="all", match_on=["method", "path", "body"]):
        echo.plan = {"status": 200, "headers": [("set-cookie", f"session={session}; HttpOnly")], "chunks": [b"ok"]}
        httpx2.post(f"{echo.base_url}/login", content=b"{}")
        echo.plan = {"status": 200, "headers": [("content-type", "application/json")],
                     "chunks": [json.dumps({"you_sent": session}).encode()]}  # fmt: skip
        httpx2.post(f"{echo.base_url}/v1/messages", json={"note": f"my session is {session}"})
    text = path.read_text()
    assert session not in text and session not in unquote(text) and text.count(REDACTED) >= 2
    assert [item.response.status for item in Cassette.load(path).interactions if item.response] == [200, 200]


@pytest.mark.parametrize("stack", ["httpx2", "requests", "aiohttp"])
def test_a_proxy_password_set_in_code_is_removed_where_the_body_repeats_it(
    echo: EchoServer, tmp_path: Path, stack: str
) -> None:
    """The proxy's credentials travel below the request streamtape sees (``Proxy-Authorization`` added by
    the pool, or a proxy argument): each stack hands them to the redactor. The echo server is the proxy."""
    password = "pr0xy-" + "Pa55word99zz"
    proxy = f"http://user:{password}@127.0.0.1:{echo.server_address[1]}"
    echo.plan = {"status": 200, "headers": [("content-type", "text/plain")], "chunks": [f"proxy said {password}".encode()]}
    path = tmp_path / "p.yaml"
    url = "http://api.example.test/v1/messages"
    with streamtape.use_cassette(path, record_mode="all"):
        if stack == "httpx2":
            with httpx2.Client(proxy=proxy, trust_env=False) as client:
                said = client.post(url, content=b"{}").text
        elif stack == "requests":
            requests = pytest.importorskip("requests")
            session = requests.Session()
            session.trust_env = False
            said = session.post(url, data=b"{}", proxies={"http": proxy}, timeout=5).text
        else:
            aiohttp = pytest.importorskip("aiohttp")

            async def post() -> str:
                async with aiohttp.ClientSession() as session, session.post(url, data=b"{}", proxy=proxy) as response:
                    return await response.text()

            said = asyncio.run(post())
    assert said == f"proxy said {password}"  # it went through the proxy
    text = path.read_text()
    assert password not in text and password not in unquote(text) and "proxy said REDACTED" in text


def test_the_escaped_forms_regex_is_built_only_where_a_known_value_hides(monkeypatch: pytest.MonkeyPatch) -> None:
    """Building the regex of every known value's escaped forms costs ~200 ms for a SigV4 request's values:
    a request whose escapes (a Bedrock model id's %3A) hide no known value is searched without it."""
    signature = "3f1c" * 16
    headers = [("Authorization", f"AWS4-HMAC-SHA256 Credential=AKIAEXAMPLEKEY12345/20261207/us-east-1/bedrock/"
                                 f"aws4_request, SignedHeaders=host;x-amz-date, Signature={signature}")]  # fmt: skip
    url = "https://bedrock-runtime.us-east-1.amazonaws.com/model/us.amazon.nova-micro-v1%3A0/converse-stream"
    built: list[type] = []
    real = Redactor._pattern
    monkeypatch.setattr(Redactor, "_pattern", lambda self, kind: built.append(kind) or real(self, kind))
    clean = Redactor(headers, url=url).request(Request("POST", url, tuple(headers), b'{"note": "caf\\u00e9"}'))
    assert clean.url == url and built == []
    hidden = url + "?echo=" + quote("".join(f"%{ord(c):02x}" for c in signature))  # URL-escaped twice
    assert signature not in hidden and "%2533" in hidden
    assert Redactor(headers).text(hidden) == url + "?echo=REDACTED" and built == [str]


def test_a_key_with_a_plus_and_a_slash_escaped_apart_is_found() -> None:
    """An AWS secret key holds ``+`` and ``/``: a client that escapes the ``/`` but keeps the ``+`` (or
    writes a space as ``+``) must not slip past the check that decides whether escapes can hide a value."""
    secret = "wJalrXUtnFEMI/K7MDENG+bPxRfiCYzEXAMPLEKEY"
    text = "https://api.test/x?sig=" + secret.replace("/", "%2F")
    assert Redactor(extra_secrets=[secret]).text(text) == "https://api.test/x?sig=REDACTED"
    spaced = "pass phrase+with plus"
    assert Redactor(extra_secrets=[spaced]).text("q=" + spaced.replace(" ", "+").replace("w", "%77")) == "q=REDACTED"
