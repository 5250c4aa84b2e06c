"""What a scrape reads, without counting a table: dead letters per stage, last receipt per sink.

- ``dead_letter_counts``: how many dead letters each stage holds, kept by triggers on
  ``dead_letters`` (an insert adds one, a delete takes one away, a change of stage moves one)
  in the writer's own transaction, so that it is exact; filled from the table here. A scrape
  reads a handful of rows instead of counting 100,000 (``make bench``, scrape row).
- ``ix_receipts_sink_delivered_at``: the last receipt of a sink is one index lookup, not a scan
  of every receipt.

Revision ID: 0008
Revises: 0007
Create Date: 2026-12-08 00:00:00
"""

from __future__ import annotations

import sqlalchemy as sa
from alembic import op

revision = "0008"
down_revision = "0007"
branch_labels = None
depends_on = None

_POSTGRESQL = """
CREATE FUNCTION dead_letter_counts_track() RETURNS trigger LANGUAGE plpgsql AS $$
BEGIN
    IF TG_OP IN ('DELETE', 'UPDATE') THEN
        UPDATE dead_letter_counts SET count = count - 1 WHERE stage = OLD.stage;
    END IF;
    IF TG_OP IN ('INSERT', 'UPDATE') THEN
        INSERT INTO dead_letter_counts (stage, count) VALUES (NEW.stage, 1)
        ON CONFLICT (stage) DO UPDATE SET count = dead_letter_counts.count + 1;
    END IF;
    RETURN NULL;
END
$$;
CREATE TRIGGER dead_letter_counts_track
    AFTER INSERT OR DELETE OR UPDATE OF stage ON dead_letters
    FOR EACH ROW EXECUTE FUNCTION dead_letter_counts_track();
"""
_ADD = (
    "INSERT INTO dead_letter_counts (stage, count) VALUES (NEW.stage, 1)"
    " ON CONFLICT (stage) DO UPDATE SET count = count + 1;"
)
_TAKE = "UPDATE dead_letter_counts SET count = count - 1 WHERE stage = OLD.stage;"
_SQLITE = (
    f"CREATE TRIGGER dead_letter_counts_insert AFTER INSERT ON dead_letters BEGIN {_ADD} END",
    f"CREATE TRIGGER dead_letter_counts_delete AFTER DELETE ON dead_letters BEGIN {_TAKE} END",
    "CREATE TRIGGER dead_letter_counts_update AFTER UPDATE OF stage ON dead_letters"
    f" BEGIN {_TAKE} {_ADD} END",
)


def upgrade() -> None:
    op.create_table(
        "dead_letter_counts",
        sa.Column("stage", sa.String(64), nullable=False),
        sa.Column("count", sa.BigInteger, nullable=False),
        sa.PrimaryKeyConstraint("stage", name=op.f("pk_dead_letter_counts")),
    )
    if op.get_bind().dialect.name == "postgresql":
        op.execute("LOCK TABLE dead_letters IN SHARE MODE")  # no writer between fill and trigger
        op.execute(_POSTGRESQL)
    else:
        for statement in _SQLITE:  # SQLite: the migration holds the write lock already
            op.execute(statement)
    op.execute(
        "INSERT INTO dead_letter_counts (stage, count)"
        " SELECT stage, count(*) FROM dead_letters GROUP BY stage"
    )
    op.create_index("ix_receipts_sink_delivered_at", "receipts", ["sink", "delivered_at"])


def downgrade() -> None:
    op.drop_index("ix_receipts_sink_delivered_at", "receipts")
    if op.get_bind().dialect.name == "postgresql":
        op.execute("DROP TRIGGER dead_letter_counts_track ON dead_letters")
        op.execute("DROP FUNCTION dead_letter_counts_track()")
    else:
        for name in ("insert", "delete", "update"):
            op.execute(f"DROP TRIGGER dead_letter_counts_{name}")
    op.drop_table("dead_letter_counts")
