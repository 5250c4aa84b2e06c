"""The broker seam: what the rest of cable-ingest asks of a broker, Redis or embedded.

:func:`broker_for` is the one place that looks at the broker URL's scheme. A :class:`Broker`
answers: kombu's transport options and the worker flags it needs, the queues (depth,
unacknowledged, age of the oldest waiting), a :class:`Snapshot` of queues, workers and held
messages read at one instant, whether it answers, the readiness key (when a task was last
acknowledged), and putting back what a consumer that is gone held (never what a live one
holds). The kombu internals both implementations rely on live in :mod:`worker.queue.broker`,
and nowhere else.
"""

from __future__ import annotations

import functools
import os
import time
import uuid
from collections import Counter
from collections.abc import Iterator, Sequence
from contextlib import contextmanager
from dataclasses import dataclass, replace
from pathlib import Path
from typing import Any, Protocol, cast
from urllib.parse import quote, unquote, urlsplit, urlunsplit

import orjson
import redis
from celery import Celery
from kombu import Connection
from kombu.exceptions import KombuError, OperationalError

from worker import processes, sentinel
from worker.errors import UnavailableError
from worker.logs import get_logger
from worker.queue import broker as transports
from worker.queue.depths import queue_depth
from worker.queue.names import PUBLISHED_AT, publish
from worker.settings import PREFIX, Settings, read_secret, redact_url
from worker.waiting import cause

log = get_logger("worker.queue.brokers")

REDIS_SCHEMES = ("redis", "rediss", "sentinel")
ACK_KEY = "cable-ingest:last-ack"
ACK_FILE = "last-ack"
PROBE_TIMEOUT_S = 3
CONNECT_TIMEOUT_S = 5
SOCKET_TIMEOUT_S = 10
FILESYSTEM_POLLING_S = 0.01
QUICK = {
    "socket_connect_timeout": CONNECT_TIMEOUT_S,
    "socket_timeout": SOCKET_TIMEOUT_S,
    "max_retries": 1,  # the status is for now: no endless reconnection loop
    "interval_start": 0,
    "interval_step": 1,
}


class BrokerUnavailableError(UnavailableError):
    """The broker could not be reached or read (worth waiting for: :mod:`worker.waiting`)."""

    def __init__(self, message: str, url: str = "") -> None:
        super().__init__("broker", url, message)


@dataclass(frozen=True, slots=True)
class QueueInfo:
    """One queue: messages waiting, delivered but not acknowledged, age of the oldest waiting,
    and how many of the unacknowledged ones consumers that are gone hold."""

    name: str
    depth: int
    unacked: int
    oldest_age_s: float | None  # None: nothing waits, or the next out has no published_at
    lost: int | None = None  # held by consumers that are gone; None: the broker cannot tell


@dataclass(frozen=True, slots=True)
class Held:
    """Unacknowledged messages of one queue held by one consumer."""

    queue: str
    holder: str | None  # the consumer's name (Redis: its connections' name); None: unknown
    alive: bool | None  # the holder is still there; None: the broker cannot tell
    messages: int
    taken_at: float | None  # when the earliest was taken (Unix time); None: unknown
    returns_at: float | None  # when the visibility timeout returns the earliest (Redis only)


@dataclass(frozen=True, slots=True)
class Worker:
    """A worker process connected to the broker, and how many messages it holds."""

    name: str  # host:pid
    held: int


@dataclass(frozen=True, slots=True)
class Snapshot:
    """The broker's figures read at one instant ``at`` (Unix time)."""

    at: float
    queues: list[QueueInfo]
    workers: list[Worker] | None  # None: the broker cannot tell (embedded, in-process)
    held: list[Held]

    @property
    def lost(self) -> list[Held]:
        """Messages held by consumers that are gone."""
        return [h for h in self.held if h.alive is False]


