"""`make bench` (pipeline part): the queue end to end, with its baselines, in one run.

Measured on this machine, each on a fresh broker database and a fresh storage database:

1. parse + validate on one core (the ceiling of one worker process);
2. a no-op task through the same Celery app, broker and batching (the ceiling of the queue);
3. end to end: enqueue -> broker -> one worker with 2 processes -> storage, on Redis with
   SQLite and with PostgreSQL, and (4) on the embedded filesystem broker with SQLite;
5. latency at a steady offered load of half the measured Redis + SQLite rate;
6. optionally (``--soak N``), worker memory over an N-cable run (first tenth vs the end);
7. reparse: the cables of an end-to-end Redis + SQLite run re-derived from their originals
   (:mod:`bench.reparse`), and its rate against the end-to-end row's.

Cables come from :mod:`worker.intake.generate` (the dev corpus renumbered, so every run stores new
cables of the corpus's size distribution). Rates are cables per second from the first enqueue
to the last storage receipt, medians over ``--runs`` runs with min-max; latency is enqueue to
storage receipt per cable (the receipt's ``delivered_at`` minus the producer's clock when it
enqueued the cable; both clocks are this host's). Peak RSS is sampled every 0.2 s per pool
process. "Machine busy" is the share of all cores used by any process (workers, producer,
Redis, PostgreSQL) while measuring: near 100%, the run is bound by CPU, not by waiting.
Workers log at INFO as JSON, as in production.
"""

from __future__ import annotations

import argparse
import contextlib
import itertools
import os
import statistics
import subprocess
import sys
import tempfile
import threading
import time
import uuid
from collections.abc import Callable, Iterator, Sequence
from dataclasses import dataclass, field
from datetime import datetime

import psutil
import redis
from celery import Celery
from sqlalchemy import create_engine, text
from sqlalchemy.engine import make_url

from bench.corpus import corpus_files
from bench.parse_speed import full_parse
from bench.parse_speed import measure as measure_parse
from bench.reparse import measure_reparse
from worker.cli.run import start_workers, stop_workers
from worker.intake.envelope import make_envelope
from worker.intake.generate import generate, load_templates
from worker.intake.producer import Producer
from worker.ops.health import last_ack
from worker.queue.app import create_app, prepare_broker, publish
from worker.queue.depths import queue_depth
from worker.routing.config import load_config
from worker.settings import Settings
from worker.storage import upgrade
from worker.storage.engine import parse_utc

REDIS_URL = os.environ.get("CABLE_INGEST_BENCH_REDIS_URL", "redis://127.0.0.1:6379/12")
PG_URL = os.environ.get("CABLE_INGEST_BENCH_PG_URL", "postgresql+psycopg://postgres@127.0.0.1/test")
WARM_UP = 200  # cables stored before the clock starts: worker start-up is not throughput
POLL_S = 0.05
STORED_POLL_S = 0.25
RSS_EVERY_S = 0.2
WORKER_PROCESSES = 2
NOOP_TASK = "cable_ingest.bench.noop"
NOOP_QUEUE = "bench.noop"


@dataclass
class Sample:
    """One run of one scenario."""

    cables: int
    seconds: float
    latencies: list[float] = field(default_factory=list)
    rss_mb: list[float] = field(default_factory=list)  # peak per pool process
    cpu_s: float = 0.0  # CPU time of the worker (main and pool processes) while measuring
    busy: float = 0.0  # share of the machine's cores busy (any process) while measuring

    @property
    def rate(self) -> float:
        """Cables per second."""
        return self.cables / self.seconds


