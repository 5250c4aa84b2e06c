"""The sinks-and-rules configuration: a TOML file, validated at start-up, read into values.

Without a file (``CABLE_INGEST_CONFIG`` unset) there is one sink, ``storage``; a file that
declares no storage sink gets that one too, so every record is stored. A file is checked
against ``schemas/config.schema.json``, each sink's options against
``schemas/sinks/<type>.schema.json``, and then across keys (a rule naming an unknown sink, a
classification range upside down); every problem is reported with the key it concerns
(``sinks.alerts.options.url: …``). Secrets are resolved when the sinks are built, not here.
"""

from __future__ import annotations

import tomllib
from collections.abc import Mapping
from dataclasses import dataclass, field
from datetime import date, datetime
from pathlib import Path
from typing import Any

from worker.core.validate import validate
from worker.errors import ConfigurationError, ValidationError
from worker.model import CLASSIFICATIONS

STORAGE = "storage"
NOTIFICATION_TYPES = ("webhook", "redis-stream", "email", "mqtt", "file")
DEFAULT_CLEARANCE = "UNCLASSIFIED"


@dataclass(frozen=True, slots=True)
class SinkConfig:
    """One sink: its name, type, clearance and options."""

    name: str
    type: str
    max_classification: str = DEFAULT_CLEARANCE
    include_body: bool = False
    batch_size: int | None = None
    options: Mapping[str, Any] = field(default_factory=dict)
    inline: bool = False  # written by the ingest task itself; its queue takes what fails

    @property
    def notifies(self) -> bool:
        """A notification sink (rules and clearance apply), not a storage sink."""
        return self.type != STORAGE


@dataclass(frozen=True, slots=True)
class Rule:
    """Which cables go to which notification sinks; absent conditions match everything."""

    name: str
    sinks: tuple[str, ...]
    classification_at_least: str | None = None
    classification_at_most: str | None = None
    tags_any: tuple[str, ...] = ()
    tags_all: tuple[str, ...] = ()
    origins: tuple[str, ...] = ()
    date_from: str | None = None
    date_to: str | None = None
    keywords: tuple[str, ...] = ()


@dataclass(frozen=True, slots=True)
class Config:
    """Every sink by name, and the rules in file order."""

    sinks: Mapping[str, SinkConfig]
    rules: tuple[Rule, ...] = ()
    source: str = "<default>"


DEFAULT = Config({STORAGE: SinkConfig(STORAGE, STORAGE, inline=True)})


def _key(path: str) -> str:
    parts = [p.replace("~1", "/").replace("~0", "~") for p in path.split("/") if p]
    return ".".join(parts) or "(top level)"


def _violations(schema: str, document: object, prefix: str) -> list[str]:
    try:
        validate(schema, document)
    except ValidationError as error:
        return [f"{_key(prefix + v.path)}: {v.message}" for v in error.violations]
    return []


def _check(raw: Mapping[str, Any]) -> list[str]:
    problems = _violations("config", raw, "")
    if problems:
        return problems
    sinks: Mapping[str, Any] = raw.get("sinks", {})
    for name, sink in sinks.items():
        if sink["type"] in NOTIFICATION_TYPES:
            options = sink.get("options", {})
            problems += _violations(f"sinks/{sink['type']}", options, f"/sinks/{name}/options")
        elif "max_classification" in sink or "include_body" in sink:
            problems.append(f"sinks.{name}: a storage sink takes every cable; no clearance")
    for index, rule in enumerate(raw.get("rules", [])):
        where = f"rules[{index}] ({rule['name']})"
        for name in rule["sinks"]:
            if name not in sinks:
                problems.append(f"{where}.sinks: no sink named {name!r}")
            elif sinks[name]["type"] == STORAGE:
                problems.append(f"{where}.sinks: {name!r} is a storage sink; it takes every cable")
        low, high = rule.get("classification_at_least"), rule.get("classification_at_most")
        if low and high and CLASSIFICATIONS.index(low) > CLASSIFICATIONS.index(high):
            problems.append(f"{where}: classification_at_least {low} is above at_most {high}")
        if rule.get("date_from", "") > rule.get("date_to", "\uffff"):
            problems.append(f"{where}: date_from is after date_to")
    names = [rule["name"] for rule in raw.get("rules", [])]
    problems += [
        f"rules: the name {n!r} is used twice" for n in sorted(set(names)) if names.count(n) > 1
    ]
    return problems


def _plain_dates(value: Any) -> Any:
    """TOML has dates (``date_from = 2006-01-01``); the schema speaks ISO strings."""
    if isinstance(value, date | datetime):
        return value.isoformat()
    if isinstance(value, Mapping):
        return {key: _plain_dates(item) for key, item in value.items()}
    if isinstance(value, list):
        return [_plain_dates(item) for item in value]
    return value


def parse_config(raw: Mapping[str, Any], source: str = "<config>") -> Config:
    """Check a parsed configuration and turn it into values; ConfigurationError lists problems."""
    raw = _plain_dates(raw)
    problems = _check(raw)
    if problems:
        raise ConfigurationError(f"{source}: " + "; ".join(problems))
    sinks = {
        name: SinkConfig(
            name=name,
            type=table["type"],
            max_classification=table.get("max_classification", DEFAULT_CLEARANCE),
            include_body=table.get("include_body", False),
            batch_size=table.get("batch_size"),
            options=dict(table.get("options", {})),
            inline=table.get("inline", table["type"] == STORAGE),
        )
        for name, table in raw.get("sinks", {}).items()
    }
    if not any(sink.type == STORAGE for sink in sinks.values()):
        sinks = {**DEFAULT.sinks, **sinks}  # records are always stored: nothing is lost
    rules = tuple(
        Rule(
            name=table["name"],
            sinks=tuple(table["sinks"]),
            classification_at_least=table.get("classification_at_least"),
            classification_at_most=table.get("classification_at_most"),
            tags_any=tuple(table.get("tags_any", ())),
            tags_all=tuple(table.get("tags_all", ())),
            origins=tuple(table.get("origins", ())),
            date_from=table.get("date_from"),
            date_to=table.get("date_to"),
            keywords=tuple(table.get("keywords", ())),
        )
        for table in raw.get("rules", [])
    )
    return Config(sinks, rules, source)


def storage_sinks(config: Config) -> list[str]:
    """Names of the storage sinks (there is at least one)."""
    return [sink.name for sink in config.sinks.values() if not sink.notifies]


def load_config(path: Path | None) -> Config:
    """The configuration in ``path`` (TOML), or the default (storage only) when None."""
    if path is None:
        return DEFAULT
    try:
        raw = tomllib.loads(path.read_text(encoding="utf-8"))
    except OSError as error:
        raise ConfigurationError(
            f"cannot read the configuration {path}: {error.strerror or error}"
        ) from None
    except (tomllib.TOMLDecodeError, UnicodeDecodeError) as error:
        raise ConfigurationError(f"{path}: not valid TOML: {error}") from None
    return parse_config(raw, str(path))
