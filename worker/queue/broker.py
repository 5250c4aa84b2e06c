"""The embedded broker: kombu's filesystem transport, with messages written atomically.

kombu's own ``_put`` writes the message file in place, under its final name; a consumer on
another process can list and move it before the write ends and read half a message. Here each
message is written to a hidden temporary name (which consumers skip: it does not end in
``.<queue>.msg``), flushed to disk, then renamed: consumers see whole messages or none.
A consumer claims a message by renaming it into the processed folder (one rename wins), reads
it and deletes it; kombu's own would keep every processed message, or move it to the temp
folder, which may be another file system (a copy, which two consumers can both make).
The filesystem transport has no acknowledgements: a worker killed between claiming and
finishing a message loses it (``cable-ingest run`` reports it as without outcome). Redis
redelivers; the embedded broker is for one machine and small runs.
Registered as the ``filesystem`` transport when :mod:`worker.queue.app` is imported.

Redis: kombu takes a message with BRPOP, then records it in its ``unacked`` hash (from which
it is restored if the worker dies) in a second command. If Redis goes away between the two,
the message is in neither place and is lost; ``make chaos`` saw it lose a 100-cable message
in 2 of 7 Redis restarts. :class:`RedisTransport` closes that gap: when recording fails, the
popped message is pushed back onto its queue (flagged redelivered) as soon as Redis answers
again, retrying for as long as a publish would, before the error goes on. Registered as the
``redis`` and ``rediss`` transports.

Both channels take from their queues in :mod:`worker.queue.order`'s order: round robin among
the live queues, ``reparse`` only when they are empty.
"""

from __future__ import annotations

import os
import time
import uuid
from queue import Empty
from time import monotonic
from typing import Any

import orjson
from kombu.exceptions import ChannelError
from kombu.transport import TRANSPORT_ALIASES, filesystem
from kombu.transport import redis as kombu_redis
from kombu.utils import json as kombu_json

from worker.logs import get_logger
from worker.queue.order import PollInOrder

log = get_logger("worker.queue.broker")
PUT_BACK_FOR_S = 60.0  # how long a popped message waits for Redis to come back


_KOMBU_ENCODER = kombu_json.JSONEncoder()
_TYPED = '"__type__"'  # kombu's marker for a typed value (datetime, UUID …) in its JSON
_TYPED_BYTES = _TYPED.encode()


def dumps(value: Any) -> str:
    """kombu's transport JSON, written by orjson: the same JSON, 10-20x faster on the large
    messages batches make (a 1 MB message: 0.3 ms instead of 3.5-5.5 ms). Datetimes, bytes,
    Decimals get kombu's typed form; a UUID is written as its string (no message of this
    application carries one); what orjson cannot write (an int over 64 bits) goes to kombu."""
    option = orjson.OPT_PASSTHROUGH_DATETIME | orjson.OPT_PASSTHROUGH_SUBCLASS
    try:
        return orjson.dumps(value, default=_KOMBU_ENCODER.default, option=option).decode()
    except TypeError:
        return kombu_json.dumps(value)


def loads(text: str | bytes | bytearray | memoryview) -> Any:
    """Read kombu's transport JSON with orjson; text holding typed values goes to kombu."""
    data = text.tobytes() if isinstance(text, memoryview) else text
    if (_TYPED in data) if isinstance(data, str) else (_TYPED_BYTES in data):
        return kombu_json.loads(data)
    return orjson.loads(data)


class Channel(filesystem.Channel):
    """Filesystem channel whose messages appear in the queue folder only when complete."""

    def _put(self, queue: str, payload: dict[str, Any], **kwargs: Any) -> None:  # type: ignore[override]  # the stubs of kombu disagree with themselves
        name = f"{round(monotonic() * 1000)}_{uuid.uuid4()}.{queue}.msg"
        folder = self.data_folder_out
        temporary = os.path.join(folder, f".tmp-{name}")
        try:
            with open(temporary, "wb") as file:
                file.write(dumps(payload).encode("utf-8"))
                file.flush()
                os.fsync(file.fileno())
            os.replace(temporary, os.path.join(folder, name))
        except OSError as exc:
            raise ChannelError(f"cannot add a message to {folder!r}: {exc}") from exc

    def _get(self, queue: str, timeout: float | None = None) -> Any:
        wanted = f"{queue}.msg"
        for name in sorted(os.listdir(self.data_folder_in)):
            if name.partition(".")[2] != wanted:
                continue
            claimed = os.path.join(self.processed_folder, name)
            try:
                os.rename(os.path.join(self.data_folder_in, name), claimed)
            except OSError:
                continue  # another consumer claimed it first
            try:
                with open(claimed, "rb") as file:
                    payload = file.read()
                os.unlink(claimed)
            except OSError as exc:
                raise ChannelError(f"cannot read message {claimed!r}: {exc}") from exc
            return loads(payload.decode("utf-8"))
        raise Empty()

    def _reset_cycle(self) -> None:
        self._cycle = PollInOrder(self._get_and_deliver, self._active_queues, Empty)


class Transport(filesystem.Transport):
    """kombu's filesystem transport with :class:`Channel`."""

    Channel = Channel


class RedisQoS(kombu_redis.QoS):
    """kombu's Redis QoS, which puts a popped message back when it cannot record it."""

    def append(self, message: Any, delivery_tag: str) -> None:
        """Record ``message`` as unacknowledged; if Redis is gone, put it back first."""
        channel: Any = self.channel  # the stubs lack the Redis channel's members
        try:
            super().append(message, delivery_tag)
        except channel.connection_errors as error:
            self._put_back(message, error)
            raise

    def _put_back(self, message: Any, error: BaseException) -> None:
        channel: Any = self.channel
        info = message.delivery_info
        exchange, routing_key = info.get("exchange"), info.get("routing_key")
        deadline = time.monotonic() + PUT_BACK_FOR_S
        while True:
            try:
                with channel.conn_or_acquire() as client, client.pipeline() as pipe:
                    channel._do_restore_message(
                        message._raw, exchange, routing_key, pipe, leftmost=True
                    )
                    pipe.execute()
            except channel.connection_errors:
                if time.monotonic() > deadline:
                    log.critical("message_lost", queue=routing_key, reason=str(error),
                                 delivery_tag=message.delivery_tag)  # fmt: skip
                    return
                time.sleep(0.5)
                continue
            log.warning("message_put_back", queue=routing_key, reason=str(error))
            return


class RedisChannel(kombu_redis.Channel):
    """kombu's Redis channel with :class:`RedisQoS`, taking from its queues in
    :class:`~worker.queue.order.BackgroundLast` order."""

    QoS = RedisQoS
    queue_order_strategy = "worker.queue.order:BackgroundLast"


class RedisTransport(kombu_redis.Transport):
    """kombu's Redis transport with :class:`RedisChannel`."""

    Channel = RedisChannel


def register() -> None:
    """Make ``filesystem://`` URLs use :class:`Transport`, ``redis://`` and ``rediss://`` URLs
    :class:`RedisTransport`."""
    # kombu's Redis channel calls these module globals for every message it puts, takes,
    # records as unacknowledged and restores: one assignment instead of copying six methods
    kombu_redis.dumps, kombu_redis.loads = dumps, loads  # type: ignore[attr-defined]
    TRANSPORT_ALIASES["filesystem"] = f"{__name__}:Transport"
    TRANSPORT_ALIASES["redis"] = f"{__name__}:RedisTransport"
    TRANSPORT_ALIASES["rediss"] = f"{__name__}:RedisTransport"
