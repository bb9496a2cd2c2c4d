"""Escape hatches with vcrpy's names: filters, before_record hooks, ignore_hosts, and tape_config.

Recorded over a real socket on 127.0.0.1, replayed through the real clients, and run as a user's
pytest suite (pytester) for the fixture.
"""

from __future__ import annotations

import dataclasses
from collections.abc import Iterator
from pathlib import Path

import anthropic
import httpx2
import pytest

import streamtape
from streamtape import ConfigError
from streamtape.cassette import Cassette, Request, Response
from tests.support.echo_server import EchoServer, echo_server

pytest_plugins = ["pytester"]


@pytest.fixture(scope="module")
def echo() -> Iterator[EchoServer]:
    with echo_server() as server:
        yield server


def _post(server: EchoServer, *, url: str = "/v1/items?page=2&session=abc123&lang=en", **kwargs: object) -> str:
    with httpx2.Client(base_url=server.base_url) as client:
        return client.post(url, **kwargs).text  # type: ignore[arg-type]


def test_filters_remove_and_replace_and_the_live_request_matches_after(echo: EchoServer, tmp_path: Path) -> None:
    path = tmp_path / "filtered.yaml"
    options = {
        "filter_headers": ["x-request-id", ("x-user", "someone")],
        "filter_query_parameters": ["session", ("lang", lambda name, value, request: value.upper())],
        "filter_post_data_parameters": ["metadata.user_id", ("customer", "C-0")],
    }
    body = {"customer": "C-4821", "metadata": {"user_id": "u-99", "plan": "pro"}, "prompt": "hi"}
    headers = {"x-request-id": "r-1", "x-user": "alice@example.com"}
    with streamtape.use_cassette(path, record_mode="all", **options):  # type: ignore[arg-type]
        assert _post(echo, json=body, headers=headers) == "ok"  # the app still sends and reads the real thing
    sent = echo.seen[-1]
    assert "session=abc123" in sent[0] and b"C-4821" in sent[1]
    item = Cassette.load(path).interactions[0]
    assert item.request.url.endswith("/v1/items?page=2&lang=EN")
    assert item.request.json == {"customer": "C-0", "metadata": {"plan": "pro"}, "prompt": "hi"}
    assert item.request.header("x-request-id") is None and item.request.header("x-user") == "someone"
    # replay: another session, user and request id match, because the live request is filtered too
    other = {**body, "customer": "C-7", "metadata": {"user_id": "u-1", "plan": "pro"}}
    with streamtape.use_cassette(path, **options) as tape:  # type: ignore[arg-type]
        text = _post(echo, url="/v1/items?page=2&session=zzz&lang=en", json=other,
                     headers={"x-request-id": "r-2", "x-user": "bob"})  # fmt: skip
    assert text == "ok" and tape.calls[0].source == "replayed"


def test_form_bodies_are_filtered_by_name(echo: EchoServer, tmp_path: Path) -> None:
    path = tmp_path / "form.yaml"
    with streamtape.use_cassette(path, record_mode="all", filter_post_data_parameters=["password"]):
        _post(echo, url="/login", data={"user": "al", "password": "hunter2hunter2"})
    assert Cassette.load(path).interactions[0].request.body == b"user=al"


def test_before_record_request_rewrites_or_leaves_a_request_out(echo: EchoServer, tmp_path: Path) -> None:
    path = tmp_path / "hooked.yaml"

    def hook(request: Request) -> Request | None:
        if request.url.endswith("/health"):
            return None  # the app's health check: not part of the test's recording
        return dataclasses.replace(request, url=request.url.replace("/v1/", "/v9/"))

    with streamtape.use_cassette(path, record_mode="all", before_record_request=hook):
        _post(echo, url="/health")
        _post(echo, url="/v1/x")
    assert [item.request.url.rsplit("/", 2)[-2:] for item in Cassette.load(path)] == [["v9", "x"]]
    # in replay the health check goes to the network, unrecorded, as allow_hosts would let it
    seen = len(echo.seen)
    with streamtape.use_cassette(path, before_record_request=hook) as tape:
        _post(echo, url="/health")
        _post(echo, url="/v1/x")
    assert len(echo.seen) == seen + 1 and [call.source for call in tape.calls] == ["replayed"]


