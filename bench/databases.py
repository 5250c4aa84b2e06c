"""The databases the benchmarks write to: a fresh PostgreSQL schema on the loopback server,
dropped afterwards (``CABLE_INGEST_BENCH_PG_URL`` names the server)."""

from __future__ import annotations

import os
import uuid
from collections.abc import Iterator
from contextlib import contextmanager

from sqlalchemy import create_engine, exc, text
from sqlalchemy.engine import make_url

PG_URL = os.environ.get("CABLE_INGEST_BENCH_PG_URL", "postgresql+psycopg://postgres@127.0.0.1/test")


@contextmanager
def postgres_schema(*, optional: bool = False) -> Iterator[str | None]:
    """The URL of a new schema (its ``search_path``), dropped with everything in it afterwards.
    With ``optional``, None when PostgreSQL does not answer; else its error goes on."""
    schema = f"bench_{uuid.uuid4().hex[:10]}"
    admin = create_engine(PG_URL)
    try:
        with admin.begin() as conn:
            conn.execute(text(f'CREATE SCHEMA "{schema}"'))
    except exc.OperationalError:
        admin.dispose()
        if not optional:
            raise
        yield None
        return
    try:
        url = make_url(PG_URL).update_query_dict({"options": f"-csearch_path={schema}"})
        yield url.render_as_string(hide_password=False)
    finally:
        with admin.begin() as conn:
            conn.execute(text(f'DROP SCHEMA "{schema}" CASCADE'))
        admin.dispose()
