"""Export and restore (worker.storage.exchange, worker.storage.restore) on SQLite and PostgreSQL:
exact round trips, the format's order and checks, and what a failed import leaves behind."""

from __future__ import annotations

import hashlib
import io
import tracemalloc
from collections.abc import Callable, Iterator
from contextlib import contextmanager
from pathlib import Path
from typing import Any

import orjson
import pytest
from sqlalchemy import create_engine, inspect, text
from sqlalchemy.exc import DBAPIError

from tests.services import postgres_schema_url
from tests.storage.conftest import SAMPLE
from worker.errors import ExchangeError, IntegrityError
from worker.storage import CableStore, upgrade
from worker.storage.exchange import (
    FORMAT,
    export_database,
    revision_lines,
    snapshot,
)
from worker.storage.provenance import Arrival
from worker.storage.restore import import_database

RecordFactory = Callable[..., dict[str, Any]]
TEXT = SAMPLE.read_bytes().decode("utf-8")
METADATA = {"seq": 17, "score": 1.5, "big": 1e16, "neg": -0.0, "ok": True, "none": None}


def arrival(message_id: str, body: str, **fields: Any) -> Arrival:
    """An arrival of ``body`` (any text: the store does not parse it) with its sha256."""
    digest = hashlib.sha256(body.encode("utf-8")).hexdigest()
    return Arrival(message_id, body, digest, **fields)


def populate(url: str, make_record: RecordFactory) -> None:
    """Three cables: one stored before originals and then revised, arriving twice after; one
    with numbers in its metadata; one lower-case id with no received time."""
    store = CableStore(url)
    try:
        first = make_record("06ALMATY598")
        store.write_batch([first])
        revised = make_record("06ALMATY598", subject="KAZAKHSTAN: A CORRECTED SUBJECT")
        text_a = TEXT + "\nPARA 9. A CORRECTION.\n"
        store.write_batch(
            [revised, revised, make_record("06ALMATY600")],
            arrivals=[
                arrival("m-1", text_a, source="feed-a", received_at="2024-05-01T09:30:00Z"),
                arrival("m-2", text_a, source="feed-b", received_at="2024-05-01T09:30:00.5Z"),
                arrival("m-3", TEXT + "\n600\n", source="feed-a", metadata=METADATA),
            ],
        )
        store.write_batch([make_record("06almaty7")], arrivals=[arrival("m-0", TEXT + " ü ✓")])
    finally:
        store.close()


def exported(url: str, *, originals: bool = True, provenance: bool = True) -> bytes:
    """The export of the database at ``url``, as bytes."""
    out = io.BytesIO()
    export_database(url, out.write, originals=originals, provenance=provenance)
    return out.getvalue()


def documents(data: bytes) -> list[dict[str, Any]]:
    """The lines of an export as JSON objects."""
    return [orjson.loads(line) for line in data.splitlines()]


@contextmanager
def database(backend: str, folder: Path) -> Iterator[str]:
    """An empty, unmigrated database URL on ``backend`` (a SQLite file under ``folder``)."""
    if backend == "sqlite":
        yield f"sqlite:///{folder / 'cables.db'}"
        return
    with postgres_schema_url() as url:
        yield url


@pytest.mark.parametrize(("source", "target"), [("sqlite", "postgresql"), ("postgresql", "sqlite")])
def test_round_trip_across_backends_gives_identical_files(
    source: str, target: str, tmp_path: Path, make_record: RecordFactory
) -> None:
    """Export, import on the other backend, export again: the two files are byte for byte equal."""
    (tmp_path / "a").mkdir()
    (tmp_path / "b").mkdir()
    with database(source, tmp_path / "a") as first, database(target, tmp_path / "b") as second:
        upgrade(first)
        populate(first, make_record)
        data = exported(first)
        counts = import_database(second, io.BytesIO(data))
        assert exported(second) == data
    assert (counts.cables, counts.revisions, counts.originals, counts.arrivals) == (3, 4, 3, 4)


def test_restored_database_answers_as_the_original(
    store_url: str, tmp_path: Path, make_record: RecordFactory
) -> None:
    """After an import, records, revisions with their stored times, provenance, originals and
    full-text search read exactly as in the database exported."""
    source = f"sqlite:///{tmp_path / 'source.db'}"
    upgrade(source)
    populate(source, make_record)
    import_database(store_url, io.BytesIO(exported(source)))
    before, after = CableStore(source), CableStore(store_url)
    try:
        for ref in ("06ALMATY598", "06ALMATY600", "06almaty7"):
            assert after.revisions(ref) == before.revisions(ref)
            assert after.provenance(ref) == before.provenance(ref)
        assert after.original_of("06ALMATY598") == before.original_of("06ALMATY598")
        assert after.original_of("06almaty7")[1] == (TEXT + " ü ✓").encode()
        assert after.search("corrected subject") == before.search("corrected subject") != []
        assert after.search("Shymkent", limit=5) == before.search("Shymkent", limit=5)
        assert after.count() == 3
    finally:
        before.close()
        after.close()


