"""Small field parsers: declassification date and downgrade, subject, classification reasons."""

from __future__ import annotations

import re
from datetime import date

from worker.record import Downgrade

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
_YEAR_FIRST = re.compile(r"\b((?:19|20)\d{2})\s?[/.-]\s?(\d{1,2})\s?[/.-]\s?(\d{1,2})\b")
# ``DNG: CO 01/26/2021``: downgrade to the level coded, on the day given.
_DOWNGRADE = re.compile(
    r"\bDNG\b\s*:?\s*([A-Z]{1,3}\b)?[^A-Z0-9]{0,3}(?:\d{1,4}\s?[/.-]\s?\d{1,2}\s?[/.-]\s?\d{2,4})?",
    re.I,
)
_WORD_DATE = re.compile(r"\b([A-Z]{3,9})\.? (\d{1,2}),? (\d{4})\b", re.I)
# A portion marking before or after the subject (``(C)``, ``(S/REL UK)``, ``(SBU)``), and the
# label written twice (``SUBJECT: SUBJECT: …``).
_MARK = r"\((?:U|C|S|SBU|TS|NF|LOU|FOUO)(?:\s?//?\s?[A-Z][A-Z ,]{0,30})?\)"
_SUBJECT_PREFIX = re.compile(rf"^\s*(?:(?:{_MARK}|SUBJ(?:ECT)?\s*:)\s*)+", re.I)
_SUBJECT_SUFFIX = re.compile(rf"\s*{_MARK}\s*$")
_REASON = re.compile(r"\b1\s?\.\s?([4-5])\s*((?:[\s(),&/]*(?:A ?N ?D\s+)?\(?[A-H]\b\)?)+)", re.I)
_REASON_LETTERS = re.compile(r"(?<![A-Z])([A-H])(?![A-Z])", re.I)


def iso_date(year: int, month: int, day: int) -> str | None:
    """YYYY-MM-DD, or None if the numbers name no real day."""
    try:
        return date(year, month, day).isoformat()
    except ValueError:
        return None


def _date_in(text: str) -> str | None:
    if match := _YEAR_FIRST.search(text):
        return iso_date(int(match[1]), int(match[2]), int(match[3]))
    if match := _NUMERIC_DATE.search(text):
        month, day, year = int(match[1]), int(match[2]), int(match[3])
        if year < 100:
            year += 2000 if year < 60 else 1900
        return iso_date(year, month, day) or iso_date(year, day, month)
    if (match := _WORD_DATE.search(text)) and match[1].upper() in _MONTHS:
        return iso_date(int(match[3]), _MONTHS[match[1].upper()], int(match[2]))
    return None


def declassify_on(text: str) -> str | None:
    """The date in an E.O. line (``DECL: 02/13/2016``, ``DECL: 2019/12/17`` → 2019-12-17), if
    it has one; a downgrade instruction's date (``DNG: CO 01/26/2021``) is not it."""
    return _date_in(_DOWNGRADE.sub(" ", text))


def downgrade(text: str) -> Downgrade | None:
    """``DNG: CO 01/26/2021`` → to CO (CONFIDENTIAL) on 2021-01-26; None without one."""
    if (match := _DOWNGRADE.search(text)) is None:
        return None
    return {"to": match[1], "on": _date_in(match[0]), "text": " ".join(match[0].split())}


def clean_subject(text: str) -> str | None:
    """Remove a leading classification marking; None when nothing is left."""
    subject = _SUBJECT_SUFFIX.sub("", _SUBJECT_PREFIX.sub("", text)).strip()
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
