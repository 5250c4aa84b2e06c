"""E.O. line (declassification date, downgrade), SUBJECT with REF glued, addressees."""

from __future__ import annotations

import pytest

from worker.parse import parse_cable
from worker.parse.fields import declassify_on, downgrade

_HEAD = """VZCZCXYZ0001
PP RUEHWEB
DE RUEHC #5113 0491300
ZNY CCCCC ZZH
P 181300Z FEB 09
FM SECSTATE WASHDC
TO PAGE 02        STATE   015113  182333Z
ALL DIPLOMATIC POSTS COLLECTIVE PRIORITY
INFO PAGE 02        STATE   015113  182333Z
AMEMBASSY TRIPOLI PRIORITY

C O N F I D E N T I A L STATE 015113

"""


@pytest.mark.parametrize(
    ("line", "date"),
    [
        ("12958: DECL: 02/13/2016", "2016-02-13"),
        ("12958: DECL: 2019/12/17", "2019-12-17"),
        ("12958: DECL: 2019-02-12", "2019-02-12"),
        ("12958: DECL: 11/22/2012", "2012-11-22"),
        ("12958: DNG: CO 01/26/2021", None),
        ("12958: DECL: 1.4 B, D", None),
    ],
)
def test_declassification_date(line: str, date: str | None) -> None:
    """The DECL date in either order of its parts; a downgrade date is not it."""
    assert declassify_on(line) == date


def test_downgrade_kept_apart() -> None:
    """``DNG: CO 01/26/2021``: to CONFIDENTIAL's code, on that day, as written."""
    assert downgrade("12958: DNG: CO 01/26/2021") == {
        "to": "CO",
        "on": "2021-01-26",
        "text": "DNG: CO 01/26/2021",
    }
    assert downgrade("12958: DECL: 02/13/2016") is None


def test_page_markers_are_no_addressees_and_glued_fields_are_read() -> None:
    """PAGE markers among TO/INFO go; TAGS glued to DECL and REF glued to SUBJECT give both."""
    text = _HEAD + (
        "E.O. 12958: DECL: 2019/12/17 TAGS: PREL, KNNP\n"
        "SUBJECT: NEW START TALKS REF: STATE 77660\n"
        "Classified By: ISN/MTR Director Pam Durham for reasons 1.4 (b) and (d)\n\n"
        "1. (C) Text. CLINTON\n"
    )
    record = parse_cable(text)
    assert [r["name"] for r in record["to"]] == ["ALL DIPLOMATIC POSTS COLLECTIVE"]
    assert [r["name"] for r in record["info"]] == ["AMEMBASSY TRIPOLI"]
    assert record["declassify_on"] == "2019-12-17"
    assert [t["code"] for t in record["tags"]] == ["PREL", "KNNP"]
    assert record["subject"] == "NEW START TALKS"
    assert [r.get("id") for r in record["references"]] == ["09STATE77660"]
    assert record["classified_by"] is not None
    assert record["classified_by"]["name"] == "Pam Durham"
    assert record["signature"] == "CLINTON"
