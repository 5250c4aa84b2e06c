"""The job behind ``cable-ingest reparse``: start or resume a run, send what is not done to the
``reparse`` queue, wait until every item is settled, summarise.

Messages carry batches of reference ids (``BATCH_SIZE`` each), never texts: the workers read
the originals themselves. Workers: on the embedded broker nobody consumes unless someone starts
a worker, so by default the job starts ``WORKER_CONCURRENCY`` worker processes there, like
``run`` (their log in ``var_dir/logs``), and stops them at the end; on Redis it relies on the
workers already running (it warns when none answers). ``workers`` overrides both: N processes
of its own, or 0 for none.

Killed or interrupted, the job leaves its run unfinished: the same selection run again resumes
it (and says so), sending only the items not yet done; workers skip any item done meanwhile.
"""

from __future__ import annotations

import functools
import subprocess
import time
from collections.abc import Callable
from contextlib import ExitStack
from dataclasses import dataclass, field
from datetime import UTC, datetime
from typing import Any

from worker.cli.dependencies import patiently
from worker.cli.run import start_workers, stop_workers, worker_env
from worker.ops.inspect import workers_online
from worker.queue.app import create_app, prepare_broker
from worker.queue.brokers import Publisher, broker_for
from worker.queue.names import REPARSE_QUEUE, REPARSE_TASK
from worker.routing.config import load_config
from worker.settings import Settings
from worker.storage import upgrade
from worker.storage.reparse import (
    FAILED,
    NO_ORIGINAL,
    REVISED,
    UNCHANGED,
    Progress,
    ReparseStore,
    Selection,
)

POLL_S = 0.25
SHOWN_IDS = 20  # reference ids listed per line for people; --json lists them all


@dataclass(slots=True)
class ReparseSummary:
    """What became of every item of the run."""

    run_id: str
    selection: str
    resumed: bool
    total: int
    done_before: int  # items settled before this call (a resumed run)
    enqueued: int = 0  # reference ids sent by this call
    counts: dict[str, int] = field(default_factory=dict)
    no_original: list[str] = field(default_factory=list)
    not_stored: list[str] = field(default_factory=list)
    seconds: float = 0.0
    worker_log: str | None = None

    @property
    def pending(self) -> int:
        """Items with no outcome yet."""
        return self.total - sum(self.counts.values())

    @property
    def ok(self) -> bool:
        """Everything was selected and done, nothing failed and every original was there."""
        return not (self.pending or self.counts.get(FAILED) or self.no_original or self.not_stored)

    def as_dict(self) -> dict[str, Any]:
        """The summary for scripts."""
        return {
            "run_id": self.run_id,
            "selection": self.selection,
            "resumed": self.resumed,
            "total": self.total,
            "done_before": self.done_before,
            "enqueued": self.enqueued,
            "unchanged": self.counts.get(UNCHANGED, 0),
            "revised": self.counts.get(REVISED, 0),
            "failed": self.counts.get(FAILED, 0),
            "no_original": self.no_original,
            "not_stored": self.not_stored,
            "pending": self.pending,
            "seconds": round(self.seconds, 3),
            "worker_log": self.worker_log,
        }

    def lines(self) -> list[str]:
        """The summary for people."""
        done_now = sum(self.counts.values()) - self.done_before
        rate = done_now / self.seconds if self.seconds > 0 else 0.0
        resumed = f"; resumed, {self.done_before:,} done before" if self.resumed else ""
        lines = [
            f"reparse run:       {self.run_id} ({self.selection}{resumed})",
            f"selected:          {self.total:,}",
            f"enqueued:          {self.enqueued:,}",
            f"unchanged:         {self.counts.get(UNCHANGED, 0):,}",
            f"revised:           {self.counts.get(REVISED, 0):,}",
            f"failed:            {self.counts.get(FAILED, 0):,}"
            + (" (dead letters: cable-ingest dlq list)" if self.counts.get(FAILED) else ""),
            f"no original:       {len(self.no_original):,}"
            + (" (stored before originals were kept)" if self.no_original else ""),
        ]
        lines += _listed(self.no_original)
        if self.not_stored:
            lines.append(f"not stored:        {len(self.not_stored):,}")
            lines += _listed(self.not_stored)
        if self.pending:
            lines.append(f"NO OUTCOME:        {self.pending:,} (run the same command to resume)")
        started = ", workers' start-up included" if self.worker_log else ""
        lines.append(f"time:              {self.seconds:,.1f} s ({rate:,.0f} cables/s{started})")
        if self.worker_log:
            lines.append(f"worker log:        {self.worker_log}")
        return lines


def _listed(ids: list[str]) -> list[str]:
    if not ids:
        return []
    more = f" and {len(ids) - SHOWN_IDS:,} more" if len(ids) > SHOWN_IDS else ""
    return [f"  {', '.join(ids[:SHOWN_IDS])}{more}"]


