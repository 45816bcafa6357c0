"""Lenient decoding of header values and part bodies; nothing here raises.

The compat32 parser leaves RFC 2047 encoded-words, charsets and surrogate
escapes in place. These functions turn them into clean ``str`` values that
encode as UTF-8, replacing what does not decode with U+FFFD.
"""

from __future__ import annotations

import binascii
import codecs
import functools
import re

_ENCODED_WORD = re.compile(r"=\?([^?\s]{1,75})\?([bBqQ])\?([^?\s]*)\?=")
_FOLD = re.compile(r"\r?\n(?=[ \t])")
# Codecs that exist but do not decode text: they raise or unescape input.
_NOT_TEXT = frozenset(
    {"idna", "punycode", "undefined", "unicode-escape", "raw-unicode-escape"}
)

# Python codec names (codecs.lookup) of charsets in which an ASCII
# character is decoded only from its own single byte. Shift_JIS, GBK and
# Big5 use ASCII bytes inside two-byte characters, which decode to
# non-ASCII ones. ISO-2022 is left out because an escape sequence may sit
# between two ASCII characters.
_ASCII_KEEPING = re.compile(
    r"utf-8|ascii|iso8859-\d+|cp125\d|koi8-[ru]|shift_jis|cp932|euc_jp|euc_kr"
    r"|cp949|gb2312|gbk|gb18030|big5|cp950"
)


def decode_header(value: str) -> str:
    """Decode RFC 2047 encoded-words leniently and unfold continuation lines.

    White space between two adjacent encoded-words is dropped (RFC 2047
    section 6.2). A word that does not decode stays as written.
    """
    value = unfold(value)
    if "=?" not in value:
        return value.strip()
    pieces: list[str] = []
    position = 0
    after_word = False
    for match in _ENCODED_WORD.finditer(value):
        gap = value[position : match.start()]
        if not (after_word and (not gap or gap.isspace())):
            pieces.append(gap)
        pieces.append(_decode_word(match))
        position = match.end()
        after_word = True
    pieces.append(value[position:])
    return "".join(pieces).strip()


def _decode_word(match: re.Match[str]) -> str:
    charset, encoding, text = match.groups()
    data = text.encode("ascii", "replace")
    try:
        if encoding in "bB":
            decoded = binascii.a2b_base64(data + b"=" * (-len(data) % 4))
        else:
            decoded = binascii.a2b_qp(data, header=True)
    except binascii.Error:
        return match.group(0)
    return decode_bytes(decoded, charset)


def decode_bytes(data: bytes, charset: str) -> str:
    """Decode ``data`` in ``charset``, falling back to UTF-8; never raises."""
    codec = _text_codec(charset)
    try:
        return data.decode(codec, "replace")
    except (LookupError, ValueError):
        return data.decode("utf-8", "replace")


@functools.lru_cache(maxsize=256)
def _text_codec(charset: str) -> str:
    """Return the Python codec for a MIME charset name, or utf-8 if unknown.

    An RFC 2231 language suffix (``utf-8*en``) is ignored.
    """
    name = charset.partition("*")[0].strip().strip('"').lower()
    try:
        info = codecs.lookup(name)
    except (LookupError, ValueError):
        return "utf-8"
    if info.name in _NOT_TEXT or not getattr(info, "_is_text_encoding", True):
        return "utf-8"
    return info.name


def keeps_ascii(charset: str) -> bool:
    """Tell whether ``charset`` decodes ASCII characters only from ASCII bytes.

    For such a charset a decoded text contains an ASCII string only when
    its bytes do. Only common charsets are listed, so it returns False
    for others, such as UTF-7, UTF-16 and EBCDIC code pages.
    """
    return _ASCII_KEEPING.fullmatch(_text_codec(charset)) is not None


def repair(value: str) -> str:
    """Turn the parser's surrogate escapes back into UTF-8, U+FFFD if invalid.

    The parser reads header bytes as ASCII with ``surrogateescape``, and
    such surrogates make sqlite3 and PostgreSQL drivers raise later.
    """
    if value.isascii():
        return value
    data = value.encode("utf-8", "surrogateescape")
    return data.decode("utf-8", "replace")


def unfold(value: str) -> str:
    """Join a header's continuation lines, keeping their leading white space."""
    return _FOLD.sub("", value) if "\n" in value else value
