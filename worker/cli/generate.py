"""``generate``: distinct synthetic cables at any scale, renumbered from real ones."""

from __future__ import annotations

import argparse
import sys
from pathlib import Path

from worker.errors import CableIngestError
from worker.intake.generate import load_templates, write_cables


def cmd_generate(args: argparse.Namespace) -> int:
    """Write ``--count`` cables made from the cables under ``--from`` into OUT_DIR."""
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


def register(sub: argparse._SubParsersAction[argparse.ArgumentParser]) -> None:
    """Add ``generate``."""
    generate = sub.add_parser(
        "generate", help="write N distinct synthetic cables renumbered from real ones"
    )
    generate.add_argument("out", type=Path, metavar="OUT_DIR", help="created if missing")
    generate.add_argument("--count", type=int, required=True, help="how many cables")
    generate.add_argument(
        "--from", dest="source", type=Path, required=True, metavar="DIR",
        help="real cables to renumber (every file under DIR)",
    )  # fmt: skip
    generate.set_defaults(func=cmd_generate)
