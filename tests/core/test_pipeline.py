"""The pure ingest core: each envelope becomes a record or a dead letter with its stage."""

from __future__ import annotations

import hashlib
from pathlib import Path
from typing import Any

import pytest

from worker.core.pipeline import Failure, Parsed, dead_letter, ingest, ingest_batch
from worker.core.validate import validate_dead_letter
from worker.model import PARSER_VERSION

SAMPLE = (Path(__file__).resolve().parents[1] / "fixtures" / "06ALMATY598.scraped.txt").read_text()


def envelope(text: str, **overrides: Any) -> dict[str, Any]:
    """A well-formed envelope around ``text``."""
    doc: dict[str, Any] = {
        "id": "m-1",
        "source": "test",
        "received_at": "2026-11-28T04:44:48Z",
        "sha256": hashlib.sha256(text.encode()).hexdigest(),
        "text": text,
        "metadata": {"source_file": "06ALMATY598.scraped.txt"},
    }
    doc.update(overrides)
    return doc


def test_good_envelope_gives_a_record() -> None:
    """A real cable parses and validates; the file name stays with the arrival (provenance),
    out of the record, and the record names the parser that derived it."""
    outcome = ingest(envelope(SAMPLE))
    assert isinstance(outcome, Parsed)
    assert outcome.record["reference_id"] == "06ALMATY598"
    assert "source_file" not in outcome.record
    assert outcome.record["parser_version"] == PARSER_VERSION


@pytest.mark.parametrize(
    ("doc", "stage", "error_class"),
    [
        (envelope("not a cable at all"), "parse", "ParseError"),
        (envelope(""), "parse", "ParseError"),
        (envelope(SAMPLE, sha256="0" * 64), "intake", "IntegrityError"),
        (envelope(SAMPLE, received_at="yesterday"), "intake", "ValidationError"),
        ({"text": SAMPLE}, "intake", "ValidationError"),
    ],
)
def test_bad_envelopes_fail_at_their_stage(
    doc: dict[str, Any], stage: str, error_class: str
) -> None:
    """Each kind of bad input is a Failure naming its stage and error class."""
    outcome = ingest(doc)
    assert isinstance(outcome, Failure)
    assert (outcome.stage, outcome.error_class) == (stage, error_class)
    assert outcome.reason


def test_batch_outcomes_are_per_cable() -> None:
    """One bad cable in a batch does not stop its batch-mates."""
    parsed, failed = ingest_batch([envelope(SAMPLE), envelope("garbage"), envelope(SAMPLE)])
    assert len(parsed) == 2
    assert [f.stage for f in failed] == ["parse"]


def test_producer_metadata_cannot_change_the_classification() -> None:
    """A classification claimed in metadata is ignored: only the text decides."""
    doc = envelope(SAMPLE, metadata={"classification": "UNCLASSIFIED"})
    outcome = ingest(doc)
    assert isinstance(outcome, Parsed)
    assert outcome.record["classification"] == "CONFIDENTIAL"


def test_dead_letter_document_is_valid_and_replayable() -> None:
    """The dead letter validates against its schema and carries the envelope to replay."""
    bad = envelope(SAMPLE, sha256="f" * 64)
    outcome = ingest(bad)
    assert isinstance(outcome, Failure)
    letter = dead_letter(outcome, now="2026-11-28T05:00:00Z")
    validate_dead_letter(letter)
    assert letter["payload"] == bad
    assert letter["message_id"] == "m-1"
    assert letter["stage"] == "intake"