def test_export_is_deterministic_and_ordered(tmp_path: Path, make_record: RecordFactory) -> None:
    """Two exports are the same bytes: a header, revisions by id and revision (current last),
    originals by sha256, arrivals by message id, and an end line with counts and the sha256."""
    url = f"sqlite:///{tmp_path / 'cables.db'}"
    upgrade(url)
    populate(url, make_record)
    data = exported(url)
    assert exported(url) == data
    lines = documents(data)
    head, end = lines[0], lines[-1]
    assert head["format"] == FORMAT
    assert head["format_version"] == 1
    assert head["includes"] == {"originals": True, "provenance": True}
    assert [(d["reference_id"], d["revision"], d["current"]) for d in lines[1:5]] == [
        ("06ALMATY598", 1, False),
        ("06ALMATY598", 2, True),
        ("06ALMATY600", 1, True),
        ("06almaty7", 1, True),
    ]
    assert lines[1]["original_sha256"] is None
    shas = [d["sha256"] for d in lines[5:8]]
    assert shas == sorted(shas)
    assert [d["type"] for d in lines[5:8]] == ["original"] * 3
    assert [d["message_id"] for d in lines[8:12]] == ["m-0", "m-1", "m-2", "m-3"]
    assert lines[10]["received_at"] == "2024-05-01T09:30:00.500000Z"
    assert lines[8]["received_at"] is None
    assert lines[11]["metadata"] == {**METADATA, "big": 10**16, "neg": 0.0}
    assert end == {
        "type": "end",
        "counts": {"cables": 3, "revisions": 4, "originals": 3, "arrivals": 4},
        "sha256": hashlib.sha256(data[: data.rindex(b"\n", 0, -1) + 1]).hexdigest(),
    }
    assert all(
        line == orjson.dumps(orjson.loads(line), option=orjson.OPT_SORT_KEYS)
        for line in data.splitlines()
    )


def test_export_without_originals_or_provenance_restores_records_only(
    tmp_path: Path, make_record: RecordFactory
) -> None:
    """Without the options an export holds only revisions, and restores to no originals."""
    url, target = f"sqlite:///{tmp_path / 'a.db'}", f"sqlite:///{tmp_path / 'b.db'}"
    upgrade(url)
    populate(url, make_record)
    data = exported(url, originals=False, provenance=False)
    assert {d["type"] for d in documents(data)} == {"header", "revision", "end"}
    assert documents(data)[0]["includes"] == {"originals": False, "provenance": False}
    import_database(target, io.BytesIO(data))
    store = CableStore(target)
    try:
        assert len(store.revisions("06ALMATY598")) == 2
        assert store.provenance("06ALMATY600")["arrivals"] == []
        with pytest.raises(LookupError, match="is not stored"):
            store.original_of("06ALMATY600")
    finally:
        store.close()


def test_import_refuses_a_database_that_is_not_empty(
    store_url: str, tmp_path: Path, make_record: RecordFactory
) -> None:
    """Importing into a database that holds a cable fails with one line and changes nothing."""
    source = f"sqlite:///{tmp_path / 'source.db'}"
    upgrade(source)
    populate(source, make_record)
    store = CableStore(store_url)
    try:
        store.write_batch([make_record("06ALMATY598", subject="ALREADY HERE")])
        with pytest.raises(ExchangeError, match=r"not empty \(cables hold rows\)") as raised:
            import_database(store_url, io.BytesIO(exported(source)))
        assert "\n" not in str(raised.value)
        assert store.get("06ALMATY598") == make_record("06ALMATY598", subject="ALREADY HERE")
        assert store.count() == 1
    finally:
        store.close()


