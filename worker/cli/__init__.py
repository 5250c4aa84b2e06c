"""The ``cable-ingest`` command line: one subcommand per job, each a thin call into the core.

Each module of this package registers its subcommands: :mod:`.parse` (``parse``, ``validate``),
:mod:`.generate`, :mod:`.store`, :mod:`.exchange` (``export``, ``import``), :mod:`.tokens`,
:mod:`.serve`, :mod:`.queue`, :mod:`.reparse`, :mod:`.observe`, :mod:`.status`.
"""

from __future__ import annotations

import argparse
import sys
from collections.abc import Sequence

from worker import __version__
from worker.errors import CableIngestError, UnavailableError

from . import exchange, exits, generate, parse, serve, store, tokens


def build_parser() -> argparse.ArgumentParser:
    """The argument parser of ``cable-ingest``."""
    parser = argparse.ArgumentParser(prog="cable-ingest", description=__doc__.splitlines()[0])
    parser.add_argument("--version", action="version", version=f"%(prog)s {__version__}")
    sub = parser.add_subparsers(dest="command", required=True)
    parse.register(sub)
    generate.register(sub)
    store.register(sub)
    exchange.register(sub)
    tokens.register(sub)
    serve.register(sub)
    from . import queue  # noqa: PLC0415 - Celery, kombu and the sinks: only when parsing

    queue.register(sub)
    from . import reparse  # noqa: PLC0415 - the same (see above)

    reparse.register(sub)
    from . import observe  # noqa: PLC0415 - the same (see above)

    observe.register(sub)
    from . import status  # noqa: PLC0415 - the same (see above)

    status.register(sub)
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
        return 1
    except KeyboardInterrupt:
        print("cable-ingest: interrupted", file=sys.stderr)
        return 130
    return code


if __name__ == "__main__":
    sys.exit(main())
