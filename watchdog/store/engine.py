"""Engine set-up for SQLite and PostgreSQL, and database error translation.

SQLite runs in WAL mode with ``synchronous=FULL``: with ``NORMAL`` a power
loss can roll back a committed transaction, and since a message leaves its
folder right after COMMIT it would then be gone with no row. pysqlite's own
BEGIN is turned off and every write transaction starts with
``BEGIN IMMEDIATE``, which waits for the busy timeout. A deferred
transaction that read first would fail at once with "database is locked".
"""

from __future__ import annotations

import contextlib
import re
from collections.abc import Iterator
from typing import Any

import psycopg
from sqlalchemy import Connection, Engine, create_engine, event
from sqlalchemy import exc as sa_exc
from sqlalchemy.engine import make_url

from watchdog.errors import StoreBusy, StoreError

# Execution option that makes a connection start with a plain (deferred)
# BEGIN on SQLite, for transactions that only read.
READ_ONLY = "watchdog_read_only"

CONNECT_TIMEOUT_SECONDS = 10
STATEMENT_TIMEOUT_MS = 30_000
LOCK_TIMEOUT_MS = 10_000

_PASSWORD = re.compile(r"(://[^:/@]*:)[^@]*@")

# PostgreSQL SQLSTATEs that mean "try again later".
_PG_LOCKED = {"55P03", "40001", "40P01", "57014"}
_PG_DISK_FULL = {"53100"}


def database_url(url: str) -> str:
    """Return ``url`` with ``postgresql://`` mapped to the psycopg 3 driver."""
    if url.startswith("postgresql://"):
        return "postgresql+psycopg://" + url.removeprefix("postgresql://")
    return url


def create_store_engine(url: str, *, busy_timeout: float = 5.0) -> Engine:
    """Create the engine for ``url`` with the settings described above."""
    try:
        parsed = make_url(database_url(url))
    except (sa_exc.ArgumentError, ValueError):
        # A URL that does not parse cannot be rendered with its password
        # hidden, so cut everything between "scheme://user:" and "@". The
        # parser's own message repeats the URL, so it is not chained.
        shown = _PASSWORD.sub(r"\1***@", url)
        msg = (
            f"invalid database URL {shown!r}: use sqlite:///PATH or "
            "postgresql://USER@HOST[:PORT]/DB"
        )
        raise StoreError(msg) from None
    if parsed.get_backend_name() == "sqlite":
        return _sqlite_engine(
            parsed.render_as_string(hide_password=False), busy_timeout
        )
    if parsed.get_backend_name() == "postgresql":
        return _postgres_engine(parsed.render_as_string(hide_password=False))
    backend = parsed.get_backend_name()
    msg = f"unsupported database {backend!r} in {url!r}: use sqlite or postgresql"
    raise StoreError(msg)


def _sqlite_engine(url: str, busy_timeout: float) -> Engine:
    engine = create_engine(url, connect_args={"timeout": busy_timeout})

    @event.listens_for(engine, "connect")
    def _on_connect(dbapi_connection: Any, _record: Any) -> None:
        # Autocommit at the driver level: SQLAlchemy's begin event below
        # emits BEGIN itself.
        dbapi_connection.isolation_level = None
        cursor = dbapi_connection.cursor()
        cursor.execute(f"PRAGMA busy_timeout = {int(busy_timeout * 1000)}")
        cursor.execute("PRAGMA journal_mode = WAL")
        cursor.execute("PRAGMA synchronous = FULL")
        cursor.execute("PRAGMA foreign_keys = ON")
        cursor.close()

    @event.listens_for(engine, "begin")
    def _on_begin(connection: Connection) -> None:
        read_only = connection.get_execution_options().get(READ_ONLY, False)
        connection.exec_driver_sql("BEGIN" if read_only else "BEGIN IMMEDIATE")

    return engine


def _postgres_engine(url: str) -> Engine:
    options = (
        f"-c statement_timeout={STATEMENT_TIMEOUT_MS} -c lock_timeout={LOCK_TIMEOUT_MS}"
    )
    return create_engine(
        url,
        pool_pre_ping=True,
        connect_args={"connect_timeout": CONNECT_TIMEOUT_SECONDS, "options": options},
    )


@contextlib.contextmanager
def translated(operation: str) -> Iterator[None]:
    """Re-raise database errors met while doing ``operation`` as StoreError.

    Locks, timeouts, a full disk and lost connections become StoreBusy,
    which the caller may retry; everything else becomes StoreError.
    """
    try:
        yield
    except sa_exc.SQLAlchemyError as exc:
        raise classify_error(exc, operation) from exc
    except OSError as exc:
        raise classify_error(exc, operation) from exc


def classify_error(exc: BaseException, operation: str) -> StoreError:
    """Return the StoreError or StoreBusy for ``exc`` raised by ``operation``."""
    reason = _busy_reason(exc)
    detail = str(getattr(exc, "orig", None) or exc).strip().splitlines()[0:1]
    text = detail[0] if detail else type(exc).__name__
    if reason is None:
        return StoreError(f"{operation} failed: {text}")
    hint = {
        "locked": "another connection holds the lock; retry the transaction",
        "disk_full": "free space on the database's file system",
        "disconnected": "check that the database server is running",
    }[reason]
    return StoreBusy(f"{operation} failed ({reason}): {text}; {hint}", reason=reason)


def _busy_reason(exc: BaseException) -> str | None:
    if isinstance(exc, sa_exc.DBAPIError) and exc.connection_invalidated:
        return "disconnected"
    orig = getattr(exc, "orig", None) or exc
    text = str(orig).lower()
    if "database is locked" in text or "database table is locked" in text:
        return "locked"
    if "disk is full" in text or "no space left" in text:
        return "disk_full"
    sqlstate = getattr(orig, "sqlstate", None)
    if sqlstate in _PG_LOCKED:
        return "locked"
    if sqlstate in _PG_DISK_FULL:
        return "disk_full"
    if sqlstate is not None and sqlstate.startswith(("08", "57P")):
        return "disconnected"
    if _is_psycopg_operational(orig) and sqlstate is None:
        return "disconnected"
    return None


def _is_psycopg_operational(exc: BaseException) -> bool:
    return isinstance(exc, psycopg.OperationalError)
