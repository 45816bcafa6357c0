"""Races, hostile text and bad URLs against the store."""

from __future__ import annotations

import hashlib
import sqlite3
import threading
import time
from pathlib import Path

import psycopg
import pytest

from tests.servers import postgres
from tests.store.conftest import bounce
from watchdog.classify.verdict import Category
from watchdog.config import Policy
from watchdog.errors import StoreBusy, StoreError
from watchdog.pipeline import MessageRef, Outcome
from watchdog.store import Store, SuppressionReason
from watchdog.store import engine as engine_module
from watchdog.store.engine import create_store_engine

REF = MessageRef("bounces", "INBOX", uidvalidity=7, uid=1)
POLICY = Policy(
    soft_bounce_threshold=3, soft_bounce_window_days=7, soft_suppression_days=30
)


def _record(store: Store, seed: str, category: Category = Category.ADDRESS) -> None:
    store.record(
        REF,
        sha256=hashlib.sha256(seed.encode()).hexdigest(),
        size=100,
        verdict=bounce("r@example.com", category=category),
        outcome=Outcome.PROCESSED,
        verified=True,
        policy=POLICY,
    )


def test_add_hostile_actor(store: Store) -> None:
    """A NUL in the actor name does not abort the change."""
    store.add_suppression("m@example.com", actor="a\x00b")
    (audit,) = store.suppression_history("m@example.com")
    assert audit.actor == "a\ufffdb"


def test_bad_url_port() -> None:
    """A URL that does not parse raises StoreError, not ValueError."""
    with pytest.raises(StoreError, match="invalid database URL"):
        create_store_engine("postgresql://u@[::1/x")


def test_invalid_url_hides_password() -> None:
    """The invalid-URL error does not print the password."""
    with pytest.raises(StoreError) as caught:
        create_store_engine("postgresql://u:hunter2@[::1/x")
    assert "hunter2" not in str(caught.value)


def test_removal_resets_soft_count(store: Store) -> None:
    """Soft bounces from before an operator removal do not count again."""
    for seed in ("before-1", "before-2", "before-3"):
        _record(store, seed, Category.MAILBOX)
    assert store.is_suppressed("r@example.com")
    store.remove_suppression("r@example.com", actor="ops", note="mailbox fixed")
    _record(store, "after-1", Category.MAILBOX)
    assert not store.is_suppressed("r@example.com")


def test_daemon_race_keeps_manual(postgres_url: str) -> None:
    """A manual entry committed during a daemon write is not overwritten."""
    store = Store(postgres_url)
    store.upgrade()
    raw = psycopg.connect(postgres_url)
    raw.execute(
        "INSERT INTO suppression (address, reason, created_at, updated_at) "
        "VALUES ('r@example.com', 'manual', now(), now())"
    )
    worker = threading.Thread(target=_record, args=(store, "race"))
    worker.start()
    time.sleep(0.5)
    raw.commit()
    raw.close()
    worker.join(10)
    entry = store.suppression("r@example.com")
    history = store.suppression_history("r@example.com")
    store.close()
    assert entry is not None
    assert entry.reason is SuppressionReason.MANUAL
    assert history == []


def test_soft_count_race(postgres_url: str) -> None:
    """Two soft bounces in concurrent transactions both count."""
    store = Store(postgres_url)
    store.upgrade()
    _record(store, "soft-1", Category.MAILBOX)
    held = threading.Event()
    release = threading.Event()

    def first() -> None:
        with store.batch():
            _record(store, "soft-2", Category.MAILBOX)
            held.set()
            release.wait(10)

    holder = threading.Thread(target=first)
    holder.start()
    held.wait(10)
    second = threading.Thread(target=_record, args=(store, "soft-3", Category.MAILBOX))
    second.start()
    time.sleep(0.5)
    release.set()
    holder.join(10)
    second.join(10)
    suppressed = store.is_suppressed("r@example.com")
    store.close()
    assert suppressed


def _events(store: Store, address: str) -> int:
    return len(store.events_for(address))


def test_disconnect_then_retry(postgres_url: str) -> None:
    """A batch cut by pg_terminate_backend writes nothing; its retry counts once."""
    store = Store(postgres_url)
    store.upgrade()
    with pytest.raises(StoreBusy), store.batch():
        _record(store, "cut-1")
        postgres.terminate_sessions(postgres_url)
        _record(store, "cut-2")
    assert _events(store, "r@example.com") == 0
    with store.batch():
        _record(store, "cut-1")
        _record(store, "cut-2")
    with store.batch():
        _record(store, "cut-1")
    events = _events(store, "r@example.com")
    store.close()
    assert events == 2


def test_statement_timeout_then_retry(
    postgres_url: str, monkeypatch: pytest.MonkeyPatch
) -> None:
    """A statement past statement_timeout raises StoreBusy; the retry succeeds."""
    monkeypatch.setattr(engine_module, "STATEMENT_TIMEOUT_MS", 300)
    store = Store(postgres_url)
    store.upgrade()
    with psycopg.connect(postgres_url) as other:
        other.execute("LOCK TABLE suppression IN ACCESS EXCLUSIVE MODE")
        with pytest.raises(StoreBusy) as caught:
            store.add_suppression("t@example.com", actor="ops")
    store.add_suppression("t@example.com", actor="ops")
    history = store.suppression_history("t@example.com")
    store.close()
    assert caught.value.reason == "locked"
    assert len(history) == 1


def test_sqlite_locked_then_retry(tmp_path: Path) -> None:
    """A writer holding BEGIN IMMEDIATE makes record raise StoreBusy, then retry."""
    path = tmp_path / "w.db"
    store = Store(f"sqlite:///{path}", busy_timeout=0.2)
    store.upgrade()
    other = sqlite3.connect(path, isolation_level=None)
    other.execute("BEGIN IMMEDIATE")
    with pytest.raises(StoreBusy) as caught:
        _record(store, "locked")
    other.execute("ROLLBACK")
    other.close()
    _record(store, "locked")
    _record(store, "locked")
    events = _events(store, "r@example.com")
    store.close()
    assert caught.value.reason == "locked"
    assert events == 1
