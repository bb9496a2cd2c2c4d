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
An AWS event stream is cleaned frame by frame (header texts, payload, the base64 ``bytes`` of an
``invoke-with-response-stream`` payload) and each changed frame is encoded again with valid CRCs.
Without knowing them it also removes a credential query parameter's value, a URL's password and
the token after ``Bearer``/``Basic`` wherever they are quoted.
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
        "apikey",  # Supabase, many gateways
        "x-key",
        "x-token",
        "token",
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
    "-token",  # x-api-token, x-service-token, x-vault-token...
    "-client-secret",
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
        "x-goog-api-key",
        "access-token",
        "accesstoken",
        "session_token",
        "refresh_token",
        "id_token",
        "private_token",  # GitLab
        "secret",
        "signature",
        "subscription-key",  # Azure API Management
        "jwt",
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
    # hex keys and signatures (32, 40, 64... hex digits, letters and digits both, one case, a word alone)
    r"|(?=[0-9a-f]{0,63}[a-f])(?=[0-9a-f]{0,63}[0-9])[0-9a-f]{32,}(?![A-Za-z0-9_\-])"
    r"|(?=[0-9A-F]{0,63}[A-F])(?=[0-9A-F]{0,63}[0-9])[0-9A-F]{32,}(?![A-Za-z0-9_\-])"
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
    """Whether a header of this name holds a credential (any casing; ``_`` and ``-`` alike)."""
    name = name.strip().lower()
    if name in _EXTRA_HEADERS:
        return True
    name = name.replace("_", "-")
    return name in SECRET_HEADERS or name in _EXTRA_HEADERS or name.endswith(SECRET_HEADER_SUFFIXES)


