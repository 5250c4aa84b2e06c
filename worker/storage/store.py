"""The cable store: current records, their earlier revisions, originals and full-text search.

A batch is written in one transaction, all or nothing, and writing it again changes nothing:
a record whose content hash is already stored for its reference id, as the current record or
an earlier revision, is ``unchanged``. The content hash is the SHA-256 of the record's
canonical JSON without what belongs to an arrival or a parse of it (:data:`ARRIVAL_FIELDS`):
the same cable under another file name, from another feed or in another rendering that parses
to the same content is not a new revision. A record with new content becomes the next
revision; the one it replaces moves to ``cable_revisions``. Concurrent writers of the same
reference id cannot lose a revision: the upsert only applies on top of the revision this batch
read, and otherwise the batch fails as transient.

Given the arrivals the records came from, the same transaction stores each original (once per
sha256) and a provenance row per arrival (:mod:`worker.storage.provenance`). Each revision
names the original it was derived from and the parser version that derived it; an unchanged
record derived by a newer parser (``reparse``) replaces the current one in place.
"""

from __future__ import annotations

import hashlib
from collections.abc import Callable, Iterator, Mapping, Sequence
from dataclasses import dataclass
from datetime import UTC, datetime
from typing import Any, Literal

import orjson
from packaging.version import InvalidVersion, Version
from sqlalchemy import Connection, Insert, func, select, update
from sqlalchemy.dialects import postgresql, sqlite
from sqlalchemy.engine import URL

from worker.errors import IntegrityError, PermanentSinkError, TransientSinkError
from worker.storage import originals as codec
from worker.storage import search as fulltext
from worker.storage.engine import Database, parse_utc, redact_url, utc_iso
from worker.storage.provenance import (
    Arrival,
    Stored,
    arrivals_of,
    insert_arrivals,
    insert_originals,
    read_original,
)
from worker.storage.receipts import Receipt, insert_receipts
from worker.storage.schema import cable_revisions, cables

__all__ = [
    "ARRIVAL_FIELDS",
    "BatchResult",
    "CableOutcome",
    "CableStore",
    "content_hash",
    "derived_columns",
    "redact_url",
]

ARRIVAL_FIELDS = ("source_file", "warnings", "parser_version")
"""Record fields left out of the content hash: they describe an arrival or one parse of it
(the file name, what was odd about this rendering, the parser), not the cable."""

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
    """SHA-256 (hex) of the canonical JSON (orjson, keys sorted) of ``record`` without
    :data:`ARRIVAL_FIELDS`."""
    content = {k: v for k, v in record.items() if k not in ARRIVAL_FIELDS}
    return hashlib.sha256(orjson.dumps(content, option=orjson.OPT_SORT_KEYS)).hexdigest()


def derived_columns(record: Mapping[str, Any]) -> dict[str, Any]:
    """The columns of ``cables`` copied from a record for queries: classification, origin,
    subject and tags (the tag codes, space-separated); the date is parsed apart."""
    tags = record.get("tags") if isinstance(record.get("tags"), list) else []
    codes = (t.get("code") if isinstance(t, Mapping) else t for t in tags or ())
    return {
        "classification": record.get("classification"),
        "origin": record.get("origin"),
        "subject": record.get("subject"),
        "tags": " ".join(code for code in codes if isinstance(code, str)),
    }


def _newer(candidate: str | None, stored: str | None) -> bool:
    """Whether parser version ``candidate`` is newer than ``stored`` (None: unknown, oldest)."""
    if candidate is None:
        return False
    if stored is None:
        return True
    try:
        return Version(candidate) > Version(stored)
    except InvalidVersion:
        return False


@dataclass(frozen=True, slots=True)
class _Version:
    reference_id: str
    content_hash: str
    record: dict[str, Any]
    date: datetime | None
    original: str | None = None  # sha256 of the original it was derived from

    @property
    def parser_version(self) -> str | None:
        value = self.record.get("parser_version")
        return value if isinstance(value, str) else None


