"""Normalisation of raw cable text: what every field parser can then take for granted.

Undoes the damage copies pick up on the way: CRLF, web-scraped markdown link wrappers
(``[PHUM](#)``) and backslash escapes (``1\\.``), HTML entities and tags, mojibake, NUL and
control bytes, the pilcrow some sites put before list items, and the page/section continuation
markers that teletype pagination and PDF conversion insert mid-text
(``ALMATY 00000598 002 OF 002``, ``PAGE 02 HARARE 06677 01 OF 03 291400Z``).
"""

from __future__ import annotations

import html
import re

import ftfy

from .classification import LEVEL_WORDS

_MARKDOWN_LINK = re.compile(r"\[([^\[\]\n]{1,120})\]\((?:#|[^()\s]{0,300})\)")
# Markdown converters escape what would be markup: ``1\\.``, ``\\-\\-\\-``, ``\\#0598``, ``\\_``.
# Teletype had no backslash, so every one before punctuation is such an escape.
_MARKDOWN_ESCAPE = re.compile(r"\\([\\`*_{}\[\]()#+\-.!|<>~'\"])")
_HTML_TAG = re.compile(
    r"</?(?:a|b|i|u|p|br|pre|div|span|code|strong|em|font)\b[^<>\n]{0,300}>", re.I
)
# A whole web page (a publisher's HTML copy) rather than a stray tag or two.
_HTML_PAGE = re.compile(r"<(?:html|body|pre|table|div|!DOCTYPE)\b", re.I)
_SCRIPT_STYLE = re.compile(r"<(script|style)\b[^>]{0,500}>.*?</\1\s*>", re.I | re.S)
_PRE = re.compile(r"<pre\b[^>]{0,500}>(.*?)</pre\s*>", re.I | re.S)
_BREAK_TAG = re.compile(r"<(?:br|/p|/div|/tr|/h[1-6]|/li)\b[^>]{0,500}>", re.I)
_ANY_TAG = re.compile(r"<[^<>]{0,2000}>")
_CONTROL = re.compile(r"[\x00-\x08\x0b\x0c\x0e-\x1f\x7f]")
# UTF-8 read as cp1252/latin-1 leaves these lead characters: cheap substring tests first.
_MOJIBAKE_MARKS = ("\u00c3", "\u00c2", "\u00e2\u20ac", "\u00e2\u0080")
_MOJIBAKE_HINT = re.compile("[\u00c2\u00c3\u00e2][\u0080-\u00bf\u201a-\u203a\u0152-\u0178]")

# Patterns start with a literal newline (the text is searched with one prepended): Python's
# regex engine then skips ahead with a fast literal scan instead of trying every position.
#
# ``ALMATY 00000598 002 OF 002`` / ``STATE 00012345 001.2 OF 003``: a station, an 8-digit
# zero-padded serial, then the page. Alone on its line in the teletype copies.
# The parts after the station: what the parser of a flattened copy looks for as well.
SECTION_NUMBERS = r"0{2,}\d{1,8} +\d{3}(?:\.\d)? +OF +\d{3}"
# Alone on its line the station is a few words; run into a line of text, the words before it
# are the text's, and only a reader who knows the station can cut it (:func:`drop_markers`).
_MARKER_AT = re.compile(r" 0{2,}\d{1,8} +\d{3}(?:\.\d)? +(?:OF|of|Of) +\d{3}(?!\d)")
_STATION_ALONE = re.compile(r"[A-Za-z][A-Za-z.'-]*(?: [A-Za-z][A-Za-z.'-]*){0,2}")


def _markers(text: str) -> list[tuple[int, int, int, int]]:
    """Section markers in ``text``: (line start, marker start, marker end, line end). Found from
    the zeros of their serial with a string search, then checked: no regex scan of it all."""
    found: list[tuple[int, int, int, int]] = []
    pos = text.find(" 00")
    while pos >= 0:
        if (marker := _MARKER_AT.match(text, pos)) is not None:
            start = text.rfind("\n", 0, pos) + 1
            end = text.find("\n", marker.end())
            found.append((start, pos, marker.end(), len(text) if end < 0 else end))
            pos = marker.end()
        pos = text.find(" 00", pos + 1)
    return found


def _drop_section_lines(text: str) -> str:
    """Remove the lines that are a section marker alone."""
    kept: list[str] = []
    done = 0
    for start, marker, marker_end, end in _markers(text):
        if start < done or text[marker_end:end].strip(" \t"):
            continue
        if _STATION_ALONE.fullmatch(text[start:marker].strip(" \t")):
            kept.append(text[done:start])
            done = min(end + 1, len(text))
    return "".join(kept) + text[done:] if kept else text


