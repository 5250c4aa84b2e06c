"""`make bench` (HTTP part): intake over HTTP against the Python producer, in one run.

Each run gets a flushed Redis database and a fresh SQLite file; no worker consumes (this
measures the door and the broker, not the pipeline; the high-water mark is out of reach).

1. baseline: :class:`~worker.intake.producer.Producer` enqueueing the cables ``ROUNDS`` times
   in this process (check, envelope, batches of ``BATCH_SIZE`` published), each time as new
   strings: cables/s;
2. ``cable-ingest serve`` (one uvicorn process, one event loop) in a child process, driven by
   :mod:`bench.loadgen` over loopback keep-alive connections:
   - single-cable POSTs (text/plain, one distinct cable each), closed loop over
     ``--connections``: requests/s, p50 and p99 latency; group commit puts many in a message;
   - the same open loop (latency without coordinated omission) at a fixed 500/s, half the
     target of 1,000/s, and at half the rate just measured: p50 and p99 of each;
   - NDJSON batches of 100 cables (the cables ``ROUNDS`` times), after a few to warm up,
     closed loop over 4 connections: cables/s.

Cables are the corpus renumbered (:mod:`worker.intake.generate`): distinct texts of the
corpus's sizes. Medians of ``--runs`` runs with min-max. Targets (issue 18): batches at least
80% of the producer's rate (the median of the runs' ratios: each run measures both within a
minute, and this shared machine drifts by more than 10% between minutes); single POSTs at
least 1,000/s with p99 under 50 ms at half rate.
"""

from __future__ import annotations

import argparse
import contextlib
import itertools
import os
import statistics
import sys
import tempfile
import time
from collections.abc import Iterator, Sequence
from dataclasses import dataclass
from pathlib import Path

import orjson
import redis

from bench.corpus import corpus_files
from bench.loadgen import Result, build_request, load
from bench.server import start_serve, stop
from worker.intake.generate import generate, load_templates
from worker.intake.producer import Producer
from worker.settings import Settings
from worker.storage import upgrade
from worker.storage.tokens import TokenStore

REDIS_URL = os.environ.get("CABLE_INGEST_BENCH_HTTP_REDIS_URL", "redis://127.0.0.1:6379/11")
BATCH = 100
HIGH_WATER = 10**9
TARGET = 1000  # single POSTs per second (issue 18), p99 < 50 ms at half of it
ROUNDS = 3  # the producer and the batches take the cables this many times: ~2 s each, not 0.7


@dataclass
class Run:
    """One run's figures."""

    producer: float  # cables/s
    singles: Result
    steady: Result  # at half the target
    half: Result  # at half the measured rate
    batches: Result


@contextlib.contextmanager
def environment() -> Iterator[tuple[dict[str, str], str]]:
    """(env, token) of one run: a flushed Redis database, a new SQLite file with a token."""
    with tempfile.TemporaryDirectory(prefix="cable-ingest-bench-http-") as folder:
        client = redis.Redis.from_url(REDIS_URL)
        client.flushdb()
        database = f"sqlite:///{Path(folder) / 'cable-ingest.db'}"
        env = {k: v for k, v in os.environ.items() if not k.startswith("CABLE_INGEST_")}
        env |= {
            "CABLE_INGEST_BROKER_URL": REDIS_URL,
            "CABLE_INGEST_DATABASE_URL": database,
            "CABLE_INGEST_VAR_DIR": folder,
            "CABLE_INGEST_LOG_FORMAT": "json",
            "CABLE_INGEST_LOG_LEVEL": "WARNING",
            "CABLE_INGEST_HIGH_WATER_MARK": str(HIGH_WATER),
        }
        upgrade(database)
        store = TokenStore(database)
        token, _ = store.create("bench", ["ingest"])
        store.close()
        try:
            yield env, token
        finally:
            client.flushdb()
            client.close()


def producer_rate(env: dict[str, str], texts: Sequence[str]) -> float:
    """Cables/s of the Python producer enqueueing ``texts`` (the baseline), given as a feed
    has them: new strings. CPython keeps the UTF-8 form of a str once something (orjson) wrote
    it, and every later encoding of that str is then a copy; the NDJSON bodies of the HTTP
    runs write these texts, so from the second run on the producer would be timed on texts
    half encoded already (~14,500 instead of ~13,200 cables/s on the 2-core dev machine)."""
    settings = Settings.from_env(env)
    fresh = [text.encode("utf-8").decode("utf-8") for _ in range(ROUNDS) for text in texts]
    started = time.perf_counter()
    with Producer(settings) as producer:
        for text in fresh:
            producer.enqueue(text, source="bench")
    return len(fresh) / (time.perf_counter() - started)


