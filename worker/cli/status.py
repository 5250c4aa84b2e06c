"""``status``: one screen for the operator (queues, workers, throughput, dead letters), and
``put-back``: what consumers that are gone still hold, back on its queues now.

A broker or a database that does not answer is waited for, one line per attempt, for at most
``CABLE_INGEST_CONNECT_WAIT_S`` (:mod:`worker.cli.dependencies`), then exit 69; each screen of
``--watch`` waits the same way.
"""

from __future__ import annotations

import argparse
import dataclasses
import os
import shutil
import sys
import time
from typing import TYPE_CHECKING

import orjson

from worker.cli import exits
from worker.cli.dependencies import patiently
from worker.cli.help import Subcommands, command
from worker.settings import Settings

if TYPE_CHECKING:
    from worker.ops.status import Status
    from worker.queue.app import CableIngestApp
    from worker.queue.brokers import Held

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


def _held(groups: list[Held]) -> str:
    from worker.queue.brokers import describe_holder

    return "; ".join(f"{g.queue} {g.messages} of {describe_holder(g.holder)}" for g in groups)


def cmd_put_back(args: argparse.Namespace) -> int:
    """Put what consumers that are gone hold back on its queues (never what a live one holds:
    it would be done twice); say what was put back and what was left, and why."""
    from worker.logs import configure_logging
    from worker.queue.app import create_app
    from worker.queue.brokers import broker_for
    from worker.queue.names import consumed_queues

    settings = Settings.from_env()
    configure_logging(settings.log_format, settings.log_level)
    app = create_app(settings)
    broker = broker_for(settings)
    snapshot = patiently(settings, lambda: broker.snapshot(app, consumed_queues(app.sinks_config)))
    lost = [g for g in snapshot.held if g.alive is False]
    alive = [g for g in snapshot.held if g.alive is True]
    unknown = [g for g in snapshot.held if g.alive is None]
    count = 0 if args.dry_run or not lost else broker.put_back()
    if args.json:
        document = {
            "dry_run": args.dry_run,
            "put_back": count,
            "lost": [dataclasses.asdict(g) for g in lost],
            "left_alive": [dataclasses.asdict(g) for g in alive],
            "left_unknown": [dataclasses.asdict(g) for g in unknown],
        }
        sys.stdout.buffer.write(orjson.dumps(document) + b"\n")
        return exits.OK
    shown = sum(g.messages for g in lost)
    if args.dry_run:
        print(f"would put back {shown} message{'s' if shown != 1 else ''} held by consumers"
              f" that are gone{': ' + _held(lost) if lost else ''}")  # fmt: skip
    else:
        print(f"put back {count} message{'s' if count != 1 else ''} held by consumers that are"
              f" gone{': ' + _held(lost) if lost else ''}")  # fmt: skip
    if alive:
        print(f"left alone (their worker is alive and connected): {_held(alive)}")
    if unknown:
        print(f"left to the visibility timeout (their holder cannot be told): {_held(unknown)}")
    return exits.OK


def register(sub: Subcommands[argparse.ArgumentParser]) -> None:
    """Add ``status`` and ``put-back``."""
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

    put_back = command(
        sub,
        "put-back",
        summary="return the messages held by consumers that are gone to their queues now",
        description="Messages a worker took and did not acknowledge come back by themselves\n"
        "after CABLE_INGEST_VISIBILITY_TIMEOUT (Redis) once their worker is gone. This puts\n"
        "them back now: only those whose holder is proven gone (Redis lists no connection of\n"
        "its name; on the embedded broker, its lock is free). What a live worker holds is\n"
        "left alone, since putting it back would have it done twice. Workers do the same\n"
        "when they start.",
        examples=["cable-ingest put-back --dry-run", "cable-ingest put-back --json"],
    )
    put_back.add_argument(
        "--dry-run", action="store_true", help="say what would be put back, change nothing"
    )
    put_back.add_argument("--json", action="store_true", help="print one JSON document")
    put_back.set_defaults(func=cmd_put_back)
