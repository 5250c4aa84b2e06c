"""The peer parser's output (cablemap, ../shared/cables/peer/cablemap.jsonl) and how a record is
compared with it, field by field; and the adjudication table of the disagreements.

The peer is a second opinion, not the truth. Where the two disagree, a person read the cable
and wrote down in ``tests/parse/adjudication.tsv`` what it says and who was right.

Comparison, per field, after the same normalisation on both sides (upper case, spaces
collapsed; full stops and commas ignored in names, so ``TIMKEN JR`` is the peer's
``["TIMKEN", "JR"]`` and ``Clark T. Randt, Jr.`` its ``CLARK T. RANDT, JR.``): signature,
classified_by name, declassification date, references (the set of cable ids), tags (in order)
and subject.
"""

from __future__ import annotations

import csv
import re
from collections.abc import Iterator
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import orjson

from bench.corpus import CABLES, ROOT
from worker.record import CableRecord

PEER = CABLES / "peer" / "cablemap.jsonl"
ADJUDICATION = ROOT / "tests" / "parse" / "adjudication.tsv"
FIELDS = ("signature", "classified_by", "declassify_on", "references", "tags", "subject")
VERDICTS = ("ours", "peer", "neither")
TARGET = 97.0  # % of cables where the parser agrees with the peer or was adjudicated right
ADJUDICATED_TARGET = 90.0  # % of adjudicated disagreements where the parser was right

# Where in the cable a reader finds each field: the line shown beside a disagreement.
_FIELD_LINE = {
    "classified_by": re.compile(r"classified\s+by|derived\s+from", re.I),
    "declassify_on": re.compile(r"\bDECL\b|E\.\s?O\.|\bEO 1|\bDNG\b|declassif", re.I),
    "references": re.compile(r"^\s*(?:REFS?|REFTELS?)\b|\bREF:", re.I),
    "tags": re.compile(r"\bTAGS?\b", re.I),
    "subject": re.compile(r"^\s*SUBJ|\bSUBJECT:", re.I),
}


def load_peer(path: Path = PEER) -> dict[str, dict[str, Any]]:
    """The peer's output keyed by reference id (empty when the file is absent)."""
    if not path.is_file():
        return {}
    rows = (orjson.loads(line) for line in path.read_bytes().splitlines() if line.strip())
    return {row["reference_id"]: row for row in rows}


def _text(value: object) -> str:
    return " ".join(str(value).split()).upper() if value else ""


def _name(value: object) -> str:
    return " ".join(_text(value).replace(".", " ").replace(",", " ").split())


def ours(record: CableRecord, field: str) -> str:
    """The record's value of ``field``, normalised for comparison."""
    if field == "signature":
        return _name(record["signature"])
    if field == "classified_by":
        classified_by = record["classified_by"]
        return _name(classified_by["name"] if classified_by else None)
    if field == "declassify_on":
        return record["declassify_on"] or ""
    if field == "references":
        return " ".join(sorted({r["id"] for r in record["references"] if "id" in r}))
    if field == "tags":
        return " | ".join(_text(t["code"]) for t in record["tags"])
    return _text(record["subject"])


def theirs(row: dict[str, Any], field: str) -> str:
    """The peer's value of ``field``, normalised the same way."""
    if field in ("signature", "classified_by"):
        names = row["signed_by" if field == "signature" else "classified_by"] or []
        return " ".join(dict.fromkeys(_name(n) for n in names if _name(n)))
    if field == "declassify_on":
        return row["nondisclosure_deadline"] or ""
    if field == "references":
        return " ".join(sorted({r["value"] for r in row["references"] if r["kind"] == 1}))
    if field == "tags":
        return " | ".join(_text(t) for t in row["tags"])
    return _text(row["subject"])


def cable_line(text: str, field: str, values: tuple[str, ...]) -> str:
    """The line of the cable a reader looks at for ``field``: its labelled line, or for the
    signature the last line that holds either side's name (else the last line of text)."""
    lines = [line.strip() for line in text.splitlines() if line.strip()]
    if field == "signature":
        words = [v.split()[-1] for v in values if v]
        for line in reversed(lines[-12:]):
            if any(w in line.upper() for w in words):
                return line[-160:]
        return lines[-1][-160:] if lines else ""
    pattern = _FIELD_LINE[field]
    return next((line[:160] for line in lines if pattern.search(line)), "")


@dataclass(frozen=True)
class Verdict:
    """One row of the adjudication table."""

    reference_id: str
    field: str
    ours: str
    peer: str
    cable: str
    right: str
    note: str


def load_adjudication(path: Path = ADJUDICATION) -> dict[tuple[str, str], Verdict]:
    """The adjudication table keyed by (reference id, field); empty when absent."""
    if not path.is_file():
        return {}
    with path.open(newline="", encoding="utf-8") as handle:
        rows: Iterator[dict[str, str]] = csv.DictReader(
            (line for line in handle if not line.startswith("#")), delimiter="\t"
        )
        table = [Verdict(**row) for row in rows]
    return {(v.reference_id, v.field): v for v in table}
