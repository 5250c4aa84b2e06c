"""The classification line and the handling caveats around it.

    C O N F I D E N T I A L SECTION 01 OF 02 ALMATY 000598
    UNCLAS SECTION 01 OF 03 MADRID 002164
    S E C R E T STATE 116943

Letter-spacing, doubled letters (``SS E C R E T``), broken spacing (``SE C R E T``) and
lower case are all seen in copies. The published classification adds ``//NOFORN`` when the
cable carries the NOFORN caveat and ``//FOR OFFICIAL USE ONLY`` to sensitive unclassified ones.
"""

from __future__ import annotations

import re
from dataclasses import dataclass, field

from worker.record import Section


def _spaced(word: str) -> str:
    return " ?".join(re.escape(c) for c in word)


def _garbled(word: str) -> str:
    """The word letter-spaced or not, its first letter doubled or lost (teletype garbling)."""
    first, rest = re.escape(word[0]), _spaced(word[1:])
    return rf"(?:{first} ?){{0,2}}{rest}"


_LEVELS = (
    ("TOP SECRET", rf"T ?O ?P ?{_spaced('SECRET')}"),
    ("SECRET", _garbled("SECRET")),
    ("CONFIDENTIAL", _garbled("CONFIDENTIAL")),
    ("UNCLASSIFIED", rf"{_garbled('UNCLASSIFIED')}|{_garbled('UNCLAS')}"),
    ("LIMITED OFFICIAL USE", r"LIMITED OFFICIAL USE"),
)
# The levels as written out in full, where a page header or footer repeats them.
LEVEL_WORDS = "UNCLASSIFIED|CONFIDENTIAL|SECRET|LIMITED OFFICIAL USE"
# Any level, as other readers of the format search for it.
LEVEL_PATTERN = "|".join(rx for _, rx in _LEVELS)
# Up to two stray letters may precede the level (``CSE C R E T``).
_LEVEL = re.compile(
    r"^[ \t]*(?:[A-Z] ?){0,2}?(?:"
    + "|".join(f"(?P<l{i}>{rx})" for i, (_, rx) in enumerate(_LEVELS))
    + r")(?![A-Z])",
    re.I,
)
SECURITY_LEVELS = {
    "UUUUU": "UNCLASSIFIED",
    "CCCCC": "CONFIDENTIAL",
    "SSSSS": "SECRET",
    "TTTTT": "TOP SECRET",
}
_SECTION = re.compile(r"\bSECTION (\d{1,3}) OF (\d{1,3})\b", re.I)
_STATION_SERIAL = re.compile(r"(?:^|\s)([A-Z][A-Z'-]*(?: [A-Z][A-Z'-]*){0,3}) (\d{1,7})(?=\s|$)")
CAVEATS = (
    "SENSITIVE BUT UNCLASSIFIED",
    "FOR OFFICIAL USE ONLY",
    "SENSITIVE",
    "NOFORN",
    "SIPDIS",
    "EXDIS",
    "NODIS",
    "LIMDIS",
    "STADIS",
    "ORCON",
    "PROPIN",
    "NOCONTRACT",
    "CORRECTED COPY",
)
_CAVEAT_LINE = re.compile(
    r"^(?:[A-Z]{2,5} (?=SENSITIVE))?(?:(?:"
    + "|".join(CAVEATS)
    + r"|FOUO|SBU|NOFORN[ -]SIPDIS|NOFORM|NO FORN)[\s,.;/]*)+$",
    re.I,
)
_CAVEAT_WORD = re.compile(r"\b(" + "|".join(CAVEATS) + r"|FOUO|SBU)\b", re.I)
# ``E F T O`` (encrypt for transmission only) after ``UNCLAS``: a transmission instruction.
_EFTO = re.compile(r"(?<![A-Z])E ?F ?T ?O(?![A-Z])")
_NON_STATIONS = frozenset(
    {
        "SECTION",
        "OF",
        "FOR",
        "AND",
        "NOFORN",
        "SIPDIS",
        "SENSITIVE",
        "EXDIS",
        "NODIS",
        "LIMDIS",
        "ONLY",
        "USE",
        "PAGE",
    }
)


