"""Receipts and the redelivery counter: what each sink did with each envelope, and how often a
message came back after its worker was lost; and the first link of the chain, the envelopes
accepted onto the intake queue.

A receipt is keyed by (message id, sink), so writing it again changes nothing; the storage sink
writes its receipts in the same transaction as the cables, notification sinks use them as their
delivery keys. ``cable-ingest run`` waits on receipts and dead letters to know that every input
has an outcome.
"""

from __future__ import annotations

from collections.abc import Iterable, Iterator, Mapping, Sequence
from dataclasses import dataclass
from datetime import UTC, datetime
from typing import Any

import orjson
from sqlalchemy import Connection, func, select, text
from sqlalchemy.dialects import postgresql, sqlite
from sqlalchemy.engine import URL

from worker.storage.engine import Database, redact_url
from worker.storage.schema import accepted, receipts, redeliveries

_CHUNK = 500
_ACCEPT_FROM_JSON = text(
    "INSERT INTO accepted (message_id, source, sha256, accepted_at)"
    " SELECT value ->> 0, value ->> 1, value ->> 2, :at FROM json_each(:rows)"
    " WHERE true ON CONFLICT DO NOTHING"  # WHERE: SQLite's parser needs it before ON CONFLICT
)  # accepted_at as SQLAlchemy writes a DateTime in SQLite: "2026-12-02 06:28:44.123456"


@dataclass(frozen=True, slots=True)
class Activity:
    """What the sinks took since a moment: receipts per sink, envelopes the storage sinks
    settled, and when each sink last took one successfully."""

    by_sink: dict[str, int]
    stored: int
    last_success: dict[str, datetime]


SUCCESS = ("delivered", "inserted", "unchanged", "revised")
"""Receipt outcomes that mean the sink took the envelope (not ``withheld``)."""


@dataclass(frozen=True, slots=True)
class Receipt:
    """Sink ``sink`` took envelope ``message_id`` (cable ``reference_id``) with ``outcome``."""

    message_id: str
    sink: str
    reference_id: str | None
    outcome: str


def insert_receipts(conn: Connection, backend: str, items: Sequence[Receipt]) -> None:
    """Write receipts inside the caller's transaction; existing ones are kept as they are."""
    if not items:
        return
    now = datetime.now(UTC)
    dialect = postgresql if backend == "postgresql" else sqlite
    rows = [
        {
            "message_id": r.message_id,
            "sink": r.sink,
            "reference_id": r.reference_id,
            "outcome": r.outcome,
            "delivered_at": now,
        }
        for r in items
    ]
    conn.execute(dialect.insert(receipts).on_conflict_do_nothing(), rows)


def last_receipts(
    conn: Connection, sinks: Sequence[str], outcomes: Sequence[str] = ()
) -> dict[str, datetime]:
    """When each of ``sinks`` last gave a receipt (with one of ``outcomes``, when given): per
    sink the newest by the (sink, delivered_at) index, not a scan of every receipt."""
    found: dict[str, datetime] = {}
    for sink in sinks:
        query = select(receipts.c.delivered_at).where(receipts.c.sink == sink)
        if outcomes:
            query = query.where(receipts.c.outcome.in_(outcomes))
        at = conn.execute(query.order_by(receipts.c.delivered_at.desc()).limit(1)).scalar()
        if at is not None:
            found[sink] = _aware(at)
    return found


def activity(
    conn: Connection, since: datetime, storage_sinks: Sequence[str], sinks: Sequence[str]
) -> Activity:
    """Receipts since ``since`` by sink, envelopes the storage sinks settled since then, and
    when each of ``sinks`` last succeeded (on ``conn``, in the caller's transaction)."""
    recent = select(receipts.c.sink, func.count()).where(receipts.c.delivered_at >= since)
    stored = select(func.count(receipts.c.message_id.distinct())).where(
        receipts.c.delivered_at >= since, receipts.c.sink.in_(storage_sinks)
    )
    by_sink = {s: int(n) for s, n in conn.execute(recent.group_by(receipts.c.sink))}
    count = int(conn.execute(stored).scalar_one())
    return Activity(by_sink, count, last_receipts(conn, sinks, SUCCESS))


def _text(value: object) -> str | None:
    return value if isinstance(value, str) else None


def _chunks(values: Sequence[str]) -> Iterator[Sequence[str]]:
    for start in range(0, len(values), _CHUNK):
        yield values[start : start + _CHUNK]


