"""``status``: one screen for the operator (queues, workers, throughput, dead letters).

A broker or a database that does not answer is waited for, one line per attempt, for at most
``CABLE_INGEST_CONNECT_WAIT_S`` (:mod:`worker.cli.dependencies`), then exit 69; each screen of
``--watch`` waits the same way.
"""

from __future__ import annotations

import argparse
import os
import shutil
import sys
import time
from typing import TYPE_CHECKING

import orjson

from worker.cli.dependencies import patiently
from worker.cli.help import Subcommands, command
from worker.settings import Settings

if TYPE_CHECKING:
    from worker.ops.status import Status
    from worker.queue.app import CableIngestApp

DEFAULT_WATCH_S = 2.0
CLEAR = "\x1b[H\x1b[2J"  # cursor home, then clear the screen


def _interval(raw: str) -> float:
    try:
        seconds = float(raw)
    except ValueError:
        seconds = 0.0
    if not seconds > 0:
        raise argparse.ArgumentTypeError(f"expected a positive number of seconds, got {raw!r}")
    return seconds


def _screen(status: Status, as_json: bool, tty: bool) -> str:
    from worker.ops.status import render

    if as_json:
        return orjson.dumps(status.as_dict()).decode() + "\n"
    width = shutil.get_terminal_size().columns if tty else 0
    return "\n".join(render(status, width)) + "\n"


def _collect(settings: Settings, app: CableIngestApp) -> Status:
    from worker.ops.status import collect_status

    return patiently(settings, lambda: collect_status(settings, app))


def _watch(settings: Settings, app: CableIngestApp, args: argparse.Namespace, tty: bool) -> int:
    """Screen after screen: in place on a terminal, else a blank line apart; 0 on Ctrl-C."""
    first = True
    try:
        while True:
            screen = _screen(_collect(settings, app), args.json, tty)
            if tty and not args.json:
                screen = CLEAR + screen
            elif not first and not args.json:
                screen = "\n" + screen
            sys.stdout.write(screen)
            sys.stdout.flush()
            first = False
            time.sleep(args.watch)
    except KeyboardInterrupt:
        return 0


def cmd_status(args: argparse.Namespace) -> int:
    """Print the status once, or every ``--watch`` seconds until Ctrl-C."""
    from worker.logs import configure_logging
    from worker.queue.app import create_app

    settings = Settings.from_env()
    configure_logging(settings.log_format, settings.log_level)
    app = create_app(settings)
    tty = sys.stdout.isatty()
    try:
        if args.watch is not None:
            return _watch(settings, app, args, tty)
        sys.stdout.write(_screen(_collect(settings, app), args.json, tty))
        sys.stdout.flush()
    except BrokenPipeError:  # `| head`: the reader has seen enough
        os.dup2(os.open(os.devnull, os.O_WRONLY), sys.stdout.fileno())
    return 0


def register(sub: Subcommands[argparse.ArgumentParser]) -> None:
    """Add ``status``."""
    status = command(
        sub,
        "status",
        summary="queues, workers, throughput, dead letters and last deliveries",
        description="One screen for the operator: each queue's waiting and unacknowledged\n"
        "messages and the age of the oldest, the workers online, cables stored and\n"
        "dead-lettered in the last minute and hour, dead letters by stage, and each sink's\n"
        "last delivery. Once, or refreshed with --watch until Ctrl-C.",
        examples=[
            "cable-ingest status",
            "cable-ingest status --watch 5",
            "cable-ingest status --json | jq .queues",
        ],
    )
    status.add_argument("--json", action="store_true", help="print one JSON document")
    status.add_argument(
        "--watch",
        nargs="?",
        type=_interval,
        const=DEFAULT_WATCH_S,
        metavar="SECONDS",
        help=f"refresh every SECONDS ({DEFAULT_WATCH_S:g} when not given) until Ctrl-C",
    )
    status.set_defaults(func=cmd_status)
