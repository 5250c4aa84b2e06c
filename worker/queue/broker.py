"""The embedded broker: kombu's filesystem transport, with atomic writes and acknowledgements.

kombu's own ``_put`` writes the message file in place, under its final name; a consumer on
another process can list and move it before the write ends and read half a message. Here each
message is written to a hidden temporary name (which consumers skip: it does not end in
``.<queue>.msg``), flushed to disk, then renamed: consumers see whole messages or none.

kombu's filesystem transport deletes a message when it is read, and keeps the unacknowledged
ones in the consumer's memory: a worker killed mid-batch loses them. Here a consumer claims a
message by renaming it into a folder of its own, ``processed/held/<consumer>/`` (one rename
wins), and deletes it only when it is acknowledged; a rejected or requeued message is put back
on its queue first, then deleted. Each consumer holds an exclusive ``flock`` on its folder's
lock file for as long as it lives (the kernel lets go when the process dies, and forked pool
processes close their copy at once). Consumers look for folders whose lock they can take:
their owner is gone, and its messages go back on their queues flagged redelivered, so that the
redelivery cap applies as on Redis. A message may come back twice (killed between putting it
back and deleting it), never zero times; the store's idempotency absorbs the second delivery.
Registered as the ``filesystem`` transport when :mod:`worker.queue.app` is imported.

Redis: kombu takes a message with BRPOP, then records it in its ``unacked`` hash (from which
it is restored if the worker dies) in a second command. If Redis goes away between the two,
the message is in neither place and is lost; ``make chaos`` saw it lose a 100-cable message
in 2 of 7 Redis restarts. :class:`RedisTransport` closes that gap: when recording fails, the
popped message is pushed back onto its queue (flagged redelivered) as soon as Redis answers
again, retrying for as long as a publish would, before the error goes on. Registered as the
``redis`` and ``rediss`` transports, and with kombu's Sentinel channel as ``sentinel``.

Redis again: kombu's ``unacked`` hash says what was taken, not by whom, so a message whose
worker was killed waits out the visibility timeout even when a new worker starts at once.
:class:`RedisChannel` names every connection it opens (``CLIENT SETNAME``,
``cable-ingest/<role>/<host>/<pid>/<serial>``, one serial per channel) and :class:`RedisQoS`
records that name beside kombu's own record of each message it takes, in the same MULTI
(hash ``cable-ingest:held-by``), and removes it with kombu's. Redis lists a connection for as
long as its process lives (a killed process's sockets are closed by the kernel at once; a dead
host's after Redis's ``tcp-keepalive``), and a consumer that lost its connection gives up what
it held and reconnects under a new serial: so a holder whose name Redis no longer lists is
gone, and :func:`put_back_lost` returns its messages (kombu's own restore, in a WATCH
transaction) without ever touching a live consumer's. :func:`redis_snapshot` reads the queues,
the unacknowledged messages, their holders and the connections in one MULTI.

Both channels take from their queues in :mod:`worker.queue.order`'s order: round robin among
the live queues, ``reparse`` only when they are empty.
"""

from __future__ import annotations

import contextlib
import copy
import fcntl
import os
import socket
import time
import uuid
from collections.abc import Sequence
from dataclasses import dataclass
from queue import Empty
from time import monotonic
from typing import Any, cast

import orjson
import redis
from kombu.exceptions import ChannelError
from kombu.transport import TRANSPORT_ALIASES, filesystem, virtual
from kombu.transport import redis as kombu_redis
from kombu.utils import json as kombu_json

from worker import processes
from worker.logs import get_logger
from worker.queue.order import PollInOrder

log = get_logger("worker.queue.broker")
PUT_BACK_FOR_S = 60.0  # how long a popped message waits for Redis to come back
RECLAIM_EVERY_S = 2.0  # how often a consumer looks for the messages of consumers that died
HELD = "held"
LOCK = ".lock"


_KOMBU_ENCODER = kombu_json.JSONEncoder()
_TYPED = '"__type__"'  # kombu's marker for a typed value (datetime, UUID …) in its JSON
_TYPED_BYTES = _TYPED.encode()


