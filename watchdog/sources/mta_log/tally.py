"""Turn parsed log lines into delivery counts per status and provider.

Postfix logs an expiry once per message, without recipients, so the
recipients of each deferred message are kept (``Pending``) until they are
delivered, bounced or expire, or the message leaves the queue. An expiry
then counts one ``expired`` attempt per recipient still pending, under that
recipient's provider. An expiry of a message whose deferrals were never
read (they were logged before the reader started) counts once under the
provider ``unknown``.
"""

from __future__ import annotations

import hashlib
from collections import Counter, OrderedDict
from collections.abc import Iterable, Iterator
from dataclasses import dataclass, field

from watchdog.providers import ProviderMap
from watchdog.sources.mta_log.lines import (
    Attempt,
    LineKind,
    Parsed,
    QueueChange,
    Status,
)

UNKNOWN_PROVIDER = "unknown"
DEFAULT_MAX_PENDING = 100_000
# Longer recipients are kept as their SHA-256. A PostgreSQL B-tree index
# entry is at most 2704 bytes, and the primary key of mta_log_pending also
# contains the log's key and the queue ID. Postfix 3.7.11 itself
# rejects SMTP commands over 2048 bytes (line_length_limit), and postdrop
# rejected a 3016-byte recipient from sendmail, so such lines are forged.
MAX_RECIPIENT_BYTES = 1024

# The ``reason`` label of deferrals: the subject digit of the RFC 3463
# enhanced status code (X.SUBJECT.DETAIL) that Postfix logs as ``dsn=``.
_SUBJECTS = {
    "1": "address",
    "2": "mailbox",
    "3": "mail_system",
    "4": "network",
    "5": "protocol",
    "6": "content",
    "7": "policy",
}
OTHER_REASON = "other"
DEFERRAL_REASONS = (*_SUBJECTS.values(), OTHER_REASON)


def deferral_reason(dsn: str) -> str:
    """Return the reason class of a deferral's enhanced status code."""
    parts = dsn.split(".")
    if len(parts) != 3 or parts[0] != "4":
        return OTHER_REASON
    return _SUBJECTS.get(parts[1], OTHER_REASON)


class Pending:
    """Providers of the deferred recipients of each queued message.

    Contains at most ``max_recipients`` recipients: past that, the messages
    deferred longest ago are forgotten first, and their expiry counts under
    ``unknown``. ``take_dirty`` returns the queue IDs changed since its last
    call, so the caller can persist only those.

    Postfix reuses short queue IDs, so the entries of an ID are dropped
    when a message enters the queue under it (``QueueChange``), even if
    the ``removed`` line of the earlier message was lost.
    """

    def __init__(
        self,
        entries: Iterable[tuple[str, str, str]] = (),
        *,
        max_recipients: int = DEFAULT_MAX_PENDING,
    ) -> None:
        # An OrderedDict finds its oldest key in constant time. A plain dict
        # scans past the slots of every key deleted before it.
        self._messages: OrderedDict[str, dict[str, str]] = OrderedDict()
        self._size = 0
        self._max = max_recipients
        self._dirty: set[str] = set()
        for queue_id, recipient, provider in entries:
            self.add(queue_id, recipient, provider)
        self._dirty.clear()

    def __len__(self) -> int:
        return self._size

    def add(self, queue_id: str, recipient: str, provider: str) -> None:
        """Remember that ``recipient`` of ``queue_id`` was deferred."""
        recipient = _stored_form(recipient)
        recipients = self._messages.setdefault(queue_id, {})
        if recipient in recipients:
            return
        recipients[recipient] = provider
        self._size += 1
        self._dirty.add(queue_id)
        while self._size > self._max:
            self.pop(next(iter(self._messages)))

    def resolve(self, queue_id: str, recipient: str) -> None:
        """Forget ``recipient`` of ``queue_id``: it was delivered or bounced."""
        recipient = _stored_form(recipient)
        recipients = self._messages.get(queue_id)
        if recipients is None or recipients.pop(recipient, None) is None:
            return
        self._size -= 1
        self._dirty.add(queue_id)
        if not recipients:
            del self._messages[queue_id]

    def pop(self, queue_id: str) -> list[str]:
        """Forget the message ``queue_id``; return its pending providers."""
        recipients = self._messages.pop(queue_id, None)
        if recipients is None:
            return []
        self._size -= len(recipients)
        self._dirty.add(queue_id)
        return list(recipients.values())

    def recipients(self, queue_id: str) -> list[tuple[str, str]]:
        """Return the (recipient, provider) pairs pending for ``queue_id``."""
        return list(self._messages.get(queue_id, {}).items())

    def take_dirty(self) -> set[str]:
        """Return and clear the queue IDs changed since the last call."""
        dirty, self._dirty = self._dirty, set()
        return dirty

    def __iter__(self) -> Iterator[tuple[str, str, str]]:
        for queue_id, recipients in self._messages.items():
            for recipient, provider in recipients.items():
                yield queue_id, recipient, provider


