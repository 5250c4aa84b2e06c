"""The Celery application, configured for a Redis broker that must not lose a cable.

``celery -A worker.app worker`` and ``cable-ingest worker`` both start workers on :data:`app`.
Settings are read once from the environment (:mod:`worker.settings`); nothing connects at import.
"""

from __future__ import annotations

import time
from pathlib import Path
from typing import Any

import orjson
from celery import Celery, signals
from kombu import Exchange, Queue
from kombu.serialization import register

from worker import logs
from worker.ops import health, metrics
from worker.queue import broker
from worker.queue.order import REPARSE_QUEUE
from worker.routing.config import Config, load_config
from worker.settings import Settings
from worker.storage import upgrade

SERIALIZER = "orjson"
INGEST_TASK = "cable_ingest.ingest"
DELIVER_TASK = "cable_ingest.deliver"
REPARSE_TASK = "cable_ingest.reparse"
INTAKE_QUEUE = "intake"
FILESYSTEM_POLLING_S = 0.01
PUBLISH_RETRY_POLICY = {
    "max_retries": 25,
    "interval_start": 0.2,
    "interval_step": 0.5,
    "interval_max": 3.0,
}


def _dumps(value: object) -> str:
    return orjson.dumps(value).decode()


register(SERIALIZER, _dumps, orjson.loads, content_type="application/x-orjson")
broker.register()


def sink_queue(sink: str) -> str:
    """The queue a sink's deliveries wait on."""
    return f"sink.{sink}"


def consumed_queues(config: Config) -> list[str]:
    """Every queue a worker consumes by default: intake, each sink's, and reparse."""
    return [INTAKE_QUEUE, *map(sink_queue, config.sinks), REPARSE_QUEUE]


PUBLISHED_AT = "published_at"
"""Message header: when the message was published (Unix time), for the age of a queue."""


def publish(celery: Celery, task: str, args: list[Any], queue: str) -> None:
    """Send one task message to ``queue``, stamped with the time it was published."""
    celery.send_task(task, args=args, queue=queue, headers={PUBLISHED_AT: time.time()})


def prepare_broker(settings: Settings) -> None:
    """Create what the embedded (filesystem) broker needs on disk; nothing for Redis."""
    for key in ("data_folder_in", "data_folder_out", "processed_folder", "control_folder"):
        folder = settings.broker_transport_options().get(key)
        if isinstance(folder, str):
            Path(folder).mkdir(parents=True, exist_ok=True)


def celery_config(settings: Settings, config: Config) -> dict[str, Any]:
    """Celery's configuration for ``settings`` and sinks, each choice with its reason."""
    transport_options = settings.broker_transport_options()
    if settings.broker_url.startswith("filesystem:"):
        # the virtual transports poll; the default second would dominate small runs, and a
        # pool process waits up to one interval for its next batch (make bench, embedded:
        # 0.05 s 1,402-1,474 cables/s, 0.01 s 1,528-1,662; idle, 1.3% of a core)
        transport_options["polling_interval"] = FILESYSTEM_POLLING_S
    else:
        # kombu base64-encodes every body by default: a third more bytes, and decoding in the
        # worker's main process. Our bodies are JSON text already (make bench: no-op task on
        # Redis 5,222 -> 6,115 cables/s in batches of 100)
        transport_options["body_encoding"] = "utf-8"
    return {
        "broker_url": settings.broker_url,
        "broker_transport_options": transport_options,
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
        "task_time_limit": settings.task_time_limit + 30,
        # logging is structlog's (worker.logs), not Celery's own handlers
        "worker_hijack_root_logger": False,
        "worker_redirect_stdouts": False,
        "worker_send_task_events": False,
    }


def create_app(settings: Settings | None = None) -> Celery:
    """A Celery app on ``settings`` (default: read from the environment) and its sinks file."""
    settings = settings or Settings.from_env()
    config = load_config(settings.config_file)
    celery = Celery("cable_ingest", set_as_current=False)
    celery.config_from_object(celery_config(settings, config))
    celery.conf["cable_ingest_settings"] = settings
    celery.conf["cable_ingest_config"] = config
    return celery


app = create_app()
app.autodiscover_tasks(["worker.queue"], related_name="tasks", force=True)
app.autodiscover_tasks(["worker.queue"], related_name="reparse", force=True)


@signals.setup_logging.connect
def _setup_logging(**_: object) -> None:
    """Celery's logging goes through structlog (connecting here stops Celery's own set-up)."""
    settings: Settings = app.conf["cable_ingest_settings"]
    logs.configure_logging(settings.log_format, settings.log_level)


@signals.worker_init.connect
def _prepare(**_: object) -> None:
    """Before a worker consumes (and forks): the broker's folders exist, the tables are current
    and the metrics folder is empty and shared by the pool's processes."""
    settings: Settings = app.conf["cable_ingest_settings"]
    prepare_broker(settings)
    upgrade(settings.database_url)
    metrics.prepare_metrics_dir(metrics.default_metrics_dir(settings))


@signals.worker_process_shutdown.connect
def _process_gone(pid: int | None = None, **_: object) -> None:
    """A pool child exited: its counters stay in the sums (see :mod:`worker.ops.metrics`)."""
    metrics.mark_process_dead(pid)


@signals.task_prerun.connect
def _bind_task(task_id: str | None = None, task: Any = None, **_: object) -> None:
    """Every event of a task carries its id and name, and nothing of the task before it."""
    logs.clear()
    logs.bind(task_id=task_id, task=getattr(task, "name", None))


@signals.task_postrun.connect
def _acknowledged(**_: object) -> None:
    """A task finished (acks are late: its message is acknowledged now); readiness reads it."""
    health.record_ack(app.conf["cable_ingest_settings"])
