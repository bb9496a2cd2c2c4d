"""What never reaches disk: credentials, cookies, organisation ids, and the API key wherever it appears.

Header secrets are dropped by name. The values of the request's credentials (and of the API key
environment variables) are then replaced by ``REDACTED`` anywhere else in the request: the URL, other
headers, the body.
"""

from __future__ import annotations

import os
from collections.abc import Iterable

__all__ = ["SECRET_HEADERS", "REDACTED", "Redactor"]

SECRET_HEADERS = frozenset(
    {
        "authorization",
        "proxy-authorization",
        "x-api-key",
        "api-key",
        "cookie",
        "set-cookie",
        "anthropic-organization-id",
        "openai-organization",
        "openai-project",
    }
)
REDACTED = "REDACTED"
_KEY_ENVIRONMENT = ("ANTHROPIC_API_KEY", "ANTHROPIC_AUTH_TOKEN", "OPENAI_API_KEY")
_MIN_SECRET_LENGTH = 8  # shorter values would redact ordinary words


class Redactor:
    """Removes secrets from one request/response exchange."""

    def __init__(self, request_headers: Iterable[tuple[str, str]], *, extra_secrets: Iterable[str] = ()) -> None:
        values = [*_credential_values(request_headers), *extra_secrets, *_environment_keys()]
        # longest first, so a key is never half-replaced by a shorter secret that it contains
        self.secrets = sorted({v for v in values if len(v) >= _MIN_SECRET_LENGTH}, key=len, reverse=True)

    def text(self, value: str) -> str:
        for secret in self.secrets:
            if secret in value:
                value = value.replace(secret, REDACTED)
        return value

    def body(self, value: bytes) -> bytes:
        for secret in self.secrets:
            raw = secret.encode("utf-8")
            if raw in value:
                value = value.replace(raw, REDACTED.encode())
        return value

    def headers(self, headers: Iterable[tuple[str, str]]) -> tuple[tuple[str, str], ...]:
        return tuple((name, self.text(value)) for name, value in headers if name.lower() not in SECRET_HEADERS)


def _credential_values(headers: Iterable[tuple[str, str]]) -> list[str]:
    values = []
    for name, value in headers:
        if name.lower() in ("authorization", "proxy-authorization", "x-api-key", "api-key"):
            scheme, _, token = value.partition(" ")
            secret = token if token and scheme.lower() in ("bearer", "basic", "token") else value
            # a key read from a file keeps its newline; the stack's error then quotes it without
            values += [secret, secret.strip()]
    return values


def _environment_keys() -> list[str]:
    return [os.environ[name] for name in _KEY_ENVIRONMENT if os.environ.get(name)]
