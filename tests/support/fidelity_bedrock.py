"""The fidelity table for Bedrock: what an app on ``anthropic.AnthropicBedrock`` sees under each fault.

A clean ``invoke-with-response-stream`` answer (the recorded Anthropic stream ``text_basic``, "Hello",
in Bedrock's framing: 7 frames, the text delta is frame 4; ``tests/support/bedrock.py``) is recorded
once from a local server, the server is stopped, and a representative spec of every fault that
applies to a Bedrock stream is replayed through streamtape, sync (``AnthropicBedrock``) and async
(``AsyncAnthropicBedrock``), in the ``text_stream`` style (``messages.stream``) with ``max_retries=2``
and a 0.3 s read timeout. Every cell is computed from those runs. (That the replay matches a real
misbehaving server is what tests/test_provider_bedrock.py proves.)

``rows()`` gives, per spec: ``spec``, ``sync`` and ``async`` (what the app saw; ``async`` is ``"same"``
when it matches), ``retries`` (whether the SDK retried, and the requests it made) and ``ended``
(what arrived). A fault streamtape refuses for this stream (``ping``: Bedrock has no keep-alive
event) shows its one-sentence refusal.
"""

from __future__ import annotations

import dataclasses
import importlib.util
import tempfile
from pathlib import Path

from tests.support.fidelity_cells import Seen, row, sees

__all__ = ["SPECS", "TITLE", "available", "rows"]

TITLE = "Amazon Bedrock: `AnthropicBedrock().messages.stream()` over invoke-with-response-stream"
OPTIONS = {"max_retries": 2, "timeout": 0.3}
STYLE = "text_stream"

#: Representative specs by fault; positions land after the text "Hello" (frame 4).
SPECS: dict[str, list[str]] = {
    "refuse": ["refuse"],
    "reset": ["reset", "reset:after=4"],
    "disconnect": ["disconnect", "disconnect:after=4", "disconnect:after=7"],
    "timeout": ["timeout"],
    "http_error": ["http_error:status=400", "http_error:status=403",
                   "http_error:status=503,body='upstream connect error or disconnect/reset before headers',"
                   "content_type=text/plain"],
    "rate_limit": ["rate_limit", "rate_limit -> ok"],
    "overloaded": ["overloaded", "overloaded -> ok"],
    "server_error": ["server_error"],
    "stall": ["stall:after=4", "stall:after=4,seconds=0.05"],
    "error_event": ["error_event:after=4", "error_event:after=0"],
    "truncate": ["truncate", "truncate:after=4"],
    "delay": ["delay:per_event=0.02", "delay:per_event=0.5"],
    "rechunk": ["rechunk:size=7"],
    "corrupt": ["corrupt:event=4", "corrupt:event=4,how=utf8"],
    "duplicate": ["duplicate:event=4"],
    "drop": ["drop:event=4", "drop:event=1"],
    "ping": ["ping:every=2"],
    "exception_frame": ["exception_frame:after=4", "exception_frame:after=4,type=modelStreamErrorException",
                        "exception_frame:after=0,type=serviceUnavailableException", "exception_frame:after=4,then=cut"],
    "bad_crc": ["bad_crc:event=4", "bad_crc:event=1,which=prelude"],
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


def available() -> bool:
    """The anthropic SDK with its Bedrock client, and botocore (which it decodes the stream with)."""
    if importlib.util.find_spec("botocore") is None or importlib.util.find_spec("anthropic") is None:
        return False
    import anthropic

    return hasattr(anthropic, "AnthropicBedrock")


def specs() -> dict[str, list[str]]:
    """The representative specs of every fault that applies to a Bedrock stream, in catalogue order
    (another provider's own faults, which refuse a Bedrock stream, are left out)."""
    from streamtape.faults import CATALOGUE

    return {name: SPECS[name] for name, cls in CATALOGUE.items()
            if name in SPECS and "bedrock" in (getattr(cls, "providers", ()) or ("bedrock",))}  # fmt: skip


def rows() -> list[dict[str, str]]:
    import anyio

    from streamtape.faults import parse

    with tempfile.TemporaryDirectory() as tmp:
        path, url, full = _record(Path(tmp))
        out = []
        for group in specs().values():
            for spec in group:
                parse(spec)  # a bad spec fails here, loudly
                sync = _sync(path, url, spec)
                asynchronous = anyio.run(_async, path, url, spec)
                out.append(_row(spec, sync, asynchronous, full))
    return out


# --- the runs -------------------------------------------------------------------------------------


def _record(directory: Path) -> tuple[Path, str, str]:
    import streamtape
    from streamtape.wire import End
    from tests.support import bedrock
    from tests.support.wire_server import WireServer

    path = directory / "bedrock-invoke.yaml"
    with WireServer() as server:
        server.queue(bedrock.invoke_reply())
        with streamtape.use_cassette(path, record_mode="all"):
            clean = bedrock.consume(server.base_url, STYLE)
        url = server.base_url
    if clean.error is not None:
        raise RuntimeError(f"recording the clean Bedrock stream failed: {clean.error}")
    (item,) = streamtape.Cassette.load(path).interactions
    timing = tuple((n * 0.001, size) for n, (_, size) in enumerate(item.response.timing, 1))
    quiet = dataclasses.replace(item.response, timing=timing, headers_at=0.0005, end=End(timing[-1][0]))
    streamtape.Cassette([streamtape.Interaction(item.request, quiet)]).save(path)
    return path, url, clean.text


def _sync(path: Path, url: str, spec: str) -> Seen:
    import streamtape
    from streamtape.errors import ConfigError
    from tests.support import bedrock

    try:
        with streamtape.use_cassette(path, faults=spec) as tape:
            outcome = bedrock.consume(url, STYLE, options=OPTIONS)
    except ConfigError as exc:
        return Seen(None, 0, str(exc))
    return Seen(outcome, len(tape.calls))


async def _async(path: Path, url: str, spec: str) -> Seen:
    import streamtape
    from streamtape.errors import ConfigError
    from tests.support import bedrock

    try:
        async with streamtape.use_cassette(path, faults=spec) as tape:
            outcome = await bedrock.aconsume(url, STYLE, options=OPTIONS)
    except ConfigError as exc:
        return Seen(None, 0, str(exc))
    return Seen(outcome, len(tape.calls))


# --- the cells ------------------------------------------------------------------------------------


def _row(spec: str, sync: Seen, asynchronous: Seen, full: str) -> dict[str, str]:
    return row(spec, sync, asynchronous, _ended(sync, full), sees)


def _ended(seen: Seen, full: str) -> str:
    if seen.refused is not None:
        return "-"
    out = seen.outcome
    if out.error is not None:
        return f"broke after {out.text!r}" if out.text else "nothing arrived"
    if out.text == full:
        return "all the text"
    return f"other text: {out.text!r}" if out.text else "no text, and no error"
