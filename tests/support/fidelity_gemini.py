"""The fidelity table for Gemini: what an app on google-genai sees under each fault.

A real stream (tests/data/gemini/text.sse: "The", " capital of France", " is Paris.\\n", ``finishReason:
STOP`` on the third and last event) is recorded once from a local server speaking Gemini's wire format,
the server is stopped, and a representative spec of every fault that applies to Gemini is replayed
through streamtape: sync (``client.models.generate_content_stream``, httpx2) and async
(``client.aio.models.generate_content_stream``, aiohttp when installed, as google-genai chooses), with
``HttpRetryOptions(attempts=3)`` (no back-off) and a 0.3 s timeout. Every cell is computed from those
runs. The replays run at speed 0, so the 0.3 s is spent in the tape's time only: httpx2's read timeout and
aiohttp's total deadline (google-genai's only timeout over aiohttp) both fire when the recording's
silence reaches them, never because a loaded CPU took 0.3 s of wall-clock time to replay a stream that
arrives within it (streamtape.stacks.aiohttp holds aiohttp's real timer while a replay is virtual). So
the table is the same on any machine, and 0.3 s needs no slack. (That the replay matches a real misbehaving server is what tests/test_provider_gemini.py proves;
its ``KNOWN`` entries are where it does not yet, over aiohttp.)

``rows()`` gives, per spec: ``spec``, ``sync`` and ``async`` (what the app saw: success and its text, or
the exception, its message and its cause; ``async`` is ``"same"`` when it matches), ``retries`` (whether
google-genai retried, and the requests it made) and ``ended`` (what arrived: the text, and whether the
``finishReason`` did). Without ``retry_options`` google-genai never retries, except that over aiohttp it
retries a failed connection once after a real ``asyncio.sleep(1..10)``: docs/providers/gemini.md.
"""

from __future__ import annotations

import importlib.util
import tempfile
from dataclasses import dataclass
from pathlib import Path

from tests.support.fidelity_cells import Seen, retries, row, sees

__all__ = ["SPECS", "TABLES", "Table"]

OPTIONS = {"attempts": 3, "timeout": 0.3}

#: Representative specs by fault; ``after=1`` lands after "The" (event 1 of 3).
SPECS: dict[str, list[str]] = {
    "refuse": ["refuse", "refuse -> ok"],
    "reset": ["reset", "reset:after=1", "reset -> ok"],
    "disconnect": ["disconnect", "disconnect:after=1", "disconnect -> ok"],
    "timeout": ["timeout"],
    "http_error": ["http_error:status=400", "http_error:status=404", "http_error:status=429,content_type=application/json",
                   "http_error:status=503,body='upstream connect error or disconnect/reset before headers',"
                   "content_type=text/plain"],
    "rate_limit": ["rate_limit", "rate_limit -> ok", "rate_limit:retry_after=30 -> ok"],
    "overloaded": ["overloaded", "overloaded -> ok"],
    "server_error": ["server_error"],
    "stall": ["stall:after=1", "stall:after=1,seconds=0.05"],
    "error_event": ["error_event:after=1", "error_event:after=0", "error_event:after=3",
                    "error_event:after=1,error_type=RESOURCE_EXHAUSTED", "error_event:after=1,then=cut",
                    "error_event:after=1,data='{\"error\": {\"code\": 503, \"status\": \"UNAVAILABLE\"}}'"],
    "truncate": ["truncate", "truncate:after=1"],
    "delay": ["delay:per_event=0.02", "delay:per_event=0.5"],
    "rechunk": ["rechunk:size=7"],
    "corrupt": ["corrupt:event=2", "corrupt:event=2,how=utf8", "corrupt:event=2,how=truncate"],
    "duplicate": ["duplicate:event=2"],
    "drop": ["drop:event=2", "drop:event=3"],
    "ping": ["ping"],
    "candidate_finish": ["candidate_finish", "candidate_finish:after=1,reason=RECITATION"],
    "prompt_blocked": ["prompt_blocked", "prompt_blocked:reason=OTHER"],
    "connect_timeout": ["connect_timeout"],
    "write_timeout": ["write_timeout"],
    "pool_timeout": ["pool_timeout"],
    "bad_status": ["bad_status"],
    "bad_chunk": ["bad_chunk:after=1"],
    "corrupt_gzip": ["corrupt_gzip"],
    "bom": ["bom"],
    "json_body": ["json_body"],
    "linger": ["linger"],
    "split": ["split", "split:at_byte=150"],
    "split_crlf": ["split_crlf"],
    "split_utf8": ["split_utf8"],
}  # fmt: skip


