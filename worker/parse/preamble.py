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

# The executive orders a declassification line cites.
EXECUTIVE_ORDERS = "12958|13526|12356|12065|11652"
# One alternation, one match per line; the named group says which field a label opens.
_LABEL = re.compile(
    r"^\s*(?:"
    rf"(?P<eo>E\s?\.?\s?O\s?\.?\s?(?:{EXECUTIVE_ORDERS})\b[\s:;,.]*)"
    r"|(?P<tags>TAGS?\b\s*:?\s*)"
    r"|(?P<subject>SUBJ(?:ECT)?\b\s*[:.]?\s*)"
    r"|(?P<ref>(?:REFS?|REFTELS?|REFERENCES?)\b\s*[:.]?\s*(?=\S))"
    r"|(?P<classified_by>(?:\([A-Z]{1,3}\)\s*)?CLASSIFIED\s+BY\b\s*:?\s*)"
    r")",
    re.I,
)
_INLINE_LABEL = re.compile(
    r"(?<=\d)\s(?=TAGS? [A-Z]{2,5}\b)"  # ``DECL: 03/20/2019 TAG PTER``: no colon after a date
    rf"|\s(?=(?:TAGS|Tags)\s*:|(?:SUBJECT|Subject)\s*:|REFS?\s*:|E\.O\. ?(?:{EXECUTIVE_ORDERS})\b"
    r"|(?:\(U\)\s*)?(?:CLASSIFIED BY|Classified [Bb]y)(?:\s*:|\s+(?:[A-Z]|[a-z]+ [A-Z])))"
)
_INLINE_HINT = re.compile(r"TAG|Tag|SUBJ|Subj|REF|E\.O|lassified|LASSIFIED")
_REF_ITEM = re.compile(r"^\s*(?:\(?[A-Z]\)|[A-Z][.):])\s")
# A numbered paragraph, or one opened by its portion marking (``(C)``, ``(S/NF)``, ``(SBU)``):
# a parenthesised word that is no marking (``(FMCT) STILL MALEABLE``) continues a SUBJECT.
PARAGRAPH_START = re.compile(
    r"^\s*(?:\d{1,3}\s?\.(?:\s|\([A-Z])"
    r"|\((?:U|C|S|TS|SBU|LOU|FOUO|NF|CUI)(?:\s?//?\s?[A-Z]{1,5}){0,3}\)\s+\w)"
)


@dataclass
class Preamble:
    """Raw text of each labelled field, the caveats, and where the body starts."""

    fields: dict[str, str] = field(default_factory=dict)
    caveats: list[str] = field(default_factory=list)
    body_start: int = 0


_RULE = re.compile(r"^\s*[-=_*]{3,}")
_REASON_CONTINUATION = re.compile(r"^\s*(?:and\b|&|,|\(?[A-H]\)?\s*(?:,|and\b|&|\.|\)|$))", re.I)
_EMPTY = re.compile(r"\s*(?:\([A-Z]{1,3}\))?\s*")
_REASONS_ONLY = re.compile(r"^\s*1\s?[./]\s?[45]\b")
_MAX_FIELD_LINE = 160  # a longer line after a blank is text, not a wrapped field
_MAX_PASSING = 30  # lines of passing instructions ("DEPT FOR ...") before the labels
_REASONS_GIVEN = re.compile(r"\b1\s?\.\s?[45]\b.*[).]\s*$", re.I)


def _field_complete(name: str, lines: list[str]) -> bool:
    """A Classified By line that already states its reasons takes no continuation."""
    return (
        name == "classified_by"
        and bool(_REASONS_GIVEN.search(lines[-1]))
        and not (lines[-1].rstrip().endswith((",", "(", "AND", "and", "&")))
    )


def _label_of(line: str) -> tuple[str, str] | None:
    if (match := _LABEL.match(line)) is None or match.lastgroup is None:
        return None
    return match.lastgroup, line[match.end() :]


def fields_after(class_line: str) -> str | None:
    """The labelled fields run into the classification line (``… MOSCOW 000228 SIPDIS …
    E.O. 12958: DECL: 01/28/2020``), if any."""
    if ":" not in class_line or (found := _INLINE_LABEL.search(class_line)) is None:
        return None
    rest = class_line[found.end() :]
    return rest if _LABEL.match(rest) else None


def split_glued(line: str) -> list[str]:
    """Cut a line that carries several labelled fields into one line per field."""
    if _INLINE_HINT.search(line, 2) is None:  # no label word past the line's start
        return [line]
    return _INLINE_LABEL.split(line)


