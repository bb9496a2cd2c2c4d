"""Providers: the Anthropic provider gives the bytes faults and ``serve`` gave before the seam
existed, and a provider registered for a request is the one faults, lint and inspect use."""

from __future__ import annotations

import re
import subprocess
import sys
from collections.abc import Iterator, Sequence
from pathlib import Path
from typing import Any, ClassVar

import pytest
from hypothesis import given, settings
from hypothesis import strategies as st

from streamtape import Cassette, ConfigError, Interaction, Request, Response, faults, providers
from streamtape.faults import Context, apply
from streamtape.lint import lint_file
from streamtape.providers import PLACEHOLDER_KEY, Provider
from streamtape.providers.anthropic import ANTHROPIC
from streamtape.report import describe_interaction
from streamtape.sse import Event, parse_events
from streamtape.wire import End, Respond, Send
from tests.support.wire_server import DATA_DIR

BODY = (DATA_DIR / "text_basic.sse").read_bytes()  # 7 events

#: The default ``when=`` before providers owned it (streamtape.faults.schedule.API_REQUESTS at 54896a5).
OLD_API_REQUESTS = (
    r"^POST \S*?(?:/messages|/chat/completions|/responses|/completions|:(?:stream)?[gG]enerateContent"
    r"|/converse(?:-stream)?|/invoke(?:-with-response-stream)?|/api/(?:chat|generate))(?:[?#]|$)"
)


def recorded(body: bytes = BODY) -> list:
    events = parse_events(body)
    timing = tuple((round(0.2 + 0.01 * i, 4), e.end - e.start) for i, e in enumerate(events))
    response = Response(200, (("content-type", "text/event-stream"),), body, timing, "OK", 0.1, End(0.3))
    return Interaction(Request("POST", "https://api.anthropic.com/v1/messages"), response).actions()


def body_of(actions: list) -> bytes:
    return b"".join(a.data for a in actions if isinstance(a, Send))


class TestAnthropicBytesAreUnchanged:
    """Captured from ``streamtape/faults/_templates.py`` and ``server._error_events`` before the move."""

    def test_rate_limit_with_its_headers(self) -> None:
        headers, body = ANTHROPIC.http_error(429, number=7, retry_after=1)
        assert body == (
            b'{"type":"error","error":{"type":"rate_limit_error","message":"This request would exceed your '
            b'account\'s rate limit. Please try again later."},"request_id":"req_011CStreamtape0000000007"}'
        )
        assert headers == (
            ("content-type", "application/json"), ("content-length", "185"),
            ("request-id", "req_011CStreamtape0000000007"),
            ("anthropic-ratelimit-requests-limit", "5"), ("anthropic-ratelimit-requests-remaining", "0"),
            ("anthropic-ratelimit-requests-reset", "2024-03-26T20:00:00Z"),
            ("anthropic-ratelimit-tokens-limit", "25000"), ("anthropic-ratelimit-tokens-remaining", "16000"),
            ("anthropic-ratelimit-tokens-reset", "2024-03-26T20:00:00Z"), ("retry-after", "1"),
        )  # fmt: skip

    @pytest.mark.parametrize(
        ("status", "body"),
        [
            (529, b'{"type":"error","error":{"type":"overloaded_error","message":"Overloaded"},'
                  b'"request_id":"req_011CStreamtape0000000007"}'),
            (418, b'{"type":"error","error":{"type":"api_error","message":"Internal server error"},'
                  b'"request_id":"req_011CStreamtape0000000007"}'),
        ],
    )  # fmt: skip
    def test_other_statuses(self, status: int, body: bytes) -> None:
        headers, got = ANTHROPIC.http_error(status, number=7, retry_after=1)
        assert got == body
        assert headers == (("content-type", "application/json"), ("content-length", str(len(body))),
                           ("request-id", "req_011CStreamtape0000000007"), ("retry-after", "1"))  # fmt: skip

    def test_retry_headers_only_when_asked(self) -> None:
        headers, _ = ANTHROPIC.http_error(503, number=2, retry_after_ms=1.5, should_retry=False)
        assert dict(headers)["retry-after-ms"] == "1.5" and dict(headers)["x-should-retry"] == "false"
        assert "retry-after" not in dict(headers)

    def test_in_stream_errors(self) -> None:
        real = (DATA_DIR / "error_overloaded_in_stream.sse").read_bytes()
        assert ANTHROPIC.error_event() == real == ANTHROPIC.error_event("overloaded_error", None)
        assert ANTHROPIC.error_event("api_error", "boom") == (
            b'event: error\ndata: {"type":"error","error":{"details":null,"type":"api_error","message":"boom"}'
            b"              }\n\n"
        )
        assert ANTHROPIC.keep_alive() == b'event: ping\ndata: {"type": "ping"}\n\n'

    @pytest.mark.parametrize(
        ("args", "options", "headers", "body"),
        [
            ((404, "not_found_error", "no match"), {},
             (("content-type", "application/json"), ("content-length", "78"), ("x-should-retry", "false")),
             b'{"type": "error", "error": {"type": "not_found_error", "message": "no match"}}'),
            ((503, "overloaded_error", "busy"), {"retry": True, "close": True},
             (("content-type", "application/json"), ("content-length", "75"), ("x-should-retry", "true"),
              ("retry-after", "1"), ("connection", "close")),
             b'{"type": "error", "error": {"type": "overloaded_error", "message": "busy"}}'),
        ],
    )  # fmt: skip
    def test_the_harness_error_serve_answers(self, args: tuple, options: dict, headers: tuple, body: bytes) -> None:
        assert providers.error_response(*args, **options) == (headers, body)

    def test_the_harness_error_names_the_type_for_the_status_when_not_given(self) -> None:
        _, body = providers.error_response(404, None, "nothing recorded")
        assert body == b'{"type": "error", "error": {"type": "not_found_error", "message": "nothing recorded"}}'

    def test_faults_use_the_default_provider(self) -> None:
        out = apply([faults.rate_limit()], recorded(), Context(number=3))
        assert (out[0].headers, body_of(out)) == ANTHROPIC.http_error(429, number=3)
        assert Context().provider is providers.fallback() is ANTHROPIC


