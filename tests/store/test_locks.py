"""One consumer per folder: advisory locks and flock."""

from __future__ import annotations

import subprocess
import sys

import psycopg
import pytest

from tests.servers import postgres
from watchdog.store import Store
from watchdog.store.locks import ConsumerLockLost, PostgresLock, lock_key


def test_second_holder_refused(store: Store) -> None:
    """While one holder has the folder, a second one gets False."""
    with (
        store.consumer_lock("bounces", "INBOX") as first,
        store.consumer_lock("bounces", "INBOX") as second,
    ):
        assert first
        assert not second


def test_released_after_block(store: Store) -> None:
    """The lock is free again once the block ends."""
    with store.consumer_lock("bounces", "INBOX") as first:
        assert first
    with store.consumer_lock("bounces", "INBOX") as again:
        assert again


def test_folders_independent(store: Store) -> None:
    """Locks of different folders do not conflict."""
    with (
        store.consumer_lock("bounces", "INBOX") as inbox,
        store.consumer_lock("feedback", "INBOX") as feedback,
    ):
        assert inbox
        assert feedback


def test_other_process_refused(store: Store) -> None:
    """A lock held by this process refuses another process."""
    script = (
        "import sys; from watchdog.store import Store\n"
        "s = Store(sys.argv[1])\n"
        "with s.consumer_lock('bounces', 'INBOX') as won: print(won)\n"
    )
    with store.consumer_lock("bounces", "INBOX") as won:
        assert won
        output = subprocess.run(
            [sys.executable, "-c", script, store.url],
            capture_output=True,
            text=True,
            check=True,
            timeout=60,
        ).stdout
    assert output.strip() == "False"


def test_key_stable() -> None:
    """The lock key is a signed 64-bit number that depends on both names."""
    key = lock_key("bounces", "INBOX")
    assert key == lock_key("bounces", "INBOX")
    assert key != lock_key("bounces", "INBOX2")
    assert -(2**63) <= key < 2**63


def terminate_backend(pid: int) -> None:
    """End one PostgreSQL session as an operator or a failover would."""
    with psycopg.connect(postgres.admin_url(), autocommit=True) as conn:
        conn.execute("SELECT pg_terminate_backend(%s)", (pid,))


def test_check_passes_while_held(store: Store) -> None:
    """check() returns quietly while the lock is held."""
    lock = store.take_consumer_lock("bounces", "INBOX")
    try:
        assert lock.won
        lock.check()
    finally:
        lock.release()


def test_backend_terminated_detected(postgres_url: str) -> None:
    """Terminating the lock's session makes check() raise; the lock is free."""
    store = Store(postgres_url)
    store.upgrade()
    lock = store.take_consumer_lock("bounces", "INBOX")
    try:
        assert isinstance(lock, PostgresLock)
        assert lock.won
        assert lock.backend_pid is not None
        terminate_backend(lock.backend_pid)
        with pytest.raises(ConsumerLockLost, match="consumer lock lost") as caught:
            lock.check()
        with store.consumer_lock("bounces", "INBOX") as again:
            retaken = again
    finally:
        lock.release()
        store.close()
    assert str(lock.backend_pid) in str(caught.value)
    assert retaken
