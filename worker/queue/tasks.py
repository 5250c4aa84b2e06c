"""The two Celery tasks, thin: deserialise, call the core, fan out, decide retries.

``ingest`` takes a batch of envelopes off the intake queue, parses and validates each one
(:mod:`worker.core.pipeline`), dead-letters the failures one by one and sends the records to each
sink's own queue, except for inline sinks (storage, by default), which it writes itself: one
trip through the broker fewer per cable. ``deliver`` writes a batch to one sink: every batch of
a queued sink, and an inline sink's batch that the ingest task could not write. Both retry what
failed around the core (a database or broker that is away) with backoff, and dead-letter after
the last attempt: a task never ends in an exception, because Celery would ack the message and
the batch would be lost.

A message that comes back after its worker was lost (Redis restores it, flagged redelivered)
is split into single-item messages, so that a poison item is isolated from its batch-mates;
a single item delivered more than ``max_deliveries`` times is dead-lettered instead of looping.
"""

from __future__ import annotations

import time
from collections.abc import Callable, Iterator, Mapping, Sequence
from contextlib import contextmanager
from typing import Any

from celery import Task
from celery.exceptions import Retry

from worker import telemetry as metrics
from worker.core import pipeline
from worker.core.pipeline import Failure, Parsed, dead_letter
from worker.errors import PermanentSinkError
from worker.logs import get_logger
from worker.queue import policy
from worker.queue.app import CableIngestApp
from worker.queue.names import DELIVER_TASK, INGEST_TASK, INTAKE_QUEUE, publish, sink_queue
from worker.queue.policy import RedeliveryLimitExceeded, StageFailed
from worker.queue.retry import backoff
from worker.queue.runtime import Runtime
from worker.routing.rules import route
from worker.sinks import Delivery
from worker.storage import Receipt
from worker.storage.provenance import Arrival

log = get_logger("worker.queue.tasks")


def register(celery: CableIngestApp) -> None:
    """Add the ingest and deliver tasks to ``celery``."""
    # max_retries=None: _run_guarded counts the retries itself
    celery.task(name=INGEST_TASK, bind=True, max_retries=None)(ingest)
    celery.task(name=DELIVER_TASK, bind=True, max_retries=None)(deliver)


def _runtime(task: Task[Any, Any]) -> Runtime:
    celery = task.app
    assert isinstance(celery, CableIngestApp), "tasks run on create_app()'s app"
    return celery.runtime


def ingest(self: Task[Any, Any], envelopes: list[dict[str, Any]]) -> None:
    """Parse, validate and route a batch of envelopes."""
    runtime = _runtime(self)

    def give_up(error: StageFailed, attempts: int) -> None:
        kind, reason = type(error.cause).__name__, str(error.cause)
        failures = [Failure(error.stage, kind, reason, e) for e in envelopes]
        _dead_letter(runtime, failures, attempts=attempts)

    def resend_one_by_one() -> None:
        for envelope in envelopes:
            publish(self.app, INGEST_TASK, [[envelope]], INTAKE_QUEUE)

    _run_guarded(
        self, runtime, len(envelopes), lambda: _ingest(runtime, envelopes), give_up,
        resend_one_by_one, INTAKE_QUEUE, stage="parse",
    )  # fmt: skip


def _ingest(runtime: Runtime, envelopes: Sequence[Mapping[str, Any]]) -> None:
    per_sink: dict[str, list[Delivery]] = {name: [] for name in runtime.sinks}
    withheld: list[Receipt] = []
    failures: list[Failure] = []
    metrics.received(len(envelopes))
    for envelope in envelopes:
        outcome = _ingest_logged(envelope)
        if not isinstance(outcome, Parsed):
            failures.append(outcome)
            continue
        message_id, record = str(envelope["id"]), outcome.record
        decision = route(record, runtime.config)
        arrival = Arrival.from_envelope(envelope).as_message()
        for target in decision.routes:
            kept = None if runtime.config.sinks[target.sink].notifies else arrival
            per_sink[target.sink].append(Delivery(message_id, record, target.rule, kept))
        for target in decision.withheld:
            withheld.append(Receipt(message_id, target.sink, record["reference_id"], "withheld"))
            metrics.withheld(target.sink)
            log.info(
                "withheld", message_id=message_id, reference_id=record["reference_id"],
                sink=target.sink, rule=target.rule, classification=record["classification"],
            )  # fmt: skip
    inline: list[tuple[str, list[Delivery]]] = []
    for name, deliveries in per_sink.items():
        sink = runtime.config.sinks[name]
        size = sink.batch_size or runtime.settings.batch_size
        for start in range(0, len(deliveries), size):
            batch = deliveries[start : start + size]
            if sink.inline:
                inline.append((name, batch))
            else:
                with _stage(f"sink:{name}"):
                    _send(runtime, name, batch)
    for name, batch in inline:  # after the queued sinks: a slow one holds back no other
        with _stage(f"sink:{name}"):
            _write_inline(runtime, name, batch)
    if withheld:
        with _stage(f"sink:{withheld[0].sink}"):
            runtime.receipts.add_many(withheld)
    if failures:
        with _stage(failures[0].stage):
            _dead_letter(runtime, failures)


