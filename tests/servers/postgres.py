"""Fresh databases on a PostgreSQL server, one per test, dropped afterwards.

The server is the machine's PostgreSQL at 127.0.0.1:5432 (user postgres,
trust authentication) unless ``WATCHDOG_TEST_PG_URL`` names another
server's maintenance database, for example
``postgresql://postgres@127.0.0.1:55432/postgres``.
"""

from __future__ import annotations

import contextlib
import os
import uuid
from collections.abc import Iterator

import psycopg
from psycopg import sql

DEFAULT_ADMIN_URL = "postgresql://postgres@127.0.0.1:5432/postgres"


def admin_url() -> str:
    """Return the URL of the maintenance database the fixtures connect to."""
    return os.environ.get("WATCHDOG_TEST_PG_URL", DEFAULT_ADMIN_URL)


def available() -> bool:
    """Tell whether the server accepts a connection within two seconds."""
    try:
        with psycopg.connect(admin_url(), connect_timeout=2):
            return True
    except psycopg.Error:
        return False


@contextlib.contextmanager
def fresh_database(prefix: str = "mw_test") -> Iterator[str]:
    """Create a uniquely named database; yield its URL; drop it afterwards."""
    name = f"{prefix}_{uuid.uuid4().hex[:12]}"
    with psycopg.connect(admin_url(), autocommit=True) as conn:
        conn.execute(sql.SQL("CREATE DATABASE {}").format(sql.Identifier(name)))
    try:
        yield _with_database(admin_url(), name)
    finally:
        drop_database(name)


def drop_database(name: str) -> None:
    """Drop database ``name``, ending its remaining sessions first."""
    with psycopg.connect(admin_url(), autocommit=True) as conn:
        conn.execute(
            sql.SQL("DROP DATABASE IF EXISTS {} WITH (FORCE)").format(
                sql.Identifier(name)
            )
        )


def terminate_sessions(url: str) -> int:
    """End every session on the database of ``url``; return how many ended.

    The store gets this as the server dropping its connections, the same
    error a restart produces.
    """
    name = psycopg.conninfo.conninfo_to_dict(url.replace("+psycopg", ""))["dbname"]
    with psycopg.connect(admin_url(), autocommit=True) as conn:
        rows = conn.execute(
            "SELECT pg_terminate_backend(pid) FROM pg_stat_activity "
            "WHERE datname = %s AND pid <> pg_backend_pid()",
            (name,),
        ).fetchall()
    return len(rows)


def _with_database(url: str, name: str) -> str:
    base, _, _ = url.rpartition("/")
    return f"{base}/{name}"
