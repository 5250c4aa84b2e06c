"""The two Celery tasks, thin: deserialise, call the core, fan out, decide retries.

``ingest`` takes a batch of envelopes off the intake queue, parses and validates each one
(:mod:`worker.pipeline`), dead-letters the failures one by one and sends the records to each
sink's own queue. ``deliver`` writes a batch to one sink, retrying transient failures with
backoff and dead-lettering the rest. A message that comes back after its worker was lost is
split into single-item messages (so a poison item is isolated from its batch-mates) and,
past ``max_deliveries``, dead-lettered instead of looping.
"""

from __future__ import annotations

import time
from collections.abc import Mapping, Sequence
from typing import Any

import structlog
from celery import Task

from worker import pipeline
from worker.app import DELIVER_TASK, INGEST_TASK, INTAKE_QUEUE, app
from worker.errors import PermanentSinkError, TransientSinkError
from worker.pipeline import Failure, Parsed, dead_letter
from worker.retry import backoff
from worker.runtime import Runtime, current
from worker.settings import Settings
from worker.sinks import Delivery, queue_name

log = structlog.get_logger("worker.tasks")


def _runtime() -> Runtime:
    settings: Settings = app.conf["cable_ingest_settings"]
    return current(settings)


def _redelivered_too_often(task: Task[Any, Any], runtime: Runtime) -> int:
    """Count a redelivery (0 when this is a first delivery); the count so far otherwise."""
    if not (task.request.delivery_info or {}).get("redelivered"):
        return 0
    return runtime.receipts.count_redelivery(f"{task.name}:{task.request.id}")


@app.task(name=INGEST_TASK, bind=True)
def ingest(self: Task[Any, Any], envelopes: list[dict[str, Any]]) -> None:
    """Parse, validate and route a batch of envelopes."""
    runtime = _runtime()
    deliveries = _redelivered_too_often(self, runtime)
    if deliveries and len(envelopes) > 1:
        for envelope in envelopes:
            app.send_task(INGEST_TASK, args=[[envelope]], queue=INTAKE_QUEUE)
        log.warning("batch_split", task_id=self.request.id, size=len(envelopes))
        runtime.receipts.forget_redelivery(f"{self.name}:{self.request.id}")
        return
    if deliveries > runtime.settings.max_deliveries:
        reason = f"delivered {deliveries} times; its worker was lost every time"
        failures = [Failure("parse", "RedeliveryLimitExceeded", reason, e) for e in envelopes]
        _dead_letter(runtime, failures, attempts=deliveries)
        return
    records: list[Delivery] = []
    failures = []
    for envelope in envelopes:
        outcome = _ingest_logged(envelope)
        if isinstance(outcome, Parsed):
            records.append(Delivery(str(envelope["id"]), outcome.record))
        else:
            failures.append(outcome)
    for name in runtime.sinks:
        _send(name, records)
    _dead_letter(runtime, failures)
    if deliveries:
        runtime.receipts.forget_redelivery(f"{self.name}:{self.request.id}")


def _ingest_logged(envelope: Mapping[str, Any]) -> Parsed | Failure:
    bound = log.bind(message_id=envelope.get("id"), sha256=envelope.get("sha256"))
    bound.info("received", source=envelope.get("source"))
    failure = pipeline.check(envelope)
    if failure is not None:
        return failure
    started = time.perf_counter()
    record = pipeline.parse(envelope)
    if isinstance(record, Failure):
        return record
    parsed = time.perf_counter()
    bound = bound.bind(reference_id=record.get("reference_id"))
    bound.info("parsed", duration_ms=round((parsed - started) * 1000, 3))
    outcome = pipeline.validate(envelope, record)
    if isinstance(outcome, Parsed):
        bound.info("validated", duration_ms=round((time.perf_counter() - parsed) * 1000, 3))
    return outcome


