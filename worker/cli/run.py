"""The all-in-one job behind ``cable-ingest run``: start workers, enqueue, wait, summarise.

Workers are real Celery worker processes (``cable-ingest worker`` in a child process, its log in
``var_dir/logs``) on the configured broker: the embedded filesystem broker by default, Redis
when ``CABLE_INGEST_BROKER_URL`` says so. The job waits until every enqueued envelope has an
outcome in the database (a storage receipt or a dead letter), then stops the workers. If the
workers die, or nothing settles for ``stall_timeout`` seconds, it stops waiting and reports the
envelopes that have no outcome, so that nothing is lost silently.
"""

from __future__ import annotations

import ctypes
import os
import signal
import subprocess
import sys
import time
from collections import Counter
from collections.abc import Callable, Mapping, Sequence
from dataclasses import dataclass, field
from datetime import UTC, datetime, timedelta
from pathlib import Path
from typing import IO

from worker.cli.dependencies import say
from worker.intake.enqueue import EnqueueSummary, enqueue_paths
from worker.intake.producer import Producer
from worker.queue.app import create_app, prepare_broker
from worker.queue.depths import queue_depth
from worker.queue.names import consumed_queues, sink_queue
from worker.routing.config import Config, load_config, storage_sinks
from worker.settings import PREFIX, Settings
from worker.sinks import build_sinks
from worker.storage import DeadLetterStore, ReceiptStore, upgrade

POLL_S = 0.5
OVERLAP = timedelta(seconds=5)  # commits may land with timestamps a little in the past
STOP_TIMEOUT_S = 60
PR_SET_PDEATHSIG = 1  # linux/prctl.h


@dataclass(slots=True)
class RunSummary:
    """What became of every input of one run."""

    enqueue: EnqueueSummary
    stored: Counter[str] = field(default_factory=Counter)
    dead_lettered: Counter[str] = field(default_factory=Counter)
    missing: list[str] = field(default_factory=list)
    notified: dict[str, Counter[str]] = field(default_factory=dict)
    seconds: float = 0.0
    worker_log: str = ""

    @property
    def complete(self) -> bool:
        """Every enqueued envelope has an outcome."""
        return not self.missing

    def as_dict(self) -> dict[str, object]:
        """The summary for scripts."""
        return {
            **self.enqueue.as_dict(),
            "stored": dict(self.stored),
            "dead_lettered": dict(self.dead_lettered),
            "missing": self.missing,
            "notified": {sink: dict(outcomes) for sink, outcomes in self.notified.items()},
            "seconds": round(self.seconds, 3),
            "worker_log": self.worker_log,
        }

    def lines(self) -> list[str]:
        """The summary for people."""
        rate = self.enqueue.enqueued / self.seconds if self.seconds > 0 else 0.0
        lines = self.enqueue.lines()
        lines.append(f"stored:            {sum(self.stored.values()):,}")
        lines += [f"  {k}: {v:,}" for k, v in sorted(self.stored.items())]
        lines.append(f"dead-lettered:     {sum(self.dead_lettered.values()):,}")
        lines += [f"  {k}: {v:,}" for k, v in sorted(self.dead_lettered.items())]
        for sink, outcomes in self.notified.items():
            shown = ", ".join(f"{k} {v:,}" for k, v in sorted(outcomes.items())) or "nothing"
            lines.append(f"sink {sink + ':':<13}{shown}")
        if self.missing:
            lines.append(f"NO OUTCOME:        {len(self.missing):,} (e.g. {self.missing[0]})")
        lines.append(
            f"time to outcomes:  {self.seconds:,.1f} s ({rate:,.0f} cables/s, workers' start-up included)"
        )
        lines.append(f"worker log:        {self.worker_log}")
        return lines


def worker_env(settings: Settings) -> dict[str, str]:
    """A child worker's environment: this process's, its CABLE_INGEST_* replaced by
    ``settings`` (what the command line resolved, ``--config`` included)."""
    inherited = {k: v for k, v in os.environ.items() if not k.startswith(PREFIX)}
    return inherited | settings.to_env()


def start_workers(
    config: Config, concurrency: int, log: IO[bytes], env: Mapping[str, str] | None = None
) -> subprocess.Popen[bytes]:
    """Start ``cable-ingest worker`` as a child process consuming intake, every sink and
    reparse, with this process's environment (or ``env``). On Linux the worker is told to
    stop (SIGTERM: a warm shutdown) when this process dies, even by SIGKILL: a killed
    ``run`` or ``reparse`` leaves no workers behind."""
    queues = ",".join(consumed_queues(config))
    command = [sys.executable, "-m", "worker", "worker", "--queues", queues]
    command += ["--concurrency", str(concurrency)]
    environ = dict(os.environ if env is None else env)
    return subprocess.Popen(
        command,
        stdout=log,
        stderr=subprocess.STDOUT,
        env=environ,
        preexec_fn=_stop_with_parent if sys.platform == "linux" else None,  # noqa: PLW1509 - one libc call, no lock taken
    )


