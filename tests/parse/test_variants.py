"""Small hand-written cables, one per field and per corruption seen in the wild."""

from __future__ import annotations

import csv
import io
from typing import Any

import orjson
import pytest

from worker.core.validate import validate_record
from worker.errors import ParseError
from worker.parse import parse_cable
from worker.parse.classification import match_class_line
from worker.parse.flattened import is_flattened
from worker.record import CableRecord

HEADER = """VZCZCXRO6349
PP RUEHDBU
DE RUEHTA #0598/01 0451133
ZNY CCCCC ZZH
P 141133Z FEB 06
FM AMEMBASSY ALMATY
TO RUEHC/SECSTATE WASHDC PRIORITY 4102
INFO RUEHIL/AMEMBASSY ISLAMABAD PRIORITY 2016

"""
BODY = """
E.O. 12958: DECL: 02/13/2016
TAGS: PHUM PREF KZ
SUBJECT: KAZAKHSTAN: A TEST SUBJECT

Classified By: DCM Mark Asquino, reasons 1.4 (B) and (D).

1. (C) First paragraph.

2. (C) Second paragraph.

ORDWAY
"""


def cable(
    class_line: str = "C O N F I D E N T I A L ALMATY 000598",
    *,
    header: str = HEADER,
    between: str = "\nSIPDIS\n",
    body: str = BODY,
) -> str:
    """Assemble a cable from its parts."""
    return f"{header}{class_line}\n{between}{body}"


def parsed(text: str) -> CableRecord:
    """Parse and validate; every variant must give a valid record."""
    record = parse_cable(text)
    validate_record(record)
    return record


def warning_codes(record: CableRecord) -> list[str]:
    """The codes of a record's warnings."""
    return [w["code"] for w in record["warnings"]]


@pytest.mark.parametrize(
    ("class_line", "between", "expected"),
    [
        ("C O N F I D E N T I A L ALMATY 000598", "", "CONFIDENTIAL"),
        ("S E C R E T ALMATY 000598", "\nNOFORN\nSIPDIS\n", "SECRET//NOFORN"),
        ("SE C R E T ALMATY 000598", "", "SECRET"),
        ("SS E C R E T ALMATY 000598", "", "SECRET"),
        ("E C R E T ALMATY 000598", "", "SECRET"),
        ("UUNCLAS ALMATY 000598", "\nSENSITIVE\n", "UNCLASSIFIED//FOR OFFICIAL USE ONLY"),
        ("UNCLAS SECTION 01 OF 03 ALMATY 000598", "", "UNCLASSIFIED"),
        ("C o n f i d e n t i a l section 01 of 04 almaty 000598", "", "CONFIDENTIAL"),
        ("CONFIDENTIAL ALMATY 000598", "\nDEA SENSITIVE\n", "CONFIDENTIAL"),
    ],
)
def test_classification_forms(class_line: str, between: str, expected: str) -> None:
    """Letter-spaced, garbled and lower-case classification lines give the published form."""
    record = parsed(cable(class_line, between=between))
    assert record["classification"] == expected
    assert record["reference_id"] == "06ALMATY598"


def test_crlf_and_html_entities() -> None:
    """CRLF line ends and HTML entities are undone before parsing."""
    text = cable().replace("KAZAKHSTAN: A TEST", "KAZAKHSTAN &amp; A TEST").replace("\n", "\r\n")
    record = parsed(text)
    assert record["subject"] == "KAZAKHSTAN & A TEST SUBJECT"
    assert record["signature"] == "ORDWAY"


def test_niact_immediate_precedence() -> None:
    """A NIACT IMMEDIATE action addressee makes the cable NIACT IMMEDIATE."""
    header = HEADER.replace("P 141133Z", "O 141133Z").replace(
        "WASHDC PRIORITY 4102", "WASHDC NIACT IMMEDIATE 4102"
    )
    record = parsed(cable(header=header))
    assert record["precedence"] == "NIACT IMMEDIATE"
    assert record["to"][0] == {
        "routing_code": "RUEHC",
        "name": "SECSTATE WASHDC",
        "precedence": "NIACT IMMEDIATE",
        "serial": "4102",
    }


