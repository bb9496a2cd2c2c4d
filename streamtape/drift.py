"""Drift: is the API still answering what a cassette says it answers?

``check(path)`` re-sends each recorded request (to the API with the user's key, or to ``base_url``),
records the fresh answers beside the cassette (``NAME.drift.yaml``, or ``out_dir/NAME.yaml``; the
cassette itself is never written), and compares the two **structurally**: status, the headers that
appeared or vanished (volatile ones ignored), the stream's event types and their order, and each
event's (or a JSON body's) fields: added, removed, renamed, or changed in type. Values are never
compared: a different answer from the model is not drift, a renamed field is.

Interactions that captured a real failure (no response, an error status, a connection cut
mid-stream) are never re-sent: the live API would most likely answer cleanly and the failure would be
lost. They are reported as "not re-checkable" and copied into the fresh file as they are, so the
fresh file can replace the cassette without losing them.

``compare(old, new)`` is the structural diff alone (pure: no network). The re-sending goes through a
``Tape`` in record mode ``all`` with an explicit transport, so the fresh file is recorded, redacted
and dated exactly as any recording is: the key is sent, never written.
"""

from __future__ import annotations

import os
import re
from collections.abc import Iterable, Iterator, Mapping, Sequence
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any
from urllib.parse import urlsplit, urlunsplit

from .age import real_failure
from .cassette import Cassette, Interaction, Response
from .errors import ConfigError

__all__ = ["Change", "CassetteDrift", "InteractionDrift", "check", "compare", "drift_path"]

#: headers whose presence changes from one response to the next without the API changing: dates, request
#: ids, rate-limit counters, tracing and caching, framing (the recorder drops it for decoded bodies)
_VOLATILE = frozenset({
    "date", "expires", "age", "etag", "last-modified", "request-id", "x-request-id", "x-amzn-requestid",
    "x-amz-request-id", "x-amz-id-2", "x-amzn-trace-id", "cf-ray", "cf-cache-status", "server-timing", "set-cookie",
    "retry-after", "retry-after-ms", "x-envoy-upstream-service-time", "openai-processing-ms", "x-cloud-trace-context",
    "content-length", "transfer-encoding", "content-encoding", "connection", "keep-alive", "alt-svc", "via",
    "strict-transport-security", "vary", "report-to", "nel", "x-goog-request-id",
})  # fmt: skip
_VOLATILE_PREFIXES = ("anthropic-ratelimit-", "x-ratelimit-", "ratelimit-", "x-amzn-bedrock-", "x-datadog-")
#: request headers never re-sent as recorded: the client sets them for the request it sends
_NOT_RESENT = frozenset({"host", "content-length", "transfer-encoding", "connection", "keep-alive", "cookie"})
#: how each provider's requests carry the key (``{key}`` is replaced), and its API's host (any request
#: there gets the key, not only the model calls the provider claims); Bedrock's are signed (SigV4)
_AUTH = {
    "anthropic": ("x-api-key", "{key}", "api.anthropic.com"),
    "openai": ("Authorization", "Bearer {key}", "api.openai.com"),
    "openai-responses": ("Authorization", "Bearer {key}", "api.openai.com"),
    "generic": ("Authorization", "Bearer {key}", "api.openai.com"),
    "gemini": ("x-goog-api-key", "{key}", "generativelanguage.googleapis.com"),
}
_LOOPBACK = frozenset({"localhost", "127.0.0.1", "::1"})


@dataclass(frozen=True)
class Change:
    """One structural difference: ``kind`` (``status``, ``header_added``, ``header_removed``,
    ``header_changed``, ``event_added``, ``event_removed``, ``event_order``, ``field_added``,
    ``field_removed``, ``field_renamed``, ``field_type``, ``variant_added``, ``variant_removed``,
    ``body``), where it is (an event type, ``body``, or ``""``), and one line saying it."""

    kind: str
    where: str
    detail: str
    old: Any = None
    new: Any = None

    def __str__(self) -> str:
        return self.detail

    def as_dict(self) -> dict[str, Any]:
        out: dict[str, Any] = {"kind": self.kind, "where": self.where, "detail": self.detail}
        if self.old is not None:
            out["old"] = self.old
        if self.new is not None:
            out["new"] = self.new
        return out


