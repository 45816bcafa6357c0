"""Learn DKIM selectors from the signatures of our own mail returned in bounces.

A bounce or feedback report often quotes the original message or its
headers (``message/rfc822``, ``text/rfc822-headers``). The ``d=`` and
``s=`` tags of each ``DKIM-Signature`` found there name a selector we sign
with, which DNS alone cannot reveal.
"""

from __future__ import annotations

import email
import email.policy
from collections.abc import Iterator
from email.message import Message

from watchdog.checks.auth.dkim import parse_tags


def selectors_from_message(raw: bytes) -> set[tuple[str, str]]:
    """Return the ``(domain, selector)`` pairs signed into quoted messages of ``raw``.

    The outer message's own signatures are skipped, because they belong to
    the reporting system, not to us. Domains are lower-cased.
    """
    outer = email.message_from_bytes(raw, policy=email.policy.compat32)
    found: set[tuple[str, str]] = set()
    for headers in quoted_messages(outer):
        for value in headers.get_all("DKIM-Signature") or []:
            tags = parse_tags(" ".join(str(value).split()))
            domain, selector = tags.get("d", ""), tags.get("s", "")
            if domain and selector:
                found.add((domain.lower().rstrip("."), selector))
    return found


def quoted_messages(message: Message) -> Iterator[Message]:
    """Yield the messages quoted in ``message``, at any depth.

    A ``text/rfc822-headers`` part yields a message with headers and an
    empty body.
    """
    # walk() also descends into quoted messages, so nested reports are found.
    for part in message.walk():
        content_type = part.get_content_type()
        if content_type == "message/rfc822":
            for inner in part.get_payload() or []:
                if isinstance(inner, Message):
                    yield inner
        elif content_type == "text/rfc822-headers":
            payload = part.get_payload(decode=True)
            if isinstance(payload, bytes):
                yield email.message_from_bytes(payload, policy=email.policy.compat32)


def selectors_for(pairs: set[tuple[str, str]], domain: str) -> list[str]:
    """Return the selectors learned for ``domain``, sorted."""
    domain = domain.lower().rstrip(".")
    return sorted(selector for signed, selector in pairs if signed == domain)
