"""Health probes that mean "consuming", not merely "running".

Ready means: the broker answers (Redis PING; for the embedded broker, its queue folder can be
read and written), the database answers (``SELECT 1``), and, while any of the worker's queues
holds waiting messages, some task was acknowledged within the readiness window. The workers
record that time after every task (:func:`record_ack`, hooked to ``task_postrun``): on Redis as
the key ``cable-ingest:last-ack`` of the broker's database, on the embedded broker in the file
``var_dir/broker/last-ack``; both hold the Unix time as a decimal number.

Every check is bounded by short timeouts, so that a probe answers within a few seconds.
"""

from __future__ import annotations

import os
import time
import uuid
from dataclasses import asdict, dataclass, field
from pathlib import Path
from typing import TYPE_CHECKING, Any, cast

from sqlalchemy import create_engine, text
from sqlalchemy.engine import make_url
from sqlalchemy.pool import NullPool

from worker.logs import get_logger
from worker.routing.config import load_config
from worker.settings import Settings, redact_url

if TYPE_CHECKING:
    import redis
    from celery import Celery
    from kombu import Connection

log = get_logger("worker.ops.health")

ACK_KEY = "cable-ingest:last-ack"
ACK_FILE = "last-ack"
TIMEOUT_S = 3  # every connection a probe makes (PostgreSQL counts whole seconds, at least 2)
REDIS_SCHEMES = ("redis", "rediss", "sentinel")


@dataclass(slots=True)
class Health:
    """The answer of a probe: alive (the process runs), ready (it can consume), and why not."""

    alive: bool
    ready: bool
    reasons: list[str] = field(default_factory=list)
    details: dict[str, Any] = field(default_factory=dict)

    def as_dict(self) -> dict[str, Any]:
        """The answer as JSON-ready values."""
        return asdict(self)


def _short(error: BaseException) -> str:
    lines = str(error).strip().splitlines()
    return f"{type(error).__name__}: {lines[0][:200]}" if lines else type(error).__name__


def _is_redis(settings: Settings) -> bool:
    return settings.broker_url.startswith(REDIS_SCHEMES)


_client: tuple[tuple[int, str], Connection, redis.Redis] | None = None


def _redis(settings: Settings) -> redis.Redis:
    """The broker's Redis client for this process, through kombu (sentinel and failover URLs
    and the broker's transport options as the worker has them), with short timeouts."""
    global _client  # noqa: PLW0603 - one client per process, reused after a fork is detected
    key = (os.getpid(), settings.broker_url)
    if _client is None or _client[0] != key:
        from kombu import Connection  # noqa: PLC0415 - only for a Redis broker

        options = {**settings.broker_transport_options(), "max_retries": 0}
        options |= {"socket_timeout": TIMEOUT_S, "socket_connect_timeout": TIMEOUT_S}
        connection = Connection(
            settings.broker_url, connect_timeout=TIMEOUT_S, transport_options=options
        )
        try:
            client: redis.Redis = cast(Any, connection.default_channel).client  # stubs lack it
        except BaseException:
            connection.release()
            raise
        _client = (key, connection, client)
    return _client[2]


def _queue_folder(settings: Settings) -> Path:
    return Path(settings.broker_transport_options()["data_folder_in"])


def _ack_file(settings: Settings) -> Path:
    return settings.var_dir / "broker" / ACK_FILE


def record_ack(settings: Settings, *, at: float | None = None) -> None:
    """Record that a task was just acknowledged (hook to ``task_postrun``); never raises."""
    value = repr(time.time() if at is None else at)
    try:
        if _is_redis(settings):
            _redis(settings).set(ACK_KEY, value)
        elif settings.broker_url.startswith("filesystem"):
            path = _ack_file(settings)
            temporary = path.with_name(f".{ACK_FILE}.{os.getpid()}.tmp")
            temporary.write_text(value, encoding="ascii")
            os.replace(temporary, path)  # readers see the old time or the new, never half
    except Exception as error:  # a probe's bookkeeping must never fail a task
        log.warning("ack_not_recorded", error=_short(error))


def last_ack(settings: Settings) -> float | None:
    """When a task was last acknowledged (Unix time), or None when none was recorded."""
    raw: bytes | str | None = None
    if _is_redis(settings):
        raw = _redis(settings).get(ACK_KEY)
    elif settings.broker_url.startswith("filesystem"):
        try:
            raw = _ack_file(settings).read_text(encoding="ascii")
        except FileNotFoundError:
            return None
    try:
        return float(raw) if raw is not None else None
    except ValueError:
        return None


