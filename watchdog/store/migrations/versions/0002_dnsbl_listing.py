"""Add the blocklist listing history table.

Revision ID: 0002
Revises: 0001
Create Date: 2026-12-04
"""

from __future__ import annotations

import sqlalchemy as sa
from alembic import op

from watchdog.store.models import UtcDateTime

revision = "0002"
down_revision = "0001"
branch_labels = None
depends_on = None


def upgrade() -> None:
    """Create ``dnsbl_listing``, one row per blocklist target and zone."""
    op.create_table(
        "dnsbl_listing",
        sa.Column("id", sa.Integer(), primary_key=True),
        sa.Column("target", sa.String(), nullable=False),
        sa.Column("zone", sa.String(), nullable=False),
        sa.Column("state", sa.String(), nullable=False),
        sa.Column("codes", sa.String(), nullable=False),
        sa.Column("first_listed", UtcDateTime(), nullable=True),
        sa.Column("last_listed", UtcDateTime(), nullable=True),
        sa.Column("delisted", UtcDateTime(), nullable=True),
        sa.Column("updated_at", UtcDateTime(), nullable=False),
        sa.UniqueConstraint("target", "zone", name="uq_dnsbl_listing_target_zone"),
    )


def downgrade() -> None:
    """Drop ``dnsbl_listing``."""
    op.drop_table("dnsbl_listing")
