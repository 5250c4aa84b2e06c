"""REF lines: split the lettered items and resolve the cables each one cites.

``REF: A. ALMATY 77 B. 05 ALMATY 4480`` → ``06ALMATY77`` (no year: the cable's own) and
``05ALMATY4480``. A citation is a station and a serial, the year before it (``05``, ``2009``,
``09DHAHRAN``) or after it (``DOHA 152 (08)``); an item may cite several (``ALGIERS 110 AND
ALGIERS 140``) or none (e-mails, reports, DTGs, ``STATE-LONDON SVTC MAY 9``), and then stays raw.
Labels are letters, upper or lower case, in sequence: ``A.``, ``b)``, ``(C)``, ``d:``.
"""

from __future__ import annotations

import re
import string

from worker.record import Reference

_LABEL = re.compile(r"^\s*(?:REFS?|REFTELS?|REFERENCES?)\b\.?\s*:?\s*", re.I)
_ITEM = re.compile(r"(?:^|(?<=[\s;,]))(?:\(([A-Z])\)|([A-Z])[.):])(?=\s|$|[A-Z0-9(])", re.I)
_CITATION = re.compile(
    r"(?<![A-Za-z/.-])(?P<station>[A-Za-z][A-Za-z'-]*)\s+0*(?P<serial>[1-9]\d{0,6})"
    r"(?:\s*\((?P<later>\d{2})\)|\s+(?P<after>(?:19|20)\d{2})\b)?"
    r"(?![\w/]|[:.-]\d)"
)
# The year before the station: ``05 ALMATY``, ``2009 STATE``, ``09DHAHRAN``, ``(08) SAO PAULO``.
_YEAR_BEFORE = re.compile(r"(?<![\w/.-])\(?(\d{4}|\d{2})\)? ?$")
# Stations of more than one word, as reference ids spell them run together; any other
# station is the one word before the serial (``SECSTATE 15113``, ``STATE-LONDON``).
_LONG_STATIONS = """
ABU DHABI|ADDIS ABABA|BANDAR SERI BEGAWAN|BUENOS AIRES|CAPE TOWN|CIUDAD JUAREZ|DAR ES SALAAM|
GUATEMALA CITY|HO CHI MINH CITY|HONG KONG|KUALA LUMPUR|KUWAIT CITY|LA PAZ|NEW DELHI|
PANAMA CITY|PORT AU PRINCE|PORT LOUIS|PORT MORESBY|PORT OF SPAIN|RIO DE JANEIRO|SAN JOSE|
SAN SALVADOR|SANTO DOMINGO|SAO PAULO|SRI LANKA|TEL AVIV|THE HAGUE|USUN NEW YORK|NEW YORK|
USEU BRUSSELS|USNATO BRUSSELS|UNVIE VIENNA|RPO DUBAI|IRPO DUBAI|IRAN RPO DUBAI|DUBAI RPO|MEXICO CITY|
ST PETERSBURG|ULAAN BAATAR|CHIANG MAI|ALL DIPLOMATIC POSTS|EMBASSY VIENNA|SECSTATE WASHDC
"""
_LONG: dict[str, list[tuple[str, ...]]] = {}
for _name in sorted(
    (tuple(n.split()) for n in _LONG_STATIONS.replace("\n", "").split("|") if n), key=len
)[::-1]:
    _LONG.setdefault(_name[-1], []).append(_name)
# Words that are no station: what else a REF item names (reports, e-mails, meetings), and
# the months of a date (``SVTC MAY 9``).
_NOT_STATION_WORDS = """
DTG NO NUMBER PARA PARAGRAPH PARAS SECTION ITEM TELCON MEMCON EMAIL E-MAIL LETTER MEMO IIR PAGE
OF AND THE DATED ON IN AT FAX CABLE MESSAGE MSG REPORT SVTC POINTS NOTE DIPNOTE SEPTEL REFTEL
RESOLUTION UNSCR ARTICLE LAW DECREE ROOM TD OSC FBIS VTC TRIP MEETING CALL CONVERSATION
JAN FEB MAR APR MAY JUN JUL AUG SEP SEPT OCT NOV DEC JANUARY FEBRUARY MARCH APRIL JUNE JULY
AUGUST SEPTEMBER OCTOBER NOVEMBER DECEMBER PREVIOUS ALSO SEE TO FOR FAM FAH USC CFR INA
"""
_NOT_STATIONS = frozenset(_NOT_STATION_WORDS.split())
_SEPARATORS = re.compile(r"[;:]\s+|\s+AND\s+")
_REPEATED_LABEL = re.compile(r"^(?:\(([A-Z])\)|([A-Z])[.):])\s*", re.I)
_STATION_PREFIXES = ("AMEMBASSY", "EMBASSY", "AMCONSUL", "CONSULATE", "USMISSION", "SECSTATE")
_STATION_ALIASES = {
    "SECSTATE": "STATE",
    "SECSTATEWASHDC": "STATE",
    "STATEWASHDC": "STATE",
    "DEPT": "STATE",
    "DEPARTMENT": "STATE",
    "USUN": "USUNNEWYORK",
    "UNVIE": "UNVIEVIENNA",
    "RIO": "RIODEJANEIRO",
    "IRPODUBAI": "RPODUBAI",
    "DUBAIRPO": "RPODUBAI",
    "IRANRPODUBAI": "RPODUBAI",
}


