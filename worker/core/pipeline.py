"""The pure core of the ingest task: envelope in, record or dead letter out.

No Celery, no I/O: the task deserialises a batch, calls :func:`ingest_batch`, and hands the
records to the sinks' queues and the failures to the dead-letter store. A failure is tied to
its stage (``intake``, ``parse``, ``validate``) and carries what is needed to replay it; one bad
cable never affects its batch-mates.
"""

from __future__ import annotations

import hashlib
import uuid
from collections.abc import Iterable, Mapping
from dataclasses import dataclass, field
from datetime import UTC, datetime
from typing import Any

from worker.errors import ParseError, SchemaViolation, ValidationError
from worker.parse import parse_cable
from worker.record import CableRecord

from .validate import validate_envelope, validate_record


@dataclass(frozen=True, slots=True)
class Failure:
    """Why one envelope produced no record."""

    stage: str
    error_class: str
    reason: str
    envelope: Mapping[str, Any]
    schema_errors: list[SchemaViolation] = field(default_factory=list)
    reference_id: str | None = None


@dataclass(frozen=True, slots=True)
class Parsed:
    """A valid record and the envelope it came from."""

    envelope: Mapping[str, Any]
    record: CableRecord


def check(envelope: Mapping[str, Any]) -> Failure | None:
    """The intake stage: the envelope is well formed and its text matches its sha256."""
    try:
        validate_envelope(envelope)
    except ValidationError as exc:
        return Failure("intake", type(exc).__name__, str(exc), envelope, exc.violations)
    text: str = envelope["text"]
    digest = hashlib.sha256(text.encode("utf-8", errors="surrogatepass")).hexdigest()
    if digest != envelope["sha256"]:
        reason = f"sha256 {envelope['sha256']} does not match the text (its sha256 is {digest})"
        return Failure("intake", "IntegrityError", reason, envelope)
    return None


def parse(envelope: Mapping[str, Any]) -> CableRecord | Failure:
    """The parse stage, on an envelope that passed :func:`check`. The record is derived from
    the text alone; where it came from (file name, feed) is the arrival's provenance."""
    try:
        return parse_cable(envelope["text"])
    except ParseError as exc:
        return Failure("parse", type(exc).__name__, str(exc), envelope)
    except Exception as exc:  # a parser bug (or a time limit) costs one cable, not its batch
        reason = f"the parser failed unexpectedly ({type(exc).__name__}: {exc}); please report"
        return Failure("parse", type(exc).__name__, reason, envelope)


def validate(envelope: Mapping[str, Any], record: CableRecord) -> Parsed | Failure:
    """The validate stage: the record against the cable schema."""
    try:
        validate_record(record)
    except ValidationError as exc:
        return Failure(
            "validate",
            type(exc).__name__,
            str(exc),
            envelope,
            exc.violations,
            reference_id=record["reference_id"],
        )
    return Parsed(envelope, record)


def ingest(envelope: Mapping[str, Any]) -> Parsed | Failure:
    """Check the envelope, parse its text, validate the record."""
    failure = check(envelope)
    if failure is not None:
        return failure
    record = parse(envelope)
    if isinstance(record, Failure):
        return record
    return validate(envelope, record)


def ingest_batch(
    envelopes: Iterable[Mapping[str, Any]],
) -> tuple[list[Parsed], list[Failure]]:
    """Ingest each envelope on its own: outcomes are per cable, never per batch."""
    parsed: list[Parsed] = []
    failed: list[Failure] = []
    for envelope in envelopes:
        outcome = ingest(envelope)
        if isinstance(outcome, Parsed):
            parsed.append(outcome)
        else:
            failed.append(outcome)
    return parsed, failed


def utc_now() -> str:
    """The current time as ISO 8601 UTC with a ``Z``."""
    return datetime.now(UTC).isoformat(timespec="milliseconds").replace("+00:00", "Z")


def dead_letter(
    failure: Failure,
    *,
    attempts: int = 1,
    now: str | None = None,
    message_id: str | None = None,
) -> dict[str, Any]:
    """The dead-letter document for a failure (``schemas/dead-letter.schema.json``).

    ``message_id`` is needed for sink failures, whose payload is a record, not an envelope.
    """
    seen = now or utc_now()
    envelope = failure.envelope
    return {
        "id": uuid.uuid4().hex,
        "stage": failure.stage,
        "error_class": failure.error_class,
        "reason": failure.reason,
        "schema_errors": [v.as_dict() for v in failure.schema_errors],
        "attempts": attempts,
        "first_seen": seen,
        "last_seen": seen,
        "message_id": message_id or _text_or_none(envelope.get("id")),
        "reference_id": failure.reference_id,
        "sha256": _text_or_none(envelope.get("sha256")),
        "source": _text_or_none(envelope.get("source")),
        "payload": dict(envelope),
        "replayed_at": None,
    }


def _text_or_none(value: object) -> str | None:
    return value if isinstance(value, str) else None
