"""The routing header: everything above the classification line.

VZCZCXRO6349                        transmission id
PP RUEHDBU                          precedence prosigns and routing indicators
DE RUEHTA #0598/01 0451133          originating station, serial/section, Julian day + time
ZNY CCCCC ZZH                       security line
P 141133Z FEB 06                    date-time group (precedence, DDHHMMZ MON YY)
FM AMEMBASSY ALMATY
TO RUEHC/SECSTATE WASHDC PRIORITY 4102
INFO RUCNCIS/CIS COLLECTIVE PRIORITY
XMT AMCONSUL JOHANNESBURG
"""

from __future__ import annotations

import re
from dataclasses import dataclass, field
from datetime import UTC, datetime

from worker.record import Precedence, Recipient, Routing

from .text import PAGE_MARKER

PRECEDENCE_LETTERS: dict[str, Precedence] = {
    "Z": "FLASH",
    "O": "IMMEDIATE",
    "P": "PRIORITY",
    "R": "ROUTINE",
}
_PRECEDENCE_WORDS: tuple[Precedence, ...] = (
    "NIACT IMMEDIATE",
    "FLASH",
    "IMMEDIATE",
    "PRIORITY",
    "ROUTINE",
)
# An addressee's precedence as it ends the line: `` PRIORITY``.
_PRECEDENCE_ENDINGS: tuple[tuple[str, Precedence], ...] = tuple(
    (" " + word, word) for word in _PRECEDENCE_WORDS
)
_ANY_PRECEDENCE_ENDING = tuple(ending for ending, _ in _PRECEDENCE_ENDINGS)
_MONTHS = {
    m: i
    for i, m in enumerate(
        ("JAN", "FEB", "MAR", "APR", "MAY", "JUN", "JUL", "AUG", "SEP", "OCT", "NOV", "DEC"), 1
    )
}

_TRANSMISSION = re.compile(r"^(VZCZC[A-Z0-9]{0,20})\b")
_PROSIGNS = re.compile(
    r"^(ZZ|OO|PP|RR|YY|[ZOPR])(?: ([A-Z]{2,}[A-Z0-9]*(?: [A-Z]{2,}[A-Z0-9]*)*))?$"
)
_DE = re.compile(r"^DE ([A-Z0-9]{3,12}) #(\d{1,6})(?:/(\d{1,3}))? (\d{3})(\d{4})\b")
_SECURITY = re.compile(r"^(ZN[YR] [A-Z]{5} ZZH)\b")
DTG = re.compile(
    r"\b(?:([ZOPR])(?: [ZOPR])? )?(\d{2})(\d{2})(\d{2})Z ?(JAN|FEB|MAR|APR|MAY|JUN|JUL|AUG|SEP|OCT|NOV|DEC)"
    r" ?(\d{2}|\d{4})\b"
)
_ADDRESS_START = re.compile(r"^(FM|TO|INFO|XMT|BT)\b ?(.*)$")
# An addressee: ``RUEHC/`` routing code, the name, then a precedence and a serial, both optional.
_CODE = re.compile(r"[A-Z][A-Z0-9]{2,11}")
_SERIAL = re.compile(r"\d{1,6}(?:-\d{1,6})?")


# A page marker of a converted copy (``PAGE 02 STATE 015113 182333Z``), even where it lands
# among the addressees, and the labelled fields that follow them when no blank line does.
_PAGE = re.compile(rf"[ \t]*{PAGE_MARKER}[ \t]*")
_FIELD_LABEL = re.compile(
    r"^(?:TAGS?\b|SUBJ(?:ECT)?\s*:|REFS?\s*:|E\.?\s?O\.?\s?1\d{4}|CLASSIFIED BY)", re.I
)


_LABEL_STARTS = frozenset({"TAG", "SUB", "REF", "E.O", "EO ", "E O", "CLA"})


@dataclass
class Header:
    """What the routing header says; every field may be missing in a partial copy."""

    routing: Routing | None = None
    date: str | None = None
    year: int | None = None
    precedence: Precedence | None = None
    fm: str | None = None
    to: list[Recipient] = field(default_factory=list)
    info: list[Recipient] = field(default_factory=list)
    xmt: list[Recipient] = field(default_factory=list)
    problems: list[tuple[str, str]] = field(default_factory=list)
    repeated: bool = False


def dtg_to_iso(day: int, hour: int, minute: int, month: int, year: int) -> str | None:
    """Return ISO 8601 UTC for a date-time group, or None when it names no real instant."""
    try:
        datetime(year, month, day, hour, minute, tzinfo=UTC)
    except ValueError:
        return None
    return f"{year:04d}-{month:02d}-{day:02d}T{hour:02d}:{minute:02d}:00Z"


def full_year(yy: str) -> int:
    """Two-digit years: the cables run from the 1960s to 2010."""
    value = int(yy)
    if len(yy) == 4:
        return value
    return 1900 + value if value >= 60 else 2000 + value


