"""``Classified By``: who classified the cable, in what role, for which reasons.

    Classified By: Ambassador Eric Edelman; reasons: 1.5 (b,d).
    Classified By: ECOPOL Counselor Andrew Erickson for reasons 1.4 (b) and (d)
    Classified By: Ambassador Clark T. Randt, Jr. Reasons 1.4 (b) and (d).
    Classified By: David Appleton, Director, INR/CCS, Reason: 1.4 (c, d).
    Classified By: Derived from Multiple Sources

The line names the officer after the role and office (``Political Minister-Counselor``,
``POL/MC``, ``EUR/PRA Acting Director``), or before them after a comma; the reasons follow
(``for reasons``, ``per``, ``under section``, often broken by a stray space: ``reaso ns``). A
line that cites a classification guide or the sources instead (``Derived from …``) names no one.
"""

from __future__ import annotations

import re
from functools import lru_cache

from worker.record import ClassifiedBy

from .fields import reasons

# Where the reasons begin: the word (``reasons``, broken or cut: ``reaso ns``, ``reaons``), the
# order (``E.O.``), the section cited; and the connecting words before it (``for``, ``per``).
_REASONS_KEY = re.compile(
    r"\b(?:[Rr] ?[Ee] ?[Aa] ?[Ss] ?[Oo] ?[Nn] ?[Ss]?\b|R ?E ?A ?S ?O ?N ?S?\b|[Rr][Ee][Aa][Ss]\b"
    r"|(?<=[Ff][Oo][Rr] )[Rr][Ee][Aa]|E\.\s?O\.|EO\s?1|[Ss][Ee][Cc][Tt][Ii][Oo][Nn]\s+1"
    r"|1\s?[./]\s?[45]\b)"
)
_REASONS_LEAD = re.compile(r"[,;.:]?\s*(?:\b(?:F ?O ?R?|PER|UNDER|BASED ON)\s*)?$", re.I)
# Reason letters after a guide's name without the section (``DSCG 05-01, b and d``).
_LETTERS_AFTER = re.compile(r",\s*\(?[a-h]\)?(?:\s*(?:,|and|&)\s*\(?[a-h]\)?)*\s*\.?$", re.I)


def _reasons_start(text: str) -> int:
    """Where the reasons clause of ``text`` begins (its length when there is none)."""
    found = _REASONS_KEY.search(text)
    end = found.start() if found else len(text)  # ``… Godec for``: the reasons on a lost line
    lead = _REASONS_LEAD.search(text, max(0, end - 16), end)
    return lead.start() if lead else end


