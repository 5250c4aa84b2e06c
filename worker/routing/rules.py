"""Routing (pure): which sinks a record goes to, under which rule, and which withhold it.

Storage sinks take every record. A notification sink takes a record when a rule naming it
matches (the first such rule, in file order, is the one its notification carries), unless the
record is above the sink's clearance (``max_classification``): then it is withheld, whatever
the rules say. The classification is the parsed one, from the cable's own text; producer
metadata never enters a record, so it cannot lower a cable below a sink's clearance. A record
whose classification is unknown ranks above every clearance, and one with a paragraph marked
above its banner (a body spliced in from another cable, a mis-marked banner) ranks at that
paragraph's level: ``(S/NF)`` in a cable marked CONFIDENTIAL makes it SECRET//NOFORN here.

:func:`route` and the rule conditions read the parser's :class:`~worker.record.CableRecord`,
validated. The clearance check also reads records from a sink's queue (a replayed or hand-made
message, not validated again), so :func:`effective_rank` and :func:`above_clearance` take any
mapping and check the shape of what they read.
"""

from __future__ import annotations

import functools
import re
from collections.abc import Mapping
from dataclasses import dataclass, field
from typing import Any

from worker.model import CLASSIFICATIONS
from worker.record import CableRecord
from worker.routing.config import Config, Rule

UNKNOWN_RANK = len(CLASSIFICATIONS)


@dataclass(frozen=True, slots=True)
class Route:
    """Send to ``sink``; ``rule`` is the rule that matched (None for storage)."""

    sink: str
    rule: str | None


@dataclass(frozen=True, slots=True)
class Decision:
    """Where one record goes, and where it matched a rule but is withheld."""

    routes: list[Route] = field(default_factory=list)
    withheld: list[Route] = field(default_factory=list)


def rank(classification: object) -> int:
    """Position of a classification, lowest first; unknown ranks above everything."""
    try:
        return CLASSIFICATIONS.index(classification)
    except ValueError:
        return UNKNOWN_RANK


_PORTION_LEVELS = {"U": "UNCLASSIFIED", "SBU": "UNCLASSIFIED", "C": "CONFIDENTIAL", "S": "SECRET"}
_PORTION_LEVELS |= {"TS": "TOP SECRET"}


def portion_rank(marking: object) -> int:
    """Rank of a paragraph marking: ``C`` CONFIDENTIAL, ``S/NF`` SECRET//NOFORN, ``U//FOUO``
    and ``SBU`` at their unclassified level; an unknown marking counts as UNCLASSIFIED."""
    if not isinstance(marking, str) or not marking:
        return 0
    level, _, rest = marking.upper().partition("/")
    name = _PORTION_LEVELS.get(level)
    if name is None:
        return 0
    if "NF" in rest.replace("/", " ").split() and name != "UNCLASSIFIED":
        name += "//NOFORN"
    return rank(name)


def effective_rank(record: Mapping[str, Any]) -> int:
    """The record's rank for clearance: its classification, or its highest paragraph marking
    when that is higher."""
    paragraphs = record.get("paragraphs") or ()
    portions = (p.get("classification") for p in paragraphs if isinstance(p, Mapping))
    return max(rank(record.get("classification")), *map(portion_rank, portions), 0)


def above_clearance(record: Mapping[str, Any], clearance: str) -> bool:
    """True when ``record`` may not go to a sink cleared up to ``clearance``."""
    return effective_rank(record) > rank(clearance)


@functools.lru_cache(maxsize=256)
def _keyword_pattern(keywords: tuple[str, ...]) -> re.Pattern[str]:
    words = (r"\s+".join(map(re.escape, keyword.split())) for keyword in keywords)
    return re.compile(r"(?<!\w)(?:" + "|".join(words) + r")(?!\w)", re.IGNORECASE)


def _text(record: CableRecord) -> str:
    parts = [record["subject"] or "", record["summary"] or ""]
    for paragraph in record["paragraphs"]:
        parts.append(paragraph["heading"] or "")
        parts.append(paragraph["text"])
    return "\n".join(parts)


def _classification(rule: Rule, record: CableRecord) -> bool:
    level = rank(record["classification"])
    low, high = rule.classification_at_least, rule.classification_at_most
    return (not low or level >= rank(low)) and (not high or level <= rank(high))


def _tags(rule: Rule, record: CableRecord) -> bool:
    if not rule.tags_any and not rule.tags_all:
        return True
    codes = {t["code"].upper() for t in record["tags"]}
    if rule.tags_any and not codes.intersection(t.upper() for t in rule.tags_any):
        return False
    return not rule.tags_all or codes.issuperset(t.upper() for t in rule.tags_all)


def _origin(rule: Rule, record: CableRecord) -> bool:
    origin = (record["origin"] or "").casefold()
    return not rule.origins or origin in {o.casefold() for o in rule.origins}


def _dates(rule: Rule, record: CableRecord) -> bool:
    if not rule.date_from and not rule.date_to:
        return True
    day = (record["date"] or "")[:10]
    return bool(day) and (rule.date_from or "") <= day <= (rule.date_to or "\uffff")


def _keywords(rule: Rule, record: CableRecord) -> bool:
    return not rule.keywords or bool(_keyword_pattern(rule.keywords).search(_text(record)))


_CONDITIONS = (_classification, _tags, _origin, _dates, _keywords)


def matches(rule: Rule, record: CableRecord) -> bool:
    """Every condition of ``rule`` holds for ``record``."""
    return all(condition(rule, record) for condition in _CONDITIONS)


def route(record: CableRecord, config: Config) -> Decision:
    """Where ``record`` goes under ``config``."""
    decision = Decision()
    for sink in config.sinks.values():
        if not sink.notifies:
            decision.routes.append(Route(sink.name, None))
    taken: set[str] = set()
    for rule in config.rules:
        pending = [name for name in rule.sinks if name not in taken]
        if not pending or not matches(rule, record):
            continue
        for name in pending:
            taken.add(name)
            target = Route(name, rule.name)
            if above_clearance(record, config.sinks[name].max_classification):
                decision.withheld.append(target)
            else:
                decision.routes.append(target)
    return decision
