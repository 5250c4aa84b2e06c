"""Where the measurement scripts find real cables: ../shared/cables beside the project."""

from __future__ import annotations

import csv
import os
from pathlib import Path

ROOT = Path(__file__).resolve().parent.parent
CABLES = Path(os.environ.get("CABLE_INGEST_CORPUS_DIR", ROOT.parent / "shared" / "cables"))
CORPUS = CABLES / "corpus"
MANIFEST = CABLES / "manifest.tsv"
SAMPLES = ROOT / "tests" / "fixtures"


def corpus_files() -> list[Path]:
    """The dev corpus when present, else the project's own sample cables."""
    if CORPUS.is_dir():
        return sorted(CORPUS.glob("*.txt"))
    return sorted(SAMPLES.glob("*.txt"))


def manifest() -> dict[str, dict[str, str]]:
    """Rows of manifest.tsv keyed by reference id (empty when absent)."""
    if not MANIFEST.is_file():
        return {}
    with MANIFEST.open(newline="", encoding="utf-8") as handle:
        return {row["refid"]: row for row in csv.DictReader(handle, delimiter="\t")}
