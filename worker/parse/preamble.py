"""The labelled lines between the classification line and the body.

    SIPDIS / NOFORN                           handling caveats
    DEPT FOR SCA/CEN ...                      passing instructions (skipped)
    E.O. 12958: DECL: 02/13/2016              declassification
    TAGS: PHUM PREF PTER KZ UZ
    SUBJECT: KAZAKHSTAN: GOK DENIES ...       (may wrap over several lines)
    REF: A. ALMATY 77 ...                     (lettered items, possibly one per paragraph)
    Classified By: DCM Mark Asquino, reasons 1.4 (B) and (D).

Some copies glue several of these on one line; they are cut apart first.
"""

from __future__ import annotations

import re
from dataclasses import dataclass, field

from .classification import caveats_in
from .text import join_lines

_FIELDS = {
    "eo": re.compile(r"^\s*E\s?\.?\s?O\s?\.?\s?(?:12958|13526|12356|12065|11652)\b[\s:;,.]*", re.I),
    "tags": re.compile(r"^\s*TAGS?\b\s*:?\s*", re.I),
    "subject": re.compile(r"^\s*SUBJ(?:ECT)?\b\s*[:.]?\s*", re.I),
    "ref": re.compile(r"^\s*(?:REFS?|REFTELS?|REFERENCES?)\b\s*[:.]?\s*(?=\S)", re.I),
    "classified_by": re.compile(r"^\s*(?:\([A-Z]{1,3}\)\s*)?CLASSIFIED\s+BY\b\s*:?\s*", re.I),
}
_INLINE_LABEL = re.compile(
    r"\s(?=(?:TAGS|Tags)\s*:|(?:SUBJECT|Subject)\s*:|(?:CLASSIFIED BY|Classified [Bb]y)\s*:|REF\s*:)"
)
_REF_ITEM = re.compile(r"^\s*(?:\(?[A-Z]\)|[A-Z][.):])\s")
PARAGRAPH_START = re.compile(r"^\s*(?:\d{1,3}\s?\.\s|\([A-Z]{1,4}(?://?[A-Z]{1,5}){0,3}\)\s)")


@dataclass
class Preamble:
    """Raw text of each labelled field, the caveats, and where the body starts."""

    fields: dict[str, str] = field(default_factory=dict)
    caveats: list[str] = field(default_factory=list)
    body_start: int = 0


def _label_of(line: str) -> tuple[str, str] | None:
    for name, pattern in _FIELDS.items():
        if match := pattern.match(line):
            return name, line[match.end() :]
    return None


def split_glued(line: str) -> list[str]:
    """Cut a line that carries several labelled fields into one line per field."""
    if _label_of(line) is None:
        return [line]
    return _INLINE_LABEL.split(line)


def parse_preamble(lines: list[str], start: int) -> Preamble:
    """Collect the labelled fields from ``lines[start:]`` until the body begins."""
    pre = Preamble(body_start=len(lines))
    parts: dict[str, list[str]] = {}
    current: str | None = None
    blank_before = False
    seen_label = False
    unlabelled = 0
    index = start
    while index < len(lines):
        line = lines[index]
        if not line.strip():
            blank_before = True
            if current != "ref":
                current = None
            index += 1
            continue
        pieces = split_glued(line)
        labelled = [_label_of(p) for p in pieces]
        if labelled[0] is not None:
            for found, piece in zip(labelled, pieces, strict=True):
                name, value = found or (current or "subject", piece)
                if name in parts and name != "ref":
                    name = f"_{name}"  # a second SUBJECT/TAGS is body text, kept out of the field
                parts.setdefault(name, []).append(value)
                current = name
            seen_label = True
            blank_before = False
            index += 1
            continue
        if (found_caveats := caveats_in(line)) is not None:
            pre.caveats.extend(found_caveats)
            index += 1
            continue
        if current == "ref" and blank_before and not _REF_ITEM.match(line):
            current = None
        if current is not None and not (current == "subject" and PARAGRAPH_START.match(line)):
            parts[current].append(line)
            blank_before = False
            index += 1
            continue
        if seen_label or PARAGRAPH_START.match(line) or unlabelled >= 12:
            break
        unlabelled += 1  # passing instructions ("DEPT FOR ...") before the labels
        index += 1
    pre.body_start = index
    pre.fields = {k: join_lines(v) for k, v in parts.items() if not k.startswith("_")}
    return pre
