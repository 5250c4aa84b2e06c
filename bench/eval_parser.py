"""`make eval`: parse the dev corpus and compare with the published metadata in manifest.tsv,
then with the peer parser's output (see :mod:`bench.peer`).

Fields compared with the manifest: reference id, date (to the hour: the published minute is
unreliable), classification and origin. Rows whose ground truth is empty are skipped and
counted; cables that survive only as a partial extract (no routing header) are reported apart.

With the peer, on the cables with a routing header: agreement per field, every disagreement
(ours | peer | the line of the cable) with its verdict from the adjudication table, and the
accuracy of this parser and of the peer on the adjudicated disagreements.
"""

from __future__ import annotations

import sys
from collections import Counter
from pathlib import Path
from typing import Any, Literal

from bench import peer as peer_
from bench.corpus import CORPUS, corpus_files, manifest
from worker.core.validate import validate_record
from worker.errors import ParseError, ValidationError
from worker.parse import parse_cable
from worker.record import CableRecord

Field = Literal["reference_id", "date", "classification", "origin"]
FIELDS: tuple[Field, ...] = ("reference_id", "date", "classification", "origin")
TARGETS = {"reference_id": 99.5, "date": 99.5, "classification": 99.5, "origin": 99.0}


def _got(record: CableRecord, field: Field) -> str:
    value = record[field] or ""
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
    peer_rows = peer_.load_peer()
    comparison = _PeerComparison()
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
        if group == "routing" and refid in peer_rows:
            comparison.add(refid, record, peer_rows[refid], path)
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
    if peer_rows:
        failed |= comparison.report()
    return 1 if failed else 0


class _PeerComparison:
    """Agreement with the peer per field, and the disagreements with their verdicts."""

    def __init__(self) -> None:
        self.cables = 0
        self.agree: Counter[str] = Counter()
        self.disagreements: list[tuple[str, str, str, str, str]] = []
        self.table = peer_.load_adjudication()

    def add(self, refid: str, record: CableRecord, row: dict[str, Any], path: Path) -> None:
        self.cables += 1
        text: str | None = None
        for field in peer_.FIELDS:
            ours, theirs = peer_.ours(record, field), peer_.theirs(row, field)
            if ours == theirs:
                self.agree[field] += 1
                continue
            text = text or path.read_text(encoding="utf-8", errors="replace")
            line = peer_.cable_line(text, field, (ours, theirs))
            self.disagreements.append((refid, field, ours, theirs, line))

    def report(self) -> bool:
        """Print the peer section; True when a target is missed or the table is out of date."""
        verdicts: dict[str, Counter[str]] = {f: Counter() for f in peer_.FIELDS}
        unjudged: list[str] = []
        for refid, field, ours, _theirs, _line in self.disagreements:
            verdict = self.table.get((refid, field))
            if verdict is None or verdict.ours != ours:
                unjudged.append(f"{refid} {field}")
            else:
                verdicts[field][verdict.right] += 1
        print(f"\npeer parser ({peer_.PEER.name}), {self.cables} cables with a routing header:")
        print(
            f"  {'field':<15} {'agree':>7} {'%':>8} {'ours right':>11} {'peer right':>11} "
            f"{'neither':>8} {'agree or ours right':>20}  target"
        )
        failed = False
        for field in peer_.FIELDS:
            agree, judged = self.agree[field], verdicts[field]
            score = 100.0 * (agree + judged["ours"]) / self.cables if self.cables else 100.0
            mark = "ok" if score >= peer_.TARGET else "MISSED"
            failed |= mark == "MISSED"
            print(
                f"  {field:<15} {agree:>7} {100.0 * agree / self.cables:>7.2f}% "
                f"{judged['ours']:>11} {judged['peer']:>11} {judged['neither']:>8} "
                f"{score:>19.2f}%  >= {peer_.TARGET}% {mark}"
            )
        total = sum(sum(c.values()) for c in verdicts.values())
        ours_right = sum(c["ours"] for c in verdicts.values())
        peer_right = sum(c["peer"] for c in verdicts.values())
        if total:
            ours_pct, peer_pct = 100.0 * ours_right / total, 100.0 * peer_right / total
            mark = "ok" if ours_pct >= peer_.ADJUDICATED_TARGET else "MISSED"
            failed |= mark == "MISSED"
            print(
                f"\nadjudicated disagreements: {total}; this parser right in {ours_right} "
                f"({ours_pct:.1f}%, >= {peer_.ADJUDICATED_TARGET}% {mark}), "
                f"the peer in {peer_right} ({peer_pct:.1f}%), "
                f"neither in {total - ours_right - peer_right}"
            )
        print(f"not adjudicated (or our value changed since): {len(unjudged)}")
        for item in unjudged:
            print("  " + item)
        print(f"\ndisagreements with the peer ({len(self.disagreements)}): ours | peer | cable")
        for refid, field, ours, theirs, line in self.disagreements:
            verdict = self.table.get((refid, field))
            mark = verdict.right if verdict and verdict.ours == ours else "?"
            print(f"  [{mark}] {refid} {field}: {ours!r} | {theirs!r} | {line!r}")
        return failed or bool(unjudged)


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
