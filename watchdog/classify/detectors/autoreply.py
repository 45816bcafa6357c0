"""RFC 3834 automatic replies and vendors' out-of-office markers.

A reply is automatic when ``Auto-Submitted`` is ``auto-replied``, when a
vendor header says so (``X-Autoreply``, ``X-Autorespond``,
``Precedence: auto_reply``, ``X-Auto-Response-Suppress`` together with an
auto-reply subject), or when the subject matches ``auto_reply_subjects`` in
the rules. The recipient reported is the address that replied.
"""

from __future__ import annotations

from watchdog.classify.message import ParsedMessage
from watchdog.classify.original import address_of, find_original
from watchdog.classify.rules import Rules
from watchdog.classify.verdict import Category, Kind, RecipientVerdict, Verdict

NAME = "rfc3834"
_VENDOR_HEADERS = ("X-Autoreply", "X-Autorespond", "X-Autoresponder", "X-Vacation")


def detect(message: ParsedMessage, rules: Rules) -> Verdict | None:
    """Return an auto-reply verdict, or None."""
    if not _is_auto_reply(message, rules):
        return None
    replier = address_of(message.header("Reply-To")) or address_of(
        message.header("From")
    )
    recipients: tuple[RecipientVerdict, ...] = ()
    if replier is not None:
        recipients = (
            RecipientVerdict(
                address=replier,
                reason="vacation",
                hard=False,
                category=Category.AUTO_REPLY,
            ),
        )
    original = find_original(message)
    return Verdict(
        kind=Kind.AUTO_REPLY,
        detector=NAME,
        recipients=recipients,
        message_id=message.header("Message-ID"),
        original_message_id=original.message_id
        or _first_id(message.header("In-Reply-To")),
        original_sender=original.sender,
    )


def _is_auto_reply(message: ParsedMessage, rules: Rules) -> bool:
    submitted = (message.header("Auto-Submitted") or "").strip().lower()
    if submitted.startswith("auto-replied"):
        return True
    if any(message.header(name) for name in _VENDOR_HEADERS):
        return True
    precedence = (message.header("Precedence") or "").strip().lower()
    if precedence == "auto_reply":
        return True
    subject = " ".join((message.header("Subject") or "").split())
    return any(pattern.regex.search(subject) for pattern in rules.auto_reply_subjects)


def _first_id(value: str | None) -> str | None:
    if not value:
        return None
    parts = value.split()
    return parts[0] if parts else None
