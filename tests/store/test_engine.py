"""Engine settings and the translation of database failures."""

from __future__ import annotations

import sqlite3
import time
from pathlib import Path

import psycopg
import pytest
from sqlalchemy import event, text

from tests.servers import postgres
from tests.store.conftest import bounce
from tests.store.test_record import digest, record
from watchdog.errors import StoreBusy, StoreError
from watchdog.store import Store
from watchdog.store import engine as engine_module
from watchdog.store.engine import database_url


def sqlite_store(tmp_path: Path, busy_timeout: float = 1.0) -> Store:
    store = Store(f"sqlite:///{tmp_path / 'w.db'}", busy_timeout=busy_timeout)
    store.upgrade()
    return store


def test_sqlite_pragmas(tmp_path: Path) -> None:
    """SQLite runs in WAL mode with synchronous=FULL."""
    store = sqlite_store(tmp_path)
    with store._engine.connect() as conn:
        assert conn.execute(text("PRAGMA journal_mode")).scalar() == "wal"
        assert conn.execute(text("PRAGMA synchronous")).scalar() == 2
        assert conn.execute(text("PRAGMA foreign_keys")).scalar() == 1
    store.close()


def test_postgres_url_mapped() -> None:
    """postgresql:// URLs use the psycopg 3 driver."""
    assert database_url("postgresql://u@h/db") == "postgresql+psycopg://u@h/db"


def test_unknown_scheme() -> None:
    """A URL of another database is rejected with the fix."""
    with pytest.raises(StoreError, match="use sqlite or postgresql"):
        Store("mysql://u@h/db")


def test_locked_waits_then_busy(tmp_path: Path) -> None:
    """A writer waits for the busy timeout, then raises StoreBusy(locked)."""
    store = sqlite_store(tmp_path, busy_timeout=0.3)
    other = sqlite3.connect(tmp_path / "w.db", isolation_level=None)
    other.execute("BEGIN IMMEDIATE")
    started = time.monotonic()
    try:
        with pytest.raises(StoreBusy) as caught:
            record(store, bounce("a@example.com"))
    finally:
        other.execute("ROLLBACK")
        other.close()
    assert caught.value.reason == "locked"
    assert time.monotonic() - started >= 0.25
    assert isinstance(caught.value.__cause__, Exception)
    store.close()


def test_lock_released_then_writes(tmp_path: Path) -> None:
    """A writer that waits less than the timeout succeeds."""
    store = sqlite_store(tmp_path, busy_timeout=5.0)
    other = sqlite3.connect(tmp_path / "w.db", isolation_level=None)
    other.execute("BEGIN IMMEDIATE")
    other.execute("ROLLBACK")
    other.close()
    assert record(store, bounce("a@example.com")).inserted
    store.close()


def test_disk_full(tmp_path: Path) -> None:
    """SQLite's "database or disk is full" becomes StoreBusy(disk_full).

    PRAGMA max_page_count makes SQLite report a full disk on demand, the
    same error a full file system produces.
    """
    store = sqlite_store(tmp_path)
    store.close()

    @event.listens_for(store._engine, "connect")
    def _small(dbapi_connection: sqlite3.Connection, _record: object) -> None:
        pages = dbapi_connection.execute("PRAGMA page_count").fetchone()[0]
        dbapi_connection.execute(f"PRAGMA max_page_count = {pages}")

    diagnostic = "x" * 1000
    with pytest.raises(StoreBusy) as caught:
        for _ in range(200):
            record(store, bounce("a@example.com", diagnostic=diagnostic))
    assert caught.value.reason == "disk_full"
    store.close()


def test_corrupt_file(tmp_path: Path) -> None:
    """A file that is no database raises StoreError naming the problem."""
    path = tmp_path / "w.db"
    path.write_bytes(b"not a database" * 1000)
    store = Store(f"sqlite:///{path}")
    with pytest.raises(StoreError, match="not a database"):
        store.check()
    store.close()


def test_check_healthy(store: Store) -> None:
    """check passes on a fresh database."""
    store.check()


@pytest.mark.postgres
def test_disconnect_in_batch(postgres_url: str) -> None:
    """Sessions ended mid-batch raise StoreBusy(disconnected)."""
    store = Store(postgres_url)
    store.upgrade()
    with pytest.raises(StoreBusy) as caught, store.batch():
        record(store, bounce("a@example.com"))
        postgres.terminate_sessions(postgres_url)
        record(store, bounce("b@example.com"))
    assert caught.value.reason == "disconnected"
    store.close()


@pytest.mark.postgres
def test_reconnect_after_restart(postgres_url: str) -> None:
    """After the server drops every session, the next call reconnects."""
    store = Store(postgres_url)
    store.upgrade()
    sha = digest()
    record(store, bounce("a@example.com"), sha256=sha)
    assert postgres.terminate_sessions(postgres_url) >= 1
    assert store.is_recorded(sha)
    store.close()


def test_disk_full_in_batch(tmp_path: Path) -> None:
    """A full disk inside a batch raises StoreBusy(disk_full), not a ROLLBACK error."""
    store = sqlite_store(tmp_path)
    store.close()

    @event.listens_for(store._engine, "connect")
    def _small(dbapi_connection: sqlite3.Connection, _record: object) -> None:
        pages = dbapi_connection.execute("PRAGMA page_count").fetchone()[0]
        dbapi_connection.execute(f"PRAGMA max_page_count = {pages}")

    diagnostic = "x" * 1000
    with pytest.raises(StoreBusy) as caught, store.batch():
        for _ in range(200):
            record(store, bounce("a@example.com", diagnostic=diagnostic))
    assert caught.value.reason == "disk_full"
    store.close()


@pytest.mark.postgres
def test_lock_timeout(postgres_url: str, monkeypatch: pytest.MonkeyPatch) -> None:
    """A row lock held past lock_timeout raises StoreBusy(locked)."""
    monkeypatch.setattr(engine_module, "LOCK_TIMEOUT_MS", 300)
    store = Store(postgres_url)
    store.upgrade()
    store.add_suppression("a@example.com", actor="ops")
    with psycopg.connect(postgres_url) as other:
        other.execute("SELECT * FROM suppression FOR UPDATE")
        started = time.monotonic()
        with pytest.raises(StoreBusy) as caught:
            store.remove_suppression("a@example.com", actor="ops")
        waited = time.monotonic() - started
    assert caught.value.reason == "locked"
    assert waited >= 0.25
    store.close()
