"""Broker inspection for ``cable-ingest status``: what waits on each queue, and who consumes it.

Every count is of broker *messages*: an intake message carries up to ``batch_size`` envelopes,
a sink message a batch of deliveries. Ages come from the ``published_at`` header that
:func:`worker.queue.names.publish` stamps on every message (Unix seconds), against this host's
clock (never below 0, so a producer whose clock runs ahead shows 0). How each broker answers
is :mod:`worker.queue.brokers`' business: on Redis the depth sums the queue's priority lists
and unacked counts kombu's ``unacked`` hash; on the embedded broker the depth counts message
files and unacked the messages consumers hold.

Nothing here waits long: connections give up after a few seconds and one retry, and every
broker failure leaves as :class:`BrokerUnavailableError`.
"""

from __future__ import annotations

import time
from collections.abc import Sequence
from dataclasses import dataclass

from celery import Celery

from worker.queue.brokers import BrokerUnavailableError, QueueInfo, broker_for, connection
from worker.settings import Settings

__all__ = ["BrokerUnavailableError", "QueueInfo", "WorkerInfo", "inspect_queues", "workers_online"]


@dataclass(frozen=True, slots=True)
class WorkerInfo:
    """A worker that answered, and how many tasks it is running now."""

    name: str
    active_tasks: int


def inspect_queues(
    app: Celery, settings: Settings, names: Sequence[str], now: float | None = None
) -> list[QueueInfo]:
    """Depth, unacked and oldest age of each queue in ``names``, in that order.

    A queue that does not exist (yet) is 0 deep, has 0 unacked and no age. On a broker other
    than Redis or the embedded one (``memory://``, which no other process can see) the depth
    is what kombu reports, with no unacked and no age.
    """
    return broker_for(settings).queues(app, names, time.time() if now is None else now)


def workers_online(
    app: Celery, settings: Settings, timeout: float = 1.0
) -> list[WorkerInfo] | None:
    """The workers that answer a broadcast within ``timeout``, with their running tasks;
    None on a broker without broadcast (the embedded broker: workers there are unknown)."""
    if not broker_for(settings).broadcast:
        return None
    with connection(app, "asking the workers") as conn:
        replies = app.control.inspect(timeout=timeout, connection=conn).active()
    return [
        WorkerInfo(str(name), len(tasks) if isinstance(tasks, list) else 0)
        for name, tasks in sorted((replies or {}).items())
    ]
