"""What a POST brought, by media type, as inputs for the door (the same door as ``enqueue``).

- ``text/plain``: the body is one cable;
- ``application/x-ndjson``: one ``{"text", "source"?, "metadata"?}`` object per line;
- ``multipart/form-data``: every file part is a cable, or an archive (tar, zip) of cables,
  opened by :mod:`worker.intake.sources` with its per-member bounds.

Request-level faults raise :class:`Problem`: 400 (a line that is not JSON), 422 (an object that
is not an entry), 403 (a source that is not the token's feed), 413 (too many inputs, or archives
that unpack to too much). Faults of one input (empty, binary, oversize, undecodable) are that
input's ``error``, reported in its entry. File names are labels only: the name a client gives
is reduced to its last path component, and nothing is ever written under it.
"""

from __future__ import annotations

import math
import re
import tempfile
from collections.abc import Iterator, Mapping
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

import msgspec
import orjson
from starlette.datastructures import UploadFile
from starlette.formparsers import MultiPartException, MultiPartParser

from worker.http.body import BoundedBody, too_large
from worker.http.problems import Problem
from worker.intake.envelope import IntakeError, Scalar
from worker.intake.sources import TAR_SUFFIXES, Item, iter_inputs
from worker.settings import Settings

MEDIA_TYPES = ("text/plain", "application/x-ndjson", "multipart/form-data")
ARCHIVE_SUFFIXES = (*TAR_SUFFIXES, ".zip")
_UNSAFE = re.compile(r"[\x00-\x1f\x7f]")
_COPY_CHUNK = 1 << 20


@dataclass(frozen=True, slots=True)
class Input:
    """One input: its bytes or the error that stopped it, the feed (source) it is stamped
    with, producer metadata, and a name when it came as a file."""

    data: bytes | str | None  # str: text an NDJSON entry carried
    source: str
    name: str | None = None
    error: IntakeError | None = None
    metadata: dict[str, Scalar] = field(default_factory=dict)


def media_type(content_type: str | None) -> str:
    """The media type of a Content-Type header, lower case, without parameters; 415 if unknown."""
    kind = (content_type or "").partition(";")[0].strip().lower()
    if kind not in MEDIA_TYPES:
        shown = kind or "none"
        raise Problem(
            415,
            "unsupported_media_type",
            f"expected Content-Type {', '.join(MEDIA_TYPES)}; got {shown}",
            headers={"Accept-Post": ", ".join(MEDIA_TYPES)},
        )
    return kind


def safe_name(filename: str | None, index: int) -> str:
    """A label for an uploaded file: its last path component, without control characters or
    leading dots ("../../etc/passwd" is "passwd"); ``upload-N`` when nothing is left."""
    last = re.split(r"[\\/]", filename or "")[-1]
    cleaned = _UNSAFE.sub("", last).lstrip(". ")[:200]
    return cleaned or f"upload-{index}"


def claimed_source(value: object, feed: str, line: int) -> str:
    """The source an NDJSON entry may carry: its feed's name, or a sub-source of it
    (``feed/part``); 403 ``foreign_source`` for any other feed's name."""
    if value is None:
        return feed
    if not isinstance(value, str):
        raise Problem(422, "invalid_entry", f"line {line}: source must be a string")
    if _owned(value, feed):
        return value
    raise Problem(
        403,
        "foreign_source",
        f"line {line}: source {value!r} is not this token's feed {feed!r} (or {feed}/…)",
    )


def _owned(source: str, feed: str) -> bool:
    return source == feed or (source.startswith(feed + "/") and len(source) > len(feed) + 1)


def flat_metadata(value: object, line: int) -> dict[str, Scalar]:
    """Producer metadata: an object of strings, finite numbers, booleans and nulls; 422 otherwise."""
    if value is None:
        return {}
    if not isinstance(value, Mapping):
        raise Problem(422, "invalid_entry", f"line {line}: metadata must be an object")
    for key, item in value.items():
        scalar = item is None or isinstance(item, str | int | float | bool)
        if not scalar or (isinstance(item, float) and not math.isfinite(item)):
            raise Problem(422, "invalid_entry", f"line {line}: metadata[{key!r}] must be a scalar")
    return dict(value)


class _Entry(msgspec.Struct, forbid_unknown_fields=True):
    """An NDJSON line as a feed writes it."""

    text: str
    source: str | None = None
    metadata: dict[str, Scalar] | None = None  # JSON has no NaN; msgspec refuses 1e400


_ENTRIES = msgspec.json.Decoder(_Entry)


