"""The suppression policy, decided without a database."""

from __future__ import annotations

from datetime import UTC, datetime, timedelta

import pytest

from watchdog.classify.verdict import Category
from watchdog.config import Policy
from watchdog.policy import Change, Entry, SuppressionReason, decide, replaces

NOW = datetime(2026, 3, 1, 12, 0, tzinfo=UTC)
POLICY = Policy(
    soft_bounce_threshold=3, soft_bounce_window_days=7, soft_suppression_days=30
)
R = SuppressionReason


def _decide(
    category: Category,
    *,
    verified: bool = True,
    soft: int = 0,
    current: Entry | None = None,
    policy: Policy = POLICY,
) -> Change | None:
    return decide(
        category,
        verified=verified,
        soft_bounces=soft,
        current=current,
        policy=policy,
        now=NOW,
    )


def test_hard_bounce_suppresses_at_once() -> None:
    """A verified hard bounce suppresses with no expiry."""
    assert _decide(Category.ADDRESS) == Change(R.HARD_BOUNCE, None)


def test_complaint_suppresses_at_once() -> None:
    """A verified complaint suppresses with no expiry."""
    assert _decide(Category.COMPLAINT) == Change(R.COMPLAINT, None)


@pytest.mark.parametrize("category", list(Category))
def test_unverified_never_suppresses(category: Category) -> None:
    """An unverified event suppresses no address, whatever its category."""
    assert _decide(category, verified=False, soft=99) is None


@pytest.mark.parametrize(
    "category",
    [Category.REPUTATION, Category.TRANSIENT, Category.AUTO_REPLY, Category.DELIVERED],
)
def test_harmless_categories(category: Category) -> None:
    """Reputation, transient, auto-reply and delivered never suppress."""
    assert _decide(category, soft=99) is None


def test_soft_below_threshold() -> None:
    """Two mailbox events of three needed suppress nothing."""
    assert _decide(Category.MAILBOX, soft=2) is None


def test_soft_at_threshold() -> None:
    """The third mailbox event in the window suppresses for 30 days."""
    change = _decide(Category.MAILBOX, soft=3)
    assert change == Change(R.SOFT_BOUNCE, NOW + timedelta(days=30))


def test_soft_without_expiry() -> None:
    """soft_suppression_days = 0 makes a soft-bounce entry permanent."""
    policy = POLICY.model_copy(update={"soft_suppression_days": 0})
    change = _decide(Category.MAILBOX, soft=3, policy=policy)
    assert change == Change(R.SOFT_BOUNCE, None)


@pytest.mark.parametrize("operator", [R.MANUAL, R.IMPORT])
@pytest.mark.parametrize(
    "category", [Category.ADDRESS, Category.COMPLAINT, Category.MAILBOX]
)
def test_operator_entry_kept(operator: SuppressionReason, category: Category) -> None:
    """The daemon never overwrites a manual or imported entry."""
    assert _decide(category, soft=9, current=Entry(operator)) is None


def test_hard_replaces_soft() -> None:
    """A hard bounce turns a soft-bounce entry permanent."""
    current = Entry(R.SOFT_BOUNCE, NOW + timedelta(days=3))
    assert _decide(Category.ADDRESS, current=current) == Change(R.HARD_BOUNCE, None)


def test_soft_keeps_hard() -> None:
    """A soft bounce never shortens a hard-bounce entry."""
    assert _decide(Category.MAILBOX, soft=5, current=Entry(R.HARD_BOUNCE)) is None


def test_complaint_replaces_hard() -> None:
    """A complaint outranks a hard bounce."""
    change = _decide(Category.COMPLAINT, current=Entry(R.HARD_BOUNCE))
    assert change == Change(R.COMPLAINT, None)


def test_expired_entry_replaced() -> None:
    """An expired entry counts as absent, even a manual one."""
    current = Entry(R.MANUAL, NOW - timedelta(seconds=1))
    assert replaces(current, R.SOFT_BOUNCE, NOW)


def test_soft_refreshes_soft() -> None:
    """A new soft-bounce suppression extends an active one."""
    current = Entry(R.SOFT_BOUNCE, NOW + timedelta(days=1))
    assert _decide(Category.MAILBOX, soft=3, current=current) == Change(
        R.SOFT_BOUNCE, NOW + timedelta(days=30)
    )


def test_entry_active_until_expiry() -> None:
    """An entry stops suppressing exactly at its expiry."""
    entry = Entry(R.SOFT_BOUNCE, NOW)
    assert entry.is_active(NOW - timedelta(microseconds=1))
    assert not entry.is_active(NOW)
