"""Request matching and the near-miss report.

A matcher is a plain function ``(recorded, incoming) -> list[str]`` returning the differences it
finds (empty: they match), e.g. ``["body.model: 'a' != 'b'"]``. ``match_on`` names built-in matchers
or passes such functions. Volatile headers (user agent, ``x-stainless-*``, retry counts) never matter
because no default matcher looks at headers.
"""

from __future__ import annotations

from collections.abc import Callable, Iterable, Sequence
from typing import Any
from urllib.parse import parse_qsl, urlsplit

from .cassette import Interaction, Request
from .errors import ConfigError

__all__ = ["DEFAULT_MATCH_ON", "MATCHERS", "Matcher", "Player", "differences", "near_miss", "resolve_matchers"]

Matcher = Callable[[Request, Request], list[str]]
_MAX_DIFFS = 5


def _compare(label: str, recorded: Any, incoming: Any) -> list[str]:
    return [] if recorded == incoming else [f"{label}: {recorded!r} != {incoming!r}"]


def method(recorded: Request, incoming: Request) -> list[str]:
    return _compare("method", recorded.method.upper(), incoming.method.upper())


def scheme(recorded: Request, incoming: Request) -> list[str]:
    return _compare("scheme", urlsplit(recorded.url).scheme, urlsplit(incoming.url).scheme)


def host(recorded: Request, incoming: Request) -> list[str]:
    return _compare("host", urlsplit(recorded.url).hostname, urlsplit(incoming.url).hostname)


def port(recorded: Request, incoming: Request) -> list[str]:
    return _compare("port", _port(recorded.url), _port(incoming.url))


def _port(url: str) -> int | None:
    parts = urlsplit(url)
    return parts.port or {"http": 80, "https": 443}.get(parts.scheme)


def path(recorded: Request, incoming: Request) -> list[str]:
    return _compare("path", urlsplit(recorded.url).path or "/", urlsplit(incoming.url).path or "/")


def query(recorded: Request, incoming: Request) -> list[str]:
    def params(url: str) -> list[tuple[str, str]]:
        return sorted(parse_qsl(urlsplit(url).query, keep_blank_values=True))

    return _compare("query", params(recorded.url), params(incoming.url))


def url(recorded: Request, incoming: Request) -> list[str]:
    return [
        *scheme(recorded, incoming),
        *host(recorded, incoming),
        *port(recorded, incoming),
        *path(recorded, incoming),
        *query(recorded, incoming),
    ]


def body(recorded: Request, incoming: Request) -> list[str]:
    """JSON bodies compare parsed (key order and white space do not matter); others byte for byte."""
    if recorded.json is not None and incoming.json is not None:
        return _json_diff("body", recorded.json, incoming.json)
    if recorded.body == incoming.body:
        return []
    return [f"body: {_preview(recorded.body)} != {_preview(incoming.body)}"]


def _preview(raw: bytes, limit: int = 60) -> str:
    text = repr(raw[:limit])
    return text + ("..." if len(raw) > limit else "")


def _json_diff(where: str, recorded: Any, incoming: Any) -> list[str]:
    if isinstance(recorded, dict) and isinstance(incoming, dict):
        diffs: list[str] = []
        for key in [*recorded, *(k for k in incoming if k not in recorded)]:
            if key not in incoming:
                diffs.append(f"{where}.{key}: missing (recorded {_short(recorded[key])})")
            elif key not in recorded:
                diffs.append(f"{where}.{key}: not recorded (sent {_short(incoming[key])})")
            else:
                diffs += _json_diff(f"{where}.{key}", recorded[key], incoming[key])
        return diffs
    if isinstance(recorded, list) and isinstance(incoming, list) and len(recorded) == len(incoming):
        return [
            d
            for i, (a, b) in enumerate(zip(recorded, incoming, strict=True))
            for d in _json_diff(f"{where}[{i}]", a, b)
        ]
    if isinstance(recorded, list) and isinstance(incoming, list):
        return [f"{where}: {len(recorded)} items != {len(incoming)} items"]
    return [] if recorded == incoming else [f"{where}: {_short(recorded)} != {_short(incoming)}"]