@dataclass(slots=True)
class _Current:
    revision: int
    content_hash: str
    parser_version: str | None
    original: str | None


def _version(index: int, record: object, original: str | None = None) -> _Version:
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
    return _Version(reference_id, digest, dict(record), when, original)


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
        *,
        arrivals: Sequence[Arrival | None] | None = None,
        originals: Sequence[str | None] | None = None,
        then: Callable[[Connection, BatchResult], None] | None = None,
    ) -> BatchResult:
        """Store a batch in one transaction; idempotent. Raises TransientSinkError or
        PermanentSinkError (then nothing of the batch is stored).

        With ``message_ids`` (one per record, the envelope it came from) a receipt per record
        is written for ``sink`` in the same transaction, with the record's outcome. With
        ``arrivals`` (one per record, None where unknown) their originals and provenance rows
        are written too;
        ``originals`` (sha256s of stored originals, one per record) names the original of a
        record derived again from one (``reparse``). ``then`` runs last inside the
        transaction, with its connection and the outcomes (``reparse`` marks its items done
        there); an exception from it rolls the whole batch back.
        """
        for name, given in (("message ids", message_ids), ("arrivals", arrivals),
                            ("originals", originals)):  # fmt: skip
            if given is not None and len(given) != len(records):
                raise ValueError(f"{len(given)} {name} for {len(records)} records")
        came = list(arrivals) if arrivals is not None else [None] * len(records)
        named = list(originals) if originals is not None else [None] * len(records)
        versions = [
            _version(index, record, arrival.sha256 if arrival else sha256)
            for index, (record, arrival, sha256) in enumerate(
                zip(records, came, named, strict=True)
            )
        ]
        if not versions:
            return BatchResult(())
        kept = self._compress([a for a in came if a is not None])
        ids = sorted({v.reference_id for v in versions})
        action = f"writing cables {_summary(ids)} to table cables"
        with self._db.errors(action), self._db.writer.begin() as conn:
            insert_originals(conn, self._db.backend, kept)
            current, known = self._stored_state(conn, ids)
            outcomes: list[CableOutcome] = []
            refreshed: dict[str, _Version] = {}
            # a reference id with several new versions in one batch needs several rounds
            rounds: list[list[tuple[_Version, int]]] = []
            pending: dict[str, int] = {}
            for version in versions:
                ref = version.reference_id
                seen = known.setdefault(ref, set())
                now = current.get(ref)
                if version.content_hash in seen:
                    assert now is not None
                    if now.content_hash == version.content_hash and self._refreshes(version, now):
                        refreshed[ref] = version
                        now.parser_version, now.original = version.parser_version, version.original
                    outcomes.append(CableOutcome(ref, "unchanged", now.revision))
                    continue
                seen.add(version.content_hash)
                revision = (now.revision if now else 0) + 1
                current[ref] = _Current(
                    revision, version.content_hash, version.parser_version, version.original
                )
                refreshed.pop(ref, None)
                step = pending[ref] = pending.get(ref, -1) + 1
                if step == len(rounds):
                    rounds.append([])
                rounds[step].append((version, revision))
                outcome: Outcome = "revised" if revision > 1 else "inserted"
                outcomes.append(CableOutcome(ref, outcome, revision))
            for versions_of_round in rounds:
                self._write(conn, versions_of_round)
            self._refresh(conn, refreshed, current)
            if message_ids is not None:
                receipts = [
                    Receipt(message_id, sink, outcome.reference_id, outcome.outcome)
                    for message_id, outcome in zip(message_ids, outcomes, strict=True)
                ]
                insert_receipts(conn, self._db.backend, receipts)
            stored = [
                Stored(arrival, o.reference_id, o.revision, o.outcome)
                for arrival, o in zip(came, outcomes, strict=True)
                if arrival is not None
            ]
            insert_arrivals(conn, self._db.backend, stored)
            result = BatchResult(tuple(outcomes))
            if then is not None:
                then(conn, result)
        return result

    @staticmethod
    def _compress(arrivals: Sequence[Arrival]) -> list[codec.Original]:
        try:
            return [codec.compress(a.text, a.sha256) for a in arrivals]
        except IntegrityError as error:
            raise PermanentSinkError(f"cables: {error}") from None

    @staticmethod
    def _refreshes(version: _Version, stored: _Current) -> bool:
        """An unchanged record replaces the current one when a newer parser derived it, or
        when the current one has no original and this one has."""
        if _newer(version.parser_version, stored.parser_version):
            return True
        return stored.original is None and version.original is not None

    def _refresh(
        self, conn: Connection, refreshed: Mapping[str, _Version], current: Mapping[str, _Current]
    ) -> None:
        for ref in sorted(refreshed):
            version = refreshed[ref]
            conn.execute(
                update(cables)
                .where(cables.c.reference_id == ref, cables.c.revision == current[ref].revision)
                .values(
                    record=version.record,
                    parser_version=version.parser_version,
                    original_sha256=version.original,
                )
            )

    def _stored_state(
        self, conn: Connection, ids: Sequence[str]
    ) -> tuple[dict[str, _Current], dict[str, set[str]]]:
        current: dict[str, _Current] = {}
        known: dict[str, set[str]] = {}
        for chunk in _chunks(ids):
            rows = conn.execute(
                select(
                    cables.c.reference_id,
                    cables.c.content_hash,
                    cables.c.revision,
                    cables.c.parser_version,
                    cables.c.original_sha256,
                ).where(cables.c.reference_id.in_(chunk))
            )
            for ref, digest, revision, parser_version, original in rows:
                current[ref] = _Current(revision, digest, parser_version, original)
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
        columns = [
            "reference_id",
            "revision",
            "content_hash",
            "record",
            "stored_at",
            "original_sha256",
            "parser_version",
        ]
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
        return {
            "reference_id": version.reference_id,
            "content_hash": version.content_hash,
            "date": version.date,
            **derived_columns(record),
            "revision": revision,
            "record": record,
            "stored_at": now,
            "original_sha256": version.original,
            "parser_version": version.parser_version,
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
        content_hash, stored_at (ISO UTC), original_sha256, parser_version and record."""
        columns = [
            "revision",
            "content_hash",
            "stored_at",
            "original_sha256",
            "parser_version",
            "record",
        ]
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
                "original_sha256": row.original_sha256,
                "parser_version": row.parser_version,
                "record": row.record,
            }
            for row in sorted(rows, key=lambda row: int(row.revision))
        ]

    def original_of(self, reference_id: str, revision: int | None = None) -> tuple[str, bytes]:
        """The sha256 and exact bytes of the original a revision of a cable (default: the
        current one) was derived from. LookupError when there is no such revision or it has no
        original (stored before originals were kept); IntegrityError when the bytes are damaged.
        """
        found = [
            v for v in self.revisions(reference_id) if revision is None or v["revision"] == revision
        ]
        if not found:
            which = "" if revision is None else f" revision {revision}"
            raise LookupError(f"no cable {reference_id}{which} is stored")
        version = found[-1]
        sha256 = version["original_sha256"]
        if sha256 is None:
            raise LookupError(
                f"cable {reference_id} revision {version['revision']} was stored before"
                " originals were kept; it has none"
            )
        action = f"reading original {sha256} from table originals"
        with self._db.errors(action), self._db.engine.connect() as conn:
            raw = read_original(conn, sha256)
        if raw is None:
            raise LookupError(f"original {sha256} of cable {reference_id} is not stored")
        return sha256, raw

    def provenance(self, reference_id: str) -> dict[str, Any]:
        """Every arrival of a cable and, per revision, the original it was derived from."""
        versions = [
            {k: v for k, v in version.items() if k != "record"}
            for version in self.revisions(reference_id)
        ]
        action = f"reading the arrivals of cable {reference_id}"
        with self._db.errors(action), self._db.engine.connect() as conn:
            arrived = arrivals_of(conn, reference_id)
        return {"reference_id": reference_id, "revisions": versions, "arrivals": arrived}

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
