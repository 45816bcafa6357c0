"""Add the MTA log reader's position and its pending deferred recipients.

Revision ID: 0008
Revises: 0007
Create Date: 2026-12-04
"""

from __future__ import annotations

import sqlalchemy as sa
from alembic import op

from watchdog.store.models import UtcDateTime

revision = "0008"
down_revision = "0007"
branch_labels = None
depends_on = None


def upgrade() -> None:
    """Create ``mta_log_position`` and ``mta_log_pending``."""
    op.create_table(
        "mta_log_position",
        sa.Column("key", sa.String(), primary_key=True),
        sa.Column("device", sa.BigInteger(), nullable=False),
        sa.Column("inode", sa.BigInteger(), nullable=False),
        sa.Column("byte_offset", sa.BigInteger(), nullable=False),
        sa.Column("head", sa.String(length=64), nullable=False),
        sa.Column("head_size", sa.Integer(), nullable=False),
        sa.Column("last_line_at", UtcDateTime(), nullable=True),
        sa.Column("updated_at", UtcDateTime(), nullable=False),
    )
    op.create_table(
        "mta_log_pending",
        sa.Column("key", sa.String(), primary_key=True),
        sa.Column("queue_id", sa.String(), primary_key=True),
        sa.Column("recipient", sa.Text(), primary_key=True),
        sa.Column("provider", sa.String(), nullable=False),
    )


def downgrade() -> None:
    """Drop both tables."""
    op.drop_table("mta_log_pending")
    op.drop_table("mta_log_position")