# ``PAGE 02 HARARE 06677 01 OF 03 291400Z`` (PDF conversions): the text after the DTG belongs
# to the running text, so only the marker itself goes (with its line break, if alone on it).
PAGE_MARKER = r"PAGE \d{2,3} +[A-Z][A-Z .'-]{1,40}? +\d{2,8}(?: +\d{2} +OF +\d{2})? +\d{6}Z?"
_PAGE_MARKER = re.compile(rf"\n[ \t]*{PAGE_MARKER}[ \t]*(?:\n(?=[ \t]*\S))?")
# The classification repeated alone at a page break of PDF conversions (`` CONFIDENTIAL``),
# or at the top of each page of a 1970s copy (``CONFIDENTIAL`` over ``PAGE 02 …``; the first
# page's stays, a fallback when the cable's own classification line is missing).
_PAGE_CLASSIFICATION = re.compile(
    rf"\n(?:[ \t]+(?:{LEVEL_WORDS})(?: +[A-Z]{{3}}\d{{3,5}})?"
    rf"|[ \t]*(?:{LEVEL_WORDS})[ \t]*"
    r"(?=\n[ \t]*PAGE (?!0*1 )\d{2,3} ))[ \t]*(?=\n)"
)
# What both page patterns need, as a cheap first test: the engine scans for a literal prefix
# ~2x faster than ``"PAGE " in text`` (its last character, a space, is everywhere).
_PAGE_NUMBER = re.compile(r"PAGE \d")


def normalize(raw: str, *, has_controls: bool = True) -> str:
    """Return ``raw`` with line endings, entities, markup and continuation markers undone.

    ``has_controls=False`` lets a caller that already scanned for control characters skip that.
    """
    text = raw.replace("\r\n", "\n").replace("\r", "\n") if "\r" in raw else raw
    if not text.isascii():
        # a mark's first character alone is found at memchr speed, the pair ~15x slower
        if any(m[0] in text and m in text for m in _MOJIBAKE_MARKS) and _MOJIBAKE_HINT.search(text):
            text = ftfy.fix_text(text, normalization="NFC", unescape_html=False)
        if "\u00b6" in text:
            text = text.replace("\u00b6", "")
        if "\u00a0" in text:
            text = text.replace("\u00a0", " ")
    if has_controls:
        text = _CONTROL.sub("", text)
    if "\\" in text:
        text = _MARKDOWN_ESCAPE.sub(r"\1", text)
    if "]" in text:  # one character is found at memchr speed; "](" takes a scan ~15x slower
        text = _MARKDOWN_LINK.sub(r"\1", text)
    if "<" in text:
        text = _from_html(text) if _HTML_PAGE.search(text) else _HTML_TAG.sub("", text)
    if "&" in text:
        text = html.unescape(text)
    # Trailing blanks stay: every reader below tolerates them.
    has_section, has_page = " 00" in text, _PAGE_NUMBER.search(text) is not None
    if not (has_section or has_page):
        return text
    text = "\n" + text + "\n"
    # A marker's line goes whole: a sentence or a SUBJECT wrapped across a page break joins up.
    if has_section:
        text = _drop_section_lines(text)
    if has_page:
        text = _PAGE_CLASSIFICATION.sub("", text)
        text = _PAGE_MARKER.sub("\n", text)
    return text[1:-1]


def drop_markers(text: str, lines: list[str], station: str) -> list[str]:
    """Section markers of ``station`` run into a line of text (``… TO WASHINGTON BRASILIA
    00000351 001.2 OF 003``) cut out of it, case aside (``Ankara 00000536 002 of 002``)."""
    spans = _markers(text)
    if not spans:
        return lines
    marker = re.compile(rf"[ \t]*\b{re.escape(station)} +{SECTION_NUMBERS}\b", re.I)
    lines = list(lines)
    for start, _, _, _ in spans:
        index = text.count("\n", 0, start)
        if index < len(lines):
            lines[index] = marker.sub("", lines[index])
    return lines


def _from_html(page: str) -> str:
    """The cable inside a web page: its ``<pre>`` blocks if it has any, else the page's text."""
    page = _SCRIPT_STYLE.sub("", page)
    blocks = _PRE.findall(page)
    page = "\n\n".join(blocks) if blocks else _BREAK_TAG.sub("\n", page)
    return _ANY_TAG.sub("", page)


def flatten(text: str) -> str:
    """Wrapped lines → one line of single-spaced text (str.replace: ~7x faster than split/join)."""
    text = text.replace("\n", " ").replace("\t", " ")
    while "  " in text:
        text = text.replace("  ", " ")
    return text.strip()


def join_lines(lines: list[str]) -> str:
    """Join wrapped lines into one line of single-spaced text."""
    return flatten(" ".join(lines))