class TestAnthropicTemplatesSayWhatTheRealWorldSends:
    """The options beyond the API's usual; without them, the bytes above."""

    def test_request_id(self) -> None:
        real = (DATA_DIR / "http_400_invalid_request.body.json").read_bytes()  # 2024: no request id anywhere
        headers, body = ANTHROPIC.http_error(400, error_type="invalid_request_error", request_id=False,
                                             message="messages.0: Input does not match the expected shape.")  # fmt: skip
        assert body == real and headers == (("content-type", "application/json"), ("content-length", "122"))
        headers, body = ANTHROPIC.http_error(500, request_id="req_011CXmPYtyatkKmZfJxWDowU")
        assert body == (DATA_DIR / "http_500_api_error.body.json").read_bytes()
        assert dict(headers)["request-id"] == "req_011CXmPYtyatkKmZfJxWDowU"
        assert ANTHROPIC.http_error(500, number=4, request_id=True) == ANTHROPIC.http_error(500, number=4)

    def test_a_raw_body_its_type_and_length(self) -> None:
        headers, body = ANTHROPIC.http_error(503, body="no healthy upstream", content_type="text/plain")
        assert body == b"no healthy upstream"
        assert headers == (("content-type", "text/plain"), ("content-length", "19"))  # a proxy's: no request id
        headers, body = ANTHROPIC.http_error(502, number=2, body=b"\xff", request_id=True)
        assert body == b"\xff" and dict(headers) == {"content-type": "application/json", "content-length": "1",
                                                      "request-id": "req_011CStreamtape0000000002"}  # fmt: skip

    def test_headers_replace_defaults_in_place_and_add_the_rest(self) -> None:
        headers, _ = ANTHROPIC.http_error(529, number=1, should_retry=True,
                                          headers=[("X-Should-Retry", "false"), ("Content-Type", "application/json"),
                                                   ("via", "1.1 google")])  # fmt: skip
        assert headers == (("Content-Type", "application/json"), ("content-length", "119"),
                           ("request-id", "req_011CStreamtape0000000001"), ("X-Should-Retry", "false"),
                           ("via", "1.1 google"))  # fmt: skip

    def test_retry_after_as_a_date(self) -> None:
        headers, _ = ANTHROPIC.http_error(429, retry_after_date=20)
        assert dict(headers)["retry-after"].endswith(" GMT")

    def test_in_stream_error_data_and_name(self) -> None:
        real_2024 = (DATA_DIR / "error_overloaded_in_stream_2024.sse").read_bytes()
        data = real_2024.decode().removeprefix("event: error\ndata: ").removesuffix("\n\n")
        assert ANTHROPIC.error_event(data=data) == real_2024
        assert ANTHROPIC.error_event(data="a\r\nb", event="oops") == b"event: oops\ndata: a\ndata: b\n\n"
        assert ANTHROPIC.error_event(event="error") == ANTHROPIC.error_event()
        assert ANTHROPIC.error_event(event="overloaded") == b"event: overloaded" + ANTHROPIC.error_event()[12:]