@contextlib.contextmanager
def services(broker: str, database: str) -> Iterator[dict[str, str]]:
    """The environment of one scenario: a flushed Redis database or an embedded broker in a
    temporary folder; a fresh PostgreSQL schema or a new SQLite file there."""
    with contextlib.ExitStack() as stack:
        folder = stack.enter_context(tempfile.TemporaryDirectory(prefix="cable-ingest-bench-"))
        env = {k: v for k, v in os.environ.items() if not k.startswith("CABLE_INGEST_")}
        env |= {"CABLE_INGEST_VAR_DIR": folder, "CABLE_INGEST_LOG_FORMAT": "json"}
        env["CABLE_INGEST_WORKER_CONCURRENCY"] = str(WORKER_PROCESSES)
        if broker == "redis":
            client = stack.enter_context(redis.Redis.from_url(REDIS_URL))
            client.flushdb()
            stack.callback(client.flushdb)
            env["CABLE_INGEST_BROKER_URL"] = REDIS_URL
        if database == "postgresql":
            schema = f"bench_{uuid.uuid4().hex[:10]}"
            admin = create_engine(PG_URL)
            with admin.begin() as conn:
                conn.execute(text(f'CREATE SCHEMA "{schema}"'))

            def drop() -> None:
                with admin.begin() as conn:
                    conn.execute(text(f'DROP SCHEMA "{schema}" CASCADE'))
                admin.dispose()

            stack.callback(drop)
            url = make_url(PG_URL).update_query_dict({"options": f"-csearch_path={schema}"})
            env["CABLE_INGEST_DATABASE_URL"] = url.render_as_string(hide_password=False)
        yield env


class RssSampler:
    """Samples the resident memory of a worker's pool processes in a thread."""

    def __init__(self, pid: int) -> None:
        self.main = psutil.Process(pid)
        self.peaks: dict[int, float] = {}
        self.windows: list[dict[int, float]] = [{}]  # peaks per window (see :meth:`cut`)
        self._stop = threading.Event()
        self._thread = threading.Thread(target=self._run, daemon=True)

    def __enter__(self) -> RssSampler:
        self._thread.start()
        return self

    def __exit__(self, *_: object) -> None:
        self._stop.set()
        self._thread.join()

    def cut(self) -> None:
        """Start a new window of peaks."""
        self.windows.append({})

    def cpu_seconds(self) -> float:
        """User + system CPU time of the worker's main and pool processes so far."""
        processes = [self.main, *self.main.children(recursive=True)]
        return sum(p.cpu_times().user + p.cpu_times().system for p in processes)

    def _run(self) -> None:
        while not self._stop.wait(RSS_EVERY_S):
            with contextlib.suppress(psutil.Error):
                for child in self.main.children(recursive=True):
                    with contextlib.suppress(psutil.Error):
                        mb = child.memory_info().rss / 2**20
                        self.peaks[child.pid] = max(self.peaks.get(child.pid, 0.0), mb)
                        window = self.windows[-1]
                        window[child.pid] = max(window.get(child.pid, 0.0), mb)


def _machine_busy() -> float:
    """CPU seconds spent by every process of the machine so far (user, nice, system, irq)."""
    times = psutil.cpu_times()
    irq = getattr(times, "irq", 0.0) + getattr(times, "softirq", 0.0)  # Linux only
    return float(times.user + times.nice + times.system + irq)


def _storage_receipts(url: str) -> dict[str, datetime]:
    engine = create_engine(url)
    try:
        with engine.connect() as conn:
            rows = conn.execute(
                text("SELECT message_id, delivered_at FROM receipts WHERE sink = 'storage'")
            )
            return {str(m): _aware(at) for m, at in rows}
    finally:
        engine.dispose()


def _aware(value: str | datetime) -> datetime:
    parsed = parse_utc(value)
    assert parsed is not None
    return parsed


def _wait_for(url: str, total: int, timeout: float = 900) -> None:
    """Until ``total`` storage receipts exist. One connection, polled every STORED_POLL_S:
    the rate is read from the receipts' own times, so the poll only costs CPU the workers
    share (a new engine and a count every 50 ms took ~3% of a core)."""
    deadline = time.monotonic() + timeout
    engine = create_engine(url)
    query = text("SELECT count(*) FROM receipts WHERE sink = 'storage'")
    try:
        with engine.connect() as conn:
            while int(conn.execute(query).scalar_one()) < total:
                conn.rollback()  # a fresh snapshot for the next count
                if time.monotonic() > deadline:
                    raise SystemExit(f"bench: {total} cables not stored within {timeout:.0f} s")
                time.sleep(STORED_POLL_S)
    finally:
        engine.dispose()