class Broker(Protocol):
    """What cable-ingest asks of a broker."""

    settings: Settings
    broadcast: bool  # workers answer broadcasts (status, inspect, mingle, gossip)
    url: str  # what kombu connects to (Celery's broker_url), passwords included

    def transport_options(self) -> dict[str, Any]:
        """kombu's ``broker_transport_options`` for this broker."""
        ...

    def worker_flags(self) -> list[str]:
        """Extra ``celery worker`` flags this broker needs."""
        ...

    def prepare(self) -> None:
        """Create what the broker needs before anyone publishes or consumes."""
        ...

    def queues(self, celery: Celery, names: Sequence[str], now: float) -> list[QueueInfo]:
        """Depth, unacked and oldest age of each queue, in order; BrokerUnavailableError."""
        ...

    def snapshot(self, celery: Celery, names: Sequence[str]) -> Snapshot:
        """Queues, workers and held messages read at one instant; BrokerUnavailableError."""
        ...

    def ping(self) -> str | None:
        """None when the broker answers, else why not (for people)."""
        ...

    def record_ack(self, value: str) -> None:
        """Store the readiness key: when a task was last acknowledged (Unix time)."""
        ...

    def last_ack(self) -> str | bytes | None:
        """The readiness key as stored, or None."""
        ...

    def put_back(self) -> int:
        """Return what consumers that are gone still held to their queues; how many. Never
        what a live consumer holds (it would be done twice)."""
        ...

    def notes(self) -> list[str]:
        """What an operator should know about the broker's state (for ``status``)."""
        ...


@functools.lru_cache(maxsize=16)
def broker_for(settings: Settings) -> Broker:
    """The broker of ``settings.broker_url`` (one per settings in a process: the Redis one
    keeps its client, which a forked child forgets)."""
    if settings.broker_url.startswith(REDIS_SCHEMES):
        return RedisBroker(settings)
    if settings.broker_url.startswith("filesystem:"):
        return EmbeddedBroker(settings)
    return InProcessBroker(settings)


def record_ack(settings: Settings, *, at: float | None = None) -> None:
    """Record that a task was just acknowledged (the readiness key; hooked to
    ``task_postrun``); never raises: a probe's bookkeeping must never fail a task."""
    value = repr(time.time() if at is None else at)
    try:
        broker_for(settings).record_ack(value)
    except Exception as error:
        log.warning("ack_not_recorded", error=_short(error))


def _short(error: BaseException) -> str:
    lines = str(error).strip().splitlines()
    return f"{type(error).__name__}: {lines[0][:200]}" if lines else type(error).__name__


def header_age(raw: bytes | str, now: float) -> float | None:
    """Age of a kombu JSON message from its ``published_at`` header; None without one."""
    try:
        message = orjson.loads(raw)
    except orjson.JSONDecodeError:
        return None
    headers = message.get("headers") if isinstance(message, dict) else None
    published = headers.get(PUBLISHED_AT) if isinstance(headers, dict) else None
    if isinstance(published, int | float) and not isinstance(published, bool):
        return round(max(0.0, now - float(published)), 3)
    return None


def unavailable(url: str, error: BaseException) -> BrokerUnavailableError:
    """The error to raise for ``error``, met talking to the broker at ``url``."""
    where = redact_url(url)
    return BrokerUnavailableError(f"broker {where} does not answer ({cause(error)})", where)


_FAILURES = (KombuError, redis.RedisError, OSError)
# what a publish meets when the broker is away (not a message kombu cannot encode, say)
_AWAY = (OperationalError, redis.ConnectionError, redis.TimeoutError, OSError)


@contextmanager
def connection(celery: Celery, action: str) -> Iterator[Connection]:
    """A broker connection that fails within seconds instead of retrying without end;
    BrokerUnavailableError when it does (``action``, what it was for, goes to the log)."""
    try:
        with celery.connection_for_read(transport_options=QUICK) as conn:
            conn.ensure_connection(max_retries=1, interval_start=0, timeout=CONNECT_TIMEOUT_S)
            yield conn
    except _FAILURES as error:
        log.debug("broker_unavailable", action=action, error=_short(error))
        raise unavailable(str(celery.conf.broker_url), error) from error


def check(settings: Settings) -> None:
    """Make what the broker needs (the embedded one's folders) and ask whether it answers;
    BrokerUnavailableError when it does not."""
    broker = broker_for(settings)
    try:
        broker.prepare()
    except OSError as error:
        raise unavailable(settings.broker_url, error) from error
    if problem := broker.ping():
        raise BrokerUnavailableError(problem, redact_url(settings.broker_url))


