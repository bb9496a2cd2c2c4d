"""``record``, ``play``, ``synth`` and ``inspect`` for every provider, through the real command line
(click's runner, in process; one run as a subprocess), against local servers on 127.0.0.1 speaking
each provider's real wire format (the recordings in tests/data): recorded through the provider's
official SDK with a key from its usual environment variable, then played with the server gone, with
and without a fault; synthesized streams played through their SDK; each provider's starters inspected.
"""

from __future__ import annotations

import json
import subprocess
import sys
from collections.abc import Callable, Iterator
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import pytest
from click.testing import CliRunner, Result

from streamtape import Cassette
from streamtape.cli import main
from tests.support import gemini as g
from tests.support import openai_sdk as oa
from tests.support.eventstream_server import BedrockServer, converse_stream
from tests.support.wire_server import ReceivedRequest, Reply, WireServer
from tests.support.wire_server import transcript as anthropic_transcript

#: every variable an SDK reads a key, a base URL or an AWS setting from: none of this machine's leaks in
_ISOLATED = ("ANTHROPIC_API_KEY", "ANTHROPIC_BASE_URL", "OPENAI_API_KEY", "OPENAI_BASE_URL", "OPENAI_ORG_ID",
             "OPENAI_PROJECT_ID", "GEMINI_API_KEY", "GOOGLE_API_KEY", "GOOGLE_GEMINI_BASE_URL",
             "GOOGLE_GENAI_USE_VERTEXAI", "GOOGLE_CLOUD_PROJECT", "AWS_ACCESS_KEY_ID", "AWS_SECRET_ACCESS_KEY",
             "AWS_SESSION_TOKEN", "AWS_PROFILE", "AWS_DEFAULT_PROFILE", "AWS_REGION", "AWS_DEFAULT_REGION",
             "AWS_ENDPOINT_URL", "AWS_ENDPOINT_URL_BEDROCK_RUNTIME", "AWS_BEARER_TOKEN_BEDROCK", "AWS_RETRY_MODE",
             "AWS_MAX_ATTEMPTS", "STREAMTAPE_DEBUG")  # fmt: skip


def _isolate(monkeypatch: pytest.MonkeyPatch) -> None:
    for name in _ISOLATED:
        monkeypatch.delenv(name, raising=False)
    monkeypatch.setenv("AWS_CONFIG_FILE", "/dev/null")
    monkeypatch.setenv("AWS_SHARED_CREDENTIALS_FILE", "/dev/null")
    monkeypatch.setenv("AWS_EC2_METADATA_DISABLED", "true")


@pytest.fixture(autouse=True)
def isolated(monkeypatch: pytest.MonkeyPatch) -> None:
    _isolate(monkeypatch)


def cli(*args: str, env: dict[str, str] | None = None) -> Result:
    """``streamtape ARGS`` as a user runs it (exit code, stdout and stderr apart), in this process."""
    return CliRunner().invoke(main, list(args), env=env, catch_exceptions=False)


@dataclass(frozen=True)
class Case:
    """One provider: the server that speaks its wire format, what it streams, the key an SDK reads."""

    provider: str
    server: type[WireServer]
    reply: Callable[..., Reply]
    #: the key variables set while recording, each with a value shaped like a real key
    keys: dict[str, str]
    #: where the request carried the key (so a test that sends none proves nothing)
    sent_key: Callable[[ReceivedRequest], str]
    #: the path the SDK sends to with the provider's default model
    path: str
    text: str
    said: str
    #: what the verdict says of a cut mid-stream (any one of these)
    cut: tuple[str, ...]
    base_suffix: str = ""