def test_routing_header_fields() -> None:
    """Transmission id, prosigns, DE line and security line are all kept."""
    routing = parsed(cable())["routing"]
    assert routing == {
        "transmission_id": "VZCZCXRO6349",
        "prosigns": "PP",
        "routing_indicators": ["RUEHDBU"],
        "station": "RUEHTA",
        "serial": "0598",
        "section": 1,
        "julian_day": 45,
        "time": "1133",
        "security": "ZNY CCCCC ZZH",
    }


def test_secstate_origin_and_reference() -> None:
    """A Department cable is 'Secretary of State' with a STATE reference id."""
    header = HEADER.replace("FM AMEMBASSY ALMATY", "FM SECSTATE WASHDC")
    record = parsed(cable("S E C R E T STATE 012345", header=header))
    assert record["origin"] == "Secretary of State"
    assert record["reference_id"] == "06STATE12345"


def test_renamed_post_and_consulate() -> None:
    """Kiev is published as Kyiv; an AMCONSUL is a Consulate."""
    kiev = parsed(
        cable(
            "CONFIDENTIAL KIEV 000598", header=HEADER.replace("AMEMBASSY ALMATY", "AMEMBASSY KIEV")
        )
    )
    assert kiev["origin"] == "Embassy Kyiv"
    rio = parsed(
        cable(
            "CONFIDENTIAL RIO DE JANEIRO 000598",
            header=HEADER.replace("AMEMBASSY ALMATY", "AMCONSUL RIO DE JANEIRO"),
        )
    )
    assert rio["origin"] == "Consulate Rio De Janeiro"
    assert rio["reference_id"] == "06RIODEJANEIRO598"


def test_redacted_station_falls_back_to_fm() -> None:
    """A redacted station on the classification line takes the FM line's post."""
    record = parsed(cable("SECRET XXXXXXXXXXXX 000598"))
    assert record["reference_id"] == "06ALMATY598"


def test_spliced_body_keeps_header_identity() -> None:
    """A body copied from another cable does not steal the header's identity."""
    record = parsed(cable("S E C R E T SECTION 01 OF 04 MOSCOW 005154"))
    assert record["reference_id"] == "06ALMATY598"
    assert record["classification"] == "CONFIDENTIAL"  # from ZNY CCCCC
    assert "header_body_mismatch" in warning_codes(record)


def test_spliced_body_lends_no_caveats() -> None:
    """The NOFORN under another cable's classification line is that cable's caveat."""
    record = parsed(cable("S E C R E T SECTION 01 OF 04 MOSCOW 005154", between="\nNOFORN\n"))
    assert record["classification"] == "CONFIDENTIAL"
    own = parsed(cable(between="\nNOFORN\n"))
    assert own["classification"] == "CONFIDENTIAL//NOFORN"


def test_class_line_of_another_station_without_de_line_is_flagged() -> None:
    """With no DE line to decide, a class line naming another post than FM is reported; the
    same post spelled differently (SECSTATE / STATE, RPO DUBAI) is not."""
    bare = "R 272120Z FEB 09\nFM USINT HAVANA\nTO SECSTATE WASHDC 4178\n\n"
    record = parsed(cable("C O N F I D E N T I A L MOSCOW 000512", header=bare))
    assert "station_mismatch" in warning_codes(record)
    assert record["reference_id"] == "09MOSCOW512"
    state = bare.replace("FM USINT HAVANA", "FM SECSTATE WASHDC")
    record = parsed(cable("C O N F I D E N T I A L STATE 000512", header=state))
    assert "station_mismatch" not in warning_codes(record)
    dubai = bare.replace("FM USINT HAVANA", "FM RPO DUBAI")
    record = parsed(cable("C O N F I D E N T I A L RPO DUBAI 000049", header=dubai))
    assert "station_mismatch" not in warning_codes(record)


