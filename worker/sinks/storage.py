"""The storage sink: records into the SQL cable store, with a receipt per envelope and, for
deliveries that carry their arrival, the original and its provenance row."""

from __future__ import annotations

from collections.abc import Sequence

from worker.sinks.base import Delivery
from worker.storage import CableStore
from worker.storage.provenance import Arrival


class StorageSink:
    """Writes each batch in one transaction; a redelivered batch changes nothing."""

    def __init__(self, database_url: str, name: str = "storage") -> None:
        self.name = name
        self._store = CableStore(database_url)

    def write_batch(self, deliveries: Sequence[Delivery]) -> list[str]:
        """Store the records and their receipts; return inserted/unchanged/revised per item."""
        result = self._store.write_batch(
            [d.record for d in deliveries],
            [d.message_id for d in deliveries],
            sink=self.name,
            arrivals=[Arrival.from_message(d.arrival) if d.arrival else None for d in deliveries],
        )
        return [outcome.outcome for outcome in result.outcomes]

    def close(self) -> None:
        """Close this process's connections."""
        self._store.close()