SECRET = "streamtapeNotARealKey0123456789abcdef"
CASES = {
    "anthropic": Case(
        "anthropic", WireServer, lambda **o: anthropic_transcript("text_basic", **o),
        {"ANTHROPIC_API_KEY": f"sk-ant-api03-{SECRET}"},
        lambda r: f"{r.header('x-api-key')} {r.header('authorization')}",  # anthropic < 1, >= 2
        "/v1/messages", "Hello", "stop_reason end_turn",
        ("`except anthropic.APIConnectionError` catches it", "NOT caught by the docs' except clauses"),
    ),
    "openai": Case(
        "openai", WireServer, lambda **o: oa.transcript("chat", "text_with_usage", **o),
        {"OPENAI_API_KEY": f"sk-proj-{SECRET}"}, lambda r: r.header("authorization") or "",
        "/v1/chat/completions", "4200 + 42 equals 4242.", "finish_reason stop, 16 tokens in, 10 out",
        ("`except openai.APIConnectionError` catches it",), base_suffix="/v1",
    ),
    "openai-responses": Case(
        "openai-responses", WireServer, lambda **o: oa.transcript("responses", "text", **o),
        {"OPENAI_API_KEY": f"sk-proj-{SECRET}"}, lambda r: r.header("authorization") or "",
        "/v1/responses", "Hello! 🌍 How can I assist you today?", "status completed, 9 tokens in, 12 out",
        ("`except openai.APIConnectionError` catches it",), base_suffix="/v1",
    ),
    "gemini": Case(
        "gemini", WireServer, lambda **o: g.stream_reply("text", **o),
        {"GEMINI_API_KEY": "AIza" + SECRET[:35]}, lambda r: r.header("x-goog-api-key") or "",
        "/v1/models/gemini-2.5-flash:streamGenerateContent?alt=sse", "The capital of France is Paris.",
        "finish_reason STOP, 13 tokens in, 8 out", ("NOT caught by the docs' `except errors.APIError`",),
    ),
    "bedrock": Case(
        "bedrock", BedrockServer, lambda **o: converse_stream("converse_stream_text", **o),
        {"AWS_ACCESS_KEY_ID": "AKIASTREAMTAPETEST01", "AWS_SECRET_ACCESS_KEY": SECRET + "0123"},
        lambda r: r.header("authorization") or "", "/model/us.amazon.nova-micro-v1%3A0/converse-stream",
        "The capital of France is Paris.", "stopReason end_turn, 13 tokens in, 82 out",
        ("NOT caught by the usual `except ClientError` / `except BotoCoreError`",),
    ),
}


def _text(result: Result) -> str:
    """What the command printed before its ``streamtape:`` lines: the rendered answer."""
    return "\n".join(line for line in result.stdout.splitlines() if not line.startswith("streamtape: ")).strip()


def _summary(result: Result) -> str:
    return next(line for line in result.stdout.splitlines() if " events, " in line)


@dataclass
class Recorded:
    case: Case
    path: Path
    result: Result
    request: ReceivedRequest


@pytest.fixture(scope="module")
def recorded(tmp_path_factory: pytest.TempPathFactory) -> Iterator[Callable[[str], Recorded]]:
    """Each provider recorded once through ``streamtape record --provider P`` from its server, which
    is then stopped (so every later play is offline)."""
    directory = tmp_path_factory.mktemp("record")
    done: dict[str, Recorded] = {}

    def get(provider: str) -> Recorded:
        if provider not in done:
            case = CASES[provider]
            out = directory / f"{provider}.yaml"
            with pytest.MonkeyPatch.context() as patch:
                _isolate(patch)
                with case.server() as server:
                    server.queue(case.reply())
                    result = cli("record", str(out), "--provider", provider, "--prompt", "What is the capital?",
                                 "--base-url", server.base_url + case.base_suffix, env=case.keys)  # fmt: skip
                    assert not server.errors, server.errors
                    (request,) = server.requests
            done[provider] = Recorded(case, out, result, request)
        return done[provider]

    yield get


@pytest.mark.parametrize("provider", list(CASES))
def test_record_streams_live_through_the_sdk_and_never_writes_the_key(
    provider: str, recorded: Callable[[str], Recorded]
) -> None:
    run = recorded(provider)
    case, result = run.case, run.result
    assert result.exit_code == 0, (result.stdout, result.stderr)
    assert case.text in _text(result)
    summary = _summary(result)
    assert case.said in summary and f"bytes saved to {run.path}" in summary
    # the call the SDK made: the provider's default model, the prompt, the key from its variable
    target = run.request.path
    assert target == case.path, target
    assert "What is the capital?" in run.request.body.decode()
    assert any(value in case.sent_key(run.request) for value in case.keys.values())
    text = run.path.read_text(encoding="utf-8")
    for value in case.keys.values():
        assert value not in text  # never written
    assert SECRET[:20] not in text
    (item,) = Cassette.load(run.path).interactions
    assert item.request.url.endswith(case.path)
    assert f"streamtape: {len(item.events)} events, " in result.stdout  # events as the recording frames them


