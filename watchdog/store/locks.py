"""One consumer per mailbox folder, across processes.

PostgreSQL uses a session advisory lock held on a dedicated connection;
SQLite an ``flock`` on a file beside the database. Both are released when
the holder's process dies, so a crashed daemon never blocks its successor.

A PostgreSQL session lock also ends when the server ends its session, for
instance by ``pg_terminate_backend`` or a restart, and nothing tells the
client. ``ConsumerLock.check`` finds that out before work that relies on
the lock.
"""

from __future__ import annotations

import contextlib
import fcntl
import hashlib
import os
from pathlib import Path

from sqlalchemy import Connection, Engine, text
from sqlalchemy.exc import SQLAlchemyError

from watchdog.errors import StoreError
from watchdog.store.engine import translated


class ConsumerLockLost(StoreError):
    """The consumer lock was released without this process releasing it."""


def lock_key(source: str, folder: str) -> int:
    """Return a signed 64-bit key for ``(source, folder)``, stable across runs."""
    digest = hashlib.blake2b(f"{source}\0{folder}".encode(), digest_size=8).digest()
    return int.from_bytes(digest, "big", signed=True)


class ConsumerLock:
    """A taken or refused consumer lock; ``won`` tells which.

    This base class holds nothing and serves the in-memory SQLite database,
    which no other process can open.
    """

    def __init__(self, *, won: bool) -> None:
        self.won = won

    def check(self) -> None:
        """Raise ConsumerLockLost when the lock is no longer held."""

    def release(self) -> None:
        """Release the lock if it was won. Safe to call more than once."""


class PostgresLock(ConsumerLock):
    """``pg_try_advisory_lock`` held by one session on a dedicated connection."""

    def __init__(self, conn: Connection, key: int, *, won: bool) -> None:
        super().__init__(won=won)
        self._conn: Connection | None = conn
        self._key = key
        self._pid: int | None = None

    @classmethod
    def take(cls, engine: Engine, key: int) -> PostgresLock:
        """Open a connection and try to take the lock on it."""
        with translated("taking the consumer lock"):
            conn = engine.connect().execution_options(isolation_level="AUTOCOMMIT")
            try:
                row = conn.execute(
                    text("SELECT pg_try_advisory_lock(:k), pg_backend_pid()"),
                    {"k": key},
                ).one()
            except BaseException:
                conn.invalidate()
                conn.close()
                raise
        lock = cls(conn, key, won=bool(row[0]))
        lock._pid = int(row[1])
        return lock

    @property
    def backend_pid(self) -> int | None:
        """The PostgreSQL server process that holds the lock's session."""
        return self._pid

    def check(self) -> None:
        """Ask the lock's own session whether it still holds the lock.

        A session that the server ended fails the query, and the lock went
        with it.
        """
        conn = self._conn
        if not self.won or conn is None:
            return
        query = text(
            "SELECT count(*) FROM pg_locks WHERE locktype = 'advisory' "
            "AND pid = pg_backend_pid() AND granted "
            "AND classid = ((:k >> 32) & 4294967295)::bigint::oid "
            "AND objid = (:k & 4294967295)::bigint::oid AND objsubid = 1"
        )
        try:
            held = conn.execute(query, {"k": self._key}).scalar_one() > 0
        except SQLAlchemyError as exc:
            detail = str(getattr(exc, "orig", None) or exc).strip().splitlines()
            reason = detail[0] if detail else type(exc).__name__
            msg = (
                f"consumer lock lost: the PostgreSQL session {self._pid} that held "
                f"it has ended ({reason}); processing stops until the lock is "
                "taken again"
            )
            raise ConsumerLockLost(msg) from exc
        if not held:
            msg = (
                f"consumer lock lost: PostgreSQL session {self._pid} no longer "
                "holds it; processing stops until the lock is taken again"
            )
            raise ConsumerLockLost(msg)

    def release(self) -> None:
        """Unlock and close the connection.

        A connection whose unlock fails is invalidated rather than pooled,
        which ends its session and with it any lock it still holds.
        """
        conn, self._conn = self._conn, None
        if conn is None:
            return
        try:
            if self.won:
                conn.execute(text("SELECT pg_advisory_unlock(:k)"), {"k": self._key})
        except Exception:
            conn.invalidate()
        finally:
            with contextlib.suppress(SQLAlchemyError):
                conn.close()


class FileLock(ConsumerLock):
    """An exclusive ``flock`` on a file beside the SQLite database."""

    def __init__(self, fd: int | None, *, won: bool) -> None:
        super().__init__(won=won)
        self._fd = fd

    @classmethod
    def take(cls, database: Path, key: int) -> FileLock:
        """Open the lock file and try to lock it without waiting."""
        name = f"{database.name}.consumer-{key & 0xFFFFFFFFFFFFFFFF:016x}.lock"
        path = database.with_name(name)
        try:
            fd = os.open(path, os.O_RDWR | os.O_CREAT, 0o600)
        except OSError as exc:
            msg = f"cannot open the consumer lock file {str(path)!r}: {exc.strerror}"
            raise StoreError(msg) from exc
        try:
            fcntl.flock(fd, fcntl.LOCK_EX | fcntl.LOCK_NB)
        except BlockingIOError:
            os.close(fd)
            return cls(None, won=False)
        return cls(fd, won=True)

    def release(self) -> None:
        """Unlock and close the lock file."""
        fd, self._fd = self._fd, None
        if fd is None:
            return
        try:
            fcntl.flock(fd, fcntl.LOCK_UN)
        finally:
            os.close(fd)
