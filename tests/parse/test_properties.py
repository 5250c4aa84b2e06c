"""Properties of the parser over generated inputs (hypothesis): it raises nothing but its
ParseError, every record it returns is valid, and the reference id agrees with the header."""

from __future__ import annotations

from hypothesis import HealthCheck, assume, example, given, settings
from hypothesis import strategies as st

from tests.e2e.conftest import SAMPLE
from worker.core.validate import validate_record
from worker.errors import ParseError
from worker.intake.generate import template
from worker.parse import parse_cable
from worker.record import CableRecord

SAMPLE_TEXT = SAMPLE.read_text(encoding="utf-8")
SAMPLE_LINES = SAMPLE_TEXT.split("\n")
PROPERTY = settings(
    max_examples=150, deadline=None, suppress_health_check=[HealthCheck.too_slow]
)  # the chaos suite bounds time; here only outcomes are checked


def _outcome(text: str) -> CableRecord | None:
    """The record (validated) or None for a ParseError; anything else fails the test."""
    try:
        record = parse_cable(text)
    except ParseError as error:
        reason = str(error)
    else:
        validate_record(record)
        return record
    assert reason, "a ParseError must say why"
    return None


@PROPERTY
@given(st.text(max_size=3000))
@example("")
@example("\x00" * 100)
@example("C O N F I D E N T I A L")
@example("FM AMEMBASSY ALMATY\n")
@example("DE RUEHTA #0598/01 0451133\nZNY CCCCC ZZH\n" * 50)
def test_any_text_is_a_record_or_a_parse_error(text: str) -> None:
    """Arbitrary Unicode (controls, surrogate-free) never raises anything but ParseError."""
    _outcome(text)


_LINE = st.sampled_from(SAMPLE_LINES) | st.text(st.characters(codec="utf-8"), max_size=120)


@st.composite
def mutated_sample(draw: st.DrawFn) -> str:
    """The sample cable with lines dropped, repeated, replaced or shuffled, its line ends
    changed, cut short, or upper/lower-cased: the corruptions of scraped copies."""
    lines = list(SAMPLE_LINES)
    for _ in range(draw(st.integers(0, 6))):
        if not lines:
            break
        at = draw(st.integers(0, len(lines) - 1))
        action = draw(st.sampled_from(["drop", "repeat", "replace", "insert", "swap"]))
        if action == "drop":
            del lines[at : at + draw(st.integers(1, 10))]
        elif action == "repeat":
            lines[at:at] = [lines[at]] * draw(st.integers(1, 200))
        elif action in {"replace", "insert"}:
            lines[at : at + (action == "replace")] = [draw(_LINE)]
        else:
            other = draw(st.integers(0, len(lines) - 1))
            lines[at], lines[other] = lines[other], lines[at]
    text = draw(st.sampled_from(["\n", "\r\n", "\r"])).join(lines)
    if draw(st.booleans()):
        text = text[: draw(st.integers(0, len(text)))]
    case = draw(st.sampled_from(["as is", "upper", "lower"]))
    return text.upper() if case == "upper" else text.lower() if case == "lower" else text


@PROPERTY
@given(mutated_sample())
def test_corrupted_copies_of_a_cable_are_records_or_parse_errors(text: str) -> None:
    """Real structure, damaged at random: a valid record or a ParseError, never a crash."""
    _outcome(text)


_STATIONS = st.sampled_from(
    ["ALMATY", "ABU DHABI", "RIO DE JANEIRO", "STATE", "USUN NEW YORK", "PARIS", "HAVANA"]
)


@PROPERTY
@given(
    serial=st.integers(1, 999_999),
    year=st.integers(1966, 2010),
    station=_STATIONS,
    spaced=st.booleans(),
)
def test_reference_id_agrees_with_the_header(
    serial: int, year: int, station: str, spaced: bool
) -> None:
    """A cable whose DE line and classification line name station S, serial N, year Y has
    reference id YY + S (letters only) + N without leading zeros."""
    fm = "SECSTATE WASHDC" if station == "STATE" else f"AMEMBASSY {station}"
    level = "C O N F I D E N T I A L" if spaced else "CONFIDENTIAL"
    text = (
        f"VZCZCXRO6349\nPP RUEHDBU\nDE RUEHTA #{serial:04d}/01 0451133\nZNY CCCCC ZZH\n"
        f"P 141133Z FEB {year % 100:02d}\nFM {fm}\nTO RUEHC/SECSTATE WASHDC PRIORITY 4102\n\n"
        f"{level} {station} {serial:06d}\n\nSIPDIS\n\nE.O. 12958: DECL: 02/13/2016\n"
        "TAGS: PHUM KZ\nSUBJECT: A SUBJECT\n\n1. (C) A paragraph.\n"
    )
    record = _outcome(text)
    assert record is not None
    letters = station.replace(" ", "")
    assert record["reference_id"] == f"{year % 100:02d}{letters}{serial}"


@PROPERTY
@given(serial=st.integers(1, 999_999))
def test_renumbered_sample_keeps_its_identity(serial: int) -> None:
    """The generator's copies parse to the reference id they were given (worker.intake.generate)."""
    made = template(SAMPLE_TEXT)
    assert made is not None
    assume(serial != made.serial)
    record = _outcome(made.renumbered(serial))
    assert record is not None
    assert record["reference_id"] == f"06ALMATY{serial}"
