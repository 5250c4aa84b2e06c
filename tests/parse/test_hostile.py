"""Hostile inputs: each ends in a record or a ParseError, in bounded time (pytest-timeout)."""

from __future__ import annotations

import pytest

from worker.core.validate import validate_record
from worker.errors import ParseError
from worker.parse import parse_cable

HEAD = "C O N F I D E N T I A L ALMATY 000598\nE.O. 12958: DECL: 02/13/2016\n"

CASES = {
    "one gigantic line": HEAD + "A" * 1_000_000,
    "reasons repeated on one line": HEAD + "Classified By: " + "1.4 " * 200_000,
    "unclosed parentheses in REF": HEAD + "REF: A. ALMATY 77 (" + "(" * 200_000,
    "endless TAGS": HEAD + "TAGS: " + "ABCD, EFGH " * 100_000,
    "a megabyte of spaces": HEAD + " " * 1_000_000 + "x",
    "paragraph markers only": HEAD + "1. (C) " * 150_000,
    "summary never ends": HEAD + "1. Summary: " + "end " * 200_000,
    "thousands of header lines": "FM AMEMBASSY ALMATY\n" * 50_000 + HEAD,
    "HTML page": "<html>" + "<p>hello &amp; world</p>\n" * 20_000 + "</html>",
    "invalid UTF-8 decoded with replacement": (b"\xff\xfe\xfa" * 10_000).decode(errors="replace"),
    "NUL bytes": HEAD + "\x00" * 10_000,
    "JSON": '{"reference_id": "06ALMATY598", "classification": "UNCLASSIFIED"}',
}


@pytest.mark.parametrize("text", CASES.values(), ids=CASES.keys())
def test_hostile_input_has_an_outcome(text: str) -> None:
    """The parser returns a valid record or raises ParseError; nothing else escapes."""
    try:
        record = parse_cable(text)
    except ParseError as exc:
        outcome = str(exc)
    else:
        validate_record(record)
        outcome = record["reference_id"]
    assert outcome
