"""``show`` and ``search``: read the cable store; also the helpers the ``dlq`` commands share.

Reading never migrates nor creates anything: a database without tables (a fresh machine, a
SQLite file not there yet) is "nothing stored yet", and tables at another storage revision are
one line saying so (``cable-ingest migrate``). The commands that write (``dlq replay``, ``dlq
purge``) migrate first. A database that does not answer is waited for
(:mod:`worker.cli.dependencies`).

Exit codes: 0 when the question was answered, empty answers included (``search`` with no match,
or nothing stored yet, says so on stderr and exits 0); 1 when a thing named on the command line
does not exist (an unknown reference id; every one when nothing is stored yet), the tables are
at another revision, or storage fails (one line ``cable-ingest: <message>``); 2 for bad
arguments (argparse: a usage line and one error line); 69 when the database did not answer
within ``CABLE_INGEST_CONNECT_WAIT_S``.
"""

from __future__ import annotations

import argparse
import re
import shutil
import sys
from collections.abc import Iterator, Sequence
from contextlib import contextmanager
from datetime import UTC, datetime
from typing import TYPE_CHECKING, Any, TypeVar

import orjson

from worker.cli.dependencies import NoTablesError, wait_for_database, wait_for_tables
from worker.cli.help import Subcommands, command
from worker.settings import Settings

if TYPE_CHECKING:
    from worker.storage import CableStore, DeadLetterStore

    _Store = TypeVar("_Store", CableStore, DeadLetterStore)
_STAGE = re.compile(r"(intake|parse|validate|sink:[a-z0-9_-]+)")
_SINK = re.compile(r"[a-z0-9_-]+")
_WORD = re.compile(r"\w")


# --- argument types (argparse turns their errors into a usage error, exit 2) -------------------


def iso_time(raw: str) -> datetime:
    """An ISO 8601 date or date-time (``2024-05-01``, ``2024-05-01T09:30Z``); naive means UTC."""
    try:
        value = datetime.fromisoformat(raw.strip())
    except ValueError:
        message = (
            f"expected an ISO 8601 date or date-time such as 2024-05-01T09:30:00Z, got {raw!r}"
        )
        raise argparse.ArgumentTypeError(message) from None
    return value.astimezone(UTC) if value.tzinfo else value.replace(tzinfo=UTC)


def positive_int(raw: str) -> int:
    """A whole number >= 1."""
    if not raw.isascii() or not raw.isdigit() or int(raw) < 1:
        raise argparse.ArgumentTypeError(f"expected a positive integer, got {raw!r}")
    return int(raw)


def stage_name(raw: str) -> str:
    """A pipeline stage: intake, parse, validate or sink:<name>."""
    if not _STAGE.fullmatch(raw):
        raise argparse.ArgumentTypeError(
            f"expected intake, parse, validate or sink:<name>, got {raw!r}"
        )
    return raw


def sink_name(raw: str) -> str:
    """A sink name (a-z, 0-9, _ and -)."""
    if not _SINK.fullmatch(raw):
        raise argparse.ArgumentTypeError(f"expected a sink name (a-z, 0-9, _ and -), got {raw!r}")
    return raw


# --- output and storage helpers ----------------------------------------------------------------


def write_json(document: Any, *, pretty: bool = False) -> None:
    """One JSON document on stdout: one line, or indented with ``pretty``."""
    option = orjson.OPT_INDENT_2 if pretty else 0
    sys.stdout.buffer.write(orjson.dumps(document, option=option) + b"\n")
    sys.stdout.buffer.flush()


def terminal_width() -> int | None:
    """Columns of the terminal stdout is, or None when stdout is not a terminal (no truncation)."""
    return shutil.get_terminal_size().columns if sys.stdout.isatty() else None


def fit(line: str, width: int | None) -> str:
    """``line`` cut to ``width`` characters with an ellipsis (unchanged when width is None)."""
    if width is None or len(line) <= width:
        return line
    return line[: max(0, width - 1)] + "…"


def table(rows: Sequence[Sequence[str]], width: int | None) -> Iterator[str]:
    """Rows as lines of left-aligned columns (the last column unpadded), each fit to ``width``."""
    widths = [max(len(row[i]) for row in rows) for i in range(len(rows[0]) - 1)] if rows else []
    for row in rows:
        cells = [cell.ljust(widths[i]) for i, cell in enumerate(row[:-1])]
        yield fit("  ".join([*cells, row[-1]]), width)


def complain(args: argparse.Namespace, message: str) -> None:
    """One line on stderr, prefixed by the command (``cable-ingest dlq show: ...``)."""
    print(f"cable-ingest {args.command_name}: {message}", file=sys.stderr)


@contextmanager
def opened(kind: type[_Store], *, write: bool = False) -> Iterator[tuple[Settings, _Store]]:
    """The settings and a store of ``kind``, closed afterwards: for reading, on a database
    whose tables are this version's (NoTablesError, SchemaMismatchError), nothing created; to
    ``write``, on a database migrated now."""
    from worker.storage import upgrade

    settings = Settings.from_env()
    if write:
        wait_for_database(settings)
        upgrade(settings.database_url)
    else:
        wait_for_tables(settings)
    store = kind(settings.database_url)
    try:
        yield settings, store
    finally:
        store.close()


# --- show and search -----------------------------------------------------------------------------


def cmd_show(args: argparse.Namespace) -> int:
    """Print the current record of a cable, and with --revisions every earlier version too;
    with --original the text it was derived from, with --provenance every arrival."""
    try:
        return _show(args)
    except NoTablesError as empty:
        complain(args, f"no cable {args.refid}: {empty}")
        return 1


