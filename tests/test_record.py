"""The record's types (worker/record.py) and its JSON Schema say the same thing, field by field."""

from __future__ import annotations

import types
import typing
from typing import Any, Literal, NotRequired, Union, get_args, get_origin, get_type_hints

import pytest

from worker.core.schemas import load_schema
from worker.record import CableRecord

SCHEMA = load_schema("cable")


def _resolve(node: dict[str, Any]) -> dict[str, Any]:
    """Follow a ``$ref`` into ``$defs``."""
    ref = node.get("$ref")
    if isinstance(ref, str):
        return _resolve(SCHEMA["$defs"][ref.rsplit("/", 1)[-1]])
    return node


def _types(node: dict[str, Any]) -> set[str]:
    kind = node.get("type", [])
    return {kind} if isinstance(kind, str) else set(kind)


def _strip(annotation: Any) -> tuple[Any, bool]:
    """The annotation without NotRequired and None, and whether it allowed None."""
    if get_origin(annotation) is NotRequired:
        annotation = get_args(annotation)[0]
    if get_origin(annotation) in (Union, types.UnionType):
        members = [a for a in get_args(annotation) if a is not type(None)]
        nullable = len(members) < len(get_args(annotation))
        return (members[0] if len(members) == 1 else Union[tuple(members)]), nullable  # noqa: UP007
    return annotation, False


def _compare(annotation: Any, node: dict[str, Any], where: str, problems: list[str]) -> None:
    node = _resolve(node)
    bare, nullable = _strip(annotation)
    if nullable != ("null" in _types(node)):
        problems.append(f"{where}: None allowed in the types {nullable}, in the schema {not nullable}")
    if get_origin(bare) is Literal:
        wanted = [v for v in node.get("enum", []) if v is not None]
        if sorted(get_args(bare)) != sorted(wanted):
            problems.append(f"{where}: Literal{sorted(get_args(bare))} vs enum {sorted(wanted)}")
        return
    if typing.is_typeddict(bare):
        _compare_object(bare, node, where, problems)
        return
    if get_origin(bare) is list:
        if "array" not in _types(node):
            problems.append(f"{where}: a list in the types, {node.get('type')} in the schema")
            return
        _compare(get_args(bare)[0], node["items"], f"{where}[]", problems)
        return
    expected = {str: "string", int: "integer", bool: "boolean", float: "number"}.get(bare)
    if expected is None or expected not in _types(node):
        problems.append(f"{where}: {bare!r} in the types, {node.get('type')} in the schema")


def _compare_object(kind: Any, node: dict[str, Any], where: str, problems: list[str]) -> None:
    hints = get_type_hints(kind, include_extras=True)
    properties: dict[str, Any] = node.get("properties", {})
    if set(hints) != set(properties):
        problems.append(
            f"{where}: only in the types {sorted(set(hints) - set(properties))},"
            f" only in the schema {sorted(set(properties) - set(hints))}"
        )
    required = set(node.get("required", []))
    if set(kind.__required_keys__) != required:
        problems.append(
            f"{where}: required in the types {sorted(kind.__required_keys__)},"
            f" in the schema {sorted(required)}"
        )
    for name in sorted(set(hints) & set(properties)):
        _compare(hints[name], properties[name], f"{where}.{name}", problems)


def test_the_record_types_and_the_schema_agree() -> None:
    """Every field of CableRecord and of its nested types is in the schema and back, with the
    same requiredness, nullability, item types and enumerations."""
    problems: list[str] = []
    _compare_object(CableRecord, SCHEMA, "record", problems)
    assert problems == []


def test_the_comparison_catches_a_drift() -> None:
    """A schema that differs from the types in one place is reported (the check can fail)."""
    drifted = {**SCHEMA, "properties": {**SCHEMA["properties"], "extra": {"type": "string"}}}
    problems: list[str] = []
    _compare_object(CableRecord, drifted, "record", problems)
    assert problems == ["record: only in the types [], only in the schema ['extra']"]


@pytest.mark.parametrize("field", ["classified_by", "downgrade", "section", "routing"])
def test_nullable_objects_are_checked_inside(field: str) -> None:
    """A nested object whose schema loses a property is reported by its path."""
    node = dict(_resolve(SCHEMA["properties"][field]))
    first = next(iter(node["properties"]))
    node["properties"] = {k: v for k, v in node["properties"].items() if k != first}
    node["required"] = [k for k in node.get("required", []) if k != first]
    problems: list[str] = []
    _compare(get_type_hints(CableRecord, include_extras=True)[field], node, field, problems)
    assert problems
    assert all(p.startswith(field) for p in problems)
