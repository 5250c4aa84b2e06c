"""The body: numbered paragraphs with their markings, headings, summary and signature."""

from __future__ import annotations

import re
from dataclasses import dataclass, field

from worker.record import Paragraph

from .classification import LEVEL_WORDS
from .signature import TRAILER_LINE, take_signature
from .text import flatten

# ``(C)``, ``(S/NF)``, ``(SBU)``; 1970s copies write ``(C - ENTIRE TEXT)`` or ``(LOU)``.
_MARKING = r"\(([A-Z]{1,4}(?://?[A-Z]{1,5}){0,3})(?: ?- ?ENTIRE TEXT\.?)?\)"
# ``1. (C)``, ``1.(C)``, and ``10 (C)`` with its full stop lost.
_NUMBERED = re.compile(
    rf"^\s*(\d{{1,3}})(?:\s?\.(?:\s+|$|(?=\([A-Z]))|\s(?=\([A-Z]{{1,4}}[)/ ]))(?:{_MARKING}\s*)?"
)
_MARKED = re.compile(rf"^\s*{_MARKING}(?:\s+|$)")
_SUMMARY_START = re.compile(
    r"^(?:BEGIN\s+)?SUMMARY(?:\s+AND\s+(?:ACTION\s+REQUESTS?|COMMENTS?|INTRODUCTION))?\s*[:.\-]+\s*",
    re.I,
)
# Letter classes, not re.I: ~3x faster here, since the engine can skip on the first class.
_SUMMARY_END = re.compile(r"[Ee][Nn][Dd]\s+(?:[Oo][Ff]\s+)?[Ss][Uu][Mm][Mm][Aa][Rr][Yy]\b[\s.:]*")


@dataclass
class Body:
    """Paragraphs, summary, signature, and oddities noticed on the way."""

    paragraphs: list[Paragraph] = field(default_factory=list)
    summary: str | None = None
    signature: str | None = None
    problems: list[tuple[str, str]] = field(default_factory=list)


# Rules (``-----``), caveat-only lines and the classification alone on a line (a marking
# repeated above the text) are not text; ``SIPDIS`` glued to a line start neither. The look-ahead
# holds the first character of every alternative: most lines fail on it at once (~1.6x faster).
_DROP_LINES = re.compile(
    r"\n[ \t]*(?=[-=_*CELNSU])(?:"
    r"(?:[-=_*]{3,}(?:[ \t]+[-=_*]{3,})*|(?:(?:SIPDIS|NOFORN|SENSITIVE|EXDIS|NODIS|LIMDIS)[ \t,.;]*)+"
    rf"|{LEVEL_WORDS})[ \t]*(?=\n)"
    r"|SIPDIS[ \t]+(?=\S))"
)
_BLOCK_BREAK = re.compile(r"\n[ \t]*\n\s*|\n(?=[ \t]*\d{1,3} ?\.(?:[ \t]|$|\([A-Z]))")


# The post's pointer to its intranet site, with the URL lines that follow it.
_WEBSITE = re.compile(
    r"\n[ \t]*\"?(?:Please )?[Vv]isit\b[^\n]{0,80}?\bClassified Web ?[Ss]ite\b[^\n]*"
    r"(?:\n[^\n]*(?:https?://|www\.|\.gov\b|/wiki/|\.cfm|\bc fm\b|index\.|\bBlog at\b)[^\n]*)*"
)


def _signed_blocks(text: str) -> tuple[list[str], str | None]:
    """Blank-line separated blocks, cut again where a numbered paragraph starts; and the
    signature, taken out of the text."""
    text = _DROP_LINES.sub("\n", "\n" + text + "\n")
    text, signature = take_signature(text)
    text = _without_trailer(text)
    if "lassified Web" in text:
        text = _WEBSITE.sub("\n\n", text)
    blocks = [block.strip() for block in _BLOCK_BREAK.split(text) if block and not block.isspace()]
    return blocks, signature


