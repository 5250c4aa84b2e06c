"""PostgreSQL: records and search vectors compressed with LZ4 instead of pglz.

Every stored record (~12 KB of JSON) and its search vector is larger than PostgreSQL's TOAST
threshold, so each one is compressed on the way in; pglz took ~13% of the server's time per
stored cable (make bench's storage loop: 1.47 -> 1.28 ms per cable). LZ4 needs PostgreSQL 14
built with it; elsewhere (and on SQLite) this revision changes nothing. Values already stored
keep pglz and stay readable: the method is recorded per value.

Revision ID: 0003
Revises: 0002
Create Date: 2026-11-29 00:00:00
"""

from __future__ import annotations

import sqlalchemy as sa
from alembic import op

revision = "0003"
down_revision = "0002"
branch_labels = None
depends_on = None

_COLUMNS = (("cables", "record"), ("cables", "search_vector"), ("cable_revisions", "record"))
_HAS_LZ4 = sa.text(
    "SELECT 'lz4' = ANY(enumvals) FROM pg_settings WHERE name = 'default_toast_compression'"
)


def _lz4_available() -> bool:
    bind = op.get_bind()
    return bind.dialect.name == "postgresql" and bool(bind.execute(_HAS_LZ4).scalar())


def _set_compression(method: str) -> None:
    if not _lz4_available():
        return
    for table, column in _COLUMNS:
        op.execute(f"ALTER TABLE {table} ALTER COLUMN {column} SET COMPRESSION {method}")


def upgrade() -> None:
    _set_compression("lz4")


def downgrade() -> None:
    _set_compression("pglz")
