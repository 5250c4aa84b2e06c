"""Sinks: where records go after validation, each behind the same small protocol.

A sink takes a batch of :class:`Delivery` items and writes it idempotently (the same message id
twice has one effect), raising :class:`~worker.errors.TransientSinkError` when trying again may
succeed and :class:`~worker.errors.PermanentSinkError` when it cannot. Sinks are built by name
from :data:`SINK_TYPES`; an unknown name fails at start-up listing the known ones.
"""

from __future__ import annotations

from collections.abc import Callable, Sequence

from worker.errors import ConfigurationError
from worker.settings import Settings
from worker.sinks.base import Delivery, Sink
from worker.sinks.storage import StorageSink

__all__ = ["SINK_TYPES", "Delivery", "Sink", "build_sinks"]


def _storage(settings: Settings) -> Sink:
    return StorageSink(settings.database_url)


SINK_TYPES: dict[str, Callable[[Settings], Sink]] = {"storage": _storage}
"""Every sink type by name."""


def build_sinks(settings: Settings, names: Sequence[str] = ("storage",)) -> dict[str, Sink]:
    """Build the named sinks (nothing connects until a sink is first used)."""
    unknown = sorted(set(names) - set(SINK_TYPES))
    if unknown:
        known = ", ".join(sorted(SINK_TYPES))
        raise ConfigurationError(f"unknown sink {', '.join(unknown)}: known sinks are {known}")
    return {name: SINK_TYPES[name](settings) for name in names}
