"""Bounded, exception-safe access to a parsed message.

Detectors never decode ``email`` objects themselves: they read headers,
addresses, parts and decoded text through ``ParsedMessage``, whose accessors
never raise on malformed input and stop at the limits in ``Limits``.

``parse`` runs the pre-scan in ``bounds`` and then builds a tree of
``compat32`` messages: with ``fastparse`` when the message is well formed,
otherwise with CPython's parser. On CPython 3.11 ``policy.default`` parses
about five times slower than ``compat32``, and merely reading some malformed
headers under it raises ``IndexError`` or ``AttributeError``. ``compat32``
stores header values as raw strings, so ``decoding`` decodes RFC 2047 words
and charsets.

The accessors' promise not to raise is tested with crafted and random
messages in ``tests/classify/test_hostile.py``.
"""

from __future__ import annotations

import binascii
import email.message
import email.parser
import email.policy
import email.utils
import re
from collections.abc import Iterator, Sequence
from dataclasses import dataclass, field
from typing import Any

from watchdog.classify import bounds, fastparse
from watchdog.classify.decoding import (
    decode_bytes,
    decode_header,
    keeps_ascii,
    repair,
    unfold,
)
from watchdog.config import Limits

__all__ = ["LimitHit", "ParsedMessage", "Part", "decode_bytes", "decode_header"]

_CONTENT_ERRORS = (ValueError, LookupError, TypeError)
_IDENTITY_ENCODINGS = frozenset({"7bit", "8bit", "binary"})
_CHARSET = re.compile(r"""(?:^|;)\s*charset\s*=\s*"?([^"\s;]+)""", re.IGNORECASE)


class Part(email.message.Message):
    """A compat32 message part that computes its content type once.

    Detectors ask every part they walk for its type, and on CPython 3.11
    each ``get_content_type`` call re-reads the headers. Methods that change
    headers or the default type drop the cached value, except ``set_raw``,
    which only parsers call, before the type is first read.
    """

    _content_type: str | None = None

    def get_content_type(self) -> str:
        if self._content_type is None:
            self._content_type = super().get_content_type()
        return self._content_type

    def __setitem__(self, name: str, value: Any) -> None:
        self._content_type = None
        super().__setitem__(name, value)

    def __delitem__(self, name: str) -> None:
        self._content_type = None
        super().__delitem__(name)

    def add_header(self, _name: str, _value: str, **_params: Any) -> None:
        self._content_type = None
        super().add_header(_name, _value, **_params)

    def replace_header(self, name: str, value: Any) -> None:
        self._content_type = None
        super().replace_header(name, value)

    def set_default_type(self, ctype: str) -> None:
        self._content_type = None
        super().set_default_type(ctype)


_PARSER = email.parser.Parser(_class=Part, policy=email.policy.compat32)


@dataclass(frozen=True, slots=True)
class LimitHit:
    """A message that exceeded a bound; ``name`` is the Limits field."""

    name: str


