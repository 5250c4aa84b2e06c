"""Receipts (which sink took which envelope, with what outcome) and the redelivery counter.

Revision ID: 0002
Revises: 0001
Create Date: 2026-11-28 00:00:00
"""

from __future__ import annotations

import sqlalchemy as sa
from alembic import op

revision = "0002"
down_revision = "0001"
branch_labels = None
depends_on = None

_TIMESTAMP = sa.DateTime(timezone=True)


def upgrade() -> None:
    op.create_table(
        "receipts",
        sa.Column("message_id", sa.String(), nullable=False),
        sa.Column("sink", sa.String(64), nullable=False),
        sa.Column("reference_id", sa.String(), nullable=True),
        sa.Column("outcome", sa.String(32), nullable=False),
        sa.Column("delivered_at", _TIMESTAMP, nullable=False),
        sa.PrimaryKeyConstraint("message_id", "sink", name=op.f("pk_receipts")),
    )
    op.create_index("ix_receipts_delivered_at", "receipts", ["delivered_at"])
    op.create_table(
        "redeliveries",
        sa.Column("delivery_key", sa.String(), nullable=False),
        sa.Column("count", sa.Integer(), nullable=False),
        sa.Column("first_seen", _TIMESTAMP, nullable=False),
        sa.Column("last_seen", _TIMESTAMP, nullable=False),
        sa.PrimaryKeyConstraint("delivery_key", name=op.f("pk_redeliveries")),
    )


def downgrade() -> None:
    op.drop_table("redeliveries")
    op.drop_table("receipts")
