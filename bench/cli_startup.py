"""Measure how long ``cable-ingest --help`` and ``cable-ingest COMMAND --help`` take to answer.

Usage (from the repository root)::

    python -m bench.cli_startup [--runs N]

Each command line runs ``--runs`` times (default 7) as a fresh process (``python -m worker``,
what the console script does); the median and the slowest run are printed next to the target
(0.3 s) and next to the baseline measured in the same run: a bare interpreter (``python -c
pass``) and one that only imports argparse, the floor any Python command line pays.
"""

from __future__ import annotations

import argparse
import statistics
import subprocess
import sys
import time
from collections.abc import Sequence

TARGET_S = 0.3


def _commands() -> list[str]:
    """The subcommands, read from the parser itself (this process may import slowly)."""
    from worker.cli import build_parser  # noqa: PLC0415 - only when the bench runs

    parser = build_parser()
    actions = [a for a in parser._actions if isinstance(a, argparse._SubParsersAction)]
    return sorted(actions[0].choices) if actions else []


def _time(argv: Sequence[str], runs: int) -> tuple[float, float]:
    """The median and the slowest of ``runs`` wall times of ``argv`` (seconds)."""
    times = []
    for _ in range(runs):
        started = time.perf_counter()
        subprocess.run(argv, check=True, stdout=subprocess.DEVNULL, stderr=subprocess.DEVNULL)
        times.append(time.perf_counter() - started)
    return statistics.median(times), max(times)


def main(argv: Sequence[str] | None = None) -> int:
    """Print one row per command line; exit 1 when a median misses the target."""
    parser = argparse.ArgumentParser(prog="python -m bench.cli_startup")
    parser.add_argument("--runs", type=int, default=7, help="runs per command line (default 7)")
    args = parser.parse_args(argv)
    python = sys.executable
    rows: list[tuple[str, list[str]]] = [
        ("baseline: python -c pass", [python, "-c", "pass"]),
        ("baseline: python -c 'import argparse'", [python, "-c", "import argparse"]),
        ("cable-ingest --help", [python, "-m", "worker", "--help"]),
    ]
    rows += [
        (f"cable-ingest {c} --help", [python, "-m", "worker", c, "--help"]) for c in _commands()
    ]
    print(f"## CLI start-up (median and slowest of {args.runs} runs; target < {TARGET_S} s)")
    print(f"{'command line':<44}{'median':>10}{'slowest':>10}")
    missed = []
    for label, command in rows:
        median, slowest = _time(command, args.runs)
        flag = "" if label.startswith("baseline") or median < TARGET_S else "  MISSED"
        if flag:
            missed.append(label)
        print(f"{label:<44}{median * 1000:>8.0f} ms{slowest * 1000:>7.0f} ms{flag}")
    if missed:
        print(f"{len(missed)} command lines miss the {TARGET_S} s target")
    return 1 if missed else 0


if __name__ == "__main__":
    sys.exit(main())
