"""One consumer per mailbox folder, across processes.

PostgreSQL uses a session advisory lock held on a dedicated connection;
SQLite an ``flock`` on a file beside the database. Both are released when
the holder's process dies, so a crashed daemon never blocks its successor.
"""

from __future__ import annotations

import contextlib
import fcntl
import hashlib
import os
from collections.abc import Iterator
from pathlib import Path

from sqlalchemy import Connection, Engine, text

from watchdog.errors import StoreError
from watchdog.store.engine import translated


def lock_key(source: str, folder: str) -> int:
    """Return a signed 64-bit key for ``(source, folder)``, stable across runs."""
    digest = hashlib.blake2b(f"{source}\0{folder}".encode(), digest_size=8).digest()
    return int.from_bytes(digest, "big", signed=True)


@contextlib.contextmanager
def postgres_lock(engine: Engine, key: int) -> Iterator[bool]:
    """Hold ``pg_try_advisory_lock(key)`` for the block; yield whether it was won."""
    with translated("taking the consumer lock"):
        conn = engine.connect().execution_options(isolation_level="AUTOCOMMIT")
        won = bool(
            conn.execute(text("SELECT pg_try_advisory_lock(:k)"), {"k": key}).scalar()
        )
    try:
        yield won
    finally:
        _release_postgres(conn, key, won)


def _release_postgres(conn: Connection, key: int, won: bool) -> None:
    try:
        if won:
            conn.execute(text("SELECT pg_advisory_unlock(:k)"), {"k": key})
    except Exception:
        # A session lock must not go back to the pool: drop the connection,
        # which ends the session and so the lock.
        conn.invalidate()
    finally:
        conn.close()


@contextlib.contextmanager
def file_lock(database: Path, key: int) -> Iterator[bool]:
    """Hold an exclusive ``flock`` on a file beside ``database``."""
    name = f"{database.name}.consumer-{key & 0xFFFFFFFFFFFFFFFF:016x}.lock"
    path = database.with_name(name)
    try:
        fd = os.open(path, os.O_RDWR | os.O_CREAT, 0o600)
    except OSError as exc:
        msg = f"cannot open the consumer lock file {str(path)!r}: {exc.strerror}"
        raise StoreError(msg) from exc
    try:
        try:
            fcntl.flock(fd, fcntl.LOCK_EX | fcntl.LOCK_NB)
        except BlockingIOError:
            yield False
            return
        try:
            yield True
        finally:
            fcntl.flock(fd, fcntl.LOCK_UN)
    finally:
        os.close(fd)
