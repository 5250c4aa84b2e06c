"""``dlq list|show|replay|purge``: browse, resend and delete dead letters.

Exit codes follow :mod:`worker.cli.store`: 0 when done (an empty list, or nothing left to
replay, included); 1 when a dead-letter id named on the command line does not exist, when the
database fails, or when a purge is not confirmed; 2 for bad arguments and for refusals
(``replay`` with nothing selected, ``purge`` without ``--yes`` off a terminal); 69 when the
broker or the database did not answer within ``CABLE_INGEST_CONNECT_WAIT_S``. ``list``,
``show`` and ``replay --dry-run`` only read (nothing is migrated or created); ``replay`` and
``purge`` migrate first.

``replay`` skips a dead letter replayed after its last failure (``replayed_at >= last_seen``)
unless ``--again`` is given, and records ``replayed_at`` as the moment just before the first
send: a replayed message that fails again is then always later than its replay (the one
implementation, shared with the HTTP API, is :mod:`worker.ops.deadletters`).
"""

from __future__ import annotations

import argparse
import sys
from collections.abc import Mapping, Sequence
from typing import Any

import orjson

from worker.cli.dependencies import NoTablesError, say
from worker.cli.help import Subcommands, command
from worker.cli.store import (
    complain,
    iso_time,
    opened,
    positive_int,
    sink_name,
    stage_name,
    table,
    terminal_width,
    write_json,
)
from worker.errors import UnavailableError
from worker.settings import redact_url as redact_broker_url

_EVERYTHING = 2**31 - 1  # the store's list() has no "no limit"
_FILTERS = ("stage", "sink", "reason", "since", "until")


def _filters(args: argparse.Namespace) -> dict[str, Any]:
    return {
        "stage": args.stage,
        "sink": args.sink,
        "reason_contains": args.reason,
        "since": args.since,
        "until": args.until,
    }


def _filtered(args: argparse.Namespace) -> bool:
    return any(getattr(args, name) is not None for name in _FILTERS)


def _by_stage(letters: Sequence[Mapping[str, Any]]) -> str:
    from worker.ops.deadletters import by_stage

    return ", ".join(f"{stage} {count}" for stage, count in by_stage(letters).items())


def _plural(count: int) -> str:
    return f"{count} dead letter{'' if count == 1 else 's'}"


def _counts(args: argparse.Namespace) -> int:
    from worker.storage import DeadLetterStore

    if _filtered(args):
        complain(args, "--counts counts every dead letter by stage; it takes no filters")
        return 2
    try:
        with opened(DeadLetterStore) as (_settings, store):
            counts = dict(sorted(store.counts_by_stage().items()))
    except NoTablesError as empty:
        print(f"{_plural(0)}: {empty}", file=sys.stderr)
        counts = {}
    if args.json:
        write_json(counts)
    else:
        for line in table([[stage, str(count)] for stage, count in counts.items()], None):
            print(line)
    print(f"{_plural(sum(counts.values()))} in total", file=sys.stderr)
    return 0


def cmd_list(args: argparse.Namespace) -> int:
    """List dead letters, most recently failed first (or count them by stage)."""
    from worker.storage import DeadLetterStore

    if args.counts:
        return _counts(args)
    try:
        with opened(DeadLetterStore) as (_settings, store):
            letters = store.list(**_filters(args), limit=args.limit)
    except NoTablesError as empty:
        print(f"{_plural(0)}: {empty}", file=sys.stderr)
        return 0
    if args.json:
        for letter in letters:
            sys.stdout.buffer.write(orjson.dumps(letter) + b"\n")
        sys.stdout.buffer.flush()
    elif letters:
        rows = [["ID", "STAGE", "ERROR", "ATTEMPTS", "LAST SEEN", "CABLE/SOURCE", "REASON"]]
        rows += [
            [
                letter["id"],
                letter["stage"],
                letter["error_class"],
                str(letter["attempts"]),
                letter["last_seen"][:19] + "Z",
                letter["reference_id"] or letter["source"] or "-",
                " ".join(letter["reason"].split()),
            ]
            for letter in letters
        ]
        for line in table(rows, terminal_width()):
            print(line)
    more = " (--limit reached: there may be more)" if len(letters) == args.limit else ""
    print(f"{_plural(len(letters))}{more}", file=sys.stderr)
    return 0


