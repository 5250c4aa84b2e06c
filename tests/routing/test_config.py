"""The sinks-and-rules file: what it accepts, and the key named for what it refuses."""

from __future__ import annotations

from pathlib import Path

import pytest

from worker.errors import ConfigurationError
from worker.routing.config import DEFAULT, load_config, parse_config, storage_sinks

GOOD = """
[sinks.archive]
type = "storage"

[sinks.drop]
type = "file"
max_classification = "CONFIDENTIAL"
include_body = true
options = { directory = "/tmp/cable-notifications" }

[[rules]]
name = "iran"
sinks = ["drop"]
classification_at_least = "CONFIDENTIAL"
tags_any = ["IR"]
date_from = 2006-01-01
date_to = "2010-12-31"
keywords = ["nuclear", "enrichment plant"]
"""


def test_no_file_means_storage_only() -> None:
    """Without a file the only sink is storage and there are no rules."""
    assert load_config(None) is DEFAULT
    assert storage_sinks(DEFAULT) == ["storage"]
    assert DEFAULT.rules == ()


def test_a_good_file_reads_into_values(tmp_path: Path) -> None:
    """Sinks keep their clearance and options; TOML dates become ISO strings; rules keep order."""
    path = tmp_path / "sinks.toml"
    path.write_text(GOOD)
    config = load_config(path)
    assert list(config.sinks) == ["archive", "drop"]
    drop = config.sinks["drop"]
    assert (drop.type, drop.max_classification, drop.include_body) == ("file", "CONFIDENTIAL", True)
    assert drop.options == {"directory": "/tmp/cable-notifications"}
    [rule] = config.rules
    assert rule.date_from == "2006-01-01"
    assert rule.keywords == ("nuclear", "enrichment plant")
    assert storage_sinks(config) == ["archive"]


def test_storage_is_added_when_absent() -> None:
    """A file with only notification sinks still stores every record."""
    config = parse_config({"sinks": {"drop": {"type": "file", "options": {"directory": "/x"}}}})
    assert storage_sinks(config) == ["storage"]


def test_storage_is_written_inline_unless_told_otherwise() -> None:
    """Storage sinks are written by the ingest task itself, notification sinks from their
    queue; either can be switched with ``inline``."""
    assert DEFAULT.sinks["storage"].inline is True
    drop = {"type": "file", "options": {"directory": "/x"}}
    config = parse_config({"sinks": {"archive": {"type": "storage"}, "drop": drop}})
    assert (config.sinks["archive"].inline, config.sinks["drop"].inline) == (True, False)
    switched = parse_config(
        {
            "sinks": {
                "archive": {"type": "storage", "inline": False},
                "drop": {**drop, "inline": True},
            }
        }
    )
    assert (switched.sinks["archive"].inline, switched.sinks["drop"].inline) == (False, True)


@pytest.mark.parametrize(
    ("raw", "named"),
    [
        ({"sinks": {"x": {"type": "carrier-pigeon"}}}, "sinks.x.type"),
        ({"sinks": {"Bad Name": {"type": "storage"}}}, "sinks"),
        (
            {"sinks": {"x": {"type": "file", "max_classification": "SECRETISH"}}},
            "sinks.x.max_classification",
        ),
        ({"sinks": {"x": {"type": "file", "options": {}}}}, "sinks.x.options"),
        ({"sinks": {}, "rules": [{"name": "r", "sinks": ["nowhere"]}]}, "rules[0] (r).sinks"),
        (
            {"sinks": {"s": {"type": "storage"}}, "rules": [{"name": "r", "sinks": ["s"]}]},
            "storage sink",
        ),
        ({"rules": [{"name": "r", "sinks": ["s"], "colour": "red"}]}, "rules.0"),
        (
            {"sinks": {"s": {"type": "storage", "max_classification": "SECRET"}}},
            "sinks.s: a storage sink",
        ),
    ],
)
def test_problems_name_their_key(raw: dict[str, object], named: str) -> None:
    """Each kind of mistake stops the load with a message naming the key concerned."""
    with pytest.raises(ConfigurationError) as error:
        parse_config(raw, "sinks.toml")
    assert named in str(error.value)
    assert str(error.value).startswith("sinks.toml: ")


def test_upside_down_ranges_are_refused() -> None:
    """at_least above at_most, or date_from after date_to, is refused with the rule named."""
    raw = {
        "sinks": {"f": {"type": "file", "options": {"directory": "/x"}}},
        "rules": [
            {"name": "a", "sinks": ["f"], "classification_at_least": "SECRET",
             "classification_at_most": "CONFIDENTIAL"},
            {"name": "b", "sinks": ["f"], "date_from": "2010-01-01", "date_to": "2009-01-01"},
        ],
    }  # fmt: skip
    with pytest.raises(ConfigurationError) as error:
        parse_config(raw)
    assert "rules[0] (a): classification_at_least SECRET is above at_most CONFIDENTIAL" in str(
        error.value
    )
    assert "rules[1] (b): date_from is after date_to" in str(error.value)


def test_unreadable_and_invalid_toml_are_named(tmp_path: Path) -> None:
    """A missing file and a file that is not TOML each give a one-line error with the path."""
    with pytest.raises(ConfigurationError, match="cannot read the configuration"):
        load_config(tmp_path / "missing.toml")
    bad = tmp_path / "bad.toml"
    bad.write_text("[sinks\n")
    with pytest.raises(ConfigurationError, match=r"bad\.toml: not valid TOML"):
        load_config(bad)


def test_the_readme_example_loads(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    """The configuration shown in the README is valid as written (given its two secrets)."""
    readme = (Path(__file__).resolve().parents[2] / "README.md").read_text(encoding="utf-8")
    example = readme.split("```toml\n", 1)[1].split("```", 1)[0]
    path = tmp_path / "sinks.toml"
    path.write_text(example, encoding="utf-8")
    monkeypatch.setenv("ALERTS_HMAC_SECRET", "s3cret")
    monkeypatch.setenv("DESK_SMTP_PASSWORD", "pa55")
    config = load_config(path)
    assert list(config.sinks) == ["storage", "alerts", "desk", "stream", "bus", "drop"]
    assert [rule.name for rule in config.rules] == ["iran-nuclear", "everything-unclassified"]
    assert config.sinks["alerts"].max_classification == "CONFIDENTIAL"
