"""Accepted envelopes: one row per envelope a producer put on the intake queue.

``GET /v1/messages/{id}`` answers "queued" for an envelope accepted and not yet settled, and
404 for an id that was never accepted; the HTTP intake and the Python producer write these
rows (one statement per group of envelopes) before they publish.

Revision ID: 0007
Revises: 0006
Create Date: 2026-12-06 00:00:00
"""

from __future__ import annotations

import sqlalchemy as sa
from alembic import op

revision = "0007"
down_revision = "0006"
branch_labels = None
depends_on = None

_TIMESTAMP = sa.DateTime(timezone=True)


def upgrade() -> None:
    op.create_table(
        "accepted",
        sa.Column("message_id", sa.String(), nullable=False),
        sa.Column("source", sa.String(), nullable=True),
        sa.Column("sha256", sa.String(64), nullable=False),
        sa.Column("accepted_at", _TIMESTAMP, nullable=False),
        sa.PrimaryKeyConstraint("message_id", name=op.f("pk_accepted")),
    )
    op.create_index("ix_accepted_accepted_at", "accepted", ["accepted_at"])


def downgrade() -> None:
    op.drop_table("accepted")