def test_before_record_response_rewrites_or_drops(echo: EchoServer, tmp_path: Path) -> None:
    path = tmp_path / "responses.yaml"
    echo.plan = {"status": 200, "headers": [("content-type", "text/plain")], "chunks": [b"Dear Ms Smith"]}

    def hook(response: Response) -> Response | None:
        if response.body.startswith(b"drop"):
            return None
        body = response.body.replace(b"Smith", b"Doe")  # shorter: the chunks follow
        return dataclasses.replace(response, body=body)

    with streamtape.use_cassette(path, record_mode="all", before_record_response=hook):
        assert _post(echo, url="/a") == "Dear Ms Smith"  # the app reads the real response
        echo.plan = {**echo.plan, "chunks": [b"drop me"]}
        _post(echo, url="/b")
    items = Cassette.load(path).interactions
    assert [item.body for item in items] == [b"Dear Ms Doe"]
    assert sum(size for _, size in items[0].response.timing) == len(b"Dear Ms Doe")
    echo.plan = {"status": 200, "headers": [("content-type", "text/plain")], "chunks": [b"ok"]}


@pytest.mark.parametrize(
    ("hook", "message"),
    [
        (lambda request: 1 / 0, "before_record_request raised ZeroDivisionError"),
        (lambda request: "nope", "before_record_request returned str"),
    ],
)
def test_a_broken_hook_reaches_the_test_as_itself_not_as_a_connection_error(
    echo: EchoServer, tmp_path: Path, hook: object, message: str
) -> None:
    with pytest.raises(ConfigError, match=message):
        with streamtape.use_cassette(tmp_path / "x.yaml", record_mode="all", before_record_request=hook):  # type: ignore[arg-type]
            with anthropic.Anthropic(api_key="k", base_url=echo.base_url, max_retries=2) as client:
                client.messages.create(model="m", max_tokens=1, messages=[{"role": "user", "content": "hi"}])


@pytest.mark.parametrize(
    ("options", "message"),
    [
        ({"filter_headers": [("x", 3)]}, "filter_headers: .* is not a filter"),
        ({"before_record_response": "yes"}, "before_record_response: 'yes' is not callable"),
    ],
)
def test_bad_options_are_one_sentence(tmp_path: Path, options: dict[str, object], message: str) -> None:
    with pytest.raises(ConfigError, match=message):
        streamtape.use_cassette(tmp_path / "x.yaml", **options)  # type: ignore[arg-type]


def test_ignore_localhost_lets_the_tests_own_services_through(echo: EchoServer, tmp_path: Path) -> None:
    path = tmp_path / "empty.yaml"
    Cassette([]).save(path)
    with streamtape.use_cassette(path, ignore_localhost=True) as tape:
        assert _post(echo, url="/local") == "ok"
    assert tape.calls == [] and tape.allow_hosts.allows("127.0.0.1")
    with streamtape.use_cassette(path, ignore_hosts=["127.0.0.1"]):
        assert _post(echo, url="/local") == "ok"


def test_tape_config_fixture_is_the_projects_default(pytester: pytest.Pytester, echo: EchoServer) -> None:
    pytester.makeconftest(
        """
        import pytest

        @pytest.fixture
        def tape_config():
            return {"filter_headers": ["x-request-id"], "match_on": ["method", "path"], "record_mode": "once"}
        """
    )
    pytester.makepyfile(
        f"""
        import httpx2, pytest

        def call(rid):
            with httpx2.Client() as client:
                return client.post("{echo.base_url}/v1/items?x=1", headers={{"x-request-id": rid}}).text

        @pytest.mark.tape("shared.yaml")
        def test_records():
            assert call("first") == "ok"

        @pytest.mark.tape("shared.yaml", record_mode="none")
        def test_replays_with_another_query_and_id(tape):
            assert call("second") == "ok" and tape.calls[0].source == "replayed"
            assert tape.calls[0].request.header("x-request-id") is None

        @pytest.mark.tape("shared.yaml", match_on=["method", "path", "query", "body"])
        def test_the_marker_wins(tape):
            assert [m.__name__ for m in tape.matchers] == ["method", "path", "query", "body"]
        """
    )
    result = pytester.runpytest("-p", "no:randomly", "-p", "no:cacheprovider")
    result.assert_outcomes(passed=3)
    assert "x-request-id" not in (pytester.path / "shared.yaml").read_text()


