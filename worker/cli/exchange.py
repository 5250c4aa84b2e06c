"""``export`` and ``import``: the stored cables as JSON Lines, and back into an empty database.

Neither needs the broker. ``export`` opens the database read-only (a SQLite file that is not
there is an error, never created) and reads it in one snapshot; ``import`` migrates the target,
then restores the whole file in one transaction (see :mod:`worker.storage.restore`). A file is
compressed with ``--compress`` or by its suffix (``.zst``, ``.gz``); ``import`` recognises the
compression by the first bytes, so ``-`` (stdin) works too. ``export -o FILE`` writes beside
FILE and renames it into place when complete: a failed export leaves no partial FILE behind.

Exit codes: 0 done; 1 the database or the file is not fit (one line ``cable-ingest: …``);
2 bad arguments.
"""

from __future__ import annotations

import argparse
import gzip
import io
import os
import sys
import zlib
from collections.abc import Callable, Iterable, Iterator
from contextlib import contextmanager
from pathlib import Path
from typing import TYPE_CHECKING, BinaryIO

import zstandard

from worker.cli.dependencies import wait_for_database, wait_for_schema
from worker.cli.help import Subcommands, command
from worker.errors import ExchangeError
from worker.settings import Settings

if TYPE_CHECKING:
    from worker.storage.exchange import Counts

CODECS = ("zstd", "gzip")
ZSTD_LEVEL = 3
GZIP_LEVEL = 6  # zlib's default; 9 (GzipFile's) takes 3x the time for 2% less
_SUFFIXES = {".zst": "zstd", ".gz": "gzip"}
_MAGIC = {b"\x28\xb5\x2f\xfd": "zstd", b"\x1f\x8b": "gzip"}
_DAMAGED = (zstandard.ZstdError, OSError, EOFError, zlib.error)


def compression(requested: str | None, output: str) -> str | None:
    """The codec for ``output``: ``--compress``, else the file's suffix; None: plain text."""
    suffix = Path(output).suffix if output != "-" else ""
    inferred = _SUFFIXES.get(suffix)
    if requested and inferred and requested != inferred:
        raise ExchangeError(f"--compress {requested}, but {output} ends in {suffix}")
    return requested or inferred


@contextmanager
def _destination(output: str) -> Iterator[BinaryIO]:
    if output == "-":
        try:
            yield sys.stdout.buffer
            sys.stdout.buffer.flush()
        except BrokenPipeError:  # `| head`: what the reader got has no end line
            os.dup2(os.open(os.devnull, os.O_WRONLY), sys.stdout.fileno())
            raise ExchangeError("stdout was closed before the export's end line") from None
        return
    path = Path(output)
    partial = path.with_name(f".{path.name}.partial")
    try:
        with partial.open("wb") as handle:
            yield handle
        partial.replace(path)
    except OSError as error:
        partial.unlink(missing_ok=True)
        raise ExchangeError(f"cannot write {output}: {error.strerror or error}") from None
    except BaseException:
        partial.unlink(missing_ok=True)
        raise


@contextmanager
def writer(output: str, codec: str | None) -> Iterator[Callable[[bytes], object]]:
    """A function writing bytes to ``output`` (a path or ``-``), compressed with ``codec``."""
    with _destination(output) as raw:
        if codec == "zstd":
            with zstandard.ZstdCompressor(level=ZSTD_LEVEL).stream_writer(
                raw, closefd=False
            ) as stream:
                yield stream.write
        elif codec == "gzip":
            with gzip.GzipFile(
                filename="", mode="wb", fileobj=raw, compresslevel=GZIP_LEVEL, mtime=0
            ) as stream:
                yield stream.write  # mtime 0 and no name: the same export, the same bytes
        else:
            yield raw.write


def _lines(stream: Iterable[bytes], source: str, codec: str) -> Iterator[bytes]:
    count = 0
    try:
        for line in stream:
            count += 1
            yield line
    except _DAMAGED as error:
        raise ExchangeError(
            f"{source}: the {codec} data is damaged after line {count}: {error}"
        ) from None