def dumps(value: Any) -> bytes:
    """kombu's transport JSON, written by orjson: the same JSON, 10-20x faster on the large
    messages batches make (a 1 MB message: 0.3 ms instead of 3.5-5.5 ms). Datetimes, bytes,
    Decimals get kombu's typed form; a UUID is written as its string (no message of this
    application carries one); what orjson cannot write (an int over 64 bits) goes to kombu.

    UTF-8 bytes, not kombu's text: Redis and files take them as they are, where a str would
    be decoded from orjson's bytes here and encoded again by redis-py, two passes over every
    message, each a full transcoding when it holds non-ASCII characters (half the cables
    do). make bench: the Python producer 13,900 -> 15,900 cables/s."""
    option = orjson.OPT_PASSTHROUGH_DATETIME | orjson.OPT_PASSTHROUGH_SUBCLASS
    try:
        return orjson.dumps(value, default=_KOMBU_ENCODER.default, option=option)
    except TypeError:
        return kombu_json.dumps(value).encode("utf-8")


def loads(text: str | bytes | bytearray | memoryview) -> Any:
    """Read kombu's transport JSON with orjson; text holding typed values goes to kombu."""
    data = text.tobytes() if isinstance(text, memoryview) else text
    if (_TYPED in data) if isinstance(data, str) else (_TYPED_BYTES in data):
        return kombu_json.loads(data)
    return orjson.loads(data)


def _redelivered(payload: dict[str, Any]) -> dict[str, Any]:
    """A copy of a message flagged redelivered, where Celery reads it (``delivery_info``)."""
    again = copy.deepcopy(payload)
    again["redelivered"] = True
    properties = again.setdefault("properties", {})
    info = properties.get("delivery_info")
    properties["delivery_info"] = {**(info or {}), "redelivered": True}
    return again


def _write_atomically(folder: str, name: str, payload: dict[str, Any]) -> None:
    temporary = os.path.join(folder, f".tmp-{name}")
    try:
        with open(temporary, "wb") as file:
            file.write(dumps(payload))
            file.flush()
            os.fsync(file.fileno())
        os.replace(temporary, os.path.join(folder, name))
    except OSError as exc:
        raise ChannelError(f"cannot add a message to {folder!r}: {exc}") from exc


class _Claim:
    """A consumer's folder of held messages, and the lock that says it is alive."""

    def __init__(self, held_root: str) -> None:
        self.folder = os.path.join(held_root, f"{os.getpid()}-{uuid.uuid4().hex[:12]}")
        os.makedirs(self.folder)
        self._fd: int | None = os.open(os.path.join(self.folder, LOCK), os.O_CREAT | os.O_RDWR)
        fcntl.flock(self._fd, fcntl.LOCK_EX | fcntl.LOCK_NB)
        processes.track(self)

    def after_fork(self) -> None:
        """In a forked child: close the inherited lock, so the parent's death releases it."""
        self._unlock()

    def _unlock(self) -> None:
        if self._fd is not None:
            os.close(self._fd)
            self._fd = None

    def release(self) -> None:
        """The consumer closes: its folder (empty by now) and lock go."""
        try:
            os.unlink(os.path.join(self.folder, LOCK))
            os.rmdir(self.folder)
        except OSError:
            pass  # a message still held stays, and is reclaimed once the lock is let go
        self._unlock()


def reclaim(held_root: str, queue_folder: str) -> int:
    """Put the messages of every consumer that died back on their queues, flagged
    redelivered; return how many. A folder whose lock is held belongs to a living consumer."""
    returned = 0
    try:
        owners = os.listdir(held_root)
    except FileNotFoundError:
        return 0
    for owner in owners:
        folder = os.path.join(held_root, owner)
        try:
            fd = os.open(os.path.join(folder, LOCK), os.O_RDWR)
        except OSError:
            continue  # being created or removed by its owner
        try:
            try:
                fcntl.flock(fd, fcntl.LOCK_EX | fcntl.LOCK_NB)
            except BlockingIOError:
                continue  # alive
            for name in sorted(os.listdir(folder)):
                if not name.endswith(".msg"):
                    continue
                path = os.path.join(folder, name)
                with open(path, "rb") as file:
                    payload = loads(file.read())
                _write_atomically(queue_folder, name, _redelivered(payload))
                os.unlink(path)
                returned += 1
                log.warning("message_reclaimed", message=name, consumer=owner)
            os.unlink(os.path.join(folder, LOCK))
            os.rmdir(folder)
        except FileNotFoundError:
            continue  # another consumer reclaimed it first
        finally:
            os.close(fd)
    return returned


