"""HTTP metrics of ``cable-ingest serve``, in a registry of the app's own (not the global one).

- ``cable_ingest_http_requests_total{route, method, status}`` and
  ``cable_ingest_http_request_duration_seconds{route}``: per route template, never per path
  (a reference id in a label would make a series per cable);
- ``cable_ingest_http_inputs_total{status}``: POSTed inputs by entry status (accepted,
  rejected, duplicate);
- ``cable_ingest_http_group_commit_envelopes``: envelopes per queue message published.
"""

from __future__ import annotations

import time
from collections import Counter as Tally
from collections.abc import Sequence
from typing import Any

from prometheus_client import CollectorRegistry, Counter, Histogram, generate_latest
from starlette.types import ASGIApp, Message, Receive, Scope, Send

PREFIX = "cable_ingest_http_"
LATENCY_BUCKETS = (0.001, 0.0025, 0.005, 0.01, 0.025, 0.05, 0.1, 0.25, 0.5, 1.0, 2.5, 5.0, 10.0)
SIZE_BUCKETS = (1, 2, 5, 10, 20, 50, 100, 200, 500, 1000)


class HttpMetrics:
    """The serve process's own counters and histograms."""

    def __init__(self) -> None:
        self.registry = CollectorRegistry(auto_describe=True)
        self.requests = Counter(
            PREFIX + "requests",
            "HTTP requests answered.",
            ["route", "method", "status"],
            registry=self.registry,
        )
        self.duration = Histogram(
            PREFIX + "request_duration_seconds",
            "Time to answer.",
            ["route"],
            buckets=LATENCY_BUCKETS,
            registry=self.registry,
        )
        self.input_count = Counter(
            PREFIX + "inputs", "POSTed inputs, by entry status.", ["status"], registry=self.registry
        )
        self.message_sizes = Histogram(
            PREFIX + "group_commit_envelopes",
            "Envelopes per queue message published.",
            buckets=SIZE_BUCKETS,
            registry=self.registry,
        )

    def inputs(self, entries: Sequence[dict[str, Any]]) -> None:
        """Count one request's entries by status."""
        for status, count in Tally(entry["status"] for entry in entries).items():
            self.input_count.labels(status).inc(count)

    def published(self, sizes: Sequence[int]) -> None:
        """Messages were published with these numbers of envelopes."""
        for size in sizes:
            self.message_sizes.observe(size)

    def render(self) -> bytes:
        """These metrics in the Prometheus text format."""
        return generate_latest(self.registry)


def route_of(scope: Scope) -> str:
    """The route template a request matched ("/v1/cables/{reference_id}"), or "unmatched"
    (Starlette's router records the route in the scope it was given)."""
    return str(getattr(scope.get("route"), "path", "unmatched"))


class MetricsMiddleware:
    """ASGI middleware counting every HTTP request by route template, method and status."""

    def __init__(self, app: ASGIApp, metrics: HttpMetrics) -> None:
        self.app = app
        self.metrics = metrics

    async def __call__(self, scope: Scope, receive: Receive, send: Send) -> None:
        if scope["type"] != "http":
            await self.app(scope, receive, send)
            return
        started = time.perf_counter()
        status = 500

        async def sending(message: Message) -> None:
            nonlocal status
            if message["type"] == "http.response.start":
                status = int(message["status"])
            await send(message)

        try:
            await self.app(scope, receive, sending)
        finally:
            route = route_of(scope)
            self.metrics.requests.labels(route, scope["method"], str(status)).inc()
            self.metrics.duration.labels(route).observe(time.perf_counter() - started)
