"""A notification sink: a :class:`~worker.sinks.base.Notifier` behind the sink protocol.

Idempotent through receipts: a delivery that already has a receipt from this sink is not sent
again, and each sent one gets a receipt. When the notifier fails part-way through a batch, the
receipts of what was sent are written before the error goes up, so the retry sends only the
rest. Clearance is checked again here (a replayed or hand-made message skips routing): a record
above the sink's clearance is withheld, never sent.
"""

from __future__ import annotations

from collections.abc import Sequence

from worker.errors import SinkError
from worker.routing.config import SinkConfig
from worker.routing.notification import build_notification, delivery_key
from worker.routing.rules import above_clearance
from worker.sinks.base import Delivery, Notifier
from worker.storage import Receipt, ReceiptStore


class NotificationSink:
    """Sends each delivery once; outcomes ``delivered``, ``duplicate`` or ``withheld``."""

    def __init__(self, config: SinkConfig, notifier: Notifier, receipts: ReceiptStore) -> None:
        self.name = config.name
        self.config = config
        self.notifier = notifier
        self._receipts = receipts

    def write_batch(self, deliveries: Sequence[Delivery]) -> list[str]:
        """Send what has no receipt yet; return an outcome per delivery."""
        seen = self._receipts.received((d.message_id for d in deliveries), self.name)
        outcomes: list[str] = []
        done: list[Receipt] = []
        try:
            for delivery in deliveries:
                reference_id = delivery.record.get("reference_id")
                if delivery.message_id in seen:
                    outcomes.append("duplicate")
                    continue
                if above_clearance(delivery.record, self.config.max_classification):
                    outcome = "withheld"
                else:
                    self.notifier.send(self._document(delivery), self._key(delivery))
                    outcome = "delivered"
                seen.add(delivery.message_id)
                done.append(Receipt(delivery.message_id, self.name, reference_id, outcome))
                outcomes.append(outcome)
        except SinkError:
            if done:
                self._receipts.add_many(done)
            raise
        self._receipts.add_many(done)
        return outcomes

    def _key(self, delivery: Delivery) -> str:
        return delivery_key(delivery.message_id, self.name)

    def _document(self, delivery: Delivery) -> dict[str, object]:
        return build_notification(
            delivery.record,
            message_id=delivery.message_id,
            sink=self.name,
            rule=delivery.rule,
            include_body=self.config.include_body,
        )

    def close(self) -> None:
        """Close the notifier's connections."""
        self.notifier.close()