def _stop_with_parent() -> None:
    """In the child, before exec: SIGTERM when the parent dies (prctl PR_SET_PDEATHSIG)."""
    libc = ctypes.CDLL(None, use_errno=True)
    libc.prctl(PR_SET_PDEATHSIG, signal.SIGTERM)


def stop_workers(process: subprocess.Popen[bytes]) -> None:
    """Warm shutdown (SIGTERM: finish the running tasks), then kill after a timeout."""
    if process.poll() is not None:
        return
    process.send_signal(signal.SIGTERM)
    try:
        process.wait(STOP_TIMEOUT_S)
    except subprocess.TimeoutExpired:
        process.kill()
        process.wait()


def run_job(
    paths: Sequence[str],
    settings: Settings,
    *,
    concurrency: int,
    stall_timeout: float = 300.0,
    echo: Callable[[str], None] = print,
) -> RunSummary:
    """Ingest everything under ``paths`` through real workers and wait for every outcome."""
    started = time.monotonic()
    since = datetime.now(UTC) - OVERLAP
    config = load_config(settings.config_file)
    prepare_broker(settings)
    upgrade(settings.database_url)
    build_sinks(config, settings, ReceiptStore(settings.database_url))  # options and secrets
    logs = settings.var_dir / "logs"
    logs.mkdir(parents=True, exist_ok=True)
    log_path = logs / f"worker-{datetime.now(UTC):%Y%m%dT%H%M%SZ}.log"
    with log_path.open("ab") as log:
        process = start_workers(config, concurrency, log, worker_env(settings))
        try:
            with Producer(settings, app=create_app(settings, config), on_retry=say) as producer:
                enqueued = enqueue_paths(
                    paths, producer, on_rejected=lambda error: echo(f"rejected: {error}")
                )
            summary = RunSummary(enqueued, worker_log=str(Path(log_path)))
            _wait(summary, settings, config, process, since, stall_timeout, echo)
            summary.seconds = time.monotonic() - started
            _drain_notifications(summary, settings, config, process, stall_timeout)
        finally:
            stop_workers(process)
    return summary


def _wait(  # noqa: PLR0917 - private step of run_job
    summary: RunSummary,
    settings: Settings,
    config: Config,
    process: subprocess.Popen[bytes],
    since: datetime,
    stall_timeout: float,
    echo: Callable[[str], None],
) -> None:
    storage = storage_sinks(config)[0]
    terminal = {"intake", "parse", "validate", f"sink:{storage}"}
    receipts = ReceiptStore(settings.database_url)
    letters = DeadLetterStore(settings.database_url)
    pending = set(summary.enqueue.message_ids)
    settled: dict[str, str] = {}
    settled_before, last_progress = 0, time.monotonic()
    cursor = since
    try:
        while pending:
            newest = cursor
            for message_id, at in receipts.since(storage, cursor):
                newest = max(newest, at)
                if message_id in pending:
                    pending.discard(message_id)
                    settled[message_id] = "stored"
            for letter in letters.seen_since(cursor):
                newest = max(newest, letter["last_seen"])
                if letter["message_id"] in pending and letter["stage"] in terminal:
                    pending.discard(letter["message_id"])
                    settled[letter["message_id"]] = f"{letter['stage']}: {letter['error_class']}"
            cursor = max(cursor, newest - OVERLAP)
            if len(settled) > settled_before:
                settled_before, last_progress = len(settled), time.monotonic()
            if not pending:
                break
            if process.poll() is not None:
                echo(f"the workers exited with code {process.returncode}; see the worker log")
                break
            if time.monotonic() - last_progress > stall_timeout:
                echo(f"no outcome for {stall_timeout:.0f} s; giving up waiting")
                break
            time.sleep(POLL_S)
        summary.missing = sorted(pending)
        stored = (message_id for message_id, how in settled.items() if how == "stored")
        summary.stored = Counter(receipts.outcomes(stored, storage))
        summary.dead_lettered = Counter(how for how in settled.values() if how != "stored")
    finally:
        receipts.close()
        letters.close()


def _drain_notifications(
    summary: RunSummary,
    settings: Settings,
    config: Config,
    process: subprocess.Popen[bytes],
    stall_timeout: float,
) -> None:
    """Wait for the notification sinks' queues to empty; count their outcomes for this run."""
    sinks = [sink.name for sink in config.sinks.values() if sink.notifies]
    if not sinks:
        return
    app = create_app(settings, config)
    deadline = time.monotonic() + stall_timeout
    empty_polls = 0
    while empty_polls < 2 and process.poll() is None and time.monotonic() < deadline:
        waiting = sum(queue_depth(app, sink_queue(name)) for name in sinks)
        empty_polls = empty_polls + 1 if waiting == 0 else 0
        time.sleep(POLL_S)
    receipts = ReceiptStore(settings.database_url)
    letters = DeadLetterStore(settings.database_url)
    try:
        ids = summary.enqueue.message_ids
        failed = Counter(x["stage"] for x in letters.for_messages(ids))
        for name in sinks:
            outcomes = Counter(receipts.outcomes(ids, name))
            if failed[f"sink:{name}"]:
                outcomes["dead-lettered"] = failed[f"sink:{name}"]
            summary.notified[name] = outcomes
    finally:
        receipts.close()
        letters.close()
