"""Tests for worker.core.validate: compiled validators, JSON-pointer paths, all errors collected."""

from __future__ import annotations

import copy
import datetime
import subprocess
import sys
import types
from pathlib import Path
from typing import Any

import pytest

from worker.core.validate import (
    validate_dead_letter,
    validate_envelope,
    validate_record,
    violations,
)
from worker.errors import SchemaViolation, ValidationError

DELETE = object()
"""Marker value in a case table: remove the key instead of setting it."""


def _edit(document: dict[str, Any], pointer: str, value: object) -> dict[str, Any]:
    """Return a deep copy of ``document`` with ``pointer`` set to ``value`` (or removed)."""
    edited = copy.deepcopy(document)
    *parents, last = pointer.lstrip("/").split("/")
    target: Any = edited
    for part in parents:
        target = target[int(part)] if isinstance(target, list) else target[part]
    if isinstance(target, list):
        target[int(last)] = value
    elif value is DELETE:
        del target[last]
    else:
        target[last] = value
    return edited


def _paths(name: str, document: object) -> set[str]:
    return {violation.path for violation in violations(name, document)}


@pytest.fixture
def full_record(minimal_record: dict[str, Any]) -> dict[str, Any]:
    """Return a valid record with every optional sub-object and list populated."""
    recipient: dict[str, Any] = {
        "routing_code": "RUEHC",
        "name": "SECSTATE WASHDC",
        "precedence": "PRIORITY",
        "serial": "4102",
    }
    return minimal_record | {
        "date": "2006-02-14T11:33:00Z",
        "precedence": "PRIORITY",
        "origin": "Embassy Almaty",
        "fm": "AMEMBASSY ALMATY",
        "classification": "CONFIDENTIAL",
        "caveats": ["SIPDIS"],
        "section": {"number": 1, "total": 2},
        "routing": {
            "transmission_id": "VZCZCXRO6349",
            "prosigns": "PP",
            "routing_indicators": ["RUEHDBU"],
            "station": "RUEHTA",
            "serial": "0598",
            "section": 1,
            "julian_day": 45,
            "time": "1133",
            "security": "ZNY CCCCC ZZH",
        },
        "to": [recipient],
        "info": [recipient | {"routing_code": "RUCNCIS", "name": "CIS COLLECTIVE"}],
        "xmt": [recipient | {"routing_code": None, "name": "AMEMBASSY TASHKENT"}],
        "declassify_on": "2016-02-13",
        "declassification": "12958: DECL: 02/13/2016",
        "downgrade": {"to": "CO", "on": "2021-01-26", "text": "DNG: CO 01/26/2021"},
        "tags": [{"code": "PHUM", "kind": "subject"}, {"code": "KZ", "kind": "country"}],
        "subject": "KAZAKHSTAN: GOK DENIES REFOULEMENT OF UZBEK REFUGEES; NAZAROV TO SWEDEN",
        "references": [
            {"label": "A", "raw": "ALMATY 77", "id": "06ALMATY77"},
            {"label": "B", "raw": "05 ALMATY 4480"},
        ],
        "classified_by": {
            "name": "Mark Asquino",
            "title": "DCM",
            "reasons": ["1.4(b)", "1.4(d)"],
            "derived_from": None,
            "text": "DCM Mark Asquino, reasons 1.4 (B) and (D).",
        },
        "summary": "Three months after a group of Uzbek citizens was forcibly returned...",
        "paragraphs": [
            {"number": 1, "classification": "C", "heading": None, "text": "Summary: ..."},
            {"number": None, "classification": None, "heading": None, "text": "ORDWAY"},
        ],
        "signature": "ORDWAY",
        "warnings": [{"code": "missing_section", "message": "expected section 2 of 2"}],
        "source_file": "06ALMATY598.txt",
    }


def test_minimal_record_is_valid(minimal_record: dict[str, Any]) -> None:
    """The smallest record (every absent value null or empty) passes."""
    validate_record(minimal_record)
    assert violations("cable", minimal_record) == []


def test_full_record_is_valid(full_record: dict[str, Any]) -> None:
    """A record with every sub-object populated passes."""
    validate_record(full_record)


def test_minimal_envelope_is_valid(minimal_envelope: dict[str, Any]) -> None:
    """The smallest envelope passes, and so does one with scalar metadata."""
    validate_envelope(minimal_envelope)
    metadata = {"feed": "wikileaks", "batch": 3, "backfill": True, "note": None}
    validate_envelope(minimal_envelope | {"metadata": metadata})


