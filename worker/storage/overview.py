"""Figures about the whole database, each set read in one transaction: one instant, one trip.

``cable-ingest status`` reads throughput, last successes, dead letters and reparse progress
(:meth:`OverviewStore.figures`), a Prometheus scrape the dead letters per stage and each sink's
last receipt (:meth:`OverviewStore.gauges`). Nothing counts a whole table: dead letters per
stage come from the counts the triggers of migration 0008 keep, a sink's last receipt from the
(sink, delivered_at) index. Nothing is written.
"""

from __future__ import annotations

from collections.abc import Sequence
from dataclasses import dataclass
from datetime import UTC, datetime

from sqlalchemy.engine import URL

from worker.storage.deadletters import count_since, counts_by_stage
from worker.storage.engine import Database, redact_url
from worker.storage.receipts import Activity, activity, last_receipts
from worker.storage.reparse import Progress, unfinished


@dataclass(frozen=True, slots=True)
class Figures:
    """What the status screen shows of the database, read at ``read_at``."""

    read_at: datetime
    activity: Activity  # receipts since the window's start, last successes
    failed_since: int  # dead letters of the given stages last seen since the window's start
    dead_by_stage: dict[str, int]
    reparse: list[Progress]  # unfinished runs


@dataclass(frozen=True, slots=True)
class Gauges:
    """What a scrape shows of the database, read at ``read_at``."""

    read_at: datetime
    dead_by_stage: dict[str, int]
    last_receipts: dict[str, datetime]


class OverviewStore:
    """Read-only figures; a pooled connection of its own, kept between calls."""

    def __init__(self, url: str | URL) -> None:
        self._db = Database(url)

    def __repr__(self) -> str:
        return f"OverviewStore({redact_url(self._db.url)!r})"

    def figures(
        self,
        since: datetime,
        storage_sinks: Sequence[str],
        sinks: Sequence[str],
        failure_stages: Sequence[str],
    ) -> Figures:
        """Throughput since ``since``, each of ``sinks``' last success, dead letters (of
        ``failure_stages`` since ``since``, and held per stage), unfinished reparse runs."""
        with self._db.errors("reading the status figures"), self._db.reading() as conn:
            read_at = datetime.now(UTC)
            recent = activity(conn, since, storage_sinks, sinks)
            failed = count_since(conn, since, failure_stages)
            return Figures(read_at, recent, failed, counts_by_stage(conn), unfinished(conn, since))

    def gauges(self, sinks: Sequence[str]) -> Gauges:
        """Dead letters held per stage, and when each of ``sinks`` last gave a receipt."""
        with self._db.errors("reading the gauges"), self._db.reading() as conn:
            read_at = datetime.now(UTC)
            return Gauges(read_at, counts_by_stage(conn), last_receipts(conn, sinks))

    def close(self) -> None:
        """Close this process's pooled connections; the store can still be used after."""
        self._db.dispose()
