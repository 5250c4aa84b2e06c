"""Routing rules and clearance (pure): where a record goes, under which rule, and when not."""

from __future__ import annotations

import pytest

from worker.model import PARSER_VERSION, SCHEMA_VERSION
from worker.record import CableRecord, Paragraph
from worker.routing.config import Config, Rule, SinkConfig, parse_config
from worker.routing.rules import (
    Route,
    above_clearance,
    effective_rank,
    matches,
    portion_rank,
    rank,
    route,
)


def _paragraph(number: int, classification: str | None, text: str) -> Paragraph:
    return {"number": number, "classification": classification, "heading": None, "text": text}


def _record(
    *,
    classification: str | None = "CONFIDENTIAL",
    date: str | None = "2006-02-14T11:33:00Z",
    paragraphs: list[Paragraph] | None = None,
) -> CableRecord:
    """A parsed record with what the rules read; ``classification`` may be any string, as
    the clearance check must cope with one it does not know."""
    return {
        "schema_version": SCHEMA_VERSION,
        "parser_version": PARSER_VERSION,
        "reference_id": "06ALMATY598",
        "date": date,
        "precedence": None,
        "origin": "Embassy Almaty",
        "fm": "AMEMBASSY ALMATY",
        "classification": classification,
        "caveats": [],
        "section": None,
        "routing": None,
        "to": [],
        "info": [],
        "xmt": [],
        "declassify_on": None,
        "declassification": None,
        "downgrade": None,
        "tags": [{"code": "PHUM", "kind": "subject"}, {"code": "KZ", "kind": "country"}],
        "subject": "KAZAKHSTAN: GOK DENIES REFOULEMENT",
        "references": [],
        "classified_by": None,
        "summary": None,
        "paragraphs": (
            [_paragraph(1, None, "The enrichment  plant was discussed.")]
            if paragraphs is None
            else paragraphs
        ),
        "signature": None,
        "warnings": [],
    }


def _config(*rules: Rule, clearance: str = "SECRET") -> Config:
    sinks = {
        "storage": SinkConfig("storage", "storage"),
        "hook": SinkConfig("hook", "webhook", max_classification=clearance),
        "mail": SinkConfig("mail", "email", max_classification="SECRET"),
    }
    return Config(sinks, rules)


@pytest.mark.parametrize(
    ("rule", "expected"),
    [
        (Rule("r", ("hook",)), True),
        (Rule("r", ("hook",), classification_at_least="CONFIDENTIAL"), True),
        (Rule("r", ("hook",), classification_at_least="SECRET"), False),
        (Rule("r", ("hook",), classification_at_most="UNCLASSIFIED"), False),
        (Rule("r", ("hook",), tags_any=("kz", "IR")), True),
        (Rule("r", ("hook",), tags_any=("IR",)), False),
        (Rule("r", ("hook",), tags_all=("PHUM", "KZ")), True),
        (Rule("r", ("hook",), tags_all=("PHUM", "IR")), False),
        (Rule("r", ("hook",), origins=("embassy almaty",)), True),
        (Rule("r", ("hook",), origins=("Embassy Astana",)), False),
        (Rule("r", ("hook",), date_from="2006-02-14", date_to="2006-02-14"), True),
        (Rule("r", ("hook",), date_from="2006-02-15"), False),
        (Rule("r", ("hook",), keywords=("refoulement",)), True),
        (Rule("r", ("hook",), keywords=("enrichment plant",)), True),
        (Rule("r", ("hook",), keywords=("enrich",)), False),
    ],
)
def test_each_condition(rule: Rule, expected: bool) -> None:
    """Each condition alone matches or not as documented (keywords: whole words, any spacing)."""
    assert matches(rule, _record()) is expected


def test_undated_record_fails_a_date_condition() -> None:
    """A record without a date matches no rule that asks for a date range."""
    assert not matches(Rule("r", ("hook",), date_from="2000-01-01"), _record(date=None))


def test_storage_takes_everything_and_rules_pick_notifications() -> None:
    """Storage always; the first matching rule naming a sink is the one it carries."""
    config = _config(
        Rule("first", ("hook",), tags_any=("KZ",)),
        Rule("second", ("hook", "mail"), origins=("Embassy Almaty",)),
        Rule("never", ("mail",), tags_any=("IR",)),
    )
    decision = route(_record(), config)
    assert decision.routes == [
        Route("storage", None),
        Route("hook", "first"),
        Route("mail", "second"),
    ]
    assert decision.withheld == []


def test_above_clearance_is_withheld_whatever_the_rules_say() -> None:
    """A SECRET//NOFORN cable never goes to a sink cleared for CONFIDENTIAL; it is withheld."""
    config = _config(Rule("all", ("hook",)), clearance="CONFIDENTIAL")
    decision = route(_record(classification="SECRET//NOFORN"), config)
    assert decision.routes == [Route("storage", None)]
    assert decision.withheld == [Route("hook", "all")]
    assert route(_record(classification="CONFIDENTIAL"), config).withheld == []


def test_noforn_and_unknown_rank_above_their_plain_level() -> None:
    """CONFIDENTIAL//NOFORN exceeds a CONFIDENTIAL clearance; an unknown classification exceeds all."""
    assert above_clearance(_record(classification="CONFIDENTIAL//NOFORN"), "CONFIDENTIAL")
    assert above_clearance(_record(classification=None), "TOP SECRET//NOFORN")
    assert above_clearance(_record(classification="SECRET-ish"), "SECRET")
    assert not above_clearance(_record(classification="UNCLASSIFIED"), "UNCLASSIFIED")


def test_default_clearance_is_unclassified() -> None:
    """A notification sink without max_classification gets only UNCLASSIFIED cables."""
    config = parse_config(
        {
            "sinks": {"f": {"type": "file", "options": {"directory": "/x"}}},
            "rules": [{"name": "all", "sinks": ["f"]}],
        }
    )
    assert route(_record(classification="UNCLASSIFIED"), config).routes[-1] == Route("f", "all")
    assert route(_record(classification="UNCLASSIFIED//FOR OFFICIAL USE ONLY"), config).withheld


def test_a_paragraph_marked_above_the_banner_raises_the_rank() -> None:
    """A CONFIDENTIAL banner over an (S/NF) paragraph is SECRET//NOFORN for clearance; markings
    at or below the banner, and unknown ones, change nothing."""
    spliced = _record(
        classification="UNCLASSIFIED",
        paragraphs=[_paragraph(1, "U", "a"), _paragraph(2, "S/NF", "b")],
    )
    assert effective_rank(spliced) == rank("SECRET//NOFORN")
    assert above_clearance(spliced, "SECRET")
    assert not above_clearance(spliced, "SECRET//NOFORN")
    plain = _record(classification="CONFIDENTIAL", paragraphs=[
        _paragraph(1, "C", "a"),
        _paragraph(2, "SBU", "b"),
        _paragraph(3, "XYZ", "c"),
        _paragraph(4, None, "d"),
    ])  # fmt: skip
    assert effective_rank(plain) == rank("CONFIDENTIAL")
    assert not above_clearance(plain, "CONFIDENTIAL")
    assert portion_rank("U//FOUO") == rank("UNCLASSIFIED")
    assert portion_rank("C//NF") == rank("CONFIDENTIAL//NOFORN")
    assert portion_rank("TS") == rank("TOP SECRET")
