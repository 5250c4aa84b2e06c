"""Reparse runs and items, the same on SQLite and PostgreSQL: what a selection takes, resuming
the unfinished run of a selection, and items settled once, in the records' transaction."""

from __future__ import annotations

import hashlib
from collections.abc import Callable, Iterator
from datetime import UTC, datetime, timedelta
from typing import Any

import pytest
from sqlalchemy import Connection

from worker.storage import BatchResult, CableStore
from worker.storage import originals as codec
from worker.storage.provenance import Arrival
from worker.storage.reparse import (
    NO_ORIGINAL,
    AlreadySettled,
    ReparseStore,
    Selection,
)

RecordFactory = Callable[..., dict[str, Any]]


def _arrival(reference_id: str) -> Arrival:
    text = f"the original text of {reference_id}\n"
    sha256 = hashlib.sha256(text.encode()).hexdigest()
    return Arrival(f"message-{reference_id}", text, sha256, source="tests")


@pytest.fixture
def ledger(store_url: str) -> Iterator[ReparseStore]:
    """A reparse store on the test database, closed afterwards."""
    runs = ReparseStore(store_url)
    yield runs
    runs.close()


def _store(store: CableStore, make_record: RecordFactory, *refs: str, **fields: Any) -> None:
    """Store cables ``refs`` with an original each."""
    store.write_batch(
        [make_record(ref, **fields) for ref in refs], arrivals=[_arrival(ref) for ref in refs]
    )


def test_a_selection_has_one_key_however_it_is_spelled() -> None:
    """Reference ids in any order and repeated give one key; other selections other keys;
    a selection is exactly one of the four ways, and the version must be one."""
    assert Selection(("B", "A", "A")).key == Selection(("A", "B")).key
    keys = {
        Selection(("A",)).key,
        Selection(everything=True).key,
        Selection(since=datetime(2026, 1, 1, tzinfo=UTC)).key,
        Selection(older_than="1.0.0").key,
    }
    assert len(keys) == 4
    with pytest.raises(ValueError, match="reference ids"):
        Selection()
    with pytest.raises(ValueError, match="reference ids"):
        Selection(("A",), everything=True)
    with pytest.raises(ValueError, match="Invalid version"):
        Selection(older_than="newest")


def test_every_stored_cable_is_an_item_and_one_without_original_is_settled_at_once(
    store: CableStore, ledger: ReparseStore, make_record: RecordFactory
) -> None:
    """--all: an item per current record; a record stored before originals is no_original
    from the start, and is never pending."""
    _store(store, make_record, "06ALMATY1", "06ALMATY2")
    store.write_batch([make_record("06ALMATY3")])  # no arrival: as before originals
    run = ledger.start(Selection(everything=True))
    assert (run.resumed, run.progress.total, run.progress.counts) == (False, 3, {NO_ORIGINAL: 1})
    assert ledger.with_outcome(run.progress.run_id, NO_ORIGINAL) == ["06ALMATY3"]
    assert list(ledger.pending(run.progress.run_id, 1)) == [["06ALMATY1"], ["06ALMATY2"]]
    assert run.progress.pending == 2


def test_reference_ids_that_are_not_stored_are_named(
    store: CableStore, ledger: ReparseStore, make_record: RecordFactory
) -> None:
    """Reference ids: the stored ones become items, the others are reported (again when
    the run is resumed)."""
    _store(store, make_record, "06ALMATY1")
    selection = Selection(("06ALMATY1", "06NOWHERE9"))
    run = ledger.start(selection)
    assert (run.progress.total, run.not_stored) == (1, ("06NOWHERE9",))
    assert ledger.start(selection).not_stored == ("06NOWHERE9",)


def test_older_than_takes_older_unknown_and_missing_parser_versions(
    store: CableStore, ledger: ReparseStore, make_record: RecordFactory
) -> None:
    """--older-than 1.10: 1.9 (older as a version, not as a string), none and a version that
    is not one are taken; 1.10.0 and 2.0 are not."""
    _store(store, make_record, "06A1", parser_version="1.9")
    _store(store, make_record, "06A2", parser_version="1.10.0")
    _store(store, make_record, "06A3", parser_version="2.0")
    _store(store, make_record, "06A4", parser_version=None)
    _store(store, make_record, "06A5", parser_version="a lost version")
    run = ledger.start(Selection(older_than="1.10"))
    assert [ref for part in ledger.pending(run.progress.run_id, 10) for ref in part] == [
        "06A1",
        "06A4",
        "06A5",
    ]


