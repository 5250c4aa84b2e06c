"""The queue behind the HTTP door, and group commit: concurrent requests share queue messages.

A queue message costs about as much as parsing 3-5 cables, so single-cable requests must not
become single-cable messages. :class:`GroupCommit` collects the envelopes of concurrent
requests for up to ``GROUP_COMMIT_MS`` (or until ``BATCH_SIZE`` envelopes wait), publishes them
as few messages as possible, and only then answers every request of the group:
a 202 means the envelopes are in the broker. While one group is being published the next one
gathers, so the groups grow with the load.

Before each group the intake queue's depth is checked (read from the broker in the background
every half second, and before every group while it is above the mark); above ``HIGH_WATER_MARK``
cables the whole group is refused with 503 and ``Retry-After`` (back-pressure: the feed retries later, nothing is
buffered here). A broker that is away is retried for about two seconds, then refused the same
way. This module is the HTTP face's only use of the queue (:class:`Broker`).

Each group is recorded as accepted (:class:`Ledger`: one INSERT in the storage database for
the whole group) before its first message is published, so that a 202's message ids always
have a receipt ("queued" until an outcome); the part of a group that could not be published
is forgotten again. Recording and publishing are two stages in two threads: while one group
is published, the next is recorded (a commit waits on the disk or the database, a publish on
the broker; in turn they would add up). Groups are published in the order they arrived.
"""

from __future__ import annotations

import asyncio
import contextlib
import time
from collections.abc import Callable, Sequence
from concurrent.futures import ThreadPoolExecutor
from dataclasses import dataclass
from typing import Any, Protocol

from worker.http.problems import Problem
from worker.logs import get_logger
from worker.queue.app import create_app, prepare_broker
from worker.queue.depths import queue_depth
from worker.queue.names import INGEST_TASK, INTAKE_QUEUE, PUBLISHED_AT
from worker.settings import Settings

log = get_logger("worker.http.intake")

RETRY_AFTER_S = 5
DEPTH_EVERY_S = 0.5  # reading the depth costs a broker round trip (~15 ms through kombu)
STALE_DEPTH_S = 5.0
PUBLISH_RETRY_POLICY = {
    "max_retries": 3,
    "interval_start": 0.2,
    "interval_step": 0.3,
    "interval_max": 1.0,
}
Envelope = dict[str, Any]


class Ledger(Protocol):
    """Where accepted envelopes are recorded before they are published (the receipts' first
    link): :class:`~worker.storage.receipts.ReceiptStore` (blocking calls)."""

    def accept(self, envelopes: Sequence[Envelope]) -> None:
        """Record these envelopes as accepted, in one statement."""

    def forget_accepted(self, message_ids: Sequence[str]) -> None:
        """Drop the record of envelopes that could not be published."""


class Queue(Protocol):
    """Where envelopes go: the broker, or an in-memory twin in tests."""

    def depth(self) -> int:
        """Cables waiting on the intake queue (messages times the batch size)."""

    def publish(self, envelopes: Sequence[Envelope]) -> None:
        """Put one message holding ``envelopes`` on the intake queue."""

    def close(self) -> None:
        """Release connections."""


class Broker:
    """The real queue: the Celery app for ``settings``, publishing ingest tasks."""

    def __init__(self, settings: Settings) -> None:
        self._settings = settings
        self._app = create_app(settings)
        prepare_broker(settings)

    @property
    def celery(self) -> Any:
        """The Celery app (the health probe and the metrics read the queues through it)."""
        return self._app

    def depth(self) -> int:
        depth = queue_depth(self._app, INTAKE_QUEUE, PUBLISH_RETRY_POLICY)
        return depth * self._settings.batch_size

    def publish(self, envelopes: Sequence[Envelope]) -> None:
        self._app.send_task(
            INGEST_TASK,
            args=[list(envelopes)],
            queue=INTAKE_QUEUE,
            headers={PUBLISHED_AT: time.time()},
            retry_policy=PUBLISH_RETRY_POLICY,
            # Celery would put a repr of the args (cable text) in the headers: costly, and
            # the headers are what monitoring tools show
            argsrepr=f"[<{len(envelopes)} envelopes>]",
            kwargsrepr="{}",
        )

    def close(self) -> None:
        self._app.close()


