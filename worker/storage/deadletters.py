"""The dead-letter store: every failure, durable, browsable, replayable and purgeable.

Documents go in and come out in the shape of ``schemas/dead-letter.schema.json`` (what
``worker.core.pipeline.dead_letter`` builds), timestamps as ISO 8601 UTC with a ``Z``. A failure
seen again at the same stage is the same dead letter: it is recognised by the SHA-256 of the
raw text, else by its message id and reference id, and a repeat adds its attempts and moves
``last_seen`` instead of adding a row.
"""

from __future__ import annotations

import builtins
import re
import uuid
from collections.abc import Iterable, Mapping
from datetime import UTC, datetime
from typing import Any

from sqlalchemy import ColumnElement, Connection, and_, case, func, or_, select
from sqlalchemy.dialects import postgresql, sqlite
from sqlalchemy.engine import URL, Row

from worker.errors import PermanentSinkError, SchemaViolation
from worker.storage.engine import Database, parse_utc, redact_url, utc_iso
from worker.storage.schema import dead_letter_counts, dead_letters

__all__ = ["DeadLetterStore", "count_since", "counts_by_stage"]

STAGE = re.compile(r"^(intake|parse|validate|sink:[a-z0-9_-]+)$")
_TABLE = dead_letters
_LATEST = ("error_class", "reason", "schema_errors", "payload")
_KEPT_UNLESS_NULL = ("message_id", "reference_id", "sha256", "source")

_CHUNK = 500  # ids per IN (...) list


def _text(document: Mapping[str, Any], key: str) -> str | None:
    value = document.get(key)
    return value if isinstance(value, str) else None


def _schema_errors(value: object) -> builtins.list[dict[str, str]]:
    errors: builtins.list[dict[str, str]] = []
    for item in value if isinstance(value, list | tuple) else ():
        if isinstance(item, SchemaViolation):
            errors.append(item.as_dict())
        elif isinstance(item, Mapping):
            errors.append({"path": str(item.get("path", "")), "message": str(item.get("message"))})
    return errors


def _row(document: Mapping[str, Any], now: datetime) -> dict[str, Any]:
    stage = document.get("stage")
    if not isinstance(stage, str) or not STAGE.match(stage):
        raise PermanentSinkError(
            f"dead_letters: stage {stage!r} is not intake, parse, validate or sink:<name>"
        )
    payload = document.get("payload")
    if not isinstance(payload, Mapping):
        raise PermanentSinkError(f"dead_letters: payload of a {stage} failure is not an object")
    try:
        first_seen = parse_utc(document.get("first_seen")) or now
        last_seen = parse_utc(document.get("last_seen")) or first_seen
    except (TypeError, ValueError) as error:
        message = f"dead_letters: bad timestamp in a {stage} failure: {error}"
        raise PermanentSinkError(message) from error
    attempts = document.get("attempts")
    row: dict[str, Any] = {
        "id": _text(document, "id") or uuid.uuid4().hex,
        "stage": stage,
        "error_class": _text(document, "error_class") or "Exception",
        "reason": str(document.get("reason", "")),
        "schema_errors": _schema_errors(document.get("schema_errors")),
        "attempts": attempts if isinstance(attempts, int) and attempts >= 1 else 1,
        "first_seen": first_seen,
        "last_seen": max(first_seen, last_seen),
        "payload": dict(payload),
    }
    row.update({key: _text(document, key) for key in _KEPT_UNLESS_NULL})
    if row["sha256"]:
        row["dedupe_key"] = f"sha256:{row['sha256']}"
    elif row["message_id"] or row["reference_id"]:
        row["dedupe_key"] = f"message:{row['message_id'] or ''}|cable:{row['reference_id'] or ''}"
    else:
        row["dedupe_key"] = f"id:{row['id']}"
    return row


def _merge(older: dict[str, Any], newer: dict[str, Any]) -> dict[str, Any]:
    merged = dict(older)
    merged.update({key: newer[key] for key in _LATEST})
    merged.update({key: newer[key] or older[key] for key in _KEPT_UNLESS_NULL})
    merged["attempts"] = older["attempts"] + newer["attempts"]
    merged["first_seen"] = min(older["first_seen"], newer["first_seen"])
    merged["last_seen"] = max(older["last_seen"], newer["last_seen"])
    return merged


def _document(row: Row[Any]) -> dict[str, Any]:
    return {
        "id": row.id,
        "stage": row.stage,
        "error_class": row.error_class,
        "reason": row.reason,
        "schema_errors": builtins.list(row.schema_errors),
        "attempts": row.attempts,
        "first_seen": utc_iso(row.first_seen),
        "last_seen": utc_iso(row.last_seen),
        "message_id": row.message_id,
        "reference_id": row.reference_id,
        "sha256": row.sha256,
        "source": row.source,
        "payload": dict(row.payload),
        "replayed_at": utc_iso(row.replayed_at),
    }


