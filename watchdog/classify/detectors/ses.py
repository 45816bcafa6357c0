"""Amazon SES notifications in JSON, delivered by e-mail through Amazon SNS.

The body is a JSON object with ``notificationType`` (Bounce, Complaint,
Delivery) or an SNS envelope whose ``Message`` field contains that object as
a string. Mail-form SES bounces (RFC 3464) are left to the DSN detector.
"""

from __future__ import annotations

import json
import re
from typing import Any

from watchdog.classify.message import ParsedMessage
from watchdog.classify.original import address_of
from watchdog.classify.reasons import status_in
from watchdog.classify.recipients import build_recipient, content_type
from watchdog.classify.rules import Rules
from watchdog.classify.verdict import (
    Category,
    Feedback,
    Kind,
    RecipientVerdict,
    Verdict,
)

NAME = "amazonses_json"
# JSON bodies larger than this are not SES notifications and are not parsed.
_MAX_JSON_BYTES = 1_000_000
_LONG_LINE_BREAK = re.compile(r"!\r?\n ")


def detect(message: ParsedMessage, rules: Rules) -> Verdict | None:
    """Return a verdict for an SES JSON notification, or None."""
    notice = _notification(message)
    if notice is None:
        return None

    kind = str(notice.get("notificationType") or notice.get("eventType") or "")
    if kind == "Bounce":
        recipients, verdict_kind = _bounce(rules, _mapping(notice.get("bounce")))
    elif kind == "Complaint":
        recipients, verdict_kind = _complaint(_mapping(notice.get("complaint")))
    elif kind == "Delivery":
        recipients, verdict_kind = _delivery(rules, _mapping(notice.get("delivery")))
    else:
        return None

    mail = _mapping(notice.get("mail"))
    return Verdict(
        kind=verdict_kind,
        detector=NAME,
        recipients=recipients,
        message_id=message.header("Message-ID"),
        original_message_id=_text(mail.get("messageId")),
        original_sender=address_of(_sender(mail)),
        feedback=_feedback(notice) if verdict_kind is Kind.COMPLAINT else None,
    )


def _sender(mail: dict[str, Any]) -> str | None:
    """Return the From of the original, else its envelope sender."""
    senders = _mapping(mail.get("commonHeaders")).get("from")
    if isinstance(senders, list) and senders:
        return _text(senders[0])
    return _text(mail.get("source"))


def _feedback(notice: dict[str, Any]) -> Feedback:
    complaint = _mapping(notice.get("complaint"))
    return Feedback(
        feedback_type=str(complaint.get("complaintFeedbackType") or "abuse"),
        user_agent=_text(complaint.get("userAgent")),
        arrival_date=_text(complaint.get("arrivalDate")),
    )


def _notification(message: ParsedMessage) -> dict[str, Any] | None:
    for part in message.walk():
        if content_type(message, part).startswith("multipart/"):
            continue
        if message.lacks(part, "notificationType"):
            continue
        text = message.text(part).strip()
        start = text.find("{")
        if start < 0 or len(text) > _MAX_JSON_BYTES or "notificationType" not in text:
            continue
        end = text.rfind("}")
        value = _loads(text[start : end + 1])
        if isinstance(value, dict) and isinstance(value.get("Message"), str):
            value = _loads(value["Message"])
        return value if isinstance(value, dict) else None
    return None


def _loads(text: str) -> object:
    """Parse JSON, undoing the line breaks MTAs insert into long lines.

    Sendmail and others split lines longer than 990 octets with ``!`` and a
    folded newline, which breaks the one-line JSON of SES notifications.
    """
    for candidate in (text, _LONG_LINE_BREAK.sub("", text)):
        try:
            return json.loads(candidate)
        except ValueError:
            continue
    return None


def _bounce(
    rules: Rules, bounce: dict[str, Any]
) -> tuple[tuple[RecipientVerdict, ...], Kind]:
    found: list[RecipientVerdict] = []
    for entry in bounce.get("bouncedRecipients") or []:
        item = _mapping(entry)
        recipient = build_recipient(
            rules,
            _text(item.get("emailAddress")) or "",
            diagnostic=_text(item.get("diagnosticCode")),
            status=_text(item.get("status")),
            action=_text(item.get("action")),
            remote_mta=_text(bounce.get("reportingMTA")),
        )
        if recipient is not None:
            found.append(recipient)
    return tuple(found), Kind.BOUNCE


def _complaint(complaint: dict[str, Any]) -> tuple[tuple[RecipientVerdict, ...], Kind]:
    found: list[RecipientVerdict] = []
    for entry in complaint.get("complainedRecipients") or []:
        address = address_of(_text(_mapping(entry).get("emailAddress")))
        if address is not None:
            found.append(
                RecipientVerdict(
                    address=address,
                    reason="feedback",
                    hard=False,
                    category=Category.COMPLAINT,
                )
            )
    return tuple(found), Kind.COMPLAINT


def _delivery(
    rules: Rules, delivery: dict[str, Any]
) -> tuple[tuple[RecipientVerdict, ...], Kind]:
    found: list[RecipientVerdict] = []
    reply = _text(delivery.get("smtpResponse"))
    for entry in delivery.get("recipients") or []:
        recipient = build_recipient(
            rules,
            _text(entry) or "",
            diagnostic=reply,
            status=(status_in(reply) if reply else None) or "2.0.0",
            remote_mta=_text(delivery.get("reportingMTA")),
            action="delivered",
        )
        if recipient is not None:
            found.append(recipient)
    return tuple(found), Kind.DELIVERY_REPORT


def _mapping(value: object) -> dict[str, Any]:
    return value if isinstance(value, dict) else {}


def _text(value: object) -> str | None:
    return value if isinstance(value, str) and value else None
