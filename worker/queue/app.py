"""The Celery application, built from explicit settings for a broker that must not lose a cable.

:func:`create_app` is called by whoever runs: ``cable-ingest worker`` and ``run`` with the
settings they resolved, a producer with its own, ``celery -A worker.app`` through
:mod:`worker.app`, the one module that builds an app from the environment. Importing this
module reads nothing and connects nothing. The app carries its settings, its sinks file and,
in each process that uses it, a :class:`~worker.queue.runtime.Runtime` (sinks and stores),
made on first use and forgotten in a forked child.
"""

from __future__ import annotations

import functools
from typing import Any

import orjson
from celery import Celery, signals
from kombu import Exchange, Queue
from kombu.serialization import register

from worker import logs, processes
from worker import telemetry as metrics
from worker.queue import broker
from worker.queue.brokers import broker_for, record_ack
from worker.queue.names import (
    DELIVER_TASK,
    INGEST_TASK,
    INTAKE_QUEUE,
    PUBLISHED_AT,
    REPARSE_QUEUE,
    REPARSE_TASK,
    consumed_queues,
    publish,
    sink_queue,
)
from worker.queue.policy import HARD_LIMIT_GRACE_S, longest_hold
from worker.queue.runtime import Runtime
from worker.routing.config import Config, load_config
from worker.settings import Settings
from worker.storage import upgrade

__all__ = [
    "DELIVER_TASK",
    "INGEST_TASK",
    "INTAKE_QUEUE",
    "PUBLISHED_AT",
    "PUBLISH_RETRY_POLICY",
    "CableIngestApp",
    "celery_config",
    "create_app",
    "prepare_broker",
    "publish",
    "sink_queue",
]

log = logs.get_logger("worker.queue.app")

SERIALIZER = "orjson"
PUBLISH_RETRY_POLICY = {
    "max_retries": 25,
    "interval_start": 0.2,
    "interval_step": 0.5,
    "interval_max": 3.0,
}


def _dumps(value: object) -> str:
    return orjson.dumps(value).decode()


@functools.cache
def _register_codecs() -> None:
    """Once per process: the orjson serializer and this project's kombu transports."""
    register(SERIALIZER, _dumps, orjson.loads, content_type="application/x-orjson")
    broker.register()


def prepare_broker(settings: Settings) -> None:
    """Create what the broker needs before anyone publishes or consumes (the embedded one's
    folders; nothing for Redis)."""
    broker_for(settings).prepare()


def celery_config(settings: Settings, config: Config) -> dict[str, Any]:
    """Celery's configuration for ``settings`` and sinks, each choice with its reason."""
    return {
        # the URL as kombu reads it (a sentinel:// list rewritten, the password from its file)
        "broker_url": broker_for(settings).url,
        # per broker, with the reasons: worker/queue/brokers.py
        "broker_transport_options": broker_for(settings).transport_options(),
        # producers are untrusted: one JSON serializer (orjson), pickle is never accepted
        "task_serializer": SERIALIZER,
        "accept_content": [SERIALIZER, "json"],
        "result_accept_content": [SERIALIZER, "json"],
        # outcomes live in the SQL store (receipts, dead letters), never in a result backend
        "task_ignore_result": True,
        "result_backend": None,
        # ack after the work is done; a worker killed mid-batch gets its message redelivered
        # (after the visibility timeout on Redis), and the redelivery cap stops poison loops
        "task_acks_late": True,
        "task_reject_on_worker_lost": True,
        # a batch is large: reserve few ahead so a lost worker strands little work
        "worker_prefetch_multiplier": settings.prefetch_multiplier,
        # a task still running when the broker connection drops is cancelled, not acked late
        # on a connection that no longer owns its message (which would double the work)
        "worker_cancel_long_running_tasks_on_connection_loss": True,
        # a publish (producer, or a task's fan-out) rides out a broker restart: retried for
        # about a minute (0.2 s, then 0.5 s more each time, at most 3 s apart), then it fails
        "task_publish_retry": True,
        "task_publish_retry_policy": PUBLISH_RETRY_POLICY,
        # a broker that is down at start-up is retried, explicitly and without end
        "broker_connection_retry_on_startup": True,
        "broker_connection_retry": True,
        "broker_connection_max_retries": None,
        # messages only go where they are routed: intake, or one queue per sink
        "task_default_queue": INTAKE_QUEUE,
        # a plain `celery -A worker.app worker` consumes intake, every sink's queue and
        # reparse (taken from only when the others are empty: worker/queue/order.py)
        "task_queues": [
            Queue(name, Exchange(name, type="direct"), routing_key=name)
            for name in consumed_queues(config)
        ],
        "task_create_missing_queues": True,
        "task_routes": {
            INGEST_TASK: {"queue": INTAKE_QUEUE},
            REPARSE_TASK: {"queue": REPARSE_QUEUE},
        },
        # a parse is bounded; a batch that runs away is killed and its message redelivered
        "task_soft_time_limit": settings.task_time_limit,
        "task_time_limit": settings.task_time_limit + HARD_LIMIT_GRACE_S,
        # logging is structlog's (worker.logs), not Celery's own handlers
        "worker_hijack_root_logger": False,
        "worker_redirect_stdouts": False,
        "worker_send_task_events": False,
    }


