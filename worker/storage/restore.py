"""Restore: an export (:mod:`worker.storage.exchange`) read back into an empty database, exactly.

The lines stream through and are written in batches, all inside the caller's one transaction
(:func:`import_database` opens it): an import that fails anywhere, a damaged line or a missing
end line included, leaves the database as empty as it found it. Every line is checked before it
is written: its fields and their types, its place in the export's order, each record against
its content hash and each original against its sha256 and size; the end line's counts and
sha256 against what came before it. Each error names the line. Originals are compressed again
by :mod:`worker.storage.originals`; on SQLite the full-text index is filled batch by batch.
"""

from __future__ import annotations

import hashlib
from collections.abc import Iterable
from typing import Any

import orjson
from sqlalchemy import Connection, Table, inspect, literal, select
from sqlalchemy.engine import URL

from worker.errors import ExchangeError, IntegrityError
from worker.storage import originals as codec
from worker.storage import search as fulltext
from worker.storage.engine import Database, parse_utc, redact_url
from worker.storage.exchange import FORMAT, FORMAT_VERSION, Counts
from worker.storage.migrations import upgrade
from worker.storage.restore_checks import (
    Line,
    Order,
    expect_keys,
    field,
    sha256_field,
    timestamp,
)
from worker.storage.schema import arrivals, cable_revisions, cables, originals
from worker.storage.store import content_hash, derived_columns

BATCH = 500  # rows per INSERT round trip
_TABLES = (cables, cable_revisions, originals, arrivals)


def _check_empty(conn: Connection) -> None:
    present = set(inspect(conn).get_table_names())  # before migrating, some may be missing
    holding = [
        table.name
        for table in _TABLES
        if table.name in present
        and conn.execute(select(literal(1)).select_from(table).limit(1)).first() is not None
    ]
    if holding:
        raise ExchangeError(
            f"the database {redact_url(conn.engine.url)} is not empty ({', '.join(holding)}"
            " hold rows): import restores into an empty database only"
        )


def _header(line: Line) -> dict[str, bool]:
    name = line.document.get("format")
    if line.document.get("type") != "header" or name != FORMAT:
        raise ExchangeError(f"line {line.number}: not a {FORMAT} header (format {name!r})")
    version = line.document.get("format_version")
    if version != FORMAT_VERSION:
        raise ExchangeError(
            f"line {line.number}: format version {version!r}; this cable-ingest reads version"
            f" {FORMAT_VERSION} only"
        )
    includes = field(line, "includes", dict)
    return {name: field(line, name, bool, includes) for name in ("originals", "provenance")}


class _Batches:
    """Rows waiting to be inserted, a few hundred per table and round trip. Tables are written
    in the order of ``_TABLES``, so a cable's current row precedes its earlier revisions."""

    def __init__(self, conn: Connection, size: int) -> None:
        self._conn = conn
        self._size = size
        self._rows: dict[Table, list[dict[str, Any]]] = {table: [] for table in _TABLES}

    def add(self, table: Table, *rows: dict[str, Any]) -> None:
        self._rows[table].extend(rows)
        if len(self._rows[table]) >= self._size:
            self.flush()

    def flush(self) -> None:
        for table, rows in self._rows.items():
            if rows:
                self._conn.execute(table.insert(), rows)
        current = self._rows[cables]
        if current and self._conn.dialect.name == "sqlite":
            fulltext.index_sqlite(self._conn, [row["record"] for row in current])
        for rows in self._rows.values():
            rows.clear()


def _revision(line: Line) -> tuple[dict[str, Any], bool]:
    expect_keys(line, "revision")
    reference_id = field(line, "reference_id", str)
    record = field(line, "record", dict)
    if record.get("reference_id") != reference_id:
        raise ExchangeError(
            f"line {line.number}: the record's reference_id {record.get('reference_id')!r}"
            f" is not the line's {reference_id!r}"
        )
    digest = field(line, "content_hash", str)
    if content_hash(record) != digest:
        raise IntegrityError(
            f"line {line.number}: the record of {reference_id} does not hash to its"
            f" content_hash {digest}; it was altered"
        )
    date = record.get("date")
    try:
        when = parse_utc(date) if isinstance(date, str | None) else parse_utc(str(date))
    except ValueError:
        message = f"line {line.number}: the record's date {date!r} is not ISO 8601"
        raise ExchangeError(message) from None
    row = {
        "reference_id": reference_id,
        "revision": field(line, "revision", int),
        "content_hash": digest,
        "record": record,
        "stored_at": timestamp(line, "stored_at"),
        "original_sha256": sha256_field(line, "original_sha256", nullable=True),
        "parser_version": field(line, "parser_version", str | None),
    }
    current = field(line, "current", bool)
    if current:
        row |= {"date": when, **derived_columns(record)}
    return row, current