@pytest.mark.parametrize("provider", list(CASES))
def test_play_replays_the_recording_offline_through_the_same_sdk(
    provider: str, recorded: Callable[[str], Recorded]
) -> None:
    run = recorded(provider)
    result = cli("play", str(run.path), "--speed", "0")
    assert result.exit_code == 0, (result.stdout, result.stderr)
    assert _text(result) == _text(run.result)
    assert run.case.said in _summary(result)
    assert result.stdout.count("streamtape: ") == 1  # one attempt, no fault: the summary alone


@pytest.mark.parametrize("provider", list(CASES))
def test_play_with_a_cut_says_what_the_sdk_raised_and_whether_its_docs_catch_it(
    provider: str, recorded: Callable[[str], Recorded]
) -> None:
    run = recorded(provider)
    result = cli("play", str(run.path), "--speed", "0", "--fault", "disconnect:after=2")
    assert result.exit_code == 1, (result.stdout, result.stderr)
    lines = result.stdout.splitlines()
    assert "streamtape: attempt 1: 200, then RemoteProtocolError [disconnect:after=2]" in lines
    assert _summary(result).startswith("streamtape: 2 events, then ")
    assert "Traceback" not in result.stdout + result.stderr
    verdict = lines[-1]
    assert any(said in verdict for said in run.case.cut), verdict


def test_play_a_rate_limit_then_success_shows_each_attempt(recorded: Callable[[str], Recorded]) -> None:
    """openai retries a 429 (with its back-off, virtual at speed 0) and streams the answer the third time."""
    run = recorded("openai")
    result = cli("play", str(run.path), "--speed", "0", "--fault", "rate_limit*2 -> ok")
    assert result.exit_code == 0, (result.stdout, result.stderr)
    attempts = [line.split(": ", 2)[2] for line in result.stdout.splitlines() if line.startswith("streamtape: attempt")]
    assert attempts == ["429, complete [rate_limit]", "429, complete [rate_limit]", "200, complete"]
    assert _text(result) == _text(run.result)


@pytest.mark.parametrize(
    ("provider", "spec", "said"),
    [
        ("openai", "truncate:after=3", "no finish_reason: the stream ended without one and the SDK raised nothing"),
        ("openai-responses", "error_event:after=3", "an error event (server_error: "),
        ("gemini", "rate_limit", "then ClientError: 429 RESOURCE_EXHAUSTED"),
        ("bedrock", "exception_frame:after=3", "then EventStreamError: "),
    ],
)  # fmt: skip
def test_play_names_each_provider_s_own_failures(provider: str, spec: str, said: str,
                                                 recorded: Callable[[str], Recorded]) -> None:  # fmt: skip
    result = cli("play", str(recorded(provider).path), "--speed", "0", "--fault", spec)
    assert said in result.stdout, result.stdout
    assert result.exit_code == (1 if "then " in said else 0)


_SYNTH = {
    "anthropic": ("stop_reason tool_use", True),
    "openai": ("finish_reason tool_calls", False),
    "openai-responses": ("status completed", True),
    "gemini": ("finish_reason STOP", True),
    "bedrock": ("stopReason tool_use", True),
}


@pytest.mark.parametrize("provider", list(_SYNTH))
def test_synth_writes_each_provider_s_framing_and_its_sdk_plays_it(provider: str, tmp_path: Path) -> None:
    said, thinks = _SYNTH[provider]
    out = tmp_path / "s.yaml"
    thinking = ("--thinking", "The user wants the weather.") if thinks else ()
    made = cli("synth", str(out), "--provider", provider, *thinking, "--text", "Let me check the weather in Paris.",
               "--tool", "get_weather", "--input", '{"city": "Paris"}', "--seed", "3")  # fmt: skip
    assert made.exit_code == 0 and made.stdout.endswith(f"bytes ({provider})\n"), (made.stdout, made.stderr)
    (item,) = Cassette.load(out).interactions
    assert item.request.method == "POST"
    played = cli("play", str(out), "--speed", "0")
    assert played.exit_code == 0, (played.stdout, played.stderr)
    shown = _text(played)
    assert "Let me check the weather in Paris." in shown
    assert '[tool call: get_weather] {"city": "Paris"}' in shown.replace('{"city":"Paris"}', '{"city": "Paris"}')
    assert ("The user wants the weather." in shown) == thinks
    assert said in _summary(played)


