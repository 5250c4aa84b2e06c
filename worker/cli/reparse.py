"""``reparse``: re-derive stored records from their originals through the queue and the workers.

Exit codes: 0 when every selected cable was re-derived (unchanged or revised); 1 when any failed
(dead-lettered), had no original, was named but is not stored, or got no outcome (the workers
died or nothing moved for ``--stall-timeout``: run the same command to resume); 2 for bad
arguments.
"""

from __future__ import annotations

import argparse
import sys
from typing import TYPE_CHECKING, Never

import orjson
from packaging.version import InvalidVersion, Version

from worker.cli.dependencies import wait_for_broker, wait_for_database
from worker.cli.help import Subcommands, command
from worker.cli.queue import _settings
from worker.cli.store import iso_time
from worker.settings import redact_url

if TYPE_CHECKING:
    from tqdm import tqdm

    from worker.storage.reparse import Progress, Selection


def parser_version(raw: str) -> str:
    """A parser version (PEP 440: ``1.2.0``)."""
    try:
        return str(Version(raw))
    except InvalidVersion:
        raise argparse.ArgumentTypeError(f"expected a version such as 1.2.0, got {raw!r}") from None


def non_negative_int(raw: str) -> int:
    """A whole number >= 0."""
    if not raw.isascii() or not raw.isdigit():
        raise argparse.ArgumentTypeError(f"expected a whole number >= 0, got {raw!r}")
    return int(raw)


def _selection(args: argparse.Namespace) -> Selection:
    from worker.storage.reparse import Selection

    given = [bool(args.refids), args.all, args.since is not None, args.older_than is not None]
    if sum(given) != 1:
        args.parser.error("give REFID…, --all, --since DATE or --older-than VERSION (one of them)")
    return Selection(
        reference_ids=tuple(args.refids),
        everything=args.all,
        since=args.since,
        older_than=args.older_than,
    )


class _Bar:
    """The progress bar on stderr (a terminal only): items settled of the run's total."""

    def __init__(self, enabled: bool) -> None:
        self.bar: tqdm[Never] | None = None
        self.enabled = enabled

    def __call__(self, progress: Progress) -> None:
        from tqdm import tqdm

        from worker.storage.reparse import FAILED, REVISED, UNCHANGED

        if not self.enabled:
            return
        if self.bar is None:
            self.bar = tqdm(total=progress.total, unit="cable", file=sys.stderr)
        bar = self.bar
        bar.update(progress.done - bar.n)
        counts = progress.counts
        bar.set_postfix_str(
            f"unchanged {counts.get(UNCHANGED, 0):,}, revised {counts.get(REVISED, 0):,},"
            f" failed {counts.get(FAILED, 0):,}"
        )

    def close(self) -> None:
        if self.bar is not None:
            self.bar.close()


def cmd_reparse(args: argparse.Namespace) -> int:
    """Re-derive the selected records from their originals and wait for every outcome."""
    from worker.cli.reparse_job import reparse_job

    selection = _selection(args)
    settings = _settings(args.config)
    where = (
        f"broker {redact_url(settings.broker_url)}, database {redact_url(settings.database_url)}"
    )
    print(where, file=sys.stderr if args.json else sys.stdout)
    wait_for_database(settings)
    wait_for_broker(settings)
    bar = _Bar(sys.stderr.isatty())
    try:
        summary = reparse_job(
            settings,
            selection,
            workers=args.workers,
            stall_timeout=args.stall_timeout,
            echo=lambda line: print(line, file=sys.stderr),
            on_progress=bar,
        )
    finally:
        bar.close()
    if args.json:
        sys.stdout.buffer.write(orjson.dumps(summary.as_dict()) + b"\n")
    else:
        for line in summary.lines():
            print(line)
    return 0 if summary.ok else 1


def register(sub: Subcommands[argparse.ArgumentParser]) -> None:
    """Add ``reparse``."""
    reparse = command(
        sub,
        "reparse",
        summary="re-derive stored records from their originals (resumable)",
        description="Parse the stored originals again with this version's parser, through the\n"
        "queue and the workers, and store a new revision where the record changed. Select by\n"
        "reference ids, --all, --since or --older-than (one of them). Interrupted or stalled,\n"
        "the same command resumes where it stopped. Exit 1 when any selected cable failed.",
        examples=[
            "cable-ingest reparse 06ALMATY598 04ANKARA348",
            "cable-ingest reparse --older-than 2.0.0",
            "cable-ingest reparse --all --workers 4 --json",
        ],
    )
    reparse.add_argument("refids", nargs="*", metavar="REFID", help="reference ids to re-derive")
    reparse.add_argument("--all", action="store_true", help="every stored record")
    reparse.add_argument(
        "--since", type=iso_time, metavar="DATE", help="records stored since DATE (ISO 8601)"
    )
    reparse.add_argument(
        "--older-than",
        type=parser_version,
        metavar="VERSION",
        help="records derived by a parser older than VERSION, or by an unknown one",
    )
    reparse.add_argument(
        "--workers",
        type=non_negative_int,
        metavar="N",
        help="start N worker processes for the run (0: none). Default: WORKER_CONCURRENCY"
        " of them on the embedded broker, none on Redis (its running workers take the work)",
    )
    reparse.add_argument(
        "--stall-timeout",
        type=float,
        default=300.0,
        metavar="SECONDS",
        help="stop waiting after this long without an item settled; the run stays resumable",
    )
    reparse.add_argument("--json", action="store_true", help="print the summary as JSON")
    reparse.add_argument(
        "--config", metavar="FILE", help="sinks and rules, TOML, for the workers it starts"
    )
    reparse.set_defaults(func=cmd_reparse, parser=reparse)
