"""Provenance: the originals and the arrival of every stored envelope.

An :class:`Arrival` is what one envelope brought: its text (kept as an original, once per
sha256), the feed that sent it, the producer's metadata and when it was received. The cable
store writes both inside the transaction that stores the record derived from it, so a stored
record always has its original and its arrival, and a redelivered envelope adds neither twice.
"""

from __future__ import annotations

from collections.abc import Mapping, Sequence
from dataclasses import dataclass, field
from datetime import UTC, datetime
from typing import Any

from sqlalchemy import Connection, select
from sqlalchemy.dialects import postgresql, sqlite

from worker.errors import IntegrityError
from worker.storage import originals as codec
from worker.storage.engine import parse_utc, utc_iso
from worker.storage.schema import arrivals, originals


@dataclass(frozen=True, slots=True)
class Arrival:
    """One envelope as it arrived: the original text and where and when it came from."""

    message_id: str
    text: str
    sha256: str
    source: str | None = None
    metadata: Mapping[str, Any] = field(default_factory=dict)
    received_at: str | None = None

    @classmethod
    def from_envelope(cls, envelope: Mapping[str, Any]) -> Arrival:
        """The arrival of a checked envelope (``schemas/envelope.schema.json``)."""
        source = envelope.get("source")
        received = envelope.get("received_at")
        return cls(
            message_id=str(envelope["id"]),
            text=str(envelope["text"]),
            sha256=str(envelope["sha256"]),
            source=source if isinstance(source, str) else None,
            metadata=dict(envelope.get("metadata") or {}),
            received_at=received if isinstance(received, str) else None,
        )

    def as_message(self) -> dict[str, Any]:
        """The JSON form that travels with a storage delivery on its queue."""
        return {
            "message_id": self.message_id,
            "text": self.text,
            "sha256": self.sha256,
            "source": self.source,
            "metadata": dict(self.metadata),
            "received_at": self.received_at,
        }

    def as_envelope(self) -> dict[str, Any]:
        """The envelope this arrival came in (to dead-letter and replay it through intake)."""
        envelope: dict[str, Any] = {
            "id": self.message_id,
            "source": self.source,
            "received_at": self.received_at,
            "sha256": self.sha256,
            "text": self.text,
        }
        if self.metadata:
            envelope["metadata"] = dict(self.metadata)
        return envelope

    @classmethod
    def from_message(cls, message: Mapping[str, Any]) -> Arrival:
        """Read :meth:`as_message` back."""
        return cls(
            message_id=str(message["message_id"]),
            text=str(message["text"]),
            sha256=str(message["sha256"]),
            source=message.get("source"),
            metadata=dict(message.get("metadata") or {}),
            received_at=message.get("received_at"),
        )


def _insert(backend: str, table: Any) -> Any:
    return (postgresql if backend == "postgresql" else sqlite).insert(table)


def insert_originals(conn: Connection, backend: str, items: Sequence[codec.Original]) -> None:
    """Store originals inside the caller's transaction; one already stored is kept as it is."""
    unique = {item.sha256: item for item in items}
    if not unique:
        return
    now = datetime.now(UTC)
    rows = [
        {"sha256": o.sha256, "size": o.size, "codec": o.codec, "data": o.data, "stored_at": now}
        for o in sorted(unique.values(), key=lambda o: o.sha256)
    ]
    conn.execute(_insert(backend, originals).on_conflict_do_nothing(), rows)


@dataclass(frozen=True, slots=True)
class Stored:
    """What storing an arrival did: the reference id, revision now current and the outcome."""

    arrival: Arrival
    reference_id: str
    revision: int
    outcome: str


def insert_arrivals(conn: Connection, backend: str, items: Sequence[Stored]) -> None:
    """Record arrivals inside the caller's transaction; a redelivered one is kept as first seen."""
    if not items:
        return
    now = datetime.now(UTC)
    rows = [
        {
            "message_id": s.arrival.message_id,
            "reference_id": s.reference_id,
            "revision": s.revision,
            "outcome": s.outcome,
            "source": s.arrival.source,
            "metadata": dict(s.arrival.metadata),
            "received_at": parse_utc(s.arrival.received_at),
            "stored_at": now,
            "sha256": s.arrival.sha256,
        }
        for s in items
    ]
    conn.execute(_insert(backend, arrivals).on_conflict_do_nothing(), rows)


def read_original(conn: Connection, sha256: str) -> bytes | None:
    """The exact bytes of the original ``sha256`` (checked), or None when none is stored."""
    row = conn.execute(
        select(originals.c.size, originals.c.codec, originals.c.data).where(
            originals.c.sha256 == sha256
        )
    ).one_or_none()
    if row is None:
        return None
    raw = codec.decompress(codec.Original(sha256, row.size, row.codec, bytes(row.data)))
    if len(raw) != row.size:
        raise IntegrityError(f"original {sha256}: {len(raw)} bytes, {row.size} recorded")
    return raw


def arrivals_of(conn: Connection, reference_id: str) -> list[dict[str, Any]]:
    """Every arrival of a cable, first stored first."""
    query = (
        select(arrivals)
        .where(arrivals.c.reference_id == reference_id)
        .order_by(arrivals.c.stored_at, arrivals.c.message_id)
    )
    return [
        {
            "message_id": row.message_id,
            "source": row.source,
            "metadata": row.metadata,
            "received_at": utc_iso(row.received_at),
            "stored_at": utc_iso(row.stored_at),
            "sha256": row.sha256,
            "outcome": row.outcome,
            "revision": row.revision,
        }
        for row in conn.execute(query)
    ]