def holders(held_root: str) -> list[tuple[str, bool, list[str]]]:
    """Each consumer's folder: (its name, whether it is alive, the messages it holds). Alive
    means its lock is held; taking the lock for a moment to tell delays a reclaim (which skips
    a folder it cannot lock) by one round, nothing more."""
    found: list[tuple[str, bool, list[str]]] = []
    try:
        owners = sorted(os.listdir(held_root))
    except FileNotFoundError:
        return found
    for owner in owners:
        folder = os.path.join(held_root, owner)
        try:
            messages = sorted(n for n in os.listdir(folder) if n.endswith(".msg"))
            fd = os.open(os.path.join(folder, LOCK), os.O_RDWR)
        except OSError:
            continue  # being created, removed or reclaimed
        try:
            fcntl.flock(fd, fcntl.LOCK_EX | fcntl.LOCK_NB)
        except BlockingIOError:
            alive = True
        else:
            alive = False
        finally:
            os.close(fd)  # closing lets go of the lock, if it was taken here
        if messages:
            found.append((owner, alive, messages))
    return found


def held_messages(held_root: str) -> list[str]:
    """The names of the messages consumers hold (claimed, not yet acknowledged)."""
    names: list[str] = []
    try:
        owners = os.listdir(held_root)
    except FileNotFoundError:
        return names
    for owner in owners:
        try:
            names.extend(
                n for n in os.listdir(os.path.join(held_root, owner)) if n.endswith(".msg")
            )
        except FileNotFoundError:
            continue
    return names


class QoS(virtual.QoS):
    """kombu's virtual QoS; an acknowledged or rejected message's held file is deleted."""

    def ack(self, delivery_tag: str) -> None:
        super().ack(delivery_tag)
        cast(Channel, self.channel).release(delivery_tag)

    def reject(self, delivery_tag: str, requeue: bool = False) -> None:
        super().reject(delivery_tag, requeue=requeue)  # requeue: put back first (_restore)
        cast(Channel, self.channel).release(delivery_tag)


class Channel(filesystem.Channel):
    """Filesystem channel: complete messages only, held by their consumer until acknowledged."""

    QoS = QoS

    def __init__(self, *args: Any, **kwargs: Any) -> None:
        super().__init__(*args, **kwargs)
        self._held: dict[str, str] = {}
        self._claim: _Claim | None = None
        self._reclaimed_at = 0.0
        self._no_ack: set[str] = set()  # queues consumed without acknowledgements

    def basic_consume(self, queue: str, no_ack: bool, *args: Any, **kwargs: Any) -> Any:
        """Consume ``queue``; without acknowledgements its messages are not held."""
        if no_ack:
            self._no_ack.add(queue)
        return super().basic_consume(queue, no_ack, *args, **kwargs)

    @property
    def held_root(self) -> str:
        return os.path.join(self.processed_folder, HELD)

    def _put(self, queue: str, payload: dict[str, Any], **kwargs: Any) -> None:  # type: ignore[override]  # the stubs of kombu disagree with themselves
        name = f"{round(monotonic() * 1000)}_{uuid.uuid4()}.{queue}.msg"
        _write_atomically(self.data_folder_out, name, payload)

    def _get(self, queue: str, timeout: float | None = None) -> Any:
        if monotonic() - self._reclaimed_at > RECLAIM_EVERY_S:
            self._reclaimed_at = monotonic()
            reclaim(self.held_root, self.data_folder_out)
        wanted = f"{queue}.msg"
        for name in sorted(os.listdir(self.data_folder_in)):
            if name.partition(".")[2] != wanted:
                continue
            if self._claim is None:
                self._claim = _Claim(self.held_root)
            claimed = os.path.join(self._claim.folder, name)
            try:
                os.rename(os.path.join(self.data_folder_in, name), claimed)
            except OSError:
                continue  # another consumer claimed it first
            try:
                with open(claimed, "rb") as file:
                    payload: dict[str, Any] = loads(file.read())
            except OSError as exc:
                raise ChannelError(f"cannot read message {claimed!r}: {exc}") from exc
            if queue in self._no_ack:
                os.unlink(claimed)
            else:
                self._held[payload["properties"]["delivery_tag"]] = claimed
            return payload
        raise Empty()

    def _restore(self, message: Any) -> None:
        """Put a message back on its queue, flagged redelivered, then forget it."""
        info = message.delivery_info
        for queue in self._lookup(info["exchange"], info["routing_key"]):
            self._put(queue, _redelivered(message._raw))
        self.release(message.delivery_tag)

    def release(self, delivery_tag: str) -> None:
        """Forget a message that was acknowledged, rejected or put back: delete its file."""
        path = self._held.pop(delivery_tag, None)
        if path is not None:
            with contextlib.suppress(FileNotFoundError):
                os.unlink(path)

    def close(self) -> None:
        super().close()  # puts back what is still unacknowledged (restore_unacked_once)
        for tag in list(self._held):
            self.release(tag)
        if self._claim is not None:
            self._claim.release()
            self._claim = None

    def _reset_cycle(self) -> None:
        self._cycle = PollInOrder(self._get_and_deliver, self._active_queues, Empty)