def test_a_bad_tape_config_is_a_usage_error(pytester: pytest.Pytester) -> None:
    pytester.makeconftest(
        """
        import pytest

        @pytest.fixture
        def tape_config():
            return {"cassette_library_dir": "x"}
        """
    )
    pytester.makepyfile("def test_x(tape):\n    pass\n")
    result = pytester.runpytest("-p", "no:randomly")
    result.stdout.fnmatch_lines(["*tape_config fixture must return a dict of the keywords*cassette_library_dir*"])
    assert result.ret != 0


def test_filters_and_hooks_on_the_aiohttp_and_urllib3_stacks_and_other_providers(
    echo: EchoServer, tmp_path: Path
) -> None:
    """The same escape hatches through requests (urllib3), aiohttp and the openai SDK (httpx2), for
    Gemini- and OpenAI-shaped requests: the hook sees each request, ``key`` leaves Gemini's query
    (no bare ``?`` left behind), a JSON field leaves the body, a health check is left out."""
    import asyncio

    aiohttp = pytest.importorskip("aiohttp")
    requests = pytest.importorskip("requests")
    openai = pytest.importorskip("openai")
    chat = (b'data: {"id":"c1","object":"chat.completion.chunk","created":1,"model":"m","choices":[{"index":0,'
            b'"delta":{"content":"Hello"},"finish_reason":null}]}\n\ndata: [DONE]\n\n')  # fmt: skip
    echo.plan = {"status": 200, "headers": [("content-type", "text/event-stream")], "chunks": [chat]}
    seen: list[str] = []

    def before(request: Request) -> Request | None:
        seen.append(request.url.replace(echo.base_url, ""))
        return None if request.url.endswith("/health") else request

    def louder(response: Response) -> Response:
        return dataclasses.replace(response, body=response.body.replace(b"Hello", b"HELLO!"))

    gemini = f"{echo.base_url}/v1beta/models/gemini-2.0-flash:streamGenerateContent"
    key = "AIza" + "SyFilterTestFilterTest0123456789abcd"
    options = {"filter_query_parameters": ["key"], "filter_post_data_parameters": ["metadata.user_id"],
               "before_record_request": before, "before_record_response": louder}  # fmt: skip

    async def with_aiohttp(user: str) -> bytes:
        async with aiohttp.ClientSession() as session:
            body = {"model": "m", "stream": True, "metadata": {"user_id": user}}
            async with session.post(f"{echo.base_url}/v1/chat/completions", json=body) as response:
                return await response.read()

    def app(user: str) -> tuple[bytes, bytes, bytes, str, str]:
        with openai.OpenAI(base_url=f"{echo.base_url}/v1", api_key="sk-proj-" + "x" * 24, max_retries=0) as client:
            stream = client.chat.completions.create(model="m", stream=True, messages=[], metadata={"user_id": user})
            text = "".join(chunk.choices[0].delta.content or "" for chunk in stream)
        return (requests.post(f"{gemini}?alt=sse&key={key}", json={"contents": []}, timeout=5).content,
                requests.post(f"{gemini}?key={key}", json={"contents": []}, timeout=5).content,
                asyncio.run(with_aiohttp(user)), text, requests.get(f"{echo.base_url}/health", timeout=5).text)  # fmt: skip

    path = tmp_path / "stacks.yaml"
    with streamtape.use_cassette(path, record_mode="all", **options):  # type: ignore[arg-type]
        live = app("u-1234")
    assert live[3] == "Hello" and b"Hello" in live[0]  # the app reads the real response
    saved = path.read_text()
    assert key not in saved and "u-1234" not in saved and "/health" not in saved and "Hello" not in saved
    urls = [item.request.url.replace(echo.base_url, "") for item in Cassette.load(path).interactions]
    assert urls == ["/v1/chat/completions", "/v1beta/models/gemini-2.0-flash:streamGenerateContent?alt=sse",
                    "/v1beta/models/gemini-2.0-flash:streamGenerateContent", "/v1/chat/completions"]  # fmt: skip
    assert seen[-1] == "/health" and len(seen) == 5
    # replayed: another user and key match, because the live requests are filtered the same way
    with streamtape.use_cassette(path, **options) as tape:  # type: ignore[arg-type]
        replayed = app("u-9999")
    assert replayed[3] == "HELLO!" and b"HELLO!" in replayed[0] and b"HELLO!" in replayed[2]
    assert [call.stack for call in tape.calls] == ["httpx2", "urllib3", "urllib3", "aiohttp"] and tape.all_played