class MemoryQueue:
    """The in-memory twin of :class:`Broker`: messages in a list, depth and failures settable."""

    def __init__(self, _settings: Settings | None = None) -> None:
        self.messages: list[list[Envelope]] = []
        self.waiting = 0  # cables reported waiting on the intake queue
        self.failing = False  # publish raises ConnectionError while True
        self.celery: Any = None

    def depth(self) -> int:
        return self.waiting

    def publish(self, envelopes: Sequence[Envelope]) -> None:
        if self.failing:
            raise ConnectionError("the broker is away (MemoryQueue.failing)")
        self.messages.append(list(envelopes))

    def close(self) -> None:
        """Nothing to release."""


def unavailable(code: str, detail: str) -> Problem:
    """503 with Retry-After: back-pressure (``overloaded``) or no broker (``queue_unavailable``)."""
    return Problem(
        503,
        code,
        detail,
        headers={"Retry-After": str(RETRY_AFTER_S)},
        extra={"retry_after_s": RETRY_AFTER_S},
    )


@dataclass(slots=True)
class _Waiting:
    envelopes: list[Envelope]
    future: asyncio.Future[None]


def pack(groups: Sequence[Sequence[Envelope]], batch_size: int) -> list[list[Envelope]]:
    """The messages for these requests' envelopes: in order, at most ``batch_size`` each, no
    request split across messages unless it alone holds more than ``batch_size``."""
    messages: list[list[Envelope]] = []
    current: list[Envelope] = []
    for envelopes in groups:
        if current and len(current) + len(envelopes) > batch_size:
            messages.append(current)
            current = []
        if len(envelopes) > batch_size:
            messages += [
                list(envelopes[i : i + batch_size]) for i in range(0, len(envelopes), batch_size)
            ]
            continue
        current.extend(envelopes)
    if current:
        messages.append(current)
    return messages


