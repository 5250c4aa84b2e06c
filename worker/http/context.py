"""What the handlers of one app share, opened in its lifespan: settings, stores, the intake."""

from __future__ import annotations

import asyncio
from dataclasses import dataclass, field
from typing import TYPE_CHECKING, Any

from worker.settings import Settings

if TYPE_CHECKING:
    from worker.http.auth import Authenticator
    from worker.http.intake import GroupCommit
    from worker.http.metrics import HttpMetrics
    from worker.storage import CableStore, DeadLetterStore
    from worker.storage.catalog import Catalog
    from worker.storage.idempotency import IdempotencyStore
    from worker.storage.tokens import TokenStore


@dataclass(slots=True)
class Context:
    """The app's state (``request.app.state.ctx``); built by :func:`worker.http.app.open_context`."""

    settings: Settings
    tokens: TokenStore
    auth: Authenticator
    intake: GroupCommit
    cables: CableStore
    idempotency: IdempotencyStore
    metrics: HttpMetrics
    catalog: Catalog
    dead_letters: DeadLetterStore
    celery: Any = None  # the Celery app of the broker, for the probes (None: a test twin)
    probe_lock: asyncio.Lock = field(default_factory=asyncio.Lock)  # one probe at a time
