"""The pure core of ``reparse``: a stored original in, a record or a failure out.

The original is wrapped again in the envelope it would be if a feed sent it now (source
``reparse``, the run and the reference id in its metadata), then checked, parsed and validated
by :mod:`worker.core.pipeline` exactly as an arrival is. A failure therefore carries an
envelope: dead-lettered, ``dlq replay`` sends it through intake like any other.

A record must keep the reference id it is stored under: a parser that now reads another
reference id from the same text would move the cable, which ``reparse`` never does on its own.
That is a ``validate`` failure (``ReferenceIdChanged``), for an operator to look at.
"""

from __future__ import annotations

import uuid
from collections.abc import Mapping
from dataclasses import replace
from datetime import UTC, datetime
from typing import Any, Final

from worker.core import pipeline
from worker.core.pipeline import Failure, Parsed

SOURCE: Final = "reparse"
_NAMESPACE: Final = uuid.UUID("9b1c4a0e-6f55-4f1b-9f4e-2d7f0c1e5a11")


def message_id(run_id: str, reference_id: str) -> str:
    """The envelope id of a cable re-derived in a run: the same every time it is tried."""
    return str(uuid.uuid5(_NAMESPACE, f"{run_id}:{reference_id}"))


def envelope_of(
    run_id: str, reference_id: str, sha256: str, text: str, *, now: datetime | None = None
) -> dict[str, Any]:
    """The envelope of a stored original (``schemas/envelope.schema.json``)."""
    received = (now or datetime.now(UTC)).astimezone(UTC)
    return {
        "id": message_id(run_id, reference_id),
        "source": SOURCE,
        "received_at": received.isoformat(timespec="milliseconds").replace("+00:00", "Z"),
        "sha256": sha256,
        "text": text,
        "metadata": {"reparse_run": run_id, "reference_id": reference_id},
    }


def rederive(envelope: Mapping[str, Any], reference_id: str) -> Parsed | Failure:
    """Check, parse and validate the envelope of the original of ``reference_id``; every
    failure names that reference id."""
    outcome = pipeline.ingest(envelope)
    if isinstance(outcome, Failure):
        return replace(outcome, reference_id=reference_id)
    derived = outcome.record.get("reference_id")
    if derived != reference_id:
        reason = (
            f"the original of {reference_id} now parses as {derived!r}; reparse does not move"
            " a cable to another reference id (replaying this stores it under the new one)"
        )
        return Failure("validate", "ReferenceIdChanged", reason, envelope, [], reference_id)
    return outcome
