"""``cable-ingest --help`` teaches: every command and argument described, defaults shown, an
example each; and the help answers without importing the heavy machinery (lazy imports)."""

from __future__ import annotations

import argparse
import subprocess
import sys

import pytest

from worker.cli import build_parser
from worker.cli.help import HelpFormatter

HEAVY = ("sqlalchemy", "alembic", "celery", "kombu", "redis", "httpx", "uvicorn", "starlette")


def _subparsers(parser: argparse.ArgumentParser) -> dict[str, argparse.ArgumentParser]:
    """Every command's parser, nested ones (``dlq list``) named by their full path."""
    found: dict[str, argparse.ArgumentParser] = {}
    for action in parser._actions:
        if isinstance(action, argparse._SubParsersAction):
            for name, child in action.choices.items():
                path = f"{parser.prog.removeprefix('cable-ingest').strip()} {name}".strip()
                found[path] = child
                found |= _subparsers(child)
    return found


COMMANDS = _subparsers(build_parser())


def test_the_top_level_help_has_no_markup() -> None:
    """The first screen reads as plain text: no reStructuredText markup, every command listed."""
    text = build_parser().format_help()
    assert "``" not in text
    assert ":mod:" not in text
    for name in (n for n in COMMANDS if " " not in n):
        assert name in text


@pytest.mark.parametrize("name", sorted(COMMANDS))
def test_every_command_is_described_with_an_example(name: str) -> None:
    """Each command has a description and at least one example invocation in its help."""
    parser = COMMANDS[name]
    assert parser.description, f"{name}: no description"
    if not any(isinstance(a, argparse._SubParsersAction) for a in parser._actions):
        assert (parser.epilog or "").startswith("examples:\n"), f"{name}: no examples"
        assert "cable-ingest " in (parser.epilog or ""), f"{name}: no example command line"


@pytest.mark.parametrize("name", sorted(COMMANDS))
def test_every_argument_is_described_and_shows_its_default(name: str) -> None:
    """Every option and positional has help; an option's default value appears in its help
    (the formatter adds "(default: …)"), and one without a value says what it falls back to."""
    parser = COMMANDS[name]
    assert parser.formatter_class is HelpFormatter
    text = " ".join(parser.format_help().split())
    for action in parser._actions:
        if isinstance(action, (argparse._HelpAction, argparse._SubParsersAction)):
            continue
        label = "/".join(action.option_strings) or action.dest
        assert action.help, f"{name} {label}: no help"
        assert action.help != argparse.SUPPRESS, f"{name} {label}: hidden"
        if action.option_strings and action.default not in (None, False):
            assert f"(default: {action.default})" in text, f"{name} {label}: default not shown"


@pytest.mark.parametrize("argv", [["--help"], *[[n.split()[0], "--help"] for n in COMMANDS]])
def test_help_imports_nothing_heavy(argv: list[str]) -> None:
    """``--help`` (top level and per command) loads no database, broker or HTTP library: the
    import work that made every command take 1.1-1.5 s to start."""
    probe = (
        "import sys\n"
        "from worker.cli import main\n"
        f"try:\n    main({argv!r})\nexcept SystemExit:\n    pass\n"
        f"print(','.join(m for m in {HEAVY!r} if m in sys.modules), file=sys.stderr)\n"
    )
    result = subprocess.run(
        [sys.executable, "-c", probe], capture_output=True, timeout=60, check=False
    )
    loaded = result.stderr.decode().strip().splitlines()[-1] if result.stderr.strip() else ""
    assert loaded == "", f"{' '.join(argv)} imported {loaded}"