def test_an_older_database_with_cables_is_refused_before_it_is_migrated(
    tmp_path: Path, make_record: RecordFactory
) -> None:
    """A database at an older storage revision that holds cables stays at that revision."""
    source, target = f"sqlite:///{tmp_path / 'a.db'}", f"sqlite:///{tmp_path / 'b.db'}"
    upgrade(source)
    populate(source, make_record)
    upgrade(target, "0003")
    engine = create_engine(target)
    try:
        with engine.begin() as conn:
            conn.execute(
                text(
                    "INSERT INTO cables (reference_id, content_hash, revision, record, stored_at)"
                    " VALUES ('06ALMATY1', 'x', 1, '{}', '2024-05-01 09:30:00')"
                )
            )
        with pytest.raises(ExchangeError, match="not empty"):
            import_database(target, io.BytesIO(exported(source)))
        with engine.connect() as conn:
            version = conn.execute(text("SELECT version_num FROM alembic_version")).scalar_one()
    finally:
        engine.dispose()
    assert version == "0003"


def test_a_failed_import_leaves_the_database_empty(
    store_url: str, tmp_path: Path, make_record: RecordFactory
) -> None:
    """A bad line after batches were already written rolls the whole import back."""
    source = f"sqlite:///{tmp_path / 'source.db'}"
    upgrade(source)
    populate(source, make_record)
    lines = exported(source).splitlines(keepends=True)
    lines[-2] = b"{not json\n"
    with pytest.raises(ExchangeError, match=f"line {len(lines) - 1}: not JSON"):
        import_database(store_url, lines, batch_size=1)
    engine = create_engine(store_url)
    try:
        with engine.connect() as conn:
            for table in ("cables", "cable_revisions", "originals", "arrivals"):
                assert conn.execute(text(f"SELECT count(*) FROM {table}")).scalar_one() == 0
    finally:
        engine.dispose()


def _replace(line: bytes, old: bytes, new: bytes) -> bytes:
    assert old in line
    return line.replace(old, new, 1)


DAMAGE: dict[str, tuple[Callable[[list[bytes]], None], str]] = {
    "not-json": (lambda ls: ls.__setitem__(2, ls[2][:-20] + b"\n"), r"line 3: not JSON"),
    "record-altered": (
        lambda ls: ls.__setitem__(2, _replace(ls[2], b"CORRECTED", b"CORRUPTED")),
        r"line 3: the record of 06ALMATY598 does not hash to its content_hash",
    ),
    "original-altered": (
        lambda ls: ls.__setitem__(6, _replace(ls[6], b"ALMATY", b"ALMATI")),
        r"line 7: original: sha256 \w+ does not match the text",
    ),
    "metadata-altered": (
        lambda ls: ls.__setitem__(11, _replace(ls[11], b'"seq":17', b'"seq":18')),
        r"line 13: the lines before the end line do not hash to its sha256",
    ),
    "cut-short": (lambda ls: ls.__delitem__(slice(10, None)), r"ends at line 10 without its end"),
    "out-of-order": (
        lambda ls: ls.__setitem__(slice(9, 11), [ls[10], ls[9]]),
        r"line 11: m-1 is out of order or repeated \(after m-2\)",
    ),
    "current-missing": (
        lambda ls: ls.__delitem__(2),
        r"line 3: cable 06ALMATY598 ended without its current revision",
    ),
    "newer-format": (
        lambda ls: ls.__setitem__(0, _replace(ls[0], b'"format_version":1', b'"format_version":2')),
        r"line 1: format version 2; this cable-ingest reads version 1 only",
    ),
    "not-an-export": (lambda ls: ls.__setitem__(0, b'{"a":1}\n'), r"line 1: not a cable-ingest"),
    "field-missing": (
        lambda ls: ls.__setitem__(8, _replace(ls[8], b'"outcome":"inserted",', b"")),
        r"line 9: arrival line without outcome",
    ),
    "wrong-type": (
        lambda ls: ls.__setitem__(4, _replace(ls[4], b'"revision":1', b'"revision":"1"')),
        r'line 5: revision is "1", expected an integer',
    ),
    "timestamp-form": (
        lambda ls: ls.__setitem__(9, _replace(ls[9], b"09:30:00.000000Z", b"09:30:00Z")),
        r"line 10: received_at '2024-05-01T09:30:00Z' is not a timestamp as exports write them",
    ),
    "after-the-end": (lambda ls: ls.append(b"{}\n"), r"line 14: more data after the end line"),
    "counts-wrong": (
        lambda ls: ls.__setitem__(12, _replace(ls[12], b'"cables":3', b'"cables":4')),
        r"line 13: the end line counts",
    ),
}


