"""`make eval`: parse the dev corpus and compare with the published metadata in manifest.tsv.

Fields compared: reference id, date (to the hour: the published minute is unreliable),
classification and origin. Rows whose ground truth is empty are skipped and counted; cables
that survive only as a partial extract (no routing header) are reported apart.
"""

from __future__ import annotations

import sys
from collections import Counter
from typing import Any

from bench.corpus import CORPUS, corpus_files, manifest
from worker.core.validate import validate_record
from worker.errors import ParseError, ValidationError
from worker.parse import parse_cable

FIELDS = ("reference_id", "date", "classification", "origin")
TARGETS = {"reference_id": 99.5, "date": 99.5, "classification": 99.5, "origin": 99.0}


def _got(record: dict[str, Any], field: str) -> str:
    value = record.get(field) or ""
    if field == "date" and value:
        return f"{value[:10]} {value[11:13]}"
    return str(value)


def _want(row: dict[str, str], field: str) -> str:
    column = {"reference_id": "refid", "date": "created"}.get(field, field)
    value = row.get(column, "")
    return value[:13] if field == "date" else value


def main() -> int:
    rows = manifest()
    files = corpus_files()
    if not rows or not CORPUS.is_dir():
        print(f"no corpus at {CORPUS}: nothing to evaluate")
        return 0
    agree: dict[str, dict[str, Counter[str]]] = {"routing": {}, "partial": {}}
    mismatches: list[str] = []
    raised: list[str] = []
    invalid: list[str] = []
    for path in files:
        refid = path.stem
        row = rows.get(refid)
        if row is None:
            continue
        group = "partial" if row["header_kind"] == "partial_extract_notice" else "routing"
        try:
            record = parse_cable(
                path.read_text(encoding="utf-8", errors="replace"), source_file=path.name
            )
        except ParseError as exc:
            raised.append(f"{refid}: {exc}")
            continue
        try:
            validate_record(record)
        except ValidationError as exc:
            invalid.append(f"{refid}: {exc}")
        for field in FIELDS:
            want = _want(row, field)
            counts = agree[group].setdefault(field, Counter())
            if not want:
                counts["skipped"] += 1
                continue
            got = _got(record, field)
            counts["total"] += 1
            if got == want:
                counts["ok"] += 1
            else:
                mismatches.append(f"  [{group}] {refid} {field}: got {got!r}, published {want!r}")
    failed = _report(agree, mismatches, raised, invalid, len(files))
    return 1 if failed else 0


def _report(
    agree: dict[str, dict[str, Counter[str]]],
    mismatches: list[str],
    raised: list[str],
    invalid: list[str],
    n_files: int,
) -> bool:
    print(f"parsed {n_files} cables from {CORPUS}")
    failed = False
    for group, label in (("routing", "with routing header"), ("partial", "partial extracts")):
        print(f"\n{label}:")
        print(f"  {'field':<15} {'agree':>7} {'total':>6} {'%':>8} {'skipped':>8}  target")
        for field in FIELDS:
            c = agree[group].get(field, Counter())
            pct = 100.0 * c["ok"] / c["total"] if c["total"] else 100.0
            target = TARGETS[field] if group == "routing" else None
            verdict = "" if target is None else ("ok" if pct >= target else "MISSED")
            failed |= verdict == "MISSED"
            print(
                f"  {field:<15} {c['ok']:>7} {c['total']:>6} {pct:>7.2f}% {c['skipped']:>8}  "
                f"{'' if target is None else f'>= {target}% {verdict}'}"
            )
    print(f"\nraised: {len(raised)}   invalid records: {len(invalid)}")
    for line in raised + invalid:
        print("  " + line)
    print(f"\nmismatches ({len(mismatches)}):")
    for line in mismatches:
        print(line)
    return failed or bool(raised) or bool(invalid)


if __name__ == "__main__":
    sys.exit(main())
