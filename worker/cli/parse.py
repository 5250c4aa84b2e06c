"""``cable-ingest parse`` and ``cable-ingest validate``: the parser and the schemas, no queue."""

from __future__ import annotations

import argparse
import sys
from collections.abc import Iterator, Sequence
from pathlib import Path

import orjson

from worker.cli.help import Subcommands, command
from worker.errors import CableIngestError, ValidationError


def _inputs(paths: Sequence[str]) -> Iterator[tuple[str, Path | None]]:
    """Expand FILE|DIR|- into (name, path); ``-`` yields stdin (path None)."""
    for name in paths:
        if name == "-":
            yield "<stdin>", None
            continue
        path = Path(name)
        if path.is_dir():
            for child in sorted(p for p in path.rglob("*") if p.is_file()):
                yield str(child), child
        else:
            yield name, path


def unreadable(error: OSError) -> str:
    """Why a named input cannot be read, in the operating system's words, without the path
    again ("cannot read: No such file or directory")."""
    return f"cannot read: {error.strerror or error}"


def _read(path: Path | None) -> str:
    data = sys.stdin.buffer.read() if path is None else path.read_bytes()
    try:
        return data.decode("utf-8")
    except UnicodeDecodeError:
        return data.decode("cp1252", errors="replace")


def cmd_parse(args: argparse.Namespace) -> int:
    """Parse cables and print one JSON record per line (or indented with --pretty)."""
    from worker.core.validate import validate_record
    from worker.parse import parse_cable

    option = orjson.OPT_INDENT_2 if args.pretty else 0
    failed = 0
    out = sys.stdout.buffer
    for name, path in _inputs(args.paths):
        try:
            record = parse_cable(_read(path), source_file=None if path is None else name)
            if not args.no_validate:
                validate_record(record)
        except OSError as exc:
            failed += 1
            print(f"{name}: {unreadable(exc)}", file=sys.stderr)
            continue
        except CableIngestError as exc:
            failed += 1
            print(f"{name}: {type(exc).__name__}: {exc}", file=sys.stderr)
            continue
        out.write(orjson.dumps(record, option=option) + b"\n")
    out.flush()
    return 1 if failed else 0


def cmd_validate(args: argparse.Namespace) -> int:
    """Validate JSON records (a JSON document or JSON Lines per file) against the cable schema."""
    from worker.core.validate import validate_record

    failed = 0
    for name, path in _inputs(args.paths):
        try:
            text = _read(path)
            documents = (
                [orjson.loads(text)]
                if text.lstrip().startswith("{") and "\n{" not in text
                else [orjson.loads(line) for line in text.splitlines() if line.strip()]
            )
        except OSError as exc:
            failed += 1
            print(f"{name}: {unreadable(exc)}", file=sys.stderr)
            continue
        except orjson.JSONDecodeError as exc:
            failed += 1
            print(f"{name}: not JSON: {exc}", file=sys.stderr)
            continue
        for number, document in enumerate(documents, 1):
            where = name if len(documents) == 1 else f"{name}:{number}"
            try:
                validate_record(document)
            except ValidationError as exc:
                failed += 1
                for violation in exc.violations:
                    print(f"{where}: {violation.path or '/'}: {violation.message}", file=sys.stderr)
                continue
            if args.verbose:
                print(f"{where}: valid")
    return 1 if failed else 0


def register(sub: Subcommands[argparse.ArgumentParser]) -> None:
    """Add ``parse`` and ``validate`` to the ``cable-ingest`` subcommands."""
    parse = command(
        sub,
        "parse",
        summary="parse cables into JSON records, without the queue",
        description="Parse each cable and print its record as one JSON line (validated against\n"
        "the cable schema unless --no-validate). A folder is walked; - reads stdin. A file\n"
        "that is not a cable is named on stderr with the reason; exit 1 when any failed.",
        examples=[
            "cable-ingest parse 06ALMATY598.txt --pretty",
            "cable-ingest parse ../cables | jq -r '[.reference_id, .signature] | @tsv'",
            "curl -s https://example.org/cable.txt | cable-ingest parse -",
        ],
    )
    parse.add_argument(
        "paths", nargs="+", metavar="FILE|DIR|-", help="cables: files, folders (walked), - (stdin)"
    )
    parse.add_argument("--pretty", action="store_true", help="indented JSON for people")
    parse.add_argument("--no-validate", action="store_true", help="skip schema validation")
    parse.set_defaults(func=cmd_parse)

    validate = command(
        sub,
        "validate",
        summary="validate JSON records against the cable schema",
        description="Check JSON records (one document, or JSON Lines, per file) against the\n"
        "cable schema; each violation is printed with its JSON pointer. Exit 1 when any fails.",
        examples=[
            "cable-ingest validate records.jsonl",
            "cable-ingest parse ../cables --no-validate | cable-ingest validate -",
        ],
    )
    validate.add_argument(
        "paths", nargs="+", metavar="FILE.json|-", help="JSON or JSON Lines files, - (stdin)"
    )
    validate.add_argument("-v", "--verbose", action="store_true", help="also report valid records")
    validate.set_defaults(func=cmd_validate)