@dataclass
class InteractionDrift:
    """What re-sending one interaction showed. ``state``: ``same``, ``drifted``, ``not re-checkable``
    (a recorded failure, kept), or ``failed`` (the re-sent request got no usable answer: no connection,
    a refused key, a transient 429/5xx; nothing is concluded)."""

    index: int
    request: str
    state: str
    reason: str = ""
    changes: list[Change] = field(default_factory=list)

    def as_dict(self) -> dict[str, Any]:
        return {"index": self.index, "request": self.request, "state": self.state, "reason": self.reason,
                "changes": [change.as_dict() for change in self.changes]}  # fmt: skip


@dataclass
class CassetteDrift:
    path: Path
    #: where the fresh answers were written (``None``: nothing was re-sent, nothing written)
    out: Path | None
    interactions: list[InteractionDrift]

    @property
    def drifted(self) -> bool:
        return any(item.state == "drifted" for item in self.interactions)

    @property
    def failed(self) -> bool:
        return any(item.state == "failed" for item in self.interactions)

    def as_dict(self) -> dict[str, Any]:
        return {"path": str(self.path), "out": None if self.out is None else str(self.out), "drifted": self.drifted,
                "interactions": [item.as_dict() for item in self.interactions]}  # fmt: skip


# --- the structural diff ---------------------------------------------------------------------------


def compare(old: Interaction, new: Interaction) -> list[Change]:
    """The structural differences between a recorded interaction and a fresh one for the same request."""
    if old.response is None or new.response is None:
        return []  # a failure on either side is not compared (check() reports it)
    before, after = old.response, new.response
    if before.status != after.status:
        changes = [Change("status", "", f"status {before.status} -> {after.status}", before.status, after.status)]
        if after.status >= 400:  # the request is now refused: what the API says instead is the news
            changes.append(_error_shape(after))
        return changes
    changes = _headers(before, after)
    old_events, new_events = before.events, after.events
    cut_short = getattr(before.end, "kind", None) == "client_closed"
    if cut_short:  # the app stopped reading: only what was read can be compared
        new_events = new_events[: len(old_events)]
    if old_events or new_events:
        changes += _events(old_events, new_events, partial=cut_short)
    else:
        changes += _body(before, after)
    return changes


def _headers(before: Response, after: Response) -> list[Change]:
    def names(response: Response) -> dict[str, str]:
        return {name.lower(): name for name, _ in response.headers if not _volatile(name)}

    old, new = names(before), names(after)
    changes = [
        Change("header_added", "", f"header appeared: {new[key]}", new=new[key]) for key in new if key not in old
    ]
    changes += [
        Change("header_removed", "", f"header vanished: {old[key]}", old=old[key]) for key in old if key not in new
    ]
    old_type, new_type = _media_type(before), _media_type(after)
    if old_type != new_type:
        changes.append(Change("header_changed", "", f"content-type {old_type or '(none)'} -> {new_type or '(none)'}",
                              old_type, new_type))  # fmt: skip
    return changes


def _volatile(name: str) -> bool:
    lowered = name.lower()
    return lowered in _VOLATILE or lowered.startswith(_VOLATILE_PREFIXES)


def _media_type(response: Response) -> str:
    return (response.header("content-type") or "").split(";")[0].strip().lower()


def _event_key(event: Any) -> str:
    """An event's type: its SSE name, else its JSON's ``type``; non-JSON data (``[DONE]``) is its own."""
    data = event.json
    name = event.event or "message"
    if name == "message" and isinstance(data, dict) and isinstance(data.get("type"), str):
        name = data["type"]
    if data is None and event.data.strip():
        text = event.data.strip()
        return f"{name} {text}" if len(text) <= 24 and " " not in text else f"{name} (text)"
    return name


