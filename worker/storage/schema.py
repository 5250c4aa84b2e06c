"""The storage tables as SQLAlchemy Core definitions, one set for SQLite and PostgreSQL.

The migrations in ``worker/storage/migrations`` create these tables (plus the full-text
search objects, which differ by backend and are not described here); the stores read and
write through them. Timestamps are stored in UTC and always read back as aware datetimes.
"""

from __future__ import annotations

from datetime import UTC, datetime
from typing import Any

from sqlalchemy import (
    JSON,
    BigInteger,
    CheckConstraint,
    Column,
    DateTime,
    Dialect,
    ForeignKey,
    Index,
    Integer,
    LargeBinary,
    MetaData,
    String,
    Table,
    Text,
    UniqueConstraint,
    text,
)
from sqlalchemy.dialects.postgresql import JSONB
from sqlalchemy.types import TypeDecorator, TypeEngine

metadata = MetaData(
    naming_convention={
        "ix": "ix_%(table_name)s_%(column_0_N_name)s",
        "uq": "uq_%(table_name)s_%(column_0_N_name)s",
        "ck": "ck_%(table_name)s_%(constraint_name)s",
        "fk": "fk_%(table_name)s_%(column_0_name)s_%(referred_table_name)s",
        "pk": "pk_%(table_name)s",
    }
)

JSONDocument: TypeEngine[Any] = JSON().with_variant(JSONB(), "postgresql")
"""A JSON document: JSONB on PostgreSQL, JSON text on SQLite."""


class UTCDateTime(TypeDecorator[datetime]):
    """A timestamp stored in UTC (``timestamptz`` on PostgreSQL) and read back aware."""

    impl = DateTime(timezone=True)
    cache_ok = True

    def process_bind_param(self, value: datetime | None, dialect: Dialect) -> datetime | None:
        if value is None:
            return None
        value = value.astimezone(UTC) if value.tzinfo else value.replace(tzinfo=UTC)
        return value.replace(tzinfo=None) if dialect.name == "sqlite" else value

    def process_result_value(self, value: datetime | None, dialect: Dialect) -> datetime | None:
        if value is None:
            return None
        return value.astimezone(UTC) if value.tzinfo else value.replace(tzinfo=UTC)


cables = Table(
    "cables",
    metadata,
    Column("reference_id", String, primary_key=True),
    Column("content_hash", String(64), nullable=False),
    Column("date", UTCDateTime, nullable=True),
    Column("classification", String, nullable=True),
    Column("origin", String, nullable=True),
    Column("subject", Text, nullable=True),
    Column("tags", Text, nullable=False, server_default=""),
    Column("revision", Integer, nullable=False),
    Column("record", JSONDocument, nullable=False),
    Column("stored_at", UTCDateTime, nullable=False),
    Column("original_sha256", String(64), nullable=True),  # null: stored before originals
    Column("parser_version", String(32), nullable=True),
    CheckConstraint("reference_id <> ''", name="reference_id_not_empty"),
    CheckConstraint("revision >= 1", name="revision_positive"),
    Index(None, "date"),
)

cable_revisions = Table(
    "cable_revisions",
    metadata,
    Column(
        "reference_id",
        String,
        ForeignKey("cables.reference_id", ondelete="CASCADE"),
        primary_key=True,
    ),
    Column("revision", Integer, primary_key=True),
    Column("content_hash", String(64), nullable=False),
    Column("record", JSONDocument, nullable=False),
    Column("stored_at", UTCDateTime, nullable=False),
    Column("original_sha256", String(64), nullable=True),
    Column("parser_version", String(32), nullable=True),
)

originals = Table(
    "originals",
    metadata,
    Column("sha256", String(64), primary_key=True),
    Column("size", Integer, nullable=False),
    Column("codec", String(16), nullable=False),
    Column("data", LargeBinary, nullable=False),
    Column("stored_at", UTCDateTime, nullable=False),
)
"""The exact text of every accepted envelope, once per sha256 (see :mod:`.originals`)."""

arrivals = Table(
    "arrivals",
    metadata,
    Column("message_id", String, primary_key=True),
    Column("reference_id", String, nullable=False),
    Column("revision", Integer, nullable=False),
    Column("outcome", String(32), nullable=False),
    Column("source", String, nullable=True),
    Column("metadata", JSONDocument, nullable=False),
    Column("received_at", UTCDateTime, nullable=True),
    Column("stored_at", UTCDateTime, nullable=False),
    Column("sha256", String(64), nullable=False),
    Index(None, "reference_id"),
    Index(None, "sha256"),
    Index(None, "stored_at"),
)
"""Provenance: one row per stored envelope (feed, producer metadata, times, original, outcome)."""

