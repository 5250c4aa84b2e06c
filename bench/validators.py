"""Measure how many cable records per second each JSON Schema validator checks.

Usage (from the repository root)::

    python -m bench.validators [records.jsonl]

Without an argument a realistic ~6 KB record (ten paragraphs, full header) is built here; with
one, every line of the JSON Lines file is a record and the runs cycle through them. Each
validator is compiled once, checked to accept the records and to reject a set of broken
variants, then timed: five runs of at least a quarter of a second each, median reported.

Candidates: python-jsonschema (the reference implementation, pure Python), jsonschema-rs (what
the worker uses), worker.core.validate.validate_record (jsonschema-rs behind our API), and
fastjsonschema if installed (it generates Python code; it does not claim draft 2020-12, so it
is tried on the schema as written and on a draft-07 translation).
"""

from __future__ import annotations

import copy
import importlib
import statistics
import sys
import time
from collections.abc import Callable, Iterator
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import jsonschema
import jsonschema_rs
import orjson

from worker.core.schemas import load_schema
from worker.core.validate import validate_record
from worker.model import PARSER_VERSION, SCHEMA_VERSION

Check = Callable[[Any], object]
RUNS = 5
MIN_RUN_SECONDS = 0.25

_PARAGRAPHS = [
    "Summary: Three months after a group of Uzbek citizens was forcibly returned to Uzbekistan "
    "from southern Kazakhstan, the Kazakhstani MFA formally responded to UNHCR's multiple "
    "inquiries with a flat denial of any GOK involvement. This contradicts previous, informal "
    "high-level GOK acknowledgement to post of the involvement of Kazakhstani security forces "
    "in the detentions. End summary.",
    "On February 9, the UNHCR protection officer in Almaty told poloff that the MFA had "
    "finally answered UNHCR's letters of November and December. The two-paragraph note states "
    "that no Uzbek citizens were detained or transferred by Kazakhstani authorities and that "
    "the GOK has no information on the individuals named by UNHCR. The note does not address "
    "the sworn statements of relatives, which UNHCR shared with the MFA in December, nor the "
    "photographs of the vehicles used in the transfer.",
    "The denial puts UNHCR in an awkward position. The office had planned a public statement "
    "on the case in coordination with Geneva, but will now hold off while it weighs how to "
    "respond without damaging a working relationship that has otherwise improved markedly. "
    "Geneva has asked the office for a written assessment before the end of the month, and the "
    "High Commissioner may raise the case with the Kazakhstani delegation in March.",
    "Despite the formal denial, the protection officer reports significantly better "
    "cooperation from the Migration Police and the border service on individual refugee "
    "cases since November. Mandate refugees in Almaty and Shymkent report fewer document "
    "checks and no new detentions. Two families whose cases had been stalled since 2004 were "
    "granted residence permits in January, and the border service has agreed to notify UNHCR "
    "within 48 hours of any asylum seeker it holds at a crossing point.",
    "UNHCR believes the improvement reflects the government's wish to limit reputational "
    "damage ahead of its OSCE chairmanship bid, rather than a change of policy. It expects "
    "pressure from Tashkent for further returns to resume once international attention fades.",
    "Imam Nazarov, the spiritual leader of the men returned in November, has been accepted "
    "for resettlement by Sweden. UNHCR is arranging exit documents and expects him to depart "
    "within weeks; it has asked that the case not be discussed publicly until he has left.",
    "Poloff raised the case with the MFA Americas Department on February 10. The deputy "
    "director repeated the formal line but acknowledged that the note had been drafted by "
    "the security services and cleared at a senior level.",
    "Post will continue to press the GOK, together with like-minded missions, to honour its "
    "obligations under the 1951 Convention and to allow UNHCR access to asylum seekers held "
    "at border posts and in pre-trial detention. Septel reports on the Ambassador's meeting "
    "with the State Secretary, at which the issue was raised in general terms.",
    "Comment: The formal denial is a setback, but the practical cooperation UNHCR describes "
    "is real and worth encouraging. We recommend that the Department raise refoulement in "
    "the next round of the bilateral human rights dialogue. End comment.",
    "Dushanbe minimize considered. ORDWAY",
]


