"""Statements on the suppression list and its audit history.

Every function takes a connection inside an open transaction; ``Store``
owns the transactions. Every ``address`` argument is a key from
``watchdog.addresses.address_key``.
"""

from __future__ import annotations

import functools
from collections.abc import Mapping
from datetime import datetime
from typing import Any

from sqlalchemy import (
    Connection,
    Insert,
    RowMapping,
    Table,
    bindparam,
    delete,
    func,
    insert,
    select,
    update,
)
from sqlalchemy.dialects import postgresql, sqlite

from watchdog.policy import SuppressionReason, replaces
from watchdog.store.models import (
    audit_table,
    clean,
    event_table,
    message_table,
    suppression_table,
)
from watchdog.store.records import (
    AuditAction,
    AuditRecord,
    EventRecord,
    Stats,
    Suppression,
)

S = suppression_table.c

# Statements of the hot path, built once; values are bound at execution.
_GET = select(suppression_table).where(S.address == bindparam("match_address"))
_LOCKING_GET = _GET.with_for_update()
_AUDIT_INSERT = insert(audit_table)


def insert_ignoring_conflict(
    conn: Connection, table: Table, values: Mapping[str, Any], keys: tuple[str, ...]
) -> Any:
    """Insert one row with ON CONFLICT (``keys``) DO NOTHING; return its key.

    Returns the first primary-key column of the new row (the ``id`` where
    the table has one), or None when the row already existed. RETURNING is
    used because psycopg reports rowcount -1 for this statement.
    """
    stmt = _insert_statement(conn.dialect.name, table, keys)
    row = conn.execute(stmt, dict(values)).first()
    return None if row is None else row[0]


@functools.cache
def _insert_statement(dialect: str, table: Table, keys: tuple[str, ...]) -> Insert:
    # Built once and given the values at execution: building a statement
    # with literal values costs more CPU than the round trip to SQLite.
    insert_for = postgresql.insert if dialect == "postgresql" else sqlite.insert
    stmt = insert_for(table).on_conflict_do_nothing(index_elements=list(keys))
    key = table.c.id if "id" in table.c else next(iter(table.primary_key.columns))
    return stmt.returning(key)


def get(
    conn: Connection, address: str, *, for_update: bool = False
) -> Suppression | None:
    """Return the entry with key ``address``, or None."""
    query = _LOCKING_GET if for_update else _GET
    row = conn.execute(query, {"match_address": address}).first()
    return None if row is None else _suppression(row._mapping)


def write(
    conn: Connection,
    address: str,
    *,
    current: Suppression | None,
    reason: SuppressionReason,
    expires_at: datetime | None,
    actor: str,
    now: datetime,
    note: str | None = None,
    event_id: int | None = None,
    created_at: datetime | None = None,
    respect_rank: bool = False,
    display: str | None = None,
) -> AuditAction | None:
    """Add or overwrite the entry of ``address`` and audit the change.

    ``display`` is the spelling stored with a new entry; an existing entry
    keeps the spelling it was first added with.

    ``current`` is the entry as read with ``get(..., for_update=True)`` in
    the same transaction. Another transaction may insert the entry after
    that read; with ``respect_rank`` the entry it committed is then kept
    unless ``policy.replaces`` allows the overwrite. Returns the audited
    action, or None when nothing was audited: the entry was kept, or only
    the event ids and the update time moved (the daemon hit it again).
    """
    if current is None:
        values = {
            "address": address,
            "display_address": display if display is not None else address,
            "reason": reason.value,
            "first_event_id": event_id,
            "last_event_id": event_id,
            "created_at": created_at or now,
            "updated_at": now,
            "expires_at": expires_at,
        }
        if insert_ignoring_conflict(conn, suppression_table, values, ("address",)):
            _audit(
                conn,
                address,
                action=AuditAction.ADD,
                reason=reason,
                actor=actor,
                now=now,
                note=note,
                event_id=event_id,
            )
            return AuditAction.ADD
        current = get(conn, address, for_update=True)
        assert current is not None
        if respect_rank and not replaces(current.entry(), reason, now):
            return None

    changes: dict[str, Any] = {
        "reason": reason.value,
        "updated_at": now,
        "expires_at": expires_at,
    }
    if event_id is not None:
        changes["last_event_id"] = event_id
        if current.first_event_id is None:
            changes["first_event_id"] = event_id
    conn.execute(
        update(suppression_table).where(S.address == address).values(**changes)
    )

    same = current.reason is reason and current.expires_at == expires_at
    if same and actor == "daemon" and current.is_active(now):
        return None
    _audit(
        conn,
        address,
        action=AuditAction.UPDATE,
        reason=reason,
        actor=actor,
        now=now,
        note=note,
        event_id=event_id,
    )
    return AuditAction.UPDATE