def _stored_form(recipient: str) -> str:
    """Return ``recipient``, or its SHA-256 when it is over MAX_RECIPIENT_BYTES."""
    encoded = recipient.encode()
    if len(encoded) <= MAX_RECIPIENT_BYTES:
        return recipient
    return "sha256:" + hashlib.sha256(encoded).hexdigest()


@dataclass(slots=True)
class Counts:
    """Counts of a stretch of log lines, not yet added to the metrics.

    ``attempts`` is keyed by (status, provider) and ``deferrals`` by
    (provider, reason). ``last_stamp`` is the timestamp of the last
    delivery line, as written in the log.
    """

    attempts: Counter[tuple[Status, str]] = field(default_factory=Counter)
    deferrals: Counter[tuple[str, str]] = field(default_factory=Counter)
    lines: Counter[LineKind] = field(default_factory=Counter)
    last_stamp: bytes | None = None

    def merge(self, other: Counts) -> None:
        """Add ``other``'s counts to these."""
        self.attempts.update(other.attempts)
        self.deferrals.update(other.deferrals)
        self.lines.update(other.lines)
        if other.last_stamp is not None:
            self.last_stamp = other.last_stamp


class Tally:
    """Count parsed lines into ``counts``, tracking deferred recipients."""

    def __init__(self, providers: ProviderMap, pending: Pending | None = None) -> None:
        self._providers = providers
        self.pending = pending if pending is not None else Pending()
        self.counts = Counts()

    def take(self) -> Counts:
        """Return the counts so far and start new ones."""
        counts, self.counts = self.counts, Counts()
        return counts

    def add(self, parsed: Parsed) -> None:
        """Count one parsed line."""
        if isinstance(parsed, LineKind):
            self.counts.lines[parsed] += 1
            return
        if isinstance(parsed, QueueChange):
            self.counts.lines[LineKind.QUEUE] += 1
            self.pending.pop(parsed.queue_id)
            return
        self.counts.lines[LineKind.DELIVERY] += 1
        self.counts.last_stamp = parsed.stamp
        self._attempt(parsed)

    def _attempt(self, attempt: Attempt) -> None:
        attempts = self.counts.attempts
        if attempt.status is Status.EXPIRED and not attempt.recipient:
            providers = self.pending.pop(attempt.queue_id) or [UNKNOWN_PROVIDER]
            for provider in providers:
                attempts[Status.EXPIRED, provider] += 1
            return
        provider = self._providers.provider(attempt.recipient)
        attempts[attempt.status, provider] += 1
        if attempt.status is Status.DEFERRED:
            reason = deferral_reason(attempt.dsn)
            self.counts.deferrals[provider, reason] += 1
            self.pending.add(attempt.queue_id, attempt.recipient, provider)
        else:
            self.pending.resolve(attempt.queue_id, attempt.recipient)
