"""The stored MTA-STS policy of each domain, and opening it for check domain."""

from __future__ import annotations

from datetime import UTC, datetime, timedelta
from pathlib import Path

from watchdog.checks.auth.mta_sts_drift import PolicySnapshot, UnavailableHistory
from watchdog.config import Database
from watchdog.store import Store
from watchdog.store.mta_sts_history import MtaStsHistory, open_policy_history

FETCHED = datetime(2026, 12, 1, 12, 0, tzinfo=UTC)
SNAPSHOT = PolicySnapshot(
    policy_id="20261201",
    body_sha256="a" * 64,
    mode="enforce",
    mx=("*.b.test", "mx1.a.test"),
    max_age=86400,
    fetched_at=FETCHED,
    changed_at=FETCHED - timedelta(days=3),
)


async def test_load_missing_domain(store: Store) -> None:
    """A domain never stored loads as None."""
    assert await MtaStsHistory.of(store).load("a.test") is None


async def test_save_load_round_trip(store: Store) -> None:
    """Every field, times in UTC included, comes back as saved."""
    history = MtaStsHistory.of(store)
    await history.save("a.test", SNAPSHOT)
    assert await history.load("a.test") == SNAPSHOT


async def test_save_replaces_row(store: Store) -> None:
    """A second save replaces the row, stale fields included."""
    history = MtaStsHistory.of(store)
    await history.save("a.test", SNAPSHOT)
    stale = PolicySnapshot(
        policy_id=SNAPSHOT.policy_id,
        body_sha256="b" * 64,
        mode="testing",
        mx=("mx1.a.test",),
        max_age=604800,
        fetched_at=FETCHED + timedelta(days=1),
        changed_at=FETCHED + timedelta(days=1),
        stale_until=FETCHED + timedelta(days=2),
        stale_changes="mode enforce -> testing",
    )
    await history.save("a.test", stale)
    await history.save("b.test", SNAPSHOT)
    assert await history.load("a.test") == stale
    assert await history.load("b.test") == SNAPSHOT


def test_open_missing_file(tmp_path: Path) -> None:
    """A missing SQLite file is not created and gives a reason to show."""
    path = tmp_path / "absent.db"
    with open_policy_history(Database(url=f"sqlite:///{path}")) as history:
        assert isinstance(history, UnavailableHistory)
        assert str(path) in history.reason
    assert not path.exists()


def test_open_without_table(tmp_path: Path) -> None:
    """A database from before the table existed asks for db upgrade."""
    path = tmp_path / "old.db"
    path.touch()
    with open_policy_history(Database(url=f"sqlite:///{path}")) as history:
        assert isinstance(history, UnavailableHistory)
        assert "db upgrade" in history.reason


async def test_open_upgraded_database(database_url: str) -> None:
    """An upgraded database is used, and what is saved is there next time."""
    store = Store(database_url)
    store.upgrade()
    store.close()
    with open_policy_history(Database(url=database_url)) as history:
        assert isinstance(history, MtaStsHistory)
        await history.save("a.test", SNAPSHOT)
    with open_policy_history(Database(url=database_url)) as history:
        assert isinstance(history, MtaStsHistory)
        assert await history.load("a.test") == SNAPSHOT


def test_open_unreachable_postgres() -> None:
    """A PostgreSQL server that refuses connections gives a reason, not an error."""
    url = "postgresql://watchdog@127.0.0.1:1/watchdog"
    with open_policy_history(Database(url=url)) as history:
        assert isinstance(history, UnavailableHistory)
        assert "cannot be opened" in history.reason
