"""RFC 5965 abuse reports (ARF) and the complaint formats around them.

Besides the standard ``message/feedback-report`` part this reads Microsoft
JMRP reports, which attach the original with an
``X-HmXmrOriginalRecipient`` header and no report part, and the
unsubscribe messages Apple Mail sends with ``X-Apple-Unsubscribe: true``.
The complained-about recipient is ``Original-Rcpt-To`` (or
``Removal-Recipient``), else the embedded original's ``To``.
"""

from __future__ import annotations

import email.message
import ipaddress

from watchdog.addresses import normalise_address
from watchdog.classify.message import ParsedMessage
from watchdog.classify.original import address_of, find_original
from watchdog.classify.recipients import content_type, decode_local_part
from watchdog.classify.rules import Rules
from watchdog.classify.verdict import (
    Category,
    Feedback,
    Kind,
    RecipientVerdict,
    Verdict,
)

NAME = "arf"
_JMRP_HEADER = "X-HmXmrOriginalRecipient"


def detect(message: ParsedMessage, rules: Rules) -> Verdict | None:
    """Return a complaint verdict for a feedback report, or None."""
    del rules
    report = message.find("message/feedback-report")
    if report is not None:
        return _standard(message, report)
    if (message.header("X-Apple-Unsubscribe") or "").strip().lower() == "true":
        return _apple_unsubscribe(message)
    return _jmrp(message)


def _standard(message: ParsedMessage, report: email.message.Message) -> Verdict:
    fields = _report_fields(message, report)
    original = find_original(message)
    address = fields.get("original-rcpt-to") or fields.get("removal-recipient")
    recipient = address_of(address) or original.recipient
    feedback = Feedback(
        feedback_type=(fields.get("feedback-type") or "other").lower(),
        user_agent=fields.get("user-agent"),
        source_ip=_valid_ip(fields.get("source-ip")),
        reported_domain=fields.get("reported-domain"),
        original_mail_from=address_of(fields.get("original-mail-from")),
        arrival_date=fields.get("arrival-date") or fields.get("received-date"),
    )
    return _verdict(message, recipient, feedback, original.message_id, original.sender)


def _report_fields(
    message: ParsedMessage, report: email.message.Message
) -> dict[str, str]:
    """Read the report's fields, whether parsed as headers or left as text."""
    names = (
        "feedback-type",
        "user-agent",
        "source-ip",
        "reported-domain",
        "original-mail-from",
        "original-rcpt-to",
        "removal-recipient",
        "arrival-date",
        "received-date",
    )
    blocks = message.children(report)
    fields: dict[str, str] = {}
    for block in blocks:
        for name in names:
            value = message.header(name, block)
            if value and name not in fields:
                fields[name] = value
    if not blocks:
        for line in message.text(report).splitlines():
            name, sep, value = line.partition(":")
            key = name.strip().lower()
            if sep and key in names and key not in fields:
                fields[key] = value.strip()
    return fields


def _jmrp(message: ParsedMessage) -> Verdict | None:
    for part in message.walk():
        if content_type(message, part) != "message/rfc822":
            continue
        inner = message.children(part)
        if not inner:
            continue
        recipient = message.header(_JMRP_HEADER, inner[0])
        if recipient is None:
            return None
        original = find_original(message)
        feedback = Feedback(feedback_type="abuse", user_agent="Microsoft JMRP")
        return _verdict(
            message,
            address_of(recipient),
            feedback,
            original.message_id,
            original.sender,
        )
    return None


def _apple_unsubscribe(message: ParsedMessage) -> Verdict:
    feedback = Feedback(feedback_type="opt-out", user_agent="Apple Mail")
    return _verdict(message, address_of(message.header("From")), feedback, None, None)


def _verdict(
    message: ParsedMessage,
    recipient: str | None,
    feedback: Feedback,
    original_message_id: str | None,
    original_sender: str | None,
) -> Verdict:
    recipients: tuple[RecipientVerdict, ...] = ()
    address = normalise_address(recipient) if recipient else None
    if address is not None:
        address = decode_local_part(address)
        complaint = RecipientVerdict(
            address=address,
            reason="feedback",
            hard=False,
            category=Category.COMPLAINT,
        )
        recipients = (complaint,)
    return Verdict(
        kind=Kind.COMPLAINT,
        detector=NAME,
        recipients=recipients,
        message_id=message.header("Message-ID"),
        original_message_id=original_message_id,
        original_sender=original_sender,
        feedback=feedback,
    )


def _valid_ip(value: str | None) -> str | None:
    if not value:
        return None
    try:
        return str(ipaddress.ip_address(value.strip().strip("[]")))
    except ValueError:
        return None
