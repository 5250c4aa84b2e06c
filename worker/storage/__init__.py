"""SQL storage (SQLite or PostgreSQL through SQLAlchemy Core): cables, revisions, dead letters.

Migrate once with :func:`upgrade`, then open stores on the same URL. Nothing connects until a
store is first used, so stores may be built before worker processes fork.
"""

from __future__ import annotations

from worker.storage.deadletters import DeadLetterStore
from worker.storage.engine import redact_url, utc_iso
from worker.storage.migrations import upgrade
from worker.storage.receipts import Receipt, ReceiptStore
from worker.storage.store import BatchResult, CableOutcome, CableStore, content_hash

__all__ = [
    "BatchResult",
    "CableOutcome",
    "CableStore",
    "DeadLetterStore",
    "Receipt",
    "ReceiptStore",
    "content_hash",
    "redact_url",
    "upgrade",
    "utc_iso",
]
