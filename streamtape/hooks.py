"""Escape hatches for what is recorded and matched, with vcrpy's names where the concept is the same.

- ``filter_headers``, ``filter_query_parameters``, ``filter_post_data_parameters``: each entry is a
  name (the header, parameter or JSON body field is removed) or ``(name, replacement)``, where the
  replacement is a string, ``None`` (removed) or a callable ``(name, value, request) -> value``.
  JSON body fields may be dotted paths (``metadata.user_id``); form bodies are filtered by name.
- ``before_record_request(request) -> Request | None``: rewrite the request (``dataclasses.replace``)
  or return ``None`` to leave it out of the cassette altogether: it is then sent to the network,
  unrecorded and unmatched, like a host in ``allow_hosts``.
- ``before_record_response(response) -> Response | None``: rewrite what is saved of a response, or
  return ``None`` to save nothing of that exchange. The app always reads the real response.

Filters and hooks see the request the app sent, before streamtape's redaction; redaction always
runs last, on what they return, so a hook can never put a credential back. The same filters and
request hook run on a request before it is matched during replay, so a field filtered out when
recording is filtered out of the live request too.

A hook that raises, or returns something other than what it was given or ``None``, fails the test
with ``ConfigError`` naming the hook: it is never mistaken for a network error.
"""

from __future__ import annotations

import copy
import dataclasses
import json
from collections.abc import Callable, Iterable
from typing import Any

from .cassette import Request, Response
from .errors import ConfigError

__all__ = ["Hooks"]

Replacement = str | None | Callable[[str, str, Request], Any]
_REMOVE = object()


def _entries(option: str, raw: Iterable[Any] | None) -> tuple[tuple[str, Any], ...]:
    if raw is None:
        return ()
    if isinstance(raw, (str, bytes)):
        raw = [raw]
    out = []
    for entry in raw:
        if isinstance(entry, str):
            out.append((entry, _REMOVE))
        elif (
            isinstance(entry, (tuple, list))
            and len(entry) == 2
            and isinstance(entry[0], str)
            and (entry[1] is None or isinstance(entry[1], str) or callable(entry[1]))
        ):
            out.append((entry[0], _REMOVE if entry[1] is None else entry[1]))
        else:
            raise ConfigError(
                f"{option}: {entry!r} is not a filter; give a name (removed) or (name, replacement), the "
                "replacement a string, None (removed) or a function (name, value, request) -> value"
            )
    return tuple(out)


def _hook(option: str, value: Any) -> Callable[[Any], Any] | None:
    if value is not None and not callable(value):
        raise ConfigError(f"{option}: {value!r} is not callable; give a function that takes and returns the object")
    return value


