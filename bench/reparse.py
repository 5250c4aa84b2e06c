"""`make bench` (reparse part): re-deriving stored cables from their originals, through the queue.

Called by :mod:`bench.pipeline` after it has stored ``warm_up + count`` cables end to end in a
fresh environment (Redis + SQLite, as the reference end-to-end row). Every record is then marked
as derived by an older parser (``parser_version`` 0.9.0), as after a parser upgrade: reparse
re-derives each one and replaces it in place (unchanged content, newer parser), the realistic
and dearer case, since an up-to-date record would be read and left alone. One worker with
``processes`` processes consumes; it is warmed by re-deriving the ``warm_up`` cables first (by
reference id), then ``reparse --older-than`` the current parser version (:func:`worker.cli.reparse_job.reparse_job`,
in this process, relying on the running worker as on any Redis) takes the ``count`` others.

The time runs from the start of the job (choosing the run's items and sending them included) to
the last item settled (the items' ``done_at``); worker CPU is the worker's main and pool
processes' CPU time meanwhile, machine busy the share of all cores used by any process.
"""

from __future__ import annotations

import time
from dataclasses import dataclass

import psutil
from sqlalchemy import create_engine, text

from worker.cli.reparse_job import reparse_job
from worker.cli.run import start_workers, stop_workers
from worker.model import PARSER_VERSION
from worker.routing.config import load_config
from worker.settings import Settings
from worker.storage.engine import parse_utc
from worker.storage.reparse import UNCHANGED, Selection

OLDER = "0.9.0"
CURRENT = PARSER_VERSION


@dataclass(frozen=True)
class Measured:
    """One reparse run."""

    cables: int
    seconds: float
    cpu_s: float  # the worker's processes
    busy: float  # share of the machine's cores busy


def _cpu(process: psutil.Process) -> float:
    processes = [process, *process.children(recursive=True)]
    return sum(p.cpu_times().user + p.cpu_times().system for p in processes)


def _machine() -> float:
    times = psutil.cpu_times()
    return float(times.user + times.nice + times.system)


def _age_and_pick(settings: Settings, warm_up: int) -> list[str]:
    """Mark every record as an older parser's; the reference ids of ``warm_up`` of them."""
    engine = create_engine(settings.database_url)
    try:
        with engine.begin() as conn:
            conn.execute(text("UPDATE cables SET parser_version = :v"), {"v": OLDER})
            rows = conn.execute(
                text("SELECT reference_id FROM cables ORDER BY reference_id LIMIT :n"),
                {"n": warm_up},
            )
            return [str(reference_id) for (reference_id,) in rows]
    finally:
        engine.dispose()


def _job(settings: Settings, selection: Selection, expected: int) -> float:
    """Run one reparse with the running workers; the wall-clock time of its last item."""
    summary = reparse_job(settings, selection, workers=0, stall_timeout=120, echo=lambda _: None)
    if summary.counts.get(UNCHANGED, 0) != expected or not summary.ok:
        raise SystemExit(f"bench: reparse gave {summary.as_dict()}; expected {expected} unchanged")
    engine = create_engine(settings.database_url)
    try:
        with engine.connect() as conn:
            last = conn.execute(
                text("SELECT max(done_at) FROM reparse_items WHERE run_id = :run"),
                {"run": summary.run_id},
            ).scalar_one()
    finally:
        engine.dispose()
    finished = parse_utc(last)
    assert finished is not None
    return finished.timestamp()


def measure_reparse(env: dict[str, str], warm_up: int, count: int, processes: int) -> Measured:
    """Re-derive ``count`` stored cables of an older parser; see the module's docstring."""
    settings = Settings.from_env(env)
    warm = _age_and_pick(settings, warm_up)
    log_path = settings.var_dir / "reparse-worker.log"
    with log_path.open("ab") as log:
        process = start_workers(load_config(None), processes, log, env)
        try:
            _job(settings, Selection(reference_ids=tuple(warm)), len(warm))
            worker = psutil.Process(process.pid)
            cpu, busy = _cpu(worker), _machine()
            started, clock = time.time(), time.monotonic()
            finished = _job(settings, Selection(older_than=CURRENT), count)
            cpu, busy = _cpu(worker) - cpu, _machine() - busy
            window = (time.monotonic() - clock) * (psutil.cpu_count() or 1)
        finally:
            stop_workers(process)
    return Measured(count, finished - started, cpu, busy / window)
