"""``enqueue``, ``worker``, ``run`` and ``migrate``: the queue side of ``cable-ingest``."""

from __future__ import annotations

import argparse
import dataclasses
import shlex
import signal
import sys
from collections.abc import Iterator
from contextlib import closing, contextmanager
from datetime import UTC, datetime
from pathlib import Path
from typing import TYPE_CHECKING

from worker.cli import exits
from worker.cli.dependencies import wait_for_broker, wait_for_database
from worker.cli.help import Subcommands, command
from worker.cli.store import write_json
from worker.settings import Settings
from worker.settings import redact_url as redact_broker_url  # the storage's reads one URL only

if TYPE_CHECKING:
    from worker.intake.enqueue import EnqueueSummary

PATHS_HELP = "file, folder, glob, archive (.tar[.gz|.bz2|.xz], .zip), cables.csv or - (stdin)"
STRICT_HELP = "stop at the first rejected input: nothing after it is read (exit 65)"
JSON_HELP = "print the summary as one JSON document on stdout (README: the --json shape)"


def _settings(config: str | None = None) -> Settings:
    """The settings (``--config FILE`` in place of CABLE_INGEST_CONFIG when given), with
    logging configured from them."""
    from worker.logs import configure_logging

    settings = Settings.from_env()
    if config:
        settings = dataclasses.replace(settings, config_file=Path(config))
    configure_logging(settings.log_format, settings.log_level)
    return settings


def cmd_enqueue(args: argparse.Namespace) -> int:
    """Enqueue cables from files, folders, globs, archives, cables.csv or stdin."""
    from worker.cli.progress import Meter
    from worker.cli.run_summary import JSON_VERSION
    from worker.intake.enqueue import enqueue_paths
    from worker.intake.producer import Producer
    from worker.intake.sources import count_hint

    settings = _settings()
    wait_for_broker(settings)
    started = datetime.now(UTC)
    with closing(Meter("inputs", count_hint(args.paths))) as meter:

        def waiting(depth: int) -> None:
            meter.update(meter.done, f"waiting: intake queue holds ~{depth:,} cables")

        with Producer(
            settings, on_wait=waiting, on_retry=lambda line: meter.write(f"cable-ingest: {line}")
        ) as producer:
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
        with _summary_whole():
            write_json(document | summary.as_dict() | {"dlq_list": later})
    return code


def enqueue_exit_code(summary: EnqueueSummary) -> int:
    """130 interrupted, 65 some input rejected, else 0 (worker.cli.exits)."""
    if summary.stopped == "interrupted":
        return exits.INTERRUPTED
    return exits.DATA if summary.rejected else exits.OK


def worker_argv(settings: Settings, queues: str, concurrency: int, loglevel: str) -> list[str]:
    """The ``celery worker`` arguments for this project's worker."""
    from worker.queue.brokers import broker_for

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
    from worker.queue.app import create_app
    from worker.queue.names import consumed_queues
    from worker.routing.config import load_config
    from worker.sinks import build_sinks
    from worker.storage import ReceiptStore

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
    from worker.cli.run import run_job
    from worker.cli.run_summary import FINISH
    from worker.storage import redact_url

    settings = _settings(args.config)
    where = (
        f"broker {redact_broker_url(settings.broker_url)},"
        f" database {redact_url(settings.database_url)}"
    )
    print(where, file=sys.stderr if args.json else sys.stdout)
    wait_for_broker(settings)
    wait_for_database(settings)
    summary = run_job(
        args.paths,
        settings,
        concurrency=args.concurrency or settings.worker_concurrency,
        stall_timeout=args.stall_timeout,
        strict=args.strict,
    )
    if args.config:
        summary.finish = f"{FINISH} --config {shlex.quote(args.config)}"
    with _summary_whole():
        if args.json:
            write_json(summary.as_dict())
        else:
            for line in summary.lines():
                print(line)
    return summary.exit_code


@contextmanager
def _summary_whole() -> Iterator[None]:
    """Ctrl-C is ignored while the summary is written: an impatient second press (or one that
    lands while a slow reader leaves the pipe full) must not cut a --json document in half."""
    previous = signal.signal(signal.SIGINT, signal.SIG_IGN)
    try:
        yield
    finally:
        signal.signal(signal.SIGINT, previous)


