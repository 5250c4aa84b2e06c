"""What a worker process holds: its settings, sinks and stores, made once per process.

The app (:class:`worker.queue.app.CableIngestApp`) builds it on first use in the process that
uses it, so nothing connects before a prefork worker forks its children, and forgets it in a
forked child, which builds its own.
"""

from __future__ import annotations

from dataclasses import dataclass

from celery import Celery

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
    celery: Celery  # to publish the messages a task sends on
    cables: CableStore  # the reparse task's writes (ingest writes through the sinks)
    reparse: ReparseStore

    @classmethod
    def build(cls, settings: Settings, config: Config, celery: Celery) -> Runtime:
        """Sinks and stores for ``settings`` (no connection is opened here)."""
        receipts = ReceiptStore(settings.database_url)
        return cls(
            settings=settings,
            config=config,
            sinks=build_sinks(config, settings, receipts),
            dead_letters=DeadLetterStore(settings.database_url),
            receipts=receipts,
            celery=celery,
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
