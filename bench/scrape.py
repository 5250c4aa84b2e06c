"""`make bench` (scrape part): how long a Prometheus scrape of ``cable-ingest metrics`` takes.

The situation of issue 17: 10 queues (intake, reparse and 8 sinks), one worker with 4 pool
processes sharing the endpoint's var dir (their counters in ``METRICS_DIR``), 100,000 dead
letters over the stages and as many receipts, on Redis with SQLite and with PostgreSQL. The
worker first stores a few cables, so that its processes have counters, then idles. ``cable-ingest metrics`` runs as a child process, as deployed;
each scrape is one HTTP GET of ``/metrics`` on a fresh connection, as Prometheus makes it.
Prints p50 and p99 of ``--scrapes`` scrapes after 3 unmeasured ones, and the target (100 ms).

The baseline is the same bench run on the commit before the scrape changed (the figures are
in README.md, "Measured"): the code it measured is gone, so it is not run again here.
"""

from __future__ import annotations

import argparse
import contextlib
import os
import statistics
import subprocess
import sys
import tempfile
import time
import urllib.request
from collections.abc import Iterator, Sequence
from datetime import UTC, datetime, timedelta
from pathlib import Path

import redis
from sqlalchemy import create_engine, insert

from bench.databases import postgres_schema
from bench.server import free_port, wait_for_port
from worker.cli.run import start_workers, stop_workers
from worker.intake.producer import Producer
from worker.routing.config import load_config
from worker.settings import Settings
from worker.storage import ReceiptStore, upgrade
from worker.storage.schema import dead_letters, receipts

REDIS_URL = os.environ.get("CABLE_INGEST_BENCH_SCRAPE_REDIS_URL", "redis://127.0.0.1:6379/10")
SAMPLE = Path(__file__).resolve().parents[1] / "tests" / "fixtures" / "06ALMATY598.scraped.txt"
SINKS = 8
PROCESSES = 4
WARM_CABLES = 20
TARGET_MS = 100.0
UNMEASURED = 3
INSERT_CHUNK = 5_000


def _config(folder: Path) -> Path:
    """Storage plus 8 file sinks that take nothing (no rule sends them a cable): 10 queues."""
    lines = []
    for n in range(SINKS):
        lines += [f"[sinks.files{n}]", 'type = "file"',
                  f'options = {{ directory = "{folder / f"files{n}"}" }}', ""]  # fmt: skip
    path = folder / "sinks.toml"
    path.write_text("\n".join(lines), encoding="utf-8")
    return path


def _fill(url: str, letters: int, receipt_count: int) -> None:
    """``letters`` dead letters spread over the stages and reasons, ``receipt_count`` receipts
    over the sinks, written straight into the tables (as years of a deployment would)."""
    stages = ["intake", "parse", "validate", *(f"sink:files{n}" for n in range(SINKS))]
    now = datetime.now(UTC)
    engine = create_engine(url)
    try:
        with engine.begin() as conn:
            for start in range(0, letters, INSERT_CHUNK):
                rows = []
                for i in range(start, min(letters, start + INSERT_CHUNK)):
                    seen = now - timedelta(minutes=i % 10_000)
                    rows.append({
                        "id": f"dl{i:07d}", "stage": stages[i % len(stages)],
                        "dedupe_key": f"sha256:{i:064x}", "error_class": "ParseError",
                        "reason": f"reason {i % 37}", "schema_errors": [], "attempts": 1,
                        "first_seen": seen, "last_seen": seen, "message_id": f"m{i}",
                        "reference_id": None, "sha256": f"{i:064x}", "source": "bench",
                        "payload": {"text": "x" * 200}, "replayed_at": None,
                    })  # fmt: skip
                conn.execute(insert(dead_letters), rows)
            sinks = ["storage", *(f"files{n}" for n in range(SINKS))]
            for start in range(0, receipt_count, INSERT_CHUNK):
                rows = [
                    {"message_id": f"r{i}", "sink": sinks[i % len(sinks)], "reference_id": None,
                     "outcome": "inserted", "delivered_at": now - timedelta(seconds=i)}
                    for i in range(start, min(receipt_count, start + INSERT_CHUNK))
                ]  # fmt: skip
                conn.execute(insert(receipts), rows)
    finally:
        engine.dispose()


@contextlib.contextmanager
def _database(kind: str, folder: Path) -> Iterator[str]:
    if kind == "sqlite":
        yield f"sqlite:///{folder / 'cable-ingest.db'}"
        return
    with postgres_schema() as url:
        assert url is not None
        yield url


