"""Broker inspection for ``cable-ingest status``: what waits on each queue, and who consumes it.

Every count is of broker *messages*: an intake message carries up to ``batch_size`` envelopes,
a sink message a batch of deliveries. Ages come from the ``published_at`` header that
:func:`worker.queue.app.publish` stamps on every message (Unix seconds), against this host's clock
(never below 0, so a producer whose clock runs ahead shows 0).

* Redis: the depth is the sum of LLEN over the queue and its priority sub-queues, named as
  kombu names them (``intake``, ``intake\\x06\\x163``, …); unacked counts the entries of kombu's
  ``unacked`` hash (delivered to a worker, not yet acknowledged: running, or reserved ahead)
  that kombu would restore to the queue; the oldest message is the next one out of each
  sub-queue (kombu LPUSHes and pops from the right: ``LINDEX key -1``).
* The embedded (filesystem) broker: the depth is the number of ``*.<queue>.msg`` files in the
  queue folder; unacked counts the messages consumers hold (``processed/held/<consumer>/``,
  see :mod:`worker.queue.broker`); the oldest message is the file written first (by
  modification time).

Nothing here waits long: connections give up after a few seconds and one retry, and every
broker failure leaves as :class:`BrokerUnavailableError`.
"""

from __future__ import annotations

import os
import time
from collections import Counter
from collections.abc import Iterator, Sequence
from contextlib import contextmanager
from dataclasses import dataclass
from pathlib import Path
from typing import Any, cast

import orjson
import redis
from celery import Celery
from kombu import Connection
from kombu.exceptions import KombuError

from worker.errors import CableIngestError
from worker.queue.broker import HELD, held_messages
from worker.queue.depths import queue_depth
from worker.queue.names import PUBLISHED_AT
from worker.settings import Settings, redact_url

REDIS_SCHEMES = ("redis", "rediss", "sentinel")
CONNECT_TIMEOUT_S = 5
SOCKET_TIMEOUT_S = 10
SCAN_COUNT = 500
QUICK = {
    "socket_connect_timeout": CONNECT_TIMEOUT_S,
    "socket_timeout": SOCKET_TIMEOUT_S,
    "max_retries": 1,  # the status is for now: no endless reconnection loop
    "interval_start": 0,
    "interval_step": 1,
}


class BrokerUnavailableError(CableIngestError):
    """The broker could not be reached or read."""


@dataclass(frozen=True, slots=True)
class QueueInfo:
    """One queue: messages waiting, delivered but not acknowledged, age of the oldest waiting."""

    name: str
    depth: int
    unacked: int
    oldest_age_s: float | None  # None: nothing waits, or the next out has no published_at


@dataclass(frozen=True, slots=True)
class WorkerInfo:
    """A worker that answered, and how many tasks it is running now."""

    name: str
    active_tasks: int


def is_redis(broker_url: str) -> bool:
    """Whether ``broker_url`` is a Redis broker (plain, TLS or Sentinel)."""
    return broker_url.startswith(REDIS_SCHEMES)


@contextmanager
def _connection(app: Celery, action: str) -> Iterator[Connection]:
    """A broker connection that fails within seconds instead of retrying without end."""
    try:
        with app.connection_for_read(transport_options=QUICK) as connection:
            connection.ensure_connection(max_retries=1, interval_start=0, timeout=CONNECT_TIMEOUT_S)
            yield connection
    except (KombuError, redis.RedisError, OSError) as error:
        raise BrokerUnavailableError(_describe(app, action, error)) from error


def _describe(app: Celery, action: str, error: BaseException) -> str:
    """One line: the broker (password hidden), what failed, and the first line of why."""
    lines = str(error).strip().splitlines()
    why = f"{type(error).__name__}: {lines[0][:200]}" if lines else type(error).__name__
    return f"broker {redact_url(str(app.conf.broker_url))}: {action} failed: {why}"


def _age(published: object, now: float) -> float | None:
    if isinstance(published, int | float) and not isinstance(published, bool):
        return round(max(0.0, now - float(published)), 3)
    return None


def _header_age(raw: bytes | str, now: float) -> float | None:
    """Age of a kombu JSON message from its ``published_at`` header; None without one."""
    try:
        message = orjson.loads(raw)
    except orjson.JSONDecodeError:
        return None
    headers = message.get("headers") if isinstance(message, dict) else None
    return _age(headers.get(PUBLISHED_AT), now) if isinstance(headers, dict) else None


def inspect_queues(
    app: Celery, settings: Settings, names: Sequence[str], now: float | None = None
) -> list[QueueInfo]:
    """Depth, unacked and oldest age of each queue in ``names``, in that order.

    A queue that does not exist (yet) is 0 deep, has 0 unacked and no age. On a broker other
    than Redis or the filesystem (``memory://``, which no other process can see) the depth is
    what kombu reports, with no unacked and no age.
    """
    now = time.time() if now is None else now
    if is_redis(settings.broker_url):
        with _connection(app, "reading the queues") as connection:
            return _redis_queues(cast(Any, connection.default_channel), names, now)
    if settings.broker_url.startswith("filesystem:"):
        options = settings.broker_transport_options()
        held = held_messages(os.path.join(options["processed_folder"], HELD))
        return _filesystem_queues(Path(options["data_folder_in"]), names, now, held)
    with _connection(app, "reading the queues"):
        return [QueueInfo(name, queue_depth(app, name), 0, None) for name in names]


