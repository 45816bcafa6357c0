"""The suppression list: lookups, edits, import and audit history."""

from __future__ import annotations

from datetime import UTC, datetime, timedelta

import pytest

from watchdog.store import (
    AuditAction,
    ImportResult,
    ImportRow,
    InvalidAddress,
    Store,
    SuppressionReason,
)

R = SuppressionReason


def test_add_and_lookup(store: Store) -> None:
    """An added address is found under any spelling of its domain."""
    action = store.add_suppression("a@Bücher.Example", actor="ops", note="asked")
    assert action is AuditAction.ADD
    entry = store.suppression("a@BÜCHER.example")
    assert entry is not None
    assert entry.address == "a@xn--bcher-kva.example"
    assert entry.reason is R.MANUAL


def test_add_invalid(store: Store) -> None:
    """An address that does not normalise raises InvalidAddress."""
    with pytest.raises(InvalidAddress, match="'no-at-sign'"):
        store.add_suppression("no-at-sign", actor="ops")


def test_remove_audited(store: Store) -> None:
    """Removal deletes the entry and records actor and note."""
    store.add_suppression("a@example.com", actor="ops")
    assert store.remove_suppression("a@example.com", actor="alice", note="ticket 7")
    assert store.suppression("a@example.com") is None
    last = store.suppression_history("a@example.com")[-1]
    assert last.action is AuditAction.REMOVE
    assert last.actor == "alice"
    assert last.note == "ticket 7"


def test_remove_missing(store: Store) -> None:
    """Removing an address not on the list returns False and audits nothing."""
    assert not store.remove_suppression("a@example.com", actor="ops")
    assert store.suppression_history("a@example.com") == []


def test_list_filters(store: Store) -> None:
    """list_suppressions filters by reason and time and stops at the limit."""
    past = datetime(2020, 1, 1, tzinfo=UTC)
    store.add_suppression("old@example.com", actor="ops", now=past)
    store.add_suppression("b@example.com", actor="ops", reason=R.COMPLAINT)
    store.add_suppression("a@example.com", actor="ops")
    everything = [e.address for e in store.list_suppressions()]
    assert everything == ["a@example.com", "b@example.com", "old@example.com"]
    complaints = store.list_suppressions(reason=R.COMPLAINT)
    assert [e.address for e in complaints] == ["b@example.com"]
    recent = store.list_suppressions(since=past + timedelta(days=1))
    assert [e.address for e in recent] == ["a@example.com", "b@example.com"]
    assert len(store.list_suppressions(limit=1)) == 1


def test_iterate_pages(store: Store) -> None:
    """Iteration reads page after page in address order."""
    for i in range(7):
        store.add_suppression(f"u{i}@example.com", actor="ops")
    addresses = [e.address for e in store.iter_suppressions(chunk=3)]
    assert addresses == [f"u{i}@example.com" for i in range(7)]


def test_import_counts(store: Store) -> None:
    """Import adds new rows, updates weaker ones and keeps stronger ones."""
    store.add_suppression("manual@example.com", actor="ops")
    store.add_suppression("soft@example.com", actor="ops", reason=R.SOFT_BOUNCE)
    rows = [
        ImportRow(1, "new@example.com"),
        ImportRow(2, "manual@example.com"),
        ImportRow(3, "soft@example.com", R.COMPLAINT),
    ]
    result = store.import_suppressions(rows, chunk=2)
    assert result == ImportResult(added=1, updated=1, unchanged=1)
    manual = store.suppression("manual@example.com")
    assert manual is not None
    assert manual.reason is R.MANUAL


def test_import_keeps_created_at(store: Store) -> None:
    """An imported created_at is kept for new entries."""
    created = datetime(2019, 5, 1, tzinfo=UTC)
    store.import_suppressions([ImportRow(1, "a@example.com", created_at=created)])
    entry = store.suppression("a@example.com")
    assert entry is not None
    assert entry.created_at == created
    assert store.suppression_history("a@example.com")[0].actor == "import"


def test_expired_entry_inactive(store: Store) -> None:
    """An entry past its expiry is returned but no longer active."""
    now = datetime.now(UTC)
    store.add_suppression(
        "a@example.com", actor="ops", reason=R.SOFT_BOUNCE, expires_at=now
    )
    entry = store.suppression("a@example.com")
    assert entry is not None
    assert not entry.is_active(now)


def test_times_are_utc(store: Store) -> None:
    """Times come back aware and in UTC."""
    store.add_suppression("a@example.com", actor="ops")
    entry = store.suppression("a@example.com")
    assert entry is not None
    assert entry.created_at.tzinfo is UTC


@pytest.mark.parametrize(
    "address",
    [
        "a" * 65 + "@example.com",
        "é" * 33 + "@example.com",
        "a@" + "b" * 62 + "." + "c" * 62 + "." + "d" * 62 + "." + "e" * 62 + ".org",
        "a\nb@example.com",
    ],
    ids=["local-65", "local-66-octets", "total-257", "newline"],
)
def test_address_limits(store: Store, address: str) -> None:
    """Addresses past the RFC 5321 octet limits or with controls are rejected."""
    with pytest.raises(InvalidAddress):
        store.add_suppression(address, actor="ops")


def test_address_at_limit(store: Store) -> None:
    """A 64-octet local part is accepted."""
    address = "a" * 64 + "@example.com"
    assert store.add_suppression(address, actor="ops") is AuditAction.ADD


def test_is_suppressed(store: Store) -> None:
    """is_suppressed is true only for an active entry."""
    now = datetime.now(UTC)
    store.add_suppression("a@example.com", actor="ops")
    store.add_suppression(
        "b@example.com", actor="ops", reason=R.SOFT_BOUNCE, expires_at=now
    )
    assert store.is_suppressed("a@example.com")
    assert not store.is_suppressed("b@example.com", now)
    assert not store.is_suppressed("c@example.com")
    assert not store.is_suppressed("not an address")
