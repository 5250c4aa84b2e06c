"""`make bench` (parser part): parse+validate throughput on one core over the dev corpus.

Beside it, in the same run, a naive baseline: a handful of regexes for ~10 header fields, the
kind of extractor a first attempt writes. Figures are medians over several rounds, with min-max.
Each round times one pass of every contender, one after the other, so that a burst of load from
another process lands on all of them alike; the ratio is the median of the rounds' ratios.
"""

from __future__ import annotations

import re
import statistics
import sys
import time
from collections.abc import Callable
from typing import Any

from bench.corpus import corpus_files
from worker.core.validate import validate_record
from worker.parse import parse_cable
from worker.record import CableRecord

RUNS = 7

_NAIVE = {
    "date": re.compile(r"^[ZOPR] (\d{6}Z [A-Z]{3} \d{2})", re.M),
    "fm": re.compile(r"^FM (.+)$", re.M),
    "to": re.compile(r"^TO (.+)$", re.M),
    "de": re.compile(r"^DE (\S+) #(\d+)", re.M),
    "classification": re.compile(r"^(UNCLAS|C O N F I D E N T I A L|S E C R E T)", re.M),
    "station_serial": re.compile(r"([A-Z ]+) (\d{6})\s*$", re.M),
    "decl": re.compile(r"DECL: (\S+)"),
    "tags": re.compile(r"^TAGS:? (.+)$", re.M),
    "subject": re.compile(r"^SUBJECT: (.+)$", re.M),
    "ref": re.compile(r"^REF: (.+)$", re.M),
    "classified_by": re.compile(r"^Classified By: (.+)$", re.M | re.I),
}


def naive_parse(text: str) -> dict[str, Any]:
    """The baseline: first match of each header regex, nothing more."""
    return {name: (m.group(1) if (m := rx.search(text)) else None) for name, rx in _NAIVE.items()}


def full_parse(text: str) -> CableRecord:
    """What the worker does per cable: the full parse, then schema validation."""
    record = parse_cable(text)
    validate_record(record)
    return record


def measure(
    texts: list[str], contenders: dict[str, Callable[[str], Any]]
) -> dict[str, list[float]]:
    """Cables per second of each contender in each of RUNS rounds (one pass each per round)."""
    rates: dict[str, list[float]] = {name: [] for name in contenders}
    for _ in range(RUNS):
        for name, func in contenders.items():
            start = time.perf_counter()
            for text in texts:
                func(text)
            rates[name].append(len(texts) / (time.perf_counter() - start))
    return rates


def main() -> int:
    texts = [p.read_text(encoding="utf-8", errors="replace") for p in corpus_files()]
    mean_kb = sum(len(t) for t in texts) / len(texts) / 1024
    print(
        f"parse+validate on one core: {len(texts)} cables, mean {mean_kb:.1f} KB, "
        f"median of {RUNS} interleaved rounds"
    )
    full_parse(texts[0])  # compile validators and regexes outside the timing
    baseline, full = "naive regex baseline (11 header fields)", "full parse + validation"
    results = measure(
        texts, {baseline: naive_parse, full: full_parse, "full parse only": parse_cable}
    )
    print(f"  {'what':<42} {'cables/s':>10} {'min-max':>17}")
    for name, rates in results.items():
        print(
            f"  {name:<42} {statistics.median(rates):>10,.0f} "
            f"{min(rates):>8,.0f}-{max(rates):<8,.0f}"
        )
    ratios = [f / b for f, b in zip(results[full], results[baseline], strict=True)]
    print(
        f"  full parse + validation / naive baseline: {statistics.median(ratios):.2f}x"
        f" (rounds {min(ratios):.2f}-{max(ratios):.2f})"
    )
    return 0


if __name__ == "__main__":
    sys.exit(main())
