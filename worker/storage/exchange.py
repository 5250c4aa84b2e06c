"""Export: every stored version of every cable, optionally with the originals and the arrivals,
as JSON Lines that :mod:`worker.storage.restore` reads back into an empty database.

Each line is one JSON object with a ``type``, its keys sorted:

    header    format, format_version, schema_version, parser_version, storage_revision, includes
    revision  one stored version of a cable, the current one or an earlier one (``current``)
    original  the exact text of an envelope, with its sha256 and size
    arrival   one provenance row
    end       how many of each were written, and the sha256 of every line before this one

Revisions come first, by reference id then revision; then originals by sha256; then arrivals
by message id. Strings sort by code point on both backends (``COLLATE "C"`` on PostgreSQL),
timestamps are ISO 8601 UTC with microseconds, and numbers in producer metadata are written as
PostgreSQL's JSONB gives them back, so the same stored content gives the same bytes from SQLite
or PostgreSQL. Everything is read in one read-only transaction (one snapshot) through
server-side cursors, a few hundred rows at a time: memory does not grow with the database.
"""

from __future__ import annotations

import hashlib
import heapq
from collections.abc import Callable, Generator, Iterator, Mapping
from contextlib import closing, contextmanager
from dataclasses import asdict, dataclass
from datetime import UTC, datetime
from pathlib import Path
from typing import Any
from urllib.parse import quote

import orjson
from alembic.script import ScriptDirectory
from alembic.util import CommandError
from sqlalchemy import (
    ColumnElement,
    Connection,
    CursorResult,
    Row,
    Select,
    Table,
    inspect,
    select,
    text,
)
from sqlalchemy.engine import URL, make_url

from worker.errors import ExchangeError, IntegrityError
from worker.model import PARSER_VERSION, SCHEMA_VERSION
from worker.storage import originals as codec
from worker.storage.engine import Database, redact_url
from worker.storage.migrations import alembic_config
from worker.storage.schema import arrivals, cable_revisions, cables, originals

FORMAT = "cable-ingest-export"
FORMAT_VERSION = 1
FETCH = 200  # rows per round trip of a server-side cursor
_OPTIONS = orjson.OPT_SORT_KEYS | orjson.OPT_APPEND_NEWLINE
_VERSION_COLUMNS = (
    "reference_id",
    "revision",
    "content_hash",
    "record",
    "stored_at",
    "original_sha256",
    "parser_version",
)
_JSONB_INTEGERS = (-(2**63), 2**64)  # what orjson reads back as an int from PostgreSQL's text

Write = Callable[[bytes], object]
Lines = Generator[dict[str, Any], None, None]


@dataclass(slots=True)
class Counts:
    """How many of each kind an export holds: current cables, revision lines (current ones
    included), originals and arrivals."""

    cables: int = 0
    revisions: int = 0
    originals: int = 0
    arrivals: int = 0

    def add(self, line: Mapping[str, Any]) -> None:
        """Count one revision, original or arrival line."""
        kind = line["type"]
        if kind == "revision":
            self.revisions += 1
            self.cables += line["current"] is True
        elif kind == "original":
            self.originals += 1
        else:
            self.arrivals += 1

    def as_dict(self) -> dict[str, int]:
        """The counts as the end line writes them."""
        return asdict(self)


def stamp(value: datetime) -> str:
    """A timestamp as every export writes it: ``2026-12-02T01:06:27.000000Z``."""
    return value.astimezone(UTC).strftime("%Y-%m-%dT%H:%M:%S.%fZ")


def dump(document: Mapping[str, Any]) -> bytes:
    """One export line: the document's JSON, keys sorted, with its newline."""
    return orjson.dumps(document, option=_OPTIONS)


def jsonb_number(value: Any) -> Any:
    """A scalar as PostgreSQL's JSONB returns it: ``-0.0`` is 0.0, and an integral float
    written with an exponent (1e16 and up) comes back as the integer it is."""
    if isinstance(value, float):
        if value == 0.0:
            return 0.0
        low, high = _JSONB_INTEGERS
        if value.is_integer() and abs(value) >= 1e16 and low <= value < high:
            return int(value)
    return value


def header(storage_revision: str, *, originals: bool, provenance: bool) -> dict[str, Any]:
    """The first line of an export."""
    return {
        "type": "header",
        "format": FORMAT,
        "format_version": FORMAT_VERSION,
        "schema_version": SCHEMA_VERSION,
        "parser_version": PARSER_VERSION,
        "storage_revision": storage_revision,
        "includes": {"originals": originals, "provenance": provenance},
    }


def storage_revision(conn: Connection) -> str:
    """The Alembic revision of the database; ExchangeError unless it is this version's head."""
    if not inspect(conn).has_table("alembic_version"):
        raise ExchangeError("the database holds no cable-ingest tables: nothing to export")
    found = conn.execute(text("SELECT version_num FROM alembic_version")).scalars().all()
    scripts = ScriptDirectory.from_config(alembic_config())
    head = scripts.get_current_head()
    if found == [head] and head is not None:
        return head
    shown = ", ".join(found) or "none"
    try:
        known = all(scripts.get_revision(revision) is not None for revision in found)
    except CommandError:
        known = False
    advice = "run cable-ingest migrate first" if known else "export with that cable-ingest"
    raise ExchangeError(
        f"the database is at storage revision {shown} and this cable-ingest exports {head}:"
        f" {advice}"
    )


def _ordered(conn: Connection, *keys: ColumnElement[Any]) -> list[ColumnElement[Any]]:
    if conn.dialect.name != "postgresql":
        return list(keys)  # SQLite compares text bytewise: code point order in UTF-8
    return [key.collate("C") if key.type.python_type is str else key for key in keys]


