"""Expand what a producer was given (files, folders, globs, ``-``, archives, cables.csv) into items.

Each :class:`Item` is one raw input: its bytes, or the :class:`~worker.intake.envelope.IntakeError`
that stopped it (a missing path, an oversize member, an unreadable archive), so that every
rejected input is reported rather than skipped. Inputs are streamed: a file is never read past
``max_bytes + 1``, tar archives are read front to back (``r|*``), cables.csv row by row.
Content checks (empty, binary, encoding) are :func:`~worker.intake.envelope.admit`'s job.

Which reader applies is decided by the file name, also for files found inside folders:
``.tar``, ``.tar.gz``/``.tgz``, ``.tar.bz2``/``.tbz2``, ``.tar.xz``/``.txz``, ``.zip``, and
``.csv`` (the published Cablegate layout). Archives inside archives are not opened. Hidden files
and folders (a name starting with a dot) are skipped in folders and archives alike.
"""

from __future__ import annotations

import csv
import glob
import lzma
import os
import sys
import tarfile
import zipfile
import zlib
from collections.abc import Iterator, Sequence
from dataclasses import dataclass, field
from typing import IO, BinaryIO

from .envelope import IntakeError, ReasonCode, Scalar

STDIN = "-"
STDIN_NAME = "<stdin>"
TAR_SUFFIXES = (".tar", ".tar.gz", ".tgz", ".tar.bz2", ".tbz2", ".tar.xz", ".txz")
CABLEGATE_COLUMNS = (
    "id",
    "date",
    "refid",
    "origin",
    "classification",
    "references",
    "header",
    "body",
)
CSV_FIELD_LIMIT = 64 << 20
"""Per-field limit for cables.csv (csv's default, 128 KiB, is below some real cable bodies).

Rows over ``max_bytes`` but under this limit become oversize items; a field beyond it stops the
file with an ``unreadable`` item (csv cannot resynchronise), bounding the memory one row takes.
"""

_GLOB_CHARS = frozenset("*?[")
_ARCHIVE_ERRORS = (
    OSError,
    EOFError,
    RuntimeError,  # an encrypted zip member
    tarfile.TarError,
    zipfile.BadZipFile,
    zlib.error,
    lzma.LZMAError,
)


@dataclass(frozen=True, slots=True)
class Item:
    """One raw input: ``data`` when it could be read, otherwise the ``error`` that stopped it.

    ``metadata`` is producer metadata for the envelope: ``source_file`` (the item's name) for
    file input, and the published refid, date, origin and classification for a cables.csv row.
    """

    name: str
    data: bytes | None
    error: IntakeError | None = None
    metadata: dict[str, Scalar] = field(default_factory=dict)

    @classmethod
    def failed(cls, name: str, reason_code: ReasonCode, message: str) -> Item:
        """An item that could not be read; the message is prefixed with its name."""
        return cls(name, None, IntakeError(reason_code, f"{name}: {message}"))


def iter_inputs(
    paths: Sequence[str], *, max_bytes: int, stdin: BinaryIO | None = None
) -> Iterator[Item]:
    """Yield one :class:`Item` per input found under ``paths``, in order, streaming.

    A folder is walked recursively in sorted order; a path holding ``*``, ``?`` or ``[`` is a
    glob (``**`` included); ``-`` reads one input from ``stdin`` (default: ``sys.stdin.buffer``).
    """
    for kind, path in _leaves(paths):
        if kind == "stdin":
            stream = stdin if stdin is not None else sys.stdin.buffer
            yield _bounded(STDIN_NAME, stream, max_bytes, {})
        elif kind == "missing":
            yield Item.failed(path, "missing", "no such file, folder or glob match")
        elif kind == "unreadable":
            yield Item.failed(path, "unreadable", "cannot list this folder")
        elif path.lower().endswith(TAR_SUFFIXES):
            yield from _tar_items(path, max_bytes)
        elif path.lower().endswith(".zip"):
            yield from _zip_items(path, max_bytes)
        elif path.lower().endswith(".csv"):
            yield from _csv_items(path, max_bytes)
        else:
            yield _file_item(path, max_bytes)


def count_hint(paths: Sequence[str]) -> int | None:
    """Return how many items :func:`iter_inputs` will yield when that is cheap to know.

    That is when no archive or CSV is among the inputs (their members are only counted by
    reading them); folders are listed, not read. None otherwise.
    """
    count = 0
    for kind, path in _leaves(paths):
        if kind == "file" and _is_container(path):
            return None
        count += 1
    return count


def _is_container(path: str) -> bool:
    return path.lower().endswith((*TAR_SUFFIXES, ".zip", ".csv"))


def _is_hidden(path: str) -> bool:
    return any(part.startswith(".") and part not in {".", ".."} for part in path.split("/"))


def _leaves(paths: Sequence[str]) -> Iterator[tuple[str, str]]:
    """Resolve paths to (kind, path), kind one of file, stdin, missing, unreadable."""
    for path in paths:
        if path == STDIN:
            yield "stdin", path
        elif _GLOB_CHARS.intersection(path):
            matches = sorted(glob.glob(path, recursive=True))
            if not matches:
                yield "missing", path
            for match in matches:
                yield from _walk(match) if os.path.isdir(match) else [("file", match)]
        elif os.path.isdir(path):
            yield from _walk(path)
        elif os.path.lexists(path):
            yield "file", path
        else:
            yield "missing", path


