"""The ASGI application of ``cable-ingest serve``, made by :func:`create_http_app` from settings.

Nothing is opened when the app is made: the lifespan opens the stores, the token cache and the
intake (the broker's connection and the group-commit publisher) in the serving process and
closes them at shutdown; a test makes as many apps as it needs, each with its own settings.
"""

from __future__ import annotations

import asyncio
import contextlib
from collections.abc import AsyncIterator, Callable
from datetime import UTC, datetime, timedelta

from starlette.applications import Starlette
from starlette.concurrency import run_in_threadpool
from starlette.exceptions import HTTPException
from starlette.middleware import Middleware
from starlette.requests import Request
from starlette.responses import Response
from starlette.routing import Route

from worker.http import ingest, observe, operate, reads
from worker.http.auth import Authenticator
from worker.http.context import Context
from worker.http.intake import Broker, GroupCommit, Queue
from worker.http.metrics import HttpMetrics, MetricsMiddleware
from worker.http.openapi import openapi_document
from worker.http.problems import (
    ClientGone,
    Problem,
    handle_client_gone,
    handle_http_exception,
    handle_problem,
)
from worker.logs import get_logger
from worker.settings import Settings
from worker.storage import CableStore, DeadLetterStore, ReceiptStore, upgrade
from worker.storage.catalog import Catalog
from worker.storage.idempotency import IdempotencyStore
from worker.storage.tokens import TokenStore

log = get_logger("worker.http.app")

USAGE_FLUSH_S = 30.0
IDEMPOTENCY_KEEP_S = 24 * 3600  # a retry comes within minutes; a key is kept a day
QueueFactory = Callable[[Settings], Queue]


async def _openapi(_request: Request) -> Response:
    return reads.json_response(openapi_document())


ROUTES = [
    Route("/v1/cables", ingest.post_cables, methods=["POST"]),
    Route("/v1/cables", reads.list_cables, methods=["GET"]),
    Route("/v1/cables/{reference_id}", reads.get_cable, methods=["GET"]),
    Route("/v1/cables/{reference_id}/cited-by", reads.cited_by, methods=["GET"]),
    Route("/v1/messages/{message_id}", reads.get_message, methods=["GET"]),
    Route("/v1/dead-letters", operate.list_dead_letters, methods=["GET"]),
    Route("/v1/dead-letters/replay", operate.replay_dead_letters, methods=["POST"]),
    Route("/v1/dead-letters/{dead_letter_id}", operate.get_dead_letter, methods=["GET"]),
    Route("/v1/dead-letters/{dead_letter_id}/replay", operate.replay_dead_letter, methods=["POST"]),
    Route("/v1/status", operate.status, methods=["GET"]),
    Route("/healthz", observe.healthz, methods=["GET"]),
    Route("/readyz", observe.readyz, methods=["GET"]),
    Route("/metrics", observe.metrics, methods=["GET"]),
    Route("/openapi.json", _openapi, methods=["GET"]),
]


async def _housekeeping(auth: Authenticator, idempotency: IdempotencyStore) -> None:
    """Every USAGE_FLUSH_S: write the tokens' last use, forget idempotency keys past a day."""
    while True:
        await asyncio.sleep(USAGE_FLUSH_S)
        try:
            await run_in_threadpool(auth.record_use)
            cutoff = datetime.now(UTC) - timedelta(seconds=IDEMPOTENCY_KEEP_S)
            await run_in_threadpool(idempotency.purge, cutoff)
        except Exception as error:  # bookkeeping: a database hiccup must not stop serving
            log.warning("housekeeping_failed", error_class=type(error).__name__)


def create_http_app(settings: Settings, *, queue: QueueFactory = Broker) -> Starlette:
    """The app for ``settings``; ``queue`` makes the intake's queue (the broker by default)."""
    metrics = HttpMetrics()

    @contextlib.asynccontextmanager
    async def lifespan(app: Starlette) -> AsyncIterator[None]:
        await run_in_threadpool(upgrade, settings.database_url)
        tokens = TokenStore(settings.database_url)
        ledger = ReceiptStore(settings.database_url)
        broker = await run_in_threadpool(queue, settings)
        intake = GroupCommit(
            broker,
            batch_size=settings.batch_size,
            window_s=settings.group_commit_ms / 1000,
            high_water_mark=settings.high_water_mark,
            ledger=ledger,
            on_message=metrics.published,
        )
        ctx = Context(
            settings=settings,
            tokens=tokens,
            auth=Authenticator(tokens, settings.token_cache_s),
            intake=intake,
            cables=CableStore(settings.database_url),
            idempotency=IdempotencyStore(settings.database_url),
            metrics=metrics,
            catalog=Catalog(settings.database_url),
            dead_letters=DeadLetterStore(settings.database_url),
            celery=getattr(broker, "celery", None),
        )
        app.state.ctx = ctx
        intake.start()
        usage = asyncio.get_running_loop().create_task(_housekeeping(ctx.auth, ctx.idempotency))
        log.info("http_started", broker=settings.broker_url, database=settings.database_url)
        try:
            yield
        finally:
            usage.cancel()
            await intake.stop()
            await run_in_threadpool(ctx.auth.record_use)
            stores = (ctx.cables, ctx.catalog, ctx.dead_letters, ctx.idempotency, ledger, tokens)
            for store in stores:
                store.close()
            log.info("http_stopped")

    return Starlette(
        routes=ROUTES,
        middleware=[Middleware(MetricsMiddleware, metrics=metrics)],
        exception_handlers={
            Problem: handle_problem,
            ClientGone: handle_client_gone,
            HTTPException: handle_http_exception,
        },
        lifespan=lifespan,
    )
