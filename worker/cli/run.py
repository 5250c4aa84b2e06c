"""The all-in-one job behind ``cable-ingest run``: start workers, enqueue, wait, summarise.

Workers are real Celery worker processes (``cable-ingest worker`` in a child process, its log in
``var_dir/logs``) on the configured broker: the embedded filesystem broker by default, Redis
when ``CABLE_INGEST_BROKER_URL`` says so. The job waits until every enqueued envelope has an
outcome in the database (a storage receipt or a dead letter), showing its progress, then
until the broker holds no message of the run unacknowledged (so that the workers' log and
counters are complete), and returns: the workers are told to stop (SIGTERM) and finish their
warm shutdown in the background. Celery's own shutdown takes 2-5 s with nothing left to do
(the embedded broker's consumer loop notices the signal after up to 2 s, billiard's pool
threads sleep 0.8-1 s between checks), which ``run`` used to wait out with nothing printed
(``make bench``: bench/run_exit.py).

If the workers die, or nothing settles for ``stall_timeout`` seconds, it stops waiting and
reports the envelopes that have no outcome and what the broker still holds, so that nothing
is lost silently. On Ctrl-C it stops the workers warmly (the batches they started finish;
a second Ctrl-C stops them at once, their batches going back on the queue; a third kills
them), then reports the same. What is still queued stays queued: a ``cable-ingest worker``
with the same settings finishes it.
"""

from __future__ import annotations

import ctypes
import os
import signal
import subprocess
import sys
import time
from collections import Counter
from collections.abc import Mapping, Sequence
from contextlib import closing
from datetime import UTC, datetime
from typing import IO

from celery import Celery

from worker.cli.progress import Meter
from worker.cli.run_summary import OVERLAP, DeadLettered, Queued, RunSummary, Stopped
from worker.errors import CableIngestError
from worker.intake.enqueue import EnqueueSummary, enqueue_paths
from worker.intake.producer import Producer
from worker.intake.sources import count_hint
from worker.queue.app import create_app, prepare_broker
from worker.queue.brokers import broker_for
from worker.queue.names import INTAKE_QUEUE, REPARSE_QUEUE, consumed_queues
from worker.routing.config import Config, load_config, storage_sinks
from worker.settings import PREFIX, Settings
from worker.sinks import build_sinks
from worker.storage import DeadLetterStore, ReceiptStore, upgrade

POLL_S = 0.2  # how often the database is asked for new outcomes
SETTLE_POLL_S = 0.1  # how often the broker is asked whether the run's messages are acknowledged
ACK_WAIT_S = 10.0  # at most this long for the last acknowledgements once every outcome is in
STOP_TIMEOUT_S = 60
PR_SET_PDEATHSIG = 1  # linux/prctl.h


def worker_env(settings: Settings) -> dict[str, str]:
    """A child worker's environment: this process's, its CABLE_INGEST_* replaced by
    ``settings`` (what the command line resolved, ``--config`` included)."""
    inherited = {k: v for k, v in os.environ.items() if not k.startswith(PREFIX)}
    return inherited | settings.to_env()


