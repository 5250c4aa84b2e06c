"""The ``cable-ingest`` command line: one subcommand per job, each a thin call into the core.

Each module of this package registers its subcommands: :mod:`.queue` (``run``, ``enqueue``,
``worker``, ``migrate``), :mod:`.store` (``show``, ``search``) and :mod:`.deadletters`
(``dlq``), :mod:`.reparse`, :mod:`.exchange` (``export``, ``import``), :mod:`.status`,
:mod:`.observe` (``metrics``, ``health``), :mod:`.serve`, :mod:`.tokens`, :mod:`.parse`
(``parse``, ``validate``) and :mod:`.generate`. Building the parser imports none of what the
commands run (see :mod:`.help`): ``--help`` answers at once.
"""

from __future__ import annotations

import argparse
import sys
from collections.abc import Sequence

from worker import __version__
from worker.errors import CableIngestError, UnavailableError

from . import (
    deadletters,
    exchange,
    exits,
    generate,
    observe,
    parse,
    queue,
    reparse,
    serve,
    status,
    store,
    tokens,
)
from .help import HelpFormatter

DESCRIPTION = """\
Ingest diplomatic cables: producers enqueue raw texts, workers parse each into a validated
record and fan it out to storage and notification sinks.

Settings come from CABLE_INGEST_* environment variables (README, "Configuration"); with none,
everything runs embedded: a filesystem broker and SQLite under ./var.
"""

EPILOG = """\
examples:
  cable-ingest run ../cables            # all in one: workers, enqueue, wait, summary
  cable-ingest enqueue feed/*.txt       # hand cables to running workers
  cable-ingest status --watch           # queues, workers, throughput, dead letters
  cable-ingest COMMAND --help           # what a command does, its options and examples
"""


def build_parser() -> argparse.ArgumentParser:
    """The argument parser of ``cable-ingest``."""
    parser = argparse.ArgumentParser(
        prog="cable-ingest",
        description=DESCRIPTION,
        epilog=EPILOG,
        formatter_class=HelpFormatter,
    )
    parser.add_argument("--version", action="version", version=f"%(prog)s {__version__}")
    sub = parser.add_subparsers(dest="command", required=True, metavar="COMMAND")
    for module in (queue, store, deadletters, reparse, exchange, status, observe, serve, tokens):
        module.register(sub)
    parse.register(sub)
    generate.register(sub)
    return parser


def main(argv: Sequence[str] | None = None) -> int:
    """Entry point of the ``cable-ingest`` console script."""
    try:
        args = build_parser().parse_args(argv)
        code: int = args.func(args)
    except UnavailableError as error:  # the broker or the database, after the wait
        print(f"cable-ingest: {error}", file=sys.stderr)
        return exits.UNAVAILABLE
    except CableIngestError as error:
        print(f"cable-ingest: {error}", file=sys.stderr)
        return exits.ERROR
    except KeyboardInterrupt:
        print("cable-ingest: interrupted", file=sys.stderr)
        return exits.INTERRUPTED
    return code


if __name__ == "__main__":
    sys.exit(main())
