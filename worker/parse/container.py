"""The cable inside what carries it: a JSON document, a CSV row, an e-mail quote.

Feeds hand over cables in whatever their exporter wrote: ``{"id": …, "content": "<cable>"}``,
a row of the Cablegate CSV (id, date, reference id, origin, classification, references,
header, content: the last two are the cable), or a forwarded e-mail with ``> `` before every
line. :func:`unwrap` returns the cable text itself; any other text comes back unchanged.
"""

from __future__ import annotations

import csv
import io
import re
from typing import Any

import orjson

# Keys under which exporters put the cable text, best first.
_TEXT_KEYS = ("content", "text", "raw", "body", "cable", "message", "document")
_MIN_CABLE = 40  # characters: shorter strings are metadata, not the cable
_MAX_DEPTH = 8
_FIRST_CHARACTER = re.compile(r"\s*(\S)")
_QUOTE = re.compile(r"^[ \t]*(?:>[ \t]?)+", re.M)
_REFERENCE_ID = re.compile(r"\d{2}[A-Z][A-Z-]*\d+")


def unwrap(text: str) -> str:
    """The cable text inside ``text``'s container, or ``text`` when it has none."""
    first = _FIRST_CHARACTER.match(text)
    start = first[1] if first else ""
    if start in ("{", "["):
        return _from_json(text)
    if start == '"':
        return _from_csv(text)
    if start == ">":
        return _from_quote(text)
    return text


def _from_json(text: str) -> str:
    try:
        data = orjson.loads(text)
    except orjson.JSONDecodeError:
        return text
    found = _json_text(data, 0)
    return found if found is not None else text


def _json_text(value: Any, depth: int) -> str | None:
    """The cable in a JSON value: ``header`` + ``content``, a known key, else the longest
    string that could be one (with line breaks and a few dozen characters at least)."""
    if depth > _MAX_DEPTH:
        return None
    if isinstance(value, str):
        return value if len(value) >= _MIN_CABLE and "\n" in value else None
    if isinstance(value, dict):
        return _object_text(value, depth)
    items = value if isinstance(value, list) else []
    found = [t for item in items if (t := _json_text(item, depth + 1)) is not None]
    return max(found, key=len) if found else None


def _object_text(value: dict[str, Any], depth: int) -> str | None:
    lowered = {str(k).lower(): v for k, v in value.items()}
    header, content = lowered.get("header"), lowered.get("content")
    if isinstance(header, str) and isinstance(content, str):
        return f"{header}\n\n{content}"
    for key in _TEXT_KEYS:
        if isinstance(found := lowered.get(key), str) and len(found) >= _MIN_CABLE:
            return found
    return _json_text(list(value.values()), depth)


def _from_csv(text: str) -> str:
    """A quoted CSV row: the Cablegate CSV's header and content, or else the fields that
    hold text (several lines, or a few dozen characters), in order."""
    first_line = text.lstrip().partition("\n")[0]
    if '","' not in first_line:
        return text
    try:
        row = next(csv.reader(io.StringIO(text.strip())))
    except (csv.Error, StopIteration):
        return text
    if len(row) == 8 and _REFERENCE_ID.fullmatch(row[2].strip()):  # the Cablegate layout
        return f"{row[6]}\n\n{row[7]}"
    parts = [field for field in row if "\n" in field or len(field) >= _MIN_CABLE]
    return "\n\n".join(parts) if parts else text


def _from_quote(text: str) -> str:
    """Lines quoted with ``>`` (once or more): the prefix goes when most lines carry it."""
    lines = [line for line in text.split("\n") if line.strip()]
    quoted = sum(1 for line in lines if line.lstrip().startswith(">"))
    if quoted < 0.8 * len(lines):
        return text
    return _QUOTE.sub("", text)
