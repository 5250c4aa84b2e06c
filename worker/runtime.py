"""What a worker process holds: its settings, sinks and stores, made once per process.

Built lazily on first use in the process that uses it, so nothing connects before a prefork
worker forks its children; a child that inherits a parent's runtime builds its own.
"""

from __future__ import annotations

import os
from dataclasses import dataclass

from worker.settings import Settings
from worker.sinks import Sink, build_sinks
from worker.storage import DeadLetterStore, ReceiptStore


@dataclass(frozen=True, slots=True)
class Runtime:
    """One process's sinks and stores."""

    settings: Settings
    sinks: dict[str, Sink]
    dead_letters: DeadLetterStore
    receipts: ReceiptStore
    pid: int

    @classmethod
    def build(cls, settings: Settings) -> Runtime:
        """Sinks and stores for ``settings`` (no connection is opened here)."""
        return cls(
            settings=settings,
            sinks=build_sinks(settings, settings.sinks),
            dead_letters=DeadLetterStore(settings.database_url),
            receipts=ReceiptStore(settings.database_url),
            pid=os.getpid(),
        )

    def close(self) -> None:
        """Close every connection this process opened."""
        for sink in self.sinks.values():
            sink.close()
        self.dead_letters.close()
        self.receipts.close()


_current: Runtime | None = None


def current(settings: Settings) -> Runtime:
    """This process's runtime, built on first use."""
    global _current  # noqa: PLW0603 - one runtime per process, by design
    if _current is None or _current.pid != os.getpid():
        _current = Runtime.build(settings)
    return _current