def _collapsed(keys: Sequence[str]) -> list[str]:
    """Event types in order, runs of one type collapsed: ``delta`` x 40 is one ``delta``."""
    return [key for number, key in enumerate(keys) if number == 0 or keys[number - 1] != key]


def _events(old_events: Sequence[Any], new_events: Sequence[Any], *, partial: bool = False) -> list[Change]:
    old_keys, new_keys = [_event_key(e) for e in old_events], [_event_key(e) for e in new_events]
    changes: list[Change] = []
    old_set, new_set = dict.fromkeys(old_keys), dict.fromkeys(new_keys)
    for key in new_set:
        if key not in old_set:
            after = _neighbour(new_keys, key)
            where = f" (after {after})" if after else " (first)"
            changes.append(Change("event_added", key, f"event type added: {key}{where}", new=key))
    if not partial:
        changes += [Change("event_removed", key, f"event type vanished: {key}", old=key)
                    for key in old_set if key not in new_set]  # fmt: skip
    common = [key for key in old_set if key in new_set]
    old_order = _collapsed([k for k in old_keys if k in new_set])
    new_order = _collapsed([k for k in new_keys if k in old_set])
    if old_order != new_order and not partial:
        changes.append(Change("event_order", "", f"event order changed: {', '.join(old_order)} -> {', '.join(new_order)}",
                              old_order, new_order))  # fmt: skip
    for key in common:
        old_schema = _schema(e.json for e, k in zip(old_events, old_keys, strict=True) if k == key)
        new_schema = _schema(e.json for e, k in zip(new_events, new_keys, strict=True) if k == key)
        changes += _fields(key, old_schema, new_schema)
    return changes


def _neighbour(keys: Sequence[str], key: str) -> str | None:
    first = keys.index(key)
    return keys[first - 1] if first else None


def _body(before: Response, after: Response) -> list[Change]:
    """A response that is not a stream: its JSON body's fields (a body that stopped or started being
    JSON is one change)."""
    old, new = before.json, after.json
    if (old is None) != (new is None):
        what = "JSON" if old is not None else "not JSON"
        now = "JSON" if new is not None else "not JSON"
        return [Change("body", "body", f"body: {what} -> {now}", what, now)]
    if old is None:
        return []
    return _fields("body", _schema([old]), _schema([new]))


def _error_shape(response: Response) -> Change:
    """The fields of an error body, and its error type, in one line."""
    body = response.json
    schema = _schema([body]) if body is not None else {}
    leaves = list(dict.fromkeys(_base(path) for path, kinds in schema.items() if path and kinds != {"object"}))
    fields = ", ".join(leaves) or "(not JSON)"
    kind = body.get("error", {}).get("type") if isinstance(body, dict) and isinstance(body.get("error"), dict) else None
    label = f" {kind}" if isinstance(kind, str) else ""
    return Change("error_body", "body", f"error body{label}: {fields}", new={"type": kind, "fields": leaves})


# --- field schemas -----------------------------------------------------------------------------------

#: a path's JSON types: object, array, string, number, boolean, null
Schema = dict[str, set[str]]


def _schema(values: Iterable[Any]) -> Schema:
    """Every field path of the values with the JSON types it takes. An object with a string ``type``
    (a discriminated union: a ``delta`` of ``text_delta`` or ``input_json_delta``) has the type in its
    path, ``delta(text_delta).text``, so variants are compared with themselves; list items are
    ``path[]``."""
    schema: Schema = {}
    for value in values:
        for path, kind in _walk(value, "", ""):
            schema.setdefault(path, set()).add(kind)
    return schema


def _walk(value: Any, path: str, name: str) -> Iterator[tuple[str, str]]:
    if isinstance(value, dict):
        variant = value.get("type")
        if path and isinstance(variant, str) and variant != name and re.fullmatch(r"[\w.:-]{1,64}", variant):
            path = f"{path}({variant})"
        yield path, "object"
        for key, item in value.items():
            yield from _walk(item, f"{path}.{key}" if path else str(key), str(key))
    elif isinstance(value, list):
        yield path, "array"
        for item in value:
            yield from _walk(item, f"{path}[]", name)
    else:
        yield path, _json_type(value)


