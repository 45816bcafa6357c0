"""Store when each event's message arrived, for the soft-bounce window.

Revision ID: 0006
Revises: 0005
Create Date: 2026-12-04

Soft bounces were counted by the time they were recorded, so the backlog of
a long outage, recorded in a few minutes, fell into one window. Events now
carry ``arrived_at``. Existing events get their ``created_at``, the best
time known for them.
"""

from __future__ import annotations

import sqlalchemy as sa
from alembic import op

from watchdog.store.models import UtcDateTime

revision = "0006"
down_revision = "0005"
branch_labels = None
depends_on = None


def upgrade() -> None:
    """Add ``event.arrived_at`` and its index, filled from ``created_at``."""
    with op.batch_alter_table("event") as batch:
        batch.add_column(sa.Column("arrived_at", UtcDateTime(), nullable=True))
    event = sa.table(
        "event",
        sa.column("created_at", sa.DateTime(timezone=True)),
        sa.column("arrived_at", sa.DateTime(timezone=True)),
    )
    op.execute(sa.update(event).values(arrived_at=event.c.created_at))
    op.create_index("ix_event_recipient_arrived", "event", ["recipient", "arrived_at"])


def downgrade() -> None:
    """Drop ``event.arrived_at`` and its index."""
    op.drop_index("ix_event_recipient_arrived", table_name="event")
    with op.batch_alter_table("event") as batch:
        batch.drop_column("arrived_at")