class Transport(filesystem.Transport):
    """kombu's filesystem transport with :class:`Channel`."""

    Channel = Channel


class RedisQoS(kombu_redis.QoS):
    """kombu's Redis QoS, which records who holds each unacknowledged message, and puts a
    popped message back when it cannot record it."""

    def append(self, message: Any, delivery_tag: str) -> None:
        """Record ``message`` as unacknowledged, held by this channel; if Redis is gone, put
        it back first."""
        channel: Any = self.channel  # the stubs lack the Redis channel's members
        try:
            self._record(message, delivery_tag)
        except channel.connection_errors as error:
            self._put_back(message, error)
            raise

    def _record(self, message: Any, delivery_tag: str) -> None:
        """kombu's own record (the index entry, the hash entry ``[message, exchange,
        routing key]``) and the holder's name, in one MULTI: no message is held unnamed."""
        channel: Any = self.channel
        info = message.delivery_info
        exchange, routing_key = info["exchange"], info["routing_key"]
        now = time.time()
        holder = dumps([channel.holder, exchange, routing_key, now])
        with self.pipe_or_acquire() as pipe:
            pipe.zadd(self.unacked_index_key, {delivery_tag: now})
            pipe.hset(self.unacked_key, delivery_tag, dumps([message._raw, exchange, routing_key]))
            pipe.hset(HOLDERS_KEY, delivery_tag, holder)
            pipe.execute()
        virtual.QoS.append(self, message, delivery_tag)

    def _remove_from_indices(self, delivery_tag: str, pipe: Any = None) -> Any:
        """kombu's removal (acknowledged, rejected or restored), and the holder's name with it."""
        kombus = super()._remove_from_indices(delivery_tag, pipe)  # type: ignore[misc]  # the stubs lack it
        return kombus.hdel(HOLDERS_KEY, delivery_tag)

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
    :class:`~worker.queue.order.BackgroundLast` order. Every connection it opens carries the
    channel's name (``CLIENT SETNAME``, :func:`connection_name`): the holder of the messages
    it takes, alive for as long as Redis lists a connection of that name."""

    QoS = RedisQoS
    queue_order_strategy = "worker.queue.order:BackgroundLast"

    def __init__(self, *args: Any, **kwargs: Any) -> None:
        self.holder = connection_name()  # before kombu's __init__, which connects
        super().__init__(*args, **kwargs)
        processes.track(self)

    def after_fork(self) -> None:
        """A forked child's connections (kombu drops the parent's) get a name of its own."""
        self.holder = connection_name()

    def _connparams(self, asynchronous: bool = False) -> Any:
        params = super()._connparams(asynchronous)  # type: ignore[misc]  # the stubs lack it
        params["client_name"] = self.holder
        return params


class RedisTransport(kombu_redis.Transport):
    """kombu's Redis transport with :class:`RedisChannel`."""

    Channel = RedisChannel


class SentinelChannel(RedisChannel, kombu_redis.SentinelChannel):
    """kombu's Sentinel channel (the primary the sentinels name) with what :class:`RedisChannel`
    adds: :class:`RedisQoS`, the same order, and named connections (kombu's Sentinel pool takes
    the connection parameters, ``client_name`` included, from ``_connparams``)."""


class SentinelTransport(kombu_redis.SentinelTransport):
    """kombu's Sentinel transport with :class:`SentinelChannel`."""

    Channel = SentinelChannel


# --- who holds what, and putting back what the lost held ---------------------------------------

HOLDERS_KEY = "cable-ingest:held-by"
"""Hash beside kombu's ``unacked``: delivery tag -> ``[holder, exchange, routing key, taken at]``."""
NAME_PREFIX = "cable-ingest"
WORKER, POOL, CLIENT = "worker", "pool", "client"


class _Role:
    """What this process is, in the names of its connections: a worker's main process (it
    consumes), one of its pool processes, or any other client (producer, status, metrics)."""

    def __init__(self) -> None:
        self.name = CLIENT

    def after_fork(self) -> None:
        if self.name == WORKER:
            self.name = POOL


