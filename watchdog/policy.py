"""Suppression decisions: which recipient verdicts put an address on the list.

Pure functions over values the store reads for them, tested without a
database. The rules:

- only verified events count: an unverified bounce suppresses no address;
- category ``address`` (a hard bounce) and ``complaint`` suppress at once,
  with no expiry;
- category ``mailbox`` (``mailboxfull``, ``suspend``) suppresses once the
  stored verified events of that category for the address that arrived
  within ``soft_bounce_window_days`` up to this one's arrival (see
  ``arrival_time``) reach ``soft_bounce_threshold``, for
  ``soft_suppression_days`` (0 keeps the entry until someone removes it).
  The store counts no events from before the address's last removal;
- ``reputation``, ``transient``, ``auto_reply`` and ``delivered`` never
  suppress;
- an entry is replaced only by one of equal or higher rank, so the daemon
  never downgrades or removes a ``manual`` or ``import`` entry.
"""

from __future__ import annotations

from dataclasses import dataclass
from datetime import datetime, timedelta
from enum import StrEnum

from watchdog.classify.verdict import Category
from watchdog.config import Policy


class SuppressionReason(StrEnum):
    """Reason an address is on the suppression list."""

    HARD_BOUNCE = "hard_bounce"
    SOFT_BOUNCE = "soft_bounce"
    COMPLAINT = "complaint"
    MANUAL = "manual"
    IMPORT = "import"


# Higher ranks win. Only the CLI and imports write the two top ranks.
_RANK = {
    SuppressionReason.SOFT_BOUNCE: 1,
    SuppressionReason.HARD_BOUNCE: 2,
    SuppressionReason.COMPLAINT: 3,
    SuppressionReason.IMPORT: 4,
    SuppressionReason.MANUAL: 5,
}

# Reasons written by people rather than by the daemon.
OPERATOR_REASONS = frozenset({SuppressionReason.MANUAL, SuppressionReason.IMPORT})


@dataclass(frozen=True, slots=True)
class Entry:
    """The part of a stored suppression that the policy looks at."""

    reason: SuppressionReason
    expires_at: datetime | None = None

    def is_active(self, now: datetime) -> bool:
        """Tell whether the entry still suppresses at ``now``."""
        return self.expires_at is None or self.expires_at > now


@dataclass(frozen=True, slots=True)
class Change:
    """A suppression to write: its reason and expiry (None: no expiry)."""

    reason: SuppressionReason
    expires_at: datetime | None = None


def decide(
    category: Category,
    *,
    verified: bool,
    soft_bounces: int,
    current: Entry | None,
    policy: Policy,
    now: datetime,
) -> Change | None:
    """Return the suppression one recipient event calls for, or None.

    ``soft_bounces`` is the number of stored verified ``mailbox`` events of
    the address within the window, this event included. ``current`` is the
    stored entry of the address, if any.
    """
    if not verified:
        return None
    change = _change_for(category, soft_bounces, policy, now)
    if change is None or not replaces(current, change.reason, now):
        return None
    return change


def replaces(current: Entry | None, reason: SuppressionReason, now: datetime) -> bool:
    """Tell whether an entry with ``reason`` may overwrite ``current``.

    An absent or expired entry is always replaced. An active one only by a
    reason of equal or higher rank, so a soft bounce never shortens a hard
    bounce and the daemon never touches a manual or imported entry.
    """
    if current is None or not current.is_active(now):
        return True
    return _RANK[reason] >= _RANK[current.reason]


def _change_for(
    category: Category, soft_bounces: int, policy: Policy, now: datetime
) -> Change | None:
    if category is Category.ADDRESS:
        return Change(SuppressionReason.HARD_BOUNCE)
    if category is Category.COMPLAINT:
        return Change(SuppressionReason.COMPLAINT)
    if category is Category.MAILBOX and soft_bounces >= policy.soft_bounce_threshold:
        return Change(SuppressionReason.SOFT_BOUNCE, soft_expiry(policy, now))
    return None


def soft_expiry(policy: Policy, now: datetime) -> datetime | None:
    """Return when a soft-bounce suppression made at ``now`` ends."""
    if policy.soft_suppression_days == 0:
        return None
    return now + timedelta(days=policy.soft_suppression_days)


def soft_window_start(policy: Policy, now: datetime) -> datetime:
    """Return the start of the window in which soft bounces are counted."""
    return now - timedelta(days=policy.soft_bounce_window_days)


MAX_DATE_LAG = timedelta(days=7)
"""How much older than its receipt a Date header may be and still be believed.

MTAs stop retrying after a few days (Postfix's ``maximal_queue_lifetime``
is 5 days by default), so a bounce dated earlier than this before it was
received has a wrong clock or a forged header.
"""


def arrival_time(
    dated: datetime | None, received: datetime | None, now: datetime
) -> datetime:
    """Return when a bounce arrived, for counting it in the soft-bounce window.

    ``dated`` is the bounce's Date header and ``received`` the IMAP
    INTERNALDATE or file modification time. The earlier of the two is used,
    and never a time after ``now``. A Date header more than MAX_DATE_LAG
    before ``received`` is ignored, or before ``now`` when the receipt time
    is unknown. Counting by arrival keeps the backlog of a long outage,
    recorded in a few minutes, from falling into one window.
    """
    receipt = now if received is None else min(now, received)
    arrived = receipt
    if dated is not None and dated >= receipt - MAX_DATE_LAG:
        arrived = min(arrived, dated)
    return arrived
