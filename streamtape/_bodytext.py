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

import codecs
import re

__all__ = [
    "block", "decode_escaped", "encode_escaped", "is_plain", "is_plain_text", "literal_block", "plain_lines", "read_block",
]  # fmt: skip

# Characters a YAML literal block cannot hold verbatim: C0 controls except tab and LF, CR (folded
# into LF on load), DEL, C1 controls (U+0085 is a YAML line break), the Unicode line and paragraph
# separators, the BOM, non-characters, and lone surrogates (how surrogateescape spells a bad byte).
_NOT_LITERAL = re.compile("[\x00-\x08\x0b-\x1f\x7f-\x9f\u2028\u2029\ufeff\ufffe\uffff\ud800-\udfff]")
_ESCAPES = re.compile(r"\\(\\|r|x[0-9a-fA-F]{2})")


def is_plain_text(body: bytes) -> str | None:
    """The body as text if it can be written in ``text`` form, else ``None``."""
    return body.decode("utf-8") if is_plain(body) else None


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


# --- bytes: what the cassette writer and reader use (a 100,000-event body is 12 MB; no pass per line) --

_LITERAL_ASCII = bytes([9]) + bytes(range(0x20, 0x7F))  # what may stand anywhere in a line, in ASCII
_HIGH = bytes(range(0x80, 0x100))
# What a literal block cannot carry beyond ASCII, in UTF-8 (which never encodes a surrogate): C1
# controls, the line and paragraph separators, the BOM, U+FFFE and U+FFFF (as _NOT_LITERAL)
_NOT_LITERAL_UTF8 = re.compile(rb"\xc2[\x80-\x9f]|\xe2\x80[\xa8\xa9]|\xef(?:\xbb\xbf|\xbf[\xbe\xbf])")
_PIECE = 1 << 20  # what is copied at a time while checking


def is_plain(data: bytes, start: int = 0, end: int | None = None) -> bool:
    """Whether ``data[start:end]`` is UTF-8 text with no character a literal block cannot carry (what
    ``is_plain_text`` accepts), checked on the bytes."""
    return plain_lines(data, start, end) >= 0


def plain_lines(data: bytes, start: int = 0, end: int | None = None) -> int:
    """How many line feeds ``data[start:end]`` holds, or -1 when it is not what ``is_plain`` accepts.
    One ``translate`` pass deletes every byte that may stand anywhere in it, leaving the line feeds
    and any ASCII control character; text beyond ASCII is then decoded piece by piece (it must be
    UTF-8) and searched for the few characters it must not hold."""
    end = len(data) if end is None else end
    feeds = 0
    ascii_only = True
    for at in range(start, end, _PIECE):
        left = data[at : min(at + _PIECE, end)].translate(None, _LITERAL_ASCII)  # line feeds, controls, the rest
        rest = left.translate(None, b"\n")
        if rest:
            if rest.translate(None, _HIGH):
                return -1  # an ASCII control character
            ascii_only = False
        feeds += len(left) - len(rest)
    if ascii_only:
        return feeds
    decoder = codecs.getincrementaldecoder("utf-8")()
    try:
        for at in range(start, end, _PIECE):
            decoder.decode(data[at : min(at + _PIECE, end)])
        decoder.decode(b"", final=True)
    except UnicodeDecodeError:
        return -1
    return -1 if _NOT_LITERAL_UTF8.search(data, start, end) else feeds


def block(text: bytes, key_indent: int) -> tuple[list[bytes | memoryview], int]:
    """``text`` (UTF-8 that ``is_plain`` accepts: a body in text form, or escaped) as a YAML block
    scalar, what follows ``key:`` for a key at column ``key_indent``, in pieces to join; and how many
    line feeds they hold. As ``literal_block``, with whole-body passes: every line feed gets the
    indentation after it, then empty lines lose it again."""
    size = len(text)
    trailing = 0
    while trailing < size and text[size - 1 - trailing] == 10:
        trailing += 1
    if trailing == size:  # empty, or nothing but line feeds: a double-quoted scalar says it plainly
        return [b' "' + b"\\n" * trailing + b'"\n'], 1
    first = 0
    while text[first] == 10:
        first += 1
    chomp = b"-" if trailing == 0 else b"" if trailing == 1 else b"+"
    # the indentation indicator when the first line with content starts with white space
    indicator = b"2" if text[first] in (32, 9) else b""
    width = key_indent + 2
    pad = b" " * width
    lines = text.replace(b"\n", b"\n" + pad)
    feeds = (len(lines) - size) // width
    empty = b"\n" + pad + b"\n"
    if b"\n\n" in text:
        lines = lines.replace(empty, b"\n\n")
        if b"\n\n\n" in text:  # runs of empty lines: each pass fixes every other one
            while empty in lines:
                lines = lines.replace(empty, b"\n\n")
    pieces: list[bytes | memoryview] = [b" |" + indicator + chomp + b"\n"]
    if first == 0:
        pieces.append(pad)
    if trailing:
        pieces.append(memoryview(lines)[: len(lines) - width])  # not the indentation after the last feed
        return pieces, 1 + feeds
    pieces += [lines, b"\n"]
    return pieces, 2 + feeds


_BLOCK_ENDS: dict[int, re.Pattern[bytes]] = {}


def read_block(
    data: bytes, start: int, key_indent: int, indicated: bool, chomp: bytes
) -> tuple[bytes, int, int] | None:
    """The text of the literal block whose lines start at ``data[start]``, after the header ``key: |``
    of a key at column ``key_indent`` (``indicated``: the header says ``|2``; ``chomp``: ``-``, ``+``
    or nothing), as YAML reads it; with where the block ends and how many line feeds it holds.

    ``None`` when the block is in any other shape than the one ``block`` writes (then the YAML parser
    reads it, as the one authority): every line empty or indented by exactly the block's indentation,
    the line after it less indented and starting with a printable ASCII character (or the end of the
    text, after a line feed), the first line with content not starting with white space unless
    ``indicated``, no empty line last unless ``chomp`` keeps them, and only characters that
    ``is_plain`` accepts. Within that shape YAML's reading is exact: the block ends at the first line
    less indented than its content, each line loses its indentation (a line of nothing but the
    indentation is an empty line), and the chomping indicator decides the line feeds at the end."""
    width = key_indent + 2
    pad = b" " * width
    ends = _BLOCK_ENDS.get(width)
    if ends is None:
        ends = _BLOCK_ENDS.setdefault(width, re.compile(rb"\n(?!" + pad + rb"|\n)"))
    found = ends.search(data, start - 1)
    if found is None:
        end = len(data)
        if not data.endswith(b"\n"):
            return None
    else:
        end = after = found.start() + 1
        while after < len(data) and data[after] == 32:
            after += 1
        if not (after < len(data) and 0x21 <= data[after] <= 0x7E):
            return None  # white space only, a tab, or a character YAML may read as a line break
    first = start
    while first < end and data[first] == 10:
        first += 1
    if first >= end or data[first + width] == 10:
        return None  # no content, or a first content line of nothing but the indentation
    if not indicated and data[first + width] in (32, 9):
        return None  # YAML would take its white space as indentation
    stop = end
    if chomp != b"+":
        last = data.rfind(b"\n", start - 1, end - 1) + 1
        if end - 1 - last in (0, width):
            return None  # an empty line last, which this chomping drops: not the writer's
        stop = end if chomp == b"" else end - 1
    feeds = plain_lines(data, start, end)
    if feeds < 0:
        return None
    text = data[start + width if first == start else start : stop].replace(b"\n" + pad, b"\n")
    return text, end, feeds
