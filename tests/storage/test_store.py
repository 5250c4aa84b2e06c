"""Contract of the cable store, the same on SQLite and PostgreSQL."""

from __future__ import annotations

from collections.abc import Callable
from pathlib import Path
from typing import Any

import orjson
import pytest
from alembic import command
from sqlalchemy import create_engine, text

from tests.services import postgres_schema_url
from worker.errors import ConfigurationError, PermanentSinkError, TransientSinkError
from worker.storage import CableStore, content_hash, redact_url, upgrade
from worker.storage.migrations import alembic_config

RecordFactory = Callable[..., dict[str, Any]]


def test_get_returns_the_record_as_written(store: CableStore, make_record: RecordFactory) -> None:
    """A stored record reads back equal to what was written; an unknown id reads as None."""
    record = make_record("06ALMATY598")
    result = store.write_batch([record])
    assert (result.inserted, result.unchanged, result.revised) == (1, 0, 0)
    assert store.get("06ALMATY598") == record
    assert store.get("06ALMATY599") is None
    assert store.count() == 1


def test_same_batch_twice_adds_nothing(store: CableStore, make_record: RecordFactory) -> None:
    """Redelivering a batch leaves the store as it was and reports every record unchanged."""
    batch = [make_record(f"06ALMATY{n}") for n in (598, 599, 600)]
    first = store.write_batch(batch)
    second = store.write_batch(batch)
    assert first.by_reference_id() == dict.fromkeys(
        ["06ALMATY598", "06ALMATY599", "06ALMATY600"], "inserted"
    )
    assert [o.outcome for o in second.outcomes] == ["unchanged"] * 3
    assert [o.revision for o in second.outcomes] == [1, 1, 1]
    assert store.count() == 3
    assert [len(store.revisions(r["reference_id"])) for r in batch] == [1, 1, 1]


def test_changed_content_becomes_the_next_revision(
    store: CableStore, make_record: RecordFactory
) -> None:
    """New content for a known id becomes revision 2 and the first version is kept."""
    original = make_record("06ALMATY598")
    changed = make_record("06ALMATY598", subject="KAZAKHSTAN: A CORRECTED SUBJECT")
    store.write_batch([original])
    result = store.write_batch([changed])
    assert [(o.outcome, o.revision) for o in result.outcomes] == [("revised", 2)]
    assert store.get("06ALMATY598") == changed
    history = store.revisions("06ALMATY598")
    assert [(v["revision"], v["record"]) for v in history] == [(1, original), (2, changed)]
    assert [v["content_hash"] for v in history] == [content_hash(original), content_hash(changed)]
    assert all(v["stored_at"].endswith("Z") for v in history)
    assert store.count() == 1


def test_older_content_redelivered_does_not_revert(
    store: CableStore, make_record: RecordFactory
) -> None:
    """A late redelivery of content already stored as an old revision changes nothing."""
    original = make_record("06ALMATY598")
    changed = make_record("06ALMATY598", subject="KAZAKHSTAN: A CORRECTED SUBJECT")
    store.write_batch([original])
    store.write_batch([changed])
    late = store.write_batch([original])
    assert [(o.outcome, o.revision) for o in late.outcomes] == [("unchanged", 2)]
    assert store.get("06ALMATY598") == changed
    assert len(store.revisions("06ALMATY598")) == 2


def test_one_id_twice_in_a_batch_keeps_both_versions(
    store: CableStore, make_record: RecordFactory
) -> None:
    """Two versions of one cable in the same batch become revisions 1 and 2, in batch order."""
    first = make_record("06ALMATY598")
    second = make_record("06ALMATY598", origin="Embassy Astana")
    result = store.write_batch([first, second, first])
    assert [(o.outcome, o.revision) for o in result.outcomes] == [
        ("inserted", 1),
        ("revised", 2),
        ("unchanged", 2),
    ]
    assert [v["record"] for v in store.revisions("06ALMATY598")] == [first, second]
    assert store.get("06ALMATY598") == second