def test_missing_class_line_uses_security_line() -> None:
    """Without a classification line the security line gives the level."""
    text = HEADER.replace("CCCCC", "SSSSS") + BODY
    record = parsed(text)
    assert record["classification"] == "SECRET"
    assert record["reference_id"] == "06ALMATY598"
    assert "missing_classification_line" in warning_codes(record)


def test_partial_extract_infers_year() -> None:
    """A body-only copy parses, with the year inferred from the declassification date."""
    record = parsed(cable("C O N F I D E N T I A L MADRID 000527", header=""))
    assert record["reference_id"] == "06MADRID527"
    assert record["date"] is None
    assert record["origin"] == "Embassy Madrid"
    assert {"partial_extract", "year_inferred", "missing_date"} <= set(warning_codes(record))


def test_glued_preamble_fields() -> None:
    """E.O., TAGS and SUBJECT on one line are cut apart."""
    body = (
        "\nE.o. 12958: decl: 01/07/2014 Tags: prel, pgov, tu Subject: turkish p.m. goes"
        " to washington\n\n1. (C) Text.\n"
    )
    record = parsed(cable("C o n f i d e n t i a l ankara 000348", header="", body=body))
    assert [t["code"] for t in record["tags"]] == ["PREL", "PGOV", "TU"]
    assert record["subject"] == "turkish p.m. goes to washington"
    assert record["declassify_on"] == "2014-01-07"
    assert record["reference_id"] == "04ANKARA348"


@pytest.mark.parametrize(
    ("tags", "codes", "kinds"),
    [
        ("TAGS: PREL, PGOV, PK", ["PREL", "PGOV", "PK"], ["subject", "subject", "country"]),
        ("TAGS: EINDETRD KZ", ["EIND", "ETRD", "KZ"], ["subject", "subject", "country"]),
        ("TAGS: PGOV PECON IZ", ["PGOV", "ECON", "IZ"], ["subject", "subject", "country"]),
        (
            "TAGS: OVIP (CLINTON, HILLARY) NATO",
            ["OVIP", "CLINTON, HILLARY", "NATO"],
            ["subject", "person", "organisation"],
        ),
    ],
)
def test_tags_repaired_and_classified(tags: str, codes: list[str], kinds: list[str]) -> None:
    """Glued and misspelt tags are repaired; person tags stay whole; kinds are assigned."""
    record = parsed(cable(body=BODY.replace("TAGS: PHUM PREF KZ", tags)))
    assert [t["code"] for t in record["tags"]] == codes
    assert [t["kind"] for t in record["tags"]] == kinds


def test_references_forms() -> None:
    """Lettered, doubled-label and raw references; a missing year is the cable's own."""
    body = BODY.replace(
        "\nClassified", "REF: A. A) STATE 183800 B. 05 MOSCOW 12 C. SAINZ E-MAIL\n\nClassified"
    )
    refs = parsed(cable(body=body))["references"]
    assert refs == [
        {"label": "A", "raw": "STATE 183800", "id": "06STATE183800"},
        {"label": "B", "raw": "05 MOSCOW 12", "id": "05MOSCOW12"},
        {"label": "C", "raw": "SAINZ E-MAIL"},
    ]


@pytest.mark.parametrize(
    "text",
    [
        "",
        "   \n\n ",
        "hello world",
        "<html><body>Not a cable</body></html>",
        '{"json": true}',
        "\x00\x01\x02\x03" * 100,
    ],
)
def test_not_a_cable_raises_parse_error(text: str) -> None:
    """Text that is not a cable raises ParseError with a reason, never anything else."""
    with pytest.raises(ParseError) as info:
        parse_cable(text)
    assert str(info.value)