def ndjson_inputs(body: bytes, feed: str, max_inputs: int) -> list[Input]:
    """One input per non-blank line of an NDJSON body; its text as JSON gave it.

    A body of well-formed entries of the token's feed is decoded and checked in one call
    (msgspec: ~15% less time than line by line with orjson, and this is the only part of
    a batch's cost a Python producer does not pay); any other body is read again line by
    line (:func:`_read_lines`), which names the first faulty line and its fault."""
    try:
        entries = _ENTRIES.decode_lines(body)
    except msgspec.MsgspecError:
        return _read_lines(body, feed, max_inputs)
    if len(entries) > max_inputs:
        raise too_many(max_inputs)
    inputs: list[Input] = []
    for entry in entries:
        source = feed if entry.source is None else entry.source
        if not _owned(source, feed):
            return _read_lines(body, feed, max_inputs)
        inputs.append(Input(entry.text, source, metadata=entry.metadata or {}))
    return inputs


def _read_lines(body: bytes, feed: str, max_inputs: int) -> list[Input]:
    """:func:`ndjson_inputs` line by line: a Problem for the first faulty line."""
    inputs: list[Input] = []
    for number, line in enumerate(body.split(b"\n"), start=1):
        if not line.strip():
            continue
        if len(inputs) == max_inputs:
            raise too_many(max_inputs)
        try:
            entry: Any = orjson.loads(line)
        except orjson.JSONDecodeError as error:
            raise Problem(400, "undecodable", f"line {number} is not JSON: {error}") from None
        if not isinstance(entry, dict) or not isinstance(entry.get("text"), str):
            raise Problem(
                422, "invalid_entry", f'line {number}: expected an object with a string "text"'
            )
        unknown = sorted(set(entry).difference({"text", "source", "metadata"}))
        if unknown:
            raise Problem(422, "invalid_entry", f"line {number}: unknown keys {unknown}")
        source = claimed_source(entry.get("source"), feed, number)
        metadata = flat_metadata(entry.get("metadata"), number)
        inputs.append(Input(entry["text"], source, metadata=metadata))
    return inputs


def too_many(limit: int) -> Problem:
    """413 ``too_many_inputs``."""
    return Problem(413, "too_many_inputs", f"more than {limit:,} inputs in one request")


async def multipart_files(
    body: BoundedBody, headers: Mapping[str, str], settings: Settings
) -> list[UploadFile]:
    """The file parts of a multipart body (spooled to disk past 1 MiB each); 400 when the body
    is not valid multipart, 422 for a part that is not a file."""
    parser = MultiPartParser(
        headers,  # type: ignore[arg-type]  # any mapping of str does
        body.chunks(),
        max_files=settings.http_max_inputs,
        max_fields=settings.http_max_inputs,
        max_part_size=settings.max_input_bytes,
    )
    try:
        form = await parser.parse()
    except MultiPartException as error:
        raise Problem(400, "undecodable", f"not a valid multipart body: {error.message}") from None
    files: list[UploadFile] = []
    for key, value in form.multi_items():
        if not isinstance(value, UploadFile):
            await form.close()
            raise Problem(422, "invalid_entry", f"form field {key!r} is not a file")
        files.append(value)
    return files


def expand_files(files: list[UploadFile], feed: str, settings: Settings) -> list[Input]:
    """Inputs of uploaded files (blocking: archives are unpacked here, within the request's
    bounds on inputs and unpacked bytes)."""
    inputs: list[Input] = []
    expanded = 0
    for index, upload in enumerate(files):
        name = safe_name(upload.filename, index)
        for item in _file_items(upload, name, settings):
            expanded += len(item.data or b"")
            if expanded > settings.http_max_expanded_bytes:
                raise too_large(settings.http_max_expanded_bytes, "the unpacked archives")
            if len(inputs) == settings.http_max_inputs:
                raise too_many(settings.http_max_inputs)
            inputs.append(item_input(item, feed))
    return inputs


def item_input(item: Item, feed: str) -> Input:
    """An :class:`~worker.intake.sources.Item` as an input of ``feed``."""
    return Input(item.data, feed, item.name, item.error, dict(item.metadata))


def _file_items(upload: UploadFile, name: str, settings: Settings) -> Iterator[Item]:
    upload.file.seek(0)
    if not name.lower().endswith(ARCHIVE_SUFFIXES):
        data = upload.file.read(settings.max_input_bytes + 1)
        if len(data) > settings.max_input_bytes:
            limit = settings.max_input_bytes
            yield Item(name, None, IntakeError("oversize", f"{name}: over {limit:,} bytes"))
            return
        yield Item(name, data, None, {"source_file": name})
        return
    with tempfile.TemporaryDirectory(prefix="cable-ingest-upload-") as folder:
        path = Path(folder) / name
        with path.open("wb") as copy:
            while chunk := upload.file.read(_COPY_CHUNK):
                copy.write(chunk)
        prefix = str(path)
        for item in iter_inputs([prefix], max_bytes=settings.max_input_bytes):
            label = name + item.name.removeprefix(prefix)
            metadata = {**item.metadata, "source_file": label} if item.metadata else {}
            error: IntakeError | None = item.error
            if error is not None:
                error = IntakeError(error.reason_code, str(error).replace(prefix, name))
            yield Item(label, item.data, error, metadata)
