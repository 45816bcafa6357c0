"""Bounded, exception-safe access to a parsed message.

Detectors never decode ``email`` objects themselves: they read headers,
addresses, parts and decoded text through ``ParsedMessage``, whose accessors
never raise on malformed input and stop at the limits in ``Limits``.

``parse`` runs the pre-scan in ``bounds`` and then CPython's parser with the
``compat32`` policy. On CPython 3.11 ``policy.default`` parses about five
times slower, and merely reading some malformed headers under it raises
``IndexError`` or ``AttributeError``. ``compat32`` stores header values as raw
strings, so this module decodes RFC 2047 words and charsets itself.
"""

from __future__ import annotations

import binascii
import codecs
import email.message
import email.parser
import email.policy
import email.utils
import functools
import re
from collections.abc import Iterator, Sequence
from dataclasses import dataclass, field

from watchdog.classify import bounds
from watchdog.config import Limits

Part = email.message.Message

_PARSER = email.parser.BytesParser(policy=email.policy.compat32)
_ENCODED_WORD = re.compile(r"=\?([^?\s]{1,75})\?([bBqQ])\?([^?\s]*)\?=")
_FOLD = re.compile(r"\r?\n(?=[ \t])")
# Codecs that exist but do not decode text: they raise or unescape input.
_NOT_TEXT = frozenset(
    {"idna", "punycode", "undefined", "unicode-escape", "raw-unicode-escape"}
)


@dataclass(frozen=True, slots=True)
class LimitHit:
    """A message that exceeded a bound; ``name`` is the Limits field."""

    name: str


@dataclass(slots=True)
class ParsedMessage:
    """A message parsed with the compat32 policy, read through safe accessors.

    ``defects`` lists the parser's defect class names and this module's own
    notes (``part_truncated``, ``address_unparsable:To`` ...), each once.
    """

    raw: bytes
    root: Part
    limits: Limits
    defects: list[str] = field(default_factory=list)
    # Keyed by id(); each entry keeps its part alive so the id is not reused.
    _header_cache: dict[int, tuple[Part, dict[str, list[str]]]] = field(
        default_factory=dict
    )

    def header(self, name: str, part: Part | None = None) -> str | None:
        """Return the first ``name`` header, RFC 2047-decoded, or None."""
        values = self._raw_headers(name, part)
        return decode_header(values[0]) if values else None

    def headers(self, name: str, part: Part | None = None) -> list[str]:
        """Return every ``name`` header, RFC 2047-decoded and unfolded."""
        return [decode_header(value) for value in self._raw_headers(name, part)]

    def raw_header(self, name: str, part: Part | None = None) -> str | None:
        """Return the first ``name`` header unfolded but not RFC 2047-decoded."""
        values = self._raw_headers(name, part)
        return _unfold(values[0]).strip() if values else None

    def addresses(self, name: str, part: Part | None = None) -> list[str]:
        """Return the addr-spec of each address in every ``name`` header.

        A header the address parser cannot read, such as one nesting
        hundreds of comments, gives an empty list and an
        ``address_unparsable`` defect.
        """
        values = [_unfold(value) for value in self._raw_headers(name, part)]
        try:
            pairs = email.utils.getaddresses(values)
        except (RecursionError, ValueError, IndexError):
            self.note(f"address_unparsable:{name}")
            return []
        return [address for _, address in pairs if address]

    def content_type(self, part: Part | None = None) -> str:
        """Return the lowercase ``type/subtype`` of ``part``, or text/plain."""
        source = self.root if part is None else part
        try:
            return source.get_content_type()
        except (ValueError, LookupError, TypeError):
            self.note("content_type_unreadable")
            return "text/plain"

    def walk(self) -> Iterator[Part]:
        """Yield every part depth-first, stopping at the depth and part limits.

        Unlike ``Message.walk``, the field blocks inside a
        ``message/delivery-status`` part are not yielded: they are not MIME
        parts. Read them with ``text`` or from the part's payload list.
        """
        count = 0
        stack: list[tuple[Part, int]] = [(self.root, 0)]
        while stack:
            part, depth = stack.pop()
            count += 1
            if count > self.limits.max_parts:
                self.note("max_parts")
                return
            yield part
            payload = part.get_payload()
            if not isinstance(payload, list) or _is_status(part):
                continue
            if depth < self.limits.max_depth:
                children = [child for child in payload if isinstance(child, Part)]
                stack.extend((child, depth + 1) for child in reversed(children))

    def text(self, part: Part) -> str:
        """Return the decoded text of ``part``; undecodable bytes become U+FFFD.

        A ``message/delivery-status`` part, which the parser splits into
        blocks of fields, comes back as those fields in text form.
        """
        payload = part.get_payload()
        if isinstance(payload, list):
            return _blocks_text(payload)
        try:
            data = part.get_payload(decode=True)
        except (ValueError, LookupError, TypeError, binascii.Error):
            self.note("transfer_encoding_unreadable")
            data = None
        if not isinstance(data, bytes):
            return payload if isinstance(payload, str) else ""
        try:
            charset = part.get_content_charset() or "utf-8"
        except (ValueError, LookupError, TypeError):
            charset = "utf-8"
        return decode_bytes(data, charset)

    def find(self, content_type: str) -> Part | None:
        """Return the first part of ``content_type``, or None."""
        for part in self.walk():
            if self.content_type(part) == content_type:
                return part
        return None

    def note(self, defect: str) -> None:
        """Record ``defect`` once."""
        if defect not in self.defects:
            self.defects.append(defect)

    def _raw_headers(self, name: str, part: Part | None) -> list[str]:
        source = self.root if part is None else part
        entry = self._header_cache.get(id(source))
        if entry is None:
            entry = (source, _header_table(source, self.limits.max_header_bytes))
            self._header_cache[id(source)] = entry
        return entry[1].get(name.lower(), [])


