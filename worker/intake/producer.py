"""The producer API: texts in, envelopes on the intake queue in batches, with back-pressure.

::

    with Producer(Settings.from_env()) as producer:
        message_id = producer.enqueue(text, source="feed-a", metadata={"feed_seq": 17})

Texts are checked at the door (:func:`~worker.intake.envelope.check_input`): a refused text raises
:class:`~worker.intake.envelope.IntakeError` and nothing is queued for it. Accepted texts are buffered
and sent ``batch_size`` envelopes per message. Before each send the intake queue's depth is
read; above the high-water mark (in cables) the producer waits, saying so in the log, until it
has drained below three quarters of the mark.
"""

from __future__ import annotations

import time
from collections.abc import Callable, Iterable, Mapping
from types import TracebackType
from typing import Any

from celery import Celery

from worker.intake.envelope import Scalar, check_input, make_envelope
from worker.logs import get_logger
from worker.queue.app import (
    DELIVER_TASK,
    INGEST_TASK,
    INTAKE_QUEUE,
    PUBLISH_RETRY_POLICY,
    create_app,
    prepare_broker,
    publish,
    sink_queue,
)
from worker.queue.depths import queue_depth
from worker.settings import Settings
from worker.sinks import Delivery

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
    ) -> None:
        self.settings = settings
        self._app = app or create_app(settings)
        self._buffer: list[dict[str, Any]] = []
        self._sink_buffers: dict[str, list[dict[str, Any]]] = {}
        self._on_wait = on_wait
        self.messages_sent = 0
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
        if kind is None:
            self.flush()

    def enqueue(
        self,
        text: str | bytes,
        *,
        source: str,
        metadata: Mapping[str, Scalar] | None = None,
    ) -> str:
        """Check one text and queue it; return its message id (the envelope's id)."""
        if isinstance(text, bytes):
            text = check_input(text, max_bytes=self.settings.max_input_bytes)
        else:
            check_input(
                text.encode("utf-8", "surrogatepass"), max_bytes=self.settings.max_input_bytes
            )
        envelope = make_envelope(text, source=source, metadata=metadata)
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

    def _send_sink(self, sink: str) -> None:
        batch = self._sink_buffers.get(sink)
        if batch:
            publish(self._app, DELIVER_TASK, [sink, batch], sink_queue(sink))
            self.messages_sent += 1
        self._sink_buffers.pop(sink, None)  # only once sent: a failed send keeps its batch

    def flush(self) -> None:
        """Send what is buffered now. If the broker stays away longer than the publish retry
        policy (about a minute), this raises and the envelopes stay buffered: calling
        ``flush`` again sends them."""
        for sink in list(self._sink_buffers):
            self._send_sink(sink)
        if not self._buffer:
            return
        self._wait_below_high_water()
        publish(self._app, INGEST_TASK, [self._buffer], INTAKE_QUEUE)
        self._buffer = []
        self.messages_sent += 1

    def _wait_below_high_water(self) -> None:
        mark = self.settings.high_water_mark
        depth = (
            queue_depth(self._app, INTAKE_QUEUE, PUBLISH_RETRY_POLICY) * self.settings.batch_size
        )
        if depth < mark:
            return
        started = time.monotonic()
        log.warning("backpressure_waiting", queue=INTAKE_QUEUE, depth=depth, high_water=mark)
        while depth >= mark * LOW_WATER:
            if self._on_wait is not None:
                self._on_wait(depth)
            time.sleep(POLL_S)
            depth = (
                queue_depth(self._app, INTAKE_QUEUE, PUBLISH_RETRY_POLICY)
                * self.settings.batch_size
            )
        waited = time.monotonic() - started
        self.seconds_waited += waited
        log.info(
            "backpressure_released", queue=INTAKE_QUEUE, depth=depth, waited_s=round(waited, 3)
        )
