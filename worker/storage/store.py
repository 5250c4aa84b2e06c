"""The cable store: current records, their earlier revisions, and full-text search.

A batch is written in one transaction, all or nothing, and writing it again changes nothing:
a record whose content hash (SHA-256 of its canonical JSON) is already stored for its
reference id, as the current record or an earlier revision, is ``unchanged``. A record with
new content becomes the next revision; the one it replaces moves to ``cable_revisions``.
Concurrent writers of the same reference id cannot lose a revision: the upsert only applies
on top of the revision this batch read, and otherwise the batch fails as transient.
"""

from __future__ import annotations

import hashlib
from collections.abc import Iterator, Mapping, Sequence
from dataclasses import dataclass
from datetime import UTC, datetime
from typing import Any, Literal

import orjson
from sqlalchemy import Connection, Insert, func, select
from sqlalchemy.dialects import postgresql, sqlite
from sqlalchemy.engine import URL

from worker.errors import PermanentSinkError, TransientSinkError
from worker.storage import search as fulltext
from worker.storage.engine import Database, parse_utc, redact_url, utc_iso
from worker.storage.receipts import Receipt, insert_receipts
from worker.storage.schema import cable_revisions, cables

__all__ = ["BatchResult", "CableOutcome", "CableStore", "content_hash", "redact_url"]

Outcome = Literal["inserted", "unchanged", "revised"]
_CHUNK = 500  # ids per IN (...) list: far below every backend's bound-parameter limit


@dataclass(frozen=True, slots=True)
class CableOutcome:
    """What writing one record did, and the revision now current for its reference id."""

    reference_id: str
    outcome: Outcome
    revision: int


@dataclass(frozen=True, slots=True)
class BatchResult:
    """One outcome per record of the batch, in batch order."""

    outcomes: tuple[CableOutcome, ...]

    @property
    def inserted(self) -> int:
        return sum(o.outcome == "inserted" for o in self.outcomes)

    @property
    def unchanged(self) -> int:
        return sum(o.outcome == "unchanged" for o in self.outcomes)

    @property
    def revised(self) -> int:
        return sum(o.outcome == "revised" for o in self.outcomes)

    def by_reference_id(self) -> dict[str, Outcome]:
        """The outcome per reference id (the last one when an id occurs twice in the batch)."""
        return {o.reference_id: o.outcome for o in self.outcomes}


def content_hash(record: Mapping[str, Any]) -> str:
    """SHA-256 (hex) of the canonical JSON of ``record`` (orjson, keys sorted)."""
    return hashlib.sha256(orjson.dumps(dict(record), option=orjson.OPT_SORT_KEYS)).hexdigest()


@dataclass(frozen=True, slots=True)
class _Version:
    reference_id: str
    content_hash: str
    record: dict[str, Any]
    date: datetime | None


def _version(index: int, record: object) -> _Version:
    if not isinstance(record, Mapping):
        kind = type(record).__name__
        raise PermanentSinkError(f"cables: record {index} of the batch is a {kind}, not a mapping")
    reference_id = record.get("reference_id")
    if not isinstance(reference_id, str):
        raise PermanentSinkError(
            f"cables: record {index} of the batch has reference_id {reference_id!r};"
            " expected a string"
        )
    try:
        digest = content_hash(record)
    except TypeError as error:
        raise PermanentSinkError(
            f"cables: record {reference_id} is not JSON data: {error}"
        ) from None
    date = record.get("date")
    try:
        when = parse_utc(date) if isinstance(date, str | None) else parse_utc(str(date))
    except ValueError:
        raise PermanentSinkError(
            f"cables: record {reference_id} has date {date!r}; expected ISO 8601"
        ) from None
    return _Version(reference_id, digest, dict(record), when)


def _chunks(ids: Sequence[str]) -> Iterator[Sequence[str]]:
    for start in range(0, len(ids), _CHUNK):
        yield ids[start : start + _CHUNK]


