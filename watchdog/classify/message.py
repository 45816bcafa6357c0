"""Bounded, exception-safe access to a parsed message.

Detectors never touch ``email`` objects directly: they read headers, parts
and decoded text through ``ParsedMessage``, which never raises on malformed
input and stops at the limits in ``Limits``.
"""

from __future__ import annotations

import email
import email.header
import email.message
import email.policy
from collections.abc import Iterator
from dataclasses import dataclass, field

from watchdog.config import Limits

_TEXT_CHARSETS = frozenset(
    {
        "us-ascii",
        "ascii",
        "utf-8",
        "utf8",
        "iso-8859-1",
        "latin-1",
        "latin1",
        "iso-8859-2",
        "iso-8859-15",
        "windows-1250",
        "windows-1251",
        "windows-1252",
        "cp1252",
        "koi8-r",
        "koi8-u",
        "iso-2022-jp",
        "shift_jis",
        "shift-jis",
        "euc-jp",
        "euc-kr",
        "gb2312",
        "gbk",
        "gb18030",
        "big5",
    }
)


@dataclass(frozen=True, slots=True)
class LimitHit:
    """A message that exceeded a bound; ``name`` is the Limits field."""

    name: str


@dataclass(slots=True)
class ParsedMessage:
    """A message parsed with the compat32 policy, read through safe accessors."""

    raw: bytes
    root: email.message.Message
    limits: Limits
    defects: list[str] = field(default_factory=list)

    def header(
        self, name: str, part: email.message.Message | None = None
    ) -> str | None:
        """Return the first ``name`` header, RFC 2047-decoded, or None."""
        values = self.headers(name, part)
        return values[0] if values else None

    def headers(
        self, name: str, part: email.message.Message | None = None
    ) -> list[str]:
        """Return every ``name`` header, decoded and unfolded."""
        source = self.root if part is None else part
        try:
            values = source.get_all(name) or []
        except Exception:  # noqa: BLE001 - any header defect reads as absent
            self.defects.append(f"header_unreadable:{name}")
            return []
        return [decode_header(str(v))[: self.limits.max_header_bytes] for v in values]

    def walk(self) -> Iterator[email.message.Message]:
        """Yield every part depth-first, stopping at the depth and part limits."""
        count = 0
        stack: list[tuple[email.message.Message, int]] = [(self.root, 0)]
        while stack:
            part, depth = stack.pop()
            count += 1
            if count > self.limits.max_parts:
                self.defects.append("max_parts")
                return
            yield part
            payload = part.get_payload()
            if isinstance(payload, list) and depth < self.limits.max_depth:
                stack.extend((child, depth + 1) for child in reversed(payload))

    def text(self, part: email.message.Message) -> str:
        """Return the decoded text of a leaf part; undecodable bytes become U+FFFD."""
        try:
            payload = part.get_payload(decode=True)
        except Exception:  # noqa: BLE001 - a broken transfer encoding reads as raw
            payload = None
        if payload is None:
            raw = part.get_payload()
            return raw if isinstance(raw, str) else ""
        if not isinstance(payload, bytes):
            return ""
        charset = (part.get_content_charset() or "utf-8").lower()
        if charset not in _TEXT_CHARSETS:
            charset = "utf-8"
        return payload.decode(charset, errors="replace")

    def find(self, content_type: str) -> email.message.Message | None:
        """Return the first part of ``content_type``, or None."""
        for part in self.walk():
            if part.get_content_type() == content_type:
                return part
        return None


def parse(raw: bytes, limits: Limits) -> ParsedMessage | LimitHit:
    """Parse ``raw`` after cheap checks of its size and shape.

    Returns LimitHit instead of parsing when a bound is exceeded.
    """
    if len(raw) > limits.max_message_bytes:
        return LimitHit("max_message_bytes")
    try:
        root = email.message_from_bytes(raw, policy=email.policy.compat32)
    except RecursionError:
        return LimitHit("max_depth")
    return ParsedMessage(raw=raw, root=root, limits=limits)


def decode_header(value: str) -> str:
    """Decode RFC 2047 encoded-words leniently and unfold continuation lines."""
    value = value.replace("\r\n", "\n").replace("\n ", " ").replace("\n\t", " ")
    if "=?" not in value:
        return value.strip()
    try:
        chunks = email.header.decode_header(value)
    except Exception:  # noqa: BLE001 - keep the raw text
        return value.strip()
    out = []
    for chunk, charset in chunks:
        if isinstance(chunk, str):
            out.append(chunk)
            continue
        name = (charset or "ascii").lower()
        if name not in _TEXT_CHARSETS:
            name = "utf-8"
        out.append(chunk.decode(name, errors="replace"))
    return "".join(out).strip()