def _walk(folder: str) -> Iterator[tuple[str, str]]:
    """Files under ``folder`` in sorted path order; links to folders are not followed."""
    try:
        with os.scandir(folder) as scan:
            entries = sorted((entry for entry in scan if not entry.name.startswith(".")), key=_name)
    except OSError:
        yield "unreadable", folder
        return
    for entry in entries:
        if entry.is_dir(follow_symlinks=False):
            yield from _walk(entry.path)
        elif not entry.is_dir():
            yield "file", entry.path


def _name(entry: os.DirEntry[str]) -> str:
    return entry.name


def _oversize(name: str, size: int, max_bytes: int) -> Item:
    return Item(
        name,
        None,
        IntakeError("oversize", f"{name}: {size:,} bytes, over the limit of {max_bytes:,} bytes"),
    )


def _bounded(name: str, stream: IO[bytes], max_bytes: int, metadata: dict[str, Scalar]) -> Item:
    data = stream.read(max_bytes + 1)
    if len(data) > max_bytes:
        return Item(
            name, None, IntakeError("oversize", f"{name}: over the limit of {max_bytes:,} bytes")
        )
    return Item(name, data, None, metadata)


def _file_item(path: str, max_bytes: int) -> Item:
    try:
        with open(path, "rb") as stream:
            size = os.fstat(stream.fileno()).st_size
            if size > max_bytes:
                return _oversize(path, size, max_bytes)
            return _bounded(path, stream, max_bytes, {"source_file": path})
    except FileNotFoundError:
        return Item.failed(path, "missing", "no such file (a dangling link?)")
    except OSError as exc:
        return Item.failed(path, "unreadable", exc.strerror or str(exc))


def _tar_items(path: str, max_bytes: int) -> Iterator[Item]:
    try:
        with tarfile.open(path, mode="r|*") as archive:
            for member in archive:
                name = f"{path}:{member.name}"
                if not member.isfile() or _is_hidden(member.name):
                    continue
                if member.size > max_bytes:
                    yield _oversize(name, member.size, max_bytes)
                    continue
                stream = archive.extractfile(member)
                if stream is not None:
                    yield _bounded(name, stream, max_bytes, {"source_file": name})
    except _ARCHIVE_ERRORS as exc:
        yield Item.failed(path, "unreadable", f"not a readable tar archive: {exc}")


def _zip_items(path: str, max_bytes: int) -> Iterator[Item]:
    try:
        with zipfile.ZipFile(path) as archive:
            for info in archive.infolist():
                name = f"{path}:{info.filename}"
                if info.is_dir() or _is_hidden(info.filename):
                    continue
                if info.file_size > max_bytes:
                    yield _oversize(name, info.file_size, max_bytes)
                    continue
                try:
                    with archive.open(info) as stream:
                        yield _bounded(name, stream, max_bytes, {"source_file": name})
                except _ARCHIVE_ERRORS as exc:
                    yield Item.failed(name, "unreadable", f"cannot extract: {exc}")
    except _ARCHIVE_ERRORS as exc:
        yield Item.failed(path, "unreadable", f"not a readable zip archive: {exc}")


def _csv_items(path: str, max_bytes: int) -> Iterator[Item]:
    """Rows of the published cables.csv: no header row, quotes escaped MySQL-style as \\"."""
    csv.field_size_limit(max(csv.field_size_limit(), CSV_FIELD_LIMIT))
    line = 0
    try:
        with open(path, encoding="utf-8", errors="surrogateescape", newline="") as text:
            rows = csv.reader(text, quotechar='"', escapechar="\\", doublequote=True)
            for number, row in enumerate(rows, start=1):
                line = rows.line_num
                if number == 1 and tuple(cell.strip().lower() for cell in row) == CABLEGATE_COLUMNS:
                    continue
                if any(cell.strip() for cell in row):
                    yield _csv_item(path, number, row, max_bytes)
    except (OSError, csv.Error) as exc:
        yield Item.failed(path, "unreadable", f"cables.csv unreadable after line {line}: {exc}")


def _csv_item(path: str, number: int, row: list[str], max_bytes: int) -> Item:
    if len(row) != len(CABLEGATE_COLUMNS):
        return Item.failed(
            f"{path}:row {number}",
            "unreadable",
            f"expected {len(CABLEGATE_COLUMNS)} columns ({', '.join(CABLEGATE_COLUMNS)}), "
            f"got {len(row)}",
        )
    cells = dict(zip(CABLEGATE_COLUMNS, row, strict=True))
    name = f"{path}:{cells['refid'].strip() or f'row {number}'}"
    data = (cells["header"] + "\n\n" + cells["body"]).encode("utf-8", errors="surrogateescape")
    if len(data) > max_bytes:
        return _oversize(name, len(data), max_bytes)
    metadata: dict[str, Scalar] = {"source_file": name}
    metadata.update(
        {key: cells[key].strip() for key in ("refid", "date", "origin", "classification")}
    )
    return Item(name, data, None, metadata)
