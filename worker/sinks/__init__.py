"""Sinks: where records go after validation, each behind the same small protocol.

A sink takes a batch of :class:`Delivery` items and writes it idempotently (the same message id
twice has one effect), raising :class:`~worker.errors.TransientSinkError` when trying again may
succeed and :class:`~worker.errors.PermanentSinkError` when it cannot. Storage sinks write
records to SQL; notification sinks wrap a notifier (:data:`NOTIFIERS`, by type) in
:class:`~worker.sinks.notify.NotificationSink`. Building a sink checks its options and resolves
its secrets; nothing connects until it is first used.
"""

from __future__ import annotations

import importlib

from worker.errors import ConfigurationError
from worker.routing.config import STORAGE, Config
from worker.settings import Settings
from worker.sinks.base import Delivery, Notifier, Sink
from worker.sinks.notify import NotificationSink
from worker.sinks.storage import StorageSink
from worker.storage import ReceiptStore

__all__ = ["NOTIFIERS", "Delivery", "Sink", "build_sinks"]

NOTIFIERS: dict[str, str] = {
    "webhook": "worker.sinks.webhook",
    "redis-stream": "worker.sinks.redis_stream",
    "email": "worker.sinks.email",
    "mqtt": "worker.sinks.mqtt",
    "file": "worker.sinks.file",
}
"""Module of each notification sink type; each has ``build(name, options) -> Notifier``."""


def build_notifier(sink_type: str, name: str, options: dict[str, object]) -> Notifier:
    """The notifier for one configured sink (options checked, secrets resolved)."""
    if sink_type not in NOTIFIERS:
        known = ", ".join(sorted([STORAGE, *NOTIFIERS]))
        raise ConfigurationError(f"sinks.{name}.type: unknown type {sink_type!r}; known: {known}")
    module = importlib.import_module(NOTIFIERS[sink_type])
    notifier: Notifier = module.build(name, options)
    return notifier


def build_sinks(config: Config, settings: Settings, receipts: ReceiptStore) -> dict[str, Sink]:
    """Every sink of ``config``, by name."""
    sinks: dict[str, Sink] = {}
    for sink in config.sinks.values():
        if sink.type == STORAGE:
            sinks[sink.name] = StorageSink(settings.database_url, name=sink.name)
        else:
            notifier = build_notifier(sink.type, sink.name, dict(sink.options))
            sinks[sink.name] = NotificationSink(sink, notifier, receipts)
    return sinks
