"""The signature: the signing officer's name that ends a telegram's text.

A telegram is signed with the name alone, after the last paragraph: on a line of its own
(``ORDWAY``, ``Timken jr``, ``LA LIME``), or run into the last sentence when the copy lost the
line break (``… effects beyond. BURNS``). What may follow it is no text: end-of-message lines
(``BT``, ``NNNN``, ``#1164``), the classification repeated at the foot of the page, a
publisher's ``End Cable Text`` or its file stamp, and the post's website notice. A quoted
cable keeps its own signature before ``UNQUOTE``; the name after it is the sender's.
"""

from __future__ import annotations

import re

from .classification import LEVEL_WORDS

# A word of a name: a surname in capitals or capitalised (``McDONALD``, ``LeBaron``,
# ``O'Neill``, ``Barth-Eide``), an initial (``J.``), or a generational suffix.
_NAME_WORD = r"(?:[A-Z][a-z]?[A-Z]?[A-Za-z'-]*[A-Za-z]|[A-Z]\.|[Jj][Rr]\.?|[Ss][Rr]\.?|I{2,3}|IV)"
_NAME = re.compile(rf"{_NAME_WORD}(?: {_NAME_WORD}){{0,3}}")
# Words of the text that a signing line never is: message markers and closing formulas.
_NOT_NAME_WORDS = """
    END BEGIN COMMENT COMMENTS SUMMARY TEXT NOTE QUOTE UNQUOTE BT NNNN NNN SIPDIS NOFORN EXDIS
    NODIS LIMDIS STADIS SENSITIVE REGARDS THANKS THANK YOU CLASSIFIED CONFIDENTIAL SECRET
    UNCLASSIFIED UNCLAS MINIMIZE CONSIDERED PAGE SECTION OF SEPTEL REFTEL CABLE MESSAGE ACTION
    REQUEST PLEASE ADVISE THE AND OR FOR TO IN ON AT BY WITH FROM AS IS ARE WAS A AN
    DECLASSIFIED RELEASED DECL CLEARED DRAFTED APPROVED INFO TAGS SUBJECT REF REFS
    CONCLUSION BACKGROUND ENDS
"""
_NOT_NAMES = frozenset(_NOT_NAME_WORDS.split())
_REDACTED = re.compile(r"X{4,}|\[[^\]]*\]", re.I)
_SUFFIXES = frozenset({"JR", "JR.", "SR", "SR.", "II", "III", "IV"})
# Closing markers a signature may follow on its line: the end of a quoted cable, a minimize
# note (``MINIMIZE CONSIDERED SHANNON``), the end of a quoted text or comment.
_CLOSING = re.compile(
    r"^(?:.*\b(?:UNQUOTE|END QUOTE|MINIMIZE CONSIDERED|END (?:OF )?TEXT|END COMMENT)\b[.:]?\s+)",
    re.I,
)
# Abbreviations whose full stop ends no sentence: ``U.S. Embassy`` is not ``… here. Embassy``.
_ABBREVIATION_WORDS = (
    "MR MRS MS DR ST NO GEN AMB SEN REP GOV LT COL MAJ CAPT ADM SGT PROF VS MT FT CO INC"
)
_ABBREVIATIONS = frozenset(_ABBREVIATION_WORDS.split())
_LAST_WORD = re.compile(r"[\s(]")
_GLUED = re.compile(rf"(?:^|(?<=[.!?)\"'\u201d\u2019]))[ \t]+({_NAME.pattern})[ \t]*\.?$")

# What follows the text at the end of a copy: end-of-message (``BT``, ``#1164``, ``NNNN``), the
# classification repeated at the foot of the last page, the releasing office's stamp, the
# publisher's ``End Cable Text`` and file stamp (``2004CARACA02200 - CONFIDENTIAL``), page
# markers and stray marks left by the conversion (``>``).
TRAILER_LINE = re.compile(
    rf"[ \t]*(?:BT|NNNN?|#\d{{1,6}}|(?:{LEVEL_WORDS})(?: [A-Z]{{2,6}})?"
    rf"|Declassified/Released [^\n]{{0,120}}|Systematic Review [^\n]{{0,40}}|End Cable Text|\d{{4}}[A-Z]{{2,}}\d{{3,}}"
    rf"(?: - [A-Z /]{{2,40}})?|PAGE \d{{2,3}}\b[^\n]{{0,80}}|[^\w\n]{{1,3}})[ \t]*",
    re.I,
)


def _is_name(text: str) -> bool:
    words = text.upper().replace(".", " ").split()
    return (
        bool(words)
        and _NOT_NAMES.isdisjoint(words)
        and words[0] not in _SUFFIXES
        and max(map(len, words)) > 1
        and text.strip("X ") != ""
    )


def clean_name(text: str) -> str | None:
    """The signing name in ``text`` as written, or None: a doubled name (``KUBISKE KUBISKE``,
    ``SHANNON Shannon``) counts once; a full stop standing apart (``MANZANARES .``) goes."""
    words = text.split()
    if "." in words or "XXXX" in text or "xxxx" in text or "[" in text:
        words = [w for w in words if w != "." and not _REDACTED.fullmatch(w)]
    text = " ".join(words)
    if len(words) == 2 and words[0].upper() == words[1].upper():
        text = words[0]
    elif len(words) >= 2 and len(words) % 2 == 0:
        half = len(words) // 2
        if [w.upper() for w in words[:half]] == [w.upper() for w in words[half:]]:
            text = " ".join(words[:half])
    return text if _NAME.fullmatch(text) and _is_name(text) else None