@dataclass(slots=True)
class ParsedMessage:
    """A message parsed with the compat32 policy, read through safe accessors.

    ``defects`` lists the parser's defect class names and this module's own
    notes (``part_truncated``, ``address_unparsable:To`` ...), each once.
    Header tables and decoded texts are cached per part, keyed by ``id``;
    each entry keeps its part alive so that the id is not reused.
    """

    raw: bytes
    root: email.message.Message
    limits: Limits
    defects: list[str] = field(default_factory=list)
    parts: list[email.message.Message] = field(default_factory=list)
    _headers: dict[int, tuple[object, dict[str, list[Any]]]] = field(
        default_factory=dict
    )
    _texts: dict[int, tuple[object, str]] = field(default_factory=dict)

    def header(
        self, name: str, part: email.message.Message | None = None
    ) -> str | None:
        """Return the first ``name`` header, RFC 2047-decoded, or None."""
        values = self._raw_headers(name, part)
        return decode_header(values[0]) if values else None

    def headers(
        self, name: str, part: email.message.Message | None = None
    ) -> list[str]:
        """Return every ``name`` header, RFC 2047-decoded and unfolded."""
        return [decode_header(value) for value in self._raw_headers(name, part)]

    def raw_header(
        self, name: str, part: email.message.Message | None = None
    ) -> str | None:
        """Return the first ``name`` header unfolded but not RFC 2047-decoded."""
        values = self._raw_headers(name, part)
        return unfold(values[0]).strip() if values else None

    def addresses(
        self, name: str, part: email.message.Message | None = None
    ) -> list[str]:
        """Return the addr-spec of each address in every ``name`` header.

        A header the address parser cannot read, such as one nesting
        hundreds of comments, gives an empty list and an
        ``address_unparsable`` defect.
        """
        values = [unfold(value) for value in self._raw_headers(name, part)]
        try:
            pairs = email.utils.getaddresses(values)
        except (RecursionError, ValueError, IndexError):
            self.note(f"address_unparsable:{name}")
            return []
        return [address for _, address in pairs if address]

    def content_type(self, part: email.message.Message | None = None) -> str:
        """Return the lowercase ``type/subtype`` of ``part``, or text/plain."""
        source = self.root if part is None else part
        try:
            return source.get_content_type()
        except _CONTENT_ERRORS:
            self.note("content_type_unreadable")
            return "text/plain"

    def walk(self) -> Iterator[email.message.Message]:
        """Yield every part depth-first, within the depth and part limits.

        Unlike ``Message.walk``, the field blocks inside a
        ``message/delivery-status`` part are not yielded: they are not MIME
        parts. Read them with ``text`` or from the part's payload list.
        """
        if not self.parts:
            self.parts = _flatten(self, self.root)
        yield from self.parts

    def children(self, part: email.message.Message) -> list[email.message.Message]:
        """Return the messages in ``part``'s payload: parts, or status blocks."""
        if not part.is_multipart():
            return []
        payload = part.get_payload()
        if not isinstance(payload, list):
            return []
        return [child for child in payload if isinstance(child, email.message.Message)]

    def text(self, part: email.message.Message) -> str:
        """Return the decoded text of ``part``, with U+FFFD for undecodable bytes.

        A ``message/delivery-status`` part, which the parser splits into
        blocks of fields, comes back as those fields in text form.
        """
        entry = self._texts.get(id(part))
        if entry is None:
            entry = (part, self._decode_text(part))
            self._texts[id(part)] = entry
        return entry[1]

    def lacks(self, part: email.message.Message, literal: str) -> bool:
        """Tell, without decoding, that ``text(part)`` lacks ``literal``.

        ``literal`` must be ASCII without white space, which unfolding keeps
        and which joins the fields of a ``message/*`` part in its text. False
        means only that the text has to be decoded to know: the transfer
        encoding is not an identity one, the charset is not one that
        ``decoding.keeps_ascii`` accepts, or the raw text contains it.
        """
        payload = fastparse.raw_payload(part)
        if isinstance(payload, list):
            return not any(
                literal in name or literal in str(value)
                for block in payload
                if isinstance(block, email.message.Message)
                for name, value in block.raw_items()
            )
        if not isinstance(payload, str) or literal in payload:
            return False
        encoding = self._raw_headers("content-transfer-encoding", part)
        if encoding and encoding[0].strip().lower() not in _IDENTITY_ENCODINGS:
            return False
        return keeps_ascii(self._charset(part))

    def find(self, content_type: str) -> email.message.Message | None:
        """Return the first part of ``content_type``, or None."""
        for part in self.walk():
            if self.content_type(part) == content_type:
                return part
        return None

    def note(self, defect: str) -> None:
        """Record ``defect`` once."""
        if defect not in self.defects:
            self.defects.append(defect)

    def _raw_headers(self, name: str, part: email.message.Message | None) -> list[str]:
        source = self.root if part is None else part
        entry = self._headers.get(id(source))
        if entry is None:
            entry = (source, _header_table(source))
            self._headers[id(source)] = entry
        values = entry[1].get(name.lower())
        if not values:
            return []
        limit = self.limits.max_header_bytes
        return [repair(str(value)[:limit]) for value in values]

    def _decode_text(self, part: email.message.Message) -> str:
        payload = fastparse.raw_payload(part)
        if isinstance(payload, list):
            return _blocks_text(payload)
        try:
            data = part.get_payload(decode=True)
        except (*_CONTENT_ERRORS, binascii.Error):
            self.note("transfer_encoding_unreadable")
            data = None
        if not isinstance(data, bytes):
            return payload if isinstance(payload, str) else ""
        return decode_bytes(data, self._charset(part))

    def _charset(self, part: email.message.Message) -> str:
        """Return the charset parameter of ``part``, or utf-8.

        A regex over the raw header is several times cheaper than
        ``get_content_charset``. An RFC 2231 ``charset*=`` gives utf-8.
        """
        content_type = self._raw_headers("content-type", part)
        match = _CHARSET.search(content_type[0]) if content_type else None
        return match.group(1) if match else "utf-8"


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
    # BytesParser decodes the same way before it parses.
    text = raw.decode("ascii", "surrogateescape")
    try:
        root = fastparse.split(text, Part) or _PARSER.parsestr(text)
    except RecursionError:
        return LimitHit("max_depth")
    message = ParsedMessage(raw=raw, root=root, limits=limits)
    return _prepare(message)