_DOCUMENT_COLUMNS = [c for c in _TABLE.columns if c.name != "dedupe_key"]


def count_since(conn: Connection, since: datetime, stages: Iterable[str]) -> int:
    """How many dead letters of ``stages`` were last seen at or after ``since`` (on ``conn``,
    in the caller's transaction)."""
    query = select(func.count()).where(
        _TABLE.c.last_seen >= since, _TABLE.c.stage.in_(builtins.list(stages))
    )
    return int(conn.execute(query).scalar_one())


def counts_by_stage(conn: Connection) -> dict[str, int]:
    """How many dead letters each stage holds (stages with none are absent): the counts the
    triggers of migration 0008 keep, a few rows whatever the size of the table."""
    query = select(dead_letter_counts.c.stage, dead_letter_counts.c.count).where(
        dead_letter_counts.c.count > 0
    )
    return {stage: int(count) for stage, count in conn.execute(query)}


class DeadLetterStore:
    """Dead letters in the same SQLite or PostgreSQL database as the cables."""

    def __init__(self, url: str | URL) -> None:
        self._db = Database(url)

    def __repr__(self) -> str:
        return f"DeadLetterStore({redact_url(self._db.url)!r})"

    def add(self, dead_letter: Mapping[str, Any]) -> str:
        """Store one dead letter (or count a repeat of it); return the id it is stored under."""
        return self.add_many([dead_letter])[0]

    def add_many(self, documents: Iterable[Mapping[str, Any]]) -> builtins.list[str]:
        """Store dead letters in one transaction; return their ids, in the order given."""
        now = datetime.now(UTC)
        rows = [_row(document, now) for document in documents]
        merged: dict[tuple[str, str], dict[str, Any]] = {}
        for row in rows:
            key = (row["stage"], row["dedupe_key"])
            merged[key] = _merge(merged[key], row) if key in merged else row
        if not merged:
            return []
        action = f"adding {len(rows)} dead letters to table dead_letters"
        with self._db.errors(action), self._db.writer.begin() as conn:
            stored = self._upsert(conn, builtins.list(merged.values()))
        return [stored[(row["stage"], row["dedupe_key"])] for row in rows]

    def _upsert(
        self, conn: Connection, rows: builtins.list[dict[str, Any]]
    ) -> dict[tuple[str, str], str]:
        dialect = postgresql if self._db.backend == "postgresql" else sqlite
        stmt = dialect.insert(_TABLE)
        new = stmt.excluded
        changes: dict[str, Any] = {key: new[key] for key in _LATEST}
        changes.update({key: func.coalesce(new[key], _TABLE.c[key]) for key in _KEPT_UNLESS_NULL})
        changes["attempts"] = _TABLE.c.attempts + new.attempts
        changes["last_seen"] = case(
            (new.last_seen > _TABLE.c.last_seen, new.last_seen), else_=_TABLE.c.last_seen
        )
        upsert = stmt.on_conflict_do_update(
            index_elements=[_TABLE.c.stage, _TABLE.c.dedupe_key], set_=changes
        ).returning(_TABLE.c.id, _TABLE.c.stage, _TABLE.c.dedupe_key)
        return {(r.stage, r.dedupe_key): r.id for r in conn.execute(upsert, rows)}

    def get(self, dead_letter_id: str) -> dict[str, Any] | None:
        """The dead letter with this id, or None."""
        query = select(*_DOCUMENT_COLUMNS).where(_TABLE.c.id == dead_letter_id)
        action = f"reading dead letter {dead_letter_id} from table dead_letters"
        with self._db.errors(action), self._db.engine.connect() as conn:
            row = conn.execute(query).one_or_none()
        return _document(row) if row is not None else None

    def mark_replayed(self, ids: Iterable[str], at: datetime | None = None) -> int:
        """Record that these dead letters were replayed (now, or ``at``); return how many."""
        wanted = sorted(set(ids))
        if not wanted:
            return 0
        update = _TABLE.update().where(_TABLE.c.id.in_(wanted))
        action = f"marking {len(wanted)} dead letters replayed in table dead_letters"
        with self._db.errors(action), self._db.writer.begin() as conn:
            result = conn.execute(update.values(replayed_at=at or datetime.now(UTC)))
        return int(result.rowcount)

    def purge(
        self,
        *,
        stage: str | None = None,
        before: datetime | str | None = None,
        replayed_only: bool = False,
    ) -> int:
        """Delete dead letters (all of them when no filter is given); return how many.

        ``before`` compares with ``last_seen``; ``replayed_only`` keeps those never replayed
        and those that failed again after their last replay.
        """
        conditions: builtins.list[ColumnElement[bool]] = []
        if stage is not None:
            conditions.append(_TABLE.c.stage == stage)
        if (cutoff := parse_utc(before)) is not None:
            conditions.append(_TABLE.c.last_seen < cutoff)
        if replayed_only:
            conditions.append(_TABLE.c.replayed_at.is_not(None))
            conditions.append(_TABLE.c.replayed_at >= _TABLE.c.last_seen)
        with self._db.errors("purging table dead_letters"), self._db.writer.begin() as conn:
            result = conn.execute(_TABLE.delete().where(*conditions))
        return int(result.rowcount)

    def for_messages(self, message_ids: Iterable[str]) -> builtins.list[dict[str, str]]:
        """The id, stage, error class and reason of every dead letter of these envelopes."""
        wanted = sorted(set(message_ids))
        columns = (
            _TABLE.c.id,
            _TABLE.c.message_id,
            _TABLE.c.stage,
            _TABLE.c.error_class,
            _TABLE.c.reason,
        )
        found: builtins.list[dict[str, str]] = []
        with self._db.errors("reading table dead_letters"), self._db.engine.connect() as conn:
            for start in range(0, len(wanted), _CHUNK):
                chunk = wanted[start : start + _CHUNK]
                rows = conn.execute(select(*columns).where(_TABLE.c.message_id.in_(chunk)))
                found.extend(dict(row._mapping) for row in rows)
        return found

    def seen_since(self, at: datetime) -> builtins.list[dict[str, Any]]:
        """Message id, stage, error class and last seen of dead letters last seen since ``at``."""
        columns = (_TABLE.c.message_id, _TABLE.c.stage, _TABLE.c.error_class, _TABLE.c.last_seen)
        query = select(*columns).where(_TABLE.c.last_seen >= at)
        with self._db.errors("reading table dead_letters"), self._db.engine.connect() as conn:
            return [dict(row._mapping) for row in conn.execute(query)]

    def count_since(self, since: datetime, stages: Iterable[str]) -> int:
        """How many dead letters of ``stages`` were last seen at or after ``since``."""
        with self._db.errors("counting table dead_letters"), self._db.engine.connect() as conn:
            return count_since(conn, since, stages)

    def counts_by_stage(self) -> dict[str, int]:
        """How many dead letters each stage holds (stages with none are absent)."""
        with self._db.errors("counting table dead_letters"), self._db.engine.connect() as conn:
            return counts_by_stage(conn)

    def close(self) -> None:
        """Close the pooled connections of this process; the store can still be used after."""
        self._db.dispose()

    def list(
        self,
        *,
        stage: str | None = None,
        sink: str | None = None,
        reason_contains: str | None = None,
        since: datetime | str | None = None,
        until: datetime | str | None = None,
        message_id: str | None = None,
        after: tuple[datetime | str, str] | None = None,
        limit: int = 100,
    ) -> builtins.list[dict[str, Any]]:
        """Dead letters last seen in [since, until), most recent first, filtered by stage,
        sink name (stage ``sink:<name>``), a case-insensitive substring of the reason and the
        message id; ``after`` = (last seen, id) of a letter resumes after it (keyset)."""
        query = select(*_DOCUMENT_COLUMNS)
        if message_id is not None:
            query = query.where(_TABLE.c.message_id == message_id)
        if after is not None and (seen := parse_utc(after[0])) is not None:
            query = query.where(
                or_(
                    _TABLE.c.last_seen < seen,
                    and_(_TABLE.c.last_seen == seen, _TABLE.c.id > after[1]),
                )
            )
        if stage is not None:
            query = query.where(_TABLE.c.stage == stage)
        if sink is not None:
            query = query.where(_TABLE.c.stage == f"sink:{sink}")
        if reason_contains:
            query = query.where(_TABLE.c.reason.icontains(reason_contains, autoescape=True))
        if (start := parse_utc(since)) is not None:
            query = query.where(_TABLE.c.last_seen >= start)
        if (end := parse_utc(until)) is not None:
            query = query.where(_TABLE.c.last_seen < end)
        query = query.order_by(_TABLE.c.last_seen.desc(), _TABLE.c.id).limit(max(0, limit))
        with self._db.errors("listing table dead_letters"), self._db.engine.connect() as conn:
            return [_document(row) for row in conn.execute(query)]