@contextmanager
def _stage(stage: str) -> Iterator[None]:
    """An error in this block fails the whole message in ``stage`` (its dead letters say so)."""
    try:
        yield
    except Retry:
        raise
    except Exception as error:
        raise StageFailed.of(error, stage) from error


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
    metrics.parsed()
    metrics.observe("parse", parsed - started)
    bound = bound.bind(reference_id=record["reference_id"])
    bound.info("parsed", duration_ms=round((parsed - started) * 1000, 3))
    outcome = pipeline.validate(envelope, record)
    validated = time.perf_counter()
    metrics.observe("validate", validated - parsed)
    if isinstance(outcome, Parsed):
        bound.info("validated", duration_ms=round((validated - parsed) * 1000, 3))
    return outcome


def deliver(self: Task[Any, Any], sink: str, messages: list[dict[str, Any]]) -> None:
    """Write a batch of records to one sink."""
    runtime = _runtime(self)
    batch = [Delivery.from_message(m) for m in messages]

    def give_up(error: StageFailed, attempts: int) -> None:
        kind, reason = type(error.cause).__name__, str(error.cause)
        _sink_failed(runtime, sink, batch, error_class=kind, reason=reason, attempts=attempts)

    def resend_one_by_one() -> None:
        for delivery in batch:
            _send(runtime, sink, [delivery])

    _run_guarded(
        self, runtime, len(batch), lambda: _deliver(self, runtime, sink, batch), give_up,
        resend_one_by_one, sink_queue(sink), stage=f"sink:{sink}",
    )  # fmt: skip


def _deliver(task: Task[Any, Any], runtime: Runtime, sink: str, batch: list[Delivery]) -> None:
    attempt = task.request.retries + 1
    try:
        _write(runtime, sink, batch, attempt=attempt)
    except PermanentSinkError as exc:
        if len(batch) > 1:  # find the item that cannot be written; the others go through
            log.warning("batch_split", sink=sink, size=len(batch), reason=str(exc))
            for delivery in batch:
                _send(runtime, sink, [delivery])
            return
        error = type(exc).__name__
        _sink_failed(runtime, sink, batch, error_class=error, reason=str(exc), attempts=attempt)


def _write_inline(runtime: Runtime, sink: str, batch: list[Delivery]) -> None:
    """Write an inline sink's batch from the ingest task; what fails goes to the sink's queue,
    whose deliver task retries it, splits it and dead-letters exactly as for any sink."""
    try:
        _write(runtime, sink, batch, attempt=1, inline=True)
    except Exception as exc:  # everything: the queue is the sink's way to retry
        log.warning(
            "inline_failed", sink=sink, size=len(batch), error_class=type(exc).__name__,
            reason=str(exc),
        )  # fmt: skip
        _send(runtime, sink, batch)


def _write(
    runtime: Runtime, sink: str, batch: list[Delivery], *, attempt: int, inline: bool = False
) -> None:
    """Write one batch to one sink; count and log each delivery's outcome."""
    started = time.perf_counter()
    if sink not in runtime.sinks:
        known = ", ".join(runtime.sinks)
        raise PermanentSinkError(f"no sink {sink!r} in this worker's configuration ({known})")
    outcomes = runtime.sinks[sink].write_batch(batch)
    seconds = time.perf_counter() - started
    metrics.observe(f"deliver:{sink}", seconds)
    metrics.sink_outcomes(sink, outcomes, notifies=runtime.config.sinks[sink].notifies)
    ms = round(seconds * 1000, 3)
    for delivery, outcome in zip(batch, outcomes, strict=True):
        log.info(
            "delivered",
            message_id=delivery.message_id,
            reference_id=delivery.record.get("reference_id"),
            sink=sink,
            outcome=outcome,
            attempt=attempt,
            inline=inline,
            batch_ms=ms,
        )


