"""Event-stream bodies <-> readable cassette entries, losslessly (``encoding: eventstream``).

An AWS event-stream body (``streamtape.framing.eventstream``) is binary: as escaped text it would be
unreadable. A cassette holds it instead as one entry per frame, decoded::

    - headers:
        ':event-type': contentBlockDelta
        ':content-type': application/json
        ':message-type': event
      payload: '{"contentBlockIndex":0,"delta":{"text":"Hello"},"p":"abcdefghij"}'

and encodes the frames again on load: lengths and both CRCs are recomputed, which gives the recorded
bytes back because a frame whose CRCs were valid is exactly its encoding. What else an entry holds:

- ``bytes`` (and ``p``) instead of ``payload``, for ``invoke-with-response-stream``'s
  ``{"bytes":"<base64>"}`` payloads: the base64 decoded, so the model's own JSON reads as itself;
- ``payload_base64`` for a payload that is not text;
- header values that are not text: ``true``/``false``, or ``{int32: 5}``, ``{int64: ...}``,
  ``{int8: ...}``, ``{int16: ...}``, ``{timestamp: MILLISECONDS}``, ``{uuid: ...}``, ``{bytes: BASE64}``;
- ``raw`` (base64) with a ``note`` for what is kept as it was: a frame whose CRC did not match, one
  that does not decode, and the incomplete frame a cut body ends with.

``entries`` only chooses a readable form it has proved: each frame's entry encodes back to its bytes.
"""

from __future__ import annotations

import base64
import binascii
import json
import uuid
from collections.abc import Callable
from typing import Any

from ._bodytext import is_plain_text
from .framing.eventstream import KINDS, Frame, FrameError, HeaderValue, Typed, decode_frame, encode_frame, frame_spans

__all__ = ["ENCODING", "body_of", "entries"]

ENCODING = "eventstream"
_KEYS = ("headers", "payload", "bytes", "p", "payload_base64", "raw", "note")
Fail = Callable[[str, str], BaseException]


# --- body -> entries -------------------------------------------------------------------------------


def entries(body: bytes) -> list[dict[str, Any]]:
    """One entry per frame, then one ``raw`` entry for what follows the last complete frame."""
    out: list[dict[str, Any]] = []
    end = 0
    for start, end in frame_spans(body):
        out.append(_entry(body[start:end]))
    if end < len(body):
        out.append(_raw(body[end:], "an incomplete frame: the body ends inside it"))
    return out


def _entry(frame: bytes) -> dict[str, Any]:
    try:
        decoded = decode_frame(frame)
    except FrameError as exc:
        return _raw(frame, f"kept as recorded: {exc}")
    headers = _headers_out(decoded)
    if headers is None:
        return _raw(frame, "kept as recorded: its headers repeat a name or hold text a cassette cannot show")
    entry: dict[str, Any] = {"headers": headers} if headers else {}
    entry.update(_payload_out(decoded.payload))
    if _encode(entry) != frame:  # never: every encoding is canonical; kept as recorded if it were not
        return _raw(frame, "kept as recorded: it does not encode back to its bytes")
    return entry


def _raw(data: bytes, note: str) -> dict[str, Any]:
    return {"raw": base64.b64encode(data).decode("ascii"), "note": note}


def _headers_out(frame: Frame) -> dict[str, Any] | None:
    out: dict[str, Any] = {}
    for name, value in frame.headers:
        if name in out or is_plain_text(name.encode()) is None or "\n" in name:
            return None
        if isinstance(value, str) and is_plain_text(value.encode()) is None:
            return None
        out[name] = _value_out(value)
    return out


def _value_out(value: HeaderValue) -> Any:
    if isinstance(value, (str, bool)):
        return value
    if isinstance(value, bytes):
        return {"bytes": base64.b64encode(value).decode("ascii")}
    assert isinstance(value, Typed)
    if value.kind == "uuid":
        assert isinstance(value.value, bytes)
        return {"uuid": str(uuid.UUID(bytes=value.value))}
    return {value.kind: value.value}


def _payload_out(payload: bytes) -> dict[str, Any]:
    if not payload:
        return {}
    inner = _bytes_form(payload)
    if inner is not None:
        return inner
    text = is_plain_text(payload)
    if text is not None:
        return {"payload": text}
    return {"payload_base64": base64.b64encode(payload).decode("ascii")}


def _bytes_form(payload: bytes) -> dict[str, Any] | None:
    """``{"bytes": <the decoded text>}`` (and ``p``) for a ``{"bytes":"<base64>"}`` payload whose
    base64 is canonical and holds text, when writing it back gives the same bytes."""
    if not payload.startswith(b'{"bytes":'):
        return None
    try:
        value = json.loads(payload)
        raw = base64.b64decode(value["bytes"], validate=True)
    except (ValueError, KeyError, TypeError, binascii.Error):
        return None
    text = is_plain_text(raw)
    if text is None or set(value) - {"bytes", "p"} or not isinstance(value.get("p", ""), str):
        return None
    form = {"bytes": text, **({"p": value["p"]} if "p" in value else {})}
    return form if _payload_in(form) == payload else None