def test_minimal_dead_letter_is_valid(minimal_dead_letter: dict[str, Any]) -> None:
    """The smallest dead letter passes, and so does a replayed sink failure."""
    validate_dead_letter(minimal_dead_letter)
    replayed = minimal_dead_letter | {
        "stage": "sink:postgres",
        "schema_errors": [{"path": "", "message": "whatever"}],
        "attempts": 5,
        "replayed_at": "2024-05-02T08:00:00.250Z",
    }
    validate_dead_letter(replayed)


RECORD_CASES = [
    ("date-without-T", "/date", "2006-02-14 11:33:00Z", "/date"),
    ("date-impossible", "/date", "2006-02-30T11:33:00Z", "/date"),
    ("date-with-offset", "/date", "2006-02-14T11:33:00+00:00", "/date"),
    ("classification-enum", "/classification", "SECRET//ORCON", "/classification"),
    ("unknown-top-level", "/colour", "red", ""),
    ("unknown-in-routing", "/routing/colour", "red", "/routing"),
    ("schema-version", "/schema_version", "1.0.1", "/schema_version"),
    ("reference-id-leading-zero", "/reference_id", "06ALMATY0598", "/reference_id"),
    ("reference-id-spaces", "/reference_id", "06 ALMATY 598", "/reference_id"),
    ("precedence-enum", "/precedence", "URGENT", "/precedence"),
    ("recipient-precedence", "/to/0/precedence", "URGENT", "/to/0/precedence"),
    ("recipient-serial-digits", "/info/0/serial", "41O2", "/info/0/serial"),
    ("recipient-name-empty", "/xmt/0/name", "", "/xmt/0/name"),
    ("caveat-lowercase", "/caveats/0", "sipdis", "/caveats/0"),
    ("caveats-repeated", "/caveats", ["SIPDIS", "SIPDIS"], "/caveats"),
    ("section-zero", "/section/number", 0, "/section/number"),
    ("julian-day-367", "/routing/julian_day", 367, "/routing/julian_day"),
    ("routing-time", "/routing/time", "11:33", "/routing/time"),
    ("declassify-us-date", "/declassify_on", "02/13/2016", "/declassify_on"),
    ("tag-kind", "/tags/0/kind", "place", "/tags/0/kind"),
    ("tag-code-empty", "/tags/1/code", "", "/tags/1/code"),
    ("reference-resolved-id", "/references/0/id", "ALMATY 77", "/references/0/id"),
    ("reference-raw-empty", "/references/1/raw", "", "/references/1/raw"),
    ("classified-reason", "/classified_by/reasons/0", "1.4 (B)", "/classified_by/reasons/0"),
    ("paragraph-number", "/paragraphs/0/number", -1, "/paragraphs/0/number"),
    ("paragraph-text-type", "/paragraphs/1/text", None, "/paragraphs/1/text"),
    ("warning-code", "/warnings/0/code", "Missing-Section", "/warnings/0/code"),
    ("source-file-empty", "/source_file", "", "/source_file"),
    ("missing-subject", "/subject", DELETE, ""),
    ("missing-tag-kind", "/tags/0/kind", DELETE, "/tags/0"),
    ("missing-section-total", "/section/total", DELETE, "/section"),
    ("routing-not-object", "/routing", "VZCZC", "/routing"),
]


@pytest.mark.parametrize(
    ("pointer", "value", "expected"),
    [case[1:] for case in RECORD_CASES],
    ids=[case[0] for case in RECORD_CASES],
)
def test_invalid_record_reports_path(
    full_record: dict[str, Any], pointer: str, value: object, expected: str
) -> None:
    """Each broken record fails, and only at the JSON pointer of the broken value."""
    record = _edit(full_record, pointer, value)
    assert _paths("cable", record) == {expected}


ENVELOPE_CASES = [
    ("sha256-uppercase", "/sha256", "A" * 64, "/sha256"),
    ("sha256-short", "/sha256", "a" * 63, "/sha256"),
    ("received-at-offset", "/received_at", "2024-05-01T11:30:00+02:00", "/received_at"),
    ("received-at-not-a-date", "/received_at", "yesterday", "/received_at"),
    ("id-empty", "/id", "", "/id"),
    ("id-too-long", "/id", "x" * 129, "/id"),
    ("source-too-long", "/source", "s" * 201, "/source"),
    ("metadata-nested", "/metadata", {"k": {"nested": 1}}, "/metadata/k"),
    ("unknown-property", "/priority", 1, ""),
    ("missing-text", "/text", DELETE, ""),
]


@pytest.mark.parametrize(
    ("pointer", "value", "expected"),
    [case[1:] for case in ENVELOPE_CASES],
    ids=[case[0] for case in ENVELOPE_CASES],
)
def test_invalid_envelope_reports_path(
    minimal_envelope: dict[str, Any], pointer: str, value: object, expected: str
) -> None:
    """Each broken envelope fails, and only at the JSON pointer of the broken value."""
    envelope = _edit(minimal_envelope, pointer, value)
    assert _paths("envelope", envelope) == {expected}


