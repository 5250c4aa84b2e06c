"""Shared fixtures: the smallest valid document of each schema, fresh for every test."""

from __future__ import annotations

import hashlib
from typing import Any

import pytest

from worker.model import PARSER_VERSION, SCHEMA_VERSION

_TEXT = "C O N F I D E N T I A L ALMATY 000598\n\nSUBJECT: KAZAKHSTAN: GOK DENIES REFOULEMENT\n"


@pytest.fixture
def minimal_record() -> dict[str, Any]:
    """Return the smallest valid cable record: every required field, absent values null or []."""
    return {
        "schema_version": SCHEMA_VERSION,
        "parser_version": PARSER_VERSION,
        "reference_id": "06ALMATY598",
        "date": None,
        "precedence": None,
        "origin": None,
        "fm": None,
        "classification": None,
        "caveats": [],
        "section": None,
        "routing": None,
        "to": [],
        "info": [],
        "xmt": [],
        "declassify_on": None,
        "declassification": None,
        "downgrade": None,
        "tags": [],
        "subject": None,
        "references": [],
        "classified_by": None,
        "summary": None,
        "paragraphs": [],
        "signature": None,
        "warnings": [],
    }


@pytest.fixture
def minimal_envelope() -> dict[str, Any]:
    """Return the smallest valid queue envelope (no metadata)."""
    return {
        "id": "0b8f6a52-3c1e-4d0e-9a57-8d1f0c2b7e44",
        "source": "tests",
        "received_at": "2024-05-01T09:30:00Z",
        "sha256": hashlib.sha256(_TEXT.encode()).hexdigest(),
        "text": _TEXT,
    }


@pytest.fixture
def minimal_dead_letter(minimal_envelope: dict[str, Any]) -> dict[str, Any]:
    """Return the smallest valid dead letter: a parse failure carrying its envelope."""
    return {
        "id": "dl-0b8f6a52-parse",
        "stage": "parse",
        "error_class": "ParseError",
        "reason": "no classification line found",
        "schema_errors": [],
        "attempts": 1,
        "first_seen": "2024-05-01T09:30:01Z",
        "last_seen": "2024-05-01T09:30:01Z",
        "message_id": minimal_envelope["id"],
        "reference_id": None,
        "sha256": minimal_envelope["sha256"],
        "source": minimal_envelope["source"],
        "payload": minimal_envelope,
        "replayed_at": None,
    }
