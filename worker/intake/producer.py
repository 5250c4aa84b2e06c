"""The producer API: texts in, envelopes on the intake queue in batches, with back-pressure.

::

    with Producer(Settings.from_env()) as producer:
        message_id = producer.enqueue(text, source="feed-a", metadata={"feed_seq": 17})

Texts are checked at the door (:func:`~worker.intake.envelope.admit`): a refused text raises
:class:`~worker.intake.envelope.IntakeError` and nothing is queued for it. Accepted texts are buffered
and sent ``batch_size`` envelopes per message. Before each send the intake queue's depth is
read; above the high-water mark (in cables) the producer waits, saying so in the log, until it
has drained below three quarters of the mark.

A broker that does not answer is waited for (:mod:`worker.waiting`): each failed attempt is
reported (``on_retry``, by default the log), and after ``connect_wait_s`` (about a minute)
:class:`~worker.errors.UnavailableError` leaves ``flush``, the unsent batch kept for the next
call. ``envelopes_sent`` counts what reached the broker.
"""

from __future__ import annotations

import time
from collections.abc import Callable, Iterable, Mapping
from types import TracebackType
from typing import Any, TypeVar

from celery import Celery

from worker.intake.envelope import Scalar, admit
from worker.logs import get_logger
from worker.queue.app import (
    DELIVER_TASK,
    INGEST_TASK,
    INTAKE_QUEUE,
    create_app,
    prepare_broker,
    sink_queue,
)
from worker.queue.brokers import Publisher
from worker.settings import Settings
from worker.sinks import Delivery
from worker.waiting import wait_for

T = TypeVar("T")

log = get_logger("worker.intake.producer")

POLL_S = 0.5
LOW_WATER = 0.75


class Producer:
    """Sends envelopes to the intake queue; use as a context manager, or call :meth:`flush`."""

    def __init__(
        self,
        settings: Settings,
        *,
        app: Celery | None = None,
        on_wait: Callable[[int], None] | None = None,
        on_retry: Callable[[str], None] | None = None,
    ) -> None:
        self.settings = settings
        self._app = app or create_app(settings)
        self._publisher = Publisher(self._app)
        self._buffer: list[dict[str, Any]] = []
        self._sink_buffers: dict[str, list[dict[str, Any]]] = {}
        self._on_wait = on_wait
        self._on_retry = on_retry or _log_retry
        self.messages_sent = 0
        self.envelopes_sent = 0
        self.last_sent_source: str | None = None  # the source of the last envelope sent
        self.seconds_waited = 0.0
        prepare_broker(settings)

    def __enter__(self) -> Producer:
        return self

    def __exit__(
        self,
        kind: type[BaseException] | None,
        error: BaseException | None,
        trace: TracebackType | None,
    ) -> None:
        try:
            if kind is None:
                self.flush()
        finally:
            self._publisher.close()

    def enqueue(
        self,
        text: str | bytes,
        *,
        source: str,
        metadata: Mapping[str, Scalar] | None = None,
    ) -> str:
        """Check one text and queue it; return its message id (the envelope's id)."""
        envelope = admit(
            text, source=source, metadata=metadata, max_bytes=self.settings.max_input_bytes
        )
        self.add(envelope)
        return str(envelope["id"])

    def enqueue_many(
        self,
        texts: Iterable[str | bytes],
        *,
        source: str,
        metadata: Mapping[str, Scalar] | None = None,
    ) -> list[str]:
        """Queue many texts from one source; return their message ids. Stops at the first
        refused text (raising its IntakeError) after queueing the ones before it."""
        return [self.enqueue(text, source=source, metadata=metadata) for text in texts]

    def add(self, envelope: dict[str, Any]) -> None:
        """Queue a ready envelope (replays use this); sent when the batch is full."""
        self._buffer.append(envelope)
        if len(self._buffer) >= self.settings.batch_size:
            self.flush()

    @property
    def buffered(self) -> int:
        """Envelopes added but not sent yet (the next batch)."""
        return len(self._buffer)

    def discard(self) -> int:
        """Drop the envelopes not sent yet (an interrupted producer); return how many."""
        dropped = len(self._buffer)
        self._buffer = []
        return dropped

    def replay(self, dead_letter: Mapping[str, Any]) -> None:
        """Send a dead letter's payload back where it failed: an envelope to the intake queue
        (a storage failure keeps its envelope, to be derived again from the original), a
        record (a notification ``sink:<name>`` failure) to that sink's queue only."""
        stage = str(dead_letter["stage"])
        payload = dict(dead_letter["payload"])
        if not stage.startswith("sink:") or "sha256" in payload:
            self.add(payload)
            return
        sink = stage.removeprefix("sink:")
        message_id = str(dead_letter.get("message_id") or dead_letter["id"])
        pending = self._sink_buffers.setdefault(sink, [])
        pending.append(Delivery(message_id, payload).as_message())
        if len(pending) >= self.settings.batch_size:
            self._send_sink(sink)

    def _patiently(self, attempt: Callable[[], T]) -> T:
        """``attempt()``, waiting for a broker that does not answer (``connect_wait_s``)."""
        return wait_for(attempt, wait_s=self.settings.connect_wait_s, say=self._on_retry)

    def _publish(self, task: str, args: list[Any], queue: str) -> None:
        self._patiently(lambda: self._publisher.publish(task, args, queue))

    def _depth(self) -> int:
        return self._patiently(lambda: self._publisher.depth(INTAKE_QUEUE))

    def _send_sink(self, sink: str) -> None:
        batch = self._sink_buffers.get(sink)
        if batch:
            self._publish(DELIVER_TASK, [sink, batch], sink_queue(sink))
            self.messages_sent += 1
        self._sink_buffers.pop(sink, None)  # only once sent: a failed send keeps its batch

    def flush(self) -> None:
        """Send what is buffered now. If the broker stays away longer than ``connect_wait_s``
        (about a minute), this raises UnavailableError and the envelopes stay buffered:
        calling ``flush`` again sends them."""
        for sink in list(self._sink_buffers):
            self._send_sink(sink)
        if not self._buffer:
            return
        self._wait_below_high_water()
        batch = self._buffer
        self._publish(INGEST_TASK, [batch], INTAKE_QUEUE)
        self._buffer = []
        self.messages_sent += 1
        self.envelopes_sent += len(batch)
        self.last_sent_source = str(batch[-1].get("source"))

    def _wait_below_high_water(self) -> None:
        mark = self.settings.high_water_mark
        depth = self._depth() * self.settings.batch_size
        if depth < mark:
            return
        started = time.monotonic()
        log.warning("backpressure_waiting", queue=INTAKE_QUEUE, depth=depth, high_water=mark)
        while depth >= mark * LOW_WATER:
            if self._on_wait is not None:
                self._on_wait(depth)
            time.sleep(POLL_S)
            depth = self._depth() * self.settings.batch_size
        waited = time.monotonic() - started
        self.seconds_waited += waited
        log.info(
            "backpressure_released", queue=INTAKE_QUEUE, depth=depth, waited_s=round(waited, 3)
        )


def _log_retry(line: str) -> None:
    log.warning("broker_unavailable", problem=line)
