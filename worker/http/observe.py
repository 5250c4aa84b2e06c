"""``/healthz``, ``/readyz`` and ``/metrics``: the same meaning as ``cable-ingest metrics``.

``/healthz`` answers while the process runs; ``/readyz`` is :func:`worker.ops.health.check_health`
(the broker and the database answer, and work that waits is being consumed); ``/metrics`` is
:func:`worker.ops.metrics.render_metrics` (the workers' counters when this process shares their
var dir, the gauges read at scrape time) followed by this process's HTTP metrics. Probes and
scrapes run one at a time, in a thread: each opens connections of its own.
"""

from __future__ import annotations

import orjson
from starlette.concurrency import run_in_threadpool
from starlette.requests import Request
from starlette.responses import PlainTextResponse, Response

from worker.http.context import Context
from worker.ops.health import check_health
from worker.ops.metrics import CONTENT_TYPE, render_metrics


async def healthz(_request: Request) -> Response:
    """200 while this process runs."""
    return PlainTextResponse("ok\n")


async def readyz(request: Request) -> Response:
    """200 when ready, else 503; the checks and reasons as JSON."""
    ctx: Context = request.app.state.ctx
    async with ctx.probe_lock:
        health = await run_in_threadpool(check_health, ctx.settings, ctx.celery)
    body = orjson.dumps(health.as_dict(), option=orjson.OPT_INDENT_2) + b"\n"
    return Response(body, 200 if health.ready else 503, media_type="application/json")


async def metrics(request: Request) -> Response:
    """Prometheus text: the workers' and the gauges (as ``cable-ingest metrics``), then HTTP."""
    ctx: Context = request.app.state.ctx
    async with ctx.probe_lock:
        common = await run_in_threadpool(render_metrics, ctx.settings, ctx.celery)
    return Response(common + ctx.metrics.render(), media_type=CONTENT_TYPE)
