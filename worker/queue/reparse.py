"""The reparse task: a batch of reference ids of one run in, records derived again out.

``cable-ingest reparse`` puts batches of reference ids (never texts) on the ``reparse`` queue,
which workers take from only when the live queues are empty (:mod:`worker.queue.order`). For
each cable the task skips what the run has settled already, reads the original of the current
revision, re-derives it (:mod:`worker.core.reparse`) and writes the records through
``CableStore.write_batch`` with the run's settle step, so that every item is marked done in the
transaction that stores its record. Failures are dead-lettered (stage ``parse`` or
``validate``, the payload an envelope of the original: ``dlq replay`` sends it through intake)
and then marked ``failed``; a cable whose original is gone is marked ``no_original``.

Retries, the redelivery cap and the split of a redelivered batch are the ingest task's own
(:func:`worker.queue.tasks._run_guarded`); a record the database refuses splits its batch, as
the deliver task does, and alone is a ``sink:<storage>`` dead letter.
"""

from __future__ import annotations

import time
from collections.abc import Sequence
from dataclasses import dataclass, field
from typing import TYPE_CHECKING, Any

from celery import Task

from worker import telemetry as metrics
from worker.core.pipeline import Failure, Parsed
from worker.core.reparse import envelope_of, message_id, rederive
from worker.errors import IntegrityError, PermanentSinkError
from worker.logs import get_logger
from worker.queue.names import REPARSE_QUEUE, REPARSE_TASK, publish
from worker.queue.policy import StageFailed
from worker.queue.runtime import Runtime
from worker.queue.tasks import _dead_letter, _run_guarded, _runtime

if TYPE_CHECKING:
    from worker.queue.app import CableIngestApp
from worker.routing.config import storage_sinks
from worker.storage import originals as codec
from worker.storage.reparse import FAILED, NO_ORIGINAL, AlreadySettled

log = get_logger("worker.queue.reparse")
SETTLE_ATTEMPTS = 5  # rounds lost to other workers settling the same items (a resent batch)


def register(celery: CableIngestApp) -> None:
    """Add the reparse task to ``celery`` (max_retries=None: _run_guarded counts retries)."""
    celery.task(name=REPARSE_TASK, bind=True, max_retries=None)(reparse)


def reparse(self: Task[Any, Any], run_id: str, reference_ids: list[str]) -> None:
    """Re-derive a batch of stored cables from their originals."""
    runtime = _runtime(self)

    def give_up(error: StageFailed, attempts: int) -> None:
        kind, reason = type(error.cause).__name__, str(error.cause)
        _give_up(runtime, run_id, reference_ids, kind, reason, attempts, error.stage)

    def resend_one_by_one() -> None:
        for reference_id in reference_ids:
            publish(self.app, REPARSE_TASK, [run_id, [reference_id]], REPARSE_QUEUE)

    _run_guarded(
        self, runtime, len(reference_ids), lambda: _reparse(runtime, run_id, reference_ids),
        give_up, resend_one_by_one, REPARSE_QUEUE, stage="parse",
    )  # fmt: skip


@dataclass
class _Batch:
    """The cables of one message still to do, read from their originals."""

    envelopes: dict[str, dict[str, Any]] = field(default_factory=dict)  # by reference id
    failures: list[Failure] = field(default_factory=list)
    no_original: list[str] = field(default_factory=list)


def _read(runtime: Runtime, run_id: str, reference_ids: Sequence[str]) -> _Batch:
    """The envelopes of the originals of the items of ``reference_ids`` not yet done."""
    unique = list(dict.fromkeys(reference_ids))
    todo = runtime.reparse.todo(run_id, unique)
    if len(todo) < len(unique):
        log.info("reparse_skipped", run_id=run_id, settled_already=len(unique) - len(todo))
    batch = _Batch()
    for reference_id, original in runtime.reparse.originals(todo).items():
        if original is None:
            batch.no_original.append(reference_id)
            continue
        try:
            text = codec.decode(codec.decompress(original))
        except IntegrityError as error:  # damaged bytes: nothing to parse or to replay
            payload = {"id": message_id(run_id, reference_id), "sha256": original.sha256}
            batch.failures.append(
                Failure("parse", "IntegrityError", str(error), payload, [], reference_id)
            )
            continue
        batch.envelopes[reference_id] = envelope_of(run_id, reference_id, original.sha256, text)
    return batch


