"""Contract of the dead-letter store, the same on SQLite and PostgreSQL."""

from __future__ import annotations

import copy
from datetime import UTC, datetime
from typing import Any

import pytest

from worker.core.pipeline import Failure, dead_letter, ingest
from worker.core.validate import validate_dead_letter
from worker.errors import PermanentSinkError
from worker.storage import DeadLetterStore


def letter(base: dict[str, Any], **changes: Any) -> dict[str, Any]:
    """A copy of ``base`` with fields replaced."""
    document = copy.deepcopy(base)
    document.update(changes)
    return document


def test_a_dead_letter_reads_back_as_written(
    dead_letter_store: DeadLetterStore, minimal_dead_letter: dict[str, Any]
) -> None:
    """get() returns the document that was added, valid against the dead-letter schema."""
    stored_id = dead_letter_store.add(minimal_dead_letter)
    assert stored_id == minimal_dead_letter["id"]
    found = dead_letter_store.get(stored_id)
    assert found is not None
    validate_dead_letter(found)
    assert found == minimal_dead_letter
    assert dead_letter_store.get("no-such-id") is None


def test_a_pipeline_failure_is_stored_with_its_schema_errors(
    dead_letter_store: DeadLetterStore, minimal_envelope: dict[str, Any]
) -> None:
    """A validation failure from the pipeline keeps its JSON-pointer errors and replay payload."""
    outcome = ingest(letter(minimal_envelope, received_at="yesterday"))
    assert isinstance(outcome, Failure)
    document = dead_letter(outcome, now="2024-05-01T09:30:01.250Z")
    found = dead_letter_store.get(dead_letter_store.add(document))
    assert found is not None
    validate_dead_letter(found)
    assert found["stage"] == "intake"
    assert found["schema_errors"] == document["schema_errors"] != []
    assert found["schema_errors"][0]["path"] == "/received_at"
    assert found["payload"] == document["payload"]
    assert found["first_seen"] == "2024-05-01T09:30:01.250000Z"


def test_a_repeat_counts_attempts_instead_of_adding_a_row(
    dead_letter_store: DeadLetterStore, minimal_dead_letter: dict[str, Any]
) -> None:
    """The same failure at the same stage (same sha256) is one dead letter with more attempts."""
    first_id = dead_letter_store.add(minimal_dead_letter)
    repeat = letter(
        minimal_dead_letter,
        id="another-id",
        message_id="m-2",
        reason="still no classification line",
        attempts=2,
        first_seen="2024-05-02T10:00:00Z",
        last_seen="2024-05-02T10:00:00Z",
    )
    assert dead_letter_store.add(repeat) == first_id
    found = dead_letter_store.get(first_id)
    assert found is not None
    validate_dead_letter(found)
    assert found["attempts"] == 3
    assert found["first_seen"] == "2024-05-01T09:30:01Z"
    assert found["last_seen"] == "2024-05-02T10:00:00Z"
    assert (found["reason"], found["message_id"]) == ("still no classification line", "m-2")
    assert dead_letter_store.get("another-id") is None
    other_stage = letter(minimal_dead_letter, id="dl-validate", stage="validate")
    assert dead_letter_store.add(other_stage) == "dl-validate"
    assert dead_letter_store.counts_by_stage() == {"parse": 1, "validate": 1}


def test_add_many_merges_repeats_within_one_call(
    dead_letter_store: DeadLetterStore, minimal_dead_letter: dict[str, Any]
) -> None:
    """add_many stores a batch in one go, one id per document, repeats folded together."""
    sink_failure = letter(
        minimal_dead_letter,
        id="dl-solr",
        stage="sink:solr",
        sha256=None,
        message_id="sink-message-1",
        reference_id="06ALMATY598",
    )
    batch_mate = letter(sink_failure, id="dl-solr-2", reference_id="06ALMATY599")
    ids = dead_letter_store.add_many(
        [minimal_dead_letter, sink_failure, batch_mate, letter(minimal_dead_letter, id="x")]
    )
    assert ids == [minimal_dead_letter["id"], "dl-solr", "dl-solr-2", minimal_dead_letter["id"]]
    found = dead_letter_store.get(minimal_dead_letter["id"])
    assert found is not None
    assert found["attempts"] == 2
    assert dead_letter_store.counts_by_stage() == {"parse": 1, "sink:solr": 2}
    assert dead_letter_store.add_many([]) == []