def cmd_show(args: argparse.Namespace) -> int:
    """Print one dead letter, payload included, as JSON."""
    from worker.storage import DeadLetterStore, redact_url

    try:
        with opened(DeadLetterStore) as (settings, store):
            letter = store.get(args.id)
    except NoTablesError as empty:
        complain(args, f"no dead letter {args.id}: {empty}")
        return 1
    if letter is None:
        complain(args, f"no dead letter {args.id} in {redact_url(settings.database_url)}")
        return 1
    write_json(letter, pretty=args.pretty)
    return 0


def cmd_replay(args: argparse.Namespace) -> int:
    """Resend dead letters where they failed, then mark them replayed."""
    from kombu.exceptions import KombuError

    from worker.ops.deadletters import due, replay, unconfigured_sinks
    from worker.storage import DeadLetterStore, redact_url

    if args.ids and (args.all or _filtered(args)):
        complain(args, "give dead-letter ids, or --all and/or filters, not both")
        return 2
    if not args.ids and not args.all and not _filtered(args):
        complain(args, "nothing selected: give dead-letter ids, --all, or a filter (--stage, ...)")
        return 2
    with opened(DeadLetterStore, write=not args.dry_run) as (settings, store):
        missing: list[str] = []
        if args.ids:
            found = {i: store.get(i) for i in dict.fromkeys(args.ids)}
            missing = [i for i, letter in found.items() if letter is None]
            letters = [letter for letter in found.values() if letter is not None]
        else:
            letters = store.list(**_filters(args), limit=args.limit or _EVERYTHING)
        for unknown in missing:
            complain(args, f"no dead letter {unknown} in {redact_url(settings.database_url)}")
        sending = due(letters, again=args.again)
        if skipped := len(letters) - len(sending):
            note = f"skipped {_plural(skipped)} replayed since their last failure"
            print(f"{note} (--again replays them too)", file=sys.stderr)
        if not sending:
            print("nothing to replay", file=sys.stderr)
            return 1 if missing else 0
        if args.dry_run:
            rows = [[x["id"], x["stage"], x["reference_id"] or "-"] for x in sending]
            for line in table(rows, None):
                print(line)
            print(f"would replay {_plural(len(sending))}: {_by_stage(sending)}")
            return 1 if missing else 0
        for sink in unconfigured_sinks(settings, sending):
            complain(args, f"warning: no sink {sink} in the configuration; no worker reads it")
        untold = "some may have been sent, none was marked replayed"
        try:
            replay(settings, store, sending, again=True, on_retry=say)
        except UnavailableError as error:
            raise UnavailableError(error.what, error.url, f"{error}; {untold}") from error
        except (OSError, KombuError) as error:
            where = redact_broker_url(settings.broker_url)
            raise UnavailableError("broker", where, f"broker {where}: {error}; {untold}") from error
    print(f"replayed {_plural(len(sending))}: {_by_stage(sending)}")
    return 1 if missing else 0


def _purge_selection(args: argparse.Namespace) -> str:
    what = ["every dead letter"]
    if args.stage:
        what.append(f"at stage {args.stage}")
    if args.before:
        what.append(f"last seen before {args.before.isoformat().replace('+00:00', 'Z')}")
    if args.replayed_only:
        what.append("replayed since its last failure")
    return " ".join(what)


def cmd_purge(args: argparse.Namespace) -> int:
    """Delete dead letters, after confirmation (or --yes)."""
    from worker.storage import DeadLetterStore, redact_url

    if not args.yes and not sys.stdin.isatty():
        complain(args, "refusing to delete without --yes: stdin is not a terminal to confirm on")
        return 2
    with opened(DeadLetterStore, write=True) as (settings, store):
        if not args.yes:
            where = redact_url(settings.database_url)
            print(f"delete {_purge_selection(args)} in {where}? [y/N] ", end="", file=sys.stderr)
            sys.stderr.flush()
            if sys.stdin.readline().strip().lower() not in ("y", "yes"):
                print("nothing deleted", file=sys.stderr)
                return 1
        deleted = store.purge(
            stage=args.stage, before=args.before, replayed_only=args.replayed_only
        )
    print(f"deleted {_plural(deleted)}")
    return 0


