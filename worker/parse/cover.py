"""The cover sheet of a copy printed from a post's message database ("DB/Inbox" printouts).

    TELEGRAM                                            June 03, 2003
    To:       No Action Addressee
    From:     AMEMBASSY ABU DHABI (ABU DHABI 2641 - UNKNOWN)
    TAGS:     PREL, EPET, EAID, PGOV
    Subject:  UAE TO SUPPORT JORDAN OIL NEEDS FOR THREE MORE MONTHS,
              PROVIDED $40 MILLION TO RABAT AFTER TERROR ATTACKS

Its facts are fallbacks for a copy whose routing header or preamble did not survive.
"""

from __future__ import annotations

import re
from dataclasses import dataclass

_FROM = re.compile(
    r"^From:\s+(?P<fm>[A-Z][A-Z .'/-]*?)\s*"
    r"(?:\((?P<station>[A-Z][A-Z .'-]*?)\s+0*(?P<serial>\d{1,7})\b[^)]*\))?\s*$"
)
_DATE = re.compile(r"^TELEGRAM\s+(?P<month>[A-Z][a-z]+)\.? (?P<day>\d{1,2}), (?P<year>\d{4})\s*$")
_FIELD = re.compile(r"^(?P<name>TAGS|Subject):\s+(?P<value>\S.*)$")
_CONTINUATION = re.compile(r"^\s{4,}\S")
_STARTS = frozenset({"From", "TELE", "TAGS", "Subj"})


@dataclass
class Cover:
    """What a cover sheet says; None where it says nothing."""

    fm: str | None = None
    station: str | None = None
    serial: int | None = None
    year: int | None = None
    tags: str | None = None
    subject: str | None = None


def parse_cover(lines: list[str]) -> Cover:
    """Read the cover sheet from the first lines of a copy (an empty Cover when there is none)."""
    cover = Cover()
    open_field: str | None = None
    for line in lines[:80]:
        if open_field and _CONTINUATION.match(line):
            setattr(cover, open_field, f"{getattr(cover, open_field)} {line.strip()}")
            continue
        open_field = None
        if line[:4] not in _STARTS:
            continue  # most lines: no field of the cover sheet
        if (m := _FROM.match(line)) and cover.fm is None:
            cover.fm = m["fm"]
            cover.station = m["station"]
            cover.serial = int(m["serial"]) if m["serial"] else None
        elif (m := _DATE.match(line)) and cover.year is None:
            cover.year = int(m["year"])
        elif (m := _FIELD.match(line)) and m["value"].strip() not in ("None", ""):
            open_field = m["name"].lower()
            setattr(cover, open_field, m["value"].strip())
    return cover
