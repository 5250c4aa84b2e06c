"""`make bench` (storage part): bytes per stored cable with and without originals, and the
compression ratio of the originals, on SQLite and PostgreSQL.

The same generated cables (the dev corpus renumbered, :mod:`worker.intake.generate`) are
written through the cable store twice per backend: once as records only (as before originals
were kept), once with their arrivals (original + provenance row). Bytes per cable are the
SQLite file after a WAL checkpoint, and on PostgreSQL the total size of every table of the
schema (TOAST and indexes included). The originals' ratio is their UTF-8 bytes over their
compressed bytes; "write" is the store's time per cable, compression included.
"""

from __future__ import annotations

import argparse
import hashlib
import itertools
import sys
import tempfile
import time
import uuid
from collections.abc import Iterator
from contextlib import contextmanager
from pathlib import Path

from sqlalchemy import create_engine, text
from sqlalchemy.engine import make_url

from bench.corpus import corpus_files
from bench.databases import postgres_schema
from worker.intake.generate import generate, load_templates
from worker.parse import parse_cable
from worker.storage import CableStore, upgrade
from worker.storage.provenance import Arrival

BATCH = 100


@contextmanager
def _database(backend: str) -> Iterator[str]:
    if backend == "sqlite":
        with tempfile.TemporaryDirectory() as folder:
            yield f"sqlite:///{Path(folder) / 'size.db'}"
        return
    with postgres_schema() as url:
        assert url is not None
        yield url


def _size(url: str) -> int:
    engine = create_engine(url)
    try:
        with engine.connect() as conn:
            if engine.dialect.name == "sqlite":
                conn.execute(text("PRAGMA wal_checkpoint(TRUNCATE)"))
                database = make_url(url).database
                assert database is not None
                return Path(database).stat().st_size
            return int(
                conn.execute(
                    text(
                        "SELECT coalesce(sum(pg_total_relation_size(c.oid)), 0) FROM pg_class c"
                        " JOIN pg_namespace n ON n.oid = c.relnamespace"
                        " WHERE n.nspname = current_schema() AND c.relkind = 'r'"
                    )
                ).scalar_one()
            )
    finally:
        engine.dispose()


def _originals_ratio(url: str) -> float:
    engine = create_engine(url)
    try:
        with engine.connect() as conn:
            raw, packed = conn.execute(
                text("SELECT sum(size), sum(length(data)) FROM originals")
            ).one()
    finally:
        engine.dispose()
    return float(raw) / float(packed)


def _store(url: str, texts: list[str], with_originals: bool) -> float:
    upgrade(url)
    store = CableStore(url)
    records = [parse_cable(t) for t in texts]
    started = time.perf_counter()
    try:
        for start in range(0, len(texts), BATCH):
            chunk = texts[start : start + BATCH]
            ids = [uuid.uuid4().hex for _ in chunk]
            arrivals = [
                Arrival(i, t, hashlib.sha256(t.encode()).hexdigest(), "bench", {}, None)
                for i, t in zip(ids, chunk, strict=True)
            ]
            store.write_batch(
                records[start : start + BATCH],
                ids,
                arrivals=arrivals if with_originals else None,
            )
    finally:
        store.close()
    return (time.perf_counter() - started) / len(texts)


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--cables", type=int, default=5_000, help="cables per measurement")
    args = parser.parse_args(argv)
    templates, _refused = load_templates(corpus_files())
    texts = [text for _, text in itertools.islice(generate(templates, args.cables), args.cables)]
    raw = sum(len(t.encode()) for t in texts) / len(texts)
    print(f"storage size: {len(texts):,} cables, {raw:,.0f} bytes of text each on average")
    for backend in ("sqlite", "postgresql"):
        sizes: dict[bool, tuple[int, float]] = {}
        ratio = 0.0
        for with_originals in (False, True):
            with _database(backend) as url:
                seconds = _store(url, texts, with_originals)
                sizes[with_originals] = (_size(url), seconds)
                if with_originals:
                    ratio = _originals_ratio(url)
        (without, t0), (with_, t1) = sizes[False], sizes[True]
        print(
            f"  {backend:10}  without originals {without / len(texts):8,.0f} B/cable"
            f" ({t0 * 1000:.2f} ms write)   with {with_ / len(texts):8,.0f} B/cable"
            f" ({t1 * 1000:.2f} ms write)   +{(with_ - without) / len(texts):,.0f} B;"
            f" originals compressed {ratio:.2f}x"
        )
    return 0


if __name__ == "__main__":
    sys.exit(main())
