"""How a command of ``cable-ingest`` is declared so that its ``--help`` teaches: a one-line
summary (the command list), a description, the default of every option, and examples.

Command modules declare their arguments with :func:`command` and import what their commands
run (SQLAlchemy, Celery, kombu, uvicorn …) inside the command functions, never at the top: the
parser is built before every command, ``--help`` included, and must answer in milliseconds.
"""

from __future__ import annotations

import argparse
import shutil
from collections.abc import Sequence

Subcommands = argparse._SubParsersAction  # the type argparse gives add_subparsers()


class HelpFormatter(argparse.RawDescriptionHelpFormatter):
    """Descriptions and examples keep their line breaks; an option with a default value other
    than None/False says it ("(default: 100)") unless its help already does."""

    def __init__(self, prog: str) -> None:
        width = min(100, shutil.get_terminal_size().columns)
        super().__init__(prog, max_help_position=30, width=width)

    def _get_help_string(self, action: argparse.Action) -> str | None:
        text = action.help or ""
        shown = action.default not in (None, False, argparse.SUPPRESS) and not isinstance(
            action, argparse._VersionAction
        )
        if shown and "default" not in text and "%(default)" not in text:
            text += " (default: %(default)s)"
        return text


def command(
    sub: Subcommands[argparse.ArgumentParser],
    name: str,
    *,
    summary: str,
    description: str | None = None,
    examples: Sequence[str] = (),
) -> argparse.ArgumentParser:
    """Add the command ``name``: ``summary`` in the command list, ``description`` (else the
    summary) at the top of its help and ``examples`` (command lines, ``# comment`` allowed)
    at the bottom."""
    epilog = None
    if examples:
        epilog = "examples:\n" + "\n".join(f"  {line}" for line in examples)
    return sub.add_parser(
        name,
        help=summary,
        description=description or summary[:1].upper() + summary[1:] + ".",
        epilog=epilog,
        formatter_class=HelpFormatter,
    )