def check_broker(settings: Settings) -> str | None:
    """None when the broker answers, else why not (for people)."""
    where = redact_url(settings.broker_url)
    if _is_redis(settings):
        try:
            _redis(settings).ping()
        except Exception as error:
            return f"broker {where} does not answer: {_short(error)}"
        return None
    if not settings.broker_url.startswith("filesystem"):
        return None  # memory: in-process, nothing to reach
    folder = _queue_folder(settings)
    probe = folder / f".probe-{os.getpid()}-{uuid.uuid4().hex}"  # never a message's name
    try:
        os.listdir(folder)
        probe.write_bytes(b"")
        probe.unlink()
    except OSError as error:
        return f"broker folder {folder} is not readable and writable: {_short(error)}"
    return None


def check_database(settings: Settings) -> str | None:
    """None when ``SELECT 1`` answers, else why not (for people). A missing SQLite file is
    reported, not created: the worker creates it when it starts."""
    url = make_url(settings.database_url)
    where = redact_url(settings.database_url)
    connect_args: dict[str, Any] = {}
    if url.get_backend_name() == "sqlite":
        database = url.database or ""
        if database and not database.startswith("file:") and not Path(database).exists():
            return f"database {where}: {database} does not exist (no worker started yet?)"
        connect_args["timeout"] = TIMEOUT_S
    elif "connect_timeout" not in url.query:
        connect_args["connect_timeout"] = TIMEOUT_S
    engine = create_engine(url, poolclass=NullPool, connect_args=connect_args)
    try:
        with engine.connect() as connection:
            connection.execute(text("SELECT 1"))
    except Exception as error:
        return f"database {where} does not answer: {_short(getattr(error, 'orig', error))}"
    finally:
        engine.dispose()
    return None


def queue_names(settings: Settings) -> list[str]:
    """Intake, every configured sink's queue and reparse."""
    from worker.queue.app import consumed_queues  # noqa: PLC0415 - the app imports us

    return consumed_queues(load_config(settings.config_file))


def queue_depths(app: Celery, names: list[str]) -> dict[str, int]:
    """Messages waiting on each queue."""
    from worker.queue.depths import queue_depth  # noqa: PLC0415 - imports kombu's transports

    return {name: queue_depth(app, name) for name in names}


def _stalled(waiting: dict[str, int], age: float | None, window: float) -> str:
    shown = [f"{name} has {count:,} message{'s' if count != 1 else ''}"
             for name, count in waiting.items()]  # fmt: skip
    queues = shown[0] if len(shown) == 1 else ", ".join(shown[:-1]) + " and " + shown[-1]
    if age is None:
        return f"{queues} waiting and no task was ever acknowledged (window {window:g} s)"
    return f"{queues} waiting and nothing was acknowledged for {age:.0f} s (window {window:g} s)"


def check_health(
    settings: Settings, app: Celery | None = None, *, ready_window_s: float | None = None
) -> Health:
    """Probe the broker, the database and, while work waits, the time of the last ack
    (within ``ready_window_s``, default the setting ``CABLE_INGEST_READY_WINDOW_S``)."""
    if ready_window_s is None:
        ready_window_s = settings.ready_window_s
    health = Health(alive=True, ready=False, details={"ready_window_s": ready_window_s})
    broker = check_broker(settings)
    database = check_database(settings)
    health.details |= {"broker": broker or "ok", "database": database or "ok"}
    health.reasons += [reason for reason in (broker, database) if reason]
    if broker is None and settings.broker_url.startswith(("filesystem", *REDIS_SCHEMES)):
        from worker.queue.app import create_app  # noqa: PLC0415 - the app imports this module

        try:
            depths = queue_depths(app or create_app(settings), queue_names(settings))
            acked = last_ack(settings)
        except Exception as error:
            health.reasons.append(f"cannot read the queues: {_short(error)}")
        else:
            age = None if acked is None else max(0.0, time.time() - acked)
            health.details |= {"queues": depths, "last_ack_age_s": age}
            waiting = {name: count for name, count in depths.items() if count}
            if waiting and (age is None or age > ready_window_s):
                health.reasons.append(_stalled(waiting, age, ready_window_s))
    health.ready = not health.reasons
    return health