def _prepare(message: ParsedMessage) -> ParsedMessage | LimitHit:
    """Check part header sizes, cut long bodies and collect parser defects."""
    limits = message.limits
    # Both parsers store names and values as slices of the text, one
    # character per byte and without the colon and line end, so no part's
    # headers can be larger than the whole message.
    check_headers = len(message.raw) > limits.max_header_bytes
    for part in message.walk():
        if check_headers and _header_size(part) > limits.max_header_bytes:
            return LimitHit("max_header_bytes")
        for defect in part.defects:
            message.note(type(defect).__name__)
        payload = fastparse.raw_payload(part)
        if isinstance(payload, str) and len(payload) > limits.max_text_bytes:
            # Cut at a line end so that base64 bodies still decode.
            cut = payload.rfind("\n", 0, limits.max_text_bytes)
            if cut <= 0:
                cut = limits.max_text_bytes
            part.set_payload(payload[:cut])
            message.note("part_truncated")
    return message


def _header_size(part: email.message.Message) -> int:
    """Return the size of ``part``'s header fields, counting ": " per field."""
    return sum(len(name) + len(value) + 2 for name, value in part.raw_items())


def _flatten(
    message: ParsedMessage, root: email.message.Message
) -> list[email.message.Message]:
    """List the parts under ``root`` depth-first, within the limits."""
    limits = message.limits
    parts: list[email.message.Message] = []
    stack = [(root, 0)]
    while stack:
        part, depth = stack.pop()
        if len(parts) == limits.max_parts:
            message.note("max_parts")
            break
        parts.append(part)
        if depth == limits.max_depth or _is_status(part):
            continue
        children = message.children(part)
        stack.extend((child, depth + 1) for child in reversed(children))
    return parts


def _is_status(part: email.message.Message) -> bool:
    """Tell whether the parser split ``part`` into delivery-status field blocks."""
    try:
        return part.get_content_type() == "message/delivery-status"
    except _CONTENT_ERRORS:
        return False


def _header_table(part: email.message.Message) -> dict[str, list[Any]]:
    """Map each lowercase header name of ``part`` to its stored values.

    Values are cut and repaired only when read, because most are never read.
    """
    table: dict[str, list[Any]] = {}
    for name, value in part.raw_items():
        table.setdefault(name.lower(), []).append(value)
    return table


def _blocks_text(blocks: Sequence[object]) -> str:
    """Render the parser's field blocks back as ``Name: value`` lines."""
    lines: list[str] = []
    for block in blocks:
        if not isinstance(block, email.message.Message):
            continue
        for name, value in block.raw_items():
            lines.append(f"{name}: {repair(unfold(str(value)))}")
        lines.append("")
    return "\n".join(lines)