def _short(value: Any, limit: int = 80) -> str:
    text = repr(value)
    return text if len(text) <= limit else text[: limit - 3] + "..."


def headers(*names: str) -> Matcher:
    """A matcher on the named request headers (case-insensitive names)."""

    def match(recorded: Request, incoming: Request) -> list[str]:
        return [d for name in names for d in _compare(f"header {name}", recorded.header(name), incoming.header(name))]

    match.__name__ = f"headers({', '.join(names)})"
    return match


MATCHERS: dict[str, Matcher] = {
    "method": method,
    "url": url,
    "scheme": scheme,
    "host": host,
    "port": port,
    "path": path,
    "query": query,
    "body": body,
}
DEFAULT_MATCH_ON: tuple[str, ...] = ("method", "url", "body")


def resolve_matchers(match_on: Iterable[str | Matcher] | None) -> tuple[Matcher, ...]:
    if match_on is None:
        match_on = DEFAULT_MATCH_ON
    if isinstance(match_on, str):
        match_on = [part.strip() for part in match_on.split(",") if part.strip()]
    resolved = []
    for item in match_on:
        if callable(item):
            resolved.append(item)
        elif item in MATCHERS:
            resolved.append(MATCHERS[item])
        else:
            valid = ", ".join(MATCHERS)
            raise ConfigError(
                f"match_on: unknown matcher {item!r}; valid: {valid}, or a function (recorded, incoming) -> list[str]"
            )
    return tuple(resolved)


def differences(matchers: Sequence[Matcher], recorded: Request, incoming: Request) -> list[str]:
    return [d for matcher in matchers for d in matcher(recorded, incoming)]


def near_miss(
    matchers: Sequence[Matcher], recorded: Sequence[Request], incoming: Request
) -> tuple[int, list[str]] | None:
    """The index of the recorded request closest to ``incoming`` and what differs (first few)."""
    if not recorded:
        return None
    scored = [(len(diffs := differences(matchers, r, incoming)), i, diffs) for i, r in enumerate(recorded)]
    _, index, diffs = min(scored, key=lambda item: (item[0], item[1]))
    return index, diffs[:_MAX_DIFFS] + ([f"... and {len(diffs) - _MAX_DIFFS} more"] if len(diffs) > _MAX_DIFFS else [])


class Player:
    """Chooses the recorded interaction that answers each request.

    Identical requests are answered in recorded order; after the last, the last repeats (the SDK
    resends an identical body on every retry). Not thread-safe: callers hold their own lock.
    """

    def __init__(self, interactions: Sequence[Interaction], matchers: Sequence[Matcher]) -> None:
        self.interactions = list(interactions)
        self.matchers = tuple(matchers)
        self.plays = [0] * len(self.interactions)

    def choose(self, request: Request) -> int | None:
        """The index of the interaction that answers ``request`` (counted as played), or ``None``."""
        candidates = [
            i
            for i, item in enumerate(self.interactions)
            if all(not matcher(item.request, request) for matcher in self.matchers)
        ]
        if not candidates:
            return None
        index = next((i for i in candidates if self.plays[i] == 0), candidates[-1])
        self.plays[index] += 1
        return index

    def explain(self, request: Request) -> list[str]:
        """Lines saying which recorded request came closest and what differs."""
        closest = near_miss(self.matchers, [item.request for item in self.interactions], request)
        if closest is None:
            return ["The cassette has no interactions."]
        index, diffs = closest
        recorded = self.interactions[index].request
        return [
            f"Closest recorded request: #{index} {recorded.method} {recorded.url}, which differs on:",
            *(f"  - {diff}" for diff in diffs),
        ]
