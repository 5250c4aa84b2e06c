"""REF lines: lettered items split, cables resolved to canonical ids, the rest kept raw."""

from __future__ import annotations

import pytest

from worker.parse.references import parse_references


@pytest.mark.parametrize(
    ("line", "expected"),
    [
        (
            "REF: A. ALMATY 77 B. 05 ALMATY 4480",
            [("A", "ALMATY 77", "06ALMATY77"), ("B", "05 ALMATY 4480", "05ALMATY4480")],
        ),
        (
            "REF: A. A: HAVANA 00118 B. B: TD-314/63777-05",
            [("A", "HAVANA 00118", "06HAVANA118"), ("B", "TD-314/63777-05", None)],
        ),
        (
            "REF: TEHRAN 1091: MOSCOW 1603",
            [(None, "TEHRAN 1091", "06TEHRAN1091"), (None, "MOSCOW 1603", "06MOSCOW1603")],
        ),
        ("REF: 2009 STATE 122247", [(None, "2009 STATE 122247", "09STATE122247")]),
        ("REF: USUN NEW YORK 123", [(None, "USUN NEW YORK 123", "06USUNNEWYORK123")]),
        ("REF: SECSTATE 4567", [(None, "SECSTATE 4567", "06STATE4567")]),
        ("REF: A) OSD REPORT DTG 251847Z MAR 08", [("A", "OSD REPORT DTG 251847Z MAR 08", None)]),
        (
            "REF: STATE 297614 AND PREVIOUS 03 RANGOON 1427",
            [
                (None, "STATE 297614", "06STATE297614"),
                (None, "PREVIOUS 03 RANGOON 1427", "03RANGOON1427"),
            ],
        ),
    ],
)
def test_references(line: str, expected: list[tuple[str | None, str, str | None]]) -> None:
    """Each item gets its label, its raw text and, when it names a cable, its id."""
    refs = parse_references(line, 2006)
    assert [(r["label"], r["raw"], r.get("id")) for r in refs] == expected


@pytest.mark.parametrize(
    ("line", "ids"),
    [
        ("Ref: a. State 77660 b. Berlin 1000", ["06STATE77660", "06BERLIN1000"]),
        (
            "REFS: A) ABU DHABI 301  B) ABU DHABI 199  C) STATE 27497",
            ["06ABUDHABI301", "06ABUDHABI199", "06STATE27497"],
        ),
        (
            "REF: A. ALGIERS 111 B. ALGIERS 110 AND ALGIERS 140",
            ["06ALGIERS111", "06ALGIERS110", "06ALGIERS140"],
        ),
        ("REF: A. 09DHAHRAN 201 B. DOHA 152 (08)", ["09DHAHRAN201", "08DOHA152"]),
        (
            "REF: SAO PAULO 653; BRASILIA 709 (08) SAO PAULO 542",
            ["06SAOPAULO653", "08BRASILIA709", "06SAOPAULO542"],
        ),
        ("REF: MOSCOW 03242 2008", ["08MOSCOW3242"]),
        (
            "REF: A. STATE-LONDON SVTC MAY 9 B. LONDON 1159 C. TREMONT-PMAT EMAIL APRIL 16",
            ["06LONDON1159"],
        ),
        ("REF: A. PARIS POINTS NOV 22 B. PARIS 7425", ["06PARIS7425"]),
        ("REF: A. SECSTATE 2743 B. MADRID SP 0307", ["06STATE2743"]),
        ("REF: A. 7 FAM 180 B. 09 STATE 030541", ["09STATE30541"]),
        ("REF: IRPO DUBAI 95", ["06RPODUBAI95"]),
        ("REF: 09 XXXXXXXXXXXX 167", []),
    ],
)
def test_cables_cited(line: str, ids: list[str]) -> None:
    """Every cable an item cites is resolved (year before or after, labels in any case,
    stations of several words); meetings, e-mails, dates and manuals are not cables."""
    assert [r["id"] for r in parse_references(line, 2006) if "id" in r] == ids
