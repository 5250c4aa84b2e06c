"""``enqueue``, ``worker``, ``run`` and ``migrate``: the queue side of ``cable-ingest``."""

from __future__ import annotations

import argparse
import dataclasses
import shlex
import sys
from contextlib import closing
from datetime import UTC, datetime
from pathlib import Path

from worker.cli import exits
from worker.cli.progress import Meter
from worker.cli.run import run_job
from worker.cli.run_summary import FINISH, JSON_VERSION
from worker.cli.store import write_json
from worker.intake.enqueue import EnqueueSummary, enqueue_paths
from worker.intake.producer import Producer
from worker.intake.sources import count_hint
from worker.logs import configure_logging
from worker.queue.app import create_app
from worker.queue.brokers import broker_for
from worker.queue.names import consumed_queues
from worker.routing.config import load_config
from worker.settings import Settings
from worker.sinks import build_sinks
from worker.storage import ReceiptStore, redact_url, upgrade


def _settings(config: str | None = None) -> Settings:
    """The settings (``--config FILE`` in place of CABLE_INGEST_CONFIG when given), with
    logging configured from them."""
    settings = Settings.from_env()
    if config:
        settings = dataclasses.replace(settings, config_file=Path(config))
    configure_logging(settings.log_format, settings.log_level)
    return settings


def cmd_enqueue(args: argparse.Namespace) -> int:
    """Enqueue cables from files, folders, globs, archives, cables.csv or stdin."""
    settings = _settings()
    started = datetime.now(UTC)
    with closing(Meter("inputs", count_hint(args.paths))) as meter:

        def waiting(depth: int) -> None:
            meter.update(meter.done, f"waiting: intake queue holds ~{depth:,} cables")

        with Producer(settings, on_wait=waiting) as producer:
            summary = enqueue_paths(
                args.paths,
                producer,
                on_rejected=lambda rejection: meter.write(rejection.line()),
                on_duplicate=lambda duplicate: meter.write(duplicate.line()),
                on_input=meter.advance,
                strict=args.strict,
            )
    code = enqueue_exit_code(summary)
    later = f"cable-ingest dlq list --since {started:%Y-%m-%dT%H:%M:%SZ}"
    for line in summary.lines():
        print(line, file=sys.stderr)
    if summary.enqueued:
        print(f"parse failures:    later, in the workers: {later}", file=sys.stderr)
    if args.json:
        document = {"version": JSON_VERSION, "command": "enqueue", "exit_code": code}
        write_json(document | summary.as_dict() | {"dlq_list": later})
    return code


def enqueue_exit_code(summary: EnqueueSummary) -> int:
    """130 interrupted, 65 some input rejected, else 0 (worker.cli.exits)."""
    if summary.stopped == "interrupted":
        return exits.INTERRUPTED
    return exits.DATA if summary.rejected else exits.OK


def worker_argv(settings: Settings, queues: str, concurrency: int, loglevel: str) -> list[str]:
    """The ``celery worker`` arguments for this project's worker."""
    argv = ["worker", "--queues", queues, "--concurrency", str(concurrency)]
    argv += ["--loglevel", loglevel]
    argv += broker_for(settings).worker_flags()  # the embedded broker: no broadcast
    return argv


def cmd_worker(args: argparse.Namespace) -> int:
    """Run a Celery worker on the project's app (it migrates the database at start)."""
    settings = _settings(args.config)
    config = load_config(settings.config_file)  # a bad file stops here, with the key named
    build_sinks(config, settings, ReceiptStore(settings.database_url))  # secrets, options
    app = create_app(settings, config)
    queues = args.queues or ",".join(consumed_queues(config))
    concurrency = args.concurrency or settings.worker_concurrency
    app.worker_main(worker_argv(settings, queues, concurrency, settings.log_level))
    return 0


def cmd_run(args: argparse.Namespace) -> int:
    """Ingest everything under PATH end to end through worker processes, then summarise."""
    settings = _settings(args.config)
    where = (
        f"broker {redact_url(settings.broker_url)}, database {redact_url(settings.database_url)}"
    )
    print(where, file=sys.stderr if args.json else sys.stdout)
    summary = run_job(
        args.paths,
        settings,
        concurrency=args.concurrency or settings.worker_concurrency,
        stall_timeout=args.stall_timeout,
        strict=args.strict,
    )
    if args.config:
        summary.finish = f"{FINISH} --config {shlex.quote(args.config)}"
    if args.json:
        write_json(summary.as_dict())
    else:
        for line in summary.lines():
            print(line)
    return summary.exit_code


def cmd_migrate(_args: argparse.Namespace) -> int:
    """Create or upgrade the storage tables."""
    settings = Settings.from_env()
    upgrade(settings.database_url)
    print(f"{redact_url(settings.database_url)}: schema is current")
    return 0


STRICT_HELP = "stop at the first rejected input: nothing after it is read (exit 65)"
JSON_HELP = "print the summary as one JSON document on stdout (README: the --json shape)"


def register(sub: argparse._SubParsersAction[argparse.ArgumentParser]) -> None:
    """Add ``enqueue``, ``worker``, ``run`` and ``migrate``."""
    enqueue = sub.add_parser("enqueue", help="put cables on the intake queue")
    enqueue.add_argument(
        "paths", nargs="+", metavar="PATH", help="file, folder, glob, archive, cables.csv or -"
    )
    enqueue.add_argument("--strict", action="store_true", help=STRICT_HELP)
    enqueue.add_argument("--json", action="store_true", help=JSON_HELP)
    enqueue.set_defaults(func=cmd_enqueue)

    worker = sub.add_parser("worker", help="run a worker (intake, every sink's queue, reparse)")
    worker.add_argument("-Q", "--queues", help="comma-separated queues (default: all)")
    worker.add_argument("-c", "--concurrency", type=int, help="worker processes")
    worker.add_argument("--config", metavar="FILE", help="sinks and rules (TOML)")
    worker.set_defaults(func=cmd_worker)

    run = sub.add_parser("run", help="start workers, ingest PATHs, wait for every outcome")
    run.add_argument("paths", nargs="+", metavar="PATH")
    run.add_argument("-c", "--concurrency", type=int, help="worker processes")
    run.add_argument(
        "--stall-timeout",
        type=float,
        default=300.0,
        help="give up after this long without progress (s)",
    )
    run.add_argument("--strict", action="store_true", help=STRICT_HELP)
    run.add_argument("--json", action="store_true", help=JSON_HELP)
    run.add_argument("--config", metavar="FILE", help="sinks and rules (TOML)")
    run.set_defaults(func=cmd_run)

    migrate = sub.add_parser("migrate", help="create or upgrade the database tables")
    migrate.set_defaults(func=cmd_migrate)