def test_cable_inside_a_web_page() -> None:
    """A publisher's HTML page: the cable is taken from its <pre> blocks, links unwrapped."""
    header, _, body = cable().partition("C O N F I D E N T I A L")
    page = (
        "<!DOCTYPE html><html><head><title>Cable</title><style>pre {color: red}</style>"
        "<script>var x = '<pre>not this</pre>';</script></head><body><div>Navigation</div>"
        f"<pre>{header}</pre><pre>C O N F I D E N T I A L{body}".replace(
            "TAGS: PHUM PREF KZ",
            "TAGS: <a href='/tag/PHUM_0.html'>PHUM</a> <a href='/tag/PREF_0.html'>PREF</a> KZ",
        ).replace("A TEST SUBJECT", "A TEST &amp; SUBJECT")
        + "</pre><div>Footer</div></body></html>"
    )
    record = parsed(page)
    assert record["reference_id"] == "06ALMATY598"
    assert record["subject"] == "KAZAKHSTAN: A TEST & SUBJECT"
    assert [t["code"] for t in record["tags"]] == ["PHUM", "PREF", "KZ"]
    assert record["signature"] == "ORDWAY"


def test_sections_copied_end_to_end() -> None:
    """Section 2's repeated header, classification line and trailers leave no trace."""
    section_two = (
        "BT\n#0598\nNNNN\n\n"
        + HEADER.replace("#0598/01", "#0598/02")
        + "C O N F I D E N T I A L SECTION 02 OF 02 ALMATY 000598\n\n"
        + "3. (C) Third paragraph.\n\nORDWAY\nBT\n#0598\nNNNN\n"
    )
    text = cable(
        "C O N F I D E N T I A L SECTION 01 OF 02 ALMATY 000598",
        body=BODY.replace("ORDWAY\n", section_two),
    )
    record = parsed(text)
    assert [p["number"] for p in record["paragraphs"]] == [1, 2, 3]
    assert record["paragraphs"][1]["text"] == "Second paragraph."
    assert record["signature"] == "ORDWAY"
    assert "paragraph_numbering" not in warning_codes(record)


def test_old_telegram_with_page_header() -> None:
    """A 1970s copy: PAGE/ACTION/INFO lines above the DTG, LIMITED OFFICIAL USE, BT."""
    text = (
        "PAGE 01 TEHRAN 01164 250930Z\nACTION NEA-11\n\nINFO OCT-01 ISO-00 SS-14\n"
        "------------------ 123456\nR 250930Z FEB 72\nFM AMEMBASSY TEHRAN\n"
        "TO SECSTATE WASHDC 7561\nINFO SECDEF\nBT\nLIMITED OFFICIAL USE TEHRAN 1164\n\n"
        "E.O. 11652: GDS\nTAGS: MASS MARR IR\nSUBJECT: ACCELERATION OF F-4ES FOR IRAN\n\n"
        "1. ON FEB 24 CHARGE WAS CONVOKED.\n\nHECK\n"
    )
    record = parsed(text)
    assert record["reference_id"] == "72TEHRAN1164"
    assert record["date"] == "1972-02-25T09:30:00Z"
    assert record["precedence"] == "ROUTINE"
    assert record["classification"] == "UNCLASSIFIED//FOR OFFICIAL USE ONLY"
    assert record["to"] == [
        {"routing_code": None, "name": "SECSTATE WASHDC", "precedence": None, "serial": "7561"}
    ]
    assert record["signature"] == "HECK"


