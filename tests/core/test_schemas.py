"""Tests for the schema files and worker.core.schemas, which locates and loads them."""

from __future__ import annotations

import re
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import pytest
from jsonschema import Draft202012Validator

import worker
from worker.core import schemas
from worker.core.schemas import SCHEMA_NAMES, load_schema, schema_path
from worker.errors import ConfigurationError

DRAFT_2020_12 = "https://json-schema.org/draft/2020-12/schema"
ID_PATTERN = re.compile(
    r"^https://cable-ingest\.example/schemas/(?P<name>[a-z/-]+)/(?P<version>\d+\.\d+\.\d+)\.json$"
)
SINK_SCHEMAS = tuple(
    f"sinks/{path.name.removesuffix('.schema.json')}"
    for path in sorted(
        (Path(__file__).resolve().parents[2] / "schemas" / "sinks").glob("*.schema.json")
    )
)
ALL_SCHEMAS = SCHEMA_NAMES + SINK_SCHEMAS


def _subschemas(schema: Any, pointer: str = "") -> Iterator[tuple[str, dict[str, Any]]]:
    """Yield (pointer, subschema) for every schema object nested in ``schema``."""
    if not isinstance(schema, dict):
        return
    yield pointer, schema
    for keyword in ("properties", "$defs"):
        for key, child in schema.get(keyword, {}).items():
            yield from _subschemas(child, f"{pointer}/{keyword}/{key}")
    for keyword in ("items", "additionalProperties"):
        yield from _subschemas(schema.get(keyword), f"{pointer}/{keyword}")


@pytest.mark.parametrize("name", ALL_SCHEMAS)
def test_schema_is_valid_draft_2020_12(name: str) -> None:
    """Each schema file is itself a valid draft 2020-12 schema."""
    schema = load_schema(name)
    assert schema["$schema"] == DRAFT_2020_12
    Draft202012Validator.check_schema(schema)


@pytest.mark.parametrize("name", ALL_SCHEMAS)
def test_schema_has_versioned_id_title_and_description(name: str) -> None:
    """Each schema has a versioned $id naming it, a title and a description."""
    schema = load_schema(name)
    match = ID_PATTERN.match(schema["$id"])
    assert match is not None, schema["$id"]
    assert match["name"] == name
    assert schema["title"]
    assert schema["description"]


@pytest.mark.parametrize("name", ALL_SCHEMAS)
def test_every_property_is_described(name: str) -> None:
    """Every property and definition, at any depth, carries a description."""
    undescribed = [
        pointer
        for pointer, subschema in _subschemas(load_schema(name))
        if re.search(r"/(properties|\$defs)/[^/]+$", pointer) and not subschema.get("description")
    ]
    assert undescribed == []


@pytest.mark.parametrize("name", ALL_SCHEMAS)
def test_objects_are_closed(name: str) -> None:
    """Every schema that lists properties forbids others and requires only listed ones."""
    for pointer, subschema in _subschemas(load_schema(name)):
        if "properties" in subschema:
            assert subschema.get("additionalProperties") is False, pointer
            assert set(subschema.get("required", [])) <= set(subschema["properties"]), pointer


def test_cable_requires_everything_but_source_file() -> None:
    """The record requires every top-level field except source_file."""
    schema = load_schema("cable")
    assert set(schema["properties"]) - set(schema["required"]) == {"source_file"}


def test_cable_schema_version_matches_id() -> None:
    """The const schema_version is the version in the cable schema's $id."""
    schema = load_schema("cable")
    match = ID_PATTERN.match(schema["$id"])
    assert match is not None
    assert schema["properties"]["schema_version"]["const"] == match["version"]


@pytest.mark.parametrize(
    ("name", "fixture"),
    [
        ("cable", "minimal_record"),
        ("envelope", "minimal_envelope"),
        ("dead-letter", "minimal_dead_letter"),
    ],
)
def test_reference_validator_accepts_minimal_documents(
    name: str, fixture: str, request: pytest.FixtureRequest
) -> None:
    """The reference implementation (python-jsonschema) also accepts the minimal documents."""
    document = request.getfixturevalue(fixture)
    validator = Draft202012Validator(
        load_schema(name), format_checker=Draft202012Validator.FORMAT_CHECKER
    )
    assert list(validator.iter_errors(document)) == []


def test_schema_path_prefers_package_then_repository() -> None:
    """The package's own schemas/ (a built wheel) is searched before the repository's."""
    package_dir = Path(worker.__file__).resolve().parent
    assert [d.resolve() for d in schemas.schema_dirs()] == [
        package_dir / "schemas",
        package_dir.parent / "schemas",
    ]
    assert schema_path("cable").name == "cable.schema.json"


def test_load_schema_is_cached() -> None:
    """Loading a schema twice returns the very same object."""
    assert load_schema("envelope") is load_schema("envelope")


def test_unknown_schema_name_lists_known_names() -> None:
    """An unknown name fails with a ConfigurationError naming the known ones."""
    with pytest.raises(ConfigurationError, match="cable, envelope, dead-letter"):
        schema_path("record")


def test_missing_schema_names_searched_places(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    """A schema found nowhere fails with a ConfigurationError naming every searched path."""
    searched = (tmp_path / "wheel", tmp_path / "checkout")
    monkeypatch.setattr(schemas, "schema_dirs", lambda: searched)
    with pytest.raises(ConfigurationError) as caught:
        schema_path("dead-letter")
    for directory in searched:
        assert str(directory / "dead-letter.schema.json") in str(caught.value)


def test_schema_that_is_not_an_object_is_rejected(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    """A schema file holding JSON other than an object is a ConfigurationError."""
    (tmp_path / "envelope.schema.json").write_text("[]")
    monkeypatch.setattr(schemas, "schema_dirs", lambda: (tmp_path,))
    load_schema.cache_clear()
    try:
        with pytest.raises(ConfigurationError, match="must hold a JSON object"):
            load_schema("envelope")
    finally:
        load_schema.cache_clear()
