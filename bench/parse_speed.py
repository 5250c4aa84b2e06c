"""`make bench` (parser part): parse+validate throughput on one core over the dev corpus.

Beside it, in the same run, a naive baseline: a handful of regexes for ~10 header fields, the
kind of extractor a first attempt writes. Figures are medians over several runs, with min-max.
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

RUNS = 5

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


def measure(texts: list[str], func: Callable[[str], Any]) -> list[float]:
    """Cables per second for each of RUNS passes over ``texts``."""
    rates = []
    for _ in range(RUNS):
        start = time.perf_counter()
        for text in texts:
            func(text)
        rates.append(len(texts) / (time.perf_counter() - start))
    return rates


def main() -> int:
    texts = [p.read_text(encoding="utf-8", errors="replace") for p in corpus_files()]
    mean_kb = sum(len(t) for t in texts) / len(texts) / 1024
    print(
        f"parse+validate on one core: {len(texts)} cables, mean {mean_kb:.1f} KB, "
        f"median of {RUNS} runs"
    )
    full_parse(texts[0])  # compile validators and regexes outside the timing
    results = {
        "naive regex baseline (11 header fields)": measure(texts, naive_parse),
        "full parse + validation": measure(texts, full_parse),
        "full parse only": measure(texts, parse_cable),
    }
    print(f"  {'what':<42} {'cables/s':>10} {'min-max':>17}")
    for name, rates in results.items():
        print(
            f"  {name:<42} {statistics.median(rates):>10,.0f} "
            f"{min(rates):>8,.0f}-{max(rates):<8,.0f}"
        )
    ratio = statistics.median(results["full parse + validation"]) / statistics.median(
        results["naive regex baseline (11 header fields)"]
    )
    print(f"  full parse + validation / naive baseline: {ratio:.2f}x")
    return 0


if __name__ == "__main__":
    sys.exit(main())