def _json_type(value: Any) -> str:
    if value is None:
        return "null"
    if isinstance(value, bool):
        return "boolean"
    if isinstance(value, (int, float)):
        return "number"
    return "string" if isinstance(value, str) else type(value).__name__


def _base(path: str) -> str:
    """A path without its variant markers: ``delta(text_delta).text`` -> ``delta.text``."""
    return re.sub(r"\([^()]*\)", "", path)


def _parent(path: str) -> str:
    """The object a path's field is in (``a.b(x).c`` -> ``a.b(x)``; ``a[]`` -> ``a``)."""
    if path.endswith("[]"):
        return path[:-2]
    if path.endswith(")"):  # a variant: its parent is the same object with no variant
        return path[: path.rindex("(")]
    return path.rpartition(".")[0]


def _types(kinds: set[str]) -> str:
    shown = sorted(kinds - {"null"}) or ["null"]
    return " or ".join(shown)


def _fields(where: str, old: Schema, new: Schema) -> list[Change]:
    """Fields added, removed, renamed and changed in type between two schemas of one event type. A
    field is added or removed only inside an object both sides have (a new object is one change, not
    one per field in it); a variant (``delta(citations_delta)``) that appears or vanishes is one change.
    ``null`` is compatible with every type (``stop_reason`` is null until the end)."""
    changes: list[Change] = []
    label = "body" if where == "body" else where

    def shown(path: str) -> str:
        return path or "(the whole value)"

    added = [p for p in new if p not in old and (_parent(p) in old or not p) and not _is_variant(p)]
    removed = [p for p in old if p not in new and (_parent(p) in new or not p) and not _is_variant(p)]
    # a field removed and one added in the same object, of the same type: renamed
    for gone in list(removed):
        twins = [p for p in added if _parent(p) == _parent(gone) and _types(new[p]) == _types(old[gone])]
        if len(twins) == 1 and sum(1 for p in removed if _parent(p) == _parent(gone)) == 1:
            came = twins[0]
            added.remove(came)
            removed.remove(gone)
            detail = f"{label}: field renamed: {shown(gone)} -> {shown(came)} ({_types(old[gone])})"
            changes.append(Change("field_renamed", where, detail, gone, came))
    changes += [
        Change("field_added", where, f"{label}: field added: {shown(p)} ({_types(new[p])})", new=p) for p in added
    ]
    changes += [Change("field_removed", where, f"{label}: field removed: {shown(p)} ({_types(old[p])})", old=p)
                for p in removed]  # fmt: skip
    for path in old:
        if path in new:
            before, after = old[path] - {"null"}, new[path] - {"null"}
            if before and after and before != after:
                changes.append(Change("field_type", where, f"{label}: field {shown(path)} changed type: {_types(old[path])} "
                                      f"-> {_types(new[path])}", _types(old[path]), _types(new[path])))  # fmt: skip
    seen_before = set(old) | {_parent(p) for p in old if _is_variant(p)}  # the objects old had, variants or not
    seen_after = set(new) | {_parent(p) for p in new if _is_variant(p)}
    for path in new:
        if path not in old and _is_variant(path) and _parent(path) in seen_before:
            detail = f"{label}: new variant {_variant(path)} of {_base(path) or where}"
            changes.append(Change("variant_added", where, detail, new=path))
    for path in old:
        if path not in new and _is_variant(path) and _parent(path) in seen_after:
            detail = f"{label}: variant {_variant(path)} of {_base(path) or where} no longer seen"
            changes.append(Change("variant_removed", where, detail, old=path))
    return changes


def _is_variant(path: str) -> bool:
    return path.endswith(")")


def _variant(path: str) -> str:
    return path[path.rindex("(") + 1 : -1]


# --- re-sending -------------------------------------------------------------------------------------