def _send(sink: str, deliveries: Sequence[Delivery]) -> None:
    if not deliveries:
        return
    app.send_task(
        DELIVER_TASK, args=[sink, [d.as_message() for d in deliveries]], queue=queue_name(sink)
    )
    for delivery in deliveries:
        log.info(
            "routed",
            message_id=delivery.message_id,
            reference_id=delivery.record.get("reference_id"),
            sink=sink,
        )


def _dead_letter(
    runtime: Runtime,
    failures: Sequence[Failure],
    *,
    attempts: int = 1,
    message_ids: Sequence[str] | None = None,
) -> None:
    if not failures:
        return
    ids: Sequence[str | None] = message_ids or [None] * len(failures)
    documents = [
        dead_letter(f, attempts=attempts, message_id=i) for f, i in zip(failures, ids, strict=True)
    ]
    runtime.dead_letters.add_many(documents)
    for document in documents:
        log.warning(
            "dead_lettered",
            message_id=document["message_id"],
            reference_id=document["reference_id"],
            sha256=document["sha256"],
            stage=document["stage"],
            error_class=document["error_class"],
            reason=document["reason"],
            attempts=attempts,
        )


@app.task(name=DELIVER_TASK, bind=True)
def deliver(self: Task[Any, Any], sink: str, messages: list[dict[str, Any]]) -> None:
    """Write a batch of records to one sink."""
    runtime = _runtime()
    batch = [Delivery.from_message(m) for m in messages]
    attempt = self.request.retries + 1
    deliveries = _redelivered_too_often(self, runtime)
    if deliveries and len(batch) > 1:
        for delivery in batch:
            _send(sink, [delivery])
        runtime.receipts.forget_redelivery(f"{self.name}:{self.request.id}")
        return
    if deliveries > runtime.settings.max_deliveries:
        reason = f"delivered {deliveries} times; its worker was lost every time"
        _sink_failed(runtime, sink, batch, "RedeliveryLimitExceeded", reason, deliveries)
        return
    started = time.perf_counter()
    try:
        outcomes = runtime.sinks[sink].write_batch(batch)
    except TransientSinkError as exc:
        if self.request.retries < runtime.settings.sink_max_retries:
            countdown = backoff(self.request.retries)
            log.warning(
                "retried", sink=sink, attempt=attempt, size=len(batch), countdown_s=countdown,
                error_class=type(exc).__name__, reason=str(exc),
            )  # fmt: skip
            raise self.retry(exc=exc, countdown=countdown, queue=queue_name(sink)) from exc
        _sink_failed(runtime, sink, batch, type(exc).__name__, str(exc), attempt)
        return
    except PermanentSinkError as exc:
        if len(batch) > 1:  # find the one that cannot be written; the others go through
            for delivery in batch:
                _send(sink, [delivery])
            log.warning("batch_split", sink=sink, size=len(batch), reason=str(exc))
            return
        _sink_failed(runtime, sink, batch, type(exc).__name__, str(exc), attempt)
        return
    ms = round((time.perf_counter() - started) * 1000, 3)
    for delivery, outcome in zip(batch, outcomes, strict=True):
        log.info(
            "delivered",
            message_id=delivery.message_id,
            reference_id=delivery.record.get("reference_id"),
            sink=sink,
            outcome=outcome,
            attempt=attempt,
            batch_ms=ms,
        )
    if deliveries:
        runtime.receipts.forget_redelivery(f"{self.name}:{self.request.id}")


def _sink_failed(  # noqa: PLR0917 - private, called three times
    runtime: Runtime,
    sink: str,
    batch: Sequence[Delivery],
    error_class: str,
    reason: str,
    attempts: int,
) -> None:
    failures = [
        Failure(f"sink:{sink}", error_class, reason, d.record, [], d.record.get("reference_id"))
        for d in batch
    ]
    _dead_letter(runtime, failures, attempts=attempts, message_ids=[d.message_id for d in batch])
