"""The user's own example: the web-scraped Almaty cable the project started from."""

from __future__ import annotations

from pathlib import Path

import pytest

from worker.core.validate import validate_record
from worker.parse import parse_cable
from worker.record import CableRecord

SAMPLE = Path(__file__).resolve().parent.parent / "fixtures" / "06ALMATY598.scraped.txt"


@pytest.fixture(scope="module")
def record() -> CableRecord:
    """The sample parsed once for the module."""
    return parse_cable(SAMPLE.read_text(encoding="utf-8"), source_file=SAMPLE.name)


def test_identity(record: CableRecord) -> None:
    """Reference id, date, classification and origin are what the publisher lists."""
    assert record["reference_id"] == "06ALMATY598"
    assert record["date"] == "2006-02-14T11:33:00Z"
    assert record["classification"] == "CONFIDENTIAL"
    assert record["origin"] == "Embassy Almaty"
    assert record["precedence"] == "PRIORITY"
    assert record["section"] == {"number": 1, "total": 2}


def test_tags_unwrapped_from_markdown_links(record: CableRecord) -> None:
    """``[PHUM](#)`` wrappers are removed and each tag gets its kind."""
    assert [t["code"] for t in record["tags"]] == ["PHUM", "PREF", "PTER", "KZ", "UZ"]
    assert [t["kind"] for t in record["tags"]] == ["subject"] * 3 + ["country"] * 2


def test_references_resolved_with_own_year(record: CableRecord) -> None:
    """``A. ALMATY 77`` takes the cable's own year; ``05 ALMATY 4480`` keeps its own."""
    assert [r.get("id") for r in record["references"]] == [
        "06ALMATY77",
        "05ALMATY4480",
        "05ALMATY4393",
    ]


def test_classified_by_and_signature(record: CableRecord) -> None:
    """The classifying officer, the reasons and the signature are extracted."""
    classified_by = record["classified_by"]
    assert classified_by is not None
    assert classified_by["name"] == "Mark Asquino"
    assert classified_by["title"] == "DCM"
    assert classified_by["reasons"] == ["1.4(b)", "1.4(d)"]
    assert record["signature"] == "ORDWAY"


def test_subject_joined_and_summary(record: CableRecord) -> None:
    """The two-line subject is one line; the summary stops before 'End summary'."""
    assert record["subject"] == (
        "KAZAKHSTAN: GOK DENIES REFOULEMENT OF UZBEK REFUGEES; NAZAROV TO SWEDEN"
    )
    summary = record["summary"]
    assert summary is not None
    assert summary.startswith("Three months after a group of Uzbek citizens")
    assert summary.endswith("accepted for resettlement by Sweden.")


def test_paragraphs_and_numbering_warning(record: CableRecord) -> None:
    """Paragraphs keep their numbers and markings; the 3 → 14 jump is a warning."""
    numbers = [p["number"] for p in record["paragraphs"]]
    assert numbers == [1, 2, 3, 14, 15]
    assert {p["classification"] for p in record["paragraphs"]} == {"C"}
    assert record["paragraphs"][1]["heading"] == "November Refoulement of Uzbeks"
    codes = [w["code"] for w in record["warnings"]]
    assert "paragraph_numbering" in codes


def test_markers_removed_everywhere(record: CableRecord) -> None:
    """The continuation marker ``ALMATY 00000598 002 OF 002`` appears in no field."""
    last = record["paragraphs"][-1]["text"]
    assert "00000598" not in last
    assert "ORDWAY" not in last
    assert "(#)" not in str(record)


def test_sample_record_is_valid(record: CableRecord) -> None:
    """The record satisfies the cable schema."""
    validate_record(record)
    assert record["source_file"] == SAMPLE.name