def _wait_stored(url: str, ids: set[str], timeout: float = 300) -> None:
    store = ReceiptStore(url)
    count = len(ids)
    deadline = time.monotonic() + timeout
    try:
        while len(store.received(ids, "storage")) < count:
            if time.monotonic() > deadline:
                raise SystemExit(f"bench: {count} warm-up cables not stored in {timeout:.0f} s")
            time.sleep(0.2)
    finally:
        store.close()


def _scrape(port: int) -> float:
    """One GET of /metrics on a new connection: seconds."""
    started = time.perf_counter()
    with urllib.request.urlopen(f"http://127.0.0.1:{port}/metrics", timeout=30) as response:
        body = response.read()
    elapsed = time.perf_counter() - started
    if b"cable_ingest_queue_depth" not in body or b"cable_ingest_dead_letters_stored" not in body:
        raise SystemExit("bench: a scrape lacks the queue or the dead-letter gauges")
    return elapsed


def measure(database: str, letters: int, receipt_count: int, scrapes: int) -> list[float]:
    """Scrape times (s) of one environment: Redis and ``database`` (sqlite, postgresql)."""
    with contextlib.ExitStack() as stack:
        folder = Path(
            stack.enter_context(tempfile.TemporaryDirectory(prefix="cable-ingest-scrape-"))
        )
        client = stack.enter_context(redis.Redis.from_url(REDIS_URL))
        client.flushdb()
        stack.callback(client.flushdb)
        url = stack.enter_context(_database(database, folder))
        config = _config(folder)
        settings = Settings(broker_url=REDIS_URL, database_url=url, var_dir=folder / "var",
                            config_file=config)  # fmt: skip
        upgrade(url)
        _fill(url, letters, receipt_count)
        env = {k: v for k, v in os.environ.items() if not k.startswith("CABLE_INGEST_")}
        wanted = ("BROKER_URL", "DATABASE_URL", "VAR_DIR", "CONFIG")
        env |= {k: v for k, v in settings.to_env().items() if k.endswith(wanted)}
        env["CABLE_INGEST_LOG_FORMAT"] = "json"
        log = stack.enter_context((folder / "worker.log").open("wb"))
        worker = start_workers(load_config(config), PROCESSES, log, env)
        stack.callback(stop_workers, worker)
        text_ = SAMPLE.read_text(encoding="utf-8")
        with Producer(settings) as producer:
            ids = set(producer.enqueue_many(
                [text_.replace("000598", f"{n + 9000:06d}", 1) for n in range(WARM_CABLES)],
                source="bench"))  # fmt: skip
        _wait_stored(url, ids)
        port = free_port()
        command = [sys.executable, "-m", "worker", "metrics", "--port", str(port)]
        server = subprocess.Popen(command, env=env, stdout=log, stderr=subprocess.STDOUT)

        def stop_server() -> None:
            server.terminate()
            server.wait(30)

        stack.callback(stop_server)
        wait_for_port(port, server, 60)
        times = [_scrape(port) for _ in range(UNMEASURED + scrapes)]
        return times[UNMEASURED:]


def _percentile(values: Sequence[float], share: float) -> float:
    ordered = sorted(values)
    return ordered[min(len(ordered) - 1, round(share * (len(ordered) - 1)))]


def main(argv: Sequence[str] | None = None) -> int:
    """Print one row per database: p50 and p99 of the scrapes, against the target."""
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--dead-letters", type=int, default=100_000)
    parser.add_argument("--receipts", type=int, default=100_000)
    parser.add_argument("--scrapes", type=int, default=50)
    parser.add_argument("--databases", default="sqlite,postgresql")
    args = parser.parse_args(argv)
    print(f"/metrics scrape: {SINKS + 2} queues, one worker with {PROCESSES} "
          f"processes, {args.dead_letters:,} dead letters, {args.receipts:,} receipts, Redis; "
          f"{args.scrapes} scrapes over HTTP; load average {os.getloadavg()[0]:.1f} on "
          f"{os.cpu_count()} cores")  # fmt: skip
    for database in args.databases.split(","):
        times = measure(database, args.dead_letters, args.receipts, args.scrapes)
        p50, p99 = _percentile(times, 0.5) * 1000, _percentile(times, 0.99) * 1000
        verdict = "met" if p99 < TARGET_MS else "NOT met"
        print(f"  scrape, redis+{database}: p50 {p50:.1f} ms, p99 {p99:.1f} ms, mean "
              f"{statistics.mean(times) * 1000:.1f} ms (target p99 < {TARGET_MS:.0f} ms: "
              f"{verdict})")  # fmt: skip
        sys.stdout.flush()
    return 0


if __name__ == "__main__":
    sys.exit(main())
