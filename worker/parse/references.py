"""REF lines: split the lettered items and resolve each that names a cable.

``REF: A. ALMATY 77 B. 05 ALMATY 4480`` → ``06ALMATY77`` (no year: the cable's own) and
``05ALMATY4480``. Items that name something else (e-mails, reports, DTGs) stay raw.
"""

from __future__ import annotations

import re
import string
from typing import Any

_LABEL = re.compile(r"^\s*(?:REFS?|REFTELS?|REFERENCES?)\b\.?\s*:?\s*", re.I)
# ``A.``, ``A)``, ``(A)``, ``A:`` at the start or after whitespace/semicolon.
_ITEM = re.compile(r"(?:^|(?<=[\s;,]))(?:\(([A-Z])\)|([A-Z])[.):])(?=\s|$)")
_CABLE = re.compile(
    r"^(?:(\d{2}|\d{4})\s+)?([A-Z][A-Z'-]*(?: [A-Z][A-Z'-]*){0,3})\s+0*(\d{1,7})(?:\s*\(.*\))?[\s.,;]*$"
)
_NOT_STATIONS = frozenset(
    {
        "DTG",
        "NO",
        "NUMBER",
        "PARA",
        "PARAGRAPH",
        "SECTION",
        "ITEM",
        "TELCON",
        "EMAIL",
        "E-MAIL",
        "LETTER",
        "MEMO",
        "IIR",
        "PAGE",
        "OF",
        "AND",
        "THE",
        "DATED",
        "ON",
        "IN",
        "AT",
        "FAX",
        "CABLE",
        "MESSAGE",
        "MSG",
        "REPORT",
    }
)
_PREVIOUS = re.compile(r"^PREVIOUS\s+|\s+(?:AND\s+)?PREVIOUS$")
_STATION_ALIASES = {
    "SECSTATE": "STATE",
    "SECSTATEWASHDC": "STATE",
    "DEPT": "STATE",
    "USUN": "USUNNEWYORK",
}


def _split_items(value: str) -> list[tuple[str | None, str]]:
    """Cut the REF value at sequential letter labels A, B, C…; fall back to ``:`` / ``;``."""
    expected = iter(string.ascii_uppercase)
    want = next(expected)
    cuts: list[tuple[int, int, str]] = []
    for match in _ITEM.finditer(value):
        letter = match[1] or match[2]
        if letter == want:
            cuts.append((match.start(), match.end(), letter))
            want = next(expected, "")
    if not cuts:
        parts = [p for p in re.split(r"[;:]\s+|\s+AND\s+", value) if p.strip()]
        return [(None, p) for p in parts] if len(parts) > 1 else [(None, value)]
    items: list[tuple[str | None, str]] = []
    if value[: cuts[0][0]].strip():
        items.append((None, value[: cuts[0][0]]))
    for i, (_, end, letter) in enumerate(cuts):
        stop = cuts[i + 1][0] if i + 1 < len(cuts) else len(value)
        items.append((letter, value[end:stop]))
    return items


def resolve(raw: str, own_year: int | None) -> str | None:
    """Canonical reference id of a cable named by ``raw``, or None."""
    text = re.sub(r"^(?:\(?[A-Z]\)|[A-Z]\.)\s+", "", " ".join(raw.upper().split()))
    text = _PREVIOUS.sub("", text).strip()  # ``PARIS 7682 AND PREVIOUS``
    match = _CABLE.match(text)
    if match is None:
        return None
    year_text, station, serial = match.groups()
    words = station.split()
    if any(w in _NOT_STATIONS for w in words) or int(serial) == 0:
        return None
    key = "".join(words).replace("'", "").replace("-", "")
    key = _STATION_ALIASES.get(key, key)
    if year_text:
        year = int(year_text) % 100
    elif own_year is not None:
        year = own_year % 100
    else:
        return None
    return f"{year:02d}{key}{int(serial)}"


def parse_references(text: str, own_year: int | None) -> list[dict[str, Any]]:
    """Parse the text of a REF block (label included) into reference objects."""
    value = " ".join(_LABEL.sub("", text).split())
    refs: list[dict[str, Any]] = []
    for label, item in _split_items(value):
        raw = item.strip(" .;,")
        if label:  # ``A. A) BRASILIA 236``: the label repeated inside the item
            raw = re.sub(rf"^(?:\({label}\)|{label}[.):])\s*", "", raw)
        if not raw:
            continue
        ref: dict[str, Any] = {"label": label, "raw": raw}
        if (ident := resolve(raw, own_year)) is not None:
            ref["id"] = ident
        refs.append(ref)
    return refs
