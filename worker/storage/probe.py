"""Questions about a database that must not change it: is it there and migrated, does it answer.

Read-only commands and probes ask these instead of migrating: a missing SQLite file is
reported, never created (the worker creates it when it starts).
"""

from __future__ import annotations

from pathlib import Path
from typing import Any

from sqlalchemy import create_engine, inspect, text
from sqlalchemy.engine import make_url
from sqlalchemy.pool import NullPool

from worker.storage.engine import Database, redact_url
from worker.storage.schema import dead_letters, receipts


def _missing_sqlite_file(url: str) -> str | None:
    parsed = make_url(url)
    name = parsed.database or ""
    on_disk = parsed.get_backend_name() == "sqlite" and name and not name.startswith("file:")
    return name if on_disk and not Path(name).is_file() else None


def ping(url: str, timeout_s: float) -> str | None:
    """None when ``SELECT 1`` answers within about ``timeout_s``, else why not (for people)."""
    where = redact_url(url)
    if missing := _missing_sqlite_file(url):
        return f"database {where}: {missing} does not exist (no worker started yet?)"
    parsed = make_url(url)
    connect_args: dict[str, Any] = {}
    if parsed.get_backend_name() == "sqlite":
        connect_args["timeout"] = timeout_s
    elif "connect_timeout" not in parsed.query:
        connect_args["connect_timeout"] = timeout_s
    engine = create_engine(parsed, poolclass=NullPool, connect_args=connect_args)
    try:
        with engine.connect() as connection:
            connection.execute(text("SELECT 1"))
    except Exception as error:
        cause = getattr(error, "orig", error)
        lines = str(cause).strip().splitlines()
        said = f"{type(cause).__name__}: {lines[0][:200]}" if lines else type(cause).__name__
        return f"database {where} does not answer: {said}"
    finally:
        engine.dispose()
    return None


def is_migrated(url: str) -> bool:
    """Whether the tables exist (False for a SQLite file that is not there: not created).
    TransientSinkError when the database does not answer."""
    if _missing_sqlite_file(url):
        return False
    db = Database(url)
    try:
        with db.errors("looking for the tables"), db.engine.connect() as conn:
            tables = inspect(conn)
            return tables.has_table(receipts.name) and tables.has_table(dead_letters.name)
    finally:
        db.dispose()
