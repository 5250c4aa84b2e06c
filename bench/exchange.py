"""Export and import figures: speed, file sizes and peak memory (``python -m bench.exchange``).

For each size (``--cables 1000,10000``), that many distinct cables made by
:mod:`worker.intake.generate` from the dev corpus (or the project's sample) are stored in a new
SQLite file through :class:`~worker.storage.CableStore`, each with its original and arrival,
as the ingest task stores them. Then each command runs as its own ``cable-ingest`` process,
timed from the start of the command to its end (imports left out), its peak RSS read from the
kernel (``VmHWM``): exports with and without originals and provenance, plain and compressed; an
import into a new SQLite file and into a new PostgreSQL schema (skipped if it is away); and an
export from PostgreSQL, whose bytes must equal SQLite's. With ``--corpus`` the 995 dev cables
themselves are used instead of generated ones.
"""

from __future__ import annotations

import argparse
import contextlib
import hashlib
import itertools
import os
import subprocess
import sys
import tempfile
from collections.abc import Iterator
from pathlib import Path

from bench.corpus import corpus_files
from bench.databases import postgres_schema
from worker.intake.generate import generate, load_templates
from worker.parse import parse_cable
from worker.storage import CableStore, upgrade
from worker.storage.provenance import Arrival

_MEASURED = """
import sys, time
from worker.cli import build_parser, main
build_parser()  # imports every command's modules: the time below is the command's own
started = time.perf_counter()
try:
    code = main(sys.argv[1:])
except SystemExit as stop:  # --version
    code = int(stop.code or 0)
took = time.perf_counter() - started
with open("/proc/self/status") as status:  # VmHWM: the peak RSS of this process image
    peak = next(line.split()[1] for line in status if line.startswith("VmHWM:"))
sys.stderr.write(f"\\nmeasured {took} {peak}\\n")
sys.exit(code)
"""
CLI = [sys.executable, "-c", _MEASURED]
BATCH = 100


def cables(count: int, corpus: bool) -> Iterator[tuple[str, str]]:
    """(name, text) of ``count`` distinct cables, or of every dev cable with ``corpus``."""
    if corpus:
        yield from ((p.name, p.read_bytes().decode("utf-8")) for p in corpus_files())
        return
    templates, _refused = load_templates(corpus_files())
    yield from generate(templates, count)


def populate(url: str, count: int, corpus: bool) -> int:
    """Store the cables with their originals and arrivals; return how many were stored."""
    upgrade(url)
    store = CableStore(url)
    stored = 0
    items = cables(count, corpus)
    try:
        while batch := list(itertools.islice(items, BATCH)):
            arrivals = [
                Arrival(f"bench-{name}", body, hashlib.sha256(body.encode()).hexdigest(), "bench")
                for name, body in batch
            ]
            store.write_batch([parse_cable(body) for _, body in batch], arrivals=arrivals)
            stored += len(batch)
    finally:
        store.close()
    return stored


def run(args: list[str], url: str) -> tuple[float, float]:
    """Run ``cable-ingest ARGS`` on ``url`` in a new process; the command's own time in s
    (imports left out) and the process's peak RSS in MB (VmHWM, which starts afresh at exec:
    the parent's memory, copied at fork, does not count)."""
    env = {k: v for k, v in os.environ.items() if not k.startswith("CABLE_INGEST_")}
    env["CABLE_INGEST_DATABASE_URL"] = url
    done = subprocess.run([*CLI, *args], env=env, capture_output=True, text=True, check=False)
    if done.returncode != 0:
        raise SystemExit(f"cable-ingest {' '.join(args)} failed: {done.stderr.strip()}")
    _, took, peak = done.stderr.splitlines()[-1].split()
    return float(took), int(peak) / 1024


@contextlib.contextmanager
def postgres() -> Iterator[str | None]:
    """A fresh PostgreSQL schema's URL, dropped afterwards; None when PostgreSQL is away."""
    with postgres_schema(optional=True) as url:
        yield url


def row(label: str, count: int, took: tuple[float, float], size: int = 0) -> None:
    """One line of figures: time, rate, file size, peak RSS."""
    seconds, rss = took
    shown = f"{size / 1e6:8.1f} MB" if size else " " * 11
    rate = count / max(seconds, 1e-6)
    print(
        f"{label:<48} {count:>7,} {seconds:7.2f} s {rate:8,.0f}/s {shown}  peak RSS {rss:6.1f} MB"
    )


def measure(count: int, corpus: bool, folder: Path) -> None:
    """Every figure for one size."""
    source = f"sqlite:///{folder / 'source.db'}"
    count = populate(source, count, corpus)
    full = ["--originals", "--provenance"]
    row("imports alone (cable-ingest --version)", 0, run(["--version"], source))
    exports = [
        ("export records only", "records.jsonl", []),
        ("export records only, zstd", "records.jsonl.zst", []),
        ("export + originals + provenance", "full.jsonl", full),
        ("export + originals + provenance, zstd", "full.jsonl.zst", full),
        ("export + originals + provenance, gzip", "full.jsonl.gz", full),
    ]
    for label, name, extra in exports:
        took = run(["export", "-o", str(folder / name), *extra], source)
        row(label, count, took, (folder / name).stat().st_size)
    took = run(["import", str(folder / "full.jsonl.zst")], f"sqlite:///{folder / 'b.db'}")
    row("import (zstd file) into SQLite", count, took)
    with postgres() as url:
        if url is None:
            print("PostgreSQL not reachable: its rows are skipped")
            return
        took = run(["import", str(folder / "full.jsonl.zst")], url)
        row("import (zstd file) into PostgreSQL", count, took)
        took = run(["export", "-o", str(folder / "pg.jsonl"), *full], url)
        row("export from PostgreSQL + originals + provenance", count, took)
    same = (folder / "pg.jsonl").read_bytes() == (folder / "full.jsonl").read_bytes()
    print(f"SQLite and PostgreSQL exports byte-identical: {same}")


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--cables", default="1000,10000", help="sizes, comma-separated")
    parser.add_argument("--corpus", action="store_true", help="the 995 dev cables themselves")
    args = parser.parse_args(argv)
    sizes = [0] if args.corpus else [int(n) for n in args.cables.split(",")]
    for size in sizes:
        with tempfile.TemporaryDirectory(prefix="cable-ingest-exchange-") as folder:
            measure(size, args.corpus, Path(folder))
    return 0


if __name__ == "__main__":
    sys.exit(main())