def _show(args: argparse.Namespace) -> int:
    from worker.storage import CableStore, redact_url

    if args.original:
        return _show_original(args)
    if args.provenance:
        with opened(CableStore) as (settings, store):
            found = store.provenance(args.refid)
        if not found["revisions"]:
            complain(args, f"no cable {args.refid} in {redact_url(settings.database_url)}")
            return 1
        write_json(found, pretty=args.pretty)
        return 0
    with opened(CableStore) as (settings, store):
        versions = store.revisions(args.refid) if args.revisions else None
        if versions is None:
            record = store.get(args.refid)
        else:
            record = versions[-1]["record"] if versions else None
    if record is None:
        complain(args, f"no cable {args.refid} in {redact_url(settings.database_url)}")
        return 1
    if versions:
        current = versions[-1]
        write_json(
            {
                "reference_id": args.refid,
                "revision": current["revision"],
                "stored_at": current["stored_at"],
                "current": record,
                "revisions": versions[:-1],
            },
            pretty=args.pretty,
        )
    else:
        write_json(record, pretty=args.pretty)
    return 0


def _show_original(args: argparse.Namespace) -> int:
    """Write the exact bytes of a revision's original on stdout (sha256 checked)."""
    from worker.storage import CableStore, redact_url

    with opened(CableStore) as (settings, store):
        try:
            _sha256, raw = store.original_of(args.refid, args.revision)
        except LookupError as error:
            complain(args, f"{error.args[0]} in {redact_url(settings.database_url)}")
            return 1
    sys.stdout.buffer.write(raw)
    sys.stdout.buffer.flush()
    return 0


def _day(value: object) -> str:
    return value[:10] if isinstance(value, str) else "-"


def cmd_search(args: argparse.Namespace) -> int:
    """List the cables whose subject or body contain every word of the query, best first."""
    from worker.storage import CableStore

    query = " ".join(args.query)
    if not _WORD.search(query):
        complain(args, f"the query {query!r} has no words to search for")
        return 2
    try:
        with opened(CableStore) as (_settings, store):
            found = store.search(query, args.limit)
    except NoTablesError as empty:
        print(f"no cables stored yet: {empty}", file=sys.stderr)
        return 0
    if not found:
        print(f"no cables match {query!r}", file=sys.stderr)
        return 0
    if args.json:
        for hit in found:
            sys.stdout.buffer.write(orjson.dumps(hit) + b"\n")
        sys.stdout.buffer.flush()
        return 0
    rows = [
        [h["reference_id"], _day(h["date"]), h["classification"] or "-", h["subject"] or ""]
        for h in found
    ]
    for line in table(rows, terminal_width()):
        print(line)
    return 0


def register(sub: Subcommands[argparse.ArgumentParser]) -> None:
    """Add ``show`` and ``search``."""
    show = command(
        sub,
        "show",
        summary="print a stored cable as JSON (its revisions, original or provenance)",
        description="Print the current record of a stored cable as JSON; with an option, its\n"
        "earlier revisions, the exact text it was derived from, or every arrival of it.\n"
        "Exit 1 when no cable has that reference id.",
        examples=[
            "cable-ingest show 06ALMATY598 --pretty",
            "cable-ingest show 06ALMATY598 --original > original.txt",
            "cable-ingest show 06ALMATY598 --original --revision 1",
            "cable-ingest show 06ALMATY598 --provenance | jq '.arrivals[].source'",
        ],
    )
    show.add_argument("refid", metavar="REFID", help="reference id of the cable (06ALMATY598)")
    what = show.add_mutually_exclusive_group()
    what.add_argument(
        "--revisions",
        action="store_true",
        help='print {"reference_id", "revision", "stored_at", "current": record, "revisions":'
        " [earlier versions, oldest first, each with revision, content_hash, stored_at, record]}",
    )
    what.add_argument(
        "--original",
        action="store_true",
        help="print the text the record was derived from, byte for byte as the feed sent it"
        " (its sha256 is checked first; exit 1 when the cable was stored before originals)",
    )
    what.add_argument(
        "--provenance",
        action="store_true",
        help='print {"reference_id", "revisions": [revision, content_hash, original_sha256,'
        ' parser_version, stored_at], "arrivals": [message_id, source, metadata, received_at,'
        " stored_at, sha256, outcome, revision]}: every arrival, first stored first",
    )
    show.add_argument(
        "--revision",
        type=positive_int,
        metavar="N",
        help="with --original: the original of revision N (default: the current one)",
    )
    show.add_argument("--pretty", action="store_true", help="indented JSON for people")
    show.set_defaults(func=cmd_show, command_name="show")

    search = command(
        sub,
        "search",
        summary="full-text search of subjects and bodies (every word must occur)",
        description="List the stored cables whose subject or body contain every word of the\n"
        "query, best first: reference id, date, classification, subject. No match: a note on\n"
        "stderr, exit 0.",
        examples=[
            "cable-ingest search uranium enrichment",
            "cable-ingest search --limit 100 --json Kazakhstan refugees | jq -r .reference_id",
        ],
    )
    search.add_argument("query", nargs="+", metavar="QUERY", help="words to search for")
    search.add_argument("--limit", type=positive_int, default=20, help="at most this many matches")
    search.add_argument(
        "--json",
        action="store_true",
        help="one JSON object per match: reference_id, date, classification, subject",
    )
    search.set_defaults(func=cmd_search, command_name="search")
