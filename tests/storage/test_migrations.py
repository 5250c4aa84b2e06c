"""The migrations: they build what worker/storage/schema.py describes, and a database stored
before originals were kept migrates to one where the next arrival is no false revision."""

from __future__ import annotations

import hashlib
from datetime import UTC, datetime
from pathlib import Path
from typing import Any

import orjson
from alembic import command
from alembic.autogenerate import compare_metadata
from alembic.runtime.migration import MigrationContext
from sqlalchemy import create_engine

from worker.parse import parse_cable
from worker.storage import CableStore, content_hash, upgrade
from worker.storage.migrations import alembic_config
from worker.storage.provenance import Arrival
from worker.storage.schema import cable_revisions, cables, metadata

SAMPLE = Path(__file__).resolve().parents[1] / "fixtures" / "06ALMATY598.scraped.txt"
SCRAPED = SAMPLE.read_text(encoding="utf-8")
# objects the migrations create that schema.py leaves out: full-text search, per backend
SEARCH_OBJECTS = ("cables_fts", "ix_cables_search_vector", "search_vector")


def _named(diff: Any) -> set[str]:
    """The names a difference of compare_metadata() is about."""
    items = diff if isinstance(diff, list) else [diff]
    names: set[str] = set()
    for item in items:
        for part in item[1:]:
            name = getattr(part, "name", part)
            if isinstance(name, str):
                names.add(name)
    return names


def test_migrations_build_the_tables_schema_py_describes(store_url: str) -> None:
    """Alembic's comparison of the migrated database with schema.py finds nothing to do,
    apart from the full-text search objects that schema.py does not describe."""
    engine = create_engine(store_url)
    try:
        with engine.connect() as conn:
            context = MigrationContext.configure(conn, opts={"compare_type": True})
            diffs = compare_metadata(context, metadata)
    finally:
        engine.dispose()
    left = [d for d in diffs if not any(n.startswith(SEARCH_OBJECTS) for n in _named(d))]
    assert left == []


def test_a_database_from_before_originals_migrates_without_false_revisions(
    store_url: str,
) -> None:
    """Rows stored at revision 0003 (content hash over the whole record, source_file in it)
    get today's hash; the same cable arriving again is unchanged and gains its original."""
    engine = create_engine(store_url)
    with engine.begin() as conn:  # the fixture migrated to the latest revision: step back
        config = alembic_config()
        config.attributes["connection"] = conn
        command.downgrade(config, "0003")
    # a record as revision 0003 stored it: JSON, without parser_version
    old: dict[str, Any] = dict(parse_cable(SCRAPED, source_file="feeds/a/06ALMATY598.txt"))
    del old["parser_version"]
    earlier = {**old, "subject": "AN EARLIER SUBJECT"}
    now = datetime.now(UTC)

    def old_hash(record: dict[str, Any]) -> str:
        return hashlib.sha256(orjson.dumps(record, option=orjson.OPT_SORT_KEYS)).hexdigest()

    try:
        with engine.begin() as conn:
            conn.execute(
                cables.insert(),
                [
                    {
                        "reference_id": "06ALMATY598",
                        "content_hash": old_hash(old),
                        "revision": 2,
                        "record": old,
                        "stored_at": now,
                        "tags": "",
                    }
                ],
            )
            conn.execute(
                cable_revisions.insert(),
                [
                    {
                        "reference_id": "06ALMATY598",
                        "revision": 1,
                        "content_hash": old_hash(earlier),
                        "record": earlier,
                        "stored_at": now,
                    }
                ],
            )
    finally:
        engine.dispose()
    upgrade(store_url)
    store = CableStore(store_url)
    try:
        versions = store.revisions("06ALMATY598")
        assert [v["content_hash"] for v in versions] == [content_hash(earlier), content_hash(old)]
        assert [v["original_sha256"] for v in versions] == [None, None]
        digest = hashlib.sha256(SCRAPED.encode()).hexdigest()
        again = Arrival("m1", SCRAPED, digest, "feed-b", {"source_file": "b/x.txt"}, None)
        result = store.write_batch([parse_cable(SCRAPED)], ["m1"], arrivals=[again])
        assert [(o.outcome, o.revision) for o in result.outcomes] == [("unchanged", 2)]
        assert store.original_of("06ALMATY598") == (digest, SCRAPED.encode())
    finally:
        store.close()
