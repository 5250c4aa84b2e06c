"""Prometheus metrics: counters the tasks bump per cable, gauges read when Prometheus scrapes.

Prefork children count in their own memory, so the worker runs prometheus_client in multiprocess
mode: before the pool forks, :func:`prepare_metrics_dir` empties the metrics folder and points
``PROMETHEUS_MULTIPROC_DIR`` at it; each process writes its own ``*.db`` file there, and
:func:`render_metrics` adds them up, with gauges read at scrape time (queues, workers, dead
letters, last deliveries). prometheus_client picks its mode when first imported, so it is
imported lazily and the metrics are built on first use in each process (a forked child builds
its own). Without a metrics folder (tests, the CLI) the same functions count in plain memory.
"""

from __future__ import annotations

import os
import sys
from collections import Counter as Tally
from collections.abc import Callable, Iterator, Sequence
from dataclasses import dataclass
from pathlib import Path
from typing import TYPE_CHECKING, Any, cast

from worker import processes
from worker.logs import get_logger
from worker.ops import health
from worker.settings import Settings
from worker.storage import DeadLetterStore, ReceiptStore

if TYPE_CHECKING:
    from celery import Celery
    from prometheus_client import CollectorRegistry, Counter, Histogram
    from prometheus_client.metrics_core import Metric
    from prometheus_client.registry import Collector

log = get_logger("worker.ops.metrics")

MULTIPROC_ENV = "PROMETHEUS_MULTIPROC_DIR"
CONTENT_TYPE = "text/plain; version=0.0.4; charset=utf-8"  # what generate_latest writes
PREFIX = "cable_ingest_"
# 0.1 ms (a short cable's parse) to 10 s (a slow sink's batch), about three steps a decade
STAGE_BUCKETS = (0.0001, 0.00025, 0.0005, 0.001, 0.0025, 0.005, 0.01, 0.025, 0.05, 0.1,
                 0.25, 0.5, 1.0, 2.5, 5.0, 10.0)  # fmt: skip
WORKER_PING_S = 1.0  # a ping waits this long for every worker's answer


def default_metrics_dir(settings: Settings) -> Path:
    """Where the worker's processes write their counters (``CABLE_INGEST_METRICS_DIR``)."""
    return settings.metrics_dir or settings.var_dir / "metrics"


def prepare_metrics_dir(path: Path) -> None:
    """Empty ``path`` of metric files and make this process and its children count there;
    call it in the worker's main process before the pool forks (``worker_init``)."""
    path.mkdir(parents=True, exist_ok=True)
    for stale in path.glob("*.db"):  # only metric files: never empty a folder given by mistake
        stale.unlink(missing_ok=True)
    # The one write to the environment: prometheus_client reads this variable, and only this
    # variable, to decide where each process writes its values; the forked children inherit it.
    os.environ[MULTIPROC_ENV] = str(path)
    values: Any = sys.modules.get("prometheus_client.values")
    if values is not None and not getattr(values.ValueClass, "_multiprocess", False):
        # imported before the variable was set (by some other library): switch it now, so
        # that the metrics built after this (in the children) write to files after all
        values.ValueClass = values.MultiProcessValue()


def mark_process_dead(pid: int | None, path: Path | None = None) -> None:
    """Bookkeeping for a pool child that exited (hook to ``worker_process_shutdown``): a dead
    child's counters stay in the sums, as counters must; only live gauges (none yet) go."""
    folder = path or (Path(os.environ[MULTIPROC_ENV]) if MULTIPROC_ENV in os.environ else None)
    if pid is None or folder is None or not folder.is_dir():
        return
    from prometheus_client import multiprocess  # noqa: PLC0415 - lazily, see the module doc

    multiprocess.mark_process_dead(pid, str(folder))  # type: ignore[no-untyped-call]


@dataclass(frozen=True, slots=True)
class _Metrics:
    multiprocess: bool
    registry: CollectorRegistry
    received: Counter
    parsed: Counter
    stored: Counter
    dead_letters: Counter
    delivered: Counter
    withheld: Counter
    redeliveries: Counter
    stage_seconds: Histogram


_metrics: _Metrics | None = None


def _build() -> _Metrics:
    from prometheus_client import (  # noqa: PLC0415 - lazily, see the module doc
        CollectorRegistry,
        Counter,
        Histogram,
    )

    registry = CollectorRegistry(auto_describe=True)

    def counter(name: str, doc: str, *labels: str) -> Counter:
        return Counter(PREFIX + name, doc, labels, registry=registry)

    return _Metrics(
        multiprocess=MULTIPROC_ENV in os.environ,
        registry=registry,
        received=counter("cables_received", "Envelopes taken off the intake queue."),
        parsed=counter("cables_parsed", "Cables parsed into a record."),
        stored=counter("cables_stored", "Records taken by a storage sink.", "sink", "outcome"),
        dead_letters=counter("dead_letters", "Items dead-lettered, by stage.", "stage"),
        delivered=counter("notifications_delivered", "Notifications sent.", "sink"),
        withheld=counter("notifications_withheld", "Notifications withheld (clearance).", "sink"),
        redeliveries=counter("redeliveries", "Task messages that came back redelivered.", "task"),
        stage_seconds=Histogram(
            PREFIX + "stage_duration_seconds",
            "Time spent per stage: parse, validate, deliver:<sink> (a batch).",
            ["stage"],
            registry=registry,
            buckets=STAGE_BUCKETS,
        ),
    )


