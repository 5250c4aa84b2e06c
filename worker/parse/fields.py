"""Small field parsers: declassification date, subject, Classified By."""

from __future__ import annotations

import re
from datetime import date
from typing import Any

_MONTHS = {
    m: i
    for i, m in enumerate(
        (
            "JANUARY",
            "FEBRUARY",
            "MARCH",
            "APRIL",
            "MAY",
            "JUNE",
            "JULY",
            "AUGUST",
            "SEPTEMBER",
            "OCTOBER",
            "NOVEMBER",
            "DECEMBER",
        ),
        1,
    )
}
_NUMERIC_DATE = re.compile(r"\b(\d{1,2})\s?[/.-]\s?(\d{1,2})\s?[/.-]\s?(\d{4}|\d{2})\b")
_WORD_DATE = re.compile(r"\b([A-Z]{3,9})\.? (\d{1,2}),? (\d{4})\b", re.I)
_SUBJECT_PREFIX = re.compile(
    r"^\s*(?:\((?:U|C|S|SBU|TS|S/NF|C/NF|S//NF|C//NF|U/FOUO|U//FOUO|NF)\)\s*)+", re.I
)
_REASON = re.compile(r"\b1\s?\.\s?([4-5])\s*((?:[\s(),&/]*(?:AND\s+)?\(?[A-H]\b\)?)+)", re.I)
_REASON_LETTERS = re.compile(r"(?<![A-Z])([A-H])(?![A-Z])", re.I)
_WHO_END = re.compile(
    r"[,;.]?\s*(?:\bFOR\b\s*)?(?:\bREASONS?\b|\bREAS\b|\bE\.?O\.?\b|\b1\s?\.\s?[45]\b).*$", re.I
)
_TITLE_WORDS = frozenset(
    [
        "ACTING",
        "AMB",
        "AMB.",
        "AMBASSADOR",
        "A/DCM",
        "CDA",
        "CHARGE",
        "CHARGÉ",
        "D'AFFAIRES",
        "D'AFFAIRES,",
        "A.I.",
        "AI",
        "DCM",
        "DEPUTY",
        "CHIEF",
        "OF",
        "MISSION",
        "POLITICAL",
        "ECONOMIC",
        "POLITICAL/ECONOMIC",
        "POL/ECON",
        "POLECON",
        "ECON",
        "POL",
        "POLCOUNS",
        "POLOFF",
        "ECONOFF",
        "COUNSELOR",
        "COUNSELLOR",
        "MINISTER",
        "MINISTER-COUNSELOR",
        "OFFICER",
        "CONSUL",
        "GENERAL",
        "PRINCIPAL",
        "SECRETARY",
        "ASSISTANT",
        "UNDER",
        "DIRECTOR",
        "SECTION",
        "HEAD",
        "CHIEF",
        "DEPUTY",
        "PM",
        "FOR",
        "AFFAIRS",
        "PUBLIC",
        "DEFENSE",
        "ATTACHE",
        "REGIONAL",
        "AFFAIRS",
        "AND",
        "CG",
        "CONGEN",
        "DAS",
        "A/S",
        "ESTOFF",
        "ESTH",
        "EST",
        "POL-MIL",
        "POLMIL",
        "INTERNAL",
        "EXTERNAL",
        "UNIT",
        "MGMT",
        "MANAGEMENT",
        "RSO",
        "LEGATT",
        "OFFICE",
        "THE",
        "A/POLCOUNS",
        "ACTING-DCM",
        "CHARGE'",
        "A.I.",
        "DEPUTY-CHIEF",
        "POLMILOFF",
    ]
)


def iso_date(year: int, month: int, day: int) -> str | None:
    """YYYY-MM-DD, or None if the numbers name no real day."""
    try:
        return date(year, month, day).isoformat()
    except ValueError:
        return None


def declassify_on(text: str) -> str | None:
    """The date in an E.O. line (``DECL: 02/13/2016`` → 2016-02-13), if it has one."""
    if match := _NUMERIC_DATE.search(text):
        month, day, year = int(match[1]), int(match[2]), int(match[3])
        if year < 100:
            year += 2000 if year < 60 else 1900
        return iso_date(year, month, day) or iso_date(year, day, month)
    if (match := _WORD_DATE.search(text)) and match[1].upper() in _MONTHS:
        return iso_date(int(match[3]), _MONTHS[match[1].upper()], int(match[2]))
    return None


def clean_subject(text: str) -> str | None:
    """Remove a leading classification marking; None when nothing is left."""
    subject = _SUBJECT_PREFIX.sub("", text).strip()
    return subject or None


def reasons(text: str) -> list[str]:
    """``reasons 1.4 (B) and (D)`` → ["1.4(b)", "1.4(d)"]."""
    found: list[str] = []
    for match in _REASON.finditer(text):
        for letter in _REASON_LETTERS.findall(match[2]):
            reason = f"1.{match[1]}({letter.lower()})"
            if reason not in found:
                found.append(reason)
    return found


def _split_who(who: str) -> tuple[str | None, str | None]:
    parts = [p.strip() for p in who.split(",") if p.strip()]
    if not parts:
        return None, None
    if len(parts) > 1 and parts[0].split()[0].upper() not in _TITLE_WORDS:
        return parts[0], ", ".join(parts[1:]) or None  # "Mary Warlick, Ambassador, State"
    if len(parts) > 1:  # "Ambassador, John Doe" or "Charge d'Affaires, a.i., John Doe"
        tail = parts[-1]
        if tail.split()[0].upper() not in _TITLE_WORDS:
            return tail, ", ".join(parts[:-1])
    words = parts[0].split()
    cut = 0
    while cut < len(words) - 1 and words[cut].upper().strip(",") in _TITLE_WORDS:
        cut += 1
    title = " ".join(words[:cut]) or None
    name = " ".join(words[cut:]) or None
    return name, title


def classified_by(text: str) -> dict[str, Any]:
    """Parse the text after ``Classified By:`` into name, title and reasons."""
    raw = " ".join(text.split())
    who = _WHO_END.sub("", raw).strip(" ,;.:")
    name, title = _split_who(who)
    return {"name": name, "title": title, "reasons": reasons(raw), "raw": raw}