@dataclass(frozen=True)
class Table:
    name: str = "gemini"
    title: str = "Google Gemini: `client.models.generate_content_stream` (google-genai)"
    recording: str = "text"

    def available(self) -> bool:
        """google-genai is installed."""
        return importlib.util.find_spec("google") is not None and importlib.util.find_spec("google.genai") is not None

    def specs(self) -> dict[str, list[str]]:
        from streamtape.faults import CATALOGUE

        return {name: SPECS[name] for name in CATALOGUE if name in SPECS}

    def rows(self) -> list[dict[str, str]]:
        import anyio

        from streamtape.faults import parse

        with tempfile.TemporaryDirectory() as tmp:
            path, url, full = self._record(Path(tmp))
            rows = []
            for specs in self.specs().values():
                for spec in specs:
                    parse(spec)  # a bad spec fails here, loudly
                    sync = anyio.run(self._replay, path, url, spec, "sync")
                    asynchronous = anyio.run(self._replay, path, url, spec, "async")
                    rows.append(_row(spec, sync, asynchronous, full))
        return rows

    def _record(self, directory: Path) -> tuple[Path, str, str]:
        import streamtape
        from tests.support import gemini as g
        from tests.support.wire_server import WireServer

        path = directory / f"gemini-{self.recording}.yaml"
        with WireServer() as server:
            server.queue(g.stream_reply(self.recording))
            with streamtape.use_cassette(path, record_mode="all"):
                clean = g.consume(server.base_url)
            url = server.base_url
        if clean.error is not None:
            raise RuntimeError(f"recording the clean Gemini stream failed: {clean.error}")
        return path, url, clean.text

    async def _replay(self, path: Path, url: str, spec: str, mode: str) -> Seen:
        import streamtape
        from streamtape.errors import StreamtapeError
        from tests.support import gemini as g

        tape = streamtape.use_cassette(path, faults=spec)
        try:
            async with tape:
                outcome = g.consume(url, **OPTIONS) if mode == "sync" else await g.aconsume(url, **OPTIONS)
        except StreamtapeError as exc:  # streamtape refusing the spec for this API (ping): said in the cell
            outcome = g.Outcome()
            outcome.fail(exc)
        return Seen(outcome, len(tape.calls))


def _ended(seen: Seen, full: str) -> str:
    out = seen.outcome
    if out.error is not None:
        return f"broke after {out.text!r}" if out.text else "nothing arrived"
    finish = [c.get("finish_reason") for chunk in out.chunks for c in (chunk.get("candidates") or [])
              if c.get("finish_reason")]  # fmt: skip
    blocked = [chunk["prompt_feedback"].get("block_reason") for chunk in out.chunks if chunk.get("prompt_feedback")]
    end = (f"finishReason {finish[-1]}" if finish else f"prompt blocked: {blocked[-1]}" if blocked
           else "no finishReason (looks complete to the SDK)")  # fmt: skip
    return f"all the text; {end}" if out.text == full else f"other text: {out.text!r}; {end}"


def _row(spec: str, sync: Seen, asynchronous: Seen, full: str) -> dict[str, str]:
    return row(spec, sync, asynchronous, _ended(sync, full), _sees, _retries)


def _sees(seen: Seen) -> str:
    return sees(seen, details=False, addresses=True)


def _retries(seen: Seen) -> str:
    return retries(seen, plural_none=True)


TABLES: list[Table] = [Table()]
