"""Locate and load the JSON Schemas (draft 2020-12) that define cable-ingest's documents.

A built wheel carries the schemas inside the package (``worker/schemas/``, put there by hatch's
force-include); a source checkout keeps them in the repository's top-level ``schemas/`` directory,
next to the package. Both places are searched, in that order.
"""

from __future__ import annotations

import functools
import re
from importlib import resources
from pathlib import Path
from typing import Any

import orjson

from worker.errors import ConfigurationError

SCHEMA_NAMES: tuple[str, ...] = ("cable", "envelope", "dead-letter", "notification", "config")
"""Names accepted by :func:`schema_path` and :func:`load_schema`, besides ``sinks/<type>``
(the options of one sink type, ``schemas/sinks/<type>.schema.json``)."""
_SINK_SCHEMA = re.compile(r"sinks/[a-z0-9-]+")


def schema_dirs() -> tuple[Path, ...]:
    """Return the directories searched for schema files, in search order."""
    package_dir = Path(str(resources.files("worker")))
    return (package_dir / "schemas", package_dir.parent / "schemas")


def schema_path(name: str) -> Path:
    """Return the path of schema ``name`` (one of :data:`SCHEMA_NAMES`, or ``sinks/<type>``).

    Raises ConfigurationError when the name is unknown or no searched directory holds the file.
    """
    if name not in SCHEMA_NAMES and not _SINK_SCHEMA.fullmatch(name):
        known = ", ".join(SCHEMA_NAMES)
        raise ConfigurationError(f"unknown schema {name!r}: expected one of {known}")
    filename = f"{name}.schema.json"
    searched = [directory / filename for directory in schema_dirs()]
    for candidate in searched:
        if candidate.is_file():
            return candidate
    places = ", ".join(str(path) for path in searched)
    raise ConfigurationError(f"schema file {filename} not found; searched {places}")


@functools.cache
def load_schema(name: str) -> dict[str, Any]:
    """Return the parsed schema ``name``, read once per process.

    The same dict is returned on every call: treat it as read-only.
    Raises ConfigurationError when the file is missing or is not a JSON object.
    """
    path = schema_path(name)
    try:
        schema = orjson.loads(path.read_bytes())
    except (OSError, orjson.JSONDecodeError) as exc:
        raise ConfigurationError(f"schema file {path} cannot be read as JSON: {exc}") from exc
    if not isinstance(schema, dict):
        kind = type(schema).__name__
        raise ConfigurationError(f"schema file {path} must hold a JSON object, found {kind}")
    return schema
