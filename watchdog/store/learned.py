"""Identifiers learned from our own mail quoted in bounces, with first and last sight.

One row per ``(kind, domain, value)``, such as a DKIM selector of a domain
or a domain our mail links to (``watchdog.checks.auth.learned`` extracts
them). A row not seen for ``EXPIRY`` is deleted. At most
``MAX_PER_DOMAIN`` rows are kept per kind and domain: a new value beyond
that is dropped until old ones expire, so a flood of forged bounces cannot
grow the table without bound or push out values seen every day.
"""

from __future__ import annotations

from collections.abc import Iterable
from datetime import datetime, timedelta
from pathlib import Path
from typing import TYPE_CHECKING, Any

from sqlalchemy import (
    Column,
    Connection,
    Index,
    UniqueConstraint,
    and_,
    delete,
    func,
    select,
    update,
)
from sqlalchemy.dialects import postgresql, sqlite
from sqlalchemy.engine import make_url
from sqlmodel import Field, SQLModel

from watchdog.checks.auth.learned import Learned, LearnedKind
from watchdog.store.engine import database_url
from watchdog.store.models import UtcDateTime
from watchdog.store.transactions import utcnow

if TYPE_CHECKING:
    from watchdog.store.store import Store

EXPIRY = timedelta(days=30)
MAX_PER_DOMAIN = 50
# Maximum characters of a stored value: a domain name has at most 253.
MAX_VALUE_CHARS = 253


def _moment() -> Any:
    return Field(default=None, sa_column=Column(UtcDateTime(), nullable=False))


class LearnedIdentifier(SQLModel, table=True):
    """One value learned about one of our domains; see ``LearnedKind``."""

    __tablename__ = "learned_identifier"
    __table_args__ = (
        UniqueConstraint(
            "kind", "domain", "value", name="uq_learned_identifier_kind_domain_value"
        ),
        Index("ix_learned_identifier_last_seen", "last_seen"),
    )

    id: int | None = Field(default=None, primary_key=True)
    kind: str
    domain: str
    value: str
    first_seen: datetime = _moment()
    last_seen: datetime = _moment()


learned_table = LearnedIdentifier.__table__  # type: ignore[attr-defined]
C = learned_table.c


def record_learned(
    store: Store, items: Iterable[Learned], now: datetime | None = None
) -> int:
    """Store ``items`` in the enclosing ``Store.batch()``, if any; see ``save``.

    Raises StoreError (StoreBusy when a retry may help).
    """
    with store._write("recording learned identifiers") as conn:
        return save(conn, items, now or utcnow())


def load_learned(store: Store, now: datetime | None = None) -> set[Learned]:
    """Return the unexpired learned values in ``store``; see ``load``.

    Raises StoreError (StoreBusy when a retry may help).
    """
    with store._read("loading learned identifiers") as conn:
        return load(conn, now or utcnow())


def read_learned(url: str, *, busy_timeout: float = 5.0) -> set[Learned]:
    """Return the learned values in the database at ``url``, if it exists.

    A missing SQLite file or an in-memory database gives an empty set, and
    nothing is created or migrated. Raises StoreError when the database
    exists but cannot be read, for instance before ``db upgrade`` added
    the table.
    """
    # Imported here because the watchdog.store package imports this module
    # before it defines Store.
    from watchdog.store.store import Store  # noqa: PLC0415

    parsed = make_url(database_url(url))
    if parsed.get_backend_name() == "sqlite":
        if parsed.database in (None, "", ":memory:"):
            return set()
        if not Path(parsed.database or "").exists():
            return set()
    store = Store(url, busy_timeout=busy_timeout)
    try:
        return load_learned(store)
    finally:
        store.close()


def save(conn: Connection, items: Iterable[Learned], now: datetime) -> int:
    """Refresh or insert ``items`` seen at ``now``; return how many were dropped.

    Expired rows are deleted first, so they free their place under the cap.
    """
    conn.execute(delete(learned_table).where(C.last_seen < now - EXPIRY))
    dropped = 0
    for item in sorted(set(items)):
        if len(item.domain) > MAX_VALUE_CHARS or len(item.value) > MAX_VALUE_CHARS:
            dropped += 1
            continue
        key = and_(
            C.kind == item.kind.value, C.domain == item.domain, C.value == item.value
        )
        refreshed = conn.execute(update(learned_table).where(key).values(last_seen=now))
        if refreshed.rowcount:
            continue
        if _count(conn, item) >= MAX_PER_DOMAIN:
            dropped += 1
            continue
        conn.execute(_insert(conn, item, now))
    return dropped


def load(conn: Connection, now: datetime) -> set[Learned]:
    """Return every value seen within ``EXPIRY`` before ``now``."""
    rows = conn.execute(
        select(C.kind, C.domain, C.value).where(C.last_seen >= now - EXPIRY)
    ).all()
    known = {kind.value for kind in LearnedKind}
    return {
        Learned(LearnedKind(row.kind), row.domain, row.value)
        for row in rows
        if row.kind in known
    }


def _count(conn: Connection, item: Learned) -> int:
    statement = select(func.count()).where(
        C.kind == item.kind.value, C.domain == item.domain
    )
    return int(conn.execute(statement).scalar_one())


def _insert(conn: Connection, item: Learned, now: datetime) -> Any:
    dialect = postgresql if conn.dialect.name == "postgresql" else sqlite
    # A concurrent writer may insert the same row first; its row is as good.
    return (
        dialect.insert(learned_table)
        .values(
            kind=item.kind.value,
            domain=item.domain,
            value=item.value,
            first_seen=now,
            last_seen=now,
        )
        .on_conflict_do_nothing(index_elements=["kind", "domain", "value"])
    )
