"""Providers: what one model API says on the wire, so nothing else in streamtape knows it.

A fault that answers 429 must answer as the API would (its JSON body, its request id, its
rate-limit headers), an in-stream error must be the API's own bytes, ``lint`` checks a stream
against the API's event grammar, and ``inspect`` reads tokens and the stop reason where the API puts
them. A ``Provider`` supplies all of that for one API, and is chosen per request by
``provider_for(method, url, headers)``; a request no provider claims gets the fallback, Anthropic's
(what every request got before providers existed).

The registry also answers two questions about all providers at once: which requests are model API
calls (``api_requests()``, what faults shape when no ``when=`` is given), and which environment
variables an SDK reads its key from (``placeholder_keys()``, what a replay-only tape fills in).

A provider module imports no SDK or HTTP library: everything here is bytes and text.
"""

from __future__ import annotations

import re
from collections.abc import Iterable
from typing import Any

from ..errors import ConfigError
from .base import PLACEHOLDER_KEY, Headers, Provider

__all__ = ["PLACEHOLDER_KEY", "Headers", "Provider", "api_requests", "error_response", "fallback", "get",
           "placeholder_keys", "provider_for", "register", "registered", "unregister"]  # fmt: skip

_PROVIDERS: dict[str, Provider] = {}
_FALLBACK = "anthropic"


def register(provider: Provider, *, replace: bool = False) -> Provider:
    """Add ``provider``; a name already taken is refused unless ``replace=True``. Providers
    registered later are asked first, so your own wins over a built-in that claims the same request."""
    if not isinstance(provider, Provider) or not provider.name:
        raise ConfigError(f"providers: {provider!r} is not a Provider instance with a name")
    if provider.requests:
        try:
            re.compile(provider.requests)
        except re.error as exc:
            raise ConfigError(
                f"providers: {provider.name}.requests is not a valid regular expression ({exc})"
            ) from None
    _load_builtins()
    if provider.name in _PROVIDERS and not replace and _PROVIDERS[provider.name] is not provider:
        raise ConfigError(f"providers: a provider named {provider.name!r} is already registered; pass replace=True")
    _PROVIDERS.pop(provider.name, None)
    _PROVIDERS[provider.name] = provider
    return provider


def unregister(name: str) -> None:
    """Forget the provider ``name`` (tests that registered their own)."""
    _load_builtins()
    if name == _FALLBACK:
        raise ConfigError(f"providers: {name} is the fallback for requests no provider claims; it stays")
    if _PROVIDERS.pop(name, None) is None:
        raise ConfigError(f"providers: no provider named {name!r}; registered: {', '.join(_PROVIDERS)}")


def registered() -> tuple[Provider, ...]:
    _load_builtins()
    return tuple(_PROVIDERS.values())


def get(name: str) -> Provider:
    _load_builtins()
    try:
        return _PROVIDERS[name]
    except KeyError:
        raise ConfigError(f"providers: no provider named {name!r}; registered: {', '.join(_PROVIDERS)}") from None


def fallback() -> Provider:
    """The provider for requests no other claims: Anthropic's."""
    _load_builtins()
    return _PROVIDERS[_FALLBACK]


def provider_for(method: str, url: str, headers: Iterable[tuple[str, str]] = ()) -> Provider:
    """The provider whose formats answer this request: the last registered that claims it, else the fallback."""
    _load_builtins()
    pairs = tuple(headers)
    for provider in reversed(_PROVIDERS.values()):
        if provider.name != _FALLBACK and provider.claims(method, url, pairs):
            return provider
    return _PROVIDERS[_FALLBACK]


def api_requests() -> str:
    """One regular expression for every registered provider's model API calls (searched in
    ``"METHOD URL"``): what faults shape when no ``when=`` is given."""
    _load_builtins()
    patterns = tuple(p.requests for p in _PROVIDERS.values() if p.requests)
    if patterns != _UNION[0]:
        _UNION[:] = [patterns, "|".join(f"(?:{pattern})" for pattern in patterns) or "(?!)"]
    return _UNION[1]


def placeholder_keys() -> dict[str, str]:
    """Every registered provider's key variables, each with the placeholder a replay-only tape puts
    there while the variable is unset, in registration order."""
    _load_builtins()
    return {name: p.placeholder_key for p in _PROVIDERS.values() for name in p.key_variables}


def error_response(
    status: int, error_type: str | None, message: str, *, retry: bool = False, close: bool = False,
    provider: Provider | None = None,
) -> tuple[Headers, bytes]:  # fmt: skip
    """What streamtape answers itself (``serve``'s refusals, an unmatched request), in the shape of
    ``provider``'s errors (default: the fallback's), so the app's SDK reports ``message``."""
    return (provider or fallback()).harness_error(status, error_type, message, retry=retry, close=close)


_UNION: list[Any] = [(), "(?!)"]  # the patterns api_requests() last joined, and the joined pattern


def _load_builtins() -> None:
    if not _PROVIDERS:
        from .anthropic import ANTHROPIC
        from .bedrock import BEDROCK
        from .gemini import GEMINI
        from .generic import OTHER_MODEL_APIS
        from .openai import CHAT, RESPONSES

        _PROVIDERS[ANTHROPIC.name] = ANTHROPIC
        _PROVIDERS[OTHER_MODEL_APIS.name] = OTHER_MODEL_APIS
        _PROVIDERS[CHAT.name] = CHAT
        _PROVIDERS[RESPONSES.name] = RESPONSES
        _PROVIDERS[GEMINI.name] = GEMINI
        _PROVIDERS[BEDROCK.name] = BEDROCK