def remove(
    conn: Connection, address: str, *, actor: str, now: datetime, note: str | None
) -> bool:
    """Delete the entry of ``address`` and audit it; False when there was none."""
    current = get(conn, address, for_update=True)
    if current is None:
        return False
    conn.execute(delete(suppression_table).where(S.address == address))
    _audit(
        conn,
        address,
        action=AuditAction.REMOVE,
        reason=current.reason,
        actor=actor,
        now=now,
        note=note,
        event_id=None,
    )
    return True


def last_removed(conn: Connection, address: str) -> datetime | None:
    """Return when the entry of ``address`` was last removed, or None."""
    A = audit_table.c
    query = select(func.max(A.at)).where(
        A.address == address, A.action == AuditAction.REMOVE.value
    )
    value: datetime | None = conn.execute(query).scalar()
    return value


def page(
    conn: Connection,
    *,
    reason: SuppressionReason | None = None,
    since: datetime | None = None,
    after: str | None = None,
    limit: int = 1000,
) -> list[Suppression]:
    """Return up to ``limit`` entries ordered by address, after ``after``."""
    query = select(suppression_table).order_by(S.address).limit(limit)
    if reason is not None:
        query = query.where(S.reason == reason.value)
    if since is not None:
        query = query.where(S.updated_at >= since)
    if after is not None:
        query = query.where(S.address > after)
    return [_suppression(row._mapping) for row in conn.execute(query)]


def history(conn: Connection, address: str) -> list[AuditRecord]:
    """Return the audit rows of ``address``, oldest first."""
    A = audit_table.c
    query = select(audit_table).where(A.address == address).order_by(A.at, A.id)
    return [
        AuditRecord(
            address=row.address,
            action=AuditAction(row.action),
            reason=row.reason,
            actor=row.actor,
            at=row.at,
            note=row.note,
            event_id=row.event_id,
        )
        for row in conn.execute(query)
    ]


def events_for(
    conn: Connection, address: str, *, limit: int = 100
) -> list[EventRecord]:
    """Return the newest ``limit`` events of ``address``, newest first."""
    E = event_table.c
    query = (
        select(event_table)
        .where(E.recipient == address)
        .order_by(E.created_at.desc(), E.id.desc())
        .limit(limit)
    )
    fields = EventRecord.__dataclass_fields__
    return [
        EventRecord(**{k: v for k, v in row._mapping.items() if k in fields})
        for row in conn.execute(query)
    ]


def stats(conn: Connection) -> Stats:
    """Count messages by outcome, events by reason, suppressions by reason."""
    return Stats(
        messages=_count_by(conn, message_table, "outcome"),
        events=_count_by(conn, event_table, "reason"),
        suppressions=_count_by(conn, suppression_table, "reason"),
    )


def _count_by(conn: Connection, table: Table, column: str) -> dict[str, int]:
    key = table.c[column]
    query = select(key, func.count()).group_by(key).order_by(key)
    return {str(value): int(count) for value, count in conn.execute(query)}


def _audit(
    conn: Connection,
    address: str,
    *,
    action: AuditAction,
    reason: str,
    actor: str,
    now: datetime,
    note: str | None,
    event_id: int | None,
) -> None:
    values = {
        "address": address,
        "action": action.value,
        "reason": str(reason),
        "actor": clean(actor, 200),
        "note": clean(note, 1000),
        "event_id": event_id,
        "at": now,
    }
    conn.execute(_AUDIT_INSERT, values)


def _suppression(row: RowMapping) -> Suppression:
    return Suppression(
        address=row["display_address"] or row["address"],
        key=row["address"],
        reason=SuppressionReason(row["reason"]),
        created_at=row["created_at"],
        updated_at=row["updated_at"],
        expires_at=row["expires_at"],
        first_event_id=row["first_event_id"],
        last_event_id=row["last_event_id"],
    )