_LABEL_AGAIN = re.compile(r"^(?:\(?[A-Z]{1,3}\)\s*)?(?:BY\s+|CLASSIFIED\s+BY\b\s*:?\s*)+", re.I)
_DERIVED = re.compile(r"^DERIVED\s+FROM\s*:?\s*(.+)$", re.I)
_TITLE_WORDS = """
AMBASSADOR AMB AMBASADOR COUNSELOR COUNSELLOR COUNCELOR COUNSEL MINISTER MINSTER CHIEF CHEIF
DEPUTY ACTING DIRECTOR DIR OFFICER OFFIC OFFICE CONSUL GENERAL CHARGE CHARG CHARGÉ D'AFFAIRES
AFFAIRES D' A.I. AI DCM ADCM CDA POLITICAL ECONOMIC ECON POL SECRETARY ASSISTANT
UNDER PRINCIPAL ADVISOR ADVISER COORDINATOR COORDINATING LEADER HEAD SECTION UNIT AFFAIRS
MISSION EMBASSY CONSULATE BUREAU DEPARTMENT POST ATTACHE REPRESENTATIVE SPECIAL SENIOR
MANAGEMENT PUBLIC DIPLOMACY DEFENSE MILITARY REGIONAL SECURITY INTERNAL EXTERNAL CHAIR
CHAIRMAN COMMANDER CONSUL-GENERAL MINISTER-COUNSELOR MINISTER-COUNSELLOR MINISTER-COUNCELOR
ENVOY DELEGATION PRT OFFICE-IN-CHARGE CHARGE-D'AFFAIRES INTERAGENCY PROVINCIAL DEVELOPMENT
GOVERNANCE SUB-NATIONAL TEAM BRANCH DIVISION GROUP STAFF PROGRAM DESK COUNSELORS DAS PDAS
"""
# The Department's bureaus and offices, which lines put before the officer (``EAP DAS``).
_BUREAUS = """
AF EAP EUR NEA SCA WHA IO ISN INR EEB PM DRL CA DS OES INL PRM CT VCI ECA IIP USAID AID NSC
USTR DOD DOS OSD USUN USEU USNATO USOSCE UNVIE PAS PAO RSO NAS DEA FBI LEGATT ODC OMC DAO
"""
TITLE_WORDS = frozenset(_TITLE_WORDS.split()) | frozenset(_BUREAUS.split())
# A title with one letter lost in transmission (``COUSELOR``): long words only.
_MISSPELT = frozenset(
    word[:i] + word[i + 1 :] for word in TITLE_WORDS if len(word) >= 7 for i in range(len(word))
)
_OFFICES = re.compile(r"\b(?:EMBASSY|CONSULATE|MISSION|BUREAU|DEPARTMENT|USEU|USNATO)\b", re.I)
_PARTICLES = frozenset({"van", "de", "da", "del", "der", "von", "la", "le", "bin", "al", "ibn"})
# Office abbreviations run together: PolCouns, PolMinCouns, EconOff, A/PolCouns.
_OFFICE_WORD = re.compile(
    r"^(?:A/)?(?:POL|ECON|MIL|MGMT|PUB|CONS|MIN|PA|PD|ESTH|/)*(?:COUNS|OFF|MINCOUNS|CHIEF|MC|M/C)\.?$",
    re.I,
)
_INITIALS = re.compile(r"^(?:[A-Z]\.){1,3},?$")
_BUREAU_CODE = re.compile(r"\s*\([^)]{0,20}\)\s*$")
_ENDS_INITIAL = re.compile(r"\s[A-Z]$")
_ONE_NAME = re.compile(r"\s*[A-Z][a-z]+")
_SUFFIX = re.compile(r"^(?:JR|SR|II|III|IV)\.?$", re.I)
_REDACTED = re.compile(r"[Xx]{3,}[.,]?")
_LOWER_FRAGMENT = re.compile(r"^[a-z]{1,5}$")
_CONNECTORS = frozenset({"for", "and", "of", "the", "in", "at", "on", "to", "by", "per", "under"})


@lru_cache(maxsize=4096)
def _is_title(token: str, mixed: bool) -> bool:
    bare = token.strip(",;:()")
    upper = bare.upper().replace("\u2019", "'")
    if upper in TITLE_WORDS or upper.rstrip(".") in TITLE_WORDS or not any(map(str.isalpha, bare)):
        return True
    if _INITIALS.match(bare):
        return False
    return (
        upper in _MISSPELT
        or _OFFICE_WORD.match(bare) is not None
        # POL/MC, M/C, EUR/PRA, M-C, Minister-Counselor
        or "/" in bare
        or ("-" in upper and upper.split("-")[0] in TITLE_WORDS)
        # ECOPOL, DAS, PDAS, EUR in a line written in mixed case; lower-case connecting words
        or (mixed and bare.isupper() and len(bare.strip(".")) >= 2 and not _SUFFIX.match(bare))
        or (mixed and bare.islower() and bare not in _PARTICLES)
    )


def _mend(tokens: list[str]) -> list[str]:
    """Fragments of a word broken by a stray space join it again (``Hoyt Y ee``)."""
    mended: list[str] = []
    for token in tokens:
        if (
            mended
            and _LOWER_FRAGMENT.match(token)
            and token not in _PARTICLES | _CONNECTORS
            and mended[-1][:1].isupper()
        ):
            mended[-1] += token
        else:
            mended.append(token)
    return mended


