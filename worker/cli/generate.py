"""``generate``: distinct synthetic cables at any scale, renumbered from real ones."""

from __future__ import annotations

import argparse
import sys
from pathlib import Path

from worker.cli.help import Subcommands, command
from worker.errors import CableIngestError


def cmd_generate(args: argparse.Namespace) -> int:
    """Write ``--count`` cables made from the cables under ``--from`` into OUT_DIR."""
    from worker.intake.generate import load_templates, write_cables

    source: Path = args.source
    if not source.is_dir():
        raise CableIngestError(f"--from {source}: not a folder of cables")
    templates, refused = load_templates(sorted(p for p in source.rglob("*") if p.is_file()))
    written = write_cables(templates, args.count, args.out)
    print(
        f"wrote {written:,} cables to {args.out} from {len(templates):,} templates"
        f" ({refused:,} files of {source} could not be renumbered)",
        file=sys.stderr,
    )
    return 0


def register(sub: Subcommands[argparse.ArgumentParser]) -> None:
    """Add ``generate``."""
    generate = command(
        sub,
        "generate",
        summary="write N distinct synthetic cables renumbered from real ones",
        description="Write --count cables into OUT_DIR, each a real cable from --from with a new\n"
        "serial number where the parser reads it, so that every copy has its own reference\n"
        "id and hash and the corpus's size and structure: test data at any scale (make run\n"
        "uses it when the dev corpus is absent).",
        examples=["cable-ingest generate var/generated --count 1000 --from tests/fixtures"],
    )
    generate.add_argument("out", type=Path, metavar="OUT_DIR", help="created if missing")
    generate.add_argument("--count", type=int, required=True, help="how many cables")
    generate.add_argument(
        "--from", dest="source", type=Path, required=True, metavar="DIR",
        help="real cables to renumber (every file under DIR)",
    )  # fmt: skip
    generate.set_defaults(func=cmd_generate)
