"""Schema migrations (Alembic), run from code: ``upgrade(url)``; no alembic.ini is involved.

The whole upgrade runs in one transaction holding a lock (PostgreSQL advisory lock, SQLite
write lock), so that workers starting together migrate once and the others find it done.
Running it again when the schema is current does nothing.
"""

from __future__ import annotations

import functools

from alembic import command
from alembic.config import Config
from alembic.script import ScriptDirectory
from alembic.util import CommandError
from sqlalchemy import text
from sqlalchemy.engine import URL

from worker.storage.engine import Database

SCRIPT_LOCATION = "worker.storage:migrations"
_PG_LOCK_KEY = 0x0CAB1E  # any constant shared by every process that migrates this schema


def alembic_config() -> Config:
    """An Alembic configuration pointing at this package (for ``command.*`` calls)."""
    config = Config()
    config.set_main_option("script_location", SCRIPT_LOCATION)
    return config


@functools.cache
def _scripts() -> ScriptDirectory:
    return ScriptDirectory.from_config(alembic_config())


def latest_revision() -> str:
    """The storage revision this code migrates to (Alembic's head)."""
    head = _scripts().get_current_head()
    assert head is not None, "the migrations have a single head"
    return head


def known_revision(revision: str) -> bool:
    """Whether ``revision`` is one of this code's migrations (False: a newer code's)."""
    try:
        return all(_scripts().get_revision(part) is not None for part in revision.split(","))
    except CommandError:
        return False


def upgrade(url: str | URL, revision: str = "head") -> None:
    """Migrate the database at ``url`` to ``revision`` (the latest by default)."""
    database = Database(url)
    try:
        with database.errors("migrating the storage schema"), database.writer.begin() as conn:
            if database.backend == "postgresql":
                conn.execute(text("SELECT pg_advisory_xact_lock(:key)"), {"key": _PG_LOCK_KEY})
            config = alembic_config()
            config.attributes["connection"] = conn
            command.upgrade(config, revision)
    finally:
        database.dispose()