def parse(raw: bytes, limits: Limits) -> ParsedMessage | LimitHit:
    """Parse ``raw`` after the cheap checks in ``bounds``.

    Returns LimitHit instead of a message when ``raw`` exceeds a bound,
    including a part header block larger than ``max_header_bytes``. Bodies
    of single parts are cut to ``max_text_bytes`` with a ``part_truncated``
    defect, which bounds the cost of regexes detectors run over text.
    """
    hit = bounds.check(raw, limits)
    if hit is not None:
        return LimitHit(hit)
    try:
        root = _PARSER.parsebytes(raw)
    except RecursionError:
        return LimitHit("max_depth")
    message = ParsedMessage(raw=raw, root=root, limits=limits)
    return _prepare(message)


def _prepare(message: ParsedMessage) -> ParsedMessage | LimitHit:
    """Check part header sizes, cut long bodies and collect parser defects."""
    limits = message.limits
    for part in message.walk():
        size = sum(len(name) + len(value) + 2 for name, value in part.raw_items())
        if size > limits.max_header_bytes:
            return LimitHit("max_header_bytes")
        for defect in part.defects:
            message.note(type(defect).__name__)
        payload = part.get_payload()
        if isinstance(payload, str) and len(payload) > limits.max_text_bytes:
            # Cut at a line end so that base64 bodies still decode.
            cut = payload.rfind("\n", 0, limits.max_text_bytes)
            if cut <= 0:
                cut = limits.max_text_bytes
            part.set_payload(payload[:cut])
            message.note("part_truncated")
    return message


def _is_status(part: Part) -> bool:
    """Tell whether the parser split ``part`` into delivery-status field blocks."""
    try:
        return part.get_content_type() == "message/delivery-status"
    except (ValueError, LookupError, TypeError):
        return False


def _header_table(part: Part, max_bytes: int) -> dict[str, list[str]]:
    """Map each lowercase header name of ``part`` to its raw values."""
    table: dict[str, list[str]] = {}
    for name, value in part.raw_items():
        text = str(value)[:max_bytes]
        table.setdefault(name.lower(), []).append(_repair(text))
    return table


def _repair(value: str) -> str:
    """Turn the parser's surrogate escapes back into UTF-8, U+FFFD if invalid.

    The parser reads header bytes as ASCII with ``surrogateescape``, and
    such surrogates make sqlite3 and PostgreSQL drivers raise later.
    """
    if value.isascii():
        return value
    data = value.encode("utf-8", "surrogateescape")
    return data.decode("utf-8", "replace")


def _unfold(value: str) -> str:
    return _FOLD.sub("", value) if "\n" in value else value


def _blocks_text(blocks: Sequence[object]) -> str:
    """Render the parser's field blocks back as ``Name: value`` lines."""
    lines: list[str] = []
    for block in blocks:
        if not isinstance(block, Part):
            continue
        for name, value in block.raw_items():
            lines.append(f"{name}: {_repair(_unfold(str(value)))}")
        lines.append("")
    return "\n".join(lines)


def decode_header(value: str) -> str:
    """Decode RFC 2047 encoded-words leniently and unfold continuation lines.

    White space between two adjacent encoded-words is dropped (RFC 2047
    section 6.2). A word that does not decode stays as written.
    """
    value = _unfold(value)
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