class Publisher:
    """Publishes task messages on a broker connection of its own that gives up within seconds
    (BrokerUnavailableError) instead of retrying inside kombu; the next call reconnects. Who
    waits, and how long, is the caller's choice (:func:`worker.waiting.wait_for`)."""

    def __init__(self, celery: Celery) -> None:
        self._celery = celery
        self._connection: Connection | None = None
        processes.track(self)

    def _connected(self) -> Connection:
        if self._connection is None:
            conn = self._celery.connection_for_write(transport_options=QUICK)
            try:
                conn.ensure_connection(max_retries=1, interval_start=0, timeout=CONNECT_TIMEOUT_S)
            except BaseException:
                conn.release()
                raise
            self._connection = conn
        return self._connection

    @contextmanager
    def _using(self) -> Iterator[Connection]:
        try:
            yield self._connected()
        except _AWAY as error:
            self.close()
            raise unavailable(str(self._celery.conf.broker_url), error) from error

    def publish(self, task: str, args: list[Any], queue: str) -> None:
        """Send one task message to ``queue`` (:func:`worker.queue.names.publish`), once."""
        with self._using() as conn:
            publish(self._celery, task, args, queue, connection=conn)

    def depth(self, queue: str) -> int:
        """Messages waiting on ``queue`` (0 when it does not exist)."""
        with self._using() as conn:
            return queue_depth(self._celery, queue, connection=conn)

    def close(self) -> None:
        """Release the connection (the next call makes a new one)."""
        conn, self._connection = self._connection, None
        if conn is not None:
            try:
                conn.release()
            except _FAILURES as error:
                log.debug("broker_connection_not_released", error=_short(error))

    def after_fork(self) -> None:
        """A forked child makes its own connection."""
        self._connection = None


class RedisBroker:
    """Redis (``redis://``, ``rediss://``, ``sentinel://``): messages kombu restores after the
    visibility timeout, or :meth:`put_back` as soon as their holder is gone; readiness in a
    key of the broker's database."""

    broadcast = True

    def __init__(self, settings: Settings) -> None:
        self.settings = settings
        password = _secret(settings.broker_password, settings.broker_password_file, "BROKER")
        self.url = _with_password(settings.broker_url, password)
        self._sentinel: dict[str, Any] = {}
        if sentinel.is_sentinel(settings.broker_url):
            self.url, self._sentinel = _sentinel_options(settings, password)
        self._client: redis.Redis | None = None
        self._connection: Connection | None = None
        processes.track(self)

    def transport_options(self) -> dict[str, Any]:
        # kombu base64-encodes every body by default: a third more bytes, and decoding in the
        # worker's main process. Our bodies are JSON text already (make bench: no-op task on
        # Redis 5,222 -> 6,115 cables/s in batches of 100)
        options = {"visibility_timeout": self.settings.visibility_timeout, "body_encoding": "utf-8"}
        # workers look for messages past the visibility timeout every 10 s (kombu's default,
        # every 10th look: 100 s late), so that status can say when they come back
        options["unacked_restore_throttle"] = 1
        return options | self._sentinel  # sentinel://: the master's name, the sentinels' password

    def worker_flags(self) -> list[str]:
        return []

    def prepare(self) -> None:
        return None

    def queues(self, celery: Celery, names: Sequence[str], now: float) -> list[QueueInfo]:
        del now  # ages are read against the moment of the snapshot
        return self.snapshot(celery, names).queues

    def snapshot(self, celery: Celery, names: Sequence[str]) -> Snapshot:
        """One MULTI (:func:`worker.queue.broker.redis_snapshot`) on this process's client."""
        del celery  # this process's own connection: no new one per look
        try:
            found = transports.redis_snapshot(self._channel(), names)
        except (KombuError, redis.RedisError, OSError) as error:
            raise unavailable(self.settings.broker_url, error) from error
        return _redis_figures(found, names, self.settings.visibility_timeout, self._db())

    def _channel(self) -> Any:
        self._redis()
        assert self._connection is not None
        return self._connection.default_channel

    def _db(self) -> int:
        return int(cast(Any, self._channel()).pool.connection_kwargs.get("db", 0))

    def _redis(self) -> redis.Redis:
        """This process's client, through kombu (Sentinel and failover URLs and the transport
        options as the worker has them), with short timeouts."""
        if self._client is None:
            # before kombu resolves (and caches) the redis transport: this project's Redis
            # channel, which names its connections
            transports.register()
            options = {**self.transport_options(), "max_retries": 0}
            options |= {
                "socket_timeout": PROBE_TIMEOUT_S,
                "socket_connect_timeout": PROBE_TIMEOUT_S,
            }
            conn = Connection(
                self.url, connect_timeout=PROBE_TIMEOUT_S, transport_options=options
            )
            try:
                self._client = cast(Any, conn.default_channel).client  # the stubs lack it
            except BaseException:
                conn.release()
                raise
            self._connection = conn
        assert self._client is not None
        return self._client

    def after_fork(self) -> None:
        """A forked child makes its own client (redis-py leaves the parent's sockets be)."""
        self._client = self._connection = None

    def ping(self) -> str | None:
        try:
            self._redis().ping()
        except Exception as error:
            return f"broker {redact_url(self.settings.broker_url)} does not answer ({cause(error)})"
        return None

    def record_ack(self, value: str) -> None:
        self._redis().set(ACK_KEY, value)

    def last_ack(self) -> str | bytes | None:
        raw: str | bytes | None = self._redis().get(ACK_KEY)
        return raw

    def put_back(self) -> int:
        """What consumers that are gone held (Redis no longer lists a connection of their
        name), back on their queues now rather than after the visibility timeout."""
        try:
            return len(transports.put_back_lost(self._channel()))
        except (KombuError, redis.RedisError, OSError) as error:
            where = redact_url(self.settings.broker_url)
            message = f"broker {where}: putting messages back failed: {_short(error)}"
            raise BrokerUnavailableError(message) from error

    def notes(self) -> list[str]:
        return []


