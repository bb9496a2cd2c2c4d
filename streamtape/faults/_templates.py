"""Faithful Anthropic error responses, from real ones (see tests/data/sse/SOURCES.md).

HTTP errors carry the API's JSON error body (``type``, ``error.type``, ``error.message``,
``request_id``) and its headers; an in-stream error is the API's ``event: error`` with its padding.
Request ids are made up, but shaped like the real ones, and numbered so two attempts differ.
"""

from __future__ import annotations

import json

__all__ = ["error_event_bytes", "error_headers", "error_body", "ERROR_TYPES"]

#: status -> (error.type, error.message), messages as the API sends them
ERROR_TYPES: dict[int, tuple[str, str]] = {
    400: ("invalid_request_error", "Your request was malformed or invalid."),
    401: ("authentication_error", "invalid x-api-key"),
    403: ("permission_error", "Your API key does not have permission to use the specified resource."),
    404: ("not_found_error", "The requested resource could not be found."),
    408: ("timeout_error", "Request timed out."),
    409: ("conflict_error", "Conflict."),
    413: ("request_too_large", "Request exceeds the maximum allowed number of bytes."),
    429: ("rate_limit_error", "This request would exceed your account's rate limit. Please try again later."),
    500: ("api_error", "Internal server error"),
    502: ("api_error", "Bad gateway"),
    503: ("api_error", "Service unavailable"),
    504: ("timeout_error", "Gateway timeout"),
    529: ("overloaded_error", "Overloaded"),
}

# The rate-limit headers a real 429 carries (anthropic-sdk-typescript#357), with its limits.
_RATE_LIMIT_HEADERS = (
    ("anthropic-ratelimit-requests-limit", "5"),
    ("anthropic-ratelimit-requests-remaining", "0"),
    ("anthropic-ratelimit-requests-reset", "2024-03-26T20:00:00Z"),
    ("anthropic-ratelimit-tokens-limit", "25000"),
    ("anthropic-ratelimit-tokens-remaining", "16000"),
    ("anthropic-ratelimit-tokens-reset", "2024-03-26T20:00:00Z"),
)

# Verbatim from a real stream (Helicone#4678): note the server's padding before the last brace.
_OVERLOADED_EVENT = (
    b'event: error\ndata: {"type":"error","error":{"details":null,"type":"overloaded_error",'
    b'"message":"Overloaded"}              }\n\n'
)


def request_id(number: int) -> str:
    return f"req_011CStreamtape{number:010d}"


def error_body(status: int, error_type: str | None, message: str | None, number: int) -> bytes:
    default_type, default_message = ERROR_TYPES.get(status, ("api_error", "Internal server error"))
    error = {"type": error_type or default_type, "message": message or default_message}
    return json.dumps(
        {"type": "error", "error": error, "request_id": request_id(number)}, separators=(",", ":")
    ).encode()


def error_headers(
    status: int,
    body: bytes,
    number: int,
    *,
    retry_after: float | None,
    retry_after_ms: float | None,
    should_retry: bool | None,
) -> tuple[tuple[str, str], ...]:
    headers = [
        ("content-type", "application/json"),
        ("content-length", str(len(body))),
        ("request-id", request_id(number)),
    ]
    if status == 429:
        headers += _RATE_LIMIT_HEADERS
    if retry_after is not None:
        headers.append(("retry-after", _number(retry_after)))
    if retry_after_ms is not None:
        headers.append(("retry-after-ms", _number(retry_after_ms)))
    if should_retry is not None:
        headers.append(("x-should-retry", "true" if should_retry else "false"))
    return tuple(headers)


def error_event_bytes(error_type: str, message: str | None) -> bytes:
    """An in-stream ``event: error``, as the API sends it."""
    if error_type == "overloaded_error" and message is None:
        return _OVERLOADED_EVENT
    error = {"details": None, "type": error_type, "message": message or ERROR_TYPES[529][1]}
    data = json.dumps({"type": "error", "error": error}, separators=(",", ":"))
    return f"event: error\ndata: {data[:-1]}              }}\n\n".encode()


def _number(value: float) -> str:
    return str(int(value)) if float(value).is_integer() else repr(float(value))
