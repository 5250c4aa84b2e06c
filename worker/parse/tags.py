"""TAGS: split, repair and classify the Traffic Analysis by Geography and Subject codes.

Copies of the TAGS line are messy: separators vary (spaces, commas, both), codes arrive
glued (``EINDETRD``), misspelled (``PECON``), lower-cased, or wrapped in markdown links; and
person tags (``CLINTON, HILLARY``) contain the comma that other lines use as a separator.
"""

from __future__ import annotations

import re

from worker.record import Tag, TagKind

from .tag_codes import ORGANISATION_CODES, SUBJECT_CODES

# Alone on a TAGS line these are organisations, not the countries of the same letters.
_TWO_LETTER_ORGS = frozenset({"EU", "UN", "AU", "PA"})
KNOWN = SUBJECT_CODES | ORGANISATION_CODES

_LABEL = re.compile(r"^\s*TAGS?\s*:?\s*", re.I)
_PERSON = re.compile(r"\(?\b([A-Z][A-Z'-]{1,30}), ([A-Z][A-Z'-]{2,30}(?: [A-Z]\b\.?)?)\)?")
_TOKEN = re.compile(r"[A-Z0-9][A-Z0-9/&'-]*")


def _is_code(word: str) -> bool:
    return word in KNOWN or (len(word) == 2 and word.isalpha())


def _kind(code: str) -> TagKind:
    if "," in code:
        return "person"
    if code in ORGANISATION_CODES and (len(code) > 2 or code in _TWO_LETTER_ORGS):
        return "organisation"
    if len(code) == 2 and code.isalpha():
        return "country"
    return "subject"


def _edit1(word: str) -> str | None:
    """The single known code one deletion, insertion or substitution away, if exactly one."""
    letters = "ABCDEFGHIJKLMNOPQRSTUVWXYZ"
    candidates: set[str] = set()
    for i in range(len(word) + 1):
        if i < len(word):
            candidates.add(word[:i] + word[i + 1 :])
            candidates.update(word[:i] + c + word[i + 1 :] for c in letters)
        candidates.update(word[:i] + c + word[i:] for c in letters)
    found = sorted(c for c in candidates if c in SUBJECT_CODES)
    return found[0] if len(found) == 1 else None


def _split_glued(word: str) -> list[str] | None:
    """``EINDETRD`` → [EIND, ETRD]; ``PGOVKZ`` → [PGOV, KZ]; None if no clean split."""
    if len(word) < 6:
        return None
    for size in (4, 5, 3, 2):
        head, rest = word[:size], word[size:]
        if head in KNOWN or (size == 2 and word[2:] in KNOWN):
            if _is_code(rest):
                return [head, rest]
            tail = _split_glued(rest)
            if tail:
                return [head, *tail]
    return None


def repair(word: str) -> tuple[list[str], str | None]:
    """Return the code(s) a token stands for, and a note when it was repaired."""
    if _is_code(word) or len(word) <= 3:
        return [word], None
    if glued := _split_glued(word):
        return glued, f"split glued tag {word!r} into {' '.join(glued)}"
    if 4 <= len(word) <= 6 and word.isalpha() and (fixed := _edit1(word)):
        return [fixed], f"corrected tag {word!r} to {fixed!r}"
    return [word], None


# Country codes of other lists that the TAGS list spells otherwise: RU is no TAGS code; Russia is RS.
_COUNTRY_ALIASES = {"RU": "RS"}
_WORD = re.compile(r"[A-Z][A-Z'-]{2,}")
_PERSON_IN_PARENS = re.compile(r"\(\s*([A-Z][A-Z'-]{1,30}),\s*([A-Z][A-Z'. -]{1,40}?)\s*\)")
_PLACEHOLDER = re.compile(r"PERSON\d{1,2}")