accepted = Table(
    "accepted",
    metadata,
    Column("message_id", String, primary_key=True),
    Column("source", String, nullable=True),
    Column("sha256", String(64), nullable=False),
    Column("accepted_at", UTCDateTime, nullable=False),
    Index(None, "accepted_at"),
)
"""One row per envelope a producer put on the intake queue, written before it is published:
what lets a receipt tell "queued" (accepted, no outcome yet) from "never accepted"."""

dead_letters = Table(
    "dead_letters",
    metadata,
    Column("id", String(128), primary_key=True),
    Column("stage", String(64), nullable=False),
    Column("dedupe_key", String, nullable=False),
    Column("error_class", String, nullable=False),
    Column("reason", Text, nullable=False),
    Column("schema_errors", JSONDocument, nullable=False),
    Column("attempts", Integer, nullable=False),
    Column("first_seen", UTCDateTime, nullable=False),
    Column("last_seen", UTCDateTime, nullable=False),
    Column("message_id", String, nullable=True),
    Column("reference_id", String, nullable=True),
    Column("sha256", String, nullable=True),
    Column("source", String, nullable=True),
    Column("payload", JSONDocument, nullable=False),
    Column("replayed_at", UTCDateTime, nullable=True),
    UniqueConstraint("stage", "dedupe_key"),
    CheckConstraint("attempts >= 1", name="attempts_positive"),
    Index(None, "last_seen"),
    Index(None, "reference_id"),
    Index(None, "message_id"),
)

dead_letter_counts = Table(
    "dead_letter_counts",
    metadata,
    Column("stage", String(64), primary_key=True),
    Column("count", BigInteger, nullable=False),
)
"""Dead letters held per stage, kept by triggers on ``dead_letters`` (migration 0008): what a
scrape reads instead of counting the table."""

receipts = Table(
    "receipts",
    metadata,
    Column("message_id", String, primary_key=True),
    Column("sink", String(64), primary_key=True),
    Column("reference_id", String, nullable=True),
    Column("outcome", String(32), nullable=False),
    Column("delivered_at", UTCDateTime, nullable=False),
    Index(None, "delivered_at"),
    Index(None, "sink", "delivered_at"),  # a sink's last receipt: one lookup (scrape, status)
)
"""One row per envelope and sink that took it: the chain of custody's last link."""

redeliveries = Table(
    "redeliveries",
    metadata,
    Column("delivery_key", String, primary_key=True),
    Column("count", Integer, nullable=False),
    Column("first_seen", UTCDateTime, nullable=False),
    Column("last_seen", UTCDateTime, nullable=False),
)
"""How often a queue message came back after its worker was lost (the redelivery cap)."""

reparse_runs = Table(
    "reparse_runs",
    metadata,
    Column("id", String(32), primary_key=True),
    Column("selection_key", String(64), nullable=False),
    Column("selection", Text, nullable=False),
    Column("total", Integer, nullable=False),
    Column("started_at", UTCDateTime, nullable=False),
    Column("finished_at", UTCDateTime, nullable=True),
    Index(
        None,
        "selection_key",
        unique=True,
        sqlite_where=text("finished_at IS NULL"),
        postgresql_where=text("finished_at IS NULL"),
    ),
)
"""``cable-ingest reparse`` runs: what each selected, and whether it finished. At most one
unfinished run per selection: running the same selection again resumes it."""

reparse_items = Table(
    "reparse_items",
    metadata,
    Column(
        "run_id",
        String(32),
        ForeignKey("reparse_runs.id", ondelete="CASCADE"),
        primary_key=True,
    ),
    Column("reference_id", String, primary_key=True),
    Column("outcome", String(16), nullable=True),  # null: not done yet
    Column("done_at", UTCDateTime, nullable=True),
    Index(None, "run_id", "outcome"),
)
"""One row per cable a run re-derives, marked done (unchanged, revised, failed, no_original)
in the transaction that settles it."""

tokens = Table(
    "tokens",
    metadata,
    Column("id", String(32), primary_key=True),
    Column("name", String(200), nullable=False),
    Column("secret_sha256", String(64), nullable=False),
    Column("scopes", String(64), nullable=False),
    Column("clearance", String(64), nullable=True),
    Column("created_at", UTCDateTime, nullable=False),
    Column("last_used_at", UTCDateTime, nullable=True),
    Column("revoked_at", UTCDateTime, nullable=True),
    Index(None, "name"),
)
"""API tokens of ``cable-ingest serve``: a feed's name, scopes and clearance; only a hash."""

idempotency_keys = Table(
    "idempotency_keys",
    metadata,
    Column("feed", String(200), primary_key=True),
    Column("key", String(200), primary_key=True),
    Column("request_sha256", String(64), nullable=False),
    Column("status", Integer, nullable=True),  # null: the first request is still running
    Column("response", LargeBinary, nullable=True),
    Column("created_at", UTCDateTime, nullable=False),
    Index(None, "created_at"),
)
"""The first response to each ``Idempotency-Key`` of a feed, returned again on a retry."""
