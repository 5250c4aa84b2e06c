"""The body: numbered paragraphs with their markings, headings, summary and signature."""

from __future__ import annotations

import re
from dataclasses import dataclass, field
from typing import Any

from .text import join_lines

_NUMBERED = re.compile(r"^\s*(\d{1,3})\s?\.(?:\s+|$)(?:\(([A-Z]{1,4}(?://?[A-Z]{1,5}){0,3})\)\s*)?")
_MARKED = re.compile(r"^\s*\(([A-Z]{1,4}(?://?[A-Z]{1,5}){0,3})\)\s+")
_SIGNATURE = re.compile(r"^[A-Z][A-Za-z.'-]*(?: [A-Z][A-Za-z.'-]*){0,2}$")
_NOT_SIGNATURE = frozenset(
    {
        "END",
        "SUMMARY",
        "COMMENT",
        "END SUMMARY",
        "END COMMENT",
        "BT",
        "NNNN",
        "SIPDIS",
        "NOFORN",
        "TEXT",
        "END TEXT",
        "UNQUOTE",
        "QUOTE",
    }
)
_SUMMARY_START = re.compile(
    r"^(?:BEGIN\s+)?SUMMARY(?:\s+AND\s+(?:ACTION\s+REQUESTS?|COMMENTS?|INTRODUCTION))?\s*[:.\-]+\s*",
    re.I,
)
_SUMMARY_END = re.compile(r"\bEND\s+(?:OF\s+)?SUMMARY\b[\s.:]*", re.I)


@dataclass
class Body:
    """Paragraphs, summary, signature, and oddities noticed on the way."""

    paragraphs: list[dict[str, Any]] = field(default_factory=list)
    summary: str | None = None
    signature: str | None = None
    problems: list[tuple[str, str]] = field(default_factory=list)


# Rules (``-----``) and caveat-only lines are not text; ``SIPDIS`` glued to a line start neither.
_DROP_LINES = re.compile(
    r"\n[ \t]*(?:[-=_*]{3,}|(?:(?:SIPDIS|NOFORN|SENSITIVE|EXDIS|NODIS|LIMDIS)[ \t,.;]*)+)[ \t]*(?=\n)"
)
_BLOCK_BREAK = re.compile(r"\n[ \t]*\n\s*|\n(?=[ \t]*\d{1,3} ?\.(?:[ \t]|$))")
_GLUED_SIPDIS = re.compile(r"\nSIPDIS[ \t]+")


def _chunks(text: str) -> list[list[str]]:
    """Blank-line separated blocks of lines, cut again where a numbered paragraph starts."""
    text = "\n" + text + "\n"
    if "SIPDIS" in text:
        text = _GLUED_SIPDIS.sub("\n", text)
    text = _DROP_LINES.sub("\n", text)
    chunks = []
    for block in _BLOCK_BREAK.split(text):
        lines = [line for line in block.split("\n") if line.strip()]
        if lines:
            chunks.append(lines)
    return chunks


def _is_heading(chunk: list[str]) -> bool:
    text = " ".join(chunk).strip()
    return (
        len(chunk) <= 2
        and len(text) <= 90
        and not text.endswith((".", ",", ";", ":"))
        and not _NUMBERED.match(text)
        and not _MARKED.match(text)
    )


def _take_signature(chunks: list[list[str]]) -> str | None:
    if not chunks:
        return None
    last = chunks[-1]
    candidate = last[-1].strip()
    if (
        not _SIGNATURE.match(candidate)
        or candidate.upper() in _NOT_SIGNATURE
        or len(candidate) > 40
        or (len(last) == 1 and len(chunks) == 1)
    ):
        return None
    last.pop()
    if not last:
        chunks.pop()
    return candidate


def _summary(paragraphs: list[dict[str, Any]]) -> str | None:
    for index, para in enumerate(paragraphs[:8]):
        heading_is_summary = (para.get("heading") or "").strip(" :.-").upper() == "SUMMARY"
        start = _SUMMARY_START.match(para["text"])
        if not (start or heading_is_summary):
            continue
        texts = [para["text"][start.end() :] if start else para["text"]]
        for later in paragraphs[index + 1 : index + 6]:
            if _SUMMARY_END.search(texts[-1]):
                break
            if not _SUMMARY_END.search(later["text"]):
                continue
            texts.append(later["text"])
        joined = "\n\n".join(texts)
        if end := _SUMMARY_END.search(joined):
            joined = joined[: end.start()]
        elif len(texts) > 1:
            joined = texts[0]
        return joined.strip() or None
    return None


def parse_body(text: str) -> Body:
    """Split the body into paragraphs; find the summary and the signature."""
    body = Body()
    chunks = _chunks(text)
    body.signature = _take_signature(chunks)
    heading: str | None = None
    for chunk in chunks:
        first = chunk[0]
        numbered = _NUMBERED.match(first)
        marked = None if numbered else _MARKED.match(first)
        if numbered or marked or not body.paragraphs:
            if not (numbered or marked) and _is_heading(chunk):
                heading = join_lines(chunk)
                continue
            match = numbered or marked
            text = join_lines([first[match.end() :] if match else first, *chunk[1:]])
            body.paragraphs.append(
                {
                    "number": int(numbered[1]) if numbered else None,
                    "classification": (numbered[2] if numbered else marked[1] if marked else None),
                    "heading": heading,
                    "text": text,
                }
            )
            heading = None
        elif _is_heading(chunk):
            heading = join_lines(chunk)
        else:
            body.paragraphs[-1]["text"] += "\n\n" + join_lines(chunk)
    body.summary = _summary(body.paragraphs)
    _check_numbering(body)
    return body


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
