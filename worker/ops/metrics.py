"""Prometheus metrics for the operator: the workers' counters added up, and the gauges read
when Prometheus scrapes (queues, workers, dead letters, last deliveries).

The counters themselves are recorded by :mod:`worker.telemetry`, in each worker process.
"""

from __future__ import annotations

import functools
from collections.abc import Callable, Iterator
from pathlib import Path
from typing import TYPE_CHECKING, cast

from worker.errors import TransientSinkError
from worker.logs import get_logger
from worker.ops import health
from worker.queue.brokers import broker_for
from worker.routing.config import load_config
from worker.settings import Settings
from worker.storage.overview import OverviewStore
from worker.telemetry import PREFIX, default_metrics_dir, local_registry

if TYPE_CHECKING:
    from celery import Celery
    from prometheus_client.metrics_core import Metric
    from prometheus_client.registry import Collector

log = get_logger("worker.ops.metrics")

CONTENT_TYPE = "text/plain; version=0.0.4; charset=utf-8"  # what generate_latest writes


def render_metrics(
    settings: Settings, app: Celery | None = None, *, metrics_dir: Path | None = None
) -> bytes:
    """Every metric in the Prometheus text format: the counters of all the worker's processes
    (the files in ``metrics_dir``, default ``var_dir/metrics``; without that folder, this
    process's own counters) and the gauges read now from the broker and the database."""
    from prometheus_client import CollectorRegistry, generate_latest  # noqa: PLC0415
    from prometheus_client.multiprocess import MultiProcessCollector  # noqa: PLC0415

    registry = CollectorRegistry(auto_describe=False)
    folder = metrics_dir or default_metrics_dir(settings)
    if folder.is_dir():
        MultiProcessCollector(registry, path=str(folder))  # type: ignore[no-untyped-call]
    elif (own := local_registry()) is not None:
        registry.register(own)
    registry.register(cast("Collector", ScrapeCollector(settings, app)))
    return generate_latest(registry)


class ScrapeCollector:
    """The gauges read at scrape time; a source that does not answer is left out (and logged).

    Nothing here waits or counts a table: the broker's figures are one round trip on this
    process's client (on Redis one MULTI, workers included: no broadcast), the database's one
    transaction on a pooled connection reading a few rows (dead letters per stage as the
    triggers of migration 0007 keep them, each sink's last receipt by index)."""

    def __init__(self, settings: Settings, app: Celery | None = None) -> None:
        self.settings = settings
        self.app = app

    def collect(self) -> Iterator[Metric]:
        """Queue gauges (when the broker answers), then database gauges (when it answers)."""
        if health.check_broker(self.settings) is None:
            yield from self._guarded("broker", self._broker)
        yield from self._guarded("database", self._database)

    def _guarded(self, source: str, read: Callable[[], Iterator[Metric]]) -> Iterator[Metric]:
        try:
            families = list(read())
        except Exception as error:  # a scrape shows what it can; the log says what it could not
            log.warning("metrics_source_failed", source=source, error=f"{error}"[:300],
                        error_class=type(error).__name__)  # fmt: skip
            return
        yield from families

    def _broker(self) -> Iterator[Metric]:
        from prometheus_client.core import GaugeMetricFamily  # noqa: PLC0415

        from worker.queue.app import create_app  # noqa: PLC0415 - the app imports this module

        app = self.app or create_app(self.settings)
        snapshot = broker_for(self.settings).snapshot(app, health.queue_names(self.settings))

        def gauge(name: str, doc: str) -> GaugeMetricFamily:
            return GaugeMetricFamily(PREFIX + name, doc, labels=["queue"])

        depth = gauge("queue_depth", "Broker messages waiting (a message holds a batch).")
        unacked = gauge("queue_unacked", "Messages delivered to a worker, not yet acknowledged.")
        lost = gauge(
            "queue_unacked_lost",
            "Unacknowledged messages held by consumers that are gone (back after the"
            " visibility timeout, or now with cable-ingest put-back).",
        )
        oldest = gauge("queue_oldest_age_seconds", "Age of the oldest waiting message; 0: none.")
        for queue in snapshot.queues:
            depth.add_metric([queue.name], queue.depth)
            unacked.add_metric([queue.name], queue.unacked)
            if queue.lost is not None:
                lost.add_metric([queue.name], queue.lost)
            oldest.add_metric([queue.name], queue.oldest_age_s or 0.0)
        yield from (depth, unacked, lost, oldest)
        if snapshot.workers is not None:  # the embedded broker cannot tell
            yield GaugeMetricFamily(
                PREFIX + "workers_online",
                "Worker processes connected to the broker.",
                value=len(snapshot.workers),
            )

    def _database(self) -> Iterator[Metric]:
        from prometheus_client.core import GaugeMetricFamily  # noqa: PLC0415

        config = getattr(self.app, "sinks_config", None) or load_config(self.settings.config_file)
        sinks = list(config.sinks)
        try:
            read = _overview(self.settings.database_url).gauges(sinks)
        except TransientSinkError as error:  # away (or never migrated): no gauges this time
            log.info("metrics_database_unavailable", error=f"{error}"[:300])
            return
        by_stage, by_sink = read.dead_by_stage, read.last_receipts
        held = GaugeMetricFamily(
            PREFIX + "dead_letters_stored", "Dead letters held, by stage.", labels=["stage"]
        )
        for stage, count in sorted(by_stage.items()):
            held.add_metric([stage], count)
        yield held
        last = GaugeMetricFamily(
            PREFIX + "last_delivery_timestamp_seconds",
            "When each sink last took an envelope (Unix time).",
            labels=["sink"],
        )
        for sink, at in sorted(by_sink.items()):
            last.add_metric([sink], at.timestamp())
        yield last


@functools.lru_cache(maxsize=4)
def _overview(url: str) -> OverviewStore:
    """One store (a pooled connection) per database for the scrapes of this process: a new
    connection per scrape would cost PostgreSQL more than the queries."""
    return OverviewStore(url)