def drift_path(path: Path, out_dir: Path | None = None) -> Path:
    """Where the fresh answers of ``path`` go: ``NAME.drift.yaml`` beside it, or ``out_dir/NAME.yaml``."""
    if out_dir is not None:
        return out_dir / path.name
    return path.with_name(f"{path.stem}.drift{path.suffix or '.yaml'}")


def not_recheckable(item: Interaction) -> str | None:
    """Why an interaction is not re-sent (a real failure it captured), or ``None``."""
    if not real_failure(item):
        return None
    response = item.response
    if response is None:
        assert item.error is not None
        return f"a recorded connection failure before any response ({item.error.kind}): kept, never re-sent"
    if response.status >= 400:
        body = response.json
        error = body.get("error") if isinstance(body, dict) else None
        kind = f" {error['type']}" if isinstance(error, dict) and isinstance(error.get("type"), str) else ""
        return f"a recorded {response.status}{kind} response: a real failure, kept, never re-sent"
    events = len(response.events)
    return (f"a recorded stream cut mid-body ({getattr(response.end, 'kind', '?')} after {events} events): a real "
            "failure, kept, never re-sent")  # fmt: skip


def check(
    path: str | os.PathLike[str],
    *,
    base_url: str | None = None,
    out_dir: str | os.PathLike[str] | None = None,
    env: Mapping[str, str] | None = None,
    timeout: float = 60.0,
) -> CassetteDrift:
    """Re-send what ``path`` recorded, write the fresh answers beside it, and compare them. Raises
    ``CassetteError`` for a file that is not a cassette and ``ConfigError`` for what the run cannot do
    (no key, no HTTP client, an output that would overwrite the cassette)."""
    source = Path(path)
    cassette = Cassette.load(source)
    out = drift_path(source, Path(out_dir) if out_dir is not None else None)
    if out.resolve() == source.resolve():
        raise ConfigError(f"{out}: the fresh answers would overwrite the cassette itself; choose another --out")
    env = os.environ if env is None else env
    report: list[InteractionDrift] = []
    to_send: list[tuple[int, Interaction, str, list[tuple[str, str]]]] = []
    for index, item in enumerate(cassette.interactions):
        described = f"{item.request.method} {item.request.url}"
        why = not_recheckable(item)
        if why is not None:
            report.append(InteractionDrift(index, described, "not re-checkable", why))
            continue
        url, headers = _prepared(item, index, source, base_url, env)
        report.append(InteractionDrift(index, described, "pending"))
        to_send.append((index, item, url, headers))
    if not to_send:
        return CassetteDrift(source, None, report)
    fresh = _send(to_send, out, timeout)
    merged = list(cassette.interactions)
    by_index = {entry.index: entry for entry in report}
    for (index, old, url, _), new in zip(to_send, fresh, strict=True):
        merged[index] = new
        entry = by_index[index]
        trouble = _unusable(old, new, url)
        if trouble is not None:
            entry.state, entry.reason = "failed", trouble
            merged[index] = old  # nothing usable came back: the fresh file keeps the recording
            continue
        entry.changes = compare(old, new)
        entry.state = "drifted" if entry.changes else "same"
    out.parent.mkdir(parents=True, exist_ok=True)
    Cassette(merged, path=out).save(out)
    return CassetteDrift(source, out, report)