def _current() -> _Metrics:
    global _metrics  # noqa: PLW0603 - one set of metrics per process, by design
    if _metrics is None:
        _metrics = _build()
    return _metrics


class _PerProcess:
    def after_fork(self) -> None:
        """A forked child counts in its own metrics (files of its own in multiprocess mode)."""
        global _metrics  # noqa: PLW0603 - see _current
        _metrics = None


_PER_PROCESS = processes.track(_PerProcess())


def received(n: int = 1) -> None:
    """``n`` envelopes taken off the intake queue."""
    _current().received.inc(n)


def parsed(n: int = 1) -> None:
    """``n`` cables parsed into records."""
    _current().parsed.inc(n)


def observe(stage: str, seconds: float) -> None:
    """One ``stage`` (parse, validate, deliver:<sink>) took ``seconds``."""
    _current().stage_seconds.labels(stage).observe(seconds)


def stored(sink: str, n: int = 1, outcome: str = "inserted") -> None:
    """A storage sink took ``n`` records with ``outcome`` (inserted, unchanged, revised)."""
    _current().stored.labels(sink, outcome).inc(n)


def dead_lettered(stage: str, n: int = 1) -> None:
    """``n`` items dead-lettered at ``stage`` (intake, parse, validate, sink:<name>)."""
    _current().dead_letters.labels(stage).inc(n)


def delivered(sink: str, n: int = 1) -> None:
    """A notification sink sent ``n`` notifications."""
    _current().delivered.labels(sink).inc(n)


def withheld(sink: str, n: int = 1) -> None:
    """``n`` notifications withheld from ``sink`` (above its clearance)."""
    _current().withheld.labels(sink).inc(n)


def redelivered(task: str) -> None:
    """A message of ``task`` came back redelivered (its worker was lost)."""
    _current().redeliveries.labels(task).inc()


def sink_outcomes(sink: str, outcomes: Sequence[str], *, notifies: bool) -> None:
    """Count one batch's outcomes (``write_batch``'s words) for a storage or notification sink."""
    tally = Tally(outcomes)
    if not notifies:
        for outcome, count in tally.items():
            stored(sink, count, outcome)
        return
    delivered(sink, tally["delivered"])
    withheld(sink, tally["withheld"])


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
    elif _metrics is not None and not _metrics.multiprocess:
        registry.register(_metrics.registry)
    registry.register(cast("Collector", ScrapeCollector(settings, app)))
    return generate_latest(registry)


class ScrapeCollector:
    """The gauges read at scrape time; a source that does not answer is left out (and logged)."""

    def __init__(self, settings: Settings, app: Celery | None = None) -> None:
        self.settings = settings
        self.app = app

    def collect(self) -> Iterator[Metric]:
        """Queue gauges (when the broker answers), then database gauges (when it answers)."""
        if health.check_broker(self.settings) is None:
            yield from self._guarded("broker", self._broker)
        if health.check_database(self.settings) is None:
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

        from worker.ops.inspect import inspect_queues, workers_online  # noqa: PLC0415 - likewise
        from worker.queue.app import create_app  # noqa: PLC0415 - the app imports this module

        app = self.app or create_app(self.settings)
        queues = inspect_queues(app, self.settings, health.queue_names(self.settings))

        def gauge(name: str, doc: str) -> GaugeMetricFamily:
            return GaugeMetricFamily(PREFIX + name, doc, labels=["queue"])

        depth = gauge("queue_depth", "Broker messages waiting (a message holds a batch).")
        unacked = gauge("queue_unacked", "Messages delivered to a worker, not yet acknowledged.")
        oldest = gauge("queue_oldest_age_seconds", "Age of the oldest waiting message; 0: none.")
        for queue in queues:
            depth.add_metric([queue.name], queue.depth)
            unacked.add_metric([queue.name], queue.unacked)
            oldest.add_metric([queue.name], queue.oldest_age_s or 0.0)
        yield from (depth, unacked, oldest)
        workers = workers_online(app, self.settings, timeout=WORKER_PING_S)
        if workers is not None:  # the embedded broker cannot tell
            yield GaugeMetricFamily(
                PREFIX + "workers_online", "Workers answering a broadcast.", value=len(workers)
            )
            yield GaugeMetricFamily(
                PREFIX + "tasks_active", "Tasks running on the workers that answered.",
                value=sum(w.active_tasks for w in workers),
            )  # fmt: skip

    def _database(self) -> Iterator[Metric]:
        from prometheus_client.core import GaugeMetricFamily  # noqa: PLC0415

        letters = DeadLetterStore(self.settings.database_url)
        receipts = ReceiptStore(self.settings.database_url)
        try:
            by_stage, by_sink = letters.counts_by_stage(), receipts.last_delivery_by_sink()
        finally:
            letters.close()
            receipts.close()
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