def _summary(ids: Sequence[str]) -> str:
    shown = ", ".join(ids[:5])
    return f"{shown} and {len(ids) - 5} more" if len(ids) > 5 else shown


class CableStore:
    """Cables in SQLite or PostgreSQL (migrated by ``worker.storage.migrations.upgrade``)."""

    def __init__(self, url: str | URL) -> None:
        self._db = Database(url)

    def __repr__(self) -> str:
        return f"CableStore({redact_url(self._db.url)!r})"

    def _insert(self, target: Any) -> Any:
        dialect = postgresql if self._db.backend == "postgresql" else sqlite
        return dialect.insert(target)

    def write_batch(
        self,
        records: Sequence[Mapping[str, Any]],
        message_ids: Sequence[str] | None = None,
        sink: str = "storage",
    ) -> BatchResult:
        """Store a batch in one transaction; idempotent. Raises TransientSinkError or
        PermanentSinkError (then nothing of the batch is stored).

        With ``message_ids`` (one per record, the envelope it came from) a receipt per record
        is written for ``sink`` in the same transaction, with the record's outcome.
        """
        if message_ids is not None and len(message_ids) != len(records):
            raise ValueError(f"{len(message_ids)} message ids for {len(records)} records")
        versions = [_version(index, record) for index, record in enumerate(records)]
        if not versions:
            return BatchResult(())
        ids = sorted({v.reference_id for v in versions})
        action = f"writing cables {_summary(ids)} to table cables"
        with self._db.errors(action), self._db.writer.begin() as conn:
            current, known = self._stored_state(conn, ids)
            outcomes: list[CableOutcome] = []
            # a reference id with several new versions in one batch needs several rounds
            rounds: list[list[tuple[_Version, int]]] = []
            pending: dict[str, int] = {}
            for version in versions:
                ref = version.reference_id
                seen = known.setdefault(ref, set())
                if version.content_hash in seen:
                    outcomes.append(CableOutcome(ref, "unchanged", current[ref]))
                    continue
                seen.add(version.content_hash)
                current[ref] = revision = current.get(ref, 0) + 1
                step = pending[ref] = pending.get(ref, -1) + 1
                if step == len(rounds):
                    rounds.append([])
                rounds[step].append((version, revision))
                outcome: Outcome = "revised" if revision > 1 else "inserted"
                outcomes.append(CableOutcome(ref, outcome, revision))
            for versions_of_round in rounds:
                self._write(conn, versions_of_round)
            if message_ids is not None:
                receipts = [
                    Receipt(message_id, sink, outcome.reference_id, outcome.outcome)
                    for message_id, outcome in zip(message_ids, outcomes, strict=True)
                ]
                insert_receipts(conn, self._db.backend, receipts)
        return BatchResult(tuple(outcomes))

    def _stored_state(
        self, conn: Connection, ids: Sequence[str]
    ) -> tuple[dict[str, int], dict[str, set[str]]]:
        current: dict[str, int] = {}
        known: dict[str, set[str]] = {}
        for chunk in _chunks(ids):
            rows = conn.execute(
                select(cables.c.reference_id, cables.c.content_hash, cables.c.revision).where(
                    cables.c.reference_id.in_(chunk)
                )
            )
            for ref, digest, revision in rows:
                current[ref] = revision
                known.setdefault(ref, set()).add(digest)
            older = conn.execute(
                select(cable_revisions.c.reference_id, cable_revisions.c.content_hash).where(
                    cable_revisions.c.reference_id.in_(chunk)
                )
            )
            for ref, digest in older:
                known.setdefault(ref, set()).add(digest)
        return current, known

    def _write(self, conn: Connection, versions: Sequence[tuple[_Version, int]]) -> None:
        now = datetime.now(UTC)
        archived = sorted(v.reference_id for v, revision in versions if revision > 1)
        columns = ["reference_id", "revision", "content_hash", "record", "stored_at"]
        for chunk in _chunks(archived):
            previous = select(*(cables.c[name] for name in columns)).where(
                cables.c.reference_id.in_(chunk)
            )
            conn.execute(
                self._insert(cable_revisions)
                .from_select(columns, previous)
                .on_conflict_do_nothing()
            )
        rows = sorted(  # one lock order for every writer: no deadlocks between batches
            (self._row(version, revision, now) for version, revision in versions),
            key=lambda row: str(row["reference_id"]),
        )
        written = {row.reference_id for row in conn.execute(self._upsert(), rows)}
        if len(written) != len(rows):
            raced = sorted({v.reference_id for v, _ in versions} - written)
            raise TransientSinkError(
                f"cables: {_summary(raced)} changed while this batch was being written; retry"
            )
        if self._db.backend == "sqlite":
            fulltext.index_sqlite(conn, [version.record for version, _ in versions])

    def _upsert(self) -> Insert:
        stmt = self._insert(cables)
        excluded = stmt.excluded
        changing = [c.name for c in cables.columns if c.name != "reference_id"]
        result: Insert = stmt.on_conflict_do_update(
            index_elements=[cables.c.reference_id],
            set_={name: excluded[name] for name in changing},
            where=cables.c.revision == excluded.revision - 1,
        ).returning(cables.c.reference_id)
        return result

    @staticmethod
    def _row(version: _Version, revision: int, now: datetime) -> dict[str, Any]:
        record = version.record
        tags = record.get("tags") if isinstance(record.get("tags"), list) else []
        codes = (t.get("code") if isinstance(t, Mapping) else t for t in tags or ())
        return {
            "reference_id": version.reference_id,
            "content_hash": version.content_hash,
            "date": version.date,
            "classification": record.get("classification"),
            "origin": record.get("origin"),
            "subject": record.get("subject"),
            "tags": " ".join(code for code in codes if isinstance(code, str)),
            "revision": revision,
            "record": record,
            "stored_at": now,
        }

    def get(self, reference_id: str) -> dict[str, Any] | None:
        """The current record for ``reference_id``, or None."""
        query = select(cables.c.record).where(cables.c.reference_id == reference_id)
        action = f"reading cable {reference_id} from table cables"
        with self._db.errors(action), self._db.engine.connect() as conn:
            found = conn.execute(query).scalar_one_or_none()
        return dict(found) if found is not None else None

    def revisions(self, reference_id: str) -> list[dict[str, Any]]:
        """Every stored version of a cable, oldest first, the current one last: revision,
        content_hash, stored_at (ISO UTC) and record."""
        columns = ["revision", "content_hash", "stored_at", "record"]
        action = f"reading revisions of cable {reference_id} from table cable_revisions"
        with self._db.errors(action), self._db.engine.connect() as conn:
            rows = [
                *conn.execute(
                    select(*(cable_revisions.c[n] for n in columns)).where(
                        cable_revisions.c.reference_id == reference_id
                    )
                ),
                *conn.execute(
                    select(*(cables.c[n] for n in columns)).where(
                        cables.c.reference_id == reference_id
                    )
                ),
            ]
        return [
            {
                "revision": row.revision,
                "content_hash": row.content_hash,
                "stored_at": utc_iso(row.stored_at),
                "record": row.record,
            }
            for row in sorted(rows, key=lambda row: int(row.revision))
        ]

    def search(self, query: str, limit: int = 20) -> list[dict[str, Any]]:
        """Current cables whose subject or body contain every word of ``query``, best first:
        reference_id, date (ISO UTC), classification, subject."""
        with self._db.errors("searching table cables"), self._db.engine.connect() as conn:
            return fulltext.search(conn, query, limit)

    def count(self) -> int:
        """How many cables are stored (current records, not revisions)."""
        with self._db.errors("counting table cables"), self._db.engine.connect() as conn:
            return int(conn.execute(select(func.count()).select_from(cables)).scalar_one())

    def close(self) -> None:
        """Close the pooled connections of this process; the store can still be used after."""
        self._db.dispose()