def _enqueue(
    producer: Producer, cables: Iterator[tuple[str, str]], count: int, rate: float | None
) -> dict[str, float]:
    """Enqueue ``count`` cables (at ``rate`` per second when given); their enqueue times."""
    sent: dict[str, float] = {}
    started = time.monotonic()
    for n, (_, cable) in enumerate(itertools.islice(cables, count)):
        if rate is not None:
            due = started + n / rate
            if (ahead := due - time.monotonic()) > 0:
                time.sleep(ahead)
        sent[producer.enqueue(cable, source="bench")] = time.time()
    producer.flush()
    return sent


def pipeline(
    env: dict[str, str], cables: Iterator[tuple[str, str]], count: int, rate: float | None = None
) -> Sample:
    """Enqueue ``count`` cables (at ``rate`` per second, or as fast as the producer goes)
    through real workers into storage; measure."""
    return _pipeline(env, cables, count, rate=rate, soak=False)[0]


def _pipeline(
    env: dict[str, str],
    cables: Iterator[tuple[str, str]],
    count: int,
    *,
    rate: float | None,
    soak: bool,
) -> tuple[Sample, RssSampler]:
    settings = Settings.from_env(env)
    upgrade(settings.database_url)
    log_path = settings.var_dir / "worker.log"
    settings.var_dir.mkdir(parents=True, exist_ok=True)
    with log_path.open("ab") as log:
        process = start_workers(load_config(None), WORKER_PROCESSES, log, env)
        try:
            with Producer(settings) as producer, RssSampler(process.pid) as rss:
                _enqueue(producer, cables, WARM_UP, None)
                _wait_for(settings.database_url, WARM_UP)
                rss.cut()
                cpu_before, busy_before = rss.cpu_seconds(), _machine_busy()
                measured_from = time.monotonic()
                if soak:  # the first tenth is the reference window
                    first = _enqueue(producer, cables, count // 10, rate)
                    _wait_for(settings.database_url, WARM_UP + count // 10)
                    rss.cut()
                    sent = first | _enqueue(producer, cables, count - count // 10, rate)
                else:
                    sent = _enqueue(producer, cables, count, rate)
                _wait_for(settings.database_url, WARM_UP + count)
                cpu = rss.cpu_seconds() - cpu_before
                busy = _machine_busy() - busy_before
                window = (time.monotonic() - measured_from) * (psutil.cpu_count() or 1)
            stored = _storage_receipts(settings.database_url)
        finally:
            stop_workers(process)
    delivered = {m: stored[m].timestamp() for m in sent}
    seconds = max(delivered.values()) - min(sent.values())
    latencies = sorted(delivered[m] - sent[m] for m in sent)
    peaks = sorted(rss.windows[-1].values() if not soak else rss.peaks.values())
    return Sample(count, seconds, latencies, peaks, cpu, busy / window), rss


def noop(env: dict[str, str], cables: Iterator[tuple[str, str]], count: int) -> Sample:
    """The same batches of envelopes through the same app and broker to a task that does
    nothing: how fast the queue itself goes."""
    settings = Settings.from_env(env)
    upgrade(settings.database_url)
    settings.var_dir.mkdir(parents=True, exist_ok=True)
    env = {**env, "CABLE_INGEST_LOG_LEVEL": "WARNING"}
    command = [sys.executable, "-m", "celery", "-A", "worker.app", "worker", "-I", "bench.noop"]
    command += ["-Q", NOOP_QUEUE, "-c", str(WORKER_PROCESSES), "--without-heartbeat"]
    command += ["--without-gossip", "--without-mingle"]
    prepare_broker(settings)
    app = create_app(settings)
    batches = [
        [make_envelope(t, source="bench") for _, t in itertools.islice(cables, settings.batch_size)]
        for _ in range(count // settings.batch_size)
    ]
    log_path = settings.var_dir / "noop.log"
    with log_path.open("ab") as log:
        process = subprocess.Popen(command, stdout=log, stderr=subprocess.STDOUT, env=env)
        try:
            publish(app, NOOP_TASK, [batches[0]], NOOP_QUEUE)  # warm-up
            _drain(app, settings)
            started = time.time()
            for batch in batches[1:]:
                publish(app, NOOP_TASK, [batch], NOOP_QUEUE)
            _drain(app, settings)
            finished = last_ack(settings)
        finally:
            stop_workers(process)
    assert finished is not None
    return Sample((len(batches) - 1) * settings.batch_size, finished - started)


def _drain(app: Celery, settings: Settings) -> None:
    """Wait until the no-op queue is empty and no task was acknowledged for 0.3 s (the
    workers record each acknowledgement for the readiness probe: see worker.ops.health)."""
    deadline = time.monotonic() + 600
    while time.monotonic() < deadline:
        if queue_depth(app, NOOP_QUEUE) == 0:
            before = last_ack(settings)
            time.sleep(0.3)
            if last_ack(settings) == before and before is not None:
                return
        time.sleep(POLL_S)
    raise SystemExit("bench: the no-op queue did not drain")


def _row(label: str, rates: Sequence[float], unit: str, extra: str = "") -> str:
    low, high = min(rates), max(rates)
    median = statistics.median(rates)
    return f"  {label:<34} {median:>9,.0f} {unit:<9} {low:>7,.0f}-{high:<7,.0f} {extra}"


def _percentile(values: Sequence[float], share: float) -> float:
    ordered = sorted(values)
    return ordered[min(len(ordered) - 1, round(share * (len(ordered) - 1)))]


def reparse(env: dict[str, str], cables: Iterator[tuple[str, str]], count: int) -> Sample:
    """Store ``count`` cables end to end, then re-derive them from their originals."""
    pipeline(env, cables, count)
    measured = measure_reparse(env, WARM_UP, count, WORKER_PROCESSES)
    return Sample(count, measured.seconds, cpu_s=measured.cpu_s, busy=measured.busy)


def _reparse_row(samples: list[Sample], reference: list[Sample] | None) -> str:
    """The reparse row: its rate, worker CPU, and the ratio to end-to-end ingest."""
    rate = statistics.median(s.rate for s in samples)
    cpu = statistics.median(s.cpu_s / s.cables * 1000 for s in samples)
    busy = statistics.median(s.busy for s in samples)
    line = (
        f"  reparse of {samples[0].cables:,} stored cables, redis+sqlite: {rate:,.0f} cables/s"
        f" ({min(s.rate for s in samples):,.0f}-{max(s.rate for s in samples):,.0f}),"
        f" worker CPU {cpu:.2f} ms/cable, machine {busy:.0%} busy"
    )
    if reference:
        ingest = statistics.median(s.rate for s in reference)
        line += f"; / end-to-end redis+sqlite {ingest:,.0f} = {rate / ingest:.0%} (target 80%)"
    return line


Scenario = Callable[[dict[str, str], Iterator[tuple[str, str]], int], Sample]
SCENARIOS: list[tuple[str, str, str, Scenario]] = [
    ("no-op task redis", "redis", "sqlite", noop),
    ("no-op task embedded", "filesystem", "sqlite", noop),
    ("end-to-end redis+sqlite", "redis", "sqlite", pipeline),
    ("end-to-end redis+postgresql", "redis", "postgresql", pipeline),
    ("end-to-end embedded+sqlite", "filesystem", "sqlite", pipeline),
    ("reparse redis+sqlite", "redis", "sqlite", reparse),
]


def _measured(samples: list[Sample]) -> str:
    """Latency, memory and CPU of an end-to-end scenario's runs."""
    latencies = [x for s in samples for x in s.latencies]
    if not latencies:
        return ""
    rss = max(x for s in samples for x in s.rss_mb)
    cpu = statistics.median(s.cpu_s / s.cables * 1000 for s in samples)
    busy = statistics.median(s.busy for s in samples)
    return (
        f"p50 {_percentile(latencies, 0.5) * 1000:,.0f} ms,"
        f" p99 {_percentile(latencies, 0.99) * 1000:,.0f} ms, peak RSS {rss:,.0f} MB,"
        f" worker CPU {cpu:.2f} ms/cable, machine {busy:.0%} busy"
    )


def _steady(cables: Iterator[tuple[str, str]], count: int, offered: float) -> str:
    """Latency at a steady offered load on Redis + SQLite."""
    with services("redis", "sqlite") as env:
        steady = pipeline(env, cables, count, rate=offered)
    return (
        f"  steady load redis+sqlite at {offered:,.0f} cables/s offered:"
        f" p50 {_percentile(steady.latencies, 0.5) * 1000:,.0f} ms,"
        f" p99 {_percentile(steady.latencies, 0.99) * 1000:,.0f} ms,"
        f" max {max(steady.latencies) * 1000:,.0f} ms"
    )


def _soak(cables: Iterator[tuple[str, str]], count: int) -> str:
    """Worker memory over a long run: peak RSS per pool process, first tenth vs the rest."""
    with services("redis", "sqlite") as env:
        soaked, rss = _pipeline(env, cables, count, rate=None, soak=True)
    first, rest = rss.windows[1], rss.windows[-1]
    shown = ", ".join(
        f"{first[pid]:,.0f} -> {rest[pid]:,.0f} MB ({rest[pid] / first[pid] - 1:+.1%})"
        for pid in sorted(first)
        if pid in rest and first[pid]
    )
    return (
        f"  soak redis+sqlite, {count:,} cables at {soaked.rate:,.0f} cables/s:"
        f" peak RSS per pool process, first tenth -> rest: {shown}"
    )


def main(argv: Sequence[str] | None = None) -> int:
    """Print the table."""
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--cables", type=int, default=20_000, help="per end-to-end run")
    parser.add_argument("--runs", type=int, default=3, help="runs per scenario")
    parser.add_argument("--soak", type=int, default=0, help="cables of the memory run (0: none)")
    parser.add_argument("--only", default="", help="comma-separated scenario names to run")
    args = parser.parse_args(argv)
    wanted = set(filter(None, args.only.split(",")))

    templates, refused = load_templates(corpus_files())
    cables = generate(templates, 10**9)
    print(
        f"cables: generated from {len(templates)} templates ({refused} refused);"
        f" {args.cables:,} per run, {args.runs} runs, {WORKER_PROCESSES} worker processes,"
        f" batches of {Settings().batch_size}; medians with min-max"
    )
    print(f"  {'what':<34} {'median':>9} {'unit':<9} {'min-max':<15} latency / memory / CPU")
    ceiling = 0.0
    if not wanted or "parse" in wanted:
        texts = [text for _, text in itertools.islice(generate(templates, 10**9), 2_000)]
        rates = measure_parse(texts, {"parse+validate": full_parse})["parse+validate"]
        ceiling = statistics.median(rates)
        print(_row("parse+validate, one core", rates, "cables/s"), flush=True)
    results: dict[str, list[Sample]] = {}
    for name, broker, database, run in SCENARIOS:
        if wanted and name not in wanted:
            continue
        samples = []
        for _ in range(args.runs):
            with services(broker, database) as env:
                samples.append(run(env, cables, args.cables))
        results[name] = samples
        rates = [s.rate for s in samples]
        print(_row(name, rates, "cables/s", _measured(samples)), flush=True)
    if reference := results.get("end-to-end redis+sqlite"):
        median = statistics.median(s.rate for s in reference)
        print(_steady(cables, args.cables, median / 2), flush=True)
        if ceiling:
            print(
                f"  end-to-end redis+sqlite / (2 x one-core parse+validate):"
                f" {median:,.0f} / {2 * ceiling:,.0f} = {median / (2 * ceiling):.0%}"
            )
    if reparsed := results.get("reparse redis+sqlite"):
        print(_reparse_row(reparsed, results.get("end-to-end redis+sqlite")), flush=True)
    if args.soak:
        print(_soak(cables, args.soak), flush=True)
    return 0


if __name__ == "__main__":
    sys.exit(main())
