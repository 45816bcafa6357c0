"""Typed results of classifying one message."""

from __future__ import annotations

from dataclasses import dataclass, field
from enum import StrEnum


class Kind(StrEnum):
    """The kind of a whole message."""

    BOUNCE = "bounce"
    COMPLAINT = "complaint"
    AUTO_REPLY = "auto_reply"
    DELIVERY_REPORT = "delivery_report"
    NOT_BOUNCE = "not_bounce"
    UNKNOWN = "unknown"


class Category(StrEnum):
    """What a recipient verdict means for the suppression policy.

    ``address`` suppresses at once; ``mailbox`` counts toward the soft-bounce
    threshold; ``reputation`` concerns the sender and never suppresses;
    ``transient`` never suppresses; ``complaint`` suppresses when verified;
    ``auto_reply`` and ``delivered`` never count.
    """

    ADDRESS = "address"
    MAILBOX = "mailbox"
    REPUTATION = "reputation"
    TRANSIENT = "transient"
    COMPLAINT = "complaint"
    AUTO_REPLY = "auto_reply"
    DELIVERED = "delivered"


@dataclass(frozen=True, slots=True)
class RecipientVerdict:
    """The outcome for one recipient named in a message.

    ``reason`` uses Sisimai's vocabulary (``userunknown``, ``mailboxfull``,
    ``blocked`` ...). ``status`` is the RFC 3463 enhanced code such as
    ``5.1.1``; ``reply_code`` the three-digit SMTP reply such as ``550``.
    """

    address: str
    reason: str
    hard: bool
    category: Category
    original_address: str | None = None
    status: str | None = None
    reply_code: str | None = None
    diagnostic: str | None = None
    remote_mta: str | None = None
    action: str | None = None


@dataclass(frozen=True, slots=True)
class Feedback:
    """Fields of an RFC 5965 feedback report."""

    feedback_type: str
    user_agent: str | None = None
    source_ip: str | None = None
    reported_domain: str | None = None
    original_mail_from: str | None = None
    arrival_date: str | None = None


@dataclass(frozen=True, slots=True)
class Verdict:
    """The classification of one message.

    ``detector`` names the module that decided. ``limit`` names the bound
    that stopped classification (``max_parts``, ``max_depth`` ...) when
    ``kind`` is ``unknown`` for that reason.
    """

    kind: Kind
    detector: str
    recipients: tuple[RecipientVerdict, ...] = ()
    message_id: str | None = None
    original_message_id: str | None = None
    original_sender: str | None = None
    feedback: Feedback | None = None
    limit: str | None = None
    defects: tuple[str, ...] = field(default=())


def unknown(detector: str, *, limit: str | None = None) -> Verdict:
    """Build the verdict for a message no detector could classify."""
    return Verdict(kind=Kind.UNKNOWN, detector=detector, limit=limit)
