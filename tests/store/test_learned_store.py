"""The learned_identifier table: refresh, cap and expiry on both databases."""

from __future__ import annotations

from datetime import UTC, datetime, timedelta

from watchdog.checks.auth.learned import Learned, LearnedKind
from watchdog.store import Store
from watchdog.store.learned import (
    EXPIRY,
    MAX_PER_DOMAIN,
    load_learned,
    record_learned,
)

NOW = datetime(2026, 12, 1, tzinfo=UTC)
SELECTOR = LearnedKind.DKIM_SELECTOR


def _selector(value: str, domain: str = "good.example") -> Learned:
    return Learned(SELECTOR, domain, value)


def test_saved_and_loaded(store: Store) -> None:
    """Saved values load back; saving again adds no row."""
    items = {
        _selector("s1"),
        Learned(LearnedKind.LINK_DOMAIN, "good.example", "x.example"),
    }
    assert record_learned(store, items, NOW) == 0
    assert record_learned(store, items, NOW + timedelta(days=1)) == 0
    assert load_learned(store, NOW + timedelta(days=1)) == items


def test_expired_after_thirty_days(store: Store) -> None:
    """A value not seen for EXPIRY is gone; one seen again stays."""
    record_learned(store, {_selector("old"), _selector("kept")}, NOW)
    later = NOW + EXPIRY - timedelta(hours=1)
    record_learned(store, {_selector("kept")}, later)
    after = NOW + EXPIRY + timedelta(hours=1)
    assert load_learned(store, after) == {_selector("kept")}


def test_capped_per_domain(store: Store) -> None:
    """New values beyond MAX_PER_DOMAIN are dropped; other domains still learn."""
    flood = {_selector(f"f{n}") for n in range(MAX_PER_DOMAIN + 10)}
    dropped = record_learned(store, flood, NOW)
    assert dropped == 10
    other = _selector("s1", domain="other.example")
    assert record_learned(store, {other}, NOW) == 0
    loaded = load_learned(store, NOW)
    assert len([item for item in loaded if item.domain == "good.example"]) == (
        MAX_PER_DOMAIN
    )
    assert other in loaded


def test_expiry_frees_cap(store: Store) -> None:
    """Once the flood expires, a new value is learned again."""
    flood = {_selector(f"f{n}") for n in range(MAX_PER_DOMAIN)}
    record_learned(store, flood, NOW)
    assert record_learned(store, {_selector("new")}, NOW + timedelta(days=1)) == 1
    later = NOW + EXPIRY + timedelta(days=1)
    assert record_learned(store, {_selector("new")}, later) == 0
    assert load_learned(store, later) == {_selector("new")}


def test_overlong_value_dropped(store: Store) -> None:
    """A value longer than a domain name can be is not stored."""
    assert record_learned(store, {_selector("a" * 300)}, NOW) == 1
    assert load_learned(store, NOW) == set()
