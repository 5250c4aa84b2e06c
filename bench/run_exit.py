"""`make bench` (run part): how long ``cable-ingest run`` stays after its last outcome.

For each broker (embedded, Redis; SQLite storage), ``--runs`` times on a fresh environment:
``cable-ingest run --json`` on the dev corpus as a real process, and the seconds from the last
outcome written (the newest storage receipt or dead letter of the run, this host's clock) to
the moment the process has exited. Beside it, the cost ``run`` no longer waits out: an idle
``cable-ingest worker`` (2 processes) from SIGTERM to its exit, on the same broker. Medians
with min-max, in seconds.
"""

from __future__ import annotations

import argparse
import statistics
import subprocess
import sys
import time
from collections.abc import Sequence
from datetime import UTC, datetime
from pathlib import Path

import orjson
from sqlalchemy import create_engine, text

from bench.corpus import CORPUS, corpus_files
from bench.pipeline import services

READY = b"ready."  # Celery's "celery@host ready." line in the worker log
TIMEOUT_S = 600


def _last_outcome(var_dir: Path) -> float:
    """Unix time of the newest receipt or dead letter in the run's SQLite database."""
    engine = create_engine(f"sqlite:///{var_dir / 'cable-ingest.db'}")
    try:
        with engine.connect() as conn:
            newest = [
                conn.execute(text("SELECT max(delivered_at) FROM receipts")).scalar_one(),
                conn.execute(text("SELECT max(last_seen) FROM dead_letters")).scalar_one(),
            ]
    finally:
        engine.dispose()
    times = [datetime.fromisoformat(str(t)) for t in newest if t is not None]
    return max(t if t.tzinfo else t.replace(tzinfo=UTC) for t in times).timestamp()


def linger(env: dict[str, str], inputs: Sequence[str]) -> tuple[float, int]:
    """Seconds from the run's last outcome to its exit, and how many cables it stored."""
    command = [sys.executable, "-m", "worker", "run", "--json", *inputs]
    done = subprocess.run(command, env=env, capture_output=True, timeout=TIMEOUT_S, check=False)
    exited = time.time()
    if done.returncode not in (0, 65):
        raise SystemExit(f"run exited {done.returncode}: {done.stderr.decode()[-2000:]}")
    stored = sum(orjson.loads(done.stdout)["stored"].values())
    return exited - _last_outcome(Path(env["CABLE_INGEST_VAR_DIR"])), stored


def worker_stop(env: dict[str, str]) -> float:
    """Seconds from SIGTERM to exit of an idle worker with 2 processes."""
    log = Path(env["CABLE_INGEST_VAR_DIR"]) / "idle-worker.log"
    command = [sys.executable, "-m", "worker", "worker", "-c", "2"]
    with log.open("wb") as out:
        process = subprocess.Popen(command, env=env, stdout=out, stderr=subprocess.STDOUT)
    deadline = time.monotonic() + TIMEOUT_S
    while READY not in log.read_bytes():
        if process.poll() is not None or time.monotonic() > deadline:
            raise SystemExit(f"the idle worker did not start: {log.read_text()[-2000:]}")
        time.sleep(0.1)
    time.sleep(1.0)  # idle in its consumer loop
    started = time.monotonic()
    process.terminate()
    process.wait(TIMEOUT_S)
    return time.monotonic() - started


def _row(label: str, values: Sequence[float], extra: str = "") -> str:
    median, low, high = statistics.median(values), min(values), max(values)
    return f"  {label:<52} {median:>6.2f} s  {low:.2f}-{high:.2f} {extra}"


def main(argv: Sequence[str] | None = None) -> int:
    """Print the rows."""
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--runs", type=int, default=3, help="runs per broker")
    args = parser.parse_args(argv)
    inputs = [str(CORPUS)] if CORPUS.is_dir() else [str(p) for p in corpus_files()]
    print(f"run: {len(corpus_files())} cables, {args.runs} runs per broker; medians with min-max")
    for broker in ("filesystem", "redis"):
        lingers, stops, stored = [], [], 0
        for _ in range(args.runs):
            with services(broker, "sqlite") as env:
                seconds, stored = linger(env, inputs)
                lingers.append(seconds)
            with services(broker, "sqlite") as env:
                stops.append(worker_stop(env))
        name = "embedded" if broker == "filesystem" else "redis"
        print(
            _row(f"run {name}+sqlite: exit after the last outcome", lingers, f"({stored:,} stored)")
        )
        print(_row(f"idle worker {name}: SIGTERM to exit (not waited)", stops), flush=True)
    return 0


if __name__ == "__main__":
    sys.exit(main())
