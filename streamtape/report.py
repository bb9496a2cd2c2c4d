"""What ``streamtape inspect`` says about a cassette: per interaction, the request, the status, the
events by type, the timing, the tokens, how it ended, and when each event arrived.

Events are what the response's framer finds (``Response.events``); tokens, the stop reason and an
in-stream error are where the request's provider says its API puts them (``streamtape.providers``)."""

from __future__ import annotations

import re
import statistics
from collections import Counter
from itertools import accumulate
from typing import Any
from urllib.parse import unquote

from .cassette import Cassette, Interaction
from .providers import Provider, provider_for
from .wire import Cut

__all__ = ["describe_cassette", "describe_interaction", "timeline"]


def describe_cassette(cassette: Cassette) -> dict[str, Any]:
    return {
        "path": str(cassette.path) if cassette.path else None,
        "interactions": [describe_interaction(i, item) for i, item in enumerate(cassette.interactions)],
    }


def describe_interaction(index: int, item: Interaction) -> dict[str, Any]:
    request = item.request
    body = request.json if isinstance(request.json, dict) else {}
    out: dict[str, Any] = {
        "index": index,
        "request": {
            "method": request.method,
            "url": request.url,
            "model": body.get("model") or _model_in_url(request.url),
            "max_tokens": body.get("max_tokens"),
            "messages": len(body["messages"]) if isinstance(body.get("messages"), list) else None,
            "stream": body.get("stream"),
        },
    }
    if item.response is None:
        assert item.error is not None
        out["ended"] = f"no response: {item.error.error} {item.error.message or ''}".strip()
        return out
    response = item.response
    provider = provider_for(request.method, request.url, request.headers)
    arrivals = event_arrivals(item)
    gaps = [b - a for a, b in zip(arrivals, arrivals[1:], strict=False)]
    out.update(
        status=response.status,
        events=dict(Counter(event.event for event in response.events)),
        bytes=len(response.body),
        chunks=len(response.timing),
        headers_at=response.headers_at,
        first_event_at=arrivals[0] if arrivals else None,
        duration=response.end.at or (response.timing[-1][0] if response.timing else response.headers_at),
        longest_gap=max(gaps, default=0.0),
        median_gap=statistics.median(gaps) if gaps else 0.0,
        tokens=provider.tokens(response.events),
        stop_reason=provider.stop_reason(response.events),
        # the calls the model made, as name(arguments), where the provider reads them (OpenAI's)
        tool_calls=provider.tool_calls(response.events),
        ended=_ending(item, provider),
        arrivals=arrivals,
    )
    return out


def event_arrivals(item: Interaction) -> list[float]:
    """When each complete event had fully arrived (seconds after the request)."""
    response = item.response
    if response is None or not response.timing:
        return []
    # the chunk each event ends in: events end in body order, so one pass walks both lists
    ends = list(accumulate(size for _, size in response.timing))
    ats = [at for at, _ in response.timing]
    arrivals, chunk, last = [], 0, len(ats) - 1
    for event in response.events:
        while chunk < last and ends[chunk] < event.end:
            chunk += 1
        arrivals.append(ats[chunk])
    return arrivals


#: the APIs that name the model in the URL, not the body: Bedrock's ``/model/{id}/converse-stream`` (the id
#: percent-encoded) and Gemini's ``/models/{model}:streamGenerateContent``
_MODEL_IN_URL = re.compile(r"/model/(?P<bedrock>[^/?#]+)/[\w-]+(?:[?#]|$)|/models/(?P<gemini>[^/:?#]+):\w+(?:[?#]|$)")


def _model_in_url(url: str) -> str | None:
    found = _MODEL_IN_URL.search(url)
    return unquote(found["bedrock"] or found["gemini"]) if found else None


def _ending(item: Interaction, provider: Provider) -> str:
    assert item.response is not None
    end = item.response.end
    if isinstance(end, Cut):
        return f"cut: {end.error} {end.message or ''}".strip()
    return provider.ending(item.response.events) or "clean"


def timeline(arrivals: list[float], duration: float, width: int = 60) -> str:
    """One character per time slot: how many events arrived in it (blank: none, then ▁▂▃▄▅▆▇█)."""
    if not arrivals:
        return ""
    span = max(duration, arrivals[-1], 1e-9)
    counts = [0] * width
    for at in arrivals:
        counts[min(int(at / span * width), width - 1)] += 1
    top = max(counts)
    bars = " ▁▂▃▄▅▆▇█"
    return "".join(bars[0] if c == 0 else bars[max(1, round(c / top * 8))] for c in counts)