_ROLE = processes.track(_Role())


def mark_worker_process() -> None:
    """This process is a worker's main process (its forked children are its pool)."""
    _ROLE.name = WORKER


def connection_name() -> str:
    """``cable-ingest/<role>/<host>/<pid>/<serial>``: unique to a channel, readable in
    ``CLIENT LIST`` (Redis allows no spaces or control characters in a name)."""
    host = "".join(c if "!" <= c <= "~" and c != "/" else "_" for c in socket.gethostname())
    return f"{NAME_PREFIX}/{_ROLE.name}/{host or '_'}/{os.getpid()}/{uuid.uuid4().hex[:12]}"


def parse_name(name: str) -> tuple[str, str, int] | None:
    """(role, host, pid) of a name made by :func:`connection_name`; None for another name."""
    parts = name.split("/")
    if len(parts) != 5 or parts[0] != NAME_PREFIX or not parts[3].isdigit():
        return None
    return parts[1], parts[2], int(parts[3])


@dataclass(frozen=True, slots=True)
class Unacked:
    """One entry of kombu's ``unacked`` hash: taken at ``taken_at`` (Unix time) by ``holder``
    (None: not recorded), to be restored to ``queues``."""

    tag: str
    taken_at: float | None
    holder: str | None
    queues: tuple[str, ...]


@dataclass(frozen=True, slots=True)
class RedisSnapshot:
    """What Redis held at one instant (one MULTI): per queue its depth and the next message out
    of each priority level, the unacknowledged messages, and the connections (None: Redis
    refused ``CLIENT LIST``, or the channel is not this project's, which names none: the
    holders are unknown)."""

    at: float
    queues: list[tuple[int, list[bytes]]]
    unacked: list[Unacked]
    connections: list[dict[str, str]] | None

    def names(self, db: int | None = None) -> set[str]:
        """Names of the connections (of database ``db`` only, when given)."""
        return {
            c.get("name", "")
            for c in self.connections or []
            if db is None or c.get("db") == str(db)
        } - {""}


def redis_snapshot(channel: Any, names: Sequence[str]) -> RedisSnapshot:
    """Depth and next-out messages of each queue (every priority level, as kombu names the
    lists), kombu's unacknowledged messages with their holders, and the connections, all read
    in one MULTI: the figures of one instant. (Only the routes of messages recorded without
    a holder are read after it, from kombu's own record.)"""
    prefix: str = channel.global_keyprefix  # kombu's client prefixes only some commands
    client = redis.Redis(connection_pool=channel.pool)  # so every key is prefixed here
    keys = {
        name: list(dict.fromkeys(channel._q_for_pri(name, pri) for pri in channel.priority_steps))
        for name in names
    }
    named = isinstance(channel, RedisChannel)  # kombu's own (Sentinel) names no connection
    try:
        replies, connections = _read_all(client, prefix, channel, keys, with_clients=named)
    except redis.ResponseError:  # CLIENT LIST refused (ACL, renamed command): holders unknown
        replies, connections = _read_all(client, prefix, channel, keys, with_clients=False)
    at = time.time()
    levels = iter(replies)
    queues: list[tuple[int, list[bytes]]] = []
    for name in names:
        depth, nexts = 0, []
        for _key in keys[name]:
            length, oldest = next(levels), next(levels)
            depth += int(length)
            if oldest is not None:
                nexts.append(oldest)
        queues.append((depth, nexts))
    tags = [_text(tag) for tag in next(levels)]
    index, holders_raw = next(levels), next(levels)
    taken = {_text(tag): float(score) for tag, score in index}
    holders: dict[str, str] = {}
    routes: dict[str, tuple[str, str]] = {}
    for tag, raw in holders_raw.items():
        try:
            holder, exchange, routing_key, _at = orjson.loads(raw)
        except (orjson.JSONDecodeError, TypeError, ValueError):
            continue  # not ours: the route comes from kombu's record below
        holders[_text(tag)] = str(holder)
        routes[_text(tag)] = (str(exchange or ""), str(routing_key or ""))
    unrouted = [tag for tag in tags if tag not in routes]
    payloads = client.hmget(prefix + channel.unacked_key, unrouted) if unrouted else []
    for tag, raw in zip(unrouted, payloads, strict=True):
        try:
            _message, exchange, routing_key = orjson.loads(raw or b"")
        except (orjson.JSONDecodeError, TypeError, ValueError):
            continue  # acknowledged meanwhile, or not kombu's
        routes[tag] = (str(exchange or ""), str(routing_key or ""))
    wanted, found = set(names), {}
    unacked = []
    for tag in tags:
        route = routes.get(tag)
        if route is not None and route not in found:
            found[route] = tuple(_queues_of(channel, wanted, *route))
        queues_of = found[route] if route is not None else ()
        unacked.append(Unacked(tag, taken.get(tag), holders.get(tag), queues_of))
    return RedisSnapshot(at, queues, unacked, connections)


