"""Cables with their revisions and full-text search; dead letters.

Full-text search differs by backend. PostgreSQL: a stored generated ``tsvector`` column over the
subject (weight A) and the paragraph headings and texts (weight B), with a GIN index. SQLite: an
FTS5 table ``cables_fts`` that the cable store keeps in step with ``cables``; its rowids come
from ``cables_fts_docs`` (an INTEGER PRIMARY KEY per reference id: sequential, which FTS5
indexes three times faster than scattered rowids, and stable across VACUUM, unlike the rowid
of ``cables``).

Revision ID: 0001
Revises:
Create Date: 2024-05-01 00:00:00
"""

from __future__ import annotations

import sqlalchemy as sa
from alembic import op
from sqlalchemy.dialects.postgresql import JSONB

revision = "0001"
down_revision = None
branch_labels = None
depends_on = None

_JSON = sa.JSON().with_variant(JSONB(), "postgresql")
_TIMESTAMP = sa.DateTime(timezone=True)

_PG_SEARCH_VECTOR = """
ALTER TABLE cables ADD COLUMN search_vector tsvector GENERATED ALWAYS AS (
    setweight(to_tsvector('english'::regconfig, coalesce(subject, '')), 'A')
    || setweight(to_tsvector('english'::regconfig,
        jsonb_path_query_array(record, '$.paragraphs[*].heading')
        || jsonb_path_query_array(record, '$.paragraphs[*].text')), 'B')
) STORED
"""
_PG_SEARCH_INDEX = "CREATE INDEX ix_cables_search_vector ON cables USING gin (search_vector)"
_SQLITE_FTS_DOCS = (
    "CREATE TABLE cables_fts_docs (docid INTEGER PRIMARY KEY, reference_id TEXT NOT NULL UNIQUE)"
)
_SQLITE_FTS = (
    "CREATE VIRTUAL TABLE cables_fts USING fts5("
    "subject, body, tokenize = 'porter unicode61 remove_diacritics 2')"
)


def upgrade() -> None:
    op.create_table(
        "cables",
        sa.Column("reference_id", sa.String, nullable=False),
        sa.Column("content_hash", sa.String(64), nullable=False),
        sa.Column("date", _TIMESTAMP, nullable=True),
        sa.Column("classification", sa.String, nullable=True),
        sa.Column("origin", sa.String, nullable=True),
        sa.Column("subject", sa.Text, nullable=True),
        sa.Column("tags", sa.Text, nullable=False, server_default=""),
        sa.Column("revision", sa.Integer, nullable=False),
        sa.Column("record", _JSON, nullable=False),
        sa.Column("stored_at", _TIMESTAMP, nullable=False),
        sa.PrimaryKeyConstraint("reference_id", name=op.f("pk_cables")),
        sa.CheckConstraint("reference_id <> ''", name=op.f("ck_cables_reference_id_not_empty")),
        sa.CheckConstraint("revision >= 1", name=op.f("ck_cables_revision_positive")),
    )
    op.create_index("ix_cables_date", "cables", ["date"])
    op.create_table(
        "cable_revisions",
        sa.Column("reference_id", sa.String, nullable=False),
        sa.Column("revision", sa.Integer, nullable=False),
        sa.Column("content_hash", sa.String(64), nullable=False),
        sa.Column("record", _JSON, nullable=False),
        sa.Column("stored_at", _TIMESTAMP, nullable=False),
        sa.PrimaryKeyConstraint("reference_id", "revision", name=op.f("pk_cable_revisions")),
        sa.ForeignKeyConstraint(
            ["reference_id"],
            ["cables.reference_id"],
            name=op.f("fk_cable_revisions_reference_id_cables"),
            ondelete="CASCADE",
        ),
    )
    op.create_table(
        "dead_letters",
        sa.Column("id", sa.String(128), nullable=False),
        sa.Column("stage", sa.String(64), nullable=False),
        sa.Column("dedupe_key", sa.String, nullable=False),
        sa.Column("error_class", sa.String, nullable=False),
        sa.Column("reason", sa.Text, nullable=False),
        sa.Column("schema_errors", _JSON, nullable=False),
        sa.Column("attempts", sa.Integer, nullable=False),
        sa.Column("first_seen", _TIMESTAMP, nullable=False),
        sa.Column("last_seen", _TIMESTAMP, nullable=False),
        sa.Column("message_id", sa.String, nullable=True),
        sa.Column("reference_id", sa.String, nullable=True),
        sa.Column("sha256", sa.String, nullable=True),
        sa.Column("source", sa.String, nullable=True),
        sa.Column("payload", _JSON, nullable=False),
        sa.Column("replayed_at", _TIMESTAMP, nullable=True),
        sa.PrimaryKeyConstraint("id", name=op.f("pk_dead_letters")),
        sa.UniqueConstraint("stage", "dedupe_key", name=op.f("uq_dead_letters_stage_dedupe_key")),
        sa.CheckConstraint("attempts >= 1", name=op.f("ck_dead_letters_attempts_positive")),
    )
    op.create_index("ix_dead_letters_last_seen", "dead_letters", ["last_seen"])
    op.create_index("ix_dead_letters_reference_id", "dead_letters", ["reference_id"])
    op.create_index("ix_dead_letters_message_id", "dead_letters", ["message_id"])
    dialect = op.get_bind().dialect.name
    if dialect == "postgresql":
        op.execute(_PG_SEARCH_VECTOR)
        op.execute(_PG_SEARCH_INDEX)
    elif dialect == "sqlite":
        op.execute(_SQLITE_FTS_DOCS)
        op.execute(_SQLITE_FTS)


def downgrade() -> None:
    if op.get_bind().dialect.name == "sqlite":
        op.execute("DROP TABLE IF EXISTS cables_fts")
        op.execute("DROP TABLE IF EXISTS cables_fts_docs")
    op.drop_table("dead_letters")
    op.drop_table("cable_revisions")
    op.drop_table("cables")