@dataclass
class ClassLine:
    """What the classification line says."""

    level: str
    station: str | None
    serial: int | None
    section: Section | None
    caveats: list[str] = field(default_factory=list)


def match_class_line(line: str) -> ClassLine | None:
    """Recognise a classification line; None for any other line."""
    match = _LEVEL.match(line)
    if match is None:
        return None
    level = next(_LEVELS[i][0] for i in range(len(_LEVELS)) if match[f"l{i}"])
    rest = line[match.end() :].upper()
    if rest and not rest[0].isspace() and rest[0] not in "/-:":
        return None
    section: Section | None = None
    if sec := _SECTION.search(rest):
        section = {"number": int(sec[1]), "total": int(sec[2])}
        rest = rest[: sec.start()] + " " + rest[sec.end() :]
    caveats = [c.upper() for c in _CAVEAT_WORD.findall(rest)]
    rest = _EFTO.sub(" ", _CAVEAT_WORD.sub(" ", rest))
    station = serial = None
    # the first pair names the cable: ``STATE 123456 TOSEC 120045`` adds a travel series number
    for found in _STATION_SERIAL.finditer(" ".join(rest.replace("/", " ").split())):
        words = [w for w in found[1].split() if w not in _NON_STATIONS]
        if words:
            station, serial = " ".join(words), int(found[2])
            break
    if station is None and (rest.strip() and len(rest.split()) > 8):
        return None  # prose that happens to begin with "Confidential"
    return ClassLine(level, station, serial, section, caveats)


_CAVEAT_PREFIXES = frozenset(c[:3] for c in (*CAVEATS, "FOUO", "SBU", "NO FORN"))
_CAVEAT_LEAD = re.compile(r"^(NOFORN|SIPDIS|EXDIS|NODIS|LIMDIS|SENSITIVE)\s?[,;:-]\s", re.I)
_NOFORN = re.compile(r"\bNO ?FOR[NM]\b", re.I)


def caveats_in(line: str) -> list[str] | None:
    """The caveats on a caveat line (``SIPDIS``, ``NOFORN, NOT FOR INTERNET …``), else None."""
    text = line.strip()
    if len(text) > 80 or (text[:3].upper() not in _CAVEAT_PREFIXES and "SENSITIVE" not in text):
        return None
    if lead := _CAVEAT_LEAD.match(text):
        return [lead[1].upper()]
    if not text or not _CAVEAT_LINE.match(text):
        return None
    found = [c.upper() for c in _CAVEAT_WORD.findall(text)]
    if _NOFORN.search(text) and "NOFORN" not in found:
        found.append("NOFORN")
    return found


def normalise_caveat(word: str) -> str:
    """One spelling per caveat: FOUO / SBU / SENSITIVE get their long forms."""
    return {
        "FOUO": "FOR OFFICIAL USE ONLY",
        "SBU": "SENSITIVE BUT UNCLASSIFIED",
        "SENSITIVE": "SENSITIVE BUT UNCLASSIFIED",
    }.get(word, word)


def published(level: str, caveats: list[str]) -> str:
    """The classification as the publisher writes it (``SECRET//NOFORN``)."""
    if level in ("UNCLASSIFIED", "LIMITED OFFICIAL USE"):
        sensitive = level == "LIMITED OFFICIAL USE" or any(
            c in ("SENSITIVE BUT UNCLASSIFIED", "FOR OFFICIAL USE ONLY") for c in caveats
        )
        return "UNCLASSIFIED//FOR OFFICIAL USE ONLY" if sensitive else "UNCLASSIFIED"
    return f"{level}//NOFORN" if "NOFORN" in caveats else level
