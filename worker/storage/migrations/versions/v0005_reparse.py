"""Reparse runs and their items, so that ``cable-ingest reparse`` can resume where it stopped.

- ``reparse_runs``: one row per run (the selection, its key, how many cables it selected,
  when it started and finished); a unique partial index allows one unfinished run per
  selection key.
- ``reparse_items``: one row per selected cable, its outcome (null until done) and when it
  was settled; indexed by run and outcome for the progress counts.

Revision ID: 0005
Revises: 0004
Create Date: 2026-12-02 12:00:00
"""

from __future__ import annotations

import sqlalchemy as sa
from alembic import op

revision = "0005"
down_revision = "0004"
branch_labels = None
depends_on = None

_TIMESTAMP = sa.DateTime(timezone=True)
_UNFINISHED = sa.text("finished_at IS NULL")


def upgrade() -> None:
    op.create_table(
        "reparse_runs",
        sa.Column("id", sa.String(32), nullable=False),
        sa.Column("selection_key", sa.String(64), nullable=False),
        sa.Column("selection", sa.Text, nullable=False),
        sa.Column("total", sa.Integer, nullable=False),
        sa.Column("started_at", _TIMESTAMP, nullable=False),
        sa.Column("finished_at", _TIMESTAMP, nullable=True),
        sa.PrimaryKeyConstraint("id", name=op.f("pk_reparse_runs")),
    )
    op.create_index(
        "ix_reparse_runs_selection_key",
        "reparse_runs",
        ["selection_key"],
        unique=True,
        sqlite_where=_UNFINISHED,
        postgresql_where=_UNFINISHED,
    )
    op.create_table(
        "reparse_items",
        sa.Column("run_id", sa.String(32), nullable=False),
        sa.Column("reference_id", sa.String, nullable=False),
        sa.Column("outcome", sa.String(16), nullable=True),
        sa.Column("done_at", _TIMESTAMP, nullable=True),
        sa.PrimaryKeyConstraint("run_id", "reference_id", name=op.f("pk_reparse_items")),
        sa.ForeignKeyConstraint(
            ["run_id"],
            ["reparse_runs.id"],
            name=op.f("fk_reparse_items_run_id_reparse_runs"),
            ondelete="CASCADE",
        ),
    )
    op.create_index("ix_reparse_items_run_id_outcome", "reparse_items", ["run_id", "outcome"])


def downgrade() -> None:
    op.drop_table("reparse_items")
    op.drop_table("reparse_runs")