class CableIngestApp(Celery):
    """The Celery app of cable-ingest: Celery's, plus the settings and sinks it was made from."""

    def __init__(self, settings: Settings, config: Config) -> None:
        super().__init__("cable_ingest", set_as_current=False)
        self.settings = settings
        self.sinks_config = config
        self._runtime: Runtime | None = None
        self.config_from_object(celery_config(settings, config))
        processes.track(self)

    @property
    def runtime(self) -> Runtime:
        """This process's sinks and stores, made on first use (after a prefork worker forks)."""
        if self._runtime is None:
            self._runtime = Runtime.build(self.settings, self.sinks_config, self)
        return self._runtime

    def after_fork(self) -> None:
        """In a forked child: the parent's runtime is not this process's to use (its
        stores and sinks, tracked themselves, forget their clients)."""
        self._runtime = None


def create_app(settings: Settings, config: Config | None = None) -> CableIngestApp:
    """The Celery app for ``settings`` and a sinks configuration (default: the file
    ``settings.config_file`` names, read now), with the ingest and deliver tasks."""
    from worker.queue import reparse, tasks  # noqa: PLC0415 - they need this module's names

    _register_codecs()
    celery = CableIngestApp(settings, config or load_config(settings.config_file))
    tasks.register(celery)
    reparse.register(celery)
    return celery


def _ours(celery: object) -> CableIngestApp | None:
    return celery if isinstance(celery, CableIngestApp) else None


@signals.setup_logging.connect
def _setup_logging(**_: object) -> None:
    """Celery's logging goes through structlog, configured by whoever built the app (the
    ``worker`` command, :mod:`worker.app`); connecting here stops Celery's own set-up."""


@signals.worker_init.connect
def _prepare(sender: Any = None, **_: object) -> None:
    """Before a worker consumes (and forks): the broker's folders exist, the tables are current
    and the metrics folder is empty and shared by the pool's processes."""
    celery = _ours(getattr(sender, "app", None))
    if celery is None:
        return
    broker.mark_worker_process()  # its connections to Redis say so, before any is made
    settings = celery.settings
    prepare_broker(settings)
    upgrade(settings.database_url)
    metrics.prepare_metrics_dir(metrics.default_metrics_dir(settings))
    needed = longest_hold(settings.task_time_limit, settings.prefetch_multiplier)
    if broker_for(settings).broadcast and settings.visibility_timeout < needed:
        log.warning("visibility_timeout_short", visibility_timeout_s=settings.visibility_timeout,
                    needed_s=needed, reason="a message a live worker holds may be handed out "
                    "twice; raise CABLE_INGEST_VISIBILITY_TIMEOUT")  # fmt: skip


@signals.worker_ready.connect
def _put_back_lost(sender: Any = None, **_: object) -> None:
    """At start-up, what consumers that are gone still hold goes back on its queues now rather
    than after the visibility timeout (on Redis: holders whose connections Redis no longer
    lists, a proof they are gone; never what a live worker holds)."""
    celery = _ours(getattr(sender, "app", None))
    if celery is None:
        return
    try:
        count = broker_for(celery.settings).put_back()
    except Exception as error:  # the timeout still returns them: start consuming regardless
        log.warning("put_back_failed", error=f"{error}"[:300], error_class=type(error).__name__)
        return
    if count:
        log.warning("lost_messages_put_back", count=count)


@signals.worker_process_shutdown.connect
def _process_gone(pid: int | None = None, **_: object) -> None:
    """A pool child exited: its counters stay in the sums (see :mod:`worker.telemetry`)."""
    metrics.mark_process_dead(pid)


@signals.task_prerun.connect
def _bind_task(task_id: str | None = None, task: Any = None, **_: object) -> None:
    """Every event of a task carries its id and name, and nothing of the task before it."""
    logs.clear()
    logs.bind(task_id=task_id, task=getattr(task, "name", None))


@signals.task_postrun.connect
def _acknowledged(sender: Any = None, **_: object) -> None:
    """A task finished (acks are late: its message is acknowledged now); readiness reads it."""
    celery = _ours(getattr(sender, "app", None))
    if celery is not None:
        record_ack(celery.settings)
