"""Fixtures for the HTTP face in process: the app on a fresh SQLite database (or PostgreSQL
schema), its queue an in-memory twin, a Starlette TestClient (which runs the lifespan), and
tokens made in the store as ``cable-ingest tokens create`` makes them."""

from __future__ import annotations

import warnings
from collections.abc import Callable, Iterator
from dataclasses import replace
from pathlib import Path
from typing import Any

import pytest
from starlette.exceptions import StarletteDeprecationWarning

with warnings.catch_warnings():  # Starlette >= 1.x prefers httpx2 here; httpx works the same
    warnings.simplefilter("ignore", StarletteDeprecationWarning)
    from starlette.testclient import TestClient

from tests.services import postgres_schema_url
from worker.http.app import create_http_app
from worker.http.intake import MemoryQueue
from worker.settings import Settings
from worker.storage import upgrade
from worker.storage.tokens import TokenStore

SAMPLE = Path(__file__).resolve().parents[1] / "fixtures" / "06ALMATY598.scraped.txt"
TokenMaker = Callable[..., str]


@pytest.fixture(params=["sqlite"])
def database_url(request: pytest.FixtureRequest, tmp_path: Path) -> Iterator[str]:
    """A migrated, empty database: a fresh SQLite file (tests that need both backends
    parametrize ``database_url`` indirectly with "postgresql" too)."""
    if request.param == "sqlite":
        url = f"sqlite:///{tmp_path / 'var' / 'cable-ingest.db'}"
        upgrade(url)
        yield url
        return
    with postgres_schema_url() as url:
        upgrade(url)
        yield url


@pytest.fixture
def settings(tmp_path: Path, database_url: str) -> Settings:
    """Settings for an app under test: the in-memory broker (never published to: the queue
    is a twin), the test database, no group-commit wait and no token cache."""
    return Settings(
        broker_url="memory://",
        database_url=database_url,
        var_dir=tmp_path / "var",
        group_commit_ms=0,
        token_cache_s=0,
    )


@pytest.fixture
def queue() -> MemoryQueue:
    """The queue the app publishes to."""
    return MemoryQueue()


@pytest.fixture
def make_client(queue: MemoryQueue, settings: Settings) -> Iterator[Callable[..., TestClient]]:
    """Open a TestClient on an app made from ``settings`` (with changes); closed afterwards."""
    opened: list[TestClient] = []

    def make(**changes: Any) -> TestClient:
        app = create_http_app(replace(settings, **changes), queue=lambda _s: queue)
        client = TestClient(app, raise_server_exceptions=True)
        client.__enter__()
        opened.append(client)
        return client

    yield make
    for client in opened:
        client.__exit__(None, None, None)


@pytest.fixture
def client(make_client: Callable[..., TestClient]) -> TestClient:
    """A client of the app with the fixture's settings."""
    return make_client()


@pytest.fixture
def make_token(database_url: str) -> Iterator[TokenMaker]:
    """Create a token: ``make_token("feed-a", "ingest", "read", clearance="SECRET")``."""
    store = TokenStore(database_url)

    def make(name: str, *scopes: str, clearance: str | None = None) -> str:
        token, _info = store.create(name, scopes or ("ingest",), clearance)
        return token

    yield make
    store.close()


def bearer(token: str) -> dict[str, str]:
    """The Authorization header for ``token``."""
    return {"Authorization": f"Bearer {token}"}
