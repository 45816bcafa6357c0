"""Fixtures for the store tests: an upgraded store on each database."""

from __future__ import annotations

from collections.abc import Iterator

import pytest

from tests.servers import postgres
from watchdog.classify.verdict import Category, Kind, RecipientVerdict, Verdict
from watchdog.store import Store


@pytest.fixture
def store(database_url: str) -> Iterator[Store]:
    """A store on an empty database with the schema applied."""
    opened = Store(database_url, busy_timeout=1.0)
    opened.upgrade()
    try:
        yield opened
    finally:
        opened.close()


def bounce(
    *addresses: str, category: Category = Category.ADDRESS, **extra: str
) -> Verdict:
    """Build a bounce verdict with one recipient verdict per address."""
    reason = {
        Category.ADDRESS: "userunknown",
        Category.MAILBOX: "mailboxfull",
        Category.COMPLAINT: "feedback",
    }.get(category, "blocked")
    recipients = tuple(
        RecipientVerdict(
            address=address,
            reason=reason,
            hard=category is Category.ADDRESS,
            category=category,
            **extra,  # type: ignore[arg-type]
        )
        for address in addresses
    )
    kind = Kind.COMPLAINT if category is Category.COMPLAINT else Kind.BOUNCE
    return Verdict(kind=kind, detector="test", recipients=recipients)


@pytest.fixture
def postgres_url() -> Iterator[str]:
    """The URL of a fresh PostgreSQL database, for PostgreSQL-only tests."""
    if not postgres.available():
        pytest.skip(f"PostgreSQL at {postgres.admin_url()!r} is not reachable")
    with postgres.fresh_database() as url:
        yield url
