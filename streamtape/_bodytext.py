"""Body bytes <-> YAML literal-block text, losslessly.

Two forms, chosen per body:

- ``text``: the body is UTF-8 with LF line ends and only characters a YAML literal block carries
  verbatim, so the block *is* the body: an SSE stream reads as its own event text, one line per line.
- ``escaped``: anything else (CR or CRLF line ends, invalid UTF-8, control characters, a cut inside a
  multi-byte character). Still one line per LF, with three escapes: ``\\\\`` for a backslash, ``\\r`` for
  a carriage return, ``\\xHH`` for any other byte a literal block cannot carry.

The writer emits literal blocks itself (libyaml's emitter refuses them for trailing spaces, tabs and
emoji, silently switching to quoted one-line strings), with the chomping and indentation indicators
that make the load exact; ``cassette.save`` then loads the file back and checks every body.
"""

from __future__ import annotations

import re

__all__ = ["decode_escaped", "encode_escaped", "is_plain_text", "literal_block"]

# Characters a YAML literal block cannot hold verbatim: C0 controls except tab and LF, CR (folded
# into LF on load), DEL, C1 controls (U+0085 is a YAML line break), the Unicode line and paragraph
# separators, the BOM, non-characters, and lone surrogates (how surrogateescape spells a bad byte).
_NOT_LITERAL = re.compile("[\x00-\x08\x0b-\x1f\x7f-\x9f\u2028\u2029\ufeff\ufffe\uffff\ud800-\udfff]")
_ESCAPES = re.compile(r"\\(\\|r|x[0-9a-fA-F]{2})")


def is_plain_text(body: bytes) -> str | None:
    """The body as text if it can be written in ``text`` form, else ``None``."""
    try:
        text = body.decode("utf-8")
    except UnicodeDecodeError:
        return None
    return None if _NOT_LITERAL.search(text) else text


def encode_escaped(body: bytes) -> str:
    text = body.decode("utf-8", errors="surrogateescape").replace("\\", "\\\\")
    return _NOT_LITERAL.sub(_escape_char, text)


def _escape_char(match: re.Match[str]) -> str:
    char = match.group()
    if char == "\r":
        return "\\r"
    raw = char.encode("utf-8", errors="surrogateescape")
    return "".join(f"\\x{byte:02x}" for byte in raw)


def decode_escaped(text: str) -> bytes:
    """Inverse of ``encode_escaped``; unknown escapes are left as written."""
    parts: list[bytes] = []
    pos = 0
    for match in _ESCAPES.finditer(text):
        parts.append(text[pos : match.start()].encode("utf-8"))
        code = match.group(1)
        parts.append(b"\\" if code == "\\" else b"\r" if code == "r" else bytes([int(code[1:], 16)]))
        pos = match.end()
    parts.append(text[pos:].encode("utf-8"))
    return b"".join(parts)


def literal_block(text: str, key_indent: int) -> str:
    """``text`` as a YAML block scalar: what follows ``key:`` for a key at column ``key_indent``."""
    stripped = text.rstrip("\n")
    trailing = len(text) - len(stripped)
    if not stripped:
        # Empty, or nothing but line feeds: a double-quoted scalar says it plainly.
        return ' "' + "\\n" * trailing + '"\n'
    chomp = "-" if trailing == 0 else "" if trailing == 1 else "+"
    first_line = next(line for line in stripped.split("\n") if line)
    # An explicit indentation indicator when the content's first line starts with white space,
    # which would otherwise be read as (or rejected as) indentation.
    indicator = "2" if first_line[:1] in (" ", "\t") else ""
    pad = " " * (key_indent + 2)
    lines = "\n".join(pad + line if line else "" for line in stripped.split("\n"))
    return f" |{indicator}{chomp}\n{lines}" + "\n" * max(trailing, 1)