class Hooks:
    """The user's filters and hooks for one tape (``bool(hooks)`` is False when there are none)."""

    def __init__(
        self,
        *,
        before_record_request: Callable[[Request], Request | None] | None = None,
        before_record_response: Callable[[Response], Response | None] | None = None,
        filter_headers: Iterable[Any] | None = None,
        filter_query_parameters: Iterable[Any] | None = None,
        filter_post_data_parameters: Iterable[Any] | None = None,
    ) -> None:
        self.before_record_request = _hook("before_record_request", before_record_request)
        self.before_record_response = _hook("before_record_response", before_record_response)
        self.headers = _entries("filter_headers", filter_headers)
        self.query = _entries("filter_query_parameters", filter_query_parameters)
        self.post_data = _entries("filter_post_data_parameters", filter_post_data_parameters)

    def __bool__(self) -> bool:
        return bool(self.before_record_request or self.before_record_response or self.headers or self.query
                    or self.post_data)  # fmt: skip

    def request(self, request: Request) -> Request | None:
        """The request as it will be matched and recorded, or ``None``: leave it out of the tape."""
        if self.headers:
            request = dataclasses.replace(request, headers=self._headers(request))
        if self.query and "?" in request.url:
            request = dataclasses.replace(request, url=self._url(request))
        if self.post_data and request.body:
            request = dataclasses.replace(request, body=self._body(request))
        if self.before_record_request is not None:
            return _call("before_record_request", self.before_record_request, request, Request)
        return request

    def response(self, response: Response) -> Response | None:
        """What will be saved of ``response``, or ``None``: save nothing of this exchange."""
        if self.before_record_response is None:
            return response
        result = _call("before_record_response", self.before_record_response, response, Response)
        if result is not None and sum(size for _, size in result.timing) != len(result.body):
            # the body changed length: its chunks follow, as lint --fix does
            from .cassette import _event_ends, _rechunked

            ats = tuple(at for at, _ in result.timing)
            sizes = tuple(size for _, size in result.timing)
            ends = _event_ends(result.headers, result.body)
            result = dataclasses.replace(result, timing=_rechunked(ats, sizes, len(result.body), ends))
        return result

    # --- the filters -----------------------------------------------------------------------------

    def _headers(self, request: Request) -> tuple[tuple[str, str], ...]:
        rules = {name.lower(): replacement for name, replacement in self.headers}
        out = []
        for name, value in request.headers:
            replacement = rules.get(name.lower())
            if replacement is None:
                out.append((name, value))
                continue
            new = _replaced("filter_headers", name, value, replacement, request)
            if new is not _REMOVE:
                out.append((name, new))
        return tuple(out)

    def _url(self, request: Request) -> str:
        base, _, rest = request.url.partition("?")
        query, hash_, fragment = rest.partition("#")
        kept = self._pairs("filter_query_parameters", query, self.query, request)
        return base + ("?" + kept if kept else "") + hash_ + fragment  # no bare "?" once every parameter is gone

    def _pairs(self, option: str, text: str, entries: tuple[tuple[str, Any], ...], request: Request) -> str:
        """``a=1&b=2`` with the filtered names removed or replaced; every other pair kept as written."""
        from urllib.parse import quote, unquote_plus

        rules = dict(entries)
        kept = []
        for pair in text.split("&"):
            name, sep, value = pair.partition("=")
            key = unquote_plus(name)
            if key not in rules:
                kept.append(pair)
                continue
            new = _replaced(option, key, unquote_plus(value), rules[key], request)
            if new is not _REMOVE:
                kept.append(f"{name}={quote(str(new), safe='')}")
        return "&".join(kept)

    def _body(self, request: Request) -> bytes:
        parsed = copy.deepcopy(request.json)  # the request's own parse is cached: never edit it
        if isinstance(parsed, dict):
            for path, replacement in self.post_data:
                _filter_json(parsed, path.split("."), replacement, request)
            return json.dumps(parsed, separators=(",", ":"), ensure_ascii=False).encode("utf-8")
        content_type = (request.header("content-type") or "").lower()
        if "x-www-form-urlencoded" in content_type:
            text = request.body.decode("utf-8", "replace")
            return self._pairs("filter_post_data_parameters", text, self.post_data, request).encode("utf-8")
        return request.body


def _filter_json(node: Any, path: list[str], replacement: Any, request: Request) -> None:
    """Remove or replace the field at ``path`` (dotted; a list applies the rest to each item)."""
    if isinstance(node, list):
        for item in node:
            _filter_json(item, path, replacement, request)
        return
    if not isinstance(node, dict) or path[0] not in node:
        return
    if len(path) > 1:
        _filter_json(node[path[0]], path[1:], replacement, request)
        return
    new = _replaced("filter_post_data_parameters", path[0], node[path[0]], replacement, request)
    if new is _REMOVE:
        del node[path[0]]
    else:
        node[path[0]] = new


def _replaced(option: str, name: str, value: Any, replacement: Any, request: Request) -> Any:
    if replacement is _REMOVE or isinstance(replacement, str):
        return replacement
    try:
        new = replacement(name, value, request)
    except Exception as exc:  # noqa: BLE001 - the user's function: named, never mistaken for the network
        raise ConfigError(f"{option}: the replacement for {name!r} raised {type(exc).__name__}: {exc}") from exc
    return _REMOVE if new is None else new


def _call(option: str, hook: Callable[[Any], Any], value: Any, kind: type) -> Any:
    try:
        result = hook(value)
    except Exception as exc:  # noqa: BLE001 - see _replaced
        raise ConfigError(f"{option} raised {type(exc).__name__}: {exc}; fix the hook") from exc
    if result is not None and not isinstance(result, kind):
        raise ConfigError(
            f"{option} returned {type(result).__name__}; return the {kind.__name__} it was given (changed with "
            f"dataclasses.replace), or None to leave it out"
        )
    return result
