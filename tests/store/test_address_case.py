"""Suppressions and soft-bounce counts ignore the case of the whole address."""

from __future__ import annotations

from datetime import UTC, datetime, timedelta

from sqlalchemy import create_engine, insert

from tests.store.conftest import bounce
from tests.store.test_record import NOW, record
from watchdog.classify.verdict import Category
from watchdog.store import AuditAction, ImportRow, Store, SuppressionReason
from watchdog.store.engine import database_url as sqlalchemy_url
from watchdog.store.migrate import upgrade
from watchdog.store.models import (
    audit_table,
    event_table,
    message_table,
    suppression_table,
)

R = SuppressionReason


def test_lookup_any_case(store: Store) -> None:
    """An entry added as Alice@ is found as alice@ and ALICE@, spelled as added."""
    store.add_suppression("Alice@Example.com", actor="ops")
    for spelling in ("alice@example.com", "ALICE@EXAMPLE.COM", "Alice@example.com"):
        entry = store.suppression(spelling)
        assert entry is not None, spelling
        assert entry.address == "Alice@example.com"
    assert store.is_suppressed("aLiCe@example.com")


def test_add_other_case_same_entry(store: Store) -> None:
    """Adding another spelling updates the one entry and keeps the first spelling."""
    first = store.add_suppression("Alice@example.com", actor="ops")
    second = store.add_suppression(
        "alice@example.com", actor="ops", reason=R.IMPORT, note="again"
    )
    entries = store.list_suppressions()
    assert first is AuditAction.ADD
    assert second is AuditAction.UPDATE
    assert [e.address for e in entries] == ["Alice@example.com"]
    assert entries[0].reason is R.IMPORT


def test_remove_other_case(store: Store) -> None:
    """Removing any spelling removes the entry; history is shared."""
    store.add_suppression("Bob@example.com", actor="ops")
    assert store.remove_suppression("BOB@example.com", actor="ops")
    assert store.suppression("bob@example.com") is None
    actions = [r.action for r in store.suppression_history("bob@example.com")]
    assert actions == [AuditAction.ADD, AuditAction.REMOVE]


def test_import_case_duplicates(store: Store) -> None:
    """Import rows that differ only in case write one entry."""
    rows = [
        ImportRow(1, "Carol@example.com"),
        ImportRow(2, "carol@example.com"),
        ImportRow(3, "CAROL@example.com"),
    ]
    result = store.import_suppressions(rows)
    entries = store.list_suppressions()
    assert result.added == 1
    assert result.added + result.updated + result.unchanged == 3
    assert [e.address for e in entries] == ["Carol@example.com"]


def test_paging_across_spellings(store: Store) -> None:
    """Paging by key returns every entry once, whatever the display case."""
    for name in ("B", "a", "C", "d", "E"):
        store.add_suppression(f"{name}x@example.com", actor="ops")
    listed = [e.address for e in store.iter_suppressions(chunk=2)]  # type: ignore[misc]
    assert listed == [
        "ax@example.com",
        "Bx@example.com",
        "Cx@example.com",
        "dx@example.com",
        "Ex@example.com",
    ]


def test_soft_bounces_any_case(store: Store) -> None:
    """Soft bounces for Dave@ and dave@ count toward one threshold."""
    spellings = ("Dave@example.com", "dave@example.com", "DAVE@example.com")
    results = [
        record(
            store, bounce(s, category=Category.MAILBOX), now=NOW + timedelta(hours=n)
        )
        for n, s in enumerate(spellings)
    ]
    entry = store.suppression("dave@example.com")
    assert results[0].suppressed == ()
    assert results[1].suppressed == ()
    assert results[2].suppressed == ("DAVE@example.com",)
    assert entry is not None
    assert entry.reason is R.SOFT_BOUNCE
    assert entry.address == "DAVE@example.com"
    assert len(store.events_for("Dave@EXAMPLE.com")) == 3


def test_hard_bounce_hits_manual_any_case(store: Store) -> None:
    """A hard bounce for another spelling keeps the manual entry as it was."""
    store.add_suppression("Erin@example.com", actor="ops")
    outcome = record(store, bounce("erin@example.com"))
    entry = store.suppression("ERIN@example.com")
    assert outcome.suppressed == ()
    assert entry is not None
    assert entry.reason is R.MANUAL
    assert [e.address for e in store.list_suppressions()] == ["Erin@example.com"]


def test_migration_merges_duplicates(database_url: str) -> None:
    """Upgrading merges entries that differ in case: earliest, strongest reason."""
    engine = create_engine(sqlalchemy_url(database_url))
    old = datetime(2025, 1, 1, tzinfo=UTC)
    newer = old + timedelta(days=30)
    expiry = newer + timedelta(days=30)
    try:
        with engine.begin() as conn:
            upgrade(conn, "0004")
            conn.execute(
                insert(suppression_table),
                [
                    _row("frank@example.com", "soft_bounce", newer, expiry, 5, 9),
                    _row("Frank@example.com", "soft_bounce", old, None, 2, 3),
                    _row("FRANK@example.com", "hard_bounce", newer, None, 7, 7),
                    _row("Gina@example.com", "complaint", old, None, None, None),
                    _row("henry@example.com", "manual", old, None, None, None),
                ],
            )
            conn.execute(
                insert(audit_table),
                [_audit("Frank@example.com", old), _audit("Gina@example.com", old)],
            )
            conn.execute(
                insert(message_table).values(
                    id=1,
                    source="bounces",
                    folder="INBOX",
                    sha256="0" * 64,
                    size=1,
                    attempts=0,
                    outcome="processed",
                    first_seen=old,
                )
            )
            conn.execute(
                insert(event_table),
                [_event(1, "Ivy@example.com"), _event(1, "ivy@example.com")],
            )
        with engine.begin() as conn:
            upgrade(conn)
    finally:
        engine.dispose()

    store = Store(database_url)
    try:
        entries = {e.lookup_key: e for e in store.list_suppressions()}
        frank = store.suppression("frank@example.com")
        history = store.suppression_history("FRANK@example.com")
        events = store.events_for("ivy@example.com")
    finally:
        store.close()
    assert sorted(entries) == [
        "frank@example.com",
        "gina@example.com",
        "henry@example.com",
    ]
    assert frank is not None
    assert frank.address == "Frank@example.com"
    assert frank.reason is R.HARD_BOUNCE
    assert frank.created_at == old
    assert frank.expires_at is None
    assert frank.first_event_id == 2
    assert frank.last_event_id == 9
    assert entries["gina@example.com"].address == "Gina@example.com"
    assert [r.actor for r in history] == ["ops", "migration"]
    assert len(events) == 1


def _row(
    address: str,
    reason: str,
    created: datetime,
    expires: datetime | None,
    first: int | None,
    last: int | None,
) -> dict[str, object]:
    return {
        "address": address,
        "reason": reason,
        "first_event_id": first,
        "last_event_id": last,
        "created_at": created,
        "updated_at": created,
        "expires_at": expires,
    }


def _audit(address: str, at: datetime) -> dict[str, object]:
    return {
        "address": address,
        "action": "add",
        "reason": "soft_bounce",
        "actor": "ops",
        "note": None,
        "event_id": None,
        "at": at,
    }


def _event(message_id: int, recipient: str) -> dict[str, object]:
    return {
        "message_id": message_id,
        "recipient": recipient,
        "original_recipient": recipient,
        "kind": "bounce",
        "reason": "userunknown",
        "category": "address",
        "hard": True,
        "verified": True,
        "created_at": datetime(2025, 1, 1, tzinfo=UTC),
    }
