"""What never reaches disk: credentials, in every place and every encoding they can appear in.

One ``Redactor`` handles one exchange, and everything a cassette stores passes through it (the
recorder calls ``interaction()`` on each recorded exchange; ``streamtape lint --fix`` calls the same
method with what it found). It knows three kinds of secret:

- **by name**: credential-like headers (``SECRET_HEADERS``, and names ending in one of
  ``SECRET_HEADER_SUFFIXES``) are dropped, and credential-like query parameters (``SECRET_PARAMS``)
  keep their name with the value ``REDACTED``;
- **by value**: every value seen in those headers and parameters (the bearer token, a Basic
  header's decoded password, each cookie, an organisation id), the API keys in the environment
  (``KEY_ENVIRONMENT`` and any variable named ``*_API_KEY``, ``*_TOKEN``, ``*_SECRET``...), and the
  user's own ``secrets=``. A value is replaced by ``REDACTED`` wherever it appears: URL, headers,
  request and response bodies, stream events, error messages. It is found raw and in the forms JSON
  and URLs give it (``\\u0073k-ant-...``, ``%73k-ant-...``, ``\\/``), character by character;
- **by shape**: ``KEY_SHAPES`` (provider API key formats) is what ``lint`` looks for in a cassette
  written before a value was known.

Redaction keeps a cassette consistent: JSON stays valid (a secret is replaced inside its string),
chunk sizes still add up to the body, and a ``Content-Length`` header is adjusted by the same amount.
The lists are documented in docs/recording.md; ``add_secret_headers`` and ``add_secret_params``
extend them for the whole process.
"""

from __future__ import annotations

import base64
import binascii
import json
import os
import re
from collections.abc import Iterable, Iterator
from dataclasses import replace
from typing import TYPE_CHECKING, Any
from urllib.parse import unquote

if TYPE_CHECKING:
    from .cassette import Interaction, Request, Response
    from .wire import Cut

__all__ = [
    "KEY_ENVIRONMENT",
    "KEY_SHAPES",
    "REDACTED",
    "SECRET_HEADERS",
    "SECRET_HEADER_SUFFIXES",
    "SECRET_PARAMS",
    "Redactor",
    "add_secret_headers",
    "add_secret_params",
    "is_secret_header",
    "is_secret_param",
    "scan",
]

REDACTED = "REDACTED"

#: Headers that are never stored (compared in lower case).
SECRET_HEADERS: frozenset[str] = frozenset(
    {
        "authorization",
        "proxy-authorization",
        "cookie",
        "set-cookie",
        "set-cookie2",
        # Anthropic, OpenAI, Azure
        "x-api-key",
        "api-key",
        "anthropic-organization-id",
        "openai-organization",
        "openai-project",
        "ocp-apim-subscription-key",
        # Google
        "x-goog-api-key",
        "x-goog-user-project",
        # AWS (SigV4 travels in authorization; a session token beside it)
        "x-amz-security-token",
        # gateways and proxies
        "x-auth-token",
        "x-access-token",
        "x-functions-key",
        "private-token",
        "helicone-auth",
        "cf-aig-authorization",
        "x-portkey-api-key",
        "x-litellm-api-key",
        "x-csrf-token",
        "x-xsrf-token",
    }
)
#: Header names ending in one of these are credentials too (``x-mycompany-api-key``).
SECRET_HEADER_SUFFIXES: tuple[str, ...] = (
    "-api-key",
    "-apikey",
    "-auth-token",
    "-access-token",
    "-session-token",
    "-secret",
    "-password",
    "-authorization",
    "-subscription-key",
)
#: Query parameters whose value is a credential (compared in lower case).
SECRET_PARAMS: frozenset[str] = frozenset(
    {
        "key",  # Gemini / Google APIs
        "api_key",
        "api-key",
        "apikey",
        "access_token",
        "auth",
        "auth_token",
        "token",
        "client_secret",
        "password",
        "code",  # Azure Functions
        "sig",  # Azure SAS
        "x-amz-signature",
        "x-amz-credential",
        "x-amz-security-token",
        "x-goog-signature",
        "x-goog-credential",
    }
)
#: Environment variables whose value is removed wherever it appears, besides ``*_API_KEY`` and the like.
KEY_ENVIRONMENT: tuple[str, ...] = (
    "ANTHROPIC_API_KEY",
    "ANTHROPIC_AUTH_TOKEN",
    "OPENAI_API_KEY",
    "GEMINI_API_KEY",
    "GOOGLE_API_KEY",
    "AWS_ACCESS_KEY_ID",  # not a secret alone, but it names the account: never written either
    "AWS_SECRET_ACCESS_KEY",
    "AWS_SESSION_TOKEN",
    "AWS_BEARER_TOKEN_BEDROCK",
    "AZURE_OPENAI_API_KEY",
)
_ENVIRONMENT_SUFFIXES = ("_API_KEY", "_APIKEY", "_AUTH_TOKEN", "_ACCESS_TOKEN", "_SECRET", "_SECRET_KEY", "_TOKEN")