def measure(texts: Sequence[str], requests: int, connections: int, log: Path) -> Run:
    """One run: the producer, then the server under the three loads."""
    with environment() as (env, token):
        baseline = producer_rate(env, texts)
    with environment() as (env, token), log.open("ab") as serve_log:
        server, port = start_serve(env, serve_log)
        try:
            auth = {"Authorization": f"Bearer {token}"}
            plain = {**auth, "Content-Type": "text/plain"}
            singles_made = [build_request("POST", "/v1/cables", t.encode(), plain) for t in texts]

            def single(index: int) -> bytes:
                return singles_made[index % len(singles_made)]

            load(port, single, requests=min(500, requests), connections=connections)  # warm-up
            singles = load(port, single, requests=requests, connections=connections)
            steady = load(
                port, single, requests=min(requests, 5 * TARGET // 2), connections=connections,
                rate=TARGET / 2,
            )  # fmt: skip
            half = load(
                port, single, requests=requests // 2, connections=connections,
                rate=max(1.0, singles.rate / 2),
            )  # fmt: skip
            ndjson = {**auth, "Content-Type": "application/x-ndjson"}
            bodies = [
                b"".join(orjson.dumps({"text": t}) + b"\n" for t in texts[i : i + BATCH])
                for i in range(0, len(texts) - BATCH + 1, BATCH)
            ]
            batch_made = [build_request("POST", "/v1/cables", b, ndjson) for b in bodies]
            load(port, lambda i: batch_made[-1 - i % len(batch_made)], requests=8, connections=4)
            batches = load(
                port, lambda i: batch_made[i % len(batch_made)],
                requests=max(4, ROUNDS * len(texts) // BATCH), connections=4,
            )  # fmt: skip
        finally:
            stop(server)
    for name, result in (
        ("single", singles),
        ("steady", steady),
        ("half", half),
        ("batch", batches),
    ):
        if set(result.statuses) != {202}:
            raise RuntimeError(f"{name} POSTs answered {dict(result.statuses)}; see {log}")
    return Run(baseline, singles, steady, half, batches)


def _row(what: str, values: Sequence[float], unit: str, note: str = "") -> str:
    median = statistics.median(values)
    spread = f"{min(values):,.0f}-{max(values):,.0f}"
    return f"  {what:<40} {median:>9,.0f} {unit:<11} {spread:<15} {note}"


def main(argv: Sequence[str] | None = None) -> int:
    """Print the rows and the targets' verdicts."""
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--requests", type=int, default=10_000, help="single POSTs per run")
    parser.add_argument("--connections", type=int, default=64, help="for single POSTs")
    parser.add_argument("--runs", type=int, default=3)
    args = parser.parse_args(argv)
    templates, _ = load_templates(corpus_files())
    texts = [text for _, text in itertools.islice(generate(templates, 10**9), args.requests)]
    log = Path(tempfile.gettempdir()) / f"cable-ingest-bench-http-{os.getpid()}.log"
    runs = [measure(texts, args.requests, args.connections, log) for _ in range(args.runs)]
    producer = [r.producer for r in runs]
    singles = [r.singles.rate for r in runs]
    batches = [r.batches.rate * BATCH for r in runs]
    p50 = statistics.median(r.singles.percentile(0.5) for r in runs)
    p99 = statistics.median(r.singles.percentile(0.99) for r in runs)
    steady_p50 = statistics.median(r.steady.percentile(0.5) for r in runs)
    steady_p99 = statistics.median(r.steady.percentile(0.99) for r in runs)
    half_p50 = statistics.median(r.half.percentile(0.5) for r in runs)
    half_p99 = statistics.median(r.half.percentile(0.99) for r in runs)
    half_rate = statistics.median(r.singles.rate / 2 for r in runs)
    print(f"HTTP intake: {len(texts):,} distinct cables, {args.runs} runs, one uvicorn process, "
          f"Redis, batches of {Settings().batch_size}; medians with min-max; load average "
          f"{os.getloadavg()[0]:.1f} on {os.cpu_count()} cores")  # fmt: skip
    print(_row("Python producer enqueue (baseline)", producer, "cables/s"))
    print(_row(f"single POSTs, max rate, {args.connections} conns", singles, "requests/s",
               f"closed loop: p50 {p50:.1f} ms, p99 {p99:.1f} ms"))  # fmt: skip
    print(_row(f"single POSTs at fixed {TARGET // 2}/s (half the target)",
               [r.steady.rate for r in runs], "requests/s",
               f"open loop: p50 {steady_p50:.1f} ms, p99 {steady_p99:.1f} ms"))  # fmt: skip
    print(_row(f"single POSTs at half the max (~{half_rate:,.0f}/s)", [r.half.rate for r in runs],
               "requests/s", f"open loop: p50 {half_p50:.1f} ms, p99 {half_p99:.1f} ms"))  # fmt: skip
    print(_row("NDJSON batches of 100, 4 connections", batches, "cables/s"))
    shares = sorted(b / p for b, p in zip(batches, producer, strict=True))
    share = statistics.median(shares)  # each run's pair was measured within the same minute
    print(
        f"  batches / producer: {share:.0%} (target >= 80%): {'met' if share >= 0.8 else 'NOT met'}"
        f"; by run {', '.join(f'{s:.0%}' for s in shares)}"
    )
    ok = statistics.median(singles) >= TARGET and steady_p99 < 50
    print(
        f"  single POSTs >= {TARGET:,}/s, p99 < 50 ms at {TARGET // 2}/s: {'met' if ok else 'NOT met'}"
    )
    print("  latencies: from the scheduled send to the last byte of the answer (open loop: no "
          "coordinated omission); machine shared with other work: figures vary")  # fmt: skip
    return 0


if __name__ == "__main__":
    sys.exit(main())