def _original(line: Line) -> dict[str, Any]:
    expect_keys(line, "original")
    sha256 = sha256_field(line, "sha256")
    size = field(line, "size", int)
    try:
        kept = codec.compress(field(line, "text", str), sha256)
    except IntegrityError as error:
        raise IntegrityError(f"line {line.number}: {error}") from None
    if kept.size != size:
        message = f"line {line.number}: original {sha256} is {kept.size} bytes, not {size}"
        raise IntegrityError(message)
    return {
        "sha256": sha256,
        "size": size,
        "codec": kept.codec,
        "data": kept.data,
        "stored_at": timestamp(line, "stored_at"),
    }


def _arrival(line: Line) -> dict[str, Any]:
    expect_keys(line, "arrival")
    return {
        "message_id": field(line, "message_id", str),
        "reference_id": field(line, "reference_id", str),
        "revision": field(line, "revision", int),
        "outcome": field(line, "outcome", str),
        "source": field(line, "source", str | None),
        "metadata": field(line, "metadata", dict),
        "received_at": timestamp(line, "received_at", nullable=True),
        "stored_at": timestamp(line, "stored_at"),
        "sha256": sha256_field(line, "sha256"),
    }


def _end(line: Line, counts: Counts, digest: str, rest: Iterable[tuple[int, bytes]]) -> None:
    expect_keys(line, "end")
    stated = field(line, "counts", dict)
    if stated != counts.as_dict():
        raise ExchangeError(
            f"line {line.number}: the end line counts {orjson.dumps(stated).decode()}, the file"
            f" holds {orjson.dumps(counts.as_dict()).decode()}"
        )
    if field(line, "sha256", str) != digest:
        raise IntegrityError(
            f"line {line.number}: the lines before the end line do not hash to its sha256;"
            " the file was altered"
        )
    for number, _raw in rest:
        raise ExchangeError(f"line {number}: more data after the end line")


def restore(conn: Connection, lines: Iterable[bytes], *, batch_size: int = BATCH) -> Counts:
    """Restore the export ``lines`` through ``conn`` (inside the caller's transaction, into an
    empty database); return what it held. ExchangeError or IntegrityError name the bad line."""
    _check_empty(conn)
    numbered = enumerate(lines, start=1)
    number, raw = next(numbered, (0, b""))
    if not number:
        raise ExchangeError("the file is empty: expected an export's header line")
    first = Line.read(number, raw)
    includes = _header(first)
    digest = hashlib.sha256(first.raw)
    counts, order, batches = Counts(), Order(includes), _Batches(conn, batch_size)
    earlier: list[dict[str, Any]] = []  # the earlier revisions of the cable being read
    for number, raw in numbered:
        line = Line.read(number, raw)
        kind = order.check(line)
        if kind == "end":
            batches.flush()
            _end(line, counts, digest.hexdigest(), numbered)
            return counts
        digest.update(line.raw)
        if kind == "revision":
            row, current = _revision(line)
            order.revision(line, row["reference_id"], row["revision"], current)
            if current:
                batches.add(cables, row)
                batches.add(cable_revisions, *earlier)
                earlier = []
            else:
                earlier.append(row)
        elif kind == "original":
            row = _original(line)
            order.key(line, row["sha256"])
            batches.add(originals, row)
        else:
            row = _arrival(line)
            order.key(line, row["message_id"])
            batches.add(arrivals, row)
        counts.add(line.document)
    raise ExchangeError(f"the file ends at line {number} without its end line: it was cut short")


def import_database(url: str | URL, lines: Iterable[bytes], *, batch_size: int = BATCH) -> Counts:
    """Migrate the database at ``url`` and restore ``lines`` into it in one transaction; a
    database that holds cables is refused before it is migrated."""
    database = Database(url)
    try:
        with database.errors(f"importing into {redact_url(url)}"):
            with database.engine.connect() as conn:
                _check_empty(conn)
            upgrade(url)
            with database.writer.begin() as conn:
                return restore(conn, lines, batch_size=batch_size)
    finally:
        database.dispose()
