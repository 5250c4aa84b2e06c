"""The real services the tests use on loopback: PostgreSQL and Redis.

A test that needs one calls these helpers: when the service is not reachable the test is
skipped with the reason, except in CI (``CI=true``) where that is a failure.
"""

from __future__ import annotations

import os
import socket
import uuid
from collections.abc import Iterator
from contextlib import contextmanager

import pytest
import redis
from sqlalchemy import create_engine, exc, text
from sqlalchemy.engine import make_url

from worker.settings import redact_url

PG_DEFAULT_URL = "postgresql+psycopg://postgres@127.0.0.1:5432/test"
REDIS_DEFAULT_URL = "redis://127.0.0.1:6379/13"


def closed_port() -> int:
    """A loopback port nothing listens on (bound, read, released)."""
    with socket.socket() as probe:
        probe.bind(("127.0.0.1", 0))
        port: int = probe.getsockname()[1]
    return port


def unavailable(message: str) -> None:
    """Skip the test, or fail it in CI, because a service it needs is not reachable."""
    if os.environ.get("CI") == "true":
        pytest.fail(message)
    pytest.skip(message)


@contextmanager
def postgres_schema_url() -> Iterator[str]:
    """A PostgreSQL URL whose search path is a fresh schema, dropped afterwards."""
    base = os.environ.get("CABLE_INGEST_TEST_PG_URL", PG_DEFAULT_URL)
    admin = create_engine(base, connect_args={"connect_timeout": 5})
    schema = f"test_{uuid.uuid4().hex[:12]}"
    try:
        with admin.begin() as conn:
            conn.execute(text(f'CREATE SCHEMA "{schema}"'))
    except exc.OperationalError:
        admin.dispose()
        unavailable(f"PostgreSQL not reachable at {redact_url(base)}")
    try:
        url = make_url(base).update_query_dict({"options": f"-csearch_path={schema}"})
        yield url.render_as_string(hide_password=False)
    finally:
        with admin.begin() as conn:
            conn.execute(text(f'DROP SCHEMA "{schema}" CASCADE'))
        admin.dispose()


@contextmanager
def redis_db_url() -> Iterator[str]:
    """The URL of a Redis database for tests (db 13 by default), emptied before and after."""
    url = os.environ.get("CABLE_INGEST_TEST_REDIS_URL", REDIS_DEFAULT_URL)
    client = redis.Redis.from_url(url, socket_connect_timeout=2)
    try:
        client.flushdb()
    except redis.ConnectionError:
        client.close()
        unavailable(f"Redis not reachable at {redact_url(url)}")
    try:
        yield url
    finally:
        client.flushdb()
        client.close()
