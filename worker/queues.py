"""Queue depths, read through kombu so that Redis and the embedded broker answer alike."""

from __future__ import annotations

from typing import Any, cast

from celery import Celery
from kombu.exceptions import ChannelError


def queue_depth(app: Celery, queue: str) -> int:
    """Messages waiting on ``queue`` (all Redis priority levels); 0 when it does not exist."""
    with app.connection_for_read() as connection:
        channel = cast(Any, connection.default_channel)  # the stubs lack queue_declare
        try:
            declared = channel.queue_declare(queue=queue, passive=True)
        except ChannelError:
            return 0
        return int(declared.message_count)