@contextmanager
def reader(source: str) -> Iterator[Iterator[bytes]]:
    """The lines of ``source`` (a path or ``-``), decompressed as its first bytes say."""
    try:
        raw = sys.stdin.buffer if source == "-" else Path(source).open("rb")  # noqa: SIM115
    except OSError as error:
        raise ExchangeError(f"cannot read {source}: {error.strerror or error}") from None
    try:
        head = raw.peek(4)[:4] if isinstance(raw, io.BufferedReader) else b""
        codec = next((name for magic, name in _MAGIC.items() if head.startswith(magic)), None)
        stream: Iterable[bytes] = raw
        if codec == "zstd":
            decompressing = zstandard.ZstdDecompressor().stream_reader(
                raw, read_across_frames=True, closefd=False
            )
            stream = io.BufferedReader(decompressing)
        elif codec == "gzip":
            stream = gzip.GzipFile(fileobj=raw, mode="rb")
        yield _lines(stream, source, codec or "plain")
    finally:
        if raw is not sys.stdin.buffer:
            raw.close()


def _summary(counts: Counts) -> str:
    return (
        f"{counts.cables:,} cables ({counts.revisions:,} revisions), {counts.originals:,}"
        f" originals and {counts.arrivals:,} arrivals"
    )


def cmd_export(args: argparse.Namespace) -> int:
    """Write every stored revision (with --originals, --provenance) as JSON Lines."""
    from worker.storage.engine import redact_url
    from worker.storage.exchange import export_database

    settings = Settings.from_env()
    codec = compression(args.compress, args.output)
    wait_for_schema(settings)  # read-only: what it finds there is export_database's to judge
    with writer(args.output, codec) as write:
        counts = export_database(
            settings.database_url, write, originals=args.originals, provenance=args.provenance
        )
    where = "stdout" if args.output == "-" else args.output
    packed = f", {codec}" if codec else ""
    print(
        f"exported {_summary(counts)} from {redact_url(settings.database_url)} to {where}{packed}",
        file=sys.stderr,
    )
    return 0


def cmd_import(args: argparse.Namespace) -> int:
    """Restore an export into an empty database, all or nothing."""
    from worker.storage.engine import redact_url
    from worker.storage.restore import import_database

    settings = Settings.from_env()
    with reader(args.file) as lines:
        wait_for_database(settings)
        counts = import_database(settings.database_url, lines)
    print(
        f"imported {_summary(counts)} into {redact_url(settings.database_url)}",
        file=sys.stderr,
    )
    return 0


def register(sub: Subcommands[argparse.ArgumentParser]) -> None:
    """Add ``export`` and ``import``."""
    export = command(
        sub,
        "export",
        summary="write the stored cables and every revision as JSON Lines (read-only)",
        description="Write every stored revision of every cable, optionally with the originals\n"
        "and the arrivals, as JSON Lines: a header line, then revisions by reference id and\n"
        "revision, originals by sha256, arrivals by message id, and an end line with counts.\n"
        "The database is read in one snapshot and never written.",
        examples=[
            "cable-ingest export -o cables.jsonl.zst --originals --provenance",
            "cable-ingest export | jq -c 'select(.type == \"revision\")' | head",
        ],
    )
    export.add_argument(
        "-o", "--output", default="-", metavar="FILE",
        help="where to write (- is stdout); .zst or .gz compresses",
    )  # fmt: skip
    export.add_argument(
        "--originals", action="store_true", help="include the original texts (sha256 checked)"
    )
    export.add_argument(
        "--provenance", action="store_true", help="include every arrival (provenance rows)"
    )
    export.add_argument(
        "--compress", choices=CODECS, help="compress the output (default: by FILE's suffix)"
    )
    export.set_defaults(func=cmd_export, command_name="export")

    restore = command(
        sub,
        "import",
        summary="restore an export into an empty database (all or nothing)",
        description="Restore a file written by export (plain, .zst or .gz) into an empty\n"
        "database: migrated first, then one transaction; nothing is kept if any line fails.",
        examples=[
            "CABLE_INGEST_DATABASE_URL=postgresql+psycopg://cables@db/cables \\\n"
            "    cable-ingest import cables.jsonl.zst",
            "zstdcat cables.jsonl.zst | cable-ingest import -",
        ],
    )
    restore.add_argument("file", metavar="FILE", help="an export, or - for stdin")
    restore.set_defaults(func=cmd_import, command_name="import")
