"""The cells of the provider fidelity tables (``tests/support/fidelity_<provider>.py``), written once:
what the app saw, whether the SDK retried, and the row that puts sync and async side by side."""

from __future__ import annotations

import re
from collections.abc import Callable
from dataclasses import dataclass
from typing import Any

__all__ = ["Seen", "retries", "row", "sees", "short"]


@dataclass(frozen=True)
class Seen:
    """One replay: what the app saw (an SDK outcome), the requests the tape answered, and streamtape's
    own refusal of the fault (a ConfigError's text), if it refused it."""

    outcome: Any
    requests: int
    refused: str | None = None


def short(text: str, limit: int = 90, *, addresses: bool = False) -> str:
    """``text`` on one line, cut at ``limit``; ``addresses``: an object's memory address dropped
    (aiohttp names its TLS context by one)."""
    text = " ".join(text.split())
    if addresses:
        text = re.sub(r" object at 0x[0-9a-f]+>", " object>", text)
    return text if len(text) <= limit else text[: limit - 1] + "…"


def sees(seen: Seen, *, details: bool = True, addresses: bool = False) -> str:
    """What the app saw: success and its text, or the exception and its message; with ``details``, the
    cause's message and the status code too. A streamtape error is named without the temporary
    cassette's path."""
    if seen.refused is not None:
        return f"refused by streamtape: {seen.refused}"
    out = seen.outcome
    if out.error is None:
        return f"success: {out.text!r}"
    cls, message, cause = out.error
    if not details and cls.startswith("streamtape."):
        message = message.split("): ", 1)[-1]
    line = f"`{cls}`: " + (f"{short(message, addresses=addresses)!r}" if message else "(empty message)")
    if cause is not None:
        line += f", caused by `{cause}`"
        if details and out.cause_message:
            line += f" {short(out.cause_message, 60)!r}"
    if details and out.status is not None:
        line += f", status_code {out.status}"
    return line


def retries(seen: Seen, *, plural_none: bool = False) -> str:
    """Whether the SDK retried, by the requests it made (``-`` for a refused fault)."""
    if seen.refused is not None:
        return "-"
    n = seen.requests
    if n > 1:
        return f"yes ({n} requests)"
    return f"no ({n} request{'s' if plural_none and n == 0 else ''})"


def row(spec: str, sync: Seen, asynchronous: Seen, ended: str, cell: Callable[[Seen], str],
        retried: Callable[[Seen], str] = retries) -> dict[str, str]:  # fmt: skip
    """A table row: the sync cell, and the async one only where it differs ("same" otherwise)."""

    def key(seen: Seen) -> tuple[str, int, str]:
        return cell(seen), seen.requests, seen.outcome.text if seen.outcome is not None else ""

    differs = key(asynchronous) != key(sync)
    async_cell = cell(asynchronous) if differs else "same"
    if differs and asynchronous.requests != sync.requests:
        async_cell += f"; {retried(asynchronous)}"
    return {"spec": spec, "sync": cell(sync), "async": async_cell, "retries": retried(sync), "ended": ended}
