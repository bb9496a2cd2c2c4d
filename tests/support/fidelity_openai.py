"""The fidelity tables for OpenAI: what an app on the openai SDK sees under each fault, per API.

``TABLES`` holds one table each for Chat Completions (``openai-chat``) and Responses
(``openai-responses``). Each records a real stream once from a local server speaking OpenAI's wire
format (tests/data/openai: ``chat/text_with_usage``, "4200 + 42 equals 4242.", 14 events, the first
text delta is event 2 and the fourth event 5; ``responses/text``, "Hello! 🌍 How can I assist you
today?", 18 events, the first text delta is event 5), stops the server, and replays a representative
spec of every fault that applies to the API through streamtape, sync (``OpenAI``) and async
(``AsyncOpenAI``), with ``create(stream=True)``, ``max_retries=2`` and a 0.3 s read timeout. Every
cell is computed from those runs. (That the replay matches a real misbehaving server is what
tests/test_provider_openai.py proves.)

``rows()`` gives, per spec: ``spec``, ``sync`` and ``async`` (what the app saw: success and its text,
or the exception, its message, its cause and status; ``async`` is ``"same"`` when it matches),
``retries`` (whether the SDK retried, and the requests it made) and ``ended`` (what arrived: all of
the text and the stream's end, or part of it).
"""

from __future__ import annotations

import dataclasses
import importlib.util
import tempfile
from collections.abc import Callable
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

from tests.support.fidelity_cells import Seen, row, sees

__all__ = ["TABLES", "Table"]

OPTIONS = {"max_retries": 2, "timeout": 0.3}
STYLE = "create"

#: Representative specs by fault; positions land after the text has begun (chat event 5: "420", "0",
#: " +" arrived; responses event 5 is its first delta).
COMMON: dict[str, list[str]] = {
    "refuse": ["refuse"],
    "reset": ["reset", "reset:after=5"],
    "disconnect": ["disconnect", "disconnect:after=5"],
    "timeout": ["timeout"],
    "http_error": ["http_error:status=400", "http_error:status=401", "http_error:status=409",
                   "http_error:status=503,body='upstream connect error or disconnect/reset before headers',"
                   "content_type=text/plain"],
    "rate_limit": ["rate_limit", "rate_limit:should_retry=false", "rate_limit:retry_after_ms=1 -> ok",
                   "rate_limit:retry_after=200"],
    "overloaded": ["overloaded"],
    "server_error": ["server_error", "server_error -> ok"],
    "stall": ["stall:after=5", "stall:after=5,seconds=0.05"],
    "error_event": ["error_event:after=5", "error_event:after=0", "error_event:after=5,then=cut"],
    "truncate": ["truncate", "truncate:after=5"],
    "delay": ["delay:per_event=0.02", "delay:per_event=0.5"],
    "rechunk": ["rechunk:size=7"],
    "corrupt": ["corrupt:event=5", "corrupt:event=5,how=utf8"],
    "duplicate": ["duplicate:event=5"],
    "drop": ["drop:event=5", "drop:event=1"],
    "ping": ["ping:every=2"],
    "connect_timeout": ["connect_timeout"],
    "write_timeout": ["write_timeout"],
    "pool_timeout": ["pool_timeout"],
    "bad_status": ["bad_status"],
    "bad_chunk": ["bad_chunk:after=3"],
    "corrupt_gzip": ["corrupt_gzip"],
    "bom": ["bom"],
    "json_body": ["json_body"],
    "linger": ["linger"],
}  # fmt: skip