class ReceiptStore:
    """Receipts and redelivery counts in the storage database."""

    def __init__(self, url: str | URL) -> None:
        self._db = Database(url)

    def __repr__(self) -> str:
        return f"ReceiptStore({redact_url(self._db.url)!r})"

    def add_many(self, items: Sequence[Receipt]) -> None:
        """Write receipts in one transaction (idempotent)."""
        with self._db.errors("writing receipts"), self._db.writer.begin() as conn:
            insert_receipts(conn, self._db.backend, items)

    def accept(self, envelopes: Sequence[Mapping[str, Any]]) -> None:
        """Record envelopes as accepted onto the intake queue, before they are published: one
        statement for the whole group, in one transaction. An id recorded before (a replay, a
        retried flush) is kept as first accepted.

        One statement, not one per row: PostgreSQL gets a multi-row VALUES (one round trip);
        SQLite an INSERT from ``json_each`` over the rows as one JSON parameter, which runs in
        one step. The HTTP intake records from a thread while others parse and publish, and
        SQLite gives up Python's lock for each step it takes and must win it back after: 100
        steps per group were 100 waits for it (make bench: NDJSON batches 9,600 -> 10,900
        cables/s)."""
        if not envelopes:
            return
        now = datetime.now(UTC)
        rows = [
            (str(envelope["id"]), _text(envelope.get("source")), str(envelope["sha256"]))
            for envelope in envelopes
        ]
        action = f"recording {len(rows)} accepted envelopes"
        with self._db.errors(action), self._db.writer.begin() as conn:
            if self._db.backend == "postgresql":
                columns = ("message_id", "source", "sha256")
                values = [dict(zip(columns, row, strict=True), accepted_at=now) for row in rows]
                conn.execute(postgresql.insert(accepted).on_conflict_do_nothing(), values)
            else:
                stamp = now.replace(tzinfo=None).isoformat(sep=" ", timespec="microseconds")
                conn.execute(_ACCEPT_FROM_JSON, {"rows": orjson.dumps(rows), "at": stamp})

    def forget_accepted(self, message_ids: Iterable[str]) -> None:
        """Drop the acceptance of envelopes that were recorded but could not be published."""
        wanted = sorted(set(message_ids))
        with self._db.errors("forgetting accepted envelopes"), self._db.writer.begin() as conn:
            for chunk in _chunks(wanted):
                conn.execute(accepted.delete().where(accepted.c.message_id.in_(chunk)))

    def received(self, message_ids: Iterable[str], sink: str) -> set[str]:
        """Which of ``message_ids`` hold a receipt from ``sink``."""
        wanted = sorted(set(message_ids))
        found: set[str] = set()
        with self._db.errors("reading receipts"), self._db.engine.connect() as conn:
            for chunk in _chunks(wanted):
                query = select(receipts.c.message_id).where(
                    receipts.c.sink == sink, receipts.c.message_id.in_(chunk)
                )
                found.update(conn.execute(query).scalars())
        return found

    def outcomes(self, message_ids: Iterable[str], sink: str) -> dict[str, int]:
        """How many of ``message_ids`` ``sink`` took, by outcome (inserted, unchanged, …)."""
        wanted = sorted(set(message_ids))
        counts: dict[str, int] = {}
        with self._db.errors("reading receipts"), self._db.engine.connect() as conn:
            for chunk in _chunks(wanted):
                query = (
                    select(receipts.c.outcome, func.count())
                    .where(receipts.c.sink == sink, receipts.c.message_id.in_(chunk))
                    .group_by(receipts.c.outcome)
                )
                for outcome, count in conn.execute(query):
                    counts[outcome] = counts.get(outcome, 0) + int(count)
        return counts

    def since(self, sink: str, at: datetime) -> list[tuple[str, datetime]]:
        """(message id, delivered at) of every receipt from ``sink`` delivered at or after ``at``."""
        query = select(receipts.c.message_id, receipts.c.delivered_at).where(
            receipts.c.sink == sink, receipts.c.delivered_at >= at
        )
        with self._db.errors("reading receipts"), self._db.engine.connect() as conn:
            return [(message_id, _aware(when)) for message_id, when in conn.execute(query)]

    def last_delivery_by_sink(self, sinks: Sequence[str]) -> dict[str, datetime]:
        """When each of ``sinks`` last took an envelope (sinks that never did are absent)."""
        with self._db.errors("reading receipts"), self._db.engine.connect() as conn:
            return last_receipts(conn, sinks)

    def activity(
        self, since: datetime, storage_sinks: Sequence[str], sinks: Sequence[str]
    ) -> Activity:
        """Receipts since ``since`` by sink, envelopes stored since then, last successes."""
        with self._db.errors("reading receipts"), self._db.engine.connect() as conn:
            return activity(conn, since, storage_sinks, sinks)

    def count_redelivery(self, delivery_key: str) -> int:
        """Count one more delivery of a message that came back; return the count so far."""
        now = datetime.now(UTC)
        dialect = postgresql if self._db.backend == "postgresql" else sqlite
        stmt = dialect.insert(redeliveries).values(
            delivery_key=delivery_key, count=1, first_seen=now, last_seen=now
        )
        upsert = stmt.on_conflict_do_update(
            index_elements=[redeliveries.c.delivery_key],
            set_={"count": redeliveries.c.count + 1, "last_seen": now},
        ).returning(redeliveries.c.count)
        with self._db.errors("counting a redelivery"), self._db.writer.begin() as conn:
            return int(conn.execute(upsert).scalar_one())

    def forget_redelivery(self, delivery_key: str) -> None:
        """Drop the count of a message that has now been handled."""
        delete = redeliveries.delete().where(redeliveries.c.delivery_key == delivery_key)
        with self._db.errors("clearing a redelivery count"), self._db.writer.begin() as conn:
            conn.execute(delete)

    def close(self) -> None:
        """Close this process's pooled connections."""
        self._db.dispose()


def _aware(value: datetime) -> datetime:
    return value.astimezone(UTC) if value.tzinfo else value.replace(tzinfo=UTC)
