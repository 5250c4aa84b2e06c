"""Fixtures for the storage contract tests: every test runs on SQLite and on PostgreSQL.

PostgreSQL comes from ``CABLE_INGEST_TEST_PG_URL`` (default: trust auth on 127.0.0.1); each
test gets a schema of its own, dropped afterwards. When PostgreSQL is not reachable its tests
are skipped, except in CI (``CI=true``) where that is a failure.
"""

from __future__ import annotations

import copy
import os
import uuid
from collections.abc import Callable, Iterator
from contextlib import contextmanager
from pathlib import Path
from typing import Any

import pytest
from sqlalchemy import create_engine, exc, text
from sqlalchemy.engine import make_url

from worker.parse import parse_cable
from worker.storage import CableStore, DeadLetterStore, redact_url, upgrade

PG_DEFAULT_URL = "postgresql+psycopg://postgres@127.0.0.1:5432/test"
SAMPLE = Path(__file__).resolve().parents[1] / "fixtures" / "06ALMATY598.scraped.txt"

RecordFactory = Callable[..., dict[str, Any]]


@contextmanager
def _postgres_url() -> Iterator[str]:
    base = os.environ.get("CABLE_INGEST_TEST_PG_URL", PG_DEFAULT_URL)
    admin = create_engine(base, connect_args={"connect_timeout": 5})
    schema = f"test_storage_{uuid.uuid4().hex[:12]}"
    try:
        with admin.begin() as conn:
            conn.execute(text(f'CREATE SCHEMA "{schema}"'))
    except exc.OperationalError:
        admin.dispose()
        message = f"PostgreSQL not reachable at {redact_url(base)}"
        if os.environ.get("CI") == "true":
            pytest.fail(message)
        pytest.skip(message)
    try:
        url = make_url(base).update_query_dict({"options": f"-csearch_path={schema}"})
        yield url.render_as_string(hide_password=False)
    finally:
        with admin.begin() as conn:
            conn.execute(text(f'DROP SCHEMA "{schema}" CASCADE'))
        admin.dispose()


@pytest.fixture(params=["sqlite", "postgresql"])
def store_url(request: pytest.FixtureRequest, tmp_path: Path) -> Iterator[str]:
    """A migrated, empty database URL: a fresh SQLite file, or a fresh PostgreSQL schema."""
    if request.param == "sqlite":
        url = f"sqlite:///{tmp_path / 'var' / 'cables.db'}"
        upgrade(url)
        yield url
        return
    with _postgres_url() as url:
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
def sample_record() -> dict[str, Any]:
    """The parsed sample cable (06ALMATY598); copy it before changing it."""
    return parse_cable(SAMPLE.read_text(encoding="utf-8"), source_file=SAMPLE.name)


@pytest.fixture
def make_record(sample_record: dict[str, Any]) -> RecordFactory:
    """Build a copy of the sample record with another reference id and any fields replaced."""

    def build(reference_id: str | None = "06ALMATY598", **changes: Any) -> dict[str, Any]:
        record = copy.deepcopy(sample_record)
        record["reference_id"] = reference_id
        record.update(changes)
        return record

    return build
