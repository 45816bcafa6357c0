"""Add the table of identifiers learned from our own mail returned in bounces.

Revision ID: 0004
Revises: 0003
Create Date: 2026-12-04
"""

from __future__ import annotations

import sqlalchemy as sa
from alembic import op

from watchdog.store.models import UtcDateTime

revision = "0004"
down_revision = "0003"
branch_labels = None
depends_on = None


def upgrade() -> None:
    """Create ``learned_identifier``, one row per kind, domain and value."""
    op.create_table(
        "learned_identifier",
        sa.Column("id", sa.Integer(), primary_key=True),
        sa.Column("kind", sa.String(), nullable=False),
        sa.Column("domain", sa.String(), nullable=False),
        sa.Column("value", sa.String(), nullable=False),
        sa.Column("first_seen", UtcDateTime(), nullable=False),
        sa.Column("last_seen", UtcDateTime(), nullable=False),
        sa.UniqueConstraint(
            "kind", "domain", "value", name="uq_learned_identifier_kind_domain_value"
        ),
    )
    op.create_index(
        "ix_learned_identifier_last_seen", "learned_identifier", ["last_seen"]
    )


def downgrade() -> None:
    """Drop ``learned_identifier``."""
    op.drop_index("ix_learned_identifier_last_seen", "learned_identifier")
    op.drop_table("learned_identifier")