def test_database_printout_cover_sheet() -> None:
    """A post's DB printout without routing header: origin, year and subject from its cover."""
    text = (
        "Diana T Fritz  03/21/2007 05:47:09 PM  From  DB/Inbox:  Search Results\n\n"
        "Cable\nText:\n\nCONFIDENTIAL\n\nSIPDIS\n"
        "TELEGRAM                                            June 03, 2003\n\n"
        "To:       No Action Addressee\nAction:   Unknown\n"
        "From:     AMEMBASSY ABU DHABI (ABU DHABI 2641 - UNKNOWN)\n"
        "TAGS:     PREL, EPET, EAID, PGOV\nCaptions: None\n"
        "Subject:  UAE TO SUPPORT JORDAN OIL NEEDS FOR THREE MORE MONTHS,\n"
        "          PROVIDED $40 MILLION TO RABAT AFTER TERROR ATTACKS\nRef:      None\n"
        "_______________________________________________\n"
        "C O N F I D E N T I A L        ABU DHABI 02641\n\nSIPDIS\nCXABU:\n"
        "    ACTION: POL\n    INFO:   AMB DCM\n\n1. (C) The UAE will support Jordan.\n"
    )
    record = parsed(text)
    assert record["reference_id"] == "03ABUDHABI2641"
    assert record["origin"] == "Embassy Abu Dhabi"
    assert record["classification"] == "CONFIDENTIAL"
    assert record["subject"] == (
        "UAE TO SUPPORT JORDAN OIL NEEDS FOR THREE MORE MONTHS, "
        "PROVIDED $40 MILLION TO RABAT AFTER TERROR ATTACKS"
    )
    assert [t["code"] for t in record["tags"]] == ["PREL", "EPET", "EAID", "PGOV"]
    assert record["date"] is None
    assert "cover_sheet" in warning_codes(record)


def test_paragraph_number_glued_to_marking() -> None:
    """``1.(C) Summary: …`` is paragraph 1 marked C, and its summary is found."""
    body = BODY.replace("1. (C) First paragraph.", "1.(C) Summary: All is well. End summary.")
    record = parsed(cable(body=body))
    assert [(p["number"], p["classification"]) for p in record["paragraphs"]] == [
        (1, "C"),
        (2, "C"),
    ]
    assert record["summary"] == "All is well."


@pytest.mark.parametrize("line", ["SECTION 00 OF 02", "SECTION 03 OF 02", "SECTION 01 OF 00"])
def test_impossible_section_is_left_out_with_a_warning(line: str) -> None:
    """A section number of 0, or above the total, cannot be (found by make fuzz)."""
    record = parsed(cable(f"C O N F I D E N T I A L {line} ALMATY 000598"))
    assert record["section"] is None
    assert "impossible_section" in warning_codes(record)
    assert record["reference_id"] == "06ALMATY598"


def test_station_without_letters_is_a_parse_error() -> None:
    """A garbled FM line whose post has no letters cannot name the cable (found by make fuzz)."""
    header = HEADER.replace("FM AMEMBASSY ALMATY", "FM AMEMBITY 1503")
    with pytest.raises(ParseError, match="holds no letters"):
        parse_cable(cable("C O N F I D E N T I A L 000598", header=header))


def test_impossible_julian_day_is_left_out() -> None:
    """Day 417 of a year on the DE line is garbled: no day, the rest parsed (make fuzz)."""
    record = parsed(cable(header=HEADER.replace("#0598/01 0451133", "#0598/01 4171133")))
    assert record["routing"] is not None
    assert record["routing"]["julian_day"] is None
    assert record["routing"]["time"] == "1133"
    assert record["reference_id"] == "06ALMATY598"


PLUSD = """CONFIDENTIAL
PAGE 01      MOSCOW 04512  01 OF 02  241530Z
ACTION EUR-12

INFO  OCT-01  ISO-00  CIAE-00  DODE-00  /045 W
                     ------------------102345 241545Z /50
P R 241500Z MAR 77
FM AMEMBASSY MOSCOW
TO SECSTATE WASHDC PRIORITY 1234
INFO AMCONSUL LENINGRAD
BT
C O N F I D E N T I A L SECTION 01 OF 02 MOSCOW 04512
EXDIS
E.O. 11652: GDS
TAGS: PFOR, UR, US
SUBJECT: SOVIET REACTION TO HUMAN RIGHTS STATEMENTS

1. (C - ENTIRE TEXT) SUMMARY: THE SOVIETS REACTED. END SUMMARY.

2. THE FIRST PAGE ENDS HERE
CONFIDENTIAL

PAGE 02      MOSCOW 04512  01 OF 02  241530Z
AND THE SENTENCE GOES ON. WE WILL REPORT. TOON


CONFIDENTIAL

Declassified/Released US Department of State EO Systematic Review 30 JUN 2005

NNN
"""