def _reparse(runtime: Runtime, run_id: str, reference_ids: Sequence[str]) -> None:
    batch = _read(runtime, run_id, reference_ids)
    parsed: list[Parsed] = []
    for reference_id, envelope in batch.envelopes.items():
        started = time.perf_counter()
        outcome = rederive(envelope, reference_id)
        metrics.observe("reparse", time.perf_counter() - started)
        if isinstance(outcome, Parsed):
            parsed.append(outcome)
        else:
            batch.failures.append(outcome)
    if parsed:
        _store(runtime, run_id, parsed)
    _settle_failures(runtime, run_id, batch)


def _store(runtime: Runtime, run_id: str, parsed: list[Parsed]) -> None:
    """Write the records and settle their items in one transaction; a round lost to another
    worker (an item settled meanwhile) is done again without the items it settled."""
    for _ in range(SETTLE_ATTEMPTS):
        records = [p.record for p in parsed]
        originals = [str(p.envelope["sha256"]) for p in parsed]
        try:
            result = runtime.cables.write_batch(
                records, originals=originals, then=runtime.reparse.settle(run_id)
            )
        except AlreadySettled:
            still = set(runtime.reparse.todo(run_id, [str(r["reference_id"]) for r in records]))
            parsed = [p for p in parsed if p.record["reference_id"] in still]
            if not parsed:
                return
            continue
        except PermanentSinkError as error:
            _refused(runtime, run_id, parsed, error)
            return
        for item, done in zip(parsed, result.outcomes, strict=True):
            log.info(
                "reparsed", run_id=run_id, message_id=item.envelope["id"],
                reference_id=done.reference_id, sha256=item.envelope["sha256"],
                outcome=done.outcome, revision=done.revision,
            )  # fmt: skip
        return
    raise AlreadySettled(f"run {run_id}: items kept being settled by other workers")


def _refused(
    runtime: Runtime, run_id: str, parsed: list[Parsed], error: PermanentSinkError
) -> None:
    """The database refused the batch: split it to find the record; alone, dead-letter it."""
    if len(parsed) > 1:
        log.warning("batch_split", run_id=run_id, size=len(parsed), reason=str(error))
        for item in parsed:
            reference_id = item.record["reference_id"]
            publish(runtime.celery, REPARSE_TASK, [run_id, [reference_id]], REPARSE_QUEUE)
        return
    [item] = parsed
    stage = f"sink:{storage_sinks(runtime.config)[0]}"
    reference_id = str(item.record["reference_id"])
    failure = Failure(stage, type(error).__name__, str(error), item.envelope, [], reference_id)
    _settle_failures(runtime, run_id, _Batch(failures=[failure]))


def _settle_failures(runtime: Runtime, run_id: str, batch: _Batch, attempts: int = 1) -> None:
    """Dead-letter the failures, then mark them failed (a worker lost in between leaves them
    pending: done again, the dead letter counts one more attempt); mark no_original."""
    if batch.failures:
        _dead_letter(runtime, batch.failures, attempts=attempts)
        runtime.reparse.mark(run_id, [str(f.reference_id) for f in batch.failures], FAILED)
    if batch.no_original:
        runtime.reparse.mark(run_id, batch.no_original, NO_ORIGINAL)
        for reference_id in batch.no_original:
            log.warning("reparse_no_original", run_id=run_id, reference_id=reference_id)


def _give_up(  # noqa: PLR0917 - the arguments of the task's give_up, passed on
    runtime: Runtime,
    run_id: str,
    reference_ids: Sequence[str],
    error_class: str,
    reason: str,
    attempts: int,
    stage: str = "parse",
) -> None:
    """Dead-letter what is left of a batch that cannot be done (its worker lost past the
    cap, or the retries spent), with the envelopes of the originals, and mark it failed."""
    batch = _read(runtime, run_id, reference_ids)
    batch.failures += [
        Failure(stage, error_class, reason, envelope, [], reference_id)
        for reference_id, envelope in batch.envelopes.items()
    ]
    _settle_failures(runtime, run_id, batch, attempts)
