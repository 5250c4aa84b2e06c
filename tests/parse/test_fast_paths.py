"""The parser's speed rests on cheap first tests (a character before a pair, a pattern's first
letters) in front of its readers: each must let through every text its reader acts on."""

from __future__ import annotations

import re

import pytest

from worker.parse.body import parse_body
from worker.parse.cable import _YEAR
from worker.parse.header import parse_recipient
from worker.parse.sections import join_sections
from worker.parse.text import normalize

_YEAR_AS_WRITTEN = re.compile(r"\b(19[6-9]\d|20[0-2]\d)\b")


@pytest.mark.parametrize(
    "text",
    [
        "1999",
        "In 1999 and 2006, not 1959 or 2031.",
        "x1999 1999x _1999 1999_ 19999 21999 12006",
        "caf\u00e91999 \u00e91999 1999\u00e9 \u03b12006 \u06632006 2006\u0663",
        "(1975)-2010/2029.1960,2000\n2001",
    ],
)
def test_year_pattern_keeps_the_word_boundary(text: str) -> None:
    """The year pattern that opens with its digit finds what ``\\b(19[6-9]\\d|20[0-2]\\d)\\b``
    finds, Unicode letters and digits around the year included."""
    assert _YEAR.findall(text) == _YEAR_AS_WRITTEN.findall(text)


@pytest.mark.parametrize(
    "line",
    [
        "-----",
        "=====  =====",
        "_____",
        "*****",
        "SIPDIS",
        "NOFORN",
        "SENSITIVE",
        "EXDIS",
        "NODIS",
        "LIMDIS",
        "NOFORN, SIPDIS.",
        "UNCLASSIFIED",
        "CONFIDENTIAL",
        "SECRET",
        "LIMITED OFFICIAL USE",
        "  CONFIDENTIAL  ",
    ],
)
def test_every_kind_of_non_text_line_is_dropped(line: str) -> None:
    """Rules, caveat lines and a classification alone on a line leave no trace in the text,
    whatever the character they begin with."""
    body = parse_body(f"1. (C) First paragraph.\n{line}\n\n2. (C) Second paragraph.\n")
    assert [p["text"] for p in body.paragraphs] == ["First paragraph.", "Second paragraph."]


def test_sipdis_glued_to_a_line_start_is_dropped() -> None:
    """``SIPDIS`` run into the first words of a line goes; the words stay."""
    body = parse_body("1. (C) First paragraph.\nSIPDIS   More of it.\n")
    assert [p["text"] for p in body.paragraphs] == ["First paragraph. More of it."]


@pytest.mark.parametrize(
    ("text", "encoding"),
    [
        ("Let\u2019s meet at the caf\u00e9 \u2014 today", "cp1252"),
        ("Let\u2019s meet at the caf\u00e9 \u2014 today", "latin-1"),
        ("Let\u2019s meet \u2014 today", "latin-1"),
    ],
)
def test_utf8_read_as_a_western_codepage_is_repaired(text: str, encoding: str) -> None:
    """Mojibake (``Ã©``, ``â€™``, ``â\\x80\\x99``) is found by its lead character and repaired."""
    assert normalize(text.encode("utf-8").decode(encoding)) == text.replace("\u2019", "'")


def test_markdown_links_go_and_brackets_stay() -> None:
    """``[PHUM](#)`` is unwrapped; a bracket that opens no link is text."""
    assert normalize("TAGS: [PHUM](#) [KZ](/tag/KZ) [sic]") == "TAGS: PHUM KZ [sic]"


def test_page_markers_go_and_the_word_page_stays() -> None:
    """A page marker of a converted copy goes; ``PAGE`` in the text is no marker."""
    text = "WE WILL\nPAGE 02 HARARE 06677 01 OF 03 291400Z\nREPORT ON PAGE TWO."
    assert normalize(text) == "WE WILL\nREPORT ON PAGE TWO."


@pytest.mark.parametrize(
    ("text", "joined"),
    [
        ("Text.\nNNNN\nMore.", "Text.\nMore."),
        ("Text.\nBT\nMore.", "Text.\nMore."),
        ("Text.\n#0598\nBT\nMore.", "Text.\nMore."),
        ("Text.\nC O N F I D E N T I A L SECTION 02 OF 02 ALMATY 000598\nMore.", "Text.\nMore."),
        ("Text.\nVZCZCXRO6350\nDE RUEHTA #0598/02\n\nMore.", "Text.\nMore."),
        ("Text.\n#0598\nMore.", "Text.\n#0598\nMore."),
    ],
)
def test_each_mark_of_a_copied_section_opens_the_join(text: str, joined: str) -> None:
    """Any one of the marks (NNNN, a BT line, a section's class line, a repeated header) is
    enough for the trailers around it to go; without one the text is left as it is."""
    assert join_sections(text) == joined


@pytest.mark.parametrize(
    ("text", "name", "precedence", "serial"),
    [
        ("RUEHC/SECSTATE WASHDC PRIORITY 4102", "SECSTATE WASHDC", "PRIORITY", "4102"),
        ("RUEHC/SECSTATE WASHDC NIACT IMMEDIATE", "SECSTATE WASHDC", "NIACT IMMEDIATE", None),
        ("AMEMBASSY PARIS IMMEDIATE 0012", "AMEMBASSY PARIS", "IMMEDIATE", "0012"),
        ("AMEMBASSY ALMATY 2016", "AMEMBASSY ALMATY", None, "2016"),
        ("AMEMBASSY ROME ROUTINE 7", "AMEMBASSY ROME", "ROUTINE", "7"),
        ("USCINCCENT MACDILL AFB FL FLASH", "USCINCCENT MACDILL AFB FL", "FLASH", None),
        ("ROUTINE", "ROUTINE", None, None),
        ("USMISSION GENEVA PRIORITYX", "USMISSION GENEVA PRIORITYX", None, None),
    ],
)
def test_addressee_precedence(
    text: str, name: str, precedence: str | None, serial: str | None
) -> None:
    """A precedence is taken off the end of an addressee only when it is a word of its own
    after a name."""
    recipient = parse_recipient(text)
    assert (recipient["name"], recipient["precedence"], recipient["serial"]) == (
        name,
        precedence,
        serial,
    )