def test_1970s_copy_distribution_page_breaks_and_trailer() -> None:
    """A 1970s copy: the office distribution above the DTG is no addressee; the class line atop
    page 2 and the foot of the copy are no text; the signature ends the last sentence."""
    record = parsed(PLUSD)
    assert record["reference_id"] == "77MOSCOW4512"
    assert record["date"] == "1977-03-24T15:00:00Z"
    assert record["classification"] == "CONFIDENTIAL"
    assert record["caveats"] == ["EXDIS"]
    assert [r["name"] for r in record["to"]] == ["SECSTATE WASHDC"]
    assert [r["name"] for r in record["info"]] == ["AMCONSUL LENINGRAD"]
    assert record["paragraphs"][0]["classification"] == "C"
    assert record["summary"] == "THE SOVIETS REACTED."
    assert record["paragraphs"][1]["text"] == (
        "THE FIRST PAGE ENDS HERE\n\nAND THE SENTENCE GOES ON. WE WILL REPORT."
    )
    assert record["signature"] == "TOON"


@pytest.mark.parametrize(
    ("class_line", "station", "serial"),
    [
        ("UNCLAS E F T O STATE 012345", "STATE", 12345),
        ("UNCLAS EFTO SECTION 01 OF 02 STATE 012345", "STATE", 12345),
        ("C O N F I D E N T I A L STATE 123456 TOSEC 120045", "STATE", 123456),
    ],
)
def test_class_line_transmission_words(class_line: str, station: str, serial: int) -> None:
    """EFTO is an instruction, not a station; a TOSEC number after the serial is the series'."""
    found = match_class_line(class_line)
    assert found is not None
    assert (found.station, found.serial) == (station, serial)


def test_headings_keep_their_place_and_no_text_is_dropped() -> None:
    """Two short lines in a row: the first is text; a block after a heading is its paragraph;
    ``10 (C)`` without its full stop is paragraph 10; a lone ``CONFIDENTIAL`` is a marking."""
    body = BODY.replace(
        "2. (C) Second paragraph.\n",
        "CONFIDENTIAL\n\nCOUNTRY TEAM MESSAGE\n\nBEGIN SUMMARY\n\nTHE SUMMARY TEXT. END SUMMARY\n\n"
        "2. (C) Second paragraph.\n\nBackground\n\nUnnumbered text.\n\n3 (S) Third.\n",
    )
    record = parsed(cable(body=body))
    paragraphs = [(p["number"], p["classification"], p["heading"], p["text"]) for p in
                  record["paragraphs"]]  # fmt: skip
    assert paragraphs == [
        (1, "C", None, "First paragraph.\n\nCOUNTRY TEAM MESSAGE"),
        (None, None, "BEGIN SUMMARY", "THE SUMMARY TEXT. END SUMMARY"),
        (2, "C", None, "Second paragraph."),
        (None, None, "Background", "Unnumbered text."),
        (3, "S", None, "Third."),
    ]
    assert record["summary"] == "THE SUMMARY TEXT."


def test_markdown_escapes_are_undone() -> None:
    """A markdown converter's backslash escapes (``1\\.``, ``\\#0598``, ``\\-\\-\\-``) leave no trace."""
    text = cable(body=BODY.replace("1. (C)", "\\-\\-\\-\n1\\. (C)").replace("2. (C)", "2\\. (C)"))
    record = parsed(text.replace("#0598", "\\#0598").replace("E.O.", "E\\.O\\."))
    assert record["reference_id"] == "06ALMATY598"
    assert [p["number"] for p in record["paragraphs"]] == [1, 2]
    assert record["declassify_on"] == "2016-02-13"
    assert "\\" not in record["paragraphs"][0]["text"]