@pytest.mark.parametrize("damage", list(DAMAGE), ids=list(DAMAGE))
def test_a_damaged_file_is_refused_naming_the_line(
    damage: str, tmp_path: Path, make_record: RecordFactory
) -> None:
    """Each kind of damage stops the import with an error naming the line; nothing is kept."""
    source, target = f"sqlite:///{tmp_path / 'a.db'}", f"sqlite:///{tmp_path / 'b.db'}"
    upgrade(source)
    populate(source, make_record)
    lines = exported(source).splitlines(keepends=True)
    assert len(lines) == 13
    change, message = DAMAGE[damage]
    change(lines)
    with pytest.raises((ExchangeError, IntegrityError), match=message):
        import_database(target, lines)
    store = CableStore(target)
    try:
        assert store.count() == 0
    finally:
        store.close()


def test_a_damaged_original_is_refused_on_the_way_out(
    store_url: str, make_record: RecordFactory
) -> None:
    """An original whose stored bytes no longer hash to its sha256 stops the export."""
    populate(store_url, make_record)
    engine = create_engine(store_url)
    try:
        with engine.begin() as conn:
            data = conn.execute(text("SELECT data FROM originals LIMIT 1")).scalar_one()
            changed = bytes(data[:-1]) + bytes([data[-1] ^ 1])
            conn.execute(
                text("UPDATE originals SET data = :d WHERE data = :o"), {"d": changed, "o": data}
            )
    finally:
        engine.dispose()
    assert exported(store_url, originals=False)
    with pytest.raises(IntegrityError, match="original"):
        exported(store_url)


def test_export_never_creates_or_migrates_a_database(tmp_path: Path) -> None:
    """A missing SQLite file stays missing, and an empty PostgreSQL schema stays empty."""
    missing = tmp_path / "var" / "none.db"
    with pytest.raises(ExchangeError, match=f"no database at {missing}: nothing to export"):
        exported(f"sqlite:///{missing}")
    assert not missing.parent.exists()
    with postgres_schema_url() as url:
        with pytest.raises(ExchangeError, match="holds no cable-ingest tables"):
            exported(url)
        engine = create_engine(url)
        try:
            with engine.connect() as conn:
                assert inspect(conn).get_table_names() == []
        finally:
            engine.dispose()


def test_export_asks_for_a_migration_first(tmp_path: Path) -> None:
    """A database at an older storage revision is not exported: the error says to migrate."""
    url = f"sqlite:///{tmp_path / 'old.db'}"
    upgrade(url, "0003")
    with pytest.raises(
        ExchangeError, match=r"at storage revision 0003 .* run cable-ingest migrate"
    ):
        exported(url)


def test_export_reads_in_a_read_only_transaction(store_url: str) -> None:
    """Nothing can be written through the export's connection, on either backend."""
    with snapshot(store_url) as conn, pytest.raises(DBAPIError, match=r"read-?only"):
        conn.execute(text("DELETE FROM cables"))


def test_postgresql_is_read_through_server_side_cursors(make_record: RecordFactory) -> None:
    """While an export streams revisions, PostgreSQL holds an open cursor for it."""
    with postgres_schema_url() as url:
        upgrade(url)
        populate(url, make_record)
        with snapshot(url) as conn:
            lines = revision_lines(conn)
            next(lines)
            held = conn.execute(text("SELECT count(*) FROM pg_cursors")).scalar_one()
            lines.close()
    assert held == 2  # the current records and the earlier revisions, merged


def _peak_export_bytes(url: str) -> tuple[int, int]:
    tracemalloc.start()
    try:
        size = 0

        def write(line: bytes) -> None:
            nonlocal size
            size += len(line)

        export_database(url, write, originals=True, provenance=True)
        return tracemalloc.get_traced_memory()[1], size
    finally:
        tracemalloc.stop()


def test_export_memory_does_not_grow_with_the_database(
    tmp_path: Path, make_record: RecordFactory
) -> None:
    """Exporting ten times the cables takes less than a tenth more memory than the extra lines
    would fill if they were held."""
    peaks = []
    for count in (300, 3000):
        url = f"sqlite:///{tmp_path / f'{count}.db'}"
        upgrade(url)
        store = CableStore(url)
        try:
            for start in range(0, count, 300):
                refs = [f"06ALMATY{n}" for n in range(start, start + 300)]
                store.write_batch(
                    [make_record(ref) for ref in refs],
                    arrivals=[arrival(f"m-{ref}", f"{TEXT}\n{ref}\n") for ref in refs],
                )
        finally:
            store.close()
        peaks.append(_peak_export_bytes(url))
    (small_peak, small_size), (large_peak, large_size) = peaks
    assert large_peak - small_peak < (large_size - small_size) / 10