class GroupCommit:
    """Publishes the envelopes of concurrent requests together; see the module docstring."""

    def __init__(
        self,
        queue: Queue,
        *,
        batch_size: int,
        window_s: float,
        high_water_mark: int,
        ledger: Ledger | None = None,
        on_message: Callable[[list[int]], None] | None = None,
        clock: Callable[[], float] = time.monotonic,
    ) -> None:
        self._queue = queue
        self._ledger = ledger
        self._batch_size = batch_size
        self._window_s = window_s
        self._high_water_mark = high_water_mark
        self._clock = clock
        self._on_message = on_message
        self._depth = 0
        self._depth_read_at = -STALE_DEPTH_S
        self._depth_reading = False
        self._depth_executor = ThreadPoolExecutor(1, thread_name_prefix="cable-ingest-depth")
        self._waiting: list[_Waiting] = []
        self._count = 0
        self._first_at = 0.0
        self._arrived = asyncio.Event()
        self._full = asyncio.Event()
        self._recorder = ThreadPoolExecutor(1, thread_name_prefix="cable-ingest-record")
        self._executor = ThreadPoolExecutor(1, thread_name_prefix="cable-ingest-publish")
        self._runner: asyncio.Task[None] | None = None
        self._busy = False  # a group is being gathered or recorded
        self._sending: asyncio.Task[None] | None = None  # the group being published

    def start(self) -> None:
        """Start publishing (in the running event loop)."""
        self._runner = asyncio.get_running_loop().create_task(self._run())

    async def stop(self) -> None:
        """Publish what waits, then stop."""
        if self._runner is not None:
            while self._waiting or self._in_flight:
                await asyncio.sleep(0.005)
            self._runner.cancel()
            await asyncio.gather(self._runner, return_exceptions=True)
        self._recorder.shutdown(wait=True)
        self._executor.shutdown(wait=True)
        self._depth_executor.shutdown(wait=True)
        self._queue.close()

    async def submit(self, envelopes: list[Envelope]) -> None:
        """Return once ``envelopes`` are in the broker; 503 :class:`Problem` when refused."""
        if not envelopes:
            return
        waiting = _Waiting(envelopes, asyncio.get_running_loop().create_future())
        if not self._waiting:
            self._first_at = self._clock()
        self._waiting.append(waiting)
        self._count += len(envelopes)
        self._arrived.set()
        if self._count >= self._batch_size:
            self._full.set()
        await asyncio.shield(waiting.future)

    async def _run(self) -> None:
        loop = asyncio.get_running_loop()
        while True:
            self._busy = False
            await self._arrived.wait()
            left = self._first_at + self._window_s - self._clock()
            if self._count < self._batch_size and left > 0:
                with contextlib.suppress(TimeoutError):
                    await asyncio.wait_for(self._full.wait(), left)
            group, self._waiting, self._count = self._waiting, [], 0
            self._arrived.clear()
            self._full.clear()
            if not group:
                continue
            self._busy = True
            try:
                messages = await loop.run_in_executor(self._recorder, self._admit, group)
            except Exception as error:  # every request of the group gets the same answer
                self._refuse(group, error)
                continue
            if self._sending is not None:  # one group published at a time, in order
                await asyncio.gather(self._sending, return_exceptions=True)
            self._sending = loop.create_task(self._send(group, messages))

    async def _send(self, group: list[_Waiting], messages: list[list[Envelope]]) -> None:
        """Publish a recorded group, then answer its requests."""
        loop = asyncio.get_running_loop()
        try:
            await loop.run_in_executor(self._executor, self._publish, messages)
        except Exception as error:
            self._refuse(group, error)
        else:
            for waiting in group:
                if not waiting.future.done():
                    waiting.future.set_result(None)
        finally:
            if self._sending is asyncio.current_task():
                self._sending = None

    @property
    def _in_flight(self) -> bool:
        return self._busy or self._sending is not None

    def _refuse(self, group: list[_Waiting], error: Exception) -> None:
        if not isinstance(error, Problem):
            log.warning(
                "intake_publish_failed",
                error_class=type(error).__name__,
                error=str(error)[:300],
                requests=len(group),
            )
            error = unavailable(
                "queue_unavailable", "the queue broker does not answer; retry later"
            )
        for waiting in group:
            if not waiting.future.done():
                waiting.future.set_exception(error)

    def _current_depth(self) -> int:
        """The intake queue's depth: the last reading, refreshed in the background when older
        than DEPTH_EVERY_S (a read costs a broker round trip that a group must not wait for);
        read now when it was above the mark (a refusal is never based on a stale one) or when
        the last reading is older than STALE_DEPTH_S (the first group, or after a quiet spell)."""
        age = self._clock() - self._depth_read_at
        if self._depth >= self._high_water_mark or age >= STALE_DEPTH_S:
            self._read_depth()
        elif age >= DEPTH_EVERY_S and not self._depth_reading:
            self._depth_reading = True
            self._depth_executor.submit(self._read_depth)
        return self._depth

    def _read_depth(self) -> None:
        try:
            self._depth = self._queue.depth()
            self._depth_read_at = self._clock()
        except Exception as error:  # the next publish will meet the same broker trouble
            log.warning("intake_depth_unread", error_class=type(error).__name__)
        finally:
            self._depth_reading = False

    def _admit(self, group: list[_Waiting]) -> list[list[Envelope]]:
        """The group's messages, recorded as accepted; a 503 Problem above the high-water mark
        (nothing recorded) or when the record fails."""
        depth = self._current_depth()
        if depth >= self._high_water_mark:
            log.warning("backpressure_refused", depth=depth, high_water=self._high_water_mark)
            raise unavailable(
                "overloaded",
                f"the intake queue holds ~{depth:,} cables, above its high-water mark of "
                f"{self._high_water_mark:,}; retry later",
            )
        messages = pack([waiting.envelopes for waiting in group], self._batch_size)
        self._record([envelope for envelopes in messages for envelope in envelopes])
        return messages

    def _publish(self, messages: list[list[Envelope]]) -> None:
        """Publish a recorded group's messages; forget the acceptance of what was not sent."""
        sent = 0
        try:
            for envelopes in messages:
                self._queue.publish(envelopes)
                sent += 1
                if self._on_message is not None:
                    self._on_message([len(envelopes)])
        except BaseException:
            self._forget(
                [str(envelope["id"]) for envelopes in messages[sent:] for envelope in envelopes]
            )
            raise

    def _record(self, envelopes: list[Envelope]) -> None:
        """The group's acceptance, in one statement, before anything is published: a 202
        promises a receipt, so a group whose record fails is refused like a missing broker."""
        if self._ledger is None:
            return
        try:
            self._ledger.accept(envelopes)
        except Exception as error:
            log.warning(
                "intake_record_failed",
                error_class=type(error).__name__,
                error=str(error)[:300],
                envelopes=len(envelopes),
            )
            raise unavailable(
                "receipts_unavailable", "the database does not answer; retry later"
            ) from error

    def _forget(self, message_ids: list[str]) -> None:
        """Best effort: the refused part of a group is no longer accepted (the feed was never
        told these ids; a row left behind only ever answers "queued" to whoever guesses one)."""
        if self._ledger is None or not message_ids:
            return
        try:
            self._ledger.forget_accepted(message_ids)
        except Exception as error:
            log.warning("intake_forget_failed", error_class=type(error).__name__)
