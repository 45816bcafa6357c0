"""Values the store returns: frozen records, never live database rows."""

from __future__ import annotations

from collections.abc import Mapping
from dataclasses import dataclass, field
from datetime import datetime
from enum import StrEnum

from watchdog.addresses import address_key
from watchdog.pipeline import Outcome
from watchdog.policy import Entry, SuppressionReason


class AuditAction(StrEnum):
    """Kind of change made to a suppression entry."""

    ADD = "add"
    UPDATE = "update"
    REMOVE = "remove"


@dataclass(frozen=True, slots=True)
class Recorded:
    """Result of ``Store.record``.

    ``inserted`` is False when these bytes were already recorded with a
    final outcome, and then nothing else was written.
    """

    inserted: bool
    events_added: int = 0
    suppressed: tuple[str, ...] = ()


NOT_RECORDED = Recorded(inserted=False)


@dataclass(frozen=True, slots=True)
class Suppression:
    """An entry of the suppression list.

    ``address`` is spelled as it was first added. ``key`` is the address
    with its local part lower-cased, which lookups match on; None means
    the key of ``address``.
    """

    address: str
    reason: SuppressionReason
    created_at: datetime
    updated_at: datetime
    expires_at: datetime | None = None
    first_event_id: int | None = None
    last_event_id: int | None = None
    key: str | None = None

    @property
    def lookup_key(self) -> str:
        """The key lookups and paging match on."""
        return self.key if self.key is not None else address_key(self.address)

    def is_active(self, now: datetime) -> bool:
        """Tell whether the entry still suppresses at ``now``."""
        return self.expires_at is None or self.expires_at > now

    def entry(self) -> Entry:
        """Return the part of the entry the policy decides on."""
        return Entry(self.reason, self.expires_at)


@dataclass(frozen=True, slots=True)
class AuditRecord:
    """One row of the suppression audit history."""

    address: str
    action: AuditAction
    reason: str
    actor: str
    at: datetime
    note: str | None = None
    event_id: int | None = None


@dataclass(frozen=True, slots=True)
class EventRecord:
    """One stored recipient event."""

    id: int
    message_id: int
    recipient: str
    kind: str
    reason: str
    category: str
    hard: bool
    verified: bool
    created_at: datetime
    status: str | None = None
    reply_code: str | None = None
    diagnostic: str | None = None
    remote_mta: str | None = None


@dataclass(frozen=True, slots=True)
class ImportRow:
    """One valid row of a suppression import; ``line`` is its line number."""

    line: int
    address: str
    reason: SuppressionReason = SuppressionReason.IMPORT
    created_at: datetime | None = None
    note: str | None = None
    expires_at: datetime | None = None


@dataclass(frozen=True, slots=True)
class ImportResult:
    """Counts of an import: rows added, changed and left as they were."""

    added: int = 0
    updated: int = 0
    unchanged: int = 0

    def __add__(self, other: ImportResult) -> ImportResult:
        return ImportResult(
            self.added + other.added,
            self.updated + other.updated,
            self.unchanged + other.unchanged,
        )


@dataclass(frozen=True, slots=True)
class Stats:
    """Row counts for the scan summary, keyed by outcome or reason."""

    messages: Mapping[str, int] = field(default_factory=dict)
    events: Mapping[str, int] = field(default_factory=dict)
    suppressions: Mapping[str, int] = field(default_factory=dict)


@dataclass(frozen=True, slots=True)
class Unmoved:
    """A recorded IMAP message whose move out of the source folder is unconfirmed."""

    sha256: str
    uid: int
    kind: str
    outcome: Outcome


@dataclass(frozen=True, slots=True)
class Counted:
    """The kind and outcome stored for a message, as the message counter labels it."""

    kind: str
    outcome: str
