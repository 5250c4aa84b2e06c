"""Table-driven over the real cables in ../shared/cables (skipped where that folder is absent)."""

from __future__ import annotations

from pathlib import Path

import pytest

from bench.corpus import CORPUS, manifest
from worker.core.validate import validate_record
from worker.parse import parse_cable

ROWS = manifest()
FILES = sorted(CORPUS.glob("*.txt")) if CORPUS.is_dir() else []
needs_corpus = pytest.mark.skipif(not FILES, reason=f"real cables not found at {CORPUS}")


@needs_corpus
@pytest.mark.parametrize("path", FILES, ids=lambda p: p.stem)
def test_real_cable_parses_to_valid_record(path: Path) -> None:
    """Every real cable parses without exception into a record the schema accepts."""
    record = parse_cable(path.read_text(encoding="utf-8", errors="replace"), source_file=path.name)
    validate_record(record)
    assert record["source_file"] == path.name


@needs_corpus
def test_corpus_agreement_meets_targets() -> None:
    """Reference id and date agree with the manifest on ≥ 99.5% of routed cables, origin ≥ 99%."""
    agree = {"reference_id": 0, "date": 0, "origin": 0}
    total = 0
    for path in FILES:
        row = ROWS.get(path.stem)
        if not row or row["header_kind"] != "routing" or not row["created"]:
            continue
        total += 1
        record = parse_cable(path.read_text(encoding="utf-8", errors="replace"))
        agree["reference_id"] += record["reference_id"] == row["refid"]
        agree["date"] += (record["date"] or "")[:13].replace("T", " ") == row["created"][:13]
        agree["origin"] += record["origin"] == row["origin"]
    assert total > 0
    targets = {"reference_id": 0.995, "date": 0.995, "origin": 0.99}
    for field, count in agree.items():
        assert count / total >= targets[field], f"{field}: {count}/{total}"
