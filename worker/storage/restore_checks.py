"""The checks an import makes on each line of an export before anything of it is written: a JSON
object, the fields its type has (no more, no fewer) with their JSON types, timestamps in the one
form exports write, and the export's order (:class:`Order`). Every error names the line."""

from __future__ import annotations

import re
from dataclasses import dataclass
from datetime import datetime
from typing import Any

import orjson

from worker.errors import ExchangeError

SECTIONS = ("revision", "original", "arrival", "end")
"""The line types after the header, in the order an export lists them."""

KEYS = {
    "revision": frozenset(
        {"type", "reference_id", "revision", "current", "content_hash", "original_sha256"}
        | {"parser_version", "stored_at", "record"}
    ),
    "original": frozenset({"type", "sha256", "size", "stored_at", "text"}),
    "arrival": frozenset(
        {"type", "message_id", "reference_id", "revision", "outcome", "source", "metadata"}
        | {"received_at", "stored_at", "sha256"}
    ),
    "end": frozenset({"type", "counts", "sha256"}),
}
_STAMP = re.compile(r"\d{4}-\d{2}-\d{2}T\d{2}:\d{2}:\d{2}\.\d{6}Z")
_SHA256 = re.compile(r"[0-9a-f]{64}")
_JSON_TYPES = {str: "a string", int: "an integer", bool: "true or false", dict: "an object"}


@dataclass(frozen=True, slots=True)
class Line:
    """One line of an export: its number (from 1), its bytes and the JSON object they hold."""

    number: int
    raw: bytes
    document: dict[str, Any]

    @classmethod
    def read(cls, number: int, raw: bytes) -> Line:
        """Parse line ``number``; ExchangeError when it is not one JSON object."""
        try:
            document = orjson.loads(raw)
        except orjson.JSONDecodeError as error:
            raise ExchangeError(f"line {number}: not JSON ({error})") from None
        if not isinstance(document, dict):
            kind = type(document).__name__
            raise ExchangeError(f"line {number}: a JSON {kind} where an object was expected")
        return cls(number, raw, document)


def expect_keys(line: Line, kind: str) -> None:
    """ExchangeError unless the line has exactly the fields of a ``kind`` line."""
    keys = set(line.document)
    missing, extra = sorted(KEYS[kind] - keys), sorted(keys - KEYS[kind])
    parts = [f"without {', '.join(missing)}"] if missing else []
    parts += [f"with unknown {', '.join(extra)}"] if extra else []
    if parts:
        raise ExchangeError(f"line {line.number}: {kind} line {' and '.join(parts)}")


def field(line: Line, name: str, kind: Any, within: dict[str, Any] | None = None) -> Any:
    """The value of field ``name`` (of ``within``, default the line), which must be of ``kind``:
    str, int, bool or dict, or one of them ``| None``."""
    document = line.document if within is None else within
    if name not in document:
        raise ExchangeError(f"line {line.number}: no field {name}")
    value = document[name]
    wanted = kind.__args__ if hasattr(kind, "__args__") else (kind,)
    if type(value) not in wanted:  # type(), not isinstance(): true is not an integer here
        expected = " or ".join(_JSON_TYPES.get(t, "null") for t in wanted)
        shown = orjson.dumps(value).decode()
        shown = shown if len(shown) <= 40 else shown[:39] + "…"
        raise ExchangeError(f"line {line.number}: {name} is {shown}, expected {expected}")
    return value


def sha256_field(line: Line, name: str, *, nullable: bool = False) -> str | None:
    """A field holding a sha256 in lowercase hex (or null when ``nullable``)."""
    value: str | None = field(line, name, str | None if nullable else str)
    if value is not None and not _SHA256.fullmatch(value):
        raise ExchangeError(f"line {line.number}: {name} {value!r} is not a sha256 in hex")
    return value


def timestamp(line: Line, name: str, *, nullable: bool = False) -> datetime | None:
    """A field holding a timestamp as exports write it (``2026-12-02T01:06:27.000000Z``)."""
    value: str | None = field(line, name, str | None if nullable else str)
    if value is None:
        return None
    try:
        if not _STAMP.fullmatch(value):
            raise ValueError(value)
        return datetime.fromisoformat(value)  # aware: "Z" reads as UTC
    except ValueError:
        raise ExchangeError(
            f"line {line.number}: {name} {value!r} is not a timestamp as exports write them"
            " (2026-12-02T01:06:27.000000Z)"
        ) from None


class Order:
    """The export's order: revisions by reference id then revision, each cable ending with its
    current revision; then originals by sha256; then arrivals by message id; then the end."""

    def __init__(self, includes: dict[str, bool]) -> None:
        self._allowed = {
            "revision": True,
            "original": includes["originals"],
            "arrival": includes["provenance"],
            "end": True,
        }
        self._section = 0
        self._last: Any = None
        self._open: str | None = None  # a cable whose current revision has not come yet

    def check(self, line: Line) -> str:
        """The line's type, when a line of that type may come here."""
        kind = line.document.get("type")
        if kind not in SECTIONS:
            raise ExchangeError(f"line {line.number}: unknown line type {kind!r}")
        if not self._allowed[kind]:
            what = "originals" if kind == "original" else "provenance"
            raise ExchangeError(f"line {line.number}: a {kind} line, but the header says no {what}")
        index = SECTIONS.index(kind)
        if index < self._section:
            raise ExchangeError(
                f"line {line.number}: a {kind} line after the {SECTIONS[self._section]} lines;"
                " an export lists revisions, then originals, then arrivals"
            )
        if index > self._section:
            self._close(line)
            self._section, self._last = index, None
        return str(kind)

    def _close(self, line: Line) -> None:
        if self._open is not None:
            raise ExchangeError(
                f"line {line.number}: cable {self._open} ended without its current revision"
            )

    def revision(self, line: Line, reference_id: str, revision: int, current: bool) -> None:
        """Check the place of a revision line."""
        key = (reference_id, revision)
        if self._last is not None and key <= self._last:
            raise ExchangeError(
                f"line {line.number}: {reference_id} revision {revision} is out of order or"
                f" repeated (after {self._last[0]} revision {self._last[1]})"
            )
        if self._open not in (None, reference_id):
            self._close(line)
        if self._last is not None and self._last[0] == reference_id and self._open is None:
            raise ExchangeError(
                f"line {line.number}: {reference_id} revision {revision} follows its current one"
            )
        self._open = None if current else reference_id
        self._last = key

    def key(self, line: Line, key: str) -> None:
        """Check the place of an original (by sha256) or arrival (by message id) line."""
        if self._last is not None and key <= self._last:
            raise ExchangeError(
                f"line {line.number}: {key} is out of order or repeated (after {self._last})"
            )
        self._last = key