def _without_trailer(text: str) -> str:
    """``text`` without the end-of-message lines after it, read from the end."""
    while True:
        rest, _, last = text.rstrip().rpartition("\n")
        if not rest or not TRAILER_LINE.fullmatch(last):
            return text
        text = rest + "\n"


def _is_heading(block: str) -> bool:
    return (
        len(block) <= 90  # before the count of line breaks: that scans the whole block
        and block.count("\n") <= 1
        and not block.endswith((".", ",", ";", ":", ")"))
        and not block.startswith(("-", "*", "o ", "("))
        and not block[0].islower()  # a wrapped sentence cut by a page break
        and not _ends_summary(block)
        and not _NUMBERED.match(block)
        and not _MARKED.match(block)
    )


# A teletype copy often ends the last sentence and the signature on one line: ``… BE. KISSINGER``.
# A signature in capitals (one or two names), as it ends a copy whose line breaks are gone.
SIGNATURE_NAME = r"[A-Z][A-Z'-]{2,20}(?: [A-Z][A-Z'-]{2,20})?"


def _ends_summary(text: str) -> bool:
    # substring tests first: a case-insensitive regex has no literal prefix to scan for
    return ("UMMARY" in text or "ummary" in text) and _SUMMARY_END.search(text) is not None


def _summary(paragraphs: list[Paragraph]) -> str | None:
    """The text from ``Summary:`` to ``End summary``, over up to six paragraphs."""
    for index, para in enumerate(paragraphs[:8]):
        heading = (para["heading"] or "").strip(" :.-").upper()
        heading_is_summary = heading in ("SUMMARY", "BEGIN SUMMARY")
        start = _SUMMARY_START.match(para["text"])
        if not (start or heading_is_summary):
            continue
        window = paragraphs[index : index + 6]
        last = next((k for k, p in enumerate(window) if _ends_summary(p["text"])), 0)
        texts = [p["text"] for p in window[: last + 1]]
        if start:
            texts[0] = texts[0][start.end() :]
        joined = "\n\n".join(texts)
        if end := _SUMMARY_END.search(joined):
            joined = joined[: end.start()]
        return joined.strip() or None
    return None


def parse_body(text: str) -> Body:
    """Split the body into paragraphs; find the summary and the signature."""
    body = Body()
    blocks, body.signature = _signed_blocks(text)
    heading: str | None = None
    for block in blocks:
        first = block[0]  # blocks are stripped and non-empty: test the cheap thing first
        numbered = _NUMBERED.match(block) if first.isdigit() else None
        marked = _MARKED.match(block) if first == "(" else None
        if not (numbered or marked) and _is_heading(block):
            if heading is not None:  # two short lines in a row: the first was text
                _append_text(body, heading)
            heading = flatten(block)
        elif numbered or marked or not body.paragraphs or heading is not None:
            match = numbered or marked
            body.paragraphs.append(
                {
                    "number": int(numbered[1]) if numbered else None,
                    "classification": (numbered[2] if numbered else marked[1] if marked else None),
                    "heading": heading,
                    "text": flatten(block[match.end() :] if match else block),
                }
            )
            heading = None
        else:
            body.paragraphs[-1]["text"] += "\n\n" + flatten(block)
    if heading is not None:  # a short last line is text, not the heading of nothing
        _append_text(body, heading)
    body.summary = _summary(body.paragraphs)
    _check_numbering(body)
    return body


def _append_text(body: Body, text: str) -> None:
    """Add ``text`` to the last paragraph, or make it the first one."""
    if body.paragraphs:
        body.paragraphs[-1]["text"] += "\n\n" + text
    else:
        body.paragraphs.append(
            {"number": None, "classification": None, "heading": None, "text": text}
        )


def _check_numbering(body: Body) -> None:
    previous: int | None = None
    for para in body.paragraphs:
        number = para["number"]
        if number is None:
            continue
        if previous is not None and number != previous + 1:
            body.problems.append(
                (
                    "paragraph_numbering",
                    f"paragraph {number} follows paragraph {previous}; expected {previous + 1}",
                )
            )
        previous = number