def _read_all(
    client: redis.Redis,
    prefix: str,
    channel: Any,
    keys: dict[str, list[str]],
    *,
    with_clients: bool,
) -> tuple[list[Any], list[dict[str, str]] | None]:
    """One MULTI: per queue level LLEN and LINDEX -1, then kombu's unacked tags and index,
    the holders, and CLIENT LIST (when ``with_clients``)."""
    with client.pipeline(transaction=True) as pipe:
        for levels in keys.values():
            for key in levels:
                pipe.llen(prefix + key)
                pipe.lindex(prefix + key, -1)
        pipe.hkeys(prefix + channel.unacked_key)
        pipe.zrange(prefix + channel.unacked_index_key, 0, -1, withscores=True)
        pipe.hgetall(prefix + HOLDERS_KEY)
        if with_clients:
            pipe.client_list()
        replies: list[Any] = pipe.execute()
    connections = replies.pop() if with_clients else None
    return replies, connections


def _text(value: bytes | str) -> str:
    return value.decode() if isinstance(value, bytes) else value


def _queues_of(channel: Any, wanted: set[str], exchange: str, routing_key: str) -> list[str]:
    """The queues kombu's restore would push a message to: this application's routes (a
    queue's own direct exchange, or the default one) without a round trip, others from the
    exchange's bindings."""
    if routing_key in wanted and exchange in ("", routing_key):
        return [routing_key]
    return _restored_to(channel, exchange, routing_key)


def _restored_to(channel: Any, exchange: str, routing_key: str) -> list[str]:
    """The queues kombu's restore would push a message to (its exchange's bindings)."""
    try:
        queues = [str(queue) for queue in channel._lookup(exchange, routing_key)]
    except KeyError:
        queues = []
    return queues or [routing_key]  # unbound: the default exchange routes by queue name


def lost(snapshot: RedisSnapshot) -> list[Unacked]:
    """The unacknowledged messages whose holder is gone: it was named, and Redis lists no
    connection of that name. None when Redis would not list its connections."""
    if snapshot.connections is None:
        return []
    alive = snapshot.names()
    return [u for u in snapshot.unacked if u.holder is not None and u.holder not in alive]


def put_back_lost(channel: Any, names: Sequence[str] = ()) -> list[Unacked]:
    """Put every message whose holder is gone back on its queue, flagged redelivered (kombu's
    restore, in a WATCH transaction: a message acknowledged or restored meanwhile is not
    pushed twice); return them. A holder is gone when Redis no longer lists a connection
    with its name: a live consumer keeps its connections (and a reconnecting one takes a new
    name, having given up what it held); so a live consumer's messages are never put back."""
    snapshot = redis_snapshot(channel, names)
    returned = []
    client = channel.client
    for entry in lost(snapshot):
        channel.qos.restore_by_tag(entry.tag, client)
        returned.append(entry)
        log.warning("message_put_back", delivery_tag=entry.tag, holder=entry.holder,
                    queue=",".join(entry.queues), reason="its holder is gone")  # fmt: skip
    return returned


def register() -> None:
    """Make ``filesystem://`` URLs use :class:`Transport`, ``redis://`` and ``rediss://`` URLs
    :class:`RedisTransport`, ``sentinel://`` URLs :class:`SentinelTransport`."""
    # kombu's Redis channel calls these module globals for every message it puts, takes,
    # records as unacknowledged and restores: one assignment instead of copying six methods
    kombu_redis.dumps, kombu_redis.loads = dumps, loads  # type: ignore[attr-defined]
    TRANSPORT_ALIASES["filesystem"] = f"{__name__}:Transport"
    TRANSPORT_ALIASES["redis"] = f"{__name__}:RedisTransport"
    TRANSPORT_ALIASES["rediss"] = f"{__name__}:RedisTransport"
    TRANSPORT_ALIASES["sentinel"] = f"{__name__}:SentinelTransport"
