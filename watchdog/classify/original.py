"""The original message a bounce or a report carries, and its identity.

The daemon compares ``original_message_id`` and ``original_sender`` with
its send log to reject forged bounces, so both are read whenever the
original is present. It comes as a ``message/rfc822`` or
``text/rfc822-headers`` part, or, in non-MIME bounces from qmail, Exim and
others, as headers quoted in the body after a separator line.
"""

from __future__ import annotations

import email.message
import email.utils
import re
from dataclasses import dataclass

from watchdog.classify.message import ParsedMessage, decode_header
from watchdog.classify.recipients import content_type, normalise_cached

_HEADER_PARTS = ("text/rfc822-headers", "message/rfc822-headers")
_MESSAGE_PARTS = ("message/rfc822", "message/global")
_HEADER_LINE = re.compile(r"^([A-Za-z][A-Za-z0-9-]*):[ \t]*(.*)$")
# A lone address, bare or in angle brackets after a plain display name.
# getaddresses returns just that address for these, and skipping it makes
# address_of about four times faster on them (CPython 3.11).
_PLAIN_ADDRESS = r"[\w.+-]+@[\w-]+(?:\.[\w-]+)*"
_SIMPLE_ADDRESS = re.compile(
    rf"\s*(?:[\w.' -]*<({_PLAIN_ADDRESS})>|({_PLAIN_ADDRESS}))\s*", re.ASCII
)
# How many lines of a quoted original are scanned for its headers.
_QUOTED_HEADER_LINES = 200


@dataclass(frozen=True, slots=True)
class Original:
    """Identity of the embedded original message; both fields may be None."""

    message_id: str | None
    sender: str | None
    recipient: str | None


NO_ORIGINAL = Original(None, None, None)


def find_original(message: ParsedMessage, body: str = "") -> Original:
    """Return the identity of the original message inside ``message``.

    Looks for an attached original first, then for headers quoted in
    ``body`` (the bounce's own text).
    """
    for part in message.walk():
        if part is message.root:
            continue
        kind = content_type(message, part)
        if kind in _MESSAGE_PARTS:
            inner = message.children(part)
            if inner:
                return _from_part(message, inner[0])
            return _from_text(message.text(part))
        if kind in _HEADER_PARTS:
            return _from_text(message.text(part))
    return _from_text(body) if body else NO_ORIGINAL


def _from_part(message: ParsedMessage, part: email.message.Message) -> Original:
    return _identity(
        message_id=message.header("Message-ID", part),
        sender=message.header("From", part) or message.header("Return-Path", part),
        recipient=message.header("To", part),
    )


def _from_text(text: str) -> Original:
    """Read Message-ID, From and To from the first header block in ``text``."""
    found: dict[str, str] = {}
    lines = text.splitlines()[:_QUOTED_HEADER_LINES]
    for index, line in enumerate(lines):
        match = _HEADER_LINE.match(line.strip())
        if match is None:
            continue
        name = match.group(1).lower()
        if name in {"message-id", "from", "return-path", "to"} and name not in found:
            value = match.group(2)
            if not value and index + 1 < len(lines):
                value = lines[index + 1].strip()
            found[name] = decode_header(value)
    return _identity(
        message_id=found.get("message-id"),
        sender=found.get("from") or found.get("return-path"),
        recipient=found.get("to"),
    )


def _identity(
    *, message_id: str | None, sender: str | None, recipient: str | None
) -> Original:
    return Original(
        message_id=_message_id(message_id),
        sender=address_of(sender),
        recipient=address_of(recipient),
    )


def _message_id(value: str | None) -> str | None:
    if not value:
        return None
    match = re.search(r"<[^<>\s]+>", value)
    if match is not None:
        return match.group(0)
    words = value.split()
    return words[0] if words else None


def address_of(value: str | None) -> str | None:
    """Return the normalised first address in a header value, or None."""
    if not value:
        return None
    simple = _SIMPLE_ADDRESS.fullmatch(value)
    if simple is not None:
        return normalise_cached(simple.group(1) or simple.group(2))
    return parsed_address_of(value)


def parsed_address_of(value: str) -> str | None:
    """Return what ``address_of`` does, always through ``getaddresses``."""
    try:
        pairs = email.utils.getaddresses([value])
    except (ValueError, IndexError, RecursionError):
        pairs = []
    for _name, address in pairs:
        normalised = normalise_cached(address) if address else None
        if normalised is not None:
            return normalised
    return normalise_cached(value)