# --- entries -> body -------------------------------------------------------------------------------


def body_of(items: Any, place: str, fail: Fail) -> bytes:
    """The body the entries at ``place`` encode; ``fail(place, message)`` makes the error to raise."""
    if not isinstance(items, list):
        raise fail(place, "expected a list of frames (encoding: eventstream)")
    return b"".join(_frame_in(item, f"{place}[{index}]", fail) for index, item in enumerate(items))


def _encode(entry: dict[str, Any]) -> bytes:
    return _frame_in(entry, "", _not_expected)


def _not_expected(place: str, message: str) -> BaseException:
    return FrameError(message)


def _frame_in(item: Any, place: str, fail: Fail) -> bytes:
    if not isinstance(item, dict):
        raise fail(place, "expected a frame: a mapping with 'headers' and 'payload', or 'raw'")
    unknown = [key for key in item if key not in _KEYS]
    if unknown:
        raise fail(f"{place}.{_key(unknown[0])}", f"unknown field; a frame has {', '.join(_KEYS)}")
    if "raw" in item:
        extra = [key for key in item if key not in ("raw", "note")]
        if extra:
            raise fail(
                f"{place}.{_key(extra[0])}", "a raw frame holds only 'raw' (and a 'note'): its bytes as recorded"
            )
        return _base64(item["raw"], f"{place}.raw", fail)
    forms = [key for key in ("payload", "bytes", "payload_base64") if key in item]
    if len(forms) > 1:
        raise fail(f"{place}.{forms[1]}", f"give the payload once: as 'payload', 'bytes' or 'payload_base64', "
                                          f"not also '{forms[0]}'")  # fmt: skip
    if "p" in item and "bytes" not in item:
        raise fail(f"{place}.p", "'p' (padding) goes with 'bytes'; in a 'payload' it is part of the text")
    headers = _headers_in(item.get("headers", {}), f"{place}.headers", fail)
    payload = _payload_in(item, place, fail)
    try:
        return encode_frame(headers, payload)
    except FrameError as exc:
        raise fail(f"{place}.headers", str(exc)) from None


def _headers_in(raw: Any, place: str, fail: Fail) -> list[tuple[str, HeaderValue]]:
    if raw is None:
        return []
    if not isinstance(raw, dict):
        raise fail(place, "expected a mapping of header names to values")
    return [
        (_header_name(name, place, fail), _value_in(value, f"{place}.{_key(name)}", fail))
        for name, value in raw.items()
    ]


def _key(key: Any) -> str:
    """A mapping key as an error's place shows it: as it is, or quoted when it is not printable text."""
    return key if isinstance(key, str) and key.isprintable() and key else repr(key)[:60]


def _header_name(name: Any, place: str, fail: Fail) -> str:
    if not isinstance(name, str):  # an unquoted 5, true or null: not what the frame's header was named
        raise fail(place, f"the header name {_key(name)} is not text; quote it if that is its name")
    return name


def _value_in(value: Any, place: str, fail: Fail) -> HeaderValue:
    if isinstance(value, (str, bool)):
        return value
    if isinstance(value, (int, float)):
        raise fail(place, f"a number needs its type: {{int32: {value}}} (or int8, int16, int64, timestamp)")
    if not (isinstance(value, dict) and len(value) == 1):
        raise fail(place, f"expected text, true/false, or one of {{{', '.join(KINDS)}, bytes}}: value")
    ((kind, inner),) = value.items()
    if kind == "bytes":
        return _base64(inner, f"{place}.bytes", fail)
    if kind == "uuid":
        try:
            return Typed("uuid", uuid.UUID(str(inner)).bytes)
        except ValueError:
            raise fail(f"{place}.uuid", f"{inner!r} is not a UUID") from None
    if kind not in KINDS:
        raise fail(place, f"{kind!r} is not a header type; valid: {', '.join(KINDS)}, bytes")
    if isinstance(inner, bool) or not isinstance(inner, int):
        raise fail(f"{place}.{kind}", f"expected a whole number, found {inner!r}")
    return Typed(kind, inner)


def _payload_in(item: dict[str, Any], place: str = "", fail: Fail = _not_expected) -> bytes:
    if "payload" in item:
        return _text(item["payload"], f"{place}.payload", fail).encode("utf-8")
    if "payload_base64" in item:
        return _base64(item["payload_base64"], f"{place}.payload_base64", fail)
    if "bytes" in item:
        inner = base64.b64encode(_text(item["bytes"], f"{place}.bytes", fail).encode("utf-8")).decode("ascii")
        value = {"bytes": inner}
        if "p" in item:
            value["p"] = _text(item["p"], f"{place}.p", fail)
        return json.dumps(value, separators=(",", ":"), ensure_ascii=False).encode("utf-8")
    return b""


def _text(value: Any, place: str, fail: Fail) -> str:
    if not isinstance(value, str):
        raise fail(place, f"expected text, found {type(value).__name__}")
    return value


def _base64(value: Any, place: str, fail: Fail) -> bytes:
    try:
        return base64.b64decode(_text(value, place, fail), validate=True)
    except (binascii.Error, ValueError):
        raise fail(place, "not valid base64") from None