def test_website_notice_is_not_text_and_hides_no_signature() -> None:
    """The post's 'Visit … Classified Website' notice, above or below the signature."""
    notice = "Please visit Paris' Classified Website at:\nhttp://www.state.sgov.gov/p/eur/paris/index.c fm"
    below = parsed(cable(body=BODY.replace("ORDWAY\n", f"{notice}\nORDWAY\n")))
    above = parsed(cable(body=BODY.replace("ORDWAY\n", f"ORDWAY\n\n{notice}\n")))
    for record in (below, above):
        assert record["signature"] == "ORDWAY"
        assert record["paragraphs"][-1]["text"] == "Second paragraph."


CABLEGATE_COLUMNS = ["1", "2/14/2006 11:33", "06ALMATY598", "Embassy Almaty", "CONFIDENTIAL", ""]


def _fields(record: CableRecord) -> tuple[object, ...]:
    return (
        record["reference_id"], record["date"], record["classification"], record["origin"],
        record["subject"], [t["code"] for t in record["tags"]], record["signature"],
    )  # fmt: skip


@pytest.mark.parametrize(
    "wrap",
    [
        pytest.param(lambda t: orjson.dumps({"id": 7, "content": t}).decode(), id="json-content"),
        pytest.param(lambda t: orjson.dumps([{"meta": {"cable": t}}]).decode(), id="json-nested"),
        pytest.param(
            lambda t: orjson.dumps({"header": HEADER, "content": t[len(HEADER) :]}).decode(),
            id="json-header-content",
        ),
        pytest.param(
            lambda t: _csv_row([*CABLEGATE_COLUMNS, HEADER, t[len(HEADER) :]]),
            id="cablegate-csv",
        ),
        pytest.param(lambda t: "\n".join("> " + line for line in t.split("\n")), id="e-mail"),
        pytest.param(lambda t: "\n".join(">> " + line for line in t.split("\n")), id="e-mail-2"),
    ],
)
def test_cable_inside_its_container(wrap: Any) -> None:
    """A JSON document, a Cablegate CSV row, a quoted e-mail: the cable inside is parsed."""
    text = cable()
    assert _fields(parsed(wrap(text))) == _fields(parsed(text))


def _csv_row(fields: list[str]) -> str:
    out = io.StringIO()
    csv.writer(out, quoting=csv.QUOTE_ALL).writerow(fields)
    return out.getvalue()


def test_flattened_cable_gets_its_lines_back() -> None:
    """All line breaks lost: header, class line, fields, paragraphs and signature are found
    again from the format's landmarks, and the record says so."""
    text = cable(body=BODY.replace("2. (C) Second", "ALMATY 00000598 002 OF 002\n2. (C) Second"))
    flat = " ".join(text.split())
    record = parsed(flat)
    assert _fields(record) == _fields(parsed(text))
    assert [(p["number"], p["text"]) for p in record["paragraphs"]] == [
        (1, "First paragraph."), (2, "Second paragraph.")
    ]  # fmt: skip
    assert record["classified_by"] is not None
    assert record["classified_by"]["name"] == "Mark Asquino"
    assert [r["name"] for r in record["info"]] == ["AMEMBASSY ISLAMABAD"]
    assert "line_breaks_restored" in warning_codes(record)
    assert "line_breaks_restored" not in warning_codes(parsed(text))


def test_long_single_line_is_not_relined() -> None:
    """Only text of cable size with no line breaks at its head is taken for flattened: a
    single line far longer than any cable is left as it is (and is no cable)."""
    assert is_flattened(" ".join(cable().split()))
    assert not is_flattened(cable())
    long_line = "S E C R E T " * 30_000
    assert not is_flattened(long_line)
    with pytest.raises(ParseError):
        parse_cable(long_line)