def parse_tags(text: str) -> tuple[list[Tag], list[str]]:
    """Parse the value of a TAGS line: the tag objects and notes on what was repaired."""
    value = _LABEL.sub("", text).upper()
    tags: list[str] = []
    notes: list[str] = []
    # ``OVIP (STEINBERG, JAMES B.)``: a person in parentheses, whatever the separators
    persons: list[str] = []
    if "(" in value:
        persons = [f"{m[1]}, {m[2].strip()}" for m in _PERSON_IN_PARENS.finditer(value)]
        value = _PERSON_IN_PARENS.sub(
            lambda m: f" PERSON{persons.index(f'{m[1]}, {m[2].strip()}')} ", value
        )
    written = _Written(value)
    tokens = _TOKEN.findall(value)
    if not persons and all(t in KNOWN or (len(t) == 2 and t.isalpha()) for t in tokens):
        tags = tokens  # codes only, the common line: nothing to join, repair or read as a person
    elif value.count(",") >= 2 or ", " not in value:  # commas separate tags, or none are used
        pieces = [p for p in value.split(",") if p.strip()]
        for index, piece in enumerate(pieces):
            visit = index > 0 and _ends_visit(pieces[index - 1])
            _piece(piece, tags, notes, written, after_visit=visit)
    else:  # ``CLINTON, HILLARY``: the one comma is a person tag's
        _person_tags(value, tags, notes, written)
    if persons:
        tags = [persons[int(t[6:])] if _PLACEHOLDER.fullmatch(t) else t for t in tags]
    unique = dict.fromkeys(_COUNTRY_ALIASES.get(t, t) for t in tags)
    for alias, code in _COUNTRY_ALIASES.items():
        if alias in tags:
            notes.append(f"read tag {alias!r} as {code!r}: {alias} is no code of the TAGS list")
    return [{"code": t, "kind": _kind(t)} for t in unique], notes


class _Written:
    """The codes written on the line, split out only when a repair needs to know them."""

    def __init__(self, value: str) -> None:
        self.value = value
        self._codes: frozenset[str] | None = None

    def __contains__(self, code: object) -> bool:
        if self._codes is None:
            self._codes = frozenset(_TOKEN.findall(self.value))
        return code in self._codes


def _ends_visit(piece: str) -> bool:
    words = piece.split()
    return bool(words) and words[-1] == "OVIP"


def _person_tags(value: str, tags: list[str], notes: list[str], written: _Written) -> None:
    pos = search = 0
    while (match := _PERSON.search(value, search)) is not None:
        first, second = match[1], match[2]
        if _is_code(first) or _is_code(second.split()[0]):
            search = match.start(2)
            continue
        _piece(value[pos : match.start()], tags, notes, written)
        tags.append(f"{first}, {second}")
        pos = search = match.end()
    _piece(value[pos:], tags, notes, written)


def _unknown(token: str) -> bool:
    """A word that is no code and no misspelling of one: part of a tag written out."""
    if _is_code(token) or _WORD.fullmatch(token) is None or _PLACEHOLDER.fullmatch(token):
        return False
    return repair(token)[1] is None


def _piece(
    text: str,
    tags: list[str],
    notes: list[str],
    written: _Written,
    *,
    after_visit: bool = False,
) -> None:
    """Codes one by one; words written out run together into one tag (``ORGANIZED CRIME``,
    ``USEU BRUSSELS`` after an organisation's code), two of them after OVIP (a visit) into a
    person tag (``BIDEN, JOSEPH``, ``STEINBERG, JAMES B.``). A three-letter word is an acronym
    (``UAE``): it may open such a run, never continue one."""
    run: list[str] = []
    previous = "OVIP" if after_visit else ""
    for token in [t.strip("-'/") for t in _TOKEN.findall(text)]:
        if token and _unknown(token) and not (run and len(token) == 3):
            if not run and tags and tags[-1] == previous and _kind(previous) == "organisation":
                run.append(tags.pop())
            run.append(token)
            continue
        if len(token) == 1 and token.isalpha() and len(run) == 2 and previous == "OVIP":
            run.append(token + ".")  # a middle initial
            continue
        _flush(run, tags, person=previous == "OVIP")
        run = []
        if not token:
            continue
        codes, note = repair(token)
        if note and len(codes) == 1 and codes[0] in written:
            codes, note = [token], None  # ``EREL … PREL``: not a misspelling of a tag beside it
        tags.extend(c for c in codes if c)
        if note:
            notes.append(note)
        previous = token
    _flush(run, tags, person=previous == "OVIP")


def _flush(run: list[str], tags: list[str], *, person: bool) -> None:
    if person and (len(run) == 2 or (len(run) == 3 and run[2].endswith("."))):
        tags.append(f"{run[0]}, {' '.join(run[1:])}")
    elif run:
        tags.append(" ".join(run))