class TestRegistry:
    def test_api_requests_match_what_they_matched_before(self) -> None:
        union = providers.api_requests()
        for method, url in [
            ("POST", "https://api.anthropic.com/v1/messages"), ("POST", "https://gw.example/anthropic/v1/messages?beta=1"),
            ("POST", "https://api.anthropic.com/v1/messages/count_tokens"), ("GET", "https://api.anthropic.com/v1/messages"),
            ("POST", "https://api.openai.com/v1/chat/completions"), ("POST", "https://x.openai.azure.com/openai/"
             "deployments/d/chat/completions?api-version=1"), ("POST", "https://api.openai.com/v1/responses"),
            ("POST", "https://generativelanguage.googleapis.com/v1beta/models/g:streamGenerateContent?alt=sse"),
            ("POST", "https://bedrock-runtime.us-east-1.amazonaws.com/model/m/converse-stream"),
            ("POST", "https://bedrock-runtime.us-east-1.amazonaws.com/model/m/invoke-with-response-stream"),
            ("POST", "http://localhost:11434/api/chat"), ("POST", "http://localhost:11434/api/generate#x"),
            ("POST", "http://localhost:11434/api/tags"), ("GET", "https://prices.example/v1/models.json"),
        ]:  # fmt: skip
            old = re.search(OLD_API_REQUESTS, f"{method} {url}") is not None
            assert (re.search(union, f"{method} {url}") is not None) == old, (method, url)

    @settings(max_examples=300, deadline=None)
    @given(
        method=st.sampled_from(["POST", "GET", "PUT"]),
        parts=st.lists(
            st.sampled_from(
                [
                    "v1",
                    "messages",
                    "chat",
                    "completions",
                    "responses",
                    "api",
                    "generate",
                    "converse",
                    "converse-stream",
                    "invoke",
                    "x:generateContent",
                    "m:streamGenerateContent",
                    "count_tokens",
                    "models",
                    "",
                ]
            ),
            min_size=1,
            max_size=5,
        ),  # fmt: skip
        tail=st.sampled_from(["", "?a=1", "#f", "/", "-x"]),
    )
    def test_the_union_is_the_old_pattern(self, method: str, parts: list[str], tail: str) -> None:
        text = f"{method} https://h.example/{'/'.join(parts)}{tail}"
        assert (re.search(providers.api_requests(), text) is None) == (re.search(OLD_API_REQUESTS, text) is None)

    def test_placeholder_keys(self) -> None:
        keys = providers.placeholder_keys()
        assert {"ANTHROPIC_API_KEY": PLACEHOLDER_KEY, "OPENAI_API_KEY": PLACEHOLDER_KEY}.items() <= keys.items()
        assert PLACEHOLDER_KEY == "streamtape-replay-placeholder-key"

    def test_every_request_no_provider_claims_falls_back_to_anthropic(self) -> None:
        assert providers.provider_for("POST", "https://api.openai.com/v1/completions") is ANTHROPIC  # legacy
        assert providers.provider_for("GET", "https://example.com/") is ANTHROPIC
        assert [p.name for p in providers.registered()][:2] == ["anthropic", "generic"]
        assert providers.provider_for("POST", "https://api.openai.com/v1/chat/completions").name == "openai"
        assert providers.provider_for("POST", "https://api.openai.com/v1/responses").name == "openai-responses"

    def test_names_are_unique_and_the_fallback_stays(self) -> None:
        with pytest.raises(ConfigError, match="a provider named 'anthropic' is already registered"):
            providers.register(type(ANTHROPIC)())
        with pytest.raises(ConfigError, match="anthropic is the fallback"):
            providers.unregister("anthropic")
        with pytest.raises(ConfigError, match="no provider named 'nope'"):
            providers.get("nope")
        with pytest.raises(ConfigError, match="is not a Provider"):
            providers.register(object())  # type: ignore[arg-type]