def test_list_filters_and_orders(
    dead_letter_store: DeadLetterStore, minimal_dead_letter: dict[str, Any]
) -> None:
    """list() filters by stage, sink, reason text and time window, most recent first."""
    documents = [
        letter(minimal_dead_letter, id="a", sha256="1" * 64, last_seen="2024-05-01T10:00:00Z"),
        letter(
            minimal_dead_letter,
            id="b",
            sha256="2" * 64,
            stage="sink:postgres",
            reason="Connection REFUSED by 10.0.0.5",
            last_seen="2024-05-03T10:00:00Z",
        ),
        letter(
            minimal_dead_letter,
            id="c",
            sha256="3" * 64,
            stage="validate",
            reason="100% wrong: /date_time is not a date",
            last_seen="2024-05-02T10:00:00Z",
        ),
    ]
    dead_letter_store.add_many(documents)

    def ids(**filters: Any) -> list[str]:
        found = dead_letter_store.list(**filters)
        for document in found:
            validate_dead_letter(document)
        return [document["id"] for document in found]

    assert ids() == ["b", "c", "a"]
    assert ids(stage="validate") == ["c"]
    assert ids(sink="postgres") == ["b"]
    assert ids(sink="solr") == []
    assert ids(reason_contains="refused") == ["b"]
    assert ids(reason_contains="100%") == ["c"]
    assert ids(reason_contains="date_time") == ["c"]
    assert ids(reason_contains="0%_") == []
    assert ids(since="2024-05-02T10:00:00Z") == ["b", "c"]
    assert ids(until=datetime(2024, 5, 2, 10, tzinfo=UTC)) == ["a"]
    assert ids(since="2024-05-01T12:00:00+01:00", until="2024-05-03T00:00:00Z") == ["c"]
    assert ids(limit=2) == ["b", "c"]


def test_replay_marks_and_purges(
    dead_letter_store: DeadLetterStore, minimal_dead_letter: dict[str, Any]
) -> None:
    """mark_replayed stamps replayed_at; purge removes replayed, old or staged letters only."""
    dead_letter_store.add_many(
        [
            letter(minimal_dead_letter, id="old", sha256="1" * 64),
            letter(
                minimal_dead_letter, id="new", sha256="2" * 64, last_seen="2024-06-01T00:00:00Z"
            ),
            letter(minimal_dead_letter, id="sink", sha256="3" * 64, stage="sink:webhook"),
        ]
    )
    replayed_at = datetime(2024, 5, 15, 8, 0, tzinfo=UTC)
    assert dead_letter_store.mark_replayed(["old", "new", "missing"], at=replayed_at) == 2
    old = dead_letter_store.get("old")
    assert old is not None
    validate_dead_letter(old)
    assert old["replayed_at"] == "2024-05-15T08:00:00Z"
    assert dead_letter_store.purge(replayed_only=True) == 1  # "new" failed again after replay
    assert dead_letter_store.get("old") is None
    assert dead_letter_store.purge(stage="parse", before="2024-05-01T00:00:00Z") == 0
    assert dead_letter_store.purge(before="2024-05-02T00:00:00Z") == 1
    assert dead_letter_store.counts_by_stage() == {"parse": 1}
    assert dead_letter_store.purge(stage="parse") == 1
    assert dead_letter_store.counts_by_stage() == {}
    assert dead_letter_store.mark_replayed([]) == 0


@pytest.mark.parametrize(
    "changes",
    [{"stage": "sink"}, {"stage": "sink:Bad Name"}, {"payload": "text"}, {"last_seen": "soon"}],
)
def test_malformed_dead_letters_are_refused(
    dead_letter_store: DeadLetterStore,
    minimal_dead_letter: dict[str, Any],
    changes: dict[str, Any],
) -> None:
    """A dead letter with an unknown stage, a non-object payload or a bad time is refused."""
    with pytest.raises(PermanentSinkError, match="dead_letters"):
        dead_letter_store.add(letter(minimal_dead_letter, **changes))
    assert dead_letter_store.counts_by_stage() == {}
