"""Health probes that mean "consuming", not merely "running".

Ready means: the broker answers (Redis PING; for the embedded broker, its queue folder can be
read and written), the database answers (``SELECT 1``), and work handed over is being taken:

* on Redis, while any queue holds messages (waiting, or taken and not acknowledged) some
  worker is connected to the broker (:meth:`worker.queue.brokers.Broker.snapshot`: the
  connections Redis lists, named by worker). A worker killed with ``kill -9`` is not
  connected from that moment, so readiness turns at once, not after the window below;
* while any queue holds waiting messages, some task was acknowledged within the readiness
  window (a worker that is connected but stuck). The workers record that time after every
  task (:func:`worker.queue.brokers.record_ack`, hooked to ``task_postrun``): on Redis as the
  key ``cable-ingest:last-ack`` of the broker's database, on the embedded broker in the file
  ``var_dir/broker/last-ack``; both hold the Unix time as a decimal number.

An idle system (nothing waiting, nothing held) is ready with no worker at all: nothing is late,
and whatever arrives turns it "not ready" until a worker takes it (README, "Metrics and
health"). The embedded broker cannot tell which workers run: only the window applies there.

Every check is bounded by short timeouts, so that a probe answers within a few seconds.
"""

from __future__ import annotations

import time
from dataclasses import asdict, dataclass, field
from typing import TYPE_CHECKING, Any

from worker.logs import get_logger
from worker.queue.brokers import broker_for
from worker.queue.names import consumed_queues
from worker.routing.config import load_config
from worker.settings import Settings
from worker.storage.probe import ping

if TYPE_CHECKING:
    from celery import Celery

log = get_logger("worker.ops.health")

TIMEOUT_S = 3  # every connection a probe makes (PostgreSQL counts whole seconds, at least 2)


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


def last_ack(settings: Settings) -> float | None:
    """When a task was last acknowledged (Unix time), or None when none was recorded."""
    raw = broker_for(settings).last_ack()
    try:
        return float(raw) if raw is not None else None
    except ValueError:
        return None


def check_broker(settings: Settings) -> str | None:
    """None when the broker answers, else why not (for people)."""
    return broker_for(settings).ping()


def check_database(settings: Settings) -> str | None:
    """None when ``SELECT 1`` answers, else why not (for people). A missing SQLite file is
    reported, not created: the worker creates it when it starts."""
    return ping(settings.database_url, TIMEOUT_S)


def queue_names(settings: Settings) -> list[str]:
    """Intake, every configured sink's queue and reparse."""
    return consumed_queues(load_config(settings.config_file))


def _listed(shown: list[str]) -> str:
    return shown[0] if len(shown) == 1 else ", ".join(shown[:-1]) + " and " + shown[-1]


def _plural(count: int) -> str:
    return f"{count:,} message{'s' if count != 1 else ''}"


def _unattended(waiting: dict[str, int], unacked: dict[str, int]) -> str:
    shown = []
    for name in dict.fromkeys([*waiting, *unacked]):
        parts = [f"{_plural(waiting[name])} waiting"] if waiting.get(name) else []
        if unacked.get(name):
            parts.append(f"{_plural(unacked[name])} unacknowledged")
        shown.append(f"{name} has {' and '.join(parts)}")
    return f"{_listed(shown)}, and no worker is connected to the broker"


def _stalled(waiting: dict[str, int], age: float | None, window: float) -> str:
    shown = [f"{name} has {_plural(count)}" for name, count in waiting.items()]
    queues = _listed(shown)
    if age is None:
        return f"{queues} waiting and no task was ever acknowledged (window {window:g} s)"
    return f"{queues} waiting and nothing was acknowledged for {age:.0f} s (window {window:g} s)"


def check_health(
    settings: Settings, app: Celery | None = None, *, ready_window_s: float | None = None
) -> Health:
    """Probe the broker, the database, whether a worker is connected while messages are held
    (Redis), and, while work waits, the time of the last ack (within ``ready_window_s``,
    default the setting ``CABLE_INGEST_READY_WINDOW_S``)."""
    if ready_window_s is None:
        ready_window_s = settings.ready_window_s
    health = Health(alive=True, ready=False, details={"ready_window_s": ready_window_s})
    broker = check_broker(settings)
    database = check_database(settings)
    health.details |= {"broker": broker or "ok", "database": database or "ok"}
    health.reasons += [reason for reason in (broker, database) if reason]
    if broker is None:
        from worker.queue.app import create_app  # noqa: PLC0415 - the app imports this module

        try:
            names = queue_names(settings)
            snapshot = broker_for(settings).snapshot(app or create_app(settings), names)
            acked = last_ack(settings)
        except Exception as error:
            health.reasons.append(f"cannot read the queues: {_short(error)}")
        else:
            age = None if acked is None else max(0.0, time.time() - acked)
            depths = {queue.name: queue.depth for queue in snapshot.queues}
            held = {queue.name: queue.unacked for queue in snapshot.queues}
            workers = None if snapshot.workers is None else len(snapshot.workers)
            health.details |= {"queues": depths, "unacked": held, "workers_online": workers}
            health.details |= {"last_ack_age_s": age}
            waiting = {name: count for name, count in depths.items() if count}
            unacked = {name: count for name, count in held.items() if count}
            if workers == 0 and (waiting or unacked):
                health.reasons.append(_unattended(waiting, unacked))
            elif waiting and (age is None or age > ready_window_s):
                health.reasons.append(_stalled(waiting, age, ready_window_s))
    health.ready = not health.reasons
    return health