def start_workers(
    config: Config,
    concurrency: int,
    log: IO[bytes],
    env: Mapping[str, str] | None = None,
    *,
    own_group: bool = False,
) -> subprocess.Popen[bytes]:
    """Start ``cable-ingest worker`` as a child process consuming intake, every sink and
    reparse, with this process's environment (or ``env``). On Linux the worker is told to
    stop (SIGTERM: a warm shutdown) when this process dies, even by SIGKILL: a killed
    ``run`` or ``reparse`` leaves no workers behind. With ``own_group`` the worker gets a
    process group of its own, so that a Ctrl-C on the terminal reaches this process only and
    this process decides how the workers stop."""
    queues = ",".join(consumed_queues(config))
    command = [sys.executable, "-m", "worker", "worker", "--queues", queues]
    command += ["--concurrency", str(concurrency)]
    environ = dict(os.environ if env is None else env)
    return subprocess.Popen(
        command,
        stdout=log,
        stderr=subprocess.STDOUT,
        env=environ,
        process_group=0 if own_group else None,
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


def release_workers(process: subprocess.Popen[bytes]) -> None:
    """Tell idle workers to stop (SIGTERM: a warm shutdown) without waiting for them: they
    hold no unacknowledged message of the run, and Celery's shutdown takes seconds."""
    if process.poll() is None:
        process.send_signal(signal.SIGTERM)


def stop_workers_on_interrupt(process: subprocess.Popen[bytes], stream: IO[str]) -> None:
    """After a Ctrl-C: a warm shutdown (the batches started finish), waited for; a further
    Ctrl-C makes it a cold one (SIGQUIT: started batches are cancelled and go back on the
    queue), the next kills the workers (what they held comes back: at once on the embedded
    broker, after the visibility timeout on Redis)."""
    steps = [
        (
            signal.SIGQUIT,
            "stopping the workers at once: the batches they started go back on the queue",
        ),
        (signal.SIGKILL, "killing the workers: what they held comes back on the queue later"),
    ]

    def escalate(_signum: int, _frame: object) -> None:
        if steps and process.poll() is None:
            sent, line = steps.pop(0)
            print(line, file=stream, flush=True)
            process.send_signal(sent)

    previous = signal.signal(signal.SIGINT, escalate)
    try:
        if process.poll() is None:
            print(
                "interrupted: stopping the workers; they finish the batches they started"
                " (Ctrl-C again: stop them at once)",
                file=stream,
                flush=True,
            )
            process.send_signal(signal.SIGTERM)
        process.wait()
    finally:
        signal.signal(signal.SIGINT, previous)


def run_job(
    paths: Sequence[str],
    settings: Settings,
    *,
    concurrency: int,
    stall_timeout: float = 300.0,
    strict: bool = False,
    stream: IO[str] | None = None,
    interactive: bool | None = None,
) -> RunSummary:
    """Ingest everything under ``paths`` through real workers and wait for every outcome.
    Rejections, duplicates and progress go to ``stream`` (stderr); a live line when
    ``interactive`` (default: ``stream`` is a terminal), periodic lines otherwise."""
    out = stream or sys.stderr
    live = out.isatty() if interactive is None else interactive
    started = time.monotonic()
    config = load_config(settings.config_file)
    prepare_broker(settings)
    upgrade(settings.database_url)
    build_sinks(config, settings, ReceiptStore(settings.database_url))  # options and secrets
    app = create_app(settings, config)
    queues = [queue for queue in consumed_queues(config) if queue != REPARSE_QUEUE]
    logs = settings.var_dir / "logs"
    logs.mkdir(parents=True, exist_ok=True)
    log_path = logs / f"worker-{datetime.now(UTC):%Y%m%dT%H%M%SZ}.log"
    summary = RunSummary(EnqueueSummary(), worker_log=str(log_path))
    with log_path.open("ab") as log:
        process = start_workers(config, concurrency, log, worker_env(settings), own_group=True)
        try:
            baseline = _unacked(app, settings, queues)
            summary.enqueue = _enqueue(paths, settings, app, strict=strict, out=out, live=live)
            summary.missing = summary.enqueue.message_ids  # until outcomes are read
            if summary.enqueue.stopped == "interrupted":
                raise KeyboardInterrupt
            with closing(
                Meter("outcomes", summary.enqueue.enqueued, stream=out, interactive=live)
            ) as meter:
                summary.stopped = _wait(summary, config, settings, process, stall_timeout, meter)
            summary.seconds = time.monotonic() - started
            if summary.stopped is None:
                notifying = any(sink.notifies for sink in config.sinks.values())
                wait = stall_timeout if notifying else ACK_WAIT_S
                _settle(app, settings, queues, baseline, process, time.monotonic() + wait)
                release_workers(process)
            else:
                stop_workers(process)
        except KeyboardInterrupt:
            summary.stopped = "interrupted"
            summary.seconds = time.monotonic() - started
            stop_workers_on_interrupt(process, out)
        except BaseException:
            stop_workers(process)
            raise
    try:
        _reconcile(summary, settings, config)
        if summary.missing:
            summary.queued = _queued(app, settings)
    except KeyboardInterrupt:
        summary.stopped = "interrupted"
        print("interrupted again: the outcomes below are as last seen", file=out, flush=True)
    return summary


def _enqueue(
    paths: Sequence[str], settings: Settings, app: Celery, *, strict: bool, out: IO[str], live: bool
) -> EnqueueSummary:
    """Enqueue with a progress meter of the inputs read; each rejection and duplicate named."""
    with closing(Meter("inputs", count_hint(paths), stream=out, interactive=live)) as meter:

        def waiting(depth: int) -> None:
            meter.update(meter.done, f"waiting: intake queue holds ~{depth:,} cables")

        def retrying(line: str) -> None:
            meter.write(f"cable-ingest: {line}")

        with Producer(settings, app=app, on_wait=waiting, on_retry=retrying) as producer:
            return enqueue_paths(
                paths,
                producer,
                on_rejected=lambda rejection: meter.write(rejection.line()),
                on_duplicate=lambda duplicate: meter.write(duplicate.line()),
                on_input=meter.advance,
                strict=strict,
            )


def _terminal(config: Config) -> set[str]:
    """The dead-letter stages that are an input's final outcome (notification sinks' are not)."""
    return {"intake", "parse", "validate", *(f"sink:{name}" for name in storage_sinks(config))}


def _wait(  # noqa: PLR0917 - private step of run_job
    summary: RunSummary,
    config: Config,
    settings: Settings,
    process: subprocess.Popen[bytes],
    stall_timeout: float,
    meter: Meter,
) -> Stopped | None:
    """Until every enqueued envelope has an outcome; or why not (the workers exited, or no
    outcome came for ``stall_timeout`` seconds)."""
    storage = storage_sinks(config)[0]
    terminal = _terminal(config)
    receipts = ReceiptStore(settings.database_url)
    letters = DeadLetterStore(settings.database_url)
    pending = set(summary.enqueue.message_ids)
    total, stored, dead = len(pending), 0, 0
    last_progress, cursor = time.monotonic(), summary.since
    try:
        while True:
            newest, before = cursor, len(pending)
            for message_id, at in receipts.since(storage, cursor):
                newest = max(newest, at)
                if message_id in pending:
                    pending.discard(message_id)
                    stored += 1
            for letter in letters.seen_since(cursor):
                newest = max(newest, letter["last_seen"])
                if letter["message_id"] in pending and letter["stage"] in terminal:
                    pending.discard(letter["message_id"])
                    dead += 1
            cursor = max(cursor, newest - OVERLAP)
            detail = f"stored {stored:,}, dead-lettered {dead:,}, waiting {len(pending):,}"
            meter.update(total - len(pending), detail)
            if len(pending) < before:
                last_progress = time.monotonic()
            if not pending:
                return None
            if process.poll() is not None:
                meter.write(
                    f"the workers exited with code {process.returncode}; see the worker log"
                )
                return "workers_exited"
            if time.monotonic() - last_progress > stall_timeout:
                meter.write(f"no outcome for {stall_timeout:.0f} s; giving up waiting")
                return "stalled"
            time.sleep(POLL_S)
    finally:
        summary.missing = [m for m in summary.enqueue.message_ids if m in pending]
        receipts.close()
        letters.close()


def _unacked(app: Celery, settings: Settings, queues: Sequence[str]) -> dict[str, int]:
    """Messages of ``queues`` taken and not acknowledged now (others', before the run)."""
    try:
        infos = broker_for(settings).queues(app, queues, time.time())
    except CableIngestError:
        return {}
    return {info.name: info.unacked for info in infos}


def _settle(  # noqa: PLR0917 - private step of run_job
    app: Celery,
    settings: Settings,
    queues: Sequence[str],
    baseline: Mapping[str, int],
    process: subprocess.Popen[bytes],
    deadline: float,
) -> None:
    """Until ``queues`` hold nothing waiting and no more unacknowledged messages than before
    the run: every task of the run has finished (its log lines and counters written, its
    notifications delivered or dead-lettered) and been acknowledged. Bounded by ``deadline``:
    what is left then is finished by the workers' warm shutdown."""
    broker = broker_for(settings)
    while process.poll() is None and time.monotonic() < deadline:
        try:
            infos = broker.queues(app, queues, time.time())
        except CableIngestError:
            return
        if all(i.depth == 0 and i.unacked <= baseline.get(i.name, 0) for i in infos):
            return
        time.sleep(SETTLE_POLL_S)


def _reconcile(summary: RunSummary, settings: Settings, config: Config) -> None:
    """Every enqueued envelope's outcome, read once more from the database: stored (by
    outcome), dead-lettered (named, with the dead letter's id), or none yet (missing); and
    what the notification sinks made of them."""
    storage = storage_sinks(config)[0]
    terminal = _terminal(config)
    ids = summary.enqueue.message_ids
    order = {message_id: n for n, message_id in enumerate(ids)}
    receipts = ReceiptStore(settings.database_url)
    letters = DeadLetterStore(settings.database_url)
    try:
        stored = receipts.received(ids, storage)
        summary.stored = Counter(receipts.outcomes(stored, storage))
        found = letters.for_messages(ids)
        dead: dict[str, DeadLettered] = {}
        for letter in found:
            message_id = letter["message_id"]
            if letter["stage"] in terminal and message_id not in stored:
                dead[message_id] = DeadLettered(
                    summary.enqueue.sources[message_id],
                    message_id,
                    letter["id"],
                    letter["stage"],
                    letter["error_class"],
                    letter["reason"],
                )
        summary.dead_inputs = sorted(dead.values(), key=lambda d: order[d.message_id])
        summary.dead_lettered = Counter(f"{d.stage}: {d.error_class}" for d in summary.dead_inputs)
        summary.missing = [m for m in ids if m not in stored and m not in dead]
        failed = Counter(letter["stage"] for letter in found)
        for sink in (s.name for s in config.sinks.values() if s.notifies):
            outcomes = Counter(receipts.outcomes(ids, sink))
            if failed[f"sink:{sink}"]:
                outcomes["dead-lettered"] = failed[f"sink:{sink}"]
            summary.notified[sink] = outcomes
    finally:
        receipts.close()
        letters.close()


def _queued(app: Celery, settings: Settings) -> Queued:
    """What the intake queue holds now, or why the broker could not say."""
    try:
        [intake] = broker_for(settings).queues(app, [INTAKE_QUEUE], time.time())
    except CableIngestError as error:
        return Queued(None, None, str(error))
    return Queued(intake.depth, intake.unacked)
