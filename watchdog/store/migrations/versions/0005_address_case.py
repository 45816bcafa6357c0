"""Match suppressions and events on the address with its local part lower-cased.

Revision ID: 0005
Revises: 0004
Create Date: 2026-12-04

Before this revision ``Alice@example.com`` and ``alice@example.com`` were two
suppression entries, and their soft bounces were counted apart. The upgrade
lower-cases the key columns (``suppression.address``,
``suppression_audit.address`` and ``event.recipient``) and keeps each
entry's first spelling in the new ``suppression.display_address``. Entries
that become one are merged: the earliest ``created_at``, the strongest
reason among the entries still active (among all when none is) and that
reason's latest expiry, and the event ids of both. The merge
is audited with actor ``migration``. Where one message has events for two
spellings of a recipient, the event whose spelling is lower-cased first
stays and the other is deleted.

The keys are computed in Python with ``str.lower``, as
``watchdog.addresses.address_key`` does at run time, because SQLite's
``lower()`` changes ASCII letters only.
"""

from __future__ import annotations

from collections import defaultdict
from datetime import UTC, datetime
from typing import Any

import sqlalchemy as sa
from alembic import op

revision = "0005"
down_revision = "0004"
branch_labels = None
depends_on = None

# The suppression reasons by rank as of this revision; higher wins.
_RANK = {"soft_bounce": 1, "hard_bounce": 2, "complaint": 3, "import": 4, "manual": 5}

_suppression = sa.table(
    "suppression",
    sa.column("address", sa.String()),
    sa.column("display_address", sa.String()),
    sa.column("reason", sa.String()),
    sa.column("first_event_id", sa.Integer()),
    sa.column("last_event_id", sa.Integer()),
    sa.column("created_at", sa.DateTime(timezone=True)),
    sa.column("updated_at", sa.DateTime(timezone=True)),
    sa.column("expires_at", sa.DateTime(timezone=True)),
)
_audit = sa.table(
    "suppression_audit",
    sa.column("address", sa.String()),
    sa.column("action", sa.String()),
    sa.column("reason", sa.String()),
    sa.column("actor", sa.String()),
    sa.column("note", sa.String()),
    sa.column("event_id", sa.Integer()),
    sa.column("at", sa.DateTime(timezone=True)),
)
_event = sa.table(
    "event",
    sa.column("id", sa.Integer()),
    sa.column("message_id", sa.Integer()),
    sa.column("recipient", sa.String()),
)


def upgrade() -> None:
    """Add ``display_address``, then lower-case the keys and merge duplicates."""
    with op.batch_alter_table("suppression") as batch:
        batch.add_column(sa.Column("display_address", sa.String(), nullable=True))
    conn = op.get_bind()
    conn.execute(sa.update(_suppression).values(display_address=_suppression.c.address))
    _merge_suppressions(conn)
    _rekey(conn, _audit, _audit.c.address)
    _rekey_events(conn)


def downgrade() -> None:
    """Drop ``display_address``; keys stay lower-case and merged entries merged."""
    with op.batch_alter_table("suppression") as batch:
        batch.drop_column("display_address")


def _spellings(conn: sa.Connection, column: sa.ColumnClause[Any]) -> list[str]:
    """Return the distinct values of ``column`` that are not lower-case."""
    values = conn.execute(sa.select(column).distinct()).scalars()
    return [value for value in values if value != value.lower()]


def _merge_suppressions(conn: sa.Connection) -> None:
    S = _suppression.c
    groups: defaultdict[str, set[str]] = defaultdict(set)
    for spelling in _spellings(conn, S.address):
        groups[spelling.lower()].add(spelling)
    now = datetime.now(UTC)
    for key, spellings in groups.items():
        names = sorted({key, *spellings})
        rows = (
            conn.execute(sa.select(_suppression).where(S.address.in_(names)))
            .mappings()
            .all()
        )
        merged = _merged(rows, key, now)
        conn.execute(sa.delete(_suppression).where(S.address.in_(names)))
        conn.execute(sa.insert(_suppression).values(**merged))
        if len(rows) > 1:
            shown = ", ".join(sorted(row["address"] for row in rows))
            conn.execute(
                sa.insert(_audit).values(
                    address=key,
                    action="update",
                    reason=merged["reason"],
                    actor="migration",
                    note=f"merged the entries of {shown}"[:1000],
                    event_id=None,
                    at=now,
                )
            )


def _merged(rows: Any, key: str, now: datetime) -> dict[str, Any]:
    """Merge the entries of one key into one row.

    The reason comes from the entries still active at ``now`` when there are
    any, so an expired import or soft bounce never replaces an active hard
    bounce and lets the address be mailed again.
    """
    earliest = min(rows, key=lambda row: (_aware(row["created_at"]), row["address"]))
    active = [row for row in rows if _is_active(row, now)]
    candidates = active or rows
    strongest = max(_RANK.get(row["reason"], 0) for row in candidates)
    winners = [row for row in candidates if _RANK.get(row["reason"], 0) == strongest]
    expiries = [row["expires_at"] for row in winners]
    firsts = [row["first_event_id"] for row in rows if row["first_event_id"]]
    lasts = [row["last_event_id"] for row in rows if row["last_event_id"]]
    return {
        "address": key,
        "display_address": earliest["display_address"] or earliest["address"],
        "reason": winners[0]["reason"],
        "first_event_id": min(firsts) if firsts else None,
        "last_event_id": max(lasts) if lasts else None,
        "created_at": earliest["created_at"],
        "updated_at": max(rows, key=lambda row: _aware(row["updated_at"]))[
            "updated_at"
        ],
        "expires_at": None
        if any(expiry is None for expiry in expiries)
        else max(expiries, key=_aware),
    }


def _is_active(row: Any, now: datetime) -> bool:
    expires_at = row["expires_at"]
    return expires_at is None or _aware(expires_at) > now


def _aware(value: datetime) -> datetime:
    """Return ``value`` aware in UTC; SQLite returns naive UTC datetimes."""
    return value.replace(tzinfo=UTC) if value.tzinfo is None else value


def _rekey(
    conn: sa.Connection, table: sa.TableClause, column: sa.ColumnClause[Any]
) -> None:
    for spelling in _spellings(conn, column):
        conn.execute(
            sa.update(table)
            .where(column == spelling)
            .values({column.name: spelling.lower()})
        )


def _rekey_events(conn: sa.Connection) -> None:
    """Lower-case ``event.recipient``, deleting events that would collide.

    ``(message_id, recipient)`` is unique, so an event whose lower-cased
    recipient the same message already has is deleted first.
    """
    E = _event.c
    for spelling in _spellings(conn, E.recipient):
        key = spelling.lower()
        taken = sa.select(E.message_id).where(E.recipient == key).scalar_subquery()
        conn.execute(
            sa.delete(_event).where(E.recipient == spelling, E.message_id.in_(taken))
        )
        conn.execute(
            sa.update(_event).where(E.recipient == spelling).values(recipient=key)
        )