def _secret(value: str, file: Path | None, name: str) -> str | None:
    """A password of the settings: ``CABLE_INGEST_<name>_PASSWORD``, else the file that
    ``CABLE_INGEST_<name>_PASSWORD_FILE`` names (read now), else None."""
    if value:
        return value
    if file is None:
        return None
    return read_secret(file=str(file), what=f"{PREFIX}{name}_PASSWORD_FILE")


def _with_password(url: str, password: str | None) -> str:
    """``url`` (each URL of a ``;``-joined list: kombu reads one at a time, and the next when
    it fails over) with ``password`` in its user info; unchanged without one."""
    if password is None:
        return url
    parts = []
    for part in url.split(";"):
        split = urlsplit(part)
        login = f"{quote(unquote(split.username or ''), safe='')}:{quote(password, safe='')}"
        parts.append(urlunsplit(split._replace(netloc=f"{login}@{split.netloc.rpartition('@')[2]}")))
    return ";".join(parts)


def _sentinel_options(settings: Settings, password: str | None) -> tuple[str, dict[str, Any]]:
    """For a ``sentinel://`` broker: the URL as kombu reads it (with the primary's
    ``password``), and the transport options that name the primary and say how to talk to the
    sentinels (:mod:`worker.sentinel`)."""
    address = sentinel.parse(settings.broker_url)  # the settings checked it, and the name
    master = address.master_name or settings.sentinel_master
    watch = _secret(settings.sentinel_password, settings.sentinel_password_file, "SENTINEL")
    options = {"master_name": master, "sentinel_kwargs": sentinel.sentinel_kwargs(watch)}
    return address.kombu_url(password), options


def describe_holder(holder: str | None) -> str:
    """``worker host:pid`` for a Redis connection name of this project (other roles: ``pool
    host:pid``, ``client host:pid``); other names as they are."""
    if holder is None:
        return "a consumer that recorded no name"
    parsed = transports.parse_name(holder)
    if parsed is None:
        return holder
    role, host, pid = parsed
    return f"{role} {host}:{pid}"


