"""Read queries of the HTTP face: filtered listings and search, cited-by, one message's trail.

Every listing takes the classifications a reader may see (``allowed``) and filters on the
banner column in SQL; the caller then checks each record's effective rank (paragraph
markings), so the rows come with their records. Listings without a query are in reference id
order and resume after a reference id (keyset); searches are in relevance order and resume at
an offset.
"""

from __future__ import annotations

from collections.abc import Sequence
from dataclasses import dataclass
from datetime import datetime
from typing import Any

from sqlalchemy import ColumnElement, Select, String, and_, exists, func, literal_column, select
from sqlalchemy import text as sql_text
from sqlalchemy.dialects.postgresql import JSONB, TSVECTOR
from sqlalchemy.engine import URL

from worker.storage.engine import Database, redact_url, utc_iso
from worker.storage.schema import accepted, arrivals, cables, dead_letters, receipts

_WORD_CHARS = str.maketrans(dict.fromkeys("\"'*:^(){}[]-+.,;!?/\\", " "))
_search_vector = literal_column("cables.search_vector", TSVECTOR)


@dataclass(frozen=True, slots=True)
class Filters:
    """What a listing asks for; empty fields do not filter."""

    q: str = ""
    origin: str = ""
    classification: str = ""
    tag: str = ""
    date_from: datetime | None = None
    date_to: datetime | None = None
    cites: str = ""


def summary(row: Any) -> dict[str, Any]:
    """A listing entry: the record's main fields."""
    return {
        "reference_id": row.reference_id,
        "date": utc_iso(row.date),
        "classification": row.classification,
        "origin": row.origin,
        "subject": row.subject,
        "tags": row.tags.split() if row.tags else [],
        "revision": row.revision,
    }


class Catalog:
    """Read-only queries over the cable store's tables."""

    def __init__(self, url: str | URL) -> None:
        self._db = Database(url)

    def __repr__(self) -> str:
        return f"Catalog({redact_url(self._db.url)!r})"

    def _conditions(self, filters: Filters, allowed: Sequence[str]) -> list[ColumnElement[bool]]:
        where: list[ColumnElement[bool]] = [cables.c.classification.in_(list(allowed))]
        if filters.origin:
            where.append(func.lower(cables.c.origin) == filters.origin.lower())
        if filters.classification:
            where.append(cables.c.classification == filters.classification)
        if filters.tag:
            padded = literal_column("' '", String) + cables.c.tags + literal_column("' '", String)
            where.append(padded.contains(f" {filters.tag.upper()} ", autoescape=True))
        if filters.date_from is not None:
            where.append(cables.c.date >= filters.date_from)
        if filters.date_to is not None:
            where.append(cables.c.date <= filters.date_to)
        if filters.cites:
            where.append(self._cites(filters.cites))
        return where

    def _cites(self, reference_id: str) -> ColumnElement[bool]:
        if self._db.backend == "postgresql":
            wanted = func.cast(
                func.jsonb_build_array(func.jsonb_build_object("id", reference_id)), JSONB
            )
            return cables.c.record["references"].op("@>")(wanted)
        refs = func.json_each(cables.c.record, "$.references").table_valued("value")
        return exists(
            select(1)
            .select_from(refs)
            .where(func.json_extract(refs.c.value, "$.id") == reference_id)
        )

    def _columns(self) -> Select[Any]:
        return select(
            cables.c.reference_id,
            cables.c.date,
            cables.c.classification,
            cables.c.origin,
            cables.c.subject,
            cables.c.tags,
            cables.c.revision,
            cables.c.record,
        )

    def listing(
        self, filters: Filters, allowed: Sequence[str], *, after: str | None, limit: int
    ) -> list[Any]:
        """Up to ``limit`` rows after reference id ``after``, in reference id order."""
        query = self._columns().where(and_(*self._conditions(filters, allowed)))
        if after is not None:
            query = query.where(cables.c.reference_id > after)
        query = query.order_by(cables.c.reference_id).limit(limit)
        with self._db.errors("listing cables"), self._db.engine.connect() as conn:
            return list(conn.execute(query))

    def search(
        self, filters: Filters, allowed: Sequence[str], *, offset: int, limit: int
    ) -> list[Any]:
        """Up to ``limit`` rows matching every word of ``filters.q``, best first, from ``offset``."""
        words = filters.q.translate(_WORD_CHARS).split()
        if not words:
            return []
        query = self._columns().where(and_(*self._conditions(filters, allowed)))
        if self._db.backend == "postgresql":
            tsquery = func.plainto_tsquery(literal_column("'english'::regconfig"), " ".join(words))
            query = query.where(_search_vector.bool_op("@@")(tsquery)).order_by(
                func.ts_rank(_search_vector, tsquery).desc(), cables.c.reference_id
            )
        else:
            match = " ".join(f'"{word}"' for word in words)
            fts = (
                sql_text(
                    "SELECT cables_fts_docs.reference_id AS ref, bm25(cables_fts, 10.0, 1.0) AS score"
                    " FROM cables_fts JOIN cables_fts_docs ON cables_fts_docs.docid = cables_fts.rowid"
                    " WHERE cables_fts MATCH :match"
                )
                .bindparams(match=match)
                .columns(ref=String, score=String)
                .subquery("hits")
            )
            query = query.join(fts, fts.c.ref == cables.c.reference_id).order_by(
                fts.c.score, cables.c.reference_id
            )
        query = query.offset(offset).limit(limit)
        with self._db.errors("searching cables"), self._db.engine.connect() as conn:
            return list(conn.execute(query))

    def message(self, message_id: str) -> dict[str, Any]:
        """What is known of envelope ``message_id``: its acceptance onto the intake queue, its
        arrival (stored), the sinks' receipts and its dead letters."""
        with self._db.errors("reading a message's trail"), self._db.engine.connect() as conn:
            taken_in = conn.execute(
                select(accepted.c.source, accepted.c.accepted_at).where(
                    accepted.c.message_id == message_id
                )
            ).one_or_none()
            arrival = conn.execute(
                select(arrivals).where(arrivals.c.message_id == message_id)
            ).one_or_none()
            taken = conn.execute(
                select(
                    receipts.c.sink,
                    receipts.c.outcome,
                    receipts.c.reference_id,
                    receipts.c.delivered_at,
                )
                .where(receipts.c.message_id == message_id)
                .order_by(receipts.c.sink)
            ).all()
            letters = conn.execute(
                select(
                    dead_letters.c.stage,
                    dead_letters.c.error_class,
                    dead_letters.c.reason,
                    dead_letters.c.source,
                    dead_letters.c.last_seen,
                )
                .where(dead_letters.c.message_id == message_id)
                .order_by(dead_letters.c.stage)
            ).all()
        return {
            "accepted": taken_in,
            "arrival": arrival,
            "receipts": taken,
            "dead_letters": letters,
        }

    def close(self) -> None:
        """Close this process's pooled connections."""
        self._db.dispose()
