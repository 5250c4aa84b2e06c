"""`make run` (until the queue lands): parse every cable of the corpus and print a summary."""

from __future__ import annotations

import sys
import time
from collections import Counter

from bench.corpus import corpus_files
from worker.errors import ParseError, ValidationError
from worker.parse import parse_cable
from worker.validate import validate_record


def main() -> int:
    files = corpus_files()
    outcomes: Counter[str] = Counter()
    classifications: Counter[str] = Counter()
    warnings: Counter[str] = Counter()
    failures: list[str] = []
    start = time.perf_counter()
    for path in files:
        try:
            record = parse_cable(
                path.read_text(encoding="utf-8", errors="replace"), source_file=path.name
            )
            validate_record(record)
        except (ParseError, ValidationError) as exc:
            outcomes[type(exc).__name__] += 1
            failures.append(f"{path.name}: {exc}")
            continue
        outcomes["parsed"] += 1
        classifications[record["classification"] or "unknown"] += 1
        warnings.update(w["code"] for w in record["warnings"])
    elapsed = time.perf_counter() - start
    print(
        f"{len(files)} cables from {files[0].parent if files else '-'} in {elapsed:.2f} s "
        f"({len(files) / elapsed:,.0f} cables/s)"
    )
    for name, count in outcomes.most_common():
        print(f"  {name:<22} {count:>6}")
    print("classification:")
    for name, count in classifications.most_common():
        print(f"  {name:<36} {count:>6}")
    print("warnings:")
    for name, count in warnings.most_common():
        print(f"  {name:<36} {count:>6}")
    for line in failures:
        print("  " + line, file=sys.stderr)
    return 1 if failures else 0


if __name__ == "__main__":
    sys.exit(main())
