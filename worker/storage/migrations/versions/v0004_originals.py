"""Originals and provenance; content hashes that leave out what belongs to an arrival.

- ``originals``: the exact text of every accepted envelope, once per sha256, zstd-compressed
  (PostgreSQL: stored EXTERNAL, as TOAST would only try to compress it again).
- ``arrivals``: one provenance row per stored envelope.
- ``cables`` and ``cable_revisions`` gain the original each revision was derived from and the
  parser version that derived it (both null for what was stored before this revision).
- Content hashes are recomputed without ``source_file``, ``warnings`` and ``parser_version``,
  so that the next arrival of a stored cable under another name is ``unchanged``, not revised.
  The hash is written out here, as it was defined at this revision.

Revision ID: 0004
Revises: 0003
Create Date: 2026-12-02 00:00:00
"""

from __future__ import annotations

import hashlib
from typing import Any

import orjson
import sqlalchemy as sa
from alembic import op
from sqlalchemy.dialects.postgresql import JSONB

revision = "0004"
down_revision = "0003"
branch_labels = None
depends_on = None

_JSON = sa.JSON().with_variant(JSONB(), "postgresql")
_TIMESTAMP = sa.DateTime(timezone=True)
_ARRIVAL_FIELDS = ("source_file", "warnings", "parser_version")
_BATCH = 1000


def _content_hash(record: dict[str, Any], left_out: tuple[str, ...]) -> str:
    content = {k: v for k, v in record.items() if k not in left_out}
    return hashlib.sha256(orjson.dumps(content, option=orjson.OPT_SORT_KEYS)).hexdigest()


def _rehash(table: str, keys: tuple[str, ...], left_out: tuple[str, ...]) -> None:
    bind = op.get_bind()
    columns = ", ".join((*keys, "record"))
    rows = bind.execute(sa.text(f"SELECT {columns} FROM {table}")).mappings()
    where = " AND ".join(f"{key} = :{key}" for key in keys)
    update = sa.text(f"UPDATE {table} SET content_hash = :content_hash WHERE {where}")
    batch: list[dict[str, Any]] = []
    for row in rows.fetchall():
        record = row["record"]
        record = orjson.loads(record) if isinstance(record, str | bytes) else record
        batch.append({**{k: row[k] for k in keys}, "content_hash": _content_hash(record, left_out)})
        if len(batch) == _BATCH:
            bind.execute(update, batch)
            batch = []
    if batch:
        bind.execute(update, batch)


def upgrade() -> None:
    op.create_table(
        "originals",
        sa.Column("sha256", sa.String(64), nullable=False),
        sa.Column("size", sa.Integer, nullable=False),
        sa.Column("codec", sa.String(16), nullable=False),
        sa.Column("data", sa.LargeBinary, nullable=False),
        sa.Column("stored_at", _TIMESTAMP, nullable=False),
        sa.PrimaryKeyConstraint("sha256", name=op.f("pk_originals")),
    )
    op.create_table(
        "arrivals",
        sa.Column("message_id", sa.String, nullable=False),
        sa.Column("reference_id", sa.String, nullable=False),
        sa.Column("revision", sa.Integer, nullable=False),
        sa.Column("outcome", sa.String(32), nullable=False),
        sa.Column("source", sa.String, nullable=True),
        sa.Column("metadata", _JSON, nullable=False),
        sa.Column("received_at", _TIMESTAMP, nullable=True),
        sa.Column("stored_at", _TIMESTAMP, nullable=False),
        sa.Column("sha256", sa.String(64), nullable=False),
        sa.PrimaryKeyConstraint("message_id", name=op.f("pk_arrivals")),
    )
    op.create_index("ix_arrivals_reference_id", "arrivals", ["reference_id"])
    op.create_index("ix_arrivals_sha256", "arrivals", ["sha256"])
    op.create_index("ix_arrivals_stored_at", "arrivals", ["stored_at"])
    for table in ("cables", "cable_revisions"):
        with op.batch_alter_table(table) as batch:
            batch.add_column(sa.Column("original_sha256", sa.String(64), nullable=True))
            batch.add_column(sa.Column("parser_version", sa.String(32), nullable=True))
    if op.get_bind().dialect.name == "postgresql":
        op.execute("ALTER TABLE originals ALTER COLUMN data SET STORAGE EXTERNAL")
    _rehash("cables", ("reference_id",), _ARRIVAL_FIELDS)
    _rehash("cable_revisions", ("reference_id", "revision"), _ARRIVAL_FIELDS)


def downgrade() -> None:
    for table in ("cable_revisions", "cables"):
        with op.batch_alter_table(table) as batch:
            batch.drop_column("parser_version")
            batch.drop_column("original_sha256")
    op.drop_table("arrivals")
    op.drop_table("originals")
    _rehash("cables", ("reference_id",), ())  # as 0003 hashed: the whole record
    _rehash("cable_revisions", ("reference_id", "revision"), ())
