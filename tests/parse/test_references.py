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
