"""What a worker process holds: its settings, sinks and stores, made once per process.

Built lazily on first use in the process that uses it, so nothing connects before a prefork
worker forks its children; a child that inherits a parent's runtime builds its own.
"""

from __future__ import annotations

import os
from dataclasses import dataclass

from worker.routing.config import Config
from worker.settings import Settings
from worker.sinks import Sink, build_sinks
from worker.storage import CableStore, DeadLetterStore, ReceiptStore
from worker.storage.reparse import ReparseStore


@dataclass(frozen=True, slots=True)
class Runtime:
    """One process's sinks and stores."""

    settings: Settings
    config: Config
    sinks: dict[str, Sink]
    dead_letters: DeadLetterStore
    receipts: ReceiptStore
    pid: int
    cables: CableStore  # the reparse task's writes (ingest writes through the sinks)
    reparse: ReparseStore

    @classmethod
    def build(cls, settings: Settings, config: Config) -> Runtime:
        """Sinks and stores for ``settings`` (no connection is opened here)."""
        receipts = ReceiptStore(settings.database_url)
        return cls(
            settings=settings,
            config=config,
            sinks=build_sinks(config, settings, receipts),
            dead_letters=DeadLetterStore(settings.database_url),
            receipts=receipts,
            pid=os.getpid(),
            cables=CableStore(settings.database_url),
            reparse=ReparseStore(settings.database_url),
        )

    def close(self) -> None:
        """Close every connection this process opened."""
        for sink in self.sinks.values():
            sink.close()
        self.dead_letters.close()
        self.receipts.close()
        self.cables.close()
        self.reparse.close()


_current: Runtime | None = None


def current(settings: Settings, config: Config) -> Runtime:
    """This process's runtime, built on first use."""
    global _current  # noqa: PLW0603 - one runtime per process, by design
    if _current is None or _current.pid != os.getpid():
        _current = Runtime.build(settings, config)
    return _current
