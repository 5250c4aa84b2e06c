"""Export and restore of the dev corpus (../shared/cables; skipped where that folder is absent):
every real cable through the store on SQLite, exported, restored on PostgreSQL, exported again."""

from __future__ import annotations

import hashlib
import io
from pathlib import Path

import pytest
from sqlalchemy import create_engine

from bench.corpus import CORPUS
from tests.services import postgres_schema_url
from worker.parse import parse_cable
from worker.storage import CableStore, upgrade
from worker.storage.exchange import export_database
from worker.storage.provenance import Arrival, read_original
from worker.storage.restore import import_database

FILES = sorted(CORPUS.glob("*.txt")) if CORPUS.is_dir() else []
needs_corpus = pytest.mark.skipif(not FILES, reason=f"real cables not found at {CORPUS}")
BATCH = 100


def _arrival(path: Path, text: str) -> Arrival:
    digest = hashlib.sha256(text.encode("utf-8")).hexdigest()
    metadata = {"file": path.name}
    return Arrival(
        f"corpus-{path.stem}", text, digest, "dev-corpus", metadata, "2024-05-01T09:30:00Z"
    )


def _export(url: str) -> bytes:
    out = io.BytesIO()
    export_database(url, out.write, originals=True, provenance=True)
    return out.getvalue()


@needs_corpus
def test_dev_corpus_round_trips_from_sqlite_through_postgresql(tmp_path: Path) -> None:
    """All dev cables with originals and arrivals: the export from PostgreSQL after a restore is
    byte for byte the export from SQLite, and every original reads back as its file's bytes."""
    source = f"sqlite:///{tmp_path / 'corpus.db'}"
    upgrade(source)
    store = CableStore(source)
    texts = {path: path.read_bytes().decode("utf-8") for path in FILES}
    try:
        for start in range(0, len(FILES), BATCH):
            batch = FILES[start : start + BATCH]
            store.write_batch(
                [parse_cable(texts[path]) for path in batch],
                arrivals=[_arrival(path, texts[path]) for path in batch],
            )
        stored = store.count()
    finally:
        store.close()
    first = _export(source)
    with postgres_schema_url() as target:
        counts = import_database(target, io.BytesIO(first))
        assert _export(target) == first
        engine = create_engine(target)
        try:
            with engine.connect() as conn:
                for path in FILES:
                    raw = path.read_bytes()
                    assert read_original(conn, hashlib.sha256(raw).hexdigest()) == raw
        finally:
            engine.dispose()
    assert counts.cables == stored
    assert counts.arrivals == len(FILES)