def line_signature(line: str) -> tuple[str, str] | None:
    """``(text before, name)`` when ``line`` is a signing line of its own, after any closing
    marker (``CLINTON UNQUOTE CLINTON``, ``END COMMENT. CROCKER``): the marker stays text."""
    line = line.strip()
    if len(line) > 60:
        return None
    before = ""
    upper = line.upper()
    if ("QUOTE" in upper or "MINIMIZE" in upper or "END " in upper) and (
        closing := _CLOSING.match(line)
    ):
        before, line = line[: closing.end()].rstrip(), line[closing.end() :]
    if line.endswith(".") and not line.endswith(" ."):
        last = line.split()[-1].rstrip(".").upper()
        if len(last) > 1 and last not in _SUFFIXES:
            return None  # ``ASSISTANCE.``: the end of a wrapped sentence
    name = clean_name(line)
    return (before, name) if name else None


def glued_signature(line: str) -> tuple[str, str] | None:
    """``(text before, name)`` when ``line`` ends a sentence and then names the signer."""
    match = _GLUED.search(line, max(0, len(line) - _GLUED_REACH))
    if match is None or match.start() == 0:
        return None
    before = line[: match.start()].rstrip()
    word = _LAST_WORD.split(before[-40:])[-1].rstrip(".!?)\"'\u201d\u2019")
    name = clean_name(match[1])
    abbreviated = before.endswith(".") and (
        word.upper() in _ABBREVIATIONS or "." in word or (len(word) == 1 and word.isalpha())
    )
    if abbreviated and not (name and name.isupper() and any(c.islower() for c in before)):
        return None  # ``U.S. Embassy``, ``Mr. Smith``; but ``… with the U.S. PATTERSON``
    return (before, name) if name else None


# Lines of the post's website notice: the pointer, the URL (often broken by a space), the rule.
_NOTICE = re.compile(
    r"https?://|www\.|\.s?gov\b|/wiki/|Classified (?:Web ?[Ss]ite|SIPRNET)|\bvisit\b[^\n]*:\s*$"
    r"|access this site",
    re.I,
)
_SECTION_MARKER = re.compile(
    r"[ \t]*[A-Za-z][A-Za-z .'-]{1,40} 0{2,}\d{1,8} +\d{3}(?:\.\d)? +OF +\d{3}[ \t]*", re.I
)
_CUT_SHORT = re.compile(r"[^\n]{1,60}(?:\.\.\.|\u2026)[ \t]*")
_URL_TAIL = re.compile(r"\s(\S+)\s*$")
_SCAN = 16  # lines looked at, from the end
_GLUED_REACH = 120  # characters at the end of a line where a run-in name is looked for
_TRAILER_LENGTH = 140  # no trailer line is longer
_NOTICE_WORDS = ("http", "www.", ".gov", "wiki/", "lassified", "ccess this", "isit:")


def _skippable(line: str) -> bool:
    if len(line) > _TRAILER_LENGTH:
        return False
    return (
        not line.strip(" \t-=_*")
        or TRAILER_LINE.fullmatch(line) is not None
        or _SECTION_MARKER.fullmatch(line) is not None
        or _CUT_SHORT.fullmatch(line) is not None
    )


def find_signature(
    lines: list[str], *, has_text_above: bool = False
) -> tuple[int, str, str] | None:
    """Where the signature is: (line index, the line without it, the name), or None.

    Read from the end: trailers and the website notice are passed over (a name run into the
    notice's last URL line is taken), then the last line of text is either a signing line of
    its own or ends a sentence and then names the signer."""
    index = len(lines)
    stop = max(0, index - _SCAN)
    while index > stop:
        index -= 1
        line = lines[index]
        if _skippable(line):
            continue
        if any(word in line for word in _NOTICE_WORDS) and _NOTICE.search(line):
            if (tail := _URL_TAIL.search(line)) and (name := clean_name(tail[1])):
                return index, line[: tail.start()], name
            continue
        break
    else:
        return None
    line = lines[index]
    above = has_text_above or any(lines[k].strip() for k in range(index))
    if above and (own := line_signature(line)):
        return index, own[0], own[1]
    if glued := glued_signature(line):
        return index, glued[0], glued[1]
    return None


def take_signature(text: str) -> tuple[str, str | None]:
    """``text`` without its signature, and the signature (None when unsigned). Only the last
    lines are split off: the body above them is not split line by line."""
    parts = text.rsplit("\n", _SCAN + 1)
    head, lines = (parts[0], parts[1:]) if len(parts) > _SCAN + 1 else ("", parts)
    found = find_signature(lines, has_text_above=bool(head) and not head.isspace())
    if found is None:
        return text, None
    index, rest, name = found
    lines[index] = rest
    return "\n".join([head, *lines] if len(parts) > _SCAN + 1 else lines), name
