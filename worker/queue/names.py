"""The names producers and workers agree on: queues, tasks, the publish header, and publish.

Kept apart from :mod:`worker.queue.app` so that whoever only sends messages (a producer, the
operator's view) needs no worker's Celery app and builds nothing to import them.
"""

from __future__ import annotations

import time
from typing import Any

from celery import Celery
from kombu import Connection

from worker.queue.order import REPARSE_QUEUE
from worker.routing.config import Config

INGEST_TASK = "cable_ingest.ingest"
DELIVER_TASK = "cable_ingest.deliver"
REPARSE_TASK = "cable_ingest.reparse"
INTAKE_QUEUE = "intake"
__all__ = [
    "DELIVER_TASK",
    "INGEST_TASK",
    "INTAKE_QUEUE",
    "PUBLISHED_AT",
    "REPARSE_QUEUE",
    "REPARSE_TASK",
    "consumed_queues",
    "publish",
    "sink_queue",
]

PUBLISHED_AT = "published_at"
"""Message header: when the message was published (Unix time), for the age of a queue."""


def sink_queue(sink: str) -> str:
    """The queue a sink's deliveries wait on."""
    return f"sink.{sink}"


def consumed_queues(config: Config) -> list[str]:
    """Every queue a worker consumes by default: intake, each sink's, and reparse."""
    return [INTAKE_QUEUE, *map(sink_queue, config.sinks), REPARSE_QUEUE]


def publish(
    celery: Celery, task: str, args: list[Any], queue: str, *, connection: Connection | None = None
) -> None:
    """Send one task message to ``queue``, stamped with the time it was published: through
    the app's pool with its publish retry policy, or once on ``connection`` (no retry: its
    owner decides whether to wait, :class:`worker.queue.brokers.Publisher`)."""
    headers = {PUBLISHED_AT: time.time()}
    if connection is None:
        celery.send_task(task, args=args, queue=queue, headers=headers)
    else:
        celery.send_task(
            task, args=args, queue=queue, headers=headers, connection=connection, retry=False
        )