def _run_guarded(  # noqa: PLR0917 - the one place both tasks share their policy
    task: Task[Any, Any],
    runtime: Runtime,
    size: int,
    work: Callable[[], None],
    give_up: Callable[[StageFailed, int], None],
    resend_one_by_one: Callable[[], None],
    queue: str,
    *,
    stage: str,
) -> None:
    """Carry out the delivery policy (:mod:`worker.queue.policy`) around ``work``: split or
    dead-letter a message that keeps coming back, retry or give up on failure; ``stage``
    names a failure that does not name its own. Never raises but Retry."""
    key = f"{task.name}:{task.request.id}"
    redelivered = bool((task.request.delivery_info or {}).get("redelivered"))
    if redelivered:
        metrics.redelivered(task.name)
    deliveries = runtime.receipts.count_redelivery(key) if redelivered else 0
    arrival = policy.on_arrival(
        deliveries=deliveries, size=size, max_deliveries=runtime.settings.max_deliveries
    )
    try:
        if arrival is policy.Arrival.SPLIT:
            log.warning("batch_split", task_id=task.request.id, size=size, deliveries=deliveries)
            resend_one_by_one()
        elif arrival is policy.Arrival.DEAD_LETTER:
            reason = f"delivered {deliveries} times; its worker was lost every time"
            give_up(StageFailed(stage, RedeliveryLimitExceeded(reason)), deliveries)
        else:
            work()
    except Retry:
        raise
    except Exception as exc:  # everything: an exception here would lose the batch
        failed = StageFailed.of(exc, stage)
        retries = task.request.retries
        decision = policy.on_failure(
            failed, retries=retries, max_retries=runtime.settings.sink_max_retries
        )
        if isinstance(decision, policy.GiveUp):
            _give_up_or_retry(task, give_up, failed, queue)
        else:
            settings = runtime.settings  # a wait past the visibility timeout would run twice
            longest = policy.longest_wait(settings.visibility_timeout, settings.task_time_limit)
            countdown = min(decision.countdown, longest)
            log.warning(
                "retried", task=task.name, attempt=retries + 1, size=size, stage=failed.stage,
                countdown_s=round(countdown, 3), error_class=type(failed.cause).__name__,
                reason=str(failed.cause),
            )  # fmt: skip
            raise task.retry(exc=exc, countdown=countdown, queue=queue) from exc
    if deliveries:
        runtime.receipts.forget_redelivery(key)


def _give_up_or_retry(
    task: Task[Any, Any],
    give_up: Callable[[StageFailed, int], None],
    failed: StageFailed,
    queue: str,
) -> None:
    """Dead-letter the message's items; if even that fails, keep the message: retry later."""
    retries = task.request.retries
    try:
        give_up(failed, retries + 1)
    except PermanentSinkError as failure:
        log.critical(
            "dead_letter_refused", task=task.name, task_id=task.request.id, reason=str(failure)
        )
        raise
    except Exception as failure:
        countdown = backoff(retries)
        log.error("dead_letter_failed", task=task.name, countdown_s=round(countdown, 3),
                  error_class=type(failure).__name__, reason=str(failure))  # fmt: skip
        raise task.retry(exc=failure, countdown=countdown, queue=queue) from failure


def _send(runtime: Runtime, sink: str, deliveries: Sequence[Delivery]) -> None:
    if not deliveries:
        return
    messages = [d.as_message() for d in deliveries]
    publish(runtime.celery, DELIVER_TASK, [sink, messages], sink_queue(sink))
    for delivery in deliveries:
        log.info(
            "routed",
            message_id=delivery.message_id,
            reference_id=delivery.record.get("reference_id"),
            sink=sink,
            rule=delivery.rule,
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
        metrics.dead_lettered(document["stage"])
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


def _sink_failed(
    runtime: Runtime,
    sink: str,
    batch: Sequence[Delivery],
    *,
    error_class: str,
    reason: str,
    attempts: int,
) -> None:
    failures = [  # storage keeps the envelope, to be derived again from its original on replay
        Failure(f"sink:{sink}", error_class, reason, _payload(d), [], d.record.get("reference_id"))
        for d in batch
    ]
    _dead_letter(runtime, failures, attempts=attempts, message_ids=[d.message_id for d in batch])


def _payload(delivery: Delivery) -> Mapping[str, Any]:
    if delivery.arrival is None:
        return delivery.record
    return Arrival.from_message(delivery.arrival).as_envelope()
