"""A cable whose line breaks were lost (a copy pasted through a single-line field, a page
scraped without its ``<pre>``): the breaks are put back where the telegram format has them.

The telegram's own landmarks say where lines began: the routing lines (``DE RUEHTA #0598``,
``ZNY CCCCC ZZH``, the date-time group, ``FM``/``TO``/``INFO``, one addressee per routing
code), the classification line (ending at its serial number), the caveats and labelled fields
above the text (SIPDIS, E.O., TAGS, SUBJECT, REF, Classified By), rules, numbered paragraphs,
and a signature after the last sentence. Only text with almost no line breaks at its head is
taken for flattened: teletype headers are short lines, and later cables that keep a paragraph
on one line still have them.
"""

from __future__ import annotations

import re

from .body import SIGNATURE_NAME
from .classification import LEVEL_PATTERN, LEVEL_WORDS, ClassLine, match_class_line
from .preamble import EXECUTIVE_ORDERS
from .text import PAGE_MARKER, SECTION_NUMBERS

_HEAD = 1500  # characters looked at to decide
_MIN_LENGTH = 200
# The longest real cables are ~100 KB; a longer single line is not a flattened cable, and
# re-lining it would only spend time (the parser then rejects it as it stands).
_MAX_LENGTH = 256 * 1024
_CLASS_WINDOW = 20_000  # the classification line is near the top

_HEADER_BREAK = re.compile(
    r" (?=VZCZC|(?:ZZ|OO|PP|RR) [A-Z]{4,}\b|DE [A-Z0-9]{3,12} #\d|ZN[YR] [A-Z]{5} ZZH"
    r"|[ZOPR](?: [ZOPR])? \d{6}Z ?[A-Z]{3} ?\d{2}\b|(?:FM|TO|INFO|XMT) [A-Z]|BT\b"
    r"|[A-Z]{4,8}/[A-Z])"
)
# The classification line: level, caveats or section, then a station and its serial.
_CLASS_LINE = re.compile(
    rf"(?:^| )((?:{LEVEL_PATTERN})(?://?[A-Z ]{{2,30}}?)?(?: SECTION \d{{1,3}} OF \d{{1,3}})?"
    r" [A-Z][A-Z .'-]{1,30}? \d{3,7})\b",
    re.I,
)
_CAVEATS = r"(?:SIPDIS|NOFORN|SENSITIVE BUT UNCLASSIFIED|SENSITIVE|EXDIS|NODIS|LIMDIS)\b"
_FIELD = (
    rf"E\.? ?O\.? ?(?:{EXECUTIVE_ORDERS})\b|TAGS?:? [A-Z]|SUBJ(?:ECT)?:|REFS?:|REFTELS?:"
    r"|(?:\([A-Z]{1,3}\) )?CLASSIFIED BY:?"
)
_FIELD_BREAK = re.compile(rf" (?={_FIELD}|{_CAVEATS})", re.I)
_AFTER_CAVEAT = re.compile(rf"(?<![A-Za-z])({_CAVEATS}) (?=[A-Z])")
_RULE = re.compile(r" ?(-{3,}) ?")
_FIRST_PARAGRAPH = re.compile(r" (?=(?:\([A-Z/]{1,8}\) )?1 ?\. ?(?:\([A-Z/]{1,8}\)|[A-Z]))")
_PARAGRAPH_BREAK = re.compile(
    r"(?<=[.:;)\"'!?]) +(?=\d{1,3} ?\. ?\([A-Z/]{1,8}\)|\d{1,3}\. [A-Z(])"
    r"|(?<=[.:;)\"'!?]) +(?=\([A-Z]{1,4}(?://?[A-Z]{1,5}){0,2}\) \d{1,3}\. )"
)
_PAGE_MARKER = re.compile(rf" (?:(?:{LEVEL_WORDS}) )?{PAGE_MARKER}\b")
_SIGNATURE = re.compile(rf"(?<=[.!?\"')]) ({SIGNATURE_NAME})\s*$")


def _section_markers(found: ClassLine | None) -> re.Pattern[str]:
    """``ALMATY 00000598 002 OF 002`` run into the text: the class line names the station (a
    pattern open to any words would take the words before the marker with it)."""
    station = re.escape(found.station) if found and found.station else r"[A-Z][A-Z'-]*"
    return re.compile(rf" {station} {SECTION_NUMBERS}\b")


def is_flattened(text: str) -> bool:
    """True when a text of cable size has (almost) no line breaks at its head."""
    return _MIN_LENGTH <= len(text) <= _MAX_LENGTH and text[:_HEAD].strip().count("\n") < 3


def reline(text: str) -> str:
    """Put back the line breaks of a flattened cable."""
    text = _PAGE_MARKER.sub("", " ".join(text.split()))
    after_fm = text.find(" FM ", 0, _HEAD * 3) + 1  # the class line follows the addressees
    found = _CLASS_LINE.search(text, after_fm, after_fm + _CLASS_WINDOW) or _CLASS_LINE.search(
        text, 0, _CLASS_WINDOW
    )
    if found is not None:
        header, class_line, rest = text[: found.start(1)], found[1], text[found.end(1) :]
        rest = _section_markers(match_class_line(class_line)).sub("", rest)
    else:  # the header ends where the labelled fields begin
        label = _FIELD_BREAK.search(text, after_fm)
        cut = label.start() if label else 0
        header, class_line, rest = text[:cut], "", text[cut:]
    paragraph = _FIRST_PARAGRAPH.search(rest)
    cut = paragraph.start() if paragraph else len(rest)
    preamble, body = rest[:cut], rest[cut:]
    preamble = _AFTER_CAVEAT.sub("\\1\n", _FIELD_BREAK.sub("\n\n", preamble))
    body = _PARAGRAPH_BREAK.sub("\n\n", body)
    body = _SIGNATURE.sub(r"\n\n\1", body)
    parts = (_HEADER_BREAK.sub("\n", header), class_line, preamble, body)
    return "\n".join(_RULE.sub("\n\\1\n", p).strip() for p in parts if p.strip()) + "\n"