@pytest.mark.parametrize(
    ("bad_reference_id", "reason"),
    [(None, "reference_id None"), ("", "ck_cables_reference_id_not_empty")],
    ids=["none-rejected-by-the-store", "empty-rejected-by-the-database"],
)
def test_a_bad_record_fails_the_whole_batch(
    store: CableStore, make_record: RecordFactory, bad_reference_id: str | None, reason: str
) -> None:
    """A batch whose last record breaks a constraint raises PermanentSinkError and stores nothing."""
    kept = make_record("06ALMATY598")
    store.write_batch([kept])
    batch = [
        make_record("06ALMATY598", subject="A REVISION THAT MUST NOT LAND"),
        make_record("06ALMATY599"),
        make_record("06ALMATY600"),
        make_record(bad_reference_id),
    ]
    with pytest.raises(PermanentSinkError, match=reason) as raised:
        store.write_batch(batch)
    assert "cables" in str(raised.value)
    assert store.count() == 1
    assert store.get("06ALMATY598") == kept
    assert len(store.revisions("06ALMATY598")) == 1
    assert store.search("Shymkent") == [
        {
            "reference_id": "06ALMATY598",
            "date": "2006-02-14T11:33:00Z",
            "classification": "CONFIDENTIAL",
            "subject": kept["subject"],
        }
    ]


def test_search_finds_subject_and_body_words_best_first(
    store: CableStore, make_record: RecordFactory
) -> None:
    """Search matches words of the subject and of the body, stemmed, ranking subject hits first."""
    body_only = make_record("06ALMATY601", subject="UNHCR MEETING NOTES")
    in_subject = make_record("06ALMATY598")
    unrelated = make_record(
        "06ALMATY602",
        subject="GRAIN EXPORTS",
        paragraphs=[{"number": 1, "classification": "U", "heading": None, "text": "Wheat."}],
    )
    store.write_batch([body_only, in_subject, unrelated])

    ranked = store.search("refoulement")
    assert [hit["reference_id"] for hit in ranked] == ["06ALMATY598", "06ALMATY601"]
    assert ranked[0] == {
        "reference_id": "06ALMATY598",
        "date": "2006-02-14T11:33:00Z",
        "classification": "CONFIDENTIAL",
        "subject": in_subject["subject"],
    }
    assert {hit["reference_id"] for hit in store.search("shymkent residing")} == {
        "06ALMATY598",
        "06ALMATY601",
    }
    assert [hit["reference_id"] for hit in store.search("wheat")] == ["06ALMATY602"]
    assert [hit["reference_id"] for hit in store.search("exports: grain!")] == ["06ALMATY602"]
    assert store.search("refugee", limit=1)[0]["reference_id"] == "06ALMATY598"
    assert store.search("zanzibar") == []
    assert store.search("  ") == []


def test_search_follows_revisions(store: CableStore, make_record: RecordFactory) -> None:
    """After a revision, search finds the cable by its new words and no longer by its old ones."""
    paragraphs = [{"number": 1, "classification": "U", "heading": None, "text": "Sturgeon stocks."}]
    store.write_batch([make_record("06ALMATY598")])
    store.write_batch([make_record("06ALMATY598", subject="CAVIAR QUOTAS", paragraphs=paragraphs)])
    assert [hit["subject"] for hit in store.search("caviar sturgeon")] == ["CAVIAR QUOTAS"]
    assert store.search("refoulement") == []


def test_an_empty_batch_does_nothing(store: CableStore) -> None:
    """Writing no records succeeds with no outcomes."""
    assert store.write_batch([]).outcomes == ()
    assert store.count() == 0
    assert store.revisions("06ALMATY598") == []


def test_migrating_again_changes_nothing(store_url: str, make_record: RecordFactory) -> None:
    """upgrade() on a current schema is a no-op that keeps the data."""
    first = CableStore(store_url)
    first.write_batch([make_record("06ALMATY598")])
    first.close()
    upgrade(store_url)
    second = CableStore(store_url)
    assert second.count() == 1
    second.close()