#: Provider API key formats, for finding keys whose value was never known (``lint``).
KEY_SHAPES = re.compile(
    r"(?<![A-Za-z0-9_\-])(?:"
    r"sk-ant-[A-Za-z0-9_\-]{10,}"  # Anthropic
    r"|sk-(?:proj-|svcacct-|admin-|or-v1-)?[A-Za-z0-9_\-]{20,}"  # OpenAI, OpenRouter
    r"|AIza[0-9A-Za-z_\-]{30,}"  # Google
    r"|(?:AKIA|ASIA)[0-9A-Z]{16}"  # AWS access key id
    r"|gsk_[A-Za-z0-9]{30,}"  # Groq
    r"|xai-[A-Za-z0-9]{30,}"  # xAI
    r"|hf_[A-Za-z0-9]{30,}"  # Hugging Face
    r"|gh[pousr]_[A-Za-z0-9]{30,}"  # GitHub
    r"|xox[abprs]-[A-Za-z0-9\-]{10,}"  # Slack
    r"|eyJ[A-Za-z0-9_\-]{8,}\.eyJ[A-Za-z0-9_\-]{8,}\.[A-Za-z0-9_\-]{8,}"  # a JWT
    r"|(?i:bearer|basic|token|apikey|api-key)[ \t]+[A-Za-z0-9._~+/=\-]{16,}"
    r")"
)
#: ``api_key=...``, ``"secret": "..."``, ``password: ...``: a credential assigned in text.
_ASSIGNED = re.compile(
    r"""(?i)(?<![A-Za-z0-9_\-])(?:api[_-]?key|apikey|secret|(?:client|secret)[_-](?:secret|key)|password|passwd"""
    r"""|(?:access|auth|refresh|session)[_-]token|private[_-]key)["']?\s*[:=]\s*["']?"""
    r"""([A-Za-z0-9._~+/\-]{16,})"""
)
MIN_SECRET_LENGTH = 8  # a credential value shorter than this is not removed elsewhere: it would hit ordinary words
MIN_USER_SECRET_LENGTH = 4  # what a user lists in ``secrets=`` is removed from this length up
_EXTRA_HEADERS: set[str] = set()
_EXTRA_PARAMS: set[str] = set()


def add_secret_headers(*names: str) -> None:
    """Treat these headers as credentials too, in this process (``conftest.py`` is a good place)."""
    _EXTRA_HEADERS.update(name.lower() for name in names)


def add_secret_params(*names: str) -> None:
    """Treat these query parameters as credentials too, in this process."""
    _EXTRA_PARAMS.update(name.lower() for name in names)


def is_secret_header(name: str) -> bool:
    name = name.lower()
    return name in SECRET_HEADERS or name in _EXTRA_HEADERS or name.endswith(SECRET_HEADER_SUFFIXES)


def is_secret_param(name: str) -> bool:
    name = unquote(name).lower()
    return name in SECRET_PARAMS or name in _EXTRA_PARAMS