@dataclass(frozen=True)
class Table:
    name: str
    title: str
    api: str
    recording: str
    #: this API's own faults, with their specs
    own: dict[str, list[str]] = field(default_factory=dict)
    #: how the stream the SDK yielded ended, as the API says it (its chunks or events, dumped)
    end: Callable[[list[Any]], str] = lambda events: ""

    def available(self) -> bool:
        """The openai SDK is installed, with both APIs."""
        if importlib.util.find_spec("openai") is None:
            return False
        import openai

        return hasattr(openai.OpenAI, "responses")

    def specs(self) -> dict[str, list[str]]:
        from streamtape.faults import CATALOGUE

        known = {**COMMON, **self.own}
        return {name: known[name] for name in CATALOGUE if name in known}

    def rows(self) -> list[dict[str, str]]:
        import anyio

        import streamtape
        from streamtape.faults import parse

        with tempfile.TemporaryDirectory() as tmp:
            path, url, full = self._record(Path(tmp))
            rows = []
            for specs in self.specs().values():
                for spec in specs:
                    parse(spec)  # a bad spec fails here, loudly
                    sync = self._sync(streamtape, path, url, spec)
                    asynchronous = anyio.run(self._async, streamtape, path, url, spec)
                    rows.append(self._row(spec, sync, asynchronous, full))
        return rows

    # --- the runs ---------------------------------------------------------------------------------

    def _record(self, directory: Path) -> tuple[Path, str, str]:
        import streamtape
        from streamtape.wire import End
        from tests.support import openai_sdk as oa
        from tests.support.wire_server import WireServer

        path = directory / f"{self.api}-{self.recording}.yaml"
        with WireServer() as server:
            server.queue(oa.transcript(self.api, self.recording))
            with streamtape.use_cassette(path, record_mode="all"):
                clean = oa.consume(server.base_url, self.api, STYLE)
            url = server.base_url
        if clean.error is not None:
            raise RuntimeError(f"recording the clean {self.api} stream failed: {clean.error}")
        # The SDK's first use of an API builds its event types while the stream is read (seconds, for
        # Responses), and the recording keeps that gap: the chunks are kept with the timing a quiet
        # loopback gives (1 ms apart), so the table is about the faults, not about the first run.
        (item,) = streamtape.Cassette.load(path).interactions
        timing = tuple((n * 0.001, size) for n, (_, size) in enumerate(item.response.timing, 1))
        quiet = dataclasses.replace(item.response, timing=timing, headers_at=0.0005, end=End(timing[-1][0]))
        streamtape.Cassette([streamtape.Interaction(item.request, quiet)]).save(path)
        return path, url, clean.text

    def _sync(self, streamtape: Any, path: Path, url: str, spec: str) -> Seen:
        from tests.support import openai_sdk as oa

        with streamtape.use_cassette(path, faults=spec) as tape:
            outcome = oa.consume(url, self.api, STYLE, options=OPTIONS)
        return Seen(outcome, len(tape.calls))

    async def _async(self, streamtape: Any, path: Path, url: str, spec: str) -> Seen:
        from tests.support import openai_sdk as oa

        async with streamtape.use_cassette(path, faults=spec) as tape:
            outcome = await oa.aconsume(url, self.api, STYLE, options=OPTIONS)
        return Seen(outcome, len(tape.calls))

    # --- the cells --------------------------------------------------------------------------------

    def _row(self, spec: str, sync: Seen, asynchronous: Seen, full: str) -> dict[str, str]:
        return row(spec, sync, asynchronous, self._ended(sync, full), sees)

    def _ended(self, seen: Seen, full: str) -> str:
        out = seen.outcome
        if out.error is not None:
            return f"broke after {out.text!r}" if out.text else "nothing arrived"
        end = self.end(out.events)
        if out.text == full:
            return f"all the text; {end}"
        return f"other text: {out.text!r}; {end}"


def _chat_end(events: list[Any]) -> str:
    """Whether a finish_reason and the usage arrived (the SDK stops at [DONE] and never shows it)."""
    finish = [c.get("finish_reason") for e in events for c in (e.get("choices") or []) if c.get("finish_reason")]
    usage = any(e.get("usage") for e in events)
    if finish:
        return f"finish_reason {finish[-1]!r}" + (", usage" if usage else ", no usage")
    return "no finish_reason, no usage (looks complete to the SDK)"


def _responses_end(events: list[Any]) -> str:
    """The terminal event or error the SDK yielded, if any."""
    ends = [e.get("type") for e in events if e.get("type") in ("response.completed", "response.incomplete",
                                                                 "response.failed", "error")]  # fmt: skip
    if not ends:
        return "no terminal event (looks complete to the SDK)"
    return ", ".join(f"`{kind}` yielded" for kind in ends)


TABLES: list[Table] = [
    Table("openai-chat", "OpenAI Chat Completions: `client.chat.completions.create(stream=True)`", "chat",
          "text_with_usage", {"done_early": ["done_early", "done_early:after=5"]}, _chat_end),
    Table("openai-responses", "OpenAI Responses: `client.responses.create(stream=True)`", "responses", "text",
          {"response_failed": ["response_failed", "response_failed:after=5,code=rate_limit_exceeded"]},
          _responses_end),
]  # fmt: skip