def test_postgresql_compresses_records_with_lz4(make_record: RecordFactory) -> None:
    """On PostgreSQL the records and search vectors are stored LZ4-compressed, and migrating
    down to 0002 puts pglz back for what is written next."""
    query = text(
        "SELECT pg_column_compression(record), pg_column_compression(search_vector)"
        " FROM cables WHERE reference_id = :ref"
    )
    has_lz4 = text(
        "SELECT 'lz4' = ANY(enumvals) FROM pg_settings WHERE name = 'default_toast_compression'"
    )
    words = " ".join(f"grain{n} harvest{n} export{n}" for n in range(400))  # past TOAST's 2 KB
    paragraphs = [{"number": 1, "classification": "U", "heading": None, "text": words}]
    with postgres_schema_url() as url:
        upgrade(url)
        engine, store = create_engine(url), CableStore(url)
        try:
            with engine.connect() as conn:
                if not conn.execute(has_lz4).scalar():
                    pytest.skip("this PostgreSQL was built without LZ4")
            store.write_batch([make_record("06ALMATY598", paragraphs=paragraphs)])
            with engine.connect() as conn:
                assert tuple(conn.execute(query, {"ref": "06ALMATY598"}).one()) == ("lz4", "lz4")
            store.close()
            with engine.begin() as conn:
                config = alembic_config()
                config.attributes["connection"] = conn
                command.downgrade(config, "0002")
                record = make_record("06ALMATY599", paragraphs=paragraphs)
                conn.execute(  # the store writes today's schema; at 0002 a row is this
                    text(
                        "INSERT INTO cables (reference_id, content_hash, revision, record,"
                        " stored_at) VALUES ('06ALMATY599', :hash, 1, :record, now())"
                    ),
                    {"hash": content_hash(record), "record": orjson.dumps(record).decode()},
                )
            with engine.connect() as conn:
                assert conn.execute(query, {"ref": "06ALMATY599"}).one()[0] == "pglz"
                assert tuple(conn.execute(query, {"ref": "06ALMATY598"}).one()) == ("lz4", "lz4")
        finally:
            store.close()
            engine.dispose()


def test_nothing_connects_before_first_use(tmp_path: Path) -> None:
    """Building stores touches neither the network nor the file system."""
    CableStore("postgresql+psycopg://ingest:hunter2@127.0.0.1:1/cables")
    folder = tmp_path / "not-yet"
    CableStore(f"sqlite:///{folder / 'cables.db'}")
    assert not folder.exists()


def test_unreachable_database_is_transient_and_hides_the_password(
    make_record: RecordFactory,
) -> None:
    """A refused connection raises TransientSinkError naming the table, without the password."""
    store = CableStore("postgresql+psycopg://ingest:hunter2@127.0.0.1:1/cables?connect_timeout=2")
    with pytest.raises(TransientSinkError) as raised:
        store.write_batch([make_record("06ALMATY598")])
    store.close()
    message = str(raised.value)
    assert "hunter2" not in message
    assert "cables" in message
    assert "06ALMATY598" in message
    assert "ingest:***@127.0.0.1:1" in message


@pytest.mark.parametrize(
    "url",
    ["mysql://db/cables", "sqlite://", "sqlite:///:memory:", "not a url"],
)
def test_unsupported_urls_are_refused_up_front(url: str) -> None:
    """Only file SQLite and PostgreSQL URLs are accepted, and the error says why."""
    with pytest.raises(ConfigurationError):
        CableStore(url)


def test_redact_url_masks_only_the_password() -> None:
    """redact_url keeps user, host and database and masks the password."""
    redacted = redact_url("postgresql+psycopg://ingest:s3cr%40t@db.internal:5432/cables")
    assert redacted == "postgresql+psycopg://ingest:***@db.internal:5432/cables"


@pytest.mark.parametrize("bad", [["not a mapping"], [{"reference_id": 598}]])
def test_malformed_records_are_permanent_failures(store: CableStore, bad: list[Any]) -> None:
    """Records that are not mappings or lack a string reference id are rejected as permanent."""
    with pytest.raises(PermanentSinkError, match="record 0 of the batch"):
        store.write_batch(bad)


def test_a_stale_writer_fails_transiently_instead_of_overwriting(
    store: CableStore, make_record: RecordFactory, monkeypatch: pytest.MonkeyPatch
) -> None:
    """A batch planned on a stale read (a concurrent writer got there first) rolls back as transient."""
    original = make_record("06ALMATY598")
    store.write_batch([original])
    monkeypatch.setattr(store, "_stored_state", lambda conn, ids: ({}, {}))
    with pytest.raises(TransientSinkError, match="06ALMATY598 changed while"):
        store.write_batch([make_record("06ALMATY599"), make_record("06ALMATY598", subject="X")])
    monkeypatch.undo()
    assert store.get("06ALMATY598") == original
    assert store.get("06ALMATY599") is None
    assert len(store.revisions("06ALMATY598")) == 1