def test_synth_refuses_what_a_provider_cannot_stream_in_one_sentence(tmp_path: Path) -> None:
    result = cli("synth", str(tmp_path / "x.yaml"), "--provider", "openai", "--thinking", "hmm", "--text", "hi")
    assert result.exit_code == 2 and result.stderr.count("\n") == 1
    assert "Chat Completions streams carry no reasoning text" in result.stderr
    assert not (tmp_path / "x.yaml").exists()


@pytest.mark.parametrize(
    ("starter", "model", "calls"),
    [
        ("openai/chat_tool_calls", "model=gpt-4o", 'secret_retrieval_tool({"password": "mellon"})'),
        ("openai/responses_function_call", "model=gpt-4.1", "get_current_weather("),
        ("gemini/parallel_function_calls", "model=gemini-2.5-flash", "secret_retrieval_tool, secret_retrieval_tool"),
        ("bedrock/tool_use", "model=anthropic.claude-3-sonnet-20240229-v1:0", 'fetch_concept({"concept":'),
        ("bedrock/text", "model=us.amazon.nova-micro-v1:0", None),
    ],
)  # fmt: skip
def test_inspect_shows_the_model_wherever_the_api_puts_it_and_the_tool_calls(
    starter: str, model: str, calls: str | None
) -> None:
    result = cli("inspect", f"starter:{starter}")
    assert result.exit_code == 0 and result.stderr == ""
    lines = {line.split(None, 1)[0]: line for line in result.stdout.splitlines() if line.strip()}
    assert model in lines["request"], result.stdout
    if calls is None:
        assert "tool" not in lines
    else:
        assert lines["tool"].startswith("tool calls") and calls in lines["tool"], result.stdout
    described = json.loads(cli("inspect", f"starter:{starter}", "--json").stdout)["interactions"][0]
    assert f"model={described['request']['model']}" == model


# --- --request, keys and errors ---------------------------------------------------------------------------

_BODIES: dict[str, tuple[dict[str, Any], Callable[[dict[str, Any]], Any], Any]] = {
    "openai": ({"model": "gpt-4o", "messages": [{"role": "user", "content": "Hi"}], "temperature": 0.2,
                "stream_options": {"include_usage": True}},
               lambda sent: (sent["model"], sent["temperature"], sent["stream"]), ("gpt-4o", 0.2, True)),
    "openai-responses": ({"input": "Hi", "instructions": "Be brief.", "max_output_tokens": 64},
                         lambda sent: (sent["model"], sent["instructions"], sent["max_output_tokens"], sent["stream"]),
                         ("gpt-5-mini", "Be brief.", 64, True)),
    "gemini": ({"contents": [{"role": "user", "parts": [{"text": "Hi"}]}], "generationConfig": {"temperature": 0.0},
                "systemInstruction": {"parts": [{"text": "Be brief."}]}},
               lambda sent: (sent["generationConfig"], sent["systemInstruction"]["parts"][0]["text"]),
               ({"temperature": 0.0, "maxOutputTokens": 32}, "Be brief.")),
    "bedrock": ({"messages": [{"role": "user", "content": [{"text": "Hi"}]}], "system": [{"text": "Be brief."}],
                 "inferenceConfig": {"temperature": 0.1}},
                lambda sent: (sent["system"], sent["inferenceConfig"]), ([{"text": "Be brief."}],
                                                                         {"temperature": 0.1, "maxTokens": 32})),
}  # fmt: skip


@pytest.mark.parametrize("provider", list(_BODIES))
def test_record_a_request_body_in_the_provider_s_own_shape(provider: str, tmp_path: Path) -> None:
    body, sent, expected = _BODIES[provider]
    case = CASES[provider]
    request = tmp_path / "request.json"
    request.write_text(json.dumps(body), encoding="utf-8")
    out = tmp_path / "out.yaml"
    with case.server() as server:
        server.queue(case.reply())
        result = cli("record", str(out), "--provider", provider, "--request", str(request), "--max-tokens", "32",
                     "--base-url", server.base_url + case.base_suffix, env=case.keys)  # fmt: skip
        (received,) = server.requests
    assert result.exit_code == 0, (result.stdout, result.stderr)
    assert sent(received.json()) == expected
    (item,) = Cassette.load(out).interactions
    assert sent(item.request.json) == expected