RELATIVE_PATH_ERROR = {"path": "tags/0", "message": "not a JSON pointer: no leading slash"}
DEAD_LETTER_CASES = [
    ("stage-unknown", "/stage", "transform", "/stage"),
    ("stage-sink-uppercase", "/stage", "sink:Postgres", "/stage"),
    ("attempts-zero", "/attempts", 0, "/attempts"),
    ("schema-error-path", "/schema_errors", [RELATIVE_PATH_ERROR], "/schema_errors/0/path"),
    ("last-seen", "/last_seen", "2024-05-01", "/last_seen"),
    ("payload-not-object", "/payload", "raw text", "/payload"),
    ("missing-replayed-at", "/replayed_at", DELETE, ""),
]


@pytest.mark.parametrize(
    ("pointer", "value", "expected"),
    [case[1:] for case in DEAD_LETTER_CASES],
    ids=[case[0] for case in DEAD_LETTER_CASES],
)
def test_invalid_dead_letter_reports_path(
    minimal_dead_letter: dict[str, Any], pointer: str, value: object, expected: str
) -> None:
    """Each broken dead letter fails, and only at the JSON pointer of the broken value."""
    dead_letter = _edit(minimal_dead_letter, pointer, value)
    assert _paths("dead-letter", dead_letter) == {expected}


def test_all_errors_are_collected(full_record: dict[str, Any]) -> None:
    """Every violation is reported at once, not only the first one found."""
    record = _edit(full_record, "/date", "14 FEB 06")
    record = _edit(record, "/tags/0/kind", "place")
    record = _edit(record, "/colour", "red")
    record = _edit(record, "/summary", DELETE)
    with pytest.raises(ValidationError) as caught:
        validate_record(record)
    assert caught.value.schema == "cable"
    assert {v.path for v in caught.value.violations} == {"/date", "/tags/0/kind", ""}
    assert len(caught.value.violations) >= 4


def test_error_message_names_the_path(full_record: dict[str, Any]) -> None:
    """The ValidationError message names the schema and the path of the first violation."""
    record = _edit(full_record, "/tags/0/kind", "place")
    with pytest.raises(ValidationError, match=r"^cable: /tags/0/kind: \"place\" is not one of"):
        validate_record(record)


def test_violations_are_schema_violations(minimal_envelope: dict[str, Any]) -> None:
    """violations() returns SchemaViolation values with path and message."""
    found = violations("envelope", _edit(minimal_envelope, "/sha256", "nope"))
    assert found == [SchemaViolation("/sha256", found[0].message)]
    assert "nope" in found[0].message


def test_pointer_escapes_special_characters(minimal_envelope: dict[str, Any]) -> None:
    """Keys holding "/" or "~" are escaped as JSON pointer requires."""
    envelope = minimal_envelope | {"metadata": {"a/b~c": [1]}}
    assert _paths("envelope", envelope) == {"/metadata/a~1b~0c"}


def test_long_values_are_not_quoted(full_record: dict[str, Any]) -> None:
    """A long offending value is described by its size, so messages never carry cable bodies."""
    body = "The GOK's formal denial has put UNHCR in an awkward situation. " * 20
    record = _edit(full_record, "/paragraphs", body)
    [violation] = violations("cable", record)
    assert violation.path == "/paragraphs"
    assert "UNHCR" not in violation.message
    assert violation.message.startswith(f"<string of {len(body)} characters>")


def test_non_json_values_are_reported(full_record: dict[str, Any]) -> None:
    """A Python value with no JSON form is a violation at its path, not a crash."""
    record = _edit(full_record, "/date", datetime.datetime(2006, 2, 14, tzinfo=datetime.UTC))
    assert _paths("cable", record) == {"/date"}
    with pytest.raises(ValidationError, match="/date"):
        validate_record(record)


def test_read_only_mappings_are_accepted(full_record: dict[str, Any]) -> None:
    """Mappings other than dict, and tuples, are validated as JSON objects and arrays."""
    tags = tuple(types.MappingProxyType(tag) for tag in full_record["tags"])
    validate_record(types.MappingProxyType(full_record | {"tags": tags}))


def test_nothing_is_loaded_at_import() -> None:
    """Importing worker.core.validate neither reads nor compiles a schema (that waits for first use)."""
    probe = (
        "import worker.core.validate, worker.core.schemas; "
        "assert worker.core.schemas.load_schema.cache_info().currsize == 0"
    )
    root = Path(__file__).resolve().parents[2]
    subprocess.run([sys.executable, "-c", probe], cwd=root, check=True)