def build_record() -> dict[str, Any]:
    """Return a plausible, valid ~6 KB cable record with ten paragraphs."""
    recipient = {"routing_code": "RUEHC", "name": "SECSTATE WASHDC", "precedence": "PRIORITY"}
    info_names = [
        "AMEMBASSY ISLAMABAD",
        "AMEMBASSY STOCKHOLM",
        "USMISSION GENEVA",
        "USMISSION USOSCE",
        "AMEMBASSY TASHKENT",
    ]
    return {
        "schema_version": SCHEMA_VERSION,
        "parser_version": PARSER_VERSION,
        "reference_id": "06ALMATY598",
        "date": "2006-02-14T11:33:00Z",
        "precedence": "PRIORITY",
        "origin": "Embassy Almaty",
        "fm": "AMEMBASSY ALMATY",
        "classification": "CONFIDENTIAL",
        "caveats": ["SIPDIS"],
        "section": {"number": 1, "total": 2},
        "routing": {
            "transmission_id": "VZCZCXRO6349",
            "prosigns": "PP",
            "routing_indicators": ["RUEHDBU"],
            "station": "RUEHTA",
            "serial": "0598",
            "section": 1,
            "julian_day": 45,
            "time": "1133",
            "security": "ZNY CCCCC ZZH",
        },
        "to": [recipient | {"serial": "4102"}],
        "info": [
            recipient | {"routing_code": "RUEHIL", "name": name, "serial": f"{2016 + i}"}
            for i, name in enumerate(info_names)
        ],
        "xmt": [],
        "declassify_on": "2016-02-13",
        "declassification": "12958: DECL: 02/13/2016",
        "downgrade": None,
        "tags": [
            {"code": code, "kind": kind}
            for code, kind in [
                ("PHUM", "subject"),
                ("PREF", "subject"),
                ("PTER", "subject"),
                ("KZ", "country"),
                ("UZ", "country"),
            ]
        ],
        "subject": "KAZAKHSTAN: GOK DENIES REFOULEMENT OF UZBEK REFUGEES; NAZAROV TO SWEDEN",
        "references": [
            {"label": "A", "raw": "ALMATY 77", "id": "06ALMATY77"},
            {"label": "B", "raw": "05 ALMATY 4480", "id": "05ALMATY4480"},
            {"label": "C", "raw": "05 ALMATY 4393", "id": "05ALMATY4393"},
        ],
        "classified_by": {
            "name": "Mark Asquino",
            "title": "DCM",
            "reasons": ["1.4(b)", "1.4(d)"],
            "derived_from": None,
            "text": "DCM Mark Asquino, reasons 1.4 (B) and (D).",
        },
        "summary": _PARAGRAPHS[0].removeprefix("Summary: ").removesuffix(" End summary."),
        "paragraphs": [
            {"number": i, "classification": "C", "heading": None, "text": text}
            for i, text in enumerate(_PARAGRAPHS, start=1)
        ],
        "signature": "ORDWAY",
        "warnings": [],
    }


def broken_variants(record: dict[str, Any]) -> Iterator[tuple[str, dict[str, Any]]]:
    """Yield (what is wrong, record) pairs that every correct validator must reject."""
    edits: list[tuple[str, Callable[[dict[str, Any]], None]]] = [
        ("date not ISO", lambda r: r.update(date="14 FEB 2006")),
        ("impossible date", lambda r: r.update(date="2006-02-30T11:33:00Z")),
        ("classification", lambda r: r.update(classification="SECRET//ORCON")),
        ("unknown property", lambda r: r.update(colour="red")),
        ("tag kind", lambda r: r["tags"][0].update(kind="place")),
        ("reference id", lambda r: r.update(reference_id="06ALMATY0598")),
        ("missing subject", lambda r: r.pop("subject")),
        ("julian day", lambda r: r["routing"].update(julian_day=367)),
    ]
    for what, edit in edits:
        broken = copy.deepcopy(record)
        edit(broken)
        yield what, broken


def to_draft7(node: Any) -> Any:
    """Translate our 2020-12 schema to draft-07: ``$defs`` become ``definitions``."""
    if isinstance(node, list):
        return [to_draft7(item) for item in node]
    if not isinstance(node, dict):
        return node
    out: dict[str, Any] = {}
    for key, value in node.items():
        if key == "$schema":
            out[key] = "http://json-schema.org/draft-07/schema#"
        elif key == "$defs":
            out["definitions"] = to_draft7(value)
        elif key == "$ref":
            out[key] = value.replace("#/$defs/", "#/definitions/")
        else:
            out[key] = to_draft7(value)
    return out