def _split_part(part: str) -> tuple[str, str]:
    """``ECOPOL Counselor Andrew Erickson`` → (``Andrew Erickson``, ``ECOPOL Counselor``)."""
    mixed = part != part.upper()  # written in mixed case, not in capitals
    if part.endswith(")"):
        part = _BUREAU_CODE.sub("", part)  # ``Maria Otero (G)``: the bureau
    part = part.strip(" ,;:-?")
    tokens = _mend(part.split()) if mixed else part.split()
    cut = 0
    for index, token in enumerate(tokens):
        if _is_title(token, mixed) and not (index and _SUFFIX.match(token)):
            cut = index + 1
    name_tokens = tokens[cut:]
    if not any(len(t.strip(".,\"'")) > 1 for t in name_tokens) or _REDACTED.fullmatch(
        " ".join(name_tokens)
    ):
        return "", part.strip(" ,;:-?")  # no name, or a redacted one (``XXXXXXXXXXXX``)
    return " ".join(name_tokens).strip(" ,;:"), " ".join(tokens[:cut]).strip(" ,;:-?")


def _parts(who: str) -> list[str]:
    """Comma-separated parts, a generational suffix kept with the name before it."""
    parts: list[str] = []
    for piece in who.split(","):
        if parts and _SUFFIX.match(piece.strip()):
            parts[-1] += "," + piece
        elif parts and _ENDS_INITIAL.search(parts[-1]) and _ONE_NAME.fullmatch(piece):
            parts[-1] += "." + piece  # ``Luis G, Moreno``: the initial's full stop mistyped
        elif piece.strip():
            parts.append(piece)
    return parts


def classified_by(text: str) -> ClassifiedBy:
    """Parse the text after ``Classified By:`` into name, title, reasons, derived_from, text."""
    line = " ".join(text.split())
    body = _LABEL_AGAIN.sub("", line) if line[:1] in "(BbCc" else line
    record: ClassifiedBy = {
        "name": None,
        "title": None,
        "reasons": reasons(line.replace("1/4", "1.4").replace("1/5", "1.5")),
        "derived_from": None,
        "text": line,
    }
    if body[:7].upper() == "DERIVED" and (derived := _DERIVED.match(body)):
        source = _LETTERS_AFTER.sub("", derived[1][: _reasons_start(derived[1])])
        record["derived_from"] = source.strip(" .,;") or None
        return record
    end = _reasons_start(body)
    who = body[:end].rstrip()
    if body[end : end + 1] == "." and _SUFFIX.match(who.split()[-1] if who else ""):
        who += "."  # ``Randt, Jr. Reasons …``: the suffix keeps its full stop
    titles: list[str] = []
    for part in _parts(who.strip(" ,;:")):
        if _REDACTED.fullmatch(part.strip()):
            continue  # a redacted name is no name and no title
        if record["name"] is None:
            name, title = _split_part(part)
            if name and not (" " not in name and _OFFICES.search(title)):
                record["name"] = name
                if title:
                    titles.append(title)
                continue
        titles.append(part.strip(" ,;:"))
    record["title"] = ", ".join(t for t in titles if t) or None
    return record


_IN_TEXT = re.compile(r"(?:^|\s)(?:\(U\)\s*)?CLASSIFIED\s+BY\b:?\s*(?=[A-Z(])", re.I)
_OPENING = 12  # lines at the top of the body where a Classified By paragraph is looked for


def classified_in_body(lines: list[str], start: int) -> str | None:
    """The Classified By text written as the body's first paragraph (``1. (U) Classified by
    Bureau Assistant Secretary Jeffrey Feltman. Reasons: 1.4 (b) and (d)``), if any."""
    block: list[str] = []
    for line in lines[start : start + _OPENING]:
        if line.strip():
            block.append(line)
            continue
        joined = " ".join(block)
        if ("lassified" in joined or "LASSIFIED" in joined) and (found := _IN_TEXT.search(joined)):
            return joined[found.end() :]
        block = []
    return None
