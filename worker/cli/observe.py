"""``metrics`` and ``health``: what Prometheus scrapes and what orchestrators probe.

``cable-ingest metrics`` serves ``/metrics`` (every worker process's counters and the gauges
read at scrape time), ``/healthz`` (200 while this process runs) and ``/readyz`` (200, or 503
with the reasons, as JSON). ``cable-ingest health`` is the same readiness check for exec
probes: exit 0 when ready, 1 when not, with the reasons on stderr.
"""

from __future__ import annotations

import argparse
import sys
import threading
from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer
from typing import TYPE_CHECKING

import orjson

from worker.cli.help import Subcommands, command
from worker.settings import Settings

if TYPE_CHECKING:
    from celery import Celery

    from worker.ops.health import Health

DEFAULT_PORT = 9808


class _Handler(BaseHTTPRequestHandler):
    settings: Settings
    app: Celery
    lock: threading.Lock  # one scrape or probe at a time: each opens its own connections

    def do_GET(self) -> None:
        from worker.logs import get_logger
        from worker.ops.health import check_health
        from worker.ops.metrics import CONTENT_TYPE, render_metrics

        path = self.path.partition("?")[0]
        try:
            if path == "/metrics":
                with self.lock:
                    body = render_metrics(self.settings, self.app)
                self._send(200, body, CONTENT_TYPE)
            elif path == "/healthz":
                self._send(200, b"ok\n", "text/plain; charset=utf-8")
            elif path == "/readyz":
                with self.lock:
                    health = check_health(self.settings, self.app)
                self._send(200 if health.ready else 503, _json(health), "application/json")
            else:
                self._send(404, b"not found: try /metrics, /healthz or /readyz\n", "text/plain")
        except Exception as error:  # the server outlives a failed scrape; the log says why
            get_logger("worker.cli.observe").exception("observe_request_failed", path=path)
            self._send(500, f"{type(error).__name__}: {error}\n".encode(), "text/plain")

    def _send(self, status: int, body: bytes, content_type: str) -> None:
        self.send_response(status)
        self.send_header("Content-Type", content_type)
        self.send_header("Content-Length", str(len(body)))
        self.end_headers()
        self.wfile.write(body)

    def log_message(self, format: str, *args: object) -> None:
        """No line per request (a scrape every few seconds); failures are logged above."""


def _json(health: Health) -> bytes:
    return orjson.dumps(health.as_dict(), option=orjson.OPT_INDENT_2) + b"\n"


def _settings() -> Settings:
    from worker.logs import configure_logging

    settings = Settings.from_env()
    configure_logging(settings.log_format, settings.log_level)
    return settings


def cmd_metrics(args: argparse.Namespace) -> int:
    """Serve /metrics, /healthz and /readyz until interrupted."""
    from worker.queue.app import create_app

    settings = _settings()
    handler = type(
        "Handler",
        (_Handler,),
        {"settings": settings, "app": create_app(settings), "lock": threading.Lock()},
    )
    with ThreadingHTTPServer((args.host, args.port), handler) as server:
        server.daemon_threads = True
        host, port = server.server_address[:2]
        print(f"serving http://{host!s}:{port}/metrics (and /healthz, /readyz)", file=sys.stderr)
        sys.stderr.flush()
        server.serve_forever()
    return 0


def cmd_health(args: argparse.Namespace) -> int:
    """Exit 0 when ready, 1 when not (the reasons on stderr); --json prints the details."""
    from worker.ops.health import check_health

    health = check_health(_settings())
    if args.json:
        sys.stdout.buffer.write(_json(health))
    for reason in health.reasons:
        print(f"not ready: {reason}", file=sys.stderr)
    return 0 if health.ready else 1


def register(sub: Subcommands[argparse.ArgumentParser]) -> None:
    """Add ``metrics`` and ``health``."""
    metrics = command(
        sub,
        "metrics",
        summary="serve /metrics, /healthz and /readyz over HTTP",
        description="Serve Prometheus metrics (every worker process's counters and the queue,\n"
        "worker and dead-letter gauges read at scrape time), /healthz (200 while it runs) and\n"
        "/readyz (200, or 503 with the reasons as JSON) until interrupted.",
        examples=[
            "cable-ingest metrics",
            "cable-ingest metrics --host 0.0.0.0 --port 9808",
            "curl -s localhost:9808/readyz",
        ],
    )
    metrics.add_argument(
        "--port", type=int, default=DEFAULT_PORT, help="0: any free port (printed on stderr)"
    )
    metrics.add_argument("--host", default="127.0.0.1", help="address to listen on")
    metrics.set_defaults(func=cmd_metrics)

    health = command(
        sub,
        "health",
        summary="exit 0 when the worker is ready, 1 when not (for exec probes)",
        description="Check readiness as /readyz does (broker and database answer, the schema is\n"
        "current, the workers take work): exit 0 when ready, 1 when not, with the reasons on\n"
        "stderr.",
        examples=["cable-ingest health", "cable-ingest health --json"],
    )
    health.add_argument("--json", action="store_true", help="print the checks as JSON")
    health.set_defaults(func=cmd_health)
