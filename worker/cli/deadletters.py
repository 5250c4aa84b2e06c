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
send: a replayed message that fails again is then always later than its replay.
"""

from __future__ import annotations

import argparse
import sys
from collections import Counter
from collections.abc import Mapping, Sequence
from datetime import UTC, datetime
from typing import Any

import orjson
from kombu.exceptions import KombuError

from worker.cli.dependencies import NoTablesError, say
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
from worker.routing.config import load_config
from worker.settings import Settings
from worker.settings import redact_url as redact_broker_url
from worker.storage import DeadLetterStore, redact_url

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
    counts = Counter(str(letter["stage"]) for letter in letters)
    return ", ".join(f"{stage} {count}" for stage, count in sorted(counts.items()))


def _plural(count: int) -> str:
    return f"{count} dead letter{'' if count == 1 else 's'}"


def _replayed_since_failure(letter: Mapping[str, Any]) -> bool:
    replayed, last_seen = letter.get("replayed_at"), letter.get("last_seen")
    if not isinstance(replayed, str) or not isinstance(last_seen, str):
        return False
    return datetime.fromisoformat(replayed) >= datetime.fromisoformat(last_seen)


def _counts(args: argparse.Namespace) -> int:
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
        due = [x for x in letters if args.again or not _replayed_since_failure(x)]
        if skipped := len(letters) - len(due):
            note = f"skipped {_plural(skipped)} replayed since their last failure"
            print(f"{note} (--again replays them too)", file=sys.stderr)
        if not due:
            print("nothing to replay", file=sys.stderr)
            return 1 if missing else 0
        if args.dry_run:
            for line in table([[x["id"], x["stage"], x["reference_id"] or "-"] for x in due], None):
                print(line)
            print(f"would replay {_plural(len(due))}: {_by_stage(due)}")
            return 1 if missing else 0
        unconfigured = {x["stage"][5:] for x in due if x["stage"].startswith("sink:")}
        configured = load_config(settings.config_file).sinks
        for sink in sorted(unconfigured - set(configured)):
            complain(args, f"warning: no sink {sink} in the configuration; no worker reads it")
        started = datetime.now(UTC)
        _send(settings, due)
        store.mark_replayed([letter["id"] for letter in due], at=started)
    print(f"replayed {_plural(len(due))}: {_by_stage(due)}")
    return 1 if missing else 0


def _send(settings: Settings, due: Sequence[Mapping[str, Any]]) -> None:
    """Replay ``due``; a broker that does not answer within the wait: UnavailableError."""
    from worker.intake.producer import Producer  # noqa: PLC0415 - imports the app: reads settings

    untold = "some may have been sent, none was marked replayed"
    try:
        with Producer(settings, on_retry=say) as producer:
            for letter in due:
                producer.replay(letter)
    except UnavailableError as error:
        raise UnavailableError(error.what, error.url, f"{error}; {untold}") from error
    except (OSError, KombuError) as error:
        where = redact_broker_url(settings.broker_url)
        raise UnavailableError("broker", where, f"broker {where}: {error}; {untold}") from error


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
    parser.add_argument("--since", type=iso_time, metavar="ISO", help="last seen at or after")
    parser.add_argument("--until", type=iso_time, metavar="ISO", help="last seen before")


def register(sub: argparse._SubParsersAction[argparse.ArgumentParser]) -> None:
    """Add ``dlq`` and its actions ``list``, ``show``, ``replay`` and ``purge``."""
    dlq = sub.add_parser("dlq", help="browse, replay and purge dead letters")
    actions = dlq.add_subparsers(dest="dlq_command", required=True, metavar="ACTION")

    listing = actions.add_parser("list", help="dead letters, most recently failed first")
    _add_filters(listing)
    listing.add_argument(
        "--limit", type=positive_int, default=100, help="at most this many (default 100)"
    )
    listing.add_argument("--json", action="store_true", help="one JSON dead letter per line")
    listing.add_argument(
        "--counts",
        action="store_true",
        help="count every dead letter by stage instead (no filters)",
    )
    listing.set_defaults(func=cmd_list, command_name="dlq list")

    show = actions.add_parser("show", help="one dead letter as JSON, payload included")
    show.add_argument("id", metavar="ID", help="dead-letter id (the first column of dlq list)")
    show.add_argument("--pretty", action="store_true", help="indented JSON for people")
    show.set_defaults(func=cmd_show, command_name="dlq show")

    replay = actions.add_parser(
        "replay",
        help="resend dead letters where they failed and mark them replayed",
        description="Select by ids, or by --all and/or filters; nothing selected is refused.",
    )
    replay.add_argument("ids", nargs="*", metavar="ID", help="dead-letter ids to replay")
    replay.add_argument("--all", action="store_true", help="every dead letter (the filters apply)")
    _add_filters(replay)
    replay.add_argument("--limit", type=positive_int, help="at most this many (most recent first)")
    replay.add_argument("--dry-run", action="store_true", help="list what would be sent, send none")
    replay.add_argument(
        "--again", action="store_true", help="also those replayed since their last failure"
    )
    replay.set_defaults(func=cmd_replay, command_name="dlq replay")

    purge = actions.add_parser("purge", help="delete dead letters (all unless filtered)")
    purge.add_argument("--stage", type=stage_name, help="intake, parse, validate or sink:<name>")
    purge.add_argument("--before", type=iso_time, metavar="ISO", help="last seen before ISO")
    purge.add_argument(
        "--replayed-only", action="store_true", help="only those replayed since their last failure"
    )
    purge.add_argument("--yes", action="store_true", help="do not ask for confirmation")
    purge.set_defaults(func=cmd_purge, command_name="dlq purge")