def _stream(conn: Connection, query: Select[Any]) -> CursorResult[Any]:
    """The rows of ``query``, fetched a few hundred at a time (a server-side cursor on
    PostgreSQL); use it in a ``with`` block, so that the cursor closes whatever happens."""
    return conn.execute(query, execution_options={"yield_per": FETCH})


def _versions(conn: Connection, table: Table) -> CursorResult[Any]:
    query = select(*(table.c[name] for name in _VERSION_COLUMNS))
    return _stream(conn, query.order_by(*_ordered(conn, table.c.reference_id, table.c.revision)))


def revision_lines(conn: Connection) -> Lines:
    """Every stored version of every cable, by reference id then revision."""
    with _versions(conn, cable_revisions) as older, _versions(conn, cables) as newest:
        earlier = ((row, False) for row in older)
        current = ((row, True) for row in newest)
        merged = heapq.merge(earlier, current, key=lambda pair: _key(pair[0]))
        yield from (_revision(row, is_current) for row, is_current in merged)


def _key(row: Row[Any]) -> tuple[str, int]:
    return row.reference_id, row.revision


def _revision(row: Row[Any], is_current: bool) -> dict[str, Any]:
    return {
        "type": "revision",
        "reference_id": row.reference_id,
        "revision": row.revision,
        "current": is_current,
        "content_hash": row.content_hash,
        "original_sha256": row.original_sha256,
        "parser_version": row.parser_version,
        "stored_at": stamp(row.stored_at),
        "record": row.record,
    }


def original_lines(conn: Connection) -> Lines:
    """Every original, by sha256, as its exact text (checked against its sha256 and size)."""
    query = select(originals).order_by(*_ordered(conn, originals.c.sha256))
    with _stream(conn, query) as rows:
        yield from (_original(row) for row in rows)


def _original(row: Row[Any]) -> dict[str, Any]:
    raw = codec.decompress(codec.Original(row.sha256, row.size, row.codec, bytes(row.data)))
    if len(raw) != row.size:
        raise IntegrityError(f"original {row.sha256}: {len(raw)} bytes, {row.size} recorded")
    try:
        original = raw.decode("utf-8")
    except UnicodeDecodeError as error:
        raise IntegrityError(f"original {row.sha256}: not UTF-8 ({error})") from None
    return {
        "type": "original",
        "sha256": row.sha256,
        "size": row.size,
        "stored_at": stamp(row.stored_at),
        "text": original,
    }


def arrival_lines(conn: Connection) -> Lines:
    """Every arrival (provenance row), by message id."""
    query = select(arrivals).order_by(*_ordered(conn, arrivals.c.message_id))
    with _stream(conn, query) as rows:
        yield from (_arrival(row) for row in rows)


def _arrival(row: Row[Any]) -> dict[str, Any]:
    return {
        "type": "arrival",
        "message_id": row.message_id,
        "reference_id": row.reference_id,
        "revision": row.revision,
        "outcome": row.outcome,
        "source": row.source,
        "metadata": {key: jsonb_number(value) for key, value in row.metadata.items()},
        "received_at": stamp(row.received_at) if row.received_at else None,
        "stored_at": stamp(row.stored_at),
        "sha256": row.sha256,
    }


def export(
    conn: Connection, write: Write, *, originals: bool = False, provenance: bool = False
) -> Counts:
    """Write the export of the database behind ``conn`` line by line to ``write``; return what
    it holds. Run it inside one transaction, so that every line comes from one snapshot."""
    counts = Counts()
    digest = hashlib.sha256()

    def emit(document: Mapping[str, Any]) -> None:
        line = dump(document)
        digest.update(line)
        write(line)

    emit(header(storage_revision(conn), originals=originals, provenance=provenance))
    sections = (revision_lines, original_lines if originals else None,
                arrival_lines if provenance else None)  # fmt: skip
    for section in filter(None, sections):
        with closing(section(conn)) as lines:  # closes its cursors, even on an error
            for line in lines:
                counts.add(line)
                emit(line)
    write(dump({"type": "end", "counts": counts.as_dict(), "sha256": digest.hexdigest()}))
    return counts


def read_only(url: str | URL) -> URL:
    """The URL to read ``url`` without changing it: a SQLite file is opened read-only (and must
    exist); PostgreSQL transactions are made read-only by :func:`snapshot`."""
    parsed = make_url(url)
    path = parsed.database
    if parsed.get_backend_name() != "sqlite" or not path or path.startswith("file:"):
        return parsed
    if not Path(path).is_file():
        raise ExchangeError(f"no database at {path}: nothing to export")
    return parsed.set(
        database=f"file:{quote(path)}", query={**parsed.query, "mode": "ro", "uri": "true"}
    )


@contextmanager
def snapshot(url: str | URL) -> Iterator[Connection]:
    """A connection to the database at ``url`` inside one read-only transaction: every query
    sees the same snapshot, and nothing is created, migrated or locked for writing."""
    database = Database(read_only(url))
    try:
        action = f"exporting {redact_url(url)}"
        with database.errors(action), database.engine.connect() as conn:
            if database.backend == "postgresql":
                conn.execution_options(isolation_level="REPEATABLE READ", postgresql_readonly=True)
            with conn.begin():
                yield conn
    finally:
        database.dispose()


def export_database(
    url: str | URL, write: Write, *, originals: bool = False, provenance: bool = False
) -> Counts:
    """Export the database at ``url`` (read-only, one snapshot) to ``write``."""
    with snapshot(url) as conn:
        return export(conn, write, originals=originals, provenance=provenance)
