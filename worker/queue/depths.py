"""Queue depths, read through kombu so that Redis and the embedded broker answer alike."""

from __future__ import annotations

from collections.abc import Mapping
from typing import Any, cast

from celery import Celery
from kombu import Connection
from kombu.exceptions import ChannelError, OperationalError
from kombu.utils.functional import retry_over_time


def queue_depth(
    app: Celery,
    queue: str,
    retry_policy: Mapping[str, float] | None = None,
    *,
    connection: Connection | None = None,
) -> int:
    """Messages waiting on ``queue`` (all Redis priority levels); 0 when it does not exist.
    With ``retry_policy`` (``max_retries``, ``interval_start``, ``interval_step``,
    ``interval_max``) a broker that is away, or goes away mid-read, is waited for; on
    ``connection`` it is read once, on that connection."""
    if connection is not None:
        return _read(connection, queue)
    if retry_policy is None:
        return _depth(app, queue)
    with app.connection_for_read() as conn:
        errors: tuple[type[BaseException], ...] = (OperationalError,)
        errors += tuple(conn.connection_errors)
    depth: int = retry_over_time(_depth, errors, args=(app, queue), **cast("Any", retry_policy))
    return depth


def _depth(app: Celery, queue: str) -> int:
    with app.connection_for_read() as conn:
        return _read(conn, queue)


def _read(connection: Connection, queue: str) -> int:
    channel = cast(Any, connection.default_channel)  # the stubs lack queue_declare
    try:
        declared = channel.queue_declare(queue=queue, passive=True)
    except ChannelError:
        return 0
    return int(declared.message_count)
