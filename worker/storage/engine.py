"""One lazily created SQLAlchemy engine per store, the same code path for SQLite and PostgreSQL.

Nothing connects at import or construction: the engine is made on first use, in the process
that uses it, and made again (without closing the parent's connections) after a fork. SQLite
gets WAL, a busy timeout and foreign keys on every connection, and write transactions start
with ``BEGIN IMMEDIATE`` so that concurrent writers wait for the lock instead of failing.
Database errors leave as :class:`~worker.errors.TransientSinkError` (worth a retry) or
:class:`~worker.errors.PermanentSinkError`, with the password redacted from any URL.
"""

from __future__ import annotations

from collections.abc import Iterator
from contextlib import contextmanager
from datetime import UTC, datetime
from pathlib import Path
from typing import Any

import orjson
from sqlalchemy import Connection, Engine, create_engine, event, exc
from sqlalchemy.engine import URL, make_url

from worker import processes
from worker.errors import ConfigurationError, PermanentSinkError, TransientSinkError

BACKENDS = ("sqlite", "postgresql")
SQLITE_BUSY_TIMEOUT_MS = 10_000
MAX_DETAIL_CHARS = 200

_TRANSIENT = (exc.OperationalError, exc.InterfaceError, exc.InternalError, exc.TimeoutError)
_PERMANENT = (exc.IntegrityError, exc.DataError, exc.ProgrammingError, exc.NotSupportedError)


def redact_url(url: str | URL) -> str:
    """Render a database URL with its password masked, fit for messages and logs."""
    try:
        return make_url(url).render_as_string(hide_password=True)
    except exc.ArgumentError:
        return "<unparsable database URL>"


def utc_iso(value: datetime | None) -> str | None:
    """ISO 8601 in UTC with a ``Z`` ("2006-02-14T11:33:00Z"), fractions only when present."""
    if value is None:
        return None
    value = value.astimezone(UTC) if value.tzinfo else value.replace(tzinfo=UTC)
    timespec = "microseconds" if value.microsecond else "seconds"
    return value.isoformat(timespec=timespec).replace("+00:00", "Z")


def parse_utc(value: str | datetime | None) -> datetime | None:
    """An aware UTC datetime from an ISO 8601 string or datetime; naive means UTC."""
    if value is None:
        return None
    parsed = datetime.fromisoformat(value) if isinstance(value, str) else value
    return parsed.astimezone(UTC) if parsed.tzinfo else parsed.replace(tzinfo=UTC)


def _dumps(value: object) -> str:
    return orjson.dumps(value).decode()


def _sqlite_on_connect(dbapi_connection: Any, _record: object) -> None:
    dbapi_connection.isolation_level = None  # the "begin" listener emits BEGIN itself
    cursor = dbapi_connection.cursor()
    cursor.execute("PRAGMA journal_mode=WAL")
    cursor.execute(f"PRAGMA busy_timeout={SQLITE_BUSY_TIMEOUT_MS}")
    cursor.execute("PRAGMA foreign_keys=ON")
    cursor.close()


def _sqlite_on_begin(connection: Connection) -> None:
    mode = connection.get_execution_options().get("sqlite_begin", "DEFERRED")
    connection.exec_driver_sql(f"BEGIN {mode}")


class Database:
    """A database URL and the engine for it, created on first use in the current process."""

    def __init__(self, url: str | URL) -> None:
        try:
            self.url = make_url(url)
        except exc.ArgumentError as error:
            raise ConfigurationError(f"expected a database URL, got {url!r}") from error
        self.backend = self.url.get_backend_name()
        if self.backend not in BACKENDS:
            raise ConfigurationError(
                f"database URL {redact_url(self.url)}: expected one of {', '.join(BACKENDS)}"
            )
        if self.backend == "sqlite" and self.url.database in (None, "", ":memory:"):
            raise ConfigurationError("an in-memory SQLite database cannot be shared; use a file")
        self._engine: Engine | None = None
        self._writer: Engine | None = None
        processes.track(self)

    def __repr__(self) -> str:
        return f"Database({redact_url(self.url)!r})"

    @property
    def engine(self) -> Engine:
        """The engine for this process (created now if needed)."""
        if self._engine is None:
            self._engine = self._create_engine()
            self._writer = self._engine.execution_options(sqlite_begin="IMMEDIATE")
        return self._engine

    @property
    def writer(self) -> Engine:
        """The engine for write transactions (on SQLite they take the write lock up front)."""
        self.engine  # noqa: B018 - creates both engines when needed
        assert self._writer is not None
        return self._writer

    def _create_engine(self) -> Engine:
        options: dict[str, Any] = {
            "json_serializer": _dumps,
            "json_deserializer": orjson.loads,
            "hide_parameters": True,  # parameters are cable bodies: never in messages
        }
        if self.backend == "postgresql":
            return create_engine(self.url, pool_pre_ping=True, **options)
        if self.url.database and not self.url.database.startswith("file:"):
            folder = Path(self.url.database).parent
            try:
                folder.mkdir(parents=True, exist_ok=True)
            except OSError as error:
                raise ConfigurationError(f"cannot create {folder} for SQLite: {error}") from error
        engine = create_engine(self.url, **options)
        event.listen(engine, "connect", _sqlite_on_connect)
        event.listen(engine, "begin", _sqlite_on_begin)
        return engine

    @contextmanager
    def reading(self) -> Iterator[Connection]:
        """One read-only transaction: every query in it sees the same snapshot of the database
        (PostgreSQL: REPEATABLE READ; SQLite in WAL mode: from the transaction's first read)."""
        engine = self.engine
        if self.backend == "postgresql":
            engine = engine.execution_options(
                isolation_level="REPEATABLE READ", postgresql_readonly=True
            )
        with engine.connect() as conn, conn.begin():
            yield conn

    def dispose(self) -> None:
        """Close every pooled connection; the next use makes a new engine."""
        if self._engine is not None:
            self._engine.dispose()
        self._engine = self._writer = None

    def after_fork(self) -> None:
        """In a forked child: the parent's connections stay the parent's."""
        if self._engine is not None:
            self._engine.dispose(close=False)
        self._engine = self._writer = None

    @contextmanager
    def errors(self, action: str) -> Iterator[None]:
        """Translate database errors raised while doing ``action`` into sink errors."""
        try:
            yield
        except _PERMANENT as error:
            raise PermanentSinkError(self._message(action, error)) from error
        except (*_TRANSIENT, exc.DBAPIError) as error:
            raise TransientSinkError(self._message(action, error)) from error

    def _message(self, action: str, error: exc.SQLAlchemyError) -> str:
        # the DBAPI's first line only: later lines (DETAIL) may quote a whole row
        original = getattr(error, "orig", None) or error
        lines = str(original).strip().splitlines() or [type(original).__name__]
        detail = lines[0][:MAX_DETAIL_CHARS]
        return f"{action} in {redact_url(self.url)} failed: {type(original).__name__}: {detail}"