def _redis_queues(channel: Any, names: Sequence[str], now: float) -> list[QueueInfo]:
    prefix: str = channel.global_keyprefix  # kombu's client prefixes only some commands
    client = redis.Redis(connection_pool=channel.pool)  # so every key is prefixed here
    keys = {
        name: list(dict.fromkeys(channel._q_for_pri(name, pri) for pri in channel.priority_steps))
        for name in names
    }
    with client.pipeline(transaction=False) as pipe:
        for name in names:
            for key in keys[name]:
                pipe.llen(prefix + key)
                pipe.lindex(prefix + key, -1)
        replies = pipe.execute()
    unacked = _redis_unacked(channel, client, prefix + channel.unacked_key, names)
    found: list[QueueInfo] = []
    for name in names:
        depth, ages, known = 0, [], True
        for _key in keys[name]:
            length, oldest = replies.pop(0), replies.pop(0)
            depth += int(length)
            if oldest is not None:
                age = _header_age(oldest, now)
                known = known and age is not None
                ages.append(age or 0.0)
        oldest_age = max(ages) if ages and known else None
        found.append(QueueInfo(name, depth, unacked.get(name, 0), oldest_age))
    return found


def _redis_unacked(
    channel: Any, client: redis.Redis, key: str, names: Sequence[str]
) -> dict[str, int]:
    """Entries of the unacked hash by the queue kombu would restore them to."""
    wanted = set(names)
    counts: dict[str, int] = {}
    routes: dict[tuple[str, str], list[str]] = {}
    for _tag, raw in client.hscan_iter(key, count=SCAN_COUNT):
        try:
            _message, exchange, routing_key = orjson.loads(raw)
        except (orjson.JSONDecodeError, TypeError, ValueError):
            continue  # not kombu's: not ours to count
        route = (str(exchange or ""), str(routing_key or ""))
        if route not in routes:
            routes[route] = _restored_to(channel, *route)
        for queue in routes[route]:
            if queue in wanted:
                counts[queue] = counts.get(queue, 0) + 1
    return counts


def _restored_to(channel: Any, exchange: str, routing_key: str) -> list[str]:
    """The queues kombu's restore would push a message to (its exchange's bindings)."""
    try:
        queues = [str(queue) for queue in channel._lookup(exchange, routing_key)]
    except KeyError:
        queues = []
    return queues or [routing_key]  # unbound: the default exchange routes by queue name


def _filesystem_queues(
    folder: Path, names: Sequence[str], now: float, held: Sequence[str]
) -> list[QueueInfo]:
    """From the queue folder's files (``<ms>_<uuid>.<queue>.msg``; hidden ones are being
    written) and the names of the messages consumers hold (unacked)."""
    unacked = Counter(name.partition(".")[2] for name in held)
    by_queue: dict[str, list[tuple[float, str]]] = {}
    try:
        with os.scandir(folder) as entries:
            for entry in entries:
                if entry.name.startswith("."):
                    continue
                try:
                    written = entry.stat().st_mtime
                except FileNotFoundError:
                    continue  # consumed meanwhile
                by_queue.setdefault(entry.name.partition(".")[2], []).append((written, entry.name))
    except FileNotFoundError:
        pass  # nothing was ever enqueued here
    except OSError as error:
        raise BrokerUnavailableError(f"cannot list the queue folder {folder}: {error}") from error
    found: list[QueueInfo] = []
    for queue in names:
        waiting = by_queue.get(f"{queue}.msg", [])
        age = _oldest_file_age(folder, waiting, now)
        found.append(QueueInfo(queue, len(waiting), unacked[f"{queue}.msg"], age))
    return found


def _oldest_file_age(folder: Path, files: list[tuple[float, str]], now: float) -> float | None:
    """Age of the first-written file still there (by mtime: the names' milliseconds are a
    monotonic clock, which restarts at boot), from its header, else from that mtime."""
    for written, name in sorted(files):
        path = folder / name
        try:
            raw = path.read_bytes()
        except FileNotFoundError:
            continue  # a consumer took it meanwhile
        except OSError as error:
            raise BrokerUnavailableError(f"cannot read {path}: {error}") from error
        age = _header_age(raw, now)
        return age if age is not None else round(max(0.0, now - written), 3)
    return None


def workers_online(app: Celery, timeout: float = 1.0) -> list[WorkerInfo] | None:
    """The workers that answer a broadcast within ``timeout``, with their running tasks;
    None on a broker without broadcast (the embedded broker: workers there are unknown)."""
    if not is_redis(str(app.conf.broker_url)):
        return None
    with _connection(app, "asking the workers") as connection:
        replies = app.control.inspect(timeout=timeout, connection=connection).active()
    return [
        WorkerInfo(str(name), len(tasks) if isinstance(tasks, list) else 0)
        for name, tasks in sorted((replies or {}).items())
    ]