def cmd_migrate(_args: argparse.Namespace) -> int:
    """Create or upgrade the storage tables."""
    from worker.storage import redact_url, upgrade

    settings = Settings.from_env()
    wait_for_database(settings)
    upgrade(settings.database_url)
    print(f"{redact_url(settings.database_url)}: schema is current")
    return 0


def register(sub: Subcommands[argparse.ArgumentParser]) -> None:
    """Add ``run``, ``enqueue``, ``worker`` and ``migrate``."""
    run = command(
        sub,
        "run",
        summary="all in one: start workers, ingest PATHs, wait for every outcome",
        description="Start worker processes, enqueue every cable under PATH, wait until each one\n"
        "is stored or dead-lettered, stop the workers and print a summary. With no settings\n"
        "it runs embedded (filesystem broker and SQLite under ./var); with\n"
        "CABLE_INGEST_BROKER_URL and CABLE_INGEST_DATABASE_URL, on Redis and PostgreSQL.",
        examples=[
            "cable-ingest run ../cables",
            "cable-ingest run feed.tar.gz cables.csv --concurrency 4",
            "cable-ingest run ../cables --json > summary.json",
        ],
    )
    run.add_argument(
        "paths",
        nargs="+",
        metavar="PATH",
        help=PATHS_HELP,
    )
    run.add_argument(
        "-c",
        "--concurrency",
        type=int,
        metavar="N",
        help="worker processes (default: CABLE_INGEST_WORKER_CONCURRENCY)",
    )
    run.add_argument(
        "--stall-timeout",
        type=float,
        default=300.0,
        metavar="SECONDS",
        help="stop waiting after this long without a new outcome",
    )
    run.add_argument("--strict", action="store_true", help=STRICT_HELP)
    run.add_argument("--json", action="store_true", help=JSON_HELP)
    run.add_argument(
        "--config", metavar="FILE", help="sinks and rules, TOML (default: CABLE_INGEST_CONFIG)"
    )
    run.set_defaults(func=cmd_run)

    enqueue = command(
        sub,
        "enqueue",
        summary="put cables on the intake queue for running workers",
        description="Read cables from every PATH and put them on the intake queue in batches;\n"
        "running workers (cable-ingest worker) parse and store them. Each input is checked\n"
        "first (empty, binary, oversize, not text); a rejected input is named on stderr.\n"
        "The same text twice in one call is enqueued once.",
        examples=[
            "cable-ingest enqueue ../cables",
            "cable-ingest enqueue 'feed/*.txt' archive.zip",
            "cat cable.txt | cable-ingest enqueue -",
        ],
    )
    enqueue.add_argument(
        "paths",
        nargs="+",
        metavar="PATH",
        help=PATHS_HELP,
    )
    enqueue.add_argument("--strict", action="store_true", help=STRICT_HELP)
    enqueue.add_argument("--json", action="store_true", help=JSON_HELP)
    enqueue.set_defaults(func=cmd_enqueue)

    worker = command(
        sub,
        "worker",
        summary="run a worker: intake, every sink's queue and reparse",
        description="Run a Celery worker on this project's app, consuming the intake queue,\n"
        "every configured sink's queue and the reparse queue (or only --queues). It migrates\n"
        "the database at start. SIGTERM finishes the running tasks, then stops.",
        examples=[
            "cable-ingest worker",
            "cable-ingest worker --concurrency 4 --config sinks.toml",
            "cable-ingest worker --queues intake",
        ],
    )
    worker.add_argument(
        "-Q", "--queues", help="comma-separated queues (default: all this configuration uses)"
    )
    worker.add_argument(
        "-c",
        "--concurrency",
        type=int,
        metavar="N",
        help="worker processes (default: CABLE_INGEST_WORKER_CONCURRENCY)",
    )
    worker.add_argument(
        "--config", metavar="FILE", help="sinks and rules, TOML (default: CABLE_INGEST_CONFIG)"
    )
    worker.set_defaults(func=cmd_worker)

    migrate = command(
        sub,
        "migrate",
        summary="create or upgrade the database tables",
        description="Create the tables, or upgrade them to this version's schema (idempotent).\n"
        "Workers and writers do it at start; read-only commands never do.",
        examples=[
            "CABLE_INGEST_DATABASE_URL=postgresql+psycopg://cables@db/cables cable-ingest migrate"
        ],
    )
    migrate.set_defaults(func=cmd_migrate)