class _Collector:
    """Line-by-line state of the preamble: which field is open, and what it has gathered."""

    def __init__(self) -> None:
        self.parts: dict[str, list[str]] = {}
        self.caveats: list[str] = []
        self.current: str | None = None
        self.blank_before = False
        self.seen_label = False
        self.unlabelled = 0
        self.last: str | None = None

    def blank(self) -> None:
        self.blank_before = True
        if self.current != "ref":
            self.current = None

    def labelled(self, line: str) -> bool:
        pieces = split_glued(line)
        found = [_label_of(p) for p in pieces]
        if found[0] is None and len(pieces) == 1:
            return False
        if found[0] is None and self.current is None:  # ``DEPT FOR WHA E.O. 12958: …``
            pieces, found = pieces[1:], found[1:]
            if found[0] is None:
                return False
        for label, piece in zip(found, pieces, strict=True):
            name, value = label or (self.current or "subject", piece)
            if name in self.parts and _EMPTY.fullmatch("".join(self.parts[name])):
                del self.parts[name]  # ``Classified By: Classified by …``: the label twice
            if name in self.parts and name != "ref":
                name = f"_{name}"  # a second SUBJECT/TAGS is body text, kept out of the field
            self.parts.setdefault(name, []).append(value)
            self.current = self.last = name
        self.seen_label = True
        self.blank_before = False
        return True

    def continues(self, line: str) -> bool | None:
        """True: the line belongs to the open field; False: the body starts; None: undecided."""
        current = self.current
        if current == "ref" and self.blank_before and not _REF_ITEM.match(line):
            current = self.current = None
        if current == "classified_by" and _REASON_CONTINUATION.match(line):
            return True  # ``reasons 1.4 (B)`` / ``and (D).``
        if PARAGRAPH_START.match(line) and not (current == "ref" and _REF_ITEM.match(line)):
            return False  # the first numbered or marked paragraph ends the preamble
        if _RULE.match(line):
            return False  # a ruled heading: the body has begun
        if current is not None and not _field_complete(current, self.parts[current]):
            return True
        return None

    def resumes(self, lines: list[str], index: int) -> bool:
        """True when a line after a blank still belongs to the last field: the reasons of a
        Classified By cut off from it, or any line when more labelled fields follow."""
        last = self.last
        if last is None or last.startswith("_"):
            return False
        if last == "classified_by" and _REASONS_ONLY.match(lines[index]):
            return not _REASONS_GIVEN.search(self.parts[last][-1])
        if PARAGRAPH_START.match(lines[index]) or len(lines[index]) > _MAX_FIELD_LINE:
            return False
        ahead = [ln for ln in lines[index + 1 : index + 8] if ln.strip()][:3]
        for line in ahead:
            if PARAGRAPH_START.match(line):
                return False
            if _LABEL.match(line):
                return True
        return False

    def attach(self, line: str) -> None:
        assert self.last is not None
        self.parts[self.last].append(line)
        self.current = self.last
        self.blank_before = False

    def other(self, line: str) -> bool:
        """A line that is no field: passing instructions before the labels, else the body."""
        if self.seen_label or PARAGRAPH_START.match(line) or self.unlabelled >= _MAX_PASSING:
            return False
        self.unlabelled += 1  # passing instructions ("DEPT FOR ...") before the labels
        return True


def parse_preamble(lines: list[str], start: int) -> Preamble:
    """Collect the labelled fields from ``lines[start:]`` until the body begins."""
    state = _Collector()
    index = start
    for index in range(start, len(lines)):
        line = lines[index]
        if not line.strip():
            state.blank()
            continue
        if state.labelled(line):
            continue
        if (found_caveats := caveats_in(line)) is not None:
            state.caveats.extend(found_caveats)
            continue
        verdict = state.continues(line)
        if verdict is True and state.current is not None:
            state.parts[state.current].append(line)
            state.blank_before = False
        elif verdict is False or not state.other(line):
            if verdict is None and state.seen_label and state.resumes(lines, index):
                state.attach(line)
                continue
            break
    else:
        index = len(lines)
    if not state.seen_label and state.unlabelled >= _MAX_PASSING:
        index = start  # no labelled field at all: those lines were text, not instructions
    fields = {k: join_lines(v) for k, v in state.parts.items() if not k.startswith("_")}
    return Preamble(fields=fields, caveats=state.caveats, body_start=index)