class Echo(Provider):
    """A made-up API at ``/v9/talk`` with its own formats, to show the choice is per request."""

    name: ClassVar[str] = "echo"
    requests: ClassVar[str] = r"^POST \S*/v9/talk$"
    key_variables: ClassVar[tuple[str, ...]] = ("ECHO_KEY",)

    def http_error(self, status: int, *, number: int = 1, **options: Any) -> tuple[tuple[tuple[str, str], ...], bytes]:
        body = f"echo error {status} #{number}".encode()
        return (("content-type", "text/plain"), ("content-length", str(len(body)))), body

    def error_event(self, error_type: str | None = None, message: str | None = None) -> bytes:
        return f"event: oops\ndata: {error_type or 'busy'}\n\n".encode()

    def keep_alive(self) -> bytes:
        return b": still here\n\n"

    def lint(self, events: Sequence[Event], *, broke: bool) -> list[str]:
        return [f"echo saw {len(events)} events"]

    def tokens(self, events: Sequence[Event]) -> dict[str, int]:
        return {"echoed": len(events)}


@pytest.fixture
def echo() -> Iterator[Echo]:
    provider = providers.register(Echo())
    yield provider  # type: ignore[misc]
    providers.unregister("echo")


class TestAProviderOfYourOwn:
    def test_chosen_for_its_requests_only(self, echo: Echo) -> None:
        assert providers.provider_for("POST", "https://echo.example/v9/talk") is echo
        assert providers.provider_for("POST", "https://api.anthropic.com/v1/messages") is ANTHROPIC
        assert providers.placeholder_keys()["ECHO_KEY"] == PLACEHOLDER_KEY
        schedule = faults.parse("rate_limit")
        assert schedule.applies_to("POST", "https://echo.example/v9/talk")  # its calls are API calls now

    def test_gone_when_unregistered(self) -> None:
        providers.register(Echo())
        providers.unregister("echo")
        assert providers.provider_for("POST", "https://echo.example/v9/talk") is ANTHROPIC
        assert not faults.parse("rate_limit").applies_to("POST", "https://echo.example/v9/talk")
        assert "ECHO_KEY" not in providers.placeholder_keys()

    def test_faults_speak_through_the_context(self, echo: Echo) -> None:
        context = Context(number=4, provider=echo)
        out = apply([faults.overloaded()], recorded(), context)
        assert isinstance(out[0], Respond) and out[0].status == 529 and body_of(out) == b"echo error 529 #4"
        assert body_of(apply([faults.error_event(after=1)], recorded(), context)).endswith(
            b"event: oops\ndata: busy\n\n"
        )
        assert body_of(apply([faults.ping(every=7)], recorded(), context)) == BODY + b": still here\n\n"

    def test_lint_and_inspect_ask_the_request_s_provider(self, echo: Echo, tmp_path: Path) -> None:
        bad = b'event: hello\ndata: {"type":"hello"}\n\n'  # not an Anthropic stream: Anthropic's rules would object
        response = Response(200, (("content-type", "text/event-stream"),), bad, ((0.1, len(bad)),))
        mine = Interaction(Request("POST", "https://echo.example/v9/talk"), response)
        theirs = Interaction(Request("POST", "https://api.anthropic.com/v1/messages"), response)
        path = Cassette([mine, theirs]).save(tmp_path / "c.yaml")
        problems = [(p.where, p.message) for p in lint_file(path) if p.kind == "sse"]
        assert ("interactions[0]", "echo saw 1 events") in problems
        assert (
            "interactions[1]",
            "the first event is 'hello'; an Anthropic stream starts with message_start",
        ) in problems
        assert describe_interaction(0, mine)["tokens"] == {"echoed": 1}
        assert describe_interaction(1, theirs)["tokens"] == {}


def test_a_provider_that_does_not_know_a_format_says_so() -> None:
    class Bare(Provider):
        name: ClassVar[str] = "bare"

    with pytest.raises(ConfigError, match="provider 'bare' does not know its API's in-stream errors"):
        apply([faults.error_event()], recorded(), Context(provider=Bare()))


def test_importing_the_seams_imports_no_sdk_or_http_library() -> None:
    code = (
        "import sys, streamtape, streamtape.providers as p, streamtape.framing as f, streamtape.faults, "
        "streamtape.lint, streamtape.report, streamtape.synth, streamtape.scenarios\n"
        "p.registered(); f.registered(); p.provider_for('POST', 'https://api.anthropic.com/v1/messages')\n"
        "print(sorted(m for m in sys.modules if m.split('.')[0] in "
        "('anthropic', 'openai', 'httpx', 'httpx2', 'httpcore', 'httpcore2', 'aiohttp')))"
    )
    out = subprocess.run([sys.executable, "-c", code], capture_output=True, text=True, timeout=60, check=True)
    assert out.stdout.strip() == "[]"