class Redactor:
    """Removes secrets from one exchange. ``request_headers`` and ``url`` teach it the request's own
    credentials; ``extra_secrets`` adds known values (the user's ``secrets=``, what ``lint`` found)."""

    def __init__(
        self,
        request_headers: Iterable[tuple[str, str]] = (),
        *,
        url: str = "",
        extra_secrets: Iterable[str] = (),
        environment: bool = True,
    ) -> None:
        self._values: set[str] = set()
        self.learn_headers(request_headers)
        self.learn_url(url)
        self.learn(*extra_secrets, minimum=MIN_USER_SECRET_LENGTH)
        if environment:
            self.learn(*_environment_keys())

    # --- what it knows ---------------------------------------------------------------------------

    @property
    def secrets(self) -> list[str]:
        """The known secret values, longest first."""
        return sorted(self._values, key=len, reverse=True)

    def learn(self, *values: str, minimum: int = MIN_SECRET_LENGTH) -> None:
        """Remove these values wherever they appear (each also without surrounding whitespace).
        Values shorter than ``minimum`` are not secrets: they would redact ordinary words."""
        before = len(self._values)
        for value in values:
            for form in (value, value.strip()):
                if len(form) >= minimum and form != REDACTED:
                    self._values.add(form)
        if len(self._values) != before:
            for key in ("_pattern_str", "_pattern_bytes"):
                self.__dict__.pop(key, None)

    def learn_headers(self, headers: Iterable[tuple[str, str]]) -> None:
        for name, value in headers:
            if is_secret_header(name):
                self.learn(*_credential_values(name, value))

    def learn_url(self, url: str) -> None:
        for name, value in _query_pairs(url):
            if is_secret_param(name):
                self.learn(value, unquote(value))

    # --- removing it -----------------------------------------------------------------------------

    def text(self, value: str) -> str:
        return _replace(value, self._spans(str, value), REDACTED)

    def body(self, value: bytes) -> bytes:
        return _replace(value, self._spans(bytes, value), REDACTED.encode())

    def headers(self, headers: Iterable[tuple[str, str]]) -> tuple[tuple[str, str], ...]:
        """Credential headers dropped, every other value cleaned."""
        return tuple((name, self.text(value)) for name, value in headers if not is_secret_header(name))

    def request(self, request: Request) -> Request:
        body = self._parsed_json(self.body(request.body))
        return replace(request, url=self.text(request.url), headers=self.headers(request.headers), body=body)

    def response(self, response: Response) -> Response:
        from .wire import Cut

        self.learn_headers(response.headers)  # a Set-Cookie value, an organisation id
        spans = self._spans(bytes, response.body)
        body = _replace(response.body, spans, REDACTED.encode())
        headers = self.headers(response.headers)
        timing = response.timing
        if spans:
            timing = _shift_timing(response.timing, spans)
            headers = _adjust_length(headers, len(body) - len(response.body))
        end = self.cut(response.end) if isinstance(response.end, Cut) else response.end
        return replace(response, headers=headers, body=body, timing=timing, reason=self.text(response.reason), end=end)

    def cut(self, cut: Cut) -> Cut:
        return cut if cut.message is None else replace(cut, message=self.text(cut.message))

    def interaction(self, item: Interaction) -> Interaction:
        """The exchange with every secret removed from every string that reaches a cassette."""
        if item.response is not None:
            response = self.response(item.response)  # first: it may teach values the request repeats
            return replace(item, request=self.request(item.request), response=response)
        assert item.error is not None
        return replace(item, request=self.request(item.request), error=self.cut(item.error))

    # --- machinery -------------------------------------------------------------------------------

    def _pattern(self, kind: type, *, values: bool = True) -> Any:
        """One regex for everything to replace: a credential query parameter's value (group ``v``),
        or (``values``) a known value in any of its encoded forms. Built when first needed."""
        key = f"_pattern_{kind.__name__}" + ("" if values else "_query")
        pattern = self.__dict__.get(key)
        if pattern is None:
            names = sorted({*SECRET_PARAMS, *_EXTRA_PARAMS}, key=len, reverse=True)
            source = rf"""[?&](?i:{'|'.join(map(re.escape, names))})=(?P<v>[^&#\s"'<>\\]+)"""
            if values and self._values:
                source += "|" + "|".join(map(_encoded_forms, self.secrets))
            pattern = re.compile(source.encode("utf-8") if kind is bytes else source)
            self.__dict__[key] = pattern
        return pattern

    def _spans(self, kind: type, value: Any) -> list[tuple[int, int]]:
        """Where ``value`` holds something to replace, in order, never overlapping."""
        if kind is bytes and self._values and not _may_be_escaped(value, self._triggers):
            return self._raw_spans(value)  # the common case, by memchr-speed search instead of a regex
        return _match_spans(self._pattern(kind), value)

    def _raw_spans(self, value: bytes) -> list[tuple[int, int]]:
        """``_spans`` for a body in which no secret can be escaped: each value found as it is."""
        found = _match_spans(self._pattern(bytes, values=False), value) if b"=" in value else []
        for secret in self.secrets:
            raw = secret.encode("utf-8")
            start = value.find(raw)
            while start >= 0:
                found.append((start, start + len(raw)))
                start = value.find(raw, start + 1)
        found.sort(key=lambda span: (span[0], span[0] - span[1]))  # leftmost, then longest, as the regex
        spans: list[tuple[int, int]] = []
        for span in found:
            if not spans or span[0] >= spans[-1][1]:
                spans.append(span)
        return spans

    @property
    def _triggers(self) -> tuple[bytes, ...]:
        """What an escaped spelling of a known value would have to contain."""
        chars = "".join(self._values)
        triggers = [b"\\u"]
        triggers += [form for char, form in (("/", b"\\/"), ("\\", b"\\\\"), ('"', b'\\"'), (" ", b"+")) if char in chars]
        return tuple(triggers)

    def _parsed_json(self, body: bytes) -> bytes:
        """After unescaping: a JSON body whose parsed strings still hold a secret (an encoding the
        pattern does not know) is written back from the cleaned parse."""
        if not self._values or body.lstrip()[:1] not in (b"{", b"["):
            return body
        try:
            parsed = json.loads(body)
        except (ValueError, RecursionError):
            return body
        cleaned = _walk_strings(parsed, self.text)
        if cleaned == parsed:
            return body
        return json.dumps(cleaned, separators=(",", ":"), ensure_ascii=False).encode("utf-8")


