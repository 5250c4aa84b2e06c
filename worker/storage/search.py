"""Full-text search over the subject and body of the current cables, on either backend.

PostgreSQL computes a weighted ``tsvector`` column itself (see the initial migration) and
ranks with ``ts_rank``; SQLite has an FTS5 table which :func:`index_sqlite` keeps in step
with ``cables`` and ranks with ``bm25``, the subject weighted ten times the body. On both,
a query is a list of words that must all occur, stemmed (English); punctuation is ignored.
"""

from __future__ import annotations

import re
from collections.abc import Mapping, Sequence
from typing import Any

from sqlalchemy import (
    ColumnClause,
    Connection,
    String,
    bindparam,
    column,
    func,
    literal_column,
    select,
    table,
)
from sqlalchemy import text as sql_text
from sqlalchemy.dialects.postgresql import TSVECTOR

from worker.storage.engine import utc_iso
from worker.storage.schema import UTCDateTime, cables

_WORD = re.compile(r"\w+")
_fts = table("cables_fts", column("rowid"), column("subject"), column("body"))
_docs = table("cables_fts_docs", column("docid"), column("reference_id"))
_docids = select(_docs.c.reference_id, _docs.c.docid).where(
    _docs.c.reference_id.in_(bindparam("refs", expanding=True))
)
_search_vector = literal_column("cables.search_vector", TSVECTOR)
_english: ColumnClause[Any] = literal_column("'english'::regconfig")

_SQLITE_QUERY = sql_text(
    "SELECT cables.reference_id, cables.date, cables.classification, cables.subject"
    " FROM cables_fts"
    " JOIN cables_fts_docs ON cables_fts_docs.docid = cables_fts.rowid"
    " JOIN cables ON cables.reference_id = cables_fts_docs.reference_id"
    " WHERE cables_fts MATCH :match"
    " ORDER BY bm25(cables_fts, 10.0, 1.0), cables.reference_id LIMIT :limit"
).columns(reference_id=String, date=UTCDateTime, classification=String, subject=String)


def body_text(record: Mapping[str, Any]) -> str:
    """The searchable body of a record: paragraph headings and texts, in order."""
    parts: list[str] = []
    paragraphs = record.get("paragraphs")
    for paragraph in paragraphs if isinstance(paragraphs, list) else ():
        if isinstance(paragraph, Mapping):
            parts.extend(
                value for key in ("heading", "text") if isinstance(value := paragraph.get(key), str)
            )
    return "\n".join(parts)


def _known_docids(conn: Connection, refs: Sequence[str]) -> dict[str, int]:
    return dict(conn.execute(_docids, {"refs": refs}).all())


def index_sqlite(conn: Connection, records: Sequence[Mapping[str, Any]]) -> None:
    """Replace the FTS5 entries of these (current) records, in the caller's transaction."""
    refs = [record["reference_id"] for record in records]
    if not refs:
        return
    known = _known_docids(conn, refs)
    if known:
        conn.execute(_fts.delete().where(_fts.c.rowid.in_(known.values())))
    new = [{"reference_id": ref} for ref in dict.fromkeys(refs) if ref not in known]
    if new:
        conn.execute(_docs.insert(), new)
        known = _known_docids(conn, refs)
    rows = [
        {
            "rowid": known[record["reference_id"]],
            "subject": subject if isinstance(subject := record.get("subject"), str) else "",
            "body": body_text(record),
        }
        for record in records
    ]
    conn.execute(_fts.insert(), rows)


def search(conn: Connection, query: str, limit: int) -> list[dict[str, Any]]:
    """The best ``limit`` cables matching every word of ``query``, best first."""
    words = _WORD.findall(query)
    if not words or limit < 1:
        return []
    if conn.dialect.name == "sqlite":
        match = " ".join(f'"{word}"' for word in words)
        rows: Sequence[Any] = conn.execute(_SQLITE_QUERY, {"match": match, "limit": limit}).all()
    else:
        tsquery = func.plainto_tsquery(_english, " ".join(words))
        rows = conn.execute(
            select(cables.c.reference_id, cables.c.date, cables.c.classification, cables.c.subject)
            .where(_search_vector.bool_op("@@")(tsquery))
            .order_by(func.ts_rank(_search_vector, tsquery).desc(), cables.c.reference_id)
            .limit(limit)
        ).all()
    return [
        {
            "reference_id": row.reference_id,
            "date": utc_iso(row.date),
            "classification": row.classification,
            "subject": row.subject,
        }
        for row in rows
    ]
