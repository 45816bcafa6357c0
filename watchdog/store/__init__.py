"""The database: processed messages, events, the suppression list, mailbox state.

SQLite by default, PostgreSQL by URL. ``Store`` is the only entry point;
everything it returns is a frozen record, never a live row.
"""

from __future__ import annotations

from watchdog.policy import SuppressionReason

# Imported for their side effect: they add the dnsbl_listing,
# learned_identifier, mta_log_position, mta_log_pending and mta_sts_policy
# tables to the models' metadata, which Alembic and the schema test compare
# against.
from watchdog.store import dnsbl_history, learned, mta_log_state  # noqa: F401
from watchdog.store import mta_sts_history as mta_sts_history
from watchdog.store.listing import InvalidAddress
from watchdog.store.records import (
    NOT_RECORDED,
    AuditAction,
    AuditRecord,
    EventRecord,
    ImportResult,
    ImportRow,
    Recorded,
    Stats,
    Suppression,
)
from watchdog.store.store import Store

__all__ = [
    "NOT_RECORDED",
    "AuditAction",
    "AuditRecord",
    "EventRecord",
    "ImportResult",
    "ImportRow",
    "InvalidAddress",
    "Recorded",
    "Stats",
    "Store",
    "Suppression",
    "SuppressionReason",
]