def _match_spans(pattern: Any, value: Any) -> list[tuple[int, int]]:
    spans = []
    for match in pattern.finditer(value):
        span = match.span("v") if match.start("v") >= 0 else match.span()
        if value[span[0] : span[1]] not in (REDACTED, REDACTED.encode()):
            spans.append(span)
    return spans


_PERCENT_ESCAPE = re.compile(rb"%[0-9A-Fa-f]{2}")


def _may_be_escaped(value: bytes, triggers: tuple[bytes, ...]) -> bool:
    return any(trigger in value for trigger in triggers) or _PERCENT_ESCAPE.search(value) is not None


def _replace(value: Any, spans: list[tuple[int, int]], replacement: Any) -> Any:
    if not spans:
        return value
    out, last = [], 0
    for start, end in spans:
        out += [value[last:start], replacement]
        last = end
    out.append(value[last:])
    return value[:0].join(out)


def _credential_values(name: str, value: str) -> list[str]:
    """Every secret a credential header's value holds, in the forms it can be repeated in."""
    values = [value]
    name = name.lower()
    if name in ("cookie", "set-cookie", "set-cookie2"):
        first = value.split(";")[0] if name != "cookie" else value
        for part in first.split(";"):
            values.append(part.partition("=")[2].strip().strip('"'))
        return values
    parts = value.split(None, 1)  # any scheme, any whitespace: "Bearer  k", "Digest\tk", "ApiKey k"
    rest = parts[1].strip() if len(parts) == 2 else ""
    if rest:
        values.append(rest)
        if parts[0].lower() == "basic":
            values += _basic_credentials(rest)
        elif "=" in rest:  # Digest / SigV4 style: name=value, name="value"
            for param, param_value in re.findall(r'([A-Za-z0-9_-]+)\s*=\s*"?([^",\s]+)"?', rest):
                if param.lower() not in _NOT_SECRET_PARAMS:
                    values.append(param_value)
                if param.lower() == "credential":  # SigV4: AKIA.../DATE/REGION/SERVICE/aws4_request
                    values.append(param_value.split("/")[0])  # the access key id, wherever it appears alone
    return values


_NOT_SECRET_PARAMS = {"uri", "realm", "algorithm", "qop", "nc", "signedheaders", "username"}


def _basic_credentials(token: str) -> list[str]:
    try:
        decoded = base64.b64decode(token, validate=True).decode("utf-8")
    except (binascii.Error, UnicodeDecodeError, ValueError):
        return []
    user, _, password = decoded.partition(":")
    return [decoded, password] if password else [decoded, user]


def _query_pairs(url: str) -> Iterator[tuple[str, str]]:
    query = url.partition("?")[2].partition("#")[0]
    for part in query.split("&"):
        name, sep, value = part.partition("=")
        if sep and value:
            yield name, value


def _encoded_forms(secret: str) -> str:
    """A regex matching ``secret`` with any of its characters written as JSON or URL escapes."""
    parts = []
    for char in secret:
        code = ord(char)
        forms = [re.escape(char)]
        if code < 0x10000:
            forms.append(rf"\\u(?i:{code:04x})")
        forms.append("".join(f"%(?i:{byte:02x})" for byte in char.encode("utf-8")))
        if char == "/":
            forms.append(r"\\/")
        elif char == "\\":
            forms.append(r"\\\\")
        elif char == '"':
            forms.append(r'\\"')
        elif char == " ":
            forms.append(r"\+")
        parts.append(f"(?:{'|'.join(forms)})")
    return "".join(parts)


