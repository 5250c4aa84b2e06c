"""Contract of receipts and the redelivery counter, the same on SQLite and PostgreSQL."""

from __future__ import annotations

from collections.abc import Callable, Iterator
from datetime import UTC, datetime, timedelta
from typing import Any

import pytest

from worker.errors import PermanentSinkError
from worker.storage import CableStore, Receipt, ReceiptStore
from worker.storage.catalog import Catalog

RecordFactory = Callable[..., dict[str, Any]]


@pytest.fixture
def receipts(store_url: str) -> Iterator[ReceiptStore]:
    """A receipt store on the test database."""
    receipt_store = ReceiptStore(store_url)
    yield receipt_store
    receipt_store.close()


def test_batch_writes_one_receipt_per_envelope_with_its_outcome(
    store: CableStore, receipts: ReceiptStore, make_record: RecordFactory
) -> None:
    """Receipts record each envelope's outcome; a redelivered batch adds no receipt."""
    batch = [make_record("06ALMATY598"), make_record("06ALMATY599")]
    store.write_batch(batch, ["m1", "m2"])
    store.write_batch(batch, ["m1", "m2"])
    store.write_batch(batch[:1], ["m3"])
    assert receipts.received(["m1", "m2", "m3", "m4"], "storage") == {"m1", "m2", "m3"}
    assert receipts.outcomes(["m1", "m2", "m3"], "storage") == {"inserted": 2, "unchanged": 1}
    assert receipts.received(["m1"], "webhook") == set()
    assert set(receipts.last_delivery_by_sink(["storage", "webhook"])) == {"storage"}


def test_failed_batch_leaves_no_receipt(
    store: CableStore, receipts: ReceiptStore, make_record: RecordFactory
) -> None:
    """A batch that fails writes neither its cables nor its receipts."""
    bad = make_record("06ALMATY598")
    bad["reference_id"] = ""
    with pytest.raises(PermanentSinkError):
        store.write_batch([make_record("06ALMATY599"), bad], ["m1", "m2"])
    assert receipts.received(["m1", "m2"], "storage") == set()
    assert store.count() == 0


def test_message_ids_must_match_records(store: CableStore, make_record: RecordFactory) -> None:
    """One message id per record, or the call is refused before anything is written."""
    with pytest.raises(ValueError, match="2 message ids for 1 records"):
        store.write_batch([make_record("06ALMATY598")], ["m1", "m2"])


def test_receipts_added_directly_are_idempotent(receipts: ReceiptStore) -> None:
    """Adding the same receipt twice keeps one, with its first outcome."""
    receipts.add_many([Receipt("m1", "webhook", "06ALMATY598", "delivered")])
    receipts.add_many([Receipt("m1", "webhook", "06ALMATY598", "withheld")])
    assert receipts.outcomes(["m1"], "webhook") == {"delivered": 1}


def test_redelivery_count_grows_and_is_forgotten(receipts: ReceiptStore) -> None:
    """Each redelivery adds one to its message's count; forgetting starts it over."""
    assert [receipts.count_redelivery("task-1") for _ in range(3)] == [1, 2, 3]
    assert receipts.count_redelivery("task-2") == 1
    receipts.forget_redelivery("task-1")
    assert receipts.count_redelivery("task-1") == 1


def test_accepted_envelopes_read_back_as_written_and_the_first_acceptance_stays(
    store_url: str, receipts: ReceiptStore
) -> None:
    """``accept`` writes each envelope's source and a UTC time that reads back aware and
    current, in one statement per backend; accepting an id again keeps the first record, and
    forgetting drops only the ids named."""
    before = datetime.now(UTC)
    receipts.accept(
        [
            {"id": "m1", "source": "feed-a", "sha256": "a" * 64},
            {"id": "m2", "source": None, "sha256": "b" * 64},
        ]
    )
    receipts.accept([{"id": "m1", "source": "feed-b", "sha256": "c" * 64}])
    catalog = Catalog(store_url)
    try:
        first, second = catalog.message("m1")["accepted"], catalog.message("m2")["accepted"]
        receipts.forget_accepted(["m2"])
        assert catalog.message("m2")["accepted"] is None
        assert catalog.message("unknown")["accepted"] is None
    finally:
        catalog.close()
    assert (first.source, second.source) == ("feed-a", None)
    for row in (first, second):
        assert row.accepted_at.tzinfo is not None
        assert before - timedelta(seconds=1) <= row.accepted_at <= datetime.now(UTC)
