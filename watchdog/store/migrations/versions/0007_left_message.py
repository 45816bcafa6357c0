"""Keep the UIDs of IMAP messages left in their folder.

Revision ID: 0007
Revises: 0006
Create Date: 2026-12-04

With ``unrecognised = "leave"`` the UIDs of mail left in place were held in
memory only, so each restarted daemon fetched that mail again and counted
it again as a duplicate. Mail left in place before this revision has no
row, so the first pass after the upgrade counts it once more.
"""

from __future__ import annotations

import sqlalchemy as sa
from alembic import op

from watchdog.store.models import UtcDateTime

revision = "0007"
down_revision = "0006"
branch_labels = None
depends_on = None


def upgrade() -> None:
    """Create ``left_message``."""
    op.create_table(
        "left_message",
        sa.Column("source", sa.String(), nullable=False),
        sa.Column("folder", sa.String(), nullable=False),
        sa.Column("uidvalidity", sa.BigInteger(), nullable=False),
        sa.Column("uid", sa.BigInteger(), nullable=False),
        sa.Column("left_at", UtcDateTime(), nullable=False),
        sa.PrimaryKeyConstraint("source", "folder", "uidvalidity", "uid"),
    )


def downgrade() -> None:
    """Drop ``left_message``."""
    op.drop_table("left_message")
