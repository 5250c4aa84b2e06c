"""Fixtures for the storage contract tests: every test runs on SQLite and on PostgreSQL.

PostgreSQL comes from ``CABLE_INGEST_TEST_PG_URL`` (default: trust auth on 127.0.0.1); each
test gets a schema of its own, dropped afterwards. When PostgreSQL is not reachable its tests
are skipped, except in CI (``CI=true``) where that is a failure.
"""

from __future__ import annotations

import copy
from collections.abc import Callable, Iterator
from pathlib import Path
from typing import Any

import pytest

from tests.services import postgres_schema_url
from worker.parse import parse_cable
from worker.record import CableRecord
from worker.storage import CableStore, DeadLetterStore, upgrade

SAMPLE = Path(__file__).resolve().parents[1] / "fixtures" / "06ALMATY598.scraped.txt"

RecordFactory = Callable[..., dict[str, Any]]


@pytest.fixture(params=["sqlite", "postgresql"])
def store_url(request: pytest.FixtureRequest, tmp_path: Path) -> Iterator[str]:
    """A migrated, empty database URL: a fresh SQLite file, or a fresh PostgreSQL schema."""
    if request.param == "sqlite":
        url = f"sqlite:///{tmp_path / 'var' / 'cables.db'}"
        upgrade(url)
        yield url
        return
    with postgres_schema_url() as url:
        upgrade(url)
        yield url


@pytest.fixture
def store(store_url: str) -> Iterator[CableStore]:
    """A cable store on the test database, closed afterwards."""
    cable_store = CableStore(store_url)
    yield cable_store
    cable_store.close()


@pytest.fixture
def dead_letter_store(store_url: str) -> Iterator[DeadLetterStore]:
    """A dead-letter store on the test database, closed afterwards."""
    letters = DeadLetterStore(store_url)
    yield letters
    letters.close()


@pytest.fixture(scope="session")
def sample_record() -> CableRecord:
    """The parsed sample cable (06ALMATY598); copy it before changing it."""
    return parse_cable(SAMPLE.read_text(encoding="utf-8"), source_file=SAMPLE.name)


@pytest.fixture
def make_record(sample_record: CableRecord) -> RecordFactory:
    """Build a copy of the sample record with another reference id and any fields replaced:
    JSON for the store, which must cope with records no parser made (None, wrong types)."""

    def build(reference_id: str | None = "06ALMATY598", **changes: Any) -> dict[str, Any]:
        record: dict[str, Any] = copy.deepcopy(dict(sample_record))
        record["reference_id"] = reference_id
        record.update(changes)
        return record

    return build