def _prepared(
    item: Interaction, index: int, source: Path, base_url: str | None, env: Mapping[str, str]
) -> tuple[str, list[tuple[str, str]]]:
    """The URL and headers to re-send ``item``'s request with: at ``base_url`` when given, and with the
    key from the provider's usual variable (a placeholder for a local server when it is unset)."""
    from .providers import provider_for

    request = item.request
    provider = provider_for(request.method, request.url, request.headers)
    url = _rebased(request.url, base_url) if base_url else request.url
    headers = [(name, value) for name, value in request.headers if name.lower() not in _NOT_RESENT]
    auth = _AUTH.get(provider.name)
    host = urlsplit(request.url).hostname or ""
    if not (provider.claims(request.method, request.url, request.headers) or (auth and host == auth[2])):
        return url, headers  # not a model API call of a known provider: no key goes anywhere it was not sent
    variables = provider.key_variables
    key = next((env[name] for name in variables if env.get(name)), None)
    live = base_url is None and host not in _LOOPBACK
    if live and auth is None:
        raise ConfigError(
            f"{source}: interaction #{index} is a {provider.name} request, which drift cannot sign for the live "
            "API; pass --base-url URL to re-send it to a local server"
        )
    if live and key is None:
        raise ConfigError(
            f"{source}: drift re-sends its requests to {urlsplit(request.url).netloc} with your key: set "
            f"{' or '.join(variables)} (it is sent, never written), or pass --base-url URL for a local server"
        )
    if auth is not None:
        name, form, _ = auth
        headers = [(k, v) for k, v in headers if k.lower() != name.lower()]
        headers.append((name, form.format(key=key or provider.placeholder_key)))
        if "key=REDACTED" in url and key:
            url = url.replace("key=REDACTED", f"key={key}")
    return url, headers


def _rebased(url: str, base_url: str) -> str:
    """``url``'s path and query under ``base_url`` (whose own path, if any, is a prefix)."""
    base = urlsplit(base_url)
    if base.scheme not in ("http", "https") or not base.netloc:
        raise ConfigError(f"--base-url {base_url!r} is not an http(s) URL; give one such as http://127.0.0.1:8080")
    parts = urlsplit(url)
    return urlunsplit((base.scheme, base.netloc, base.path.rstrip("/") + parts.path, parts.query, ""))


def _send(
    items: Sequence[tuple[int, Interaction, str, list[tuple[str, str]]]], out: Path, timeout: float
) -> list[Interaction]:
    """Send each request once through a recording tape (record mode ``all``, explicit transport:
    nothing in the process is patched) and return what it recorded, in order."""
    from .tape import Tape

    http, stack = _http_client()
    tape = Tape(out, record_mode="all", record_failures=True)
    tape.load()
    with http.Client(transport=tape.transport(stack=stack), timeout=timeout) as client:
        for _, item, url, headers in items:
            try:
                with client.stream(  # header values as recorded bytes: latin-1 text (``café``) is legal HTTP
                    item.request.method, url, headers=[(k.encode("latin-1"), v.encode("latin-1")) for k, v in headers],
                    content=item.request.body or None
                ) as resp:
                    for _chunk in resp.iter_raw():
                        pass
            except http.HTTPError:
                pass  # recorded as what happened; check() reports it
    recorded = tape.recorded
    if len(recorded) != len(items):
        raise ConfigError(f"{out}: {len(items)} requests were re-sent but {len(recorded)} were recorded")
    return recorded


def _http_client() -> tuple[Any, str]:
    """httpx2, else httpx: the client drift sends with, and the stack name its tape adapter has."""
    import importlib

    for name in ("httpx2", "httpx"):
        try:
            return importlib.import_module(name), name
        except ImportError:
            continue
    raise ConfigError("drift sends requests with httpx2 or httpx, and neither is installed: pip install httpx2")


def _unusable(old: Interaction, new: Interaction, url: str) -> str | None:
    """Why a fresh answer says nothing about drift: no connection, a refused key, a transient error."""
    where = urlsplit(url).netloc
    if new.response is None:
        error = new.error
        message = f": {error.message}" if error is not None and error.message else ""
        return f"no answer from {where} ({error.kind if error else 'error'}{message}); nothing was compared"
    status = new.response.status
    if status in (401, 403, 407):
        return (f"{where} refused the key ({status}); check the key variable (or the --base-url server); nothing was "
                "compared")  # fmt: skip
    if (status == 429 or status >= 500) and old.response is not None and old.response.status < 400:
        return f"{where} answered {status}, a transient error; try again later; nothing was compared"
    end = new.response.end
    if getattr(end, "kind", None) not in (None, "client_closed"):
        return f"the fresh answer from {where} was cut ({getattr(end, 'kind', '?')}); try again; nothing was compared"
    return None
