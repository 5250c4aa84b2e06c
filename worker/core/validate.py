"""Validate documents against their JSON Schemas with compiled jsonschema-rs validators.

Each validator is compiled on first use and kept for the life of the process (so nothing is
compiled at import time, before the worker forks). Format assertions are on: ``date-time`` and
``date`` are checked, not just annotated. Every error is reported, not only the first, each as a
:class:`~worker.errors.SchemaViolation` whose path is a JSON pointer ("/tags/0/kind", "" for the
root). A value too long to quote (a paragraph, the whole text) is described by its size instead,
so that messages can be logged without leaking cable bodies.
"""

from __future__ import annotations

import functools
from collections.abc import Mapping
from typing import Any

import jsonschema_rs
import orjson

from worker.core.schemas import load_schema
from worker.errors import ConfigurationError, SchemaViolation, ValidationError

MAX_QUOTED_CHARS = 80
"""Longest rendering of an offending value quoted in a violation message."""


@functools.cache
def _validator(name: str) -> jsonschema_rs.Validator:
    schema = load_schema(name)
    try:
        return jsonschema_rs.Draft202012Validator(schema, validate_formats=True, offline=True)
    except (ValueError, jsonschema_rs.ReferencingError) as exc:
        raise ConfigurationError(f"schema {name!r} does not compile: {exc}") from exc


def _pointer(path: list[str | int]) -> str:
    return "".join("/" + str(part).replace("~", "~0").replace("/", "~1") for part in path)


def _describe(value: object) -> str:
    if isinstance(value, str):
        return f"<string of {len(value)} characters>"
    if isinstance(value, list):
        return f"<array of {len(value)} items>"
    if isinstance(value, dict):
        return f"<object with {len(value)} properties>"
    return f"<{type(value).__name__}>"


def _message(error: jsonschema_rs.ValidationError) -> str:
    message = error.message
    if len(message) <= MAX_QUOTED_CHARS:
        return message
    instance = error.instance
    try:
        rendered = orjson.dumps(instance).decode()
    except TypeError:
        return message
    if len(rendered) > MAX_QUOTED_CHARS and message.startswith(rendered):
        return _describe(instance) + message[len(rendered) :]
    return message


class _NotJSONError(Exception):
    def __init__(self, path: list[str | int], message: str) -> None:
        super().__init__(message)
        self.violation = SchemaViolation(_pointer(path), message)


def _plain(value: object, path: list[str | int]) -> object:
    if value is None or isinstance(value, str | int | float):
        return value
    if isinstance(value, Mapping):
        plain: dict[str, object] = {}
        for key, item in value.items():
            if not isinstance(key, str):
                kind = type(key).__name__
                raise _NotJSONError(path, f"object keys must be strings, found {kind} {key!r}")
            plain[key] = _plain(item, [*path, key])
        return plain
    if isinstance(value, list | tuple):
        return [_plain(item, [*path, index]) for index, item in enumerate(value)]
    raise _NotJSONError(path, f"expected JSON data, found Python {type(value).__name__}")


def violations(name: str, document: object) -> list[SchemaViolation]:
    """Return every violation of schema ``name`` by ``document``; empty when it is valid.

    ``document`` should be plain JSON data (dicts, lists, str, int, float, bool, None); other
    mappings and sequences are accepted, and any other value is itself reported as a violation.
    """
    validator = _validator(name)
    try:
        errors = list(validator.iter_errors(document))
    except ValueError:
        try:
            errors = list(validator.iter_errors(_plain(document, [])))
        except _NotJSONError as exc:
            return [exc.violation]
    return [SchemaViolation(_pointer(error.instance_path), _message(error)) for error in errors]


def validate(name: str, document: object) -> None:
    """Raise ValidationError listing every violation if ``document`` does not satisfy ``name``."""
    validator = _validator(name)
    try:
        if validator.is_valid(document):
            return
    except ValueError:
        pass  # not plain JSON data: violations() converts it or says where it is not JSON
    found = violations(name, document)
    if found:
        raise ValidationError(name, found)


def validate_record(record: Mapping[str, Any]) -> None:
    """Raise ValidationError("cable", [...]) unless ``record`` is a valid cable record."""
    validate("cable", record)


def validate_envelope(envelope: Mapping[str, Any]) -> None:
    """Raise ValidationError("envelope", [...]) unless ``envelope`` is a valid queue envelope."""
    validate("envelope", envelope)


def validate_dead_letter(dead_letter: Mapping[str, Any]) -> None:
    """Raise ValidationError("dead-letter", [...]) unless ``dead_letter`` is a valid dead letter."""
    validate("dead-letter", dead_letter)
