"""The broker and the database, waited for: what every command that needs them does first.

A dependency that does not answer is tried again for ``CABLE_INGEST_CONNECT_WAIT_S`` seconds
(60 by default; 0: not at all), with one line on stderr per failed attempt::

    cable-ingest: broker redis://127.0.0.1:6390/0 does not answer (Connection refused); retrying in 2 s (2/10)

then :class:`~worker.errors.UnavailableError`, which :func:`worker.cli.main` prints as one line
and turns into exit 69 (:data:`worker.cli.exits.UNAVAILABLE`). Writers wait for the database
and then migrate it; readers wait for it and read the revision of its tables, never creating
anything (:func:`wait_for_tables`).
"""

from __future__ import annotations

import sys
from collections.abc import Callable
from typing import TYPE_CHECKING, TypeVar

from worker.errors import CableIngestError
from worker.settings import Settings

if TYPE_CHECKING:
    from worker.storage import probe

T = TypeVar("T")


class NoTablesError(CableIngestError):
    """The database has no cable-ingest tables yet: nothing was ever stored in it."""


class SchemaMismatchError(CableIngestError):
    """The tables are at a storage revision this cable-ingest cannot read (older or newer)."""


def say(line: str) -> None:
    """One line on stderr, as every message of ``cable-ingest`` (flushed: a wait is live)."""
    print(f"cable-ingest: {line}", file=sys.stderr, flush=True)


def patiently(settings: Settings, attempt: Callable[[], T]) -> T:
    """``attempt()``, tried again while the broker or the database does not answer."""
    from worker.waiting import wait_for

    return wait_for(attempt, wait_s=settings.connect_wait_s, say=say)


def wait_for_broker(settings: Settings) -> None:
    """Until the broker answers (the embedded one's folders are made first)."""
    from worker.queue.brokers import check

    patiently(settings, lambda: check(settings))


def wait_for_database(settings: Settings) -> None:
    """Until the database answers, for a writer (which migrates it next): a SQLite file and
    its folder are made when missing."""
    from worker.storage import probe

    patiently(settings, lambda: probe.reach(settings.database_url))


def wait_for_schema(settings: Settings) -> probe.Schema:
    """Until the database answers, for a reader: the revision of its tables, nothing created
    (a SQLite file that is not there is not waited for: it has no tables)."""
    from worker.storage import probe

    return patiently(settings, lambda: probe.schema(settings.database_url))


def wait_for_tables(settings: Settings) -> probe.Schema:
    """:func:`wait_for_schema`, then NoTablesError when the database has no tables and
    SchemaMismatchError when they are older or newer than this cable-ingest's."""
    schema = wait_for_schema(settings)
    if schema.empty:
        raise NoTablesError(no_tables(settings))
    if problem := schema.problem():
        raise SchemaMismatchError(problem)
    return schema


def no_tables(settings: Settings) -> str:
    """What to say about a database without tables."""
    from worker.storage import redact_url

    where = redact_url(settings.database_url)
    return (
        f"the database {where} has no tables yet"
        " (`cable-ingest migrate` makes them; a worker does at its start)"
    )