def _split_items(value: str) -> list[tuple[str | None, str]]:
    """Cut the REF value at sequential letter labels A, B, C…; fall back to ``:`` / ``;``."""
    expected = iter(string.ascii_uppercase)
    want = next(expected)
    cuts: list[tuple[int, int, str]] = []
    for match in _ITEM.finditer(value):
        letter = (match[1] or match[2]).upper()
        if letter == want:
            cuts.append((match.start(), match.end(), letter))
            want = next(expected, "")
    if not cuts:
        parts = [p for p in _SEPARATORS.split(value) if p.strip()]
        return [(None, p) for p in parts] if len(parts) > 1 else [(None, value)]
    items: list[tuple[str | None, str]] = []
    if value[: cuts[0][0]].strip():
        items.append((None, value[: cuts[0][0]]))
    for i, (_, end, letter) in enumerate(cuts):
        stop = cuts[i + 1][0] if i + 1 < len(cuts) else len(value)
        items.append((letter, value[end:stop]))
    return items


def _station_key(words: list[str]) -> str | None:
    upper = [w.upper() for w in words]
    if any(w in _NOT_STATIONS for w in upper) or set(upper[0]) <= {"X"} or len(upper[-1]) < 3:
        return None  # ``MADRID SP 0307``: no post is named in two letters
    if len(upper) > 1 and upper[0] in _STATION_PREFIXES:
        upper = upper[1:]
    key = "".join(upper).replace("'", "").replace("-", "")
    return _STATION_ALIASES.get(key, key)


def _station(text: str, match: re.Match[str]) -> tuple[list[str], int]:
    """The station's words and where they start: one word, or a known longer name."""
    word = match["station"].upper()
    names = _LONG.get(word)
    if not names:
        return [match["station"]], match.start()
    before = text[max(0, match.start() - 40) : match.start()].upper().split()[-4:]
    for name in names:
        if tuple(before[len(before) - len(name) + 1 :]) == name[:-1]:
            start = match.start()
            for _ in name[:-1]:
                start = text.rindex(" ", 0, start - 1) + 1 if " " in text[: start - 1] else 0
            return text[start : match.end("station")].split(), start
    return [match["station"]], match.start()


def citations(text: str, own_year: int | None) -> list[tuple[str, str]]:
    """Every cable ``text`` cites: (the citation as written, canonical reference id)."""
    found: list[tuple[str, str]] = []
    taken = 0  # a year after one citation (``709 (08)``) is not also the next one's
    for match in _CITATION.finditer(text):
        words, start = _station(text, match)
        key = _station_key(words)
        year_match = _YEAR_BEFORE.search(text, taken, start)
        year_text = (year_match[1] if year_match else None) or match["later"] or match["after"]
        if key is None or (year_text is None and own_year is None):
            continue
        if year_match:
            start = year_match.start()
        year = int(year_text) % 100 if year_text else (own_year or 0) % 100
        found.append((text[start : match.end()].strip(), f"{year:02d}{key}{int(match['serial'])}"))
        taken = match.end()
    return found


def resolve(raw: str, own_year: int | None) -> str | None:
    """Canonical reference id of the cable ``raw`` names, or None."""
    found = citations(" ".join(raw.split()), own_year)
    return found[0][1] if len(found) == 1 else None


def parse_references(text: str, own_year: int | None) -> list[Reference]:
    """Parse the text of a REF block (label included) into reference objects."""
    value = " ".join(_LABEL.sub("", text).split())
    refs: list[Reference] = []
    for label, item in _split_items(value):
        raw = item.strip(" .;,")
        if label:  # ``A. A) BRASILIA 236``: the label repeated inside the item
            again = _REPEATED_LABEL.match(raw)
            if again and (again[1] or again[2]).upper() == label:
                raw = raw[again.end() :]
        if not raw:
            continue
        cited = citations(raw, own_year)
        if len(cited) <= 1:
            ref: Reference = {"label": label, "raw": raw}
            if cited:
                ref["id"] = cited[0][1]
            refs.append(ref)
        else:  # ``ALGIERS 110 AND ALGIERS 140``: one reference per cable
            refs.extend({"label": label, "raw": written, "id": ident} for written, ident in cited)
    return refs