@pytest.mark.parametrize(
    ("provider", "said"),
    [
        ("openai", "OPENAI_API_KEY is not set; export your key to record with --provider openai (replay never needs one)"),
        ("openai-responses", "OPENAI_API_KEY is not set; export your key to record with --provider openai-responses"),
        ("gemini", "GEMINI_API_KEY or GOOGLE_API_KEY is not set; export your key to record with --provider gemini"),
        ("bedrock", "no AWS credentials found; export AWS_ACCESS_KEY_ID and AWS_SECRET_ACCESS_KEY (or AWS_PROFILE"),
    ],
)  # fmt: skip
def test_a_missing_key_is_one_sentence(provider: str, said: str, tmp_path: Path) -> None:
    result = cli("record", str(tmp_path / "out.yaml"), "--provider", provider, "--prompt", "hi",
                 "--base-url", "http://127.0.0.1:9")  # fmt: skip
    assert result.exit_code == 2 and result.stdout == ""
    assert result.stderr.startswith(f"streamtape: {said}") and result.stderr.count("\n") == 1, result.stderr
    assert not (tmp_path / "out.yaml").exists()


def test_google_api_key_is_a_gemini_key_too(tmp_path: Path) -> None:
    case = CASES["gemini"]
    with case.server() as server:
        server.queue(case.reply())
        result = cli("record", str(tmp_path / "out.yaml"), "--provider", "gemini", "--prompt", "hi",
                     "--base-url", server.base_url, env={"GOOGLE_API_KEY": "AIza" + SECRET[:35]})  # fmt: skip
        assert server.requests[0].header("x-goog-api-key") == "AIza" + SECRET[:35]
    assert result.exit_code == 0, result.stderr
    assert SECRET[:20] not in (tmp_path / "out.yaml").read_text(encoding="utf-8")


@pytest.mark.parametrize(
    ("provider", "args", "said"),
    [
        ("openai", ("--prompt", "hi", "--thinking"), "--thinking: Chat Completions streams carry no reasoning text"),
        ("bedrock", ("--prompt", "hi", "--thinking"), "--thinking: Bedrock asks for reasoning per model"),
        ("openai-responses", ("--request", "{}"), "expected a JSON object with 'input' (a Responses request body)"),
        ("gemini", ("--request", '{"contents": "hi", "temperature": "hot"}'), "temperature: Input should be a valid number"),
        ("bedrock", ("--request", '{"messages": [], "colour": "red"}'), 'Unknown parameter in input: "colour"'),
    ],
)  # fmt: skip
def test_a_request_the_provider_cannot_take_is_one_sentence(provider: str, args: tuple[str, ...], said: str,
                                                            tmp_path: Path) -> None:  # fmt: skip
    if args[0] == "--request":
        (tmp_path / "r.json").write_text(args[1], encoding="utf-8")
        args = ("--request", str(tmp_path / "r.json"))
    case = CASES[provider]
    with case.server() as server:
        result = cli("record", str(tmp_path / "out.yaml"), "--provider", provider, *args,
                     "--base-url", server.base_url + case.base_suffix, env=case.keys)  # fmt: skip
        assert server.requests == []
    assert result.exit_code == 2 and said in result.stderr, result.stderr
    assert result.stderr.count("\n") == 1 and "Traceback" not in result.stderr
    assert not (tmp_path / "out.yaml").exists()


def test_an_http_error_is_saved_and_replays_as_the_same_sdk_error(tmp_path: Path) -> None:
    out = tmp_path / "out.yaml"
    with WireServer() as server:
        server.queue(g.error_reply("http_429_resource_exhausted"))
        result = cli("record", str(out), "--provider", "gemini", "--prompt", "hi", "--base-url", server.base_url,
                     env=CASES["gemini"].keys)  # fmt: skip
    assert result.exit_code == 1 and "0 events, then ClientError: 429 RESOURCE_EXHAUSTED" in result.stdout
    assert "bytes saved to" in result.stdout
    played = cli("play", str(out), "--speed", "0")
    assert played.exit_code == 1 and "then ClientError: 429 RESOURCE_EXHAUSTED" in played.stdout
    assert played.stdout.splitlines()[-1] == ("streamtape: google.genai.errors.ClientError: the docs' "
                                              "`except errors.APIError` catches it (e.code 429)")  # fmt: skip