def is_secret_param(name: str) -> bool:
    """Whether a query parameter of this name holds a credential (any casing and escaping; ``_`` and ``-`` alike)."""
    name = unquote(name).strip().lower()
    return any(form in SECRET_PARAMS or form in _EXTRA_PARAMS for form in (name, name.replace("-", "_"), name.replace("_", "-")))


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
                plain = unquote(value)
                self.learn(value, plain)
                if "/" in plain:  # X-Amz-Credential: AKIA.../DATE/REGION/SERVICE/aws4_request
                    self.learn(plain.split("/")[0])
        self.learn(*_userinfo_secrets(url))

    # --- removing it -----------------------------------------------------------------------------

    def text(self, value: str) -> str:
        return _replace(value, self._spans(str, value), REDACTED)

    def body(self, value: bytes) -> bytes:
        return _replace(value, self._spans(bytes, value), REDACTED.encode())

    def headers(self, headers: Iterable[tuple[str, str]]) -> tuple[tuple[str, str], ...]:
        """Credential headers dropped (their values learned first: a ``Set-Cookie`` or an organisation id
        the body repeats), every other value cleaned."""
        headers = tuple(headers)
        self.learn_headers(headers)
        return tuple((name, self.text(value)) for name, value in headers if not is_secret_header(name))

    def request(self, request: Request) -> Request:
        body = self._parsed_json(self.body(request.body))
        return replace(request, url=self.text(request.url), headers=self.headers(request.headers), body=body)

    def response(self, response: Response) -> Response:
        from .wire import Cut

        self.learn_headers(response.headers)  # a Set-Cookie value, an organisation id
        if _is_event_stream(response.headers):
            body, edits = self._event_stream(response.body)
        else:
            spans = self._spans(bytes, response.body)
            body = _replace(response.body, spans, REDACTED.encode())
            edits = [(start, end, len(REDACTED)) for start, end in spans]
        headers = self.headers(response.headers)
        timing = response.timing
        if edits:
            timing = _shift_timing(response.timing, edits)
            headers = _adjust_length(headers, len(body) - len(response.body))
        end = self.cut(response.end) if isinstance(response.end, Cut) else response.end
        return replace(response, headers=headers, body=body, timing=timing, reason=self.text(response.reason), end=end)

    def cut(self, cut: Cut) -> Cut:
        return cut if cut.message is None else replace(cut, message=self.text(cut.message))

    def interaction(self, item: Interaction) -> Interaction:
        """The exchange with every secret removed from every string that reaches a cassette."""
        recorded = item.recorded
        if item.response is not None:
            response = self.response(item.response)  # first: it may teach values the request repeats
            item = replace(item, request=self.request(item.request), response=response)
        else:
            assert item.error is not None
            item = replace(item, request=self.request(item.request), error=self.cut(item.error))
        if recorded is not None:  # the SDK's name and version come from the request's headers
            cleaned = [None if value is None else self.text(value) for value in (recorded.sdk, recorded.stack)]
            if cleaned != [recorded.sdk, recorded.stack]:
                item = replace(item, recorded=replace(recorded, sdk=cleaned[0], stack=cleaned[1]))
        return item

    # --- machinery -------------------------------------------------------------------------------

    def _pattern(self, kind: type) -> Any:
        """One regex for the known values, each in any of its encoded forms. Built when first needed."""
        key = f"_pattern_{kind.__name__}"
        pattern = self.__dict__.get(key)
        if pattern is None:
            source = "|".join(map(_encoded_forms, self.secrets))
            pattern = re.compile(source.encode("utf-8") if kind is bytes else source)
            self.__dict__[key] = pattern
        return pattern

    def _spans(self, kind: type, value: Any) -> list[tuple[int, int]]:
        """Where ``value`` holds something to replace, in order, never overlapping."""
        raw = value if kind is bytes else value.encode("utf-8", "surrogatepass")
        if not _may_be_escaped(raw, self._triggers) or not self._escaped_in(raw):
            # the common cases, by memchr-speed search instead of a regex (whose compiling costs
            # milliseconds per known value): nothing is escaped, or nothing known hides in what is
            return self._raw_spans(value)
        return self._regex_spans(kind, value)

    def _escaped_in(self, value: bytes) -> bool:
        """Whether a known value may be in ``value`` escaped: found once its URL and JSON escapes are
        undone, in the orders ``_encoded_forms`` allows (URL, then JSON, then URL again). A cheap
        superset of what the regex finds, so the regex runs only where it can find something. A ``+``
        may stand for a space or for itself, so both sides read every ``+`` as a space."""
        if not self._values:
            return False
        text = value.decode("utf-8", "replace")
        once = unquote(text)
        twice = _json_unescaped(once)
        forms = [form.replace("+", " ") for form in (once, twice, unquote(twice), _json_unescaped(text))]
        return any(secret.replace("+", " ") in form for secret in self.secrets for form in forms)

    def _regex_spans(self, kind: type, value: Any) -> list[tuple[int, int]]:
        found = _unknown_spans(value)
        if self._values:
            found += _match_spans(self._pattern(kind), value)
        return _leftmost_longest(found)

    def _raw_spans(self, value: Any) -> list[tuple[int, int]]:
        """``_spans`` for a text or body in which no secret can be escaped: each value found as it is."""
        found = _unknown_spans(value)
        for secret in self.secrets:
            raw: Any = secret.encode("utf-8") if isinstance(value, bytes) else secret
            start = value.find(raw)
            while start >= 0:
                found.append((start, start + len(raw)))
                start = value.find(raw, start + 1)
        return _leftmost_longest(found)

    @property
    def _triggers(self) -> tuple[bytes, ...]:
        """What an escaped spelling of a known value would have to contain."""
        chars = "".join(self._values)
        triggers = [b"\\u"]
        triggers += [form for char, form in (("/", b"\\/"), ("\\", b"\\\\"), ('"', b'\\"'), (" ", b"+")) if char in chars]
        return tuple(triggers)

    def _event_stream(self, body: bytes) -> tuple[bytes, list[tuple[int, int, int]]]:
        """An AWS event stream cleaned frame by frame: a frame's header texts, its payload and the text a
        ``{"bytes": "<base64>"}`` payload carries, then the frame encoded again (lengths and both CRCs
        recomputed, so it still decodes). What is not a valid frame (a bad CRC, the incomplete frame a
        cut body ends with) is masked in place at its own length, keeping every frame boundary.
        Returns the body and its edits: ``(start, end, new length)``, in order."""
        from .framing.eventstream import FrameError, decode_frame, encode_frame, frame_spans

        out: list[bytes] = []
        edits: list[tuple[int, int, int]] = []
        end = 0
        for start, end in frame_spans(body):
            frame = body[start:end]
            try:
                decoded = decode_frame(frame)
                headers = [(name, self._header_value(value)) for name, value in decoded.headers]
                payload = self._frame_payload(decoded.payload)
                new = frame if (headers == list(decoded.headers) and payload == decoded.payload) \
                    else encode_frame(headers, payload)  # fmt: skip
            except FrameError:
                new = self._masked(frame)
            out.append(new)
            if new != frame:
                edits += [(start + a, start + b, size) for a, b, size in _frame_edits(frame, new)]
        if end < len(body):
            tail = self._masked(body[end:])
            out.append(tail)
            edits += [(end + a, end + b, b - a) for a, b in self._spans(bytes, body[end:])]
        return b"".join(out), edits

    def _masked(self, data: bytes) -> bytes:
        """``data`` with each secret overwritten at its own length (``REDACTEDREDA``...)."""
        out, last = [], 0
        for start, end in self._spans(bytes, data):
            out += [data[last:start], (REDACTED.encode() * (1 + (end - start) // len(REDACTED)))[: end - start]]
            last = end
        out.append(data[last:])
        return b"".join(out)

    def _header_value(self, value: Any) -> Any:
        if isinstance(value, str):
            return self.text(value)
        if isinstance(value, bytes):
            return self.body(value)
        return value

    def _frame_payload(self, payload: bytes) -> bytes:
        """A frame's payload cleaned; in a ``{"bytes": "<base64>"}`` payload (``invoke-with-response-stream``)
        the model's event inside the base64 too, the payload's own layout kept."""
        out = self._parsed_json(self.body(payload))
        if b'"bytes"' not in out:
            return out
        try:
            value = json.loads(out)
            inner = base64.b64decode(value["bytes"], validate=True)
        except (ValueError, KeyError, TypeError, binascii.Error, RecursionError):
            return out
        cleaned = self._parsed_json(self.body(inner))
        if cleaned == inner:
            return out
        encoded = base64.b64encode(cleaned).decode("ascii")
        old = value["bytes"].encode("ascii")
        if out.count(old) == 1:
            return out.replace(old, encoded.encode("ascii"))
        return json.dumps({**value, "bytes": encoded}, separators=(",", ":"), ensure_ascii=False).encode("utf-8")

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


def _leftmost_longest(found: list[tuple[int, int]]) -> list[tuple[int, int]]:
    found.sort(key=lambda span: (span[0], span[0] - span[1]))
    spans: list[tuple[int, int]] = []
    for span in found:
        if not spans or span[0] >= spans[-1][1]:
            spans.append(span)
    return spans


def _unknown_spans(value: Any) -> list[tuple[int, int]]:
    """What is a credential without being known: a credential query parameter's value, a URL's
    password, the token after ``Bearer``/``Basic``. Each regex runs only where a substring search
    says it can match (a regex over a whole body is far slower than ``in``)."""
    text = isinstance(value, str)
    found: list[tuple[int, int]] = []
    if ("=" if text else b"=") in value:
        found += _match_spans(_query_pattern(text), value)
    if ("@" if text else b"@") in value:
        found += _match_spans(_UNKNOWN_PATTERNS["userinfo", text], value)
    lowered = value.lower()
    if ("bearer" if text else b"bearer") in lowered or ("basic" if text else b"basic") in lowered:
        found += _match_spans(_UNKNOWN_PATTERNS["scheme", text], value)
    return found


_QUERY_PATTERNS: dict[tuple[frozenset[str], bool], Any] = {}


def _query_pattern(text: bool) -> Any:
    extra = frozenset(_EXTRA_PARAMS)
    pattern = _QUERY_PATTERNS.get((extra, text))
    if pattern is None:
        names = {*SECRET_PARAMS, *extra}
        names = names | {n.replace("_", "-") for n in names} | {n.replace("-", "_") for n in names}
        ordered = sorted(names, key=len, reverse=True)
        source = rf"""[?&#;](?i:{"|".join(map(re.escape, ordered))})=(?P<v>[^&#;\s"'<>\\]+)"""
        pattern = _QUERY_PATTERNS[extra, text] = re.compile(source if text else source.encode("utf-8"))
    return pattern


def _match_spans(pattern: Any, value: Any) -> list[tuple[int, int]]:
    spans = []
    for match in pattern.finditer(value):
        group = match.lastgroup or 0  # a named group (``v``, ``u``, ``b``): the secret part of the match
        span = match.span(group)
        if value[span[0] : span[1]] not in (REDACTED, REDACTED.encode()):
            spans.append(span)
    return spans


_PERCENT_ESCAPE = re.compile(rb"%[0-9A-Fa-f]{2}")
#: the password of a URL's ``user:password@`` (a proxy URL, a database URL in an error text)
_USERINFO = r"""://[^/\s:@"'<>\\]*:(?P<u>[^@/\s"'<>\\]+)(?=@)"""
#: the token after ``Bearer`` or ``Basic`` anywhere (an error text quoting a header below the SDK, a
#: proxy's own ``Proxy-Authorization`` the recorder never saw): 16 or more token characters, not a word
_SCHEME_TOKEN = r"""(?i:\b(?:bearer|basic)[ \t]+)(?P<b>(?=[A-Za-z0-9._~+/\-]*[0-9._~+/=\-])[A-Za-z0-9._~+/\-]{16,}=*)"""


_UNKNOWN_PATTERNS = {
    (name, text): re.compile(source if text else source.encode("utf-8"))
    for name, source in (("userinfo", _USERINFO), ("scheme", _SCHEME_TOKEN))
    for text in (True, False)
}


_PROXY_ENVIRONMENT = ("HTTP_PROXY", "HTTPS_PROXY", "ALL_PROXY", "http_proxy", "https_proxy", "all_proxy")


def _userinfo_secrets(url: str) -> list[str]:
    """A URL's ``user:password`` and its password, raw and unescaped."""
    match = re.search(_USERINFO, url)
    if match is None:
        return []
    userinfo = url[match.start() + 3 : match.end()]
    password = match.group("u")
    if password == REDACTED:
        return []
    return [userinfo, unquote(userinfo), password, unquote(password)]


_JSON_CODE = re.compile(r"\\[uU]([0-9A-Fa-f]{4})")
_JSON_CHAR = re.compile(r"\\([/\"\\])")


def _json_unescaped(text: str) -> str:
    """``text`` with its JSON escapes read as characters, generously: every ``\\uXXXX`` (even one after
    an escaped backslash, as the regex of ``_encoded_forms`` finds it), then ``\\/``, ``\\"``, ``\\\\``."""
    text = _JSON_CODE.sub(lambda m: chr(int(m.group(1), 16)), text)
    return _JSON_CHAR.sub(lambda m: m.group(1), text)


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


_NOT_SECRET_PARAMS = {"uri", "realm", "algorithm", "qop", "nc", "signedheaders"}


def _basic_credentials(token: str) -> list[str]:
    try:
        decoded = base64.b64decode(token, validate=True).decode("utf-8")
    except (binascii.Error, UnicodeDecodeError, ValueError):
        return []
    user, _, password = decoded.partition(":")
    return [decoded, user, password]  # a key may be either (``KEY:`` or ``KEY:X``); short ones are not learned


def _query_pairs(url: str) -> Iterator[tuple[str, str]]:
    query = url.partition("?")[2].partition("#")[0]
    for part in query.split("&"):
        name, sep, value = part.partition("=")
        if sep and value:
            yield name, value


def _encoded_forms(secret: str) -> str:
    """A regex matching ``secret`` with any of its characters written as JSON or URL escapes, or
    those nested once (URL-escaped twice, a JSON escape URL-escaped, a URL escape JSON-escaped).
    Each character's forms are grouped by their first character, which keeps the search fast."""
    parts = []
    for char in secret:
        code = ord(char)
        first, *rest = char.encode("utf-8")
        after_backslash = [rf"u(?i:{code:04x})"] if code < 0x10000 else []
        after_backslash.append(rf"u0025(?i:{first:02x})" + "".join(rf"\\u0025(?i:{b:02x})" for b in rest))
        after_percent = [
            rf"(?i:{first:02x})" + "".join(rf"%(?i:{b:02x})" for b in rest),
            rf"25(?i:{first:02x})" + "".join(rf"%25(?i:{b:02x})" for b in rest),  # URL-escaped twice
        ]
        if code < 0x10000:
            after_percent.append(rf"5[cC]u(?i:{code:04x})")  # a JSON escape, URL-escaped
        if char in '/"\\':
            after_backslash.append(re.escape(char))  # \/ \" \\\\
        forms = [re.escape(char), rf"\\(?:{'|'.join(after_backslash)})", f"%(?:{'|'.join(after_percent)})"]
        if char == " ":
            forms.append(r"\+")
        parts.append(f"(?:{'|'.join(forms)})")
    return "".join(parts)


def _shift_timing(
    timing: tuple[tuple[float, int], ...], edits: list[tuple[int, int, int]]
) -> tuple[tuple[float, int], ...]:
    """Chunk sizes after each edit ``(start, end, new length)`` replaced ``[start, end)``: each chunk
    boundary moves with the text before it; one inside an edit keeps its place in a replacement of the
    same length (a frame's prelude, its CRC) and moves to the end of any other (a secret)."""
    shifted, offset, index, moved = [], 0, 0, 0
    new_end_prev = 0
    for at, size in timing:
        offset += size  # the chunk's old end
        while index < len(edits) and edits[index][1] <= offset:
            moved += edits[index][2] - (edits[index][1] - edits[index][0])
            index += 1
        if index < len(edits) and edits[index][0] < offset:  # inside an edit
            start, end, length = edits[index]
            new_end = start + moved + (offset - start if length == end - start else length)
        else:
            new_end = offset + moved
        if new_end > new_end_prev:
            shifted.append((at, new_end - new_end_prev))
            new_end_prev = new_end
    return tuple(shifted)


def _frame_edits(old: bytes, new: bytes) -> list[tuple[int, int, int]]:
    """``old`` -> ``new`` (one event-stream frame encoded again) as edits: the prelude, the changed middle
    of the headers and payload, the message CRC."""
    middle_old, middle_new = old[12:-4], new[12:-4]
    limit = min(len(middle_old), len(middle_new))
    prefix = 0
    while prefix < limit and middle_old[prefix] == middle_new[prefix]:
        prefix += 1
    suffix = 0
    while suffix < limit - prefix and middle_old[-1 - suffix] == middle_new[-1 - suffix]:
        suffix += 1
    edits = [(0, 12, 12)]
    if len(middle_old) - suffix > prefix or len(middle_new) - suffix > prefix:
        edits.append((12 + prefix, 12 + len(middle_old) - suffix, len(middle_new) - prefix - suffix))
    edits.append((len(old) - 4, len(old), 4))
    return edits


def _is_event_stream(headers: Iterable[tuple[str, str]]) -> bool:
    from .framing import stream_framer

    framer = stream_framer(headers)
    return framer is not None and framer.name == "eventstream"


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
    values = [
        value
        for name, value in os.environ.items()
        if value
        and (
            name in KEY_ENVIRONMENT
            or (name.upper().endswith(_ENVIRONMENT_SUFFIXES) and len(value.strip()) >= _MIN_GUESSED_LENGTH)
        )
    ]
    for name in _PROXY_ENVIRONMENT:  # a proxy's password: it may be repeated in an error text
        values += _userinfo_secrets(os.environ.get(name, ""))
    return values


def assigned_values(text: str) -> list[str]:
    """Values assigned to credential-like names in ``text`` (``api_key=...``), for ``lint``."""
    return [match.group(1) for match in _ASSIGNED.finditer(text) if REDACTED not in match.group(1)]


# --- finding what was missed (lint) ----------------------------------------------------------------


def _unescaped(text: str) -> str:
    """``text`` with JSON and URL escapes undone, so a key written as ``\\u0073k-...`` is seen."""
    if "\\" in text:
        text = re.sub(r"\\u([0-9a-fA-F]{4})", lambda m: chr(int(m[1], 16)), text).replace("\\/", "/")
    return unquote(text) if "%" in text else text


_HEX = re.compile(r"[0-9a-fA-F]+")
#: headers whose hex values are ids, not keys
_ID_HEADER = re.compile(r"(?i:[^']*(?:trace|request|etag|ray|hash|digest|correlation|span|version)[^']*|[^']*id(?:-2)?)$")


def _event_texts(body: bytes) -> list[str]:
    """The texts inside an AWS event stream's frames: header values, each payload, and the text of a
    ``{"bytes": "<base64>"}`` payload (stored decoded in the cassette, so not found in the raw body)."""
    from .framing.eventstream import FrameError, decode_frame, frame_spans

    texts: list[str] = []
    for start, end in frame_spans(body):
        try:
            frame = decode_frame(body[start:end], check=False)
        except FrameError:
            continue
        texts += [value for _, value in frame.headers if isinstance(value, str)]
        texts.append(frame.payload.decode("utf-8", "replace"))
        if b'"bytes"' in frame.payload:
            try:
                inner = base64.b64decode(json.loads(frame.payload)["bytes"], validate=True)
            except (ValueError, KeyError, TypeError, binascii.Error, RecursionError):
                continue
            texts.append(inner.decode("utf-8", "replace"))
    return texts


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
                plain = unquote(value)
                found += [(f"the URL's query parameter {name!r} holds a credential", v)
                          for v in (plain, plain.split("/")[0]) if len(v) >= MIN_SECRET_LENGTH]  # fmt: skip
        found += [("the URL holds a password (user:password@)", v) for v in _userinfo_secrets(url)]
        kept = [(f"header {n!r}", v) for n, v in headers if not is_secret_header(n)]  # the rest are dropped whole
        ids = {v for n, v in headers if _ID_HEADER.match(n) and not is_secret_header(n)}
        texts = [("URL", url), *kept, ("body", body.decode("utf-8", "replace"))]
        if side == "response" and item.response is not None and _is_event_stream(item.response.headers):
            texts += [("event-stream frame", text) for text in _event_texts(body)]
        texts += [("error message", message) for message in messages]
        for where, text in texts:
            if not text:
                continue
            for form in {text, _unescaped(text)}:
                for match in KEY_SHAPES.finditer(form):
                    if form in ids and _HEX.fullmatch(match.group()) \
                            and form.strip().removeprefix("W/").strip('"').startswith(match.group()):  # fmt: skip
                        continue  # the whole value of a request id, trace id or ETag header: hex, not a key
                    found.append((f"the {side} {where} holds something shaped like an API key", match.group()))
                for value in assigned_values(form):
                    found.append((f"the {side} {where} assigns a credential-like name", value))
                for value in known:
                    if value in form:
                        found.append((f"the {side} {where} holds the value of an API key variable", value))
    recorded = item.recorded.sdk if item.recorded is not None else None
    for form in {recorded, _unescaped(recorded)} if recorded else ():
        found += [("the recorded SDK holds something shaped like an API key", m.group()) for m in KEY_SHAPES.finditer(form)]
        found += [("the recorded SDK holds the value of an API key variable", v) for v in known if v in form]
    unique: dict[tuple[str, str | None], None] = dict.fromkeys(found)
    return list(unique)
