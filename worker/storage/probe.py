"""Questions about a database that must not change it: is it there and migrated, does it answer.

Read-only commands and probes ask these instead of migrating: a missing SQLite file is
reported, never created (the worker creates it when it starts). Every connection made here
gives up after a few seconds; a database that does not answer raises
:class:`~worker.errors.UnavailableError` (worth waiting for: :mod:`worker.waiting`), except in
:func:`ping`, which says why instead. :func:`reach` is the writers' check: it may create the
SQLite file and its folder, as the migration that follows would.
"""

from __future__ import annotations

from collections.abc import Iterator
from contextlib import contextmanager
from dataclasses import dataclass
from pathlib import Path
from typing import Any

from sqlalchemy import Connection, create_engine, exc, inspect, text
from sqlalchemy.engine import make_url
from sqlalchemy.pool import NullPool

from worker.errors import UnavailableError
from worker.storage.engine import Database, redact_url
from worker.storage.migrations import known_revision, latest_revision
from worker.storage.schema import dead_letters, receipts
from worker.waiting import cause

CONNECT_TIMEOUT_S = 5
_VERSION_TABLE = "alembic_version"


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
    UnavailableError when the database does not answer."""
    if _missing_sqlite_file(url):
        return False
    with _connected(url) as conn:
        tables = inspect(conn)
        return tables.has_table(receipts.name) and tables.has_table(dead_letters.name)


@dataclass(frozen=True, slots=True)
class Schema:
    """The storage revision a database is at (None: no tables) and the one this code needs."""

    url: str
    revision: str | None
    latest: str

    @property
    def empty(self) -> bool:
        """No cable-ingest tables yet (``cable-ingest migrate``, or a worker, makes them)."""
        return self.revision is None

    def problem(self) -> str | None:
        """Why this code cannot read the tables (older or newer than it knows), else None."""
        where = redact_url(self.url)
        if self.revision is None or self.revision == self.latest:
            return None
        if known_revision(self.revision):
            return (
                f"the database {where} is at storage revision {self.revision}, older than this"
                f" cable-ingest's {self.latest}: run `cable-ingest migrate`"
            )
        return (
            f"the database {where} is at storage revision {self.revision}, which this"
            f" cable-ingest does not know (it knows up to {self.latest}): a newer cable-ingest"
            " migrated it; use that one"
        )


def schema(url: str) -> Schema:
    """The revision of the database's tables, read without changing anything (a SQLite file
    that is not there is not created); UnavailableError when it does not answer."""
    revision: str | None = None
    if missing := _missing_sqlite_file(url):
        _creatable(url, Path(missing))
    else:
        with _connected(url) as conn:
            if inspect(conn).has_table(_VERSION_TABLE):
                found = conn.execute(text(f"SELECT version_num FROM {_VERSION_TABLE}"))
                revision = ",".join(sorted(found.scalars().all())) or None
    return Schema(url, revision, latest_revision())


def reach(url: str) -> None:
    """Connect once, as a writer about to migrate would: the SQLite folder and file are made
    when missing. UnavailableError when the folder cannot be made or the database does not
    answer."""
    parsed = make_url(url)
    name = parsed.database or ""
    if parsed.get_backend_name() == "sqlite" and name and not name.startswith("file:"):
        folder = Path(name).parent
        try:
            folder.mkdir(parents=True, exist_ok=True)
        except OSError as error:
            where = redact_url(url)
            raise UnavailableError(
                "database", where, f"database {where}: cannot create {folder} ({cause(error)})"
            ) from error
    with _connected(url) as conn:
        conn.execute(text("SELECT 1"))


def _creatable(url: str, file: Path) -> None:
    """A SQLite file that is not there may be made later (its folder too: a fresh machine),
    unless a file stands where a folder of its path should be: UnavailableError."""
    for folder in file.parents:
        if folder.exists():
            if folder.is_dir():
                return
            where = redact_url(url)
            message = f"database {where}: cannot be created ({folder} is not a folder)"
            raise UnavailableError("database", where, message)


@contextmanager
def _connected(url: str) -> Iterator[Connection]:
    """One connection that gives up after CONNECT_TIMEOUT_S; UnavailableError when it cannot
    be made or is lost, a sink error (one line) for anything else the database says (a
    SQLite file that is not a database)."""
    where = redact_url(url)
    engine = create_engine(make_url(url), poolclass=NullPool, connect_args=_timeout(url))
    try:
        try:
            conn = engine.connect()
        except exc.DBAPIError as error:
            message = f"database {where} does not answer ({cause(error)})"
            raise UnavailableError("database", where, message) from error
        with Database(url).errors("reading the tables"), conn:
            yield conn
    finally:
        engine.dispose()


def _timeout(url: str, timeout_s: float = CONNECT_TIMEOUT_S) -> dict[str, Any]:
    parsed = make_url(url)
    if parsed.get_backend_name() == "sqlite":
        return {"timeout": timeout_s}
    if "connect_timeout" in parsed.query:
        return {}
    return {"connect_timeout": max(2, int(timeout_s))}  # libpq counts whole seconds, 2 at least
