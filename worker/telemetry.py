"""The counters and timings the workers record per cable (Prometheus, written by each process).

Prefork children count in their own memory, so the worker runs prometheus_client in multiprocess
mode: before the pool forks, :func:`prepare_metrics_dir` empties the metrics folder and points
``PROMETHEUS_MULTIPROC_DIR`` at it; each process writes its own ``*.db`` file there, and the
operator's view (:mod:`worker.ops.metrics`) adds them up at scrape time. prometheus_client picks
its mode when first imported, so it is imported lazily and the metrics are built on first use in
each process (a forked child builds its own). Without a metrics folder (tests, the CLI) the same
functions count in plain memory (:func:`local_registry`).

A foundation module, like :mod:`worker.logs`: the tasks record here without reaching up into
the operator's view.
"""

from __future__ import annotations

import os
import sys
from collections import Counter as Tally
from collections.abc import Sequence
from dataclasses import dataclass
from pathlib import Path
from typing import TYPE_CHECKING, Any

from worker import processes
from worker.settings import Settings

if TYPE_CHECKING:
    from prometheus_client import CollectorRegistry, Counter, Histogram

MULTIPROC_ENV = "PROMETHEUS_MULTIPROC_DIR"
PREFIX = "cable_ingest_"
# 0.1 ms (a short cable's parse) to 10 s (a slow sink's batch), about three steps a decade
STAGE_BUCKETS = (0.0001, 0.00025, 0.0005, 0.001, 0.0025, 0.005, 0.01, 0.025, 0.05, 0.1,
                 0.25, 0.5, 1.0, 2.5, 5.0, 10.0)  # fmt: skip


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


def local_registry() -> CollectorRegistry | None:
    """This process's own counters when they are kept in memory (no metrics folder), else None."""
    if _metrics is None or _metrics.multiprocess:
        return None
    return _metrics.registry