@dataclass
class Candidate:
    """A named validator: ``check`` raises or returns False on an invalid record."""

    name: str
    check: Check

    def accepts(self, record: Any) -> bool:
        """Return whether the validator accepts ``record``."""
        try:
            result = self.check(record)
        except Exception:  # each validator raises its own error class
            return False
        return result is not False


def candidates() -> tuple[list[Candidate], list[str]]:
    """Compile every available validator; return them and notes on the ones left out."""
    schema = load_schema("cable")
    reference = jsonschema.Draft202012Validator(
        schema, format_checker=jsonschema.Draft202012Validator.FORMAT_CHECKER
    )
    compiled = jsonschema_rs.Draft202012Validator(schema, validate_formats=True)
    found = [
        Candidate("jsonschema Draft202012Validator", reference.is_valid),
        Candidate("jsonschema-rs Draft202012Validator", compiled.is_valid),
        Candidate("worker.core.validate.validate_record", validate_record),
    ]
    notes: list[str] = []
    try:
        fastjsonschema = importlib.import_module("fastjsonschema")
    except ImportError:
        notes.append("fastjsonschema: not installed, skipped (pip install fastjsonschema)")
        return found, notes
    for label, variant in (("2020-12 as written", schema), ("draft-07", to_draft7(schema))):
        try:
            check = fastjsonschema.compile(variant)
        except Exception as exc:  # any compile failure becomes a note
            notes.append(f"fastjsonschema ({label}): cannot compile: {exc}")
            continue
        found.append(Candidate(f"fastjsonschema ({label})", check))
    return found, notes


def records_per_second(check: Check, records: list[Any]) -> float:
    """Return the median records/s of RUNS timed runs of ``check`` over ``records``."""
    count = len(records)
    while True:
        started = time.perf_counter()
        for index in range(count):
            check(records[index % len(records)])
        if time.perf_counter() - started >= MIN_RUN_SECONDS:
            break
        count *= 2
    rates = []
    for _ in range(RUNS):
        started = time.perf_counter()
        for index in range(count):
            check(records[index % len(records)])
        rates.append(count / (time.perf_counter() - started))
    return statistics.median(rates)


def load_records(argv: list[str]) -> list[Any]:
    """Return the records of the JSON Lines file named in argv, or the built record."""
    if len(argv) < 2:
        return [build_record()]
    lines = Path(argv[1]).read_bytes().splitlines()
    return [orjson.loads(line) for line in lines if line.strip()]


def main(argv: list[str]) -> int:
    """Check and time every validator, print a table; non-zero if one misjudges a record."""
    records = load_records(argv)
    sizes = [len(orjson.dumps(record)) for record in records]
    print(f"{len(records)} record(s), mean {statistics.mean(sizes) / 1024:.1f} KB as JSON")
    print(f"Python {sys.version.split()[0]}, median of {RUNS} runs of >= {MIN_RUN_SECONDS}s\n")
    found, notes = candidates()
    broken = list(broken_variants(records[0]))
    baseline = None
    status = 0
    header = f"{'validator':<40} {'records/s':>11} {'us/record':>10} {'speed-up':>9}  rejects"
    print(header)
    print("-" * len(header))
    for candidate in found:
        if not all(candidate.accepts(record) for record in records):
            print(f"{candidate.name:<40} rejects a valid record, not timed")
            status = 1
            continue
        missed = [what for what, record in broken if candidate.accepts(record)]
        rate = records_per_second(candidate.check, records)
        baseline = baseline or rate
        rejects = f"{len(broken) - len(missed)}/{len(broken)}"
        if missed:
            rejects += f" (misses: {', '.join(missed)})"
        print(
            f"{candidate.name:<40} {rate:>11,.0f} {1e6 / rate:>10.1f} "
            f"{rate / baseline:>8.1f}x  {rejects}"
        )
    for note in notes:
        print(f"note: {note}")
    return status


if __name__ == "__main__":
    raise SystemExit(main(sys.argv))