def reparse_job(
    settings: Settings,
    selection: Selection,
    *,
    workers: int | None = None,
    stall_timeout: float = 300.0,
    echo: Callable[[str], None] = print,
    on_progress: Callable[[Progress], None] | None = None,
) -> ReparseSummary:
    """Re-derive the selected cables through the workers and wait for every outcome."""
    started = time.monotonic()
    upgrade(settings.database_url)
    prepare_broker(settings)
    ledger = ReparseStore(settings.database_url)
    try:
        run = ledger.start(selection)
        progress = run.progress
        if run.resumed:
            echo(
                f"resuming reparse run {progress.run_id} of {progress.selection}, started"
                f" {progress.started_at:%Y-%m-%d %H:%M:%S}Z: {progress.done:,} of"
                f" {progress.total:,} done"
            )
        summary = ReparseSummary(
            progress.run_id, progress.selection, run.resumed, progress.total, progress.done,
            not_stored=list(run.not_stored),
        )  # fmt: skip
        if on_progress is not None:
            on_progress(progress)
        with ExitStack() as stack:  # the workers started here stop when it closes
            if progress.pending:
                process, summary.worker_log = _workers(settings, workers, stack, echo)
                summary.enqueued = _enqueue(settings, ledger, progress.run_id)
                progress = _wait(
                    ledger, progress, process,
                    stall_timeout=stall_timeout, echo=echo, on_progress=on_progress,
                )  # fmt: skip
            if progress.pending == 0:
                ledger.finish(progress.run_id)
            summary.seconds = time.monotonic() - started
        summary.counts = dict(progress.counts)
        summary.no_original = ledger.with_outcome(progress.run_id, NO_ORIGINAL)
        return summary
    finally:
        ledger.close()


def _workers(
    settings: Settings, workers: int | None, stack: ExitStack, echo: Callable[[str], None]
) -> tuple[subprocess.Popen[bytes] | None, str | None]:
    """Start worker processes (stopped when ``stack`` closes) or rely on running ones; the
    started worker and the path of its log."""
    # with broadcast (Redis), workers run elsewhere; the embedded broker's run here
    shared = broker_for(settings).broadcast
    count = workers if workers is not None else (0 if shared else settings.worker_concurrency)
    if count == 0:
        if not shared:  # no broadcast on the embedded broker: nobody can be asked
            echo("--workers 0: the items wait on the reparse queue until a worker consumes it")
        elif not workers_online(create_app(settings), settings):
            echo(
                "no worker answered: the items wait on the reparse queue until one consumes it"
                " (start `cable-ingest worker`, or pass --workers N)"
            )
        return None, None
    logs = settings.var_dir / "logs"
    logs.mkdir(parents=True, exist_ok=True)
    path = logs / f"reparse-{datetime.now(UTC):%Y%m%dT%H%M%SZ}.log"
    log = stack.enter_context(path.open("ab"))
    process = start_workers(load_config(settings.config_file), count, log, worker_env(settings))
    stack.callback(stop_workers, process)
    return process, str(path)


def _enqueue(settings: Settings, ledger: ReparseStore, run_id: str) -> int:
    """Send the run's pending reference ids, ``batch_size`` per message; how many. A broker
    that does not answer is waited for (UnavailableError after the wait: the run resumes)."""
    publisher = Publisher(create_app(settings))
    sent = 0
    try:
        for batch in ledger.pending(run_id, settings.batch_size):
            send = functools.partial(
                publisher.publish, REPARSE_TASK, [run_id, batch], REPARSE_QUEUE
            )
            patiently(settings, send)
            sent += len(batch)
    finally:
        publisher.close()
    return sent


def _wait(
    ledger: ReparseStore,
    progress: Progress,
    process: subprocess.Popen[bytes] | None,
    *,
    stall_timeout: float,
    echo: Callable[[str], None],
    on_progress: Callable[[Progress], None] | None,
) -> Progress:
    """Until every item is settled, the started workers exit, or nothing moves for
    ``stall_timeout`` seconds; the last progress read."""
    last_done, last_move = progress.done, time.monotonic()
    while progress.pending:
        time.sleep(POLL_S)
        progress = ledger.progress(progress.run_id)
        if on_progress is not None:
            on_progress(progress)
        if progress.done > last_done:
            last_done, last_move = progress.done, time.monotonic()
        if progress.pending and process is not None and process.poll() is not None:
            echo(f"the workers exited with code {process.returncode}; see the worker log")
            break
        if progress.pending and time.monotonic() - last_move > stall_timeout:
            echo(f"no item settled for {stall_timeout:.0f} s; giving up waiting")
            break
    return progress