def parse_dtg(line: str) -> tuple[str | None, int | None, Precedence | None]:
    """Find a date-time group in ``line``: (ISO date, year, precedence) or Nones."""
    match = DTG.search(line)
    if match is None:
        return None, None, None
    letter, dd, hh, mm, mon, yy = match.groups()
    year = full_year(yy)
    iso = dtg_to_iso(int(dd), int(hh), int(mm), _MONTHS[mon], year)
    return iso, year, PRECEDENCE_LETTERS.get(letter or "")


def parse_recipient(text: str) -> Recipient:
    """``RUEHC/SECSTATE WASHDC PRIORITY 4102`` → code, name, precedence, serial."""
    text = " ".join(text.split())
    code: str | None = None
    precedence: Precedence | None = None
    serial: str | None = None
    head, slash, rest = text.partition("/")
    if slash and rest and _CODE.fullmatch(head):
        code, text = head, rest
    last = text.rpartition(" ")
    if last[0] and _SERIAL.fullmatch(last[2]):
        serial, text = last[2], last[0]
    if text.endswith(_ANY_PRECEDENCE_ENDING):  # most addressees have none: one test for all
        for ending, word in _PRECEDENCE_ENDINGS:
            if text.endswith(ending) and len(text) > len(ending):
                precedence, text = word, text[: -len(ending)]
                break
    return {"routing_code": code, "name": text, "precedence": precedence, "serial": serial}


def is_routing_line(line: str) -> bool:
    """True for a transmission id, precedence prosigns, DE or security line."""
    return any(rx.match(line) for rx in (_TRANSMISSION, _DE, _SECURITY, _PROSIGNS))


def _routing_line(line: str, routing: Routing) -> bool:
    """Take a transmission id, DE or security line into ``routing``; False for other lines."""
    if line[:1] not in "VDZ":  # VZCZC…, DE …, ZNY …: most header lines fail here at once
        return False
    if (m := _TRANSMISSION.match(line)) and routing["transmission_id"] is None:
        routing["transmission_id"] = m[1]
    elif (m := _DE.match(line)) and routing["station"] is None:
        day = int(m[4])  # a day of the year; a garbled one (000, 417) is left out
        routing["station"], routing["serial"] = m[1], m[2]
        routing["julian_day"] = day if 1 <= day <= 366 else None
        routing["time"] = m[5]
        routing["section"] = int(m[3]) if m[3] else None
    elif (m := _SECURITY.match(line)) and routing["security"] is None:
        routing["security"] = m[1]
    else:
        return False
    return True


def _address_line(line: str, header: Header) -> list[Recipient] | None:
    """Handle an FM/TO/INFO/XMT/BT line; return the recipient list it opens, if any."""
    match = _ADDRESS_START.match(line)
    assert match is not None
    key, rest = match[1], match[2].strip()
    if "PAGE " in rest:
        rest = _PAGE.sub("", rest).strip()
    if key == "FM":
        if header.fm is not None and (header.to or header.info):
            header.repeated = True  # a copy that repeats the header: its addressees once
        header.fm = header.fm or rest or None
        return None
    if header.repeated:
        return None
    if key == "BT":
        return None
    current = {"TO": header.to, "INFO": header.info, "XMT": header.xmt}[key]
    if rest:
        current.append(parse_recipient(rest))
    return current


def parse_header(lines: list[str]) -> Header:
    """Parse the lines above the classification line."""
    header = Header()
    # the keys in this order: the record's JSON keeps the order the parser has always written
    routing: Routing = {
        "transmission_id": None,
        "prosigns": None,
        "station": None,
        "serial": None,
        "section": None,
        "julian_day": None,
        "time": None,
        "security": None,
        "routing_indicators": [],
    }
    seen_routing = False
    current: list[Recipient] | None = None
    for raw in lines:
        line = " ".join(raw.split())
        if not line:
            current = None
        elif current is not None and line[:3].upper() in _LABEL_STARTS and _FIELD_LABEL.match(line):
            current = None  # TAGS, SUBJECT … right after the addressees
        elif current is not None and not _ADDRESS_START.match(line) and not DTG.match(line):
            if not (line.startswith("PAGE ") and _PAGE.fullmatch(line)):
                current.append(parse_recipient(line))  # most header lines: one more addressee
        elif _routing_line(line, routing):
            seen_routing = True
        elif header.date is None and (dtg := DTG.match(line)) is not None and dtg[1]:
            header.date, header.year, header.precedence = parse_dtg(line)
            if header.date is None:
                header.problems.append(
                    ("invalid_date", f"date-time group {dtg[0]!r} is not a real date")
                )
            current = None
        elif _ADDRESS_START.match(line) and (
            header.date or header.fm or line.startswith(("FM", "BT"))
        ):  # an INFO line above the DTG and FM: a 1970s copy's office distribution
            current = _address_line(line, header)
        elif (m := _PROSIGNS.match(line)) and routing["prosigns"] is None and header.fm is None:
            routing["prosigns"] = m[1]
            routing["routing_indicators"] = m[2].split() if m[2] else []
            seen_routing = True
    if seen_routing:
        header.routing = routing
    if any(r["precedence"] == "NIACT IMMEDIATE" for r in header.to):
        header.precedence = "NIACT IMMEDIATE"
    return header
