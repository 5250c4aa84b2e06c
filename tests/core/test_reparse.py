"""The pure core of reparse: an original wrapped again in an envelope, derived like an arrival."""

from __future__ import annotations

import hashlib
from datetime import UTC, datetime
from pathlib import Path

from worker.core import pipeline
from worker.core.pipeline import Failure, Parsed
from worker.core.reparse import envelope_of, message_id, rederive

SAMPLE = Path(__file__).resolve().parents[1] / "fixtures" / "06ALMATY598.scraped.txt"


def _envelope(text: str, reference_id: str = "06ALMATY598") -> dict[str, object]:
    sha256 = hashlib.sha256(text.encode()).hexdigest()
    return envelope_of("run-1", reference_id, sha256, text, now=datetime(2026, 12, 2, tzinfo=UTC))


def test_the_envelope_of_an_original_is_a_valid_envelope_with_a_stable_id() -> None:
    """It passes the intake check (schema and sha256), so a dead letter of it replays through
    intake; its id is the same every time the run tries that cable, and differs by run."""
    envelope = _envelope(SAMPLE.read_text(encoding="utf-8"))
    assert pipeline.check(envelope) is None
    assert envelope["id"] == message_id("run-1", "06ALMATY598")
    assert message_id("run-2", "06ALMATY598") != envelope["id"]
    assert envelope["source"] == "reparse"
    assert envelope["received_at"] == "2026-12-02T00:00:00.000Z"
    assert envelope["metadata"] == {"reparse_run": "run-1", "reference_id": "06ALMATY598"}


def test_an_original_derives_the_record_it_is_stored_under() -> None:
    """The sample re-derives to a valid record with its own reference id."""
    outcome = rederive(_envelope(SAMPLE.read_text(encoding="utf-8")), "06ALMATY598")
    assert isinstance(outcome, Parsed)
    assert outcome.record["reference_id"] == "06ALMATY598"


def test_a_text_that_is_no_longer_a_cable_is_a_parse_failure_naming_the_cable() -> None:
    """The failure is the parse stage's, carries the envelope and the reference id."""
    envelope = _envelope("Dear colleague, the meeting moved to Tuesday.\n", "06ALMATY1")
    outcome = rederive(envelope, "06ALMATY1")
    assert isinstance(outcome, Failure)
    assert (outcome.stage, outcome.reference_id) == ("parse", "06ALMATY1")
    assert outcome.envelope == envelope


def test_a_record_under_another_reference_id_is_not_moved() -> None:
    """An original that now parses as another cable fails validation (ReferenceIdChanged)."""
    outcome = rederive(_envelope(SAMPLE.read_text(encoding="utf-8"), "06ALMATY1"), "06ALMATY1")
    assert isinstance(outcome, Failure)
    assert (outcome.stage, outcome.error_class) == ("validate", "ReferenceIdChanged")
    assert "06ALMATY598" in outcome.reason