def _add_filters(parser: argparse.ArgumentParser) -> None:
    parser.add_argument("--stage", type=stage_name, help="intake, parse, validate or sink:<name>")
    parser.add_argument("--sink", type=sink_name, help="sink failures of this sink only")
    parser.add_argument("--reason", metavar="TEXT", help="reason contains TEXT (any case)")
    parser.add_argument("--since", type=iso_time, metavar="ISO", help="last seen at or after ISO")
    parser.add_argument("--until", type=iso_time, metavar="ISO", help="last seen before ISO")


def register(sub: Subcommands[argparse.ArgumentParser]) -> None:
    """Add ``dlq`` and its actions ``list``, ``show``, ``replay`` and ``purge``."""
    dlq = command(
        sub,
        "dlq",
        summary="browse, replay and purge dead letters",
        description="Dead letters are the messages that failed for good (not a cable, invalid\n"
        "after parsing, a sink refusing them), each with its stage, error and reason. List\n"
        "them, look at one, send them back where they failed once the cause is fixed, or\n"
        "delete them.",
    )
    actions = dlq.add_subparsers(dest="dlq_command", required=True, metavar="ACTION")

    listing = command(
        actions,
        "list",
        summary="dead letters, most recently failed first",
        description="List dead letters, most recently failed first: id, stage, error, attempts,\n"
        "last seen, cable or source, reason. Filters combine (all must hold).",
        examples=[
            "cable-ingest dlq list --stage parse --since 2026-12-01",
            "cable-ingest dlq list --sink webhook --reason timeout --json",
            "cable-ingest dlq list --counts",
        ],
    )
    _add_filters(listing)
    listing.add_argument("--limit", type=positive_int, default=100, help="at most this many")
    listing.add_argument("--json", action="store_true", help="one JSON dead letter per line")
    listing.add_argument(
        "--counts",
        action="store_true",
        help="count every dead letter by stage instead (no filters)",
    )
    listing.set_defaults(func=cmd_list, command_name="dlq list")

    show = command(
        actions,
        "show",
        summary="one dead letter as JSON, payload included",
        examples=["cable-ingest dlq show 3f2a9c1e --pretty"],
    )
    show.add_argument("id", metavar="ID", help="dead-letter id (the first column of dlq list)")
    show.add_argument("--pretty", action="store_true", help="indented JSON for people")
    show.set_defaults(func=cmd_show, command_name="dlq show")

    replay = command(
        actions,
        "replay",
        summary="resend dead letters where they failed and mark them replayed",
        description="Resend dead letters to the stage where they failed (intake, parse and\n"
        "validate to the intake queue, sink:<name> to that sink's queue) and mark them\n"
        "replayed. Select by ids, or by --all and/or filters; nothing selected is refused.\n"
        "A dead letter replayed since its last failure is skipped unless --again.",
        examples=[
            "cable-ingest dlq replay 3f2a9c1e 77b0d2aa",
            "cable-ingest dlq replay --sink webhook --since 2026-12-01T09:00Z --dry-run",
            "cable-ingest dlq replay --all",
        ],
    )
    replay.add_argument("ids", nargs="*", metavar="ID", help="dead-letter ids to replay")
    replay.add_argument("--all", action="store_true", help="every dead letter (the filters apply)")
    _add_filters(replay)
    replay.add_argument(
        "--limit", type=positive_int, help="at most this many, most recent first (default: all)"
    )
    replay.add_argument("--dry-run", action="store_true", help="list what would be sent, send none")
    replay.add_argument(
        "--again", action="store_true", help="also those replayed since their last failure"
    )
    replay.set_defaults(func=cmd_replay, command_name="dlq replay")

    purge = command(
        actions,
        "purge",
        summary="delete dead letters (all unless filtered)",
        description="Delete dead letters, after a confirmation on the terminal (or --yes).",
        examples=[
            "cable-ingest dlq purge --replayed-only --yes",
            "cable-ingest dlq purge --stage parse --before 2026-11-01",
        ],
    )
    purge.add_argument("--stage", type=stage_name, help="intake, parse, validate or sink:<name>")
    purge.add_argument("--before", type=iso_time, metavar="ISO", help="last seen before ISO")
    purge.add_argument(
        "--replayed-only", action="store_true", help="only those replayed since their last failure"
    )
    purge.add_argument("--yes", action="store_true", help="do not ask for confirmation")
    purge.set_defaults(func=cmd_purge, command_name="dlq purge")