def _shift_timing(timing: tuple[tuple[float, int], ...], spans: list[tuple[int, int]]) -> tuple[tuple[float, int], ...]:
    """Chunk sizes after the ``spans`` were replaced by REDACTED: each chunk boundary moves with the
    text before it (a boundary inside a secret moves to the end of its replacement)."""
    delta = len(REDACTED)
    shifted, offset, index, moved = [], 0, 0, 0
    new_end_prev = 0
    for at, size in timing:
        offset += size  # the chunk's old end
        while index < len(spans) and spans[index][1] <= offset:
            moved += delta - (spans[index][1] - spans[index][0])
            index += 1
        if index < len(spans) and spans[index][0] < offset:  # inside a secret: after its replacement
            start, end = spans[index]
            new_end = start + moved + delta
        else:
            new_end = offset + moved
        if new_end > new_end_prev:
            shifted.append((at, new_end - new_end_prev))
            new_end_prev = new_end
    return tuple(shifted)


def _adjust_length(headers: tuple[tuple[str, str], ...], change: int) -> tuple[tuple[str, str], ...]:
    out = []
    for name, value in headers:
        if name.lower() == "content-length" and value.strip().isdigit():
            value = str(int(value) + change)
        out.append((name, value))
    return tuple(out)


def _walk_strings(value: Any, clean: Any) -> Any:
    if isinstance(value, str):
        return clean(value)
    if isinstance(value, list):
        return [_walk_strings(item, clean) for item in value]
    if isinstance(value, dict):
        return {clean(key): _walk_strings(item, clean) for key, item in value.items()}
    return value


_MIN_GUESSED_LENGTH = 16  # a variable only named like a credential: its value must look like a key too


def _environment_keys() -> list[str]:
    """The provider key variables' values, and those of variables named like credentials whose value
    is long enough to be one (``DJANGO_SECRET=development`` must not redact the word everywhere)."""
    return [
        value
        for name, value in os.environ.items()
        if value
        and (
            name in KEY_ENVIRONMENT
            or (name.upper().endswith(_ENVIRONMENT_SUFFIXES) and len(value.strip()) >= _MIN_GUESSED_LENGTH)
        )
    ]


def assigned_values(text: str) -> list[str]:
    """Values assigned to credential-like names in ``text`` (``api_key=...``), for ``lint``."""
    return [match.group(1) for match in _ASSIGNED.finditer(text) if REDACTED not in match.group(1)]


# --- finding what was missed (lint) ----------------------------------------------------------------


def _unescaped(text: str) -> str:
    """``text`` with JSON and URL escapes undone, so a key written as ``\\u0073k-...`` is seen."""
    if "\\" in text:
        text = re.sub(r"\\u([0-9a-fA-F]{4})", lambda m: chr(int(m[1], 16)), text).replace("\\/", "/")
    return unquote(text) if "%" in text else text


def scan(item: Interaction, redactor: Redactor | None = None) -> list[tuple[str, str | None]]:
    """What in ``item`` looks like a secret: ``(description, value)`` pairs, ``value`` being what
    ``--fix`` should remove (``None`` for a header, which is dropped by name). ``redactor`` adds the
    values it knows (the environment's keys)."""
    from .wire import Cut

    found: list[tuple[str, str | None]] = []
    sides: list[tuple[str, Any, str, bytes, list[str]]] = [
        ("request", item.request.headers, item.request.url, item.request.body, [])
    ]
    if item.response is not None:
        end = item.response.end
        messages = [end.message] if isinstance(end, Cut) and end.message else []
        sides.append(("response", item.response.headers, "", item.response.body, messages))
    elif item.error is not None and item.error.message:
        sides[0][4].append(item.error.message)
    known = redactor.secrets if redactor is not None else []
    for side, headers, url, body, messages in sides:
        for name, value in headers:
            if is_secret_header(name):
                found.append((f"{side} header {name!r} must not be stored", None))
                found += [(f"{side} header {name!r} value", v) for v in _credential_values(name, value)[1:]]
        for name, value in _query_pairs(url):
            if is_secret_param(name) and value != REDACTED:
                found.append((f"the URL's query parameter {name!r} holds a credential", value))
        kept = [(f"header {n!r}", v) for n, v in headers if not is_secret_header(n)]  # the rest are dropped whole
        texts = [("URL", url), *kept, ("body", body.decode("utf-8", "replace"))]
        texts += [("error message", message) for message in messages]
        for where, text in texts:
            if not text:
                continue
            for form in {text, _unescaped(text)}:
                for match in KEY_SHAPES.finditer(form):
                    found.append((f"the {side} {where} holds something shaped like an API key", match.group()))
                for value in assigned_values(form):
                    found.append((f"the {side} {where} assigns a credential-like name", value))
                for value in known:
                    if value in form:
                        found.append((f"the {side} {where} holds the value of an API key variable", value))
    unique: dict[tuple[str, str | None], None] = dict.fromkeys(found)
    return list(unique)