def test_play_refuses_a_request_no_sdk_here_makes(tmp_path: Path) -> None:
    from streamtape import Interaction, Request, Response

    body = b'{"done": true}\n'
    ollama = Interaction(Request("POST", "http://127.0.0.1:11434/api/chat", (), b'{"model": "m"}'),
                         Response(200, (("content-type", "application/x-ndjson"),), body, ((0.1, len(body)),)))  # fmt: skip
    path = Cassette([ollama]).save(tmp_path / "o.yaml")
    result = cli("play", str(path))
    assert result.exit_code == 2 and result.stderr.count("\n") == 1
    assert "interaction #0: not a Messages request; play replays the streams of" in result.stderr


def test_the_command_line_as_a_subprocess(tmp_path: Path) -> None:
    """The real entry point: ``python -m streamtape record --provider bedrock`` with credentials from the
    environment, then ``play`` of what it wrote (boto3 over urllib3 both times)."""
    import os

    case = CASES["bedrock"]
    env = {k: v for k, v in os.environ.items() if k not in _ISOLATED}
    env.update(case.keys)
    out = tmp_path / "b.yaml"
    with case.server() as server:
        server.queue(case.reply())
        recorded = subprocess.run([sys.executable, "-m", "streamtape", "record", str(out), "--provider", "bedrock",
                                   "--prompt", "hi", "--base-url", server.base_url], capture_output=True, text=True,
                                  timeout=120, env=env)  # fmt: skip
    assert recorded.returncode == 0, recorded.stderr
    played = subprocess.run([sys.executable, "-m", "streamtape", "play", str(out), "--speed", "0"],
                            capture_output=True, text=True, timeout=120, env=env)  # fmt: skip
    assert played.returncode == 0 and case.said in played.stdout, played.stderr
    assert case.keys["AWS_ACCESS_KEY_ID"] not in out.read_text(encoding="utf-8")


def test_an_anthropic_model_on_bedrock_plays_through_boto3(tmp_path: Path) -> None:
    """What ``anthropic.AnthropicBedrock`` recorded (``invoke-with-response-stream``, the Messages events
    inside AWS event-stream frames) is a Bedrock call: play makes it with boto3 and reads the events."""
    import streamtape
    from tests.support import bedrock

    path = tmp_path / "invoke.yaml"
    with WireServer() as server:
        server.queue(bedrock.invoke_reply("text_basic"))
        with streamtape.use_cassette(path, record_mode="all"):
            live = bedrock.consume(server.base_url)
    assert live.error is None
    result = cli("play", str(path), "--speed", "0")
    assert result.exit_code == 0, (result.stdout, result.stderr)
    assert _text(result) == live.text
    assert "stopReason end_turn" in _summary(result)
    model = cli("inspect", str(path)).stdout
    assert f"model={bedrock.MODEL}" in model


@pytest.mark.parametrize(
    ("provider", "variable"),
    [("anthropic", "ANTHROPIC_BASE_URL"), ("openai", "OPENAI_BASE_URL"), ("gemini", "GOOGLE_GEMINI_BASE_URL"),
     ("bedrock", "AWS_ENDPOINT_URL_BEDROCK_RUNTIME")],
)  # fmt: skip
def test_without_base_url_the_sdk_s_own_variable_says_where(provider: str, variable: str, tmp_path: Path) -> None:
    case = CASES[provider]
    with case.server() as server:
        server.queue(case.reply())
        result = cli("record", str(tmp_path / "out.yaml"), "--provider", provider, "--prompt", "hi",
                     env={**case.keys, variable: server.base_url + case.base_suffix})  # fmt: skip
        assert [request.path for request in server.requests] == [case.path]
    assert result.exit_code == 0, (result.stdout, result.stderr)


def test_play_a_gemini_request_whose_generation_config_is_not_a_mapping(tmp_path: Path) -> None:
    """A hand edit the SDK could never have sent: the answer does not depend on it, so play goes on."""
    import dataclasses
    import json

    out = tmp_path / "g.yaml"
    assert cli("synth", str(out), "--provider", "gemini", "--text", "Hello there.").exit_code == 0
    (item,) = Cassette.load(out).interactions
    body = {**json.loads(item.request.body), "generationConfig": 5}
    request = dataclasses.replace(item.request, body=json.dumps(body).encode())
    Cassette([dataclasses.replace(item, request=request)]).save(out)
    played = cli("play", str(out), "--speed", "0")
    assert played.exit_code == 0 and "Hello there." in _text(played), (played.stdout, played.stderr)
