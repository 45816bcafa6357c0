"""Create the initial schema.

Revision ID: 0001
Revises:
Create Date: 2026-12-04
"""

from __future__ import annotations

import sqlalchemy as sa
from alembic import op

from watchdog.store.models import UtcDateTime

revision = "0001"
down_revision = None
branch_labels = None
depends_on = None


def upgrade() -> None:
    """Create every table and index."""
    op.create_table(
        "message",
        sa.Column("id", sa.Integer(), primary_key=True),
        sa.Column("source", sa.String(), nullable=False),
        sa.Column("folder", sa.String(), nullable=False),
        sa.Column("uidvalidity", sa.BigInteger(), nullable=True),
        sa.Column("uid", sa.BigInteger(), nullable=True),
        sa.Column("path", sa.String(), nullable=True),
        sa.Column("sha256", sa.String(length=64), nullable=False, unique=True),
        sa.Column("message_id", sa.String(), nullable=True),
        sa.Column("size", sa.Integer(), nullable=False),
        sa.Column("attempts", sa.Integer(), nullable=False),
        sa.Column("outcome", sa.String(), nullable=False),
        sa.Column("kind", sa.String(), nullable=True),
        sa.Column("detector", sa.String(), nullable=True),
        sa.Column("last_error", sa.String(), nullable=True),
        sa.Column("first_seen", UtcDateTime(), nullable=False),
        sa.Column("moved_to", sa.String(), nullable=True),
        sa.Column("moved_at", UtcDateTime(), nullable=True),
    )
    op.create_index("ix_message_outcome", "message", ["outcome"])
    op.create_index(
        "ix_message_uid", "message", ["source", "folder", "uidvalidity", "uid"]
    )

    op.create_table(
        "event",
        sa.Column("id", sa.Integer(), primary_key=True),
        sa.Column(
            "message_id", sa.Integer(), sa.ForeignKey("message.id"), nullable=False
        ),
        sa.Column("recipient", sa.String(), nullable=False),
        sa.Column("original_recipient", sa.String(), nullable=True),
        sa.Column("kind", sa.String(), nullable=False),
        sa.Column("reason", sa.String(), nullable=False),
        sa.Column("category", sa.String(), nullable=False),
        sa.Column("hard", sa.Boolean(), nullable=False),
        sa.Column("status", sa.String(), nullable=True),
        sa.Column("reply_code", sa.String(), nullable=True),
        sa.Column("diagnostic", sa.String(), nullable=True),
        sa.Column("remote_mta", sa.String(), nullable=True),
        sa.Column("verified", sa.Boolean(), nullable=False),
        sa.Column("created_at", UtcDateTime(), nullable=False),
        sa.UniqueConstraint(
            "message_id", "recipient", name="uq_event_message_recipient"
        ),
    )
    op.create_index("ix_event_reason", "event", ["reason"])
    op.create_index("ix_event_recipient_time", "event", ["recipient", "created_at"])

    op.create_table(
        "suppression",
        sa.Column("address", sa.String(), primary_key=True),
        sa.Column("reason", sa.String(), nullable=False),
        sa.Column("first_event_id", sa.Integer(), nullable=True),
        sa.Column("last_event_id", sa.Integer(), nullable=True),
        sa.Column("created_at", UtcDateTime(), nullable=False),
        sa.Column("updated_at", UtcDateTime(), nullable=False),
        sa.Column("expires_at", UtcDateTime(), nullable=True),
    )
    op.create_index("ix_suppression_reason", "suppression", ["reason"])
    op.create_index("ix_suppression_updated_at", "suppression", ["updated_at"])

    op.create_table(
        "suppression_audit",
        sa.Column("id", sa.Integer(), primary_key=True),
        sa.Column("address", sa.String(), nullable=False),
        sa.Column("action", sa.String(), nullable=False),
        sa.Column("reason", sa.String(), nullable=False),
        sa.Column("actor", sa.String(), nullable=False),
        sa.Column("note", sa.String(), nullable=True),
        sa.Column("event_id", sa.Integer(), nullable=True),
        sa.Column("at", UtcDateTime(), nullable=False),
    )
    op.create_index("ix_suppression_audit_address", "suppression_audit", ["address"])

    op.create_table(
        "mailbox_state",
        sa.Column("source", sa.String(), primary_key=True),
        sa.Column("folder", sa.String(), primary_key=True),
        sa.Column("uidvalidity", sa.BigInteger(), nullable=False),
        sa.Column("updated_at", UtcDateTime(), nullable=False),
    )


def downgrade() -> None:
    """Drop every table."""
    for table in (
        "mailbox_state",
        "suppression_audit",
        "suppression",
        "event",
        "message",
    ):
        op.drop_table(table)