def _redis_figures(
    found: transports.RedisSnapshot, names: Sequence[str], visibility_timeout: int, db: int
) -> Snapshot:
    """Queues, workers and held messages from what one MULTI read."""
    alive = None if found.connections is None else found.names()
    held: dict[tuple[str, str | None], list[float | None]] = {}
    for entry in found.unacked:
        for queue in entry.queues:
            held.setdefault((queue, entry.holder), []).append(entry.taken_at)
    groups = []
    for (queue, holder), times in sorted(held.items(), key=lambda kv: (kv[0][0], str(kv[0][1]))):
        known = [t for t in times if t is not None]
        taken = min(known) if known else None
        state = None if alive is None or holder is None else holder in alive
        back = None if taken is None else taken + visibility_timeout
        groups.append(Held(queue, holder, state, len(times), taken, back))
    queues = []
    for name, (depth, raws) in zip(names, found.queues, strict=True):
        mine = [g for g in groups if g.queue == name]
        lost = None if alive is None else sum(g.messages for g in mine if g.alive is False)
        unacked = sum(g.messages for g in mine)
        queues.append(QueueInfo(name, depth, unacked, _oldest(raws, found.at), lost))
    workers = None
    if found.connections is not None:
        processes_seen: dict[tuple[str, int], int] = {}
        for name in found.names(db):
            parsed = transports.parse_name(name)
            if parsed is not None and parsed[0] == transports.WORKER:
                processes_seen.setdefault(parsed[1:], 0)
        for entry in found.unacked:
            parsed = transports.parse_name(entry.holder or "")
            if parsed is not None and parsed[1:] in processes_seen and alive and entry.holder in alive:
                processes_seen[parsed[1:]] += 1
        workers = [Worker(f"{host}:{pid}", n) for (host, pid), n in sorted(processes_seen.items())]
    return Snapshot(found.at, queues, workers, groups)


def _oldest(raws: Sequence[bytes], now: float) -> float | None:
    """The age of the oldest of the next-out messages of each priority level (None when one
    lacks the header, so that no age is made up)."""
    ages = [header_age(raw, now) for raw in raws]
    return max(a for a in ages if a is not None) if ages and None not in ages else None


