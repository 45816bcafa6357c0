"""Add the table of the last fetched MTA-STS policy of each domain.

Revision ID: 0003
Revises: 0002
Create Date: 2026-12-04
"""

from __future__ import annotations

import sqlalchemy as sa
from alembic import op

from watchdog.store.models import UtcDateTime

revision = "0003"
down_revision = "0002"
branch_labels = None
depends_on = None


def upgrade() -> None:
    """Create ``mta_sts_policy``, one row per audited domain."""
    op.create_table(
        "mta_sts_policy",
        sa.Column("domain", sa.String(), primary_key=True),
        sa.Column("policy_id", sa.String(), nullable=False),
        sa.Column("body_sha256", sa.String(64), nullable=False),
        sa.Column("mode", sa.String(), nullable=False),
        sa.Column("mx", sa.String(), nullable=False),
        sa.Column("max_age", sa.Integer(), nullable=False),
        sa.Column("fetched_at", UtcDateTime(), nullable=False),
        sa.Column("changed_at", UtcDateTime(), nullable=False),
        sa.Column("stale_until", UtcDateTime(), nullable=True),
        sa.Column("stale_changes", sa.String(), nullable=True),
    )


def downgrade() -> None:
    """Drop ``mta_sts_policy``."""
    op.drop_table("mta_sts_policy")
