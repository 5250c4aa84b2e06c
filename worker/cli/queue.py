"""``enqueue``, ``worker``, ``run`` and ``migrate``: the queue side of ``cable-ingest``."""

from __future__ import annotations

import argparse
import dataclasses
import sys
from pathlib import Path

import orjson
from tqdm import tqdm

from worker.cli.dependencies import say, wait_for_broker, wait_for_database
from worker.cli.run import run_job
from worker.intake.enqueue import enqueue_paths
from worker.intake.envelope import IntakeError
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


def _report(error: IntakeError) -> None:
    print(f"rejected ({error.reason_code}): {error}", file=sys.stderr)


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
    wait_for_broker(settings)
    interactive = sys.stderr.isatty()
    total = count_hint(args.paths) if interactive else None
    with tqdm(total=total, unit="cable", disable=not interactive, file=sys.stderr) as bar:

        def waiting(depth: int) -> None:
            bar.set_postfix_str(f"waiting: intake queue holds ~{depth:,} cables")

        def retrying(line: str) -> None:
            bar.clear()
            say(line)

        with Producer(settings, on_wait=waiting, on_retry=retrying) as producer:
            summary = enqueue_paths(args.paths, producer, on_rejected=_report, on_input=bar.update)
    for line in summary.lines():
        print(line, file=sys.stderr)
    return 1 if summary.rejected and args.strict else 0


def worker_argv(settings: Settings, queues: str, concurrency: int, loglevel: str) -> list[str]:
    """The ``celery worker`` arguments for this project's worker."""
    argv = ["worker", "--queues", queues, "--concurrency", str(concurrency)]
    argv += ["--loglevel", loglevel]
    argv += broker_for(settings).worker_flags()  # the embedded broker: no broadcast
    return argv


def cmd_worker(args: argparse.Namespace) -> int:
    """Run a Celery worker on the project's app (it migrates the database at start).

    The broker and the database are waited for at start, within CONNECT_WAIT_S, so that a
    wrong URL or a dependency that is not up ends in one line and exit 69 for the supervisor to
    see. Once consuming, a broker that goes away is Celery's to reconnect to, without end: a
    running worker holds tasks in flight and must outlive a broker restart."""
    settings = _settings(args.config)
    config = load_config(settings.config_file)  # a bad file stops here, with the key named
    wait_for_broker(settings)
    wait_for_database(settings)
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
    wait_for_broker(settings)
    wait_for_database(settings)
    summary = run_job(
        args.paths,
        settings,
        concurrency=args.concurrency or settings.worker_concurrency,
        stall_timeout=args.stall_timeout,
        echo=lambda line: print(line, file=sys.stderr),
    )
    if args.json:
        sys.stdout.buffer.write(orjson.dumps(summary.as_dict()) + b"\n")
    else:
        for line in summary.lines():
            print(line)
    return 0 if summary.complete else 1


def cmd_migrate(_args: argparse.Namespace) -> int:
    """Create or upgrade the storage tables."""
    settings = Settings.from_env()
    wait_for_database(settings)
    upgrade(settings.database_url)
    print(f"{redact_url(settings.database_url)}: schema is current")
    return 0


def register(sub: argparse._SubParsersAction[argparse.ArgumentParser]) -> None:
    """Add ``enqueue``, ``worker``, ``run`` and ``migrate``."""
    enqueue = sub.add_parser("enqueue", help="put cables on the intake queue")
    enqueue.add_argument(
        "paths", nargs="+", metavar="PATH", help="file, folder, glob, archive, cables.csv or -"
    )
    enqueue.add_argument("--strict", action="store_true", help="exit 1 when any input was rejected")
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
    run.add_argument("--json", action="store_true", help="print the summary as JSON")
    run.add_argument("--config", metavar="FILE", help="sinks and rules (TOML)")
    run.set_defaults(func=cmd_run)

    migrate = sub.add_parser("migrate", help="create or upgrade the database tables")
    migrate.set_defaults(func=cmd_migrate)