class EmbeddedBroker:
    """kombu's filesystem transport under ``var_dir/broker`` (:mod:`worker.queue.broker`):
    messages held by their consumer until acknowledged; readiness in a file."""

    broadcast = False

    def __init__(self, settings: Settings) -> None:
        self.settings = settings
        self.url: str = settings.broker_url
        self.folder = settings.var_dir / "broker"

    def transport_options(self) -> dict[str, Any]:
        # the queue folder is written and read by every process alike; messages are claimed
        # by a rename into the processed folder, on the same file system (kombu's default, the
        # system temp dir, may be another). The virtual transports poll; the default second
        # would dominate small runs (make bench, embedded: 0.05 s 1,402-1,474 cables/s, 0.01 s
        # 1,528-1,662; idle, 1.3% of a core)
        queue = str(self.folder / "queue")
        return {
            "data_folder_in": queue,
            "data_folder_out": queue,
            "processed_folder": str(self.folder / "processed"),
            "control_folder": str(self.folder / "control"),
            "polling_interval": FILESYSTEM_POLLING_S,
        }

    def worker_flags(self) -> list[str]:
        return ["--without-gossip", "--without-mingle", "--without-heartbeat"]  # no broadcast

    def prepare(self) -> None:
        for name in ("queue", "processed", "control"):
            (self.folder / name).mkdir(parents=True, exist_ok=True)

    @property
    def queue_folder(self) -> Path:
        return self.folder / "queue"

    @property
    def held_root(self) -> str:
        return str(self.folder / "processed" / transports.HELD)

    def queues(self, celery: Celery, names: Sequence[str], now: float) -> list[QueueInfo]:
        """From the queue folder's files (``<ms>_<uuid>.<queue>.msg``; hidden ones are being
        written) and the messages consumers hold (unacked)."""
        del celery
        folder = self.queue_folder
        unacked = Counter(n.partition(".")[2] for n in transports.held_messages(self.held_root))
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
                    queue = entry.name.partition(".")[2]
                    by_queue.setdefault(queue, []).append((written, entry.name))
        except FileNotFoundError:
            pass  # nothing was ever enqueued here
        except OSError as error:
            raise BrokerUnavailableError(
                f"cannot list the queue folder {folder} ({cause(error)})", str(folder)
            ) from error
        found: list[QueueInfo] = []
        for queue in names:
            waiting = by_queue.get(f"{queue}.msg", [])
            age = _oldest_file_age(folder, waiting, now)
            found.append(QueueInfo(queue, len(waiting), unacked[f"{queue}.msg"], age))
        return found

    def snapshot(self, celery: Celery, names: Sequence[str]) -> Snapshot:
        """The queue folder's files, then the consumers' folders: whose lock is free, its
        owner is gone (a running consumer puts its messages back within seconds)."""
        at = time.time()
        queues = self.queues(celery, names, at)
        held: dict[tuple[str, str, bool], int] = Counter()
        for owner, alive, messages in transports.holders(self.held_root):
            for message in messages:
                held[message.partition(".")[2].removesuffix(".msg"), owner, alive] += 1
        groups = [
            Held(queue, owner, alive, n, None, None)
            for (queue, owner, alive), n in sorted(held.items())
        ]
        lost: Counter[str] = Counter()
        for group in groups:
            lost[group.queue] += 0 if group.alive else group.messages
        queues = [replace(q, lost=lost[q.name]) for q in queues]
        return Snapshot(at, queues, None, groups)

    def ping(self) -> str | None:
        folder = self.queue_folder
        probe = folder / f".probe-{os.getpid()}-{uuid.uuid4().hex}"  # never a message's name
        try:
            os.listdir(folder)
            probe.write_bytes(b"")
            probe.unlink()
        except OSError as error:
            return f"broker folder {folder} is not readable and writable ({cause(error)})"
        return None

    def record_ack(self, value: str) -> None:
        path = self.folder / ACK_FILE
        temporary = path.with_name(f".{ACK_FILE}.{os.getpid()}.tmp")
        temporary.write_text(value, encoding="ascii")
        os.replace(temporary, path)  # readers see the old time or the new, never half

    def last_ack(self) -> str | bytes | None:
        try:
            return (self.folder / ACK_FILE).read_text(encoding="ascii")
        except FileNotFoundError:
            return None

    def put_back(self) -> int:
        return transports.reclaim(self.held_root, str(self.queue_folder))

    def notes(self) -> list[str]:
        if self.queue_folder.is_dir():
            return []
        return [f"queue folder {self.queue_folder} does not exist: nothing was enqueued here yet"]


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
            raise BrokerUnavailableError(
                f"cannot read {path} ({cause(error)})", str(path)
            ) from error
        age = header_age(raw, now)
        return age if age is not None else round(max(0.0, now - written), 3)
    return None


class InProcessBroker:
    """Any other kombu transport (``memory://``, which no other process can see): depths as
    kombu reports them, no acknowledgements, no readiness key."""

    broadcast = False

    def __init__(self, settings: Settings) -> None:
        self.settings = settings
        self.url: str = settings.broker_url

    def transport_options(self) -> dict[str, Any]:
        return {"body_encoding": "utf-8"}  # as on Redis

    def worker_flags(self) -> list[str]:
        return ["--without-gossip", "--without-mingle", "--without-heartbeat"]

    def prepare(self) -> None:
        return None

    def queues(self, celery: Celery, names: Sequence[str], now: float) -> list[QueueInfo]:
        with connection(celery, "reading the queues"):
            return [QueueInfo(name, queue_depth(celery, name), 0, None) for name in names]

    def snapshot(self, celery: Celery, names: Sequence[str]) -> Snapshot:
        at = time.time()
        return Snapshot(at, self.queues(celery, names, at), None, [])

    def ping(self) -> str | None:
        return None

    def record_ack(self, value: str) -> None:
        return None

    def last_ack(self) -> str | bytes | None:
        return None

    def put_back(self) -> int:
        return 0

    def notes(self) -> list[str]:
        return []
