"""``serve``: the HTTP face (intake, reads, probes) on uvicorn; see :mod:`worker.http`."""

from __future__ import annotations

import argparse
import sys

from worker.cli.help import Subcommands, command
from worker.settings import Settings, redact_url

KEEP_ALIVE_S = 5  # an idle keep-alive connection is closed after this long
MAX_CONNECTIONS = 1000  # past this many at once, uvicorn answers 503 instead of queueing


def cmd_serve(args: argparse.Namespace) -> int:
    """Serve the API until interrupted (SIGTERM or Ctrl-C: in-flight requests finish first)."""
    import uvicorn

    from worker.http.app import create_http_app
    from worker.http.server import guarded_protocol
    from worker.logs import configure_logging

    settings = Settings.from_env()
    configure_logging(settings.log_format, settings.log_level)
    host = args.host or settings.http_host
    port = settings.http_port if args.port is None else args.port
    print(
        f"serving http://{host}:{port}/v1 (broker {redact_url(settings.broker_url)}, "
        f"database {redact_url(settings.database_url)})",
        file=sys.stderr,
    )
    uvicorn.run(
        create_http_app(settings),
        host=host,
        port=port,
        log_config=None,  # uvicorn's records go through worker.logs like everything else
        access_log=False,  # the request metrics count every request; no line per request
        timeout_keep_alive=KEEP_ALIVE_S,
        limit_concurrency=MAX_CONNECTIONS,
        proxy_headers=args.proxy_headers,
        forwarded_allow_ips=args.forwarded_allow_ips,
        server_header=False,
        # slow clients: a deadline for the request head, an idle limit within the body
        http=guarded_protocol(settings.http_header_timeout_s, settings.http_read_timeout_s),
    )
    return 0


def register(sub: Subcommands[argparse.ArgumentParser]) -> None:
    """Add ``serve``."""
    serve = command(
        sub,
        "serve",
        summary="serve the HTTP API (intake, reads, /metrics, probes)",
        description="Serve the HTTP API on uvicorn until SIGTERM or Ctrl-C (in-flight requests\n"
        "finish first): POST /v1/cables for feeds, receipts, records, search, /healthz,\n"
        "/readyz and /metrics. Every request needs a token (cable-ingest tokens create).\n"
        'Terminate TLS in front of it (README, "Over HTTP").',
        examples=[
            "cable-ingest serve",
            "cable-ingest serve --host 0.0.0.0 --port 8080 --proxy-headers",
        ],
    )
    serve.add_argument("--host", help="address to listen on (default: CABLE_INGEST_HTTP_HOST)")
    serve.add_argument(
        "--port", type=int, help="0: any free port (default: CABLE_INGEST_HTTP_PORT)"
    )
    serve.add_argument(
        "--proxy-headers",
        action="store_true",
        help="trust X-Forwarded-For/-Proto from --forwarded-allow-ips (behind a TLS proxy)",
    )
    serve.add_argument("--forwarded-allow-ips", default="127.0.0.1", help="the proxy's addresses")
    serve.set_defaults(func=cmd_serve)