def test_since_takes_what_was_stored_since(
    store: CableStore, ledger: ReparseStore, make_record: RecordFactory
) -> None:
    """--since: records whose current revision was stored at or after the time."""
    _store(store, make_record, "06ALMATY1")
    later = datetime.now(UTC)
    _store(store, make_record, "06ALMATY2")
    run = ledger.start(Selection(since=later))
    assert list(ledger.pending(run.progress.run_id, 10)) == [["06ALMATY2"]]
    future = ledger.start(Selection(since=later + timedelta(days=1)))
    assert future.progress.total == 0


def test_the_unfinished_run_of_a_selection_is_resumed_and_a_finished_one_is_not(
    store: CableStore, ledger: ReparseStore, make_record: RecordFactory
) -> None:
    """Starting the same selection again resumes its unfinished run (the items it had, not a
    new choice); once every item is done the run finishes, and the next start is a new run."""
    _store(store, make_record, "06ALMATY1", "06ALMATY2")
    first = ledger.start(Selection(everything=True))
    run_id = first.progress.run_id
    _store(store, make_record, "06ALMATY3")  # stored after the run chose its items
    again = ledger.start(Selection(everything=True))
    assert (again.resumed, again.progress.run_id, again.progress.total) == (True, run_id, 2)
    assert [p.run_id for p in ledger.unfinished()] == [run_id]
    assert ledger.finish(run_id) is False
    assert ledger.mark(run_id, ["06ALMATY1", "06ALMATY2"], "failed") == 2
    assert ledger.finish(run_id) is True
    assert ledger.unfinished() == []
    fresh = ledger.start(Selection(everything=True))
    assert (fresh.resumed, fresh.progress.total) == (False, 3)
    assert fresh.progress.run_id != run_id


def test_items_are_settled_in_the_records_transaction(
    store: CableStore, ledger: ReparseStore, make_record: RecordFactory
) -> None:
    """write_batch(then=settle) marks each item with the record's outcome; an item settled
    already makes the batch roll back whole: the revision it would have made is not stored."""
    _store(store, make_record, "06ALMATY1", "06ALMATY2")
    run_id = ledger.start(Selection(everything=True)).progress.run_id
    originals = [_arrival("06ALMATY1").sha256, _arrival("06ALMATY2").sha256]
    records = [make_record("06ALMATY1"), make_record("06ALMATY2", subject="A NEW SUBJECT")]
    ledger.mark(run_id, ["06ALMATY2"], "failed")  # another worker got there first
    with pytest.raises(AlreadySettled):
        store.write_batch(records, originals=originals, then=ledger.settle(run_id))
    assert len(store.revisions("06ALMATY2")) == 1
    assert ledger.todo(run_id, ["06ALMATY1", "06ALMATY2"]) == ["06ALMATY1"]

    store.write_batch(records[:1], originals=originals[:1], then=ledger.settle(run_id))
    progress = ledger.progress(run_id, since=datetime.now(UTC) - timedelta(minutes=1))
    assert progress.counts == {"unchanged": 1, "failed": 1}
    assert (progress.pending, progress.done_since) == (0, 2)
    assert progress.last_done_at is not None


def test_a_failing_step_leaves_the_items_pending(
    store: CableStore, ledger: ReparseStore, make_record: RecordFactory
) -> None:
    """An error after the items were marked (inside the transaction) undoes the marks too."""
    _store(store, make_record, "06ALMATY1")
    run_id = ledger.start(Selection(everything=True)).progress.run_id
    settle = ledger.settle(run_id)

    def then(conn: Connection, result: BatchResult) -> None:
        settle(conn, result)
        raise RuntimeError("the worker died here")

    with pytest.raises(RuntimeError):
        store.write_batch([make_record("06ALMATY1")], then=then)
    assert ledger.todo(run_id, ["06ALMATY1"]) == ["06ALMATY1"]


def test_originals_are_those_of_the_current_revisions(
    store: CableStore, ledger: ReparseStore, make_record: RecordFactory
) -> None:
    """The original each current record names, read back byte for byte; None for a record
    without one and for a reference id that is not stored."""
    _store(store, make_record, "06ALMATY1")
    store.write_batch([make_record("06ALMATY2")])
    found = ledger.originals(["06ALMATY1", "06ALMATY2", "06NOWHERE9"])
    assert found["06ALMATY2"] is None
    assert found["06NOWHERE9"] is None
    original = found["06ALMATY1"]
    assert original is not None
    assert codec.decode(codec.decompress(original)) == _arrival("06ALMATY1").text
