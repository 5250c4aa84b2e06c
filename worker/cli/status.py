"""``status``: one screen for the operator (queues, workers, throughput, dead letters), and
``put-back``: what consumers that are gone still hold, back on its queues now."""

from __future__ import annotations

import argparse
import dataclasses
import os
import shutil
import sys
import time

import orjson

from worker.cli import exits
from worker.logs import configure_logging
from worker.ops.status import Status, collect_status, render
from worker.queue.app import CableIngestApp, create_app
from worker.queue.brokers import Held, broker_for, describe_holder
from worker.queue.names import consumed_queues
from worker.settings import Settings

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
    if as_json:
        return orjson.dumps(status.as_dict()).decode() + "\n"
    width = shutil.get_terminal_size().columns if tty else 0
    return "\n".join(render(status, width)) + "\n"


def _watch(settings: Settings, app: CableIngestApp, args: argparse.Namespace, tty: bool) -> int:
    """Screen after screen: in place on a terminal, else a blank line apart; 0 on Ctrl-C."""
    first = True
    try:
        while True:
            screen = _screen(collect_status(settings, app), args.json, tty)
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
    settings = Settings.from_env()
    configure_logging(settings.log_format, settings.log_level)
    app = create_app(settings)
    tty = sys.stdout.isatty()
    try:
        if args.watch is not None:
            return _watch(settings, app, args, tty)
        sys.stdout.write(_screen(collect_status(settings, app), args.json, tty))
        sys.stdout.flush()
    except BrokenPipeError:  # `| head`: the reader has seen enough
        os.dup2(os.open(os.devnull, os.O_WRONLY), sys.stdout.fileno())
    return 0


def _held(groups: list[Held]) -> str:
    return "; ".join(f"{g.queue} {g.messages} of {describe_holder(g.holder)}" for g in groups)


def cmd_put_back(args: argparse.Namespace) -> int:
    """Put what consumers that are gone hold back on its queues (never what a live one holds:
    it would be done twice); say what was put back and what was left, and why."""
    settings = Settings.from_env()
    configure_logging(settings.log_format, settings.log_level)
    app = create_app(settings)
    broker = broker_for(settings)
    snapshot = broker.snapshot(app, consumed_queues(app.sinks_config))
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


def register(sub: argparse._SubParsersAction[argparse.ArgumentParser]) -> None:
    """Add ``status`` and ``put-back``."""
    status = sub.add_parser(
        "status", help="queues, workers, throughput, dead letters and last deliveries"
    )
    status.add_argument("--json", action="store_true", help="print one JSON document")
    status.add_argument(
        "--watch",
        nargs="?",
        type=_interval,
        const=DEFAULT_WATCH_S,
        metavar="SECONDS",
        help=f"refresh every SECONDS (default {DEFAULT_WATCH_S:g}) until Ctrl-C",
    )
    status.set_defaults(func=cmd_status)

    put_back = sub.add_parser(
        "put-back",
        help="return the messages held by consumers that are gone to their queues now",
        description=(
            "Messages a worker took and did not acknowledge come back by themselves after "
            "CABLE_INGEST_VISIBILITY_TIMEOUT (Redis) once their worker is gone. This puts them "
            "back now: only those whose holder is proven gone (Redis lists no connection of "
            "its name; on the embedded broker, its lock is free). What a live worker holds is "
            "left alone, since putting it back would have it done twice. Workers do the same "
            "when they start. Example: cable-ingest put-back --dry-run"
        ),
    )
    put_back.add_argument(
        "--dry-run", action="store_true", help="say what would be put back, change nothing"
    )
    put_back.add_argument("--json", action="store_true", help="print one JSON document")
    put_back.set_defaults(func=cmd_put_back)
