"""``parse_cable``: one raw cable text in, one :class:`~worker.record.CableRecord` out. Pure: no
I/O, no globals changed."""

from __future__ import annotations

import re
from collections import Counter

from worker.errors import ParseError
from worker.model import PARSER_VERSION, SCHEMA_VERSION
from worker.record import CableRecord, ParseWarning, Section, Tag

from . import fields
from .body import parse_body
from .classification import (
    SECURITY_LEVELS,
    ClassLine,
    match_class_line,
    normalise_caveat,
    published,
)
from .classified import classified_by, classified_in_body
from .container import unwrap
from .cover import Cover, parse_cover
from .flattened import is_flattened, reline
from .header import DTG, Header, dtg_to_iso, full_year, is_routing_line, parse_header
from .origins import origin_from_fm, origin_from_station
from .preamble import fields_after, parse_preamble
from .references import parse_references
from .sections import join_sections
from .tags import parse_tags
from .text import drop_markers, normalize

MAX_CHARS = 8 * 1024 * 1024
_SCAN_LINES = 600
_NON_LETTERS = re.compile(r"[^A-Z]")
_WEEKDAY_DATE = re.compile(
    r"^\s*(?:MON|TUES|WEDNES|THURS|FRI|SATUR|SUN)DAY,? (\d{1,2}) ([A-Z]+),? (\d{4}),? (\d{1,2}):(\d{2})",
    re.I,
)
_CONTROL_BYTES = bytes([*range(0x09), 0x0B, *range(0x0E, 0x20)])
_MONTHS = (
    "JANUARY",
    "FEBRUARY",
    "MARCH",
    "APRIL",
    "MAY",
    "JUNE",
    "JULY",
    "AUGUST",
    "SEPTEMBER",
    "OCTOBER",
    "NOVEMBER",
    "DECEMBER",
)


def _check_text(text: str) -> bool:
    """Raise ParseError unless ``text`` could be a cable; True when it has control characters."""
    if not text.strip():
        raise ParseError("empty input: a cable needs at least a classification line and a body")
    if len(text) > MAX_CHARS:
        raise ParseError(
            f"input of {len(text):,} characters is larger than any cable (limit {MAX_CHARS:,})"
        )
    # Count control bytes at C speed: in UTF-8 every non-ASCII character is bytes >= 0x80.
    data = text.encode("utf-8", errors="surrogatepass")
    odd = len(data) - len(data.translate(None, _CONTROL_BYTES)) + text.count("\ufffd")
    if odd > max(8, len(text) // 50):
        raise ParseError(
            f"binary data, not text: {odd:,} control or undecodable characters in {len(text):,}"
        )
    return odd > 0


def _routing_start(lines: list[str]) -> int:
    """Index of the routing header's first line: 0, or later when a copy has a cover sheet."""
    for index, line in enumerate(lines[:_SCAN_LINES]):
        if line.startswith("FM ") and index > 0:
            before = [ln for ln in lines[max(0, index - 12) : index] if ln.strip()]
            if before and DTG.match(before[-1]):
                for back in range(index - 1, max(-1, index - 80), -1):
                    if lines[back].startswith("VZCZC"):
                        return back
                return _block_start(lines, index)
    return 0


def _block_start(lines: list[str], fm_index: int) -> int:
    """The DTG above the FM line, and routing lines (DE, ZNY …) above it, blank lines between."""
    start = fm_index
    for back in range(fm_index - 1, max(-1, fm_index - 12), -1):
        line = lines[back].strip()
        if not line:
            continue
        if start < fm_index and not is_routing_line(line):  # the DTG is taken; now DE, ZNY …
            break
        start = back
    return start


def _find_class_line(lines: list[str], start: int) -> tuple[int, ClassLine] | None:
    fallback: tuple[int, ClassLine] | None = None
    for index in range(start, min(len(lines), start + _SCAN_LINES)):
        line = lines[index]
        if not line or line[0] in "-(0123456789" or "/" in line[:9]:  # "RUEHC/SECSTATE"
            continue
        found = match_class_line(line)
        if found is None:
            continue
        if found.station is not None:
            return index, found
        if fallback is None and index < start + 60:
            fallback = (index, found)
    return fallback


def _weekday_date(lines: list[str]) -> tuple[str | None, int | None]:
    for line in lines[:5]:
        if (m := _WEEKDAY_DATE.match(line)) and m[2].upper() in _MONTHS:
            year = int(m[3])
            iso = dtg_to_iso(int(m[1]), int(m[4]), int(m[5]), _MONTHS.index(m[2].upper()) + 1, year)
            return iso, year
    return None, None


class _Warnings(list[ParseWarning]):
    """The record's warnings, added as (code, message)."""

    def add(self, code: str, message: str) -> None:
        self.append({"code": code, "message": message})


def _locate(lines: list[str], warn: _Warnings) -> tuple[Header, ClassLine | None, int, Cover]:
    """Routing header, classification line, where the preamble starts, and any cover sheet."""
    routing_start = _routing_start(lines)
    located = _find_class_line(lines, routing_start)
    end = located[0] if located else _SCAN_LINES
    header = parse_header(lines[routing_start:end])
    cover = Cover()
    if header.routing is None and header.fm is None:
        cover = parse_cover(lines)
        header.fm = cover.fm
        if cover.fm:
            warn.add("cover_sheet", "no routing header: origin taken from the copy's cover sheet")
        else:
            warn.add("partial_extract", "no routing header: only the body of the cable survived")
    if located is None and header.fm is None:
        raise ParseError(
            "not a cable: no classification line (e.g. 'C O N F I D E N T I A L "
            "ALMATY 000598') and no routing header (FM line)"
        )
    for code, message in header.problems:
        warn.add(code, message)
    cls = located[1] if located else None
    security = _security_level(header)
    if cls is None:
        warn.add(
            "missing_classification_line",
            f"no classification line; level taken from the security line ({security})"
            if security
            else "no classification line; classification unknown",
        )
        cls = ClassLine(security, None, None, None, []) if security else None
    elif _spliced(cls, header):
        warn.add(
            "header_body_mismatch",
            f"the body belongs to {cls.station} {cls.serial}, not to the cable the routing "
            f"header names ({header.fm}): identity and classification (level from the "
            "security line, no caveats) taken from the header",
        )
        cls = ClassLine(security, None, None, None, []) if security else None
    elif _foreign_station(cls, header):
        warn.add(
            "station_mismatch",
            f"the classification line names {cls.station} {cls.serial} but the FM line "
            f"{header.fm}, and no DE line says which is right: identity taken from the "
            "classification line",
        )
    start = (located[0] + 1) if located else _header_end(lines, routing_start)
    return header, cls, start, cover


def _header_end(lines: list[str], start: int) -> int:
    """Without a classification line the preamble begins at the blank line after FM/TO/INFO."""
    seen_fm = False
    for index in range(start, min(len(lines), start + _SCAN_LINES)):
        seen_fm = seen_fm or lines[index].startswith("FM ")
        if seen_fm and not lines[index].strip():
            return index
    return len(lines)


def _security_level(header: Header) -> str | None:
    """``ZNY SSSSS ZZH`` → SECRET."""
    security = (header.routing["security"] if header.routing else None) or ""
    return SECURITY_LEVELS.get(security[4:9])


def _date_and_year(
    header: Header, lines: list[str], declass_date: str | None, warn: _Warnings
) -> tuple[str | None, int | None]:
    date, year = header.date, header.year
    if date is None:
        date, year_from_line = _weekday_date(lines)
        year = year or year_from_line
        if date is not None:
            warn.add("date_from_copy", "no date-time group; date taken from the copy's date line")
        else:
            warn.add("missing_date", "no date-time group and no date line: date unknown")
    if year is None:
        year = _infer_year(declass_date, lines)
        if year is not None:
            warn.add(
                "year_inferred",
                f"no date in the cable; year {year} inferred from the "
                "declassification date or the years the text mentions",
            )
    return date, year


def _origin(header: Header, station: str | None, warn: _Warnings) -> str | None:
    origin = origin_from_fm(header.fm) if header.fm else None
    if origin is None and station is not None:
        origin = origin_from_station(station)
    if origin is None:
        warn.add("unknown_origin", f"origin not recognised from FM line {header.fm!r}")
    return origin


def _tags_and_subject(pre_fields: dict[str, str], warn: _Warnings) -> tuple[list[Tag], str | None]:
    tags: list[Tag] = []
    if "tags" in pre_fields:
        tags, notes = parse_tags(pre_fields["tags"])
        for note in notes:
            warn.add("tag_repaired", note)
    if not tags:
        warn.add("missing_tags", "no TAGS line")
    subject = fields.clean_subject(pre_fields.get("subject", ""))
    if subject is None:
        warn.add("missing_subject", "no SUBJECT line")
    return tags, subject


def parse_cable(raw: str, *, source_file: str | None = None) -> CableRecord:
    """Parse one cable. Oddities become ``warnings``; only non-cables raise :class:`ParseError`."""
    if not isinstance(raw, str):
        raise ParseError(f"expected text (str), got {type(raw).__name__}")
    raw = unwrap(raw)
    has_controls = _check_text(raw)
    text = normalize(raw, has_controls=has_controls)
    if flattened := is_flattened(text):
        text = reline(text)
    lines = text.split("\n")
    warn = _Warnings()
    if flattened:
        warn.add(
            "line_breaks_restored", "the text had lost its line breaks; put back by the format"
        )
    header, cls, preamble_start, cover = _locate(lines, warn)
    if cls is not None and cls.station and cls.serial and f" {cls.serial:08d} " in text:
        lines = drop_markers(text, lines, cls.station)
    header.year = header.year or cover.year
    if cls is not None and preamble_start and (glued := fields_after(lines[preamble_start - 1])):
        lines = [*lines[:preamble_start], glued, *lines[preamble_start:]]
    pre = parse_preamble(lines, preamble_start)
    body = parse_body(join_sections("\n".join(lines[pre.body_start :])))
    for code, message in body.problems:
        warn.add(code, message)
    if not body.paragraphs:
        warn.add("empty_body", "no body text after the header")
    if raw.rstrip().endswith(("...", "\u2026")):
        warn.add("truncated", "the text ends with an ellipsis: the copy looks cut short")

    declassification = pre.fields.get("eo")
    declass_date = fields.declassify_on(declassification) if declassification else None
    date, year = _date_and_year(header, lines, declass_date, warn)
    reference_id, station = _reference_id(cls, header, year, cover.serial)
    # a body spliced in from another cable brings that cable's caveats (NOFORN …), not ours
    spliced = any(w["code"] == "header_body_mismatch" for w in warn)
    caveats = _caveats(cls, [] if spliced else pre.caveats)
    section = _section(cls, warn)
    covered = {"tags": cover.tags, "subject": cover.subject}
    tags, subject = _tags_and_subject(
        {**{k: v for k, v in covered.items() if v}, **pre.fields}, warn
    )
    classified = pre.fields.get("classified_by") or classified_in_body(lines, pre.body_start)

    record: CableRecord = {
        "schema_version": SCHEMA_VERSION,
        "parser_version": PARSER_VERSION,
        "reference_id": reference_id,
        "date": date,
        "precedence": header.precedence,
        "origin": _origin(header, station, warn),
        "fm": header.fm,
        "classification": published(cls.level, caveats) if cls else None,
        "caveats": caveats,
        "section": section,
        "routing": header.routing,
        "to": header.to,
        "info": header.info,
        "xmt": header.xmt,
        "declassify_on": declass_date,
        "declassification": declassification,
        "downgrade": fields.downgrade(declassification) if declassification else None,
        "tags": tags,
        "subject": subject,
        "references": parse_references(pre.fields["ref"], year) if "ref" in pre.fields else [],
        "classified_by": classified_by(classified) if classified else None,
        "summary": body.summary,
        "paragraphs": body.paragraphs,
        "signature": body.signature,
        "warnings": warn,
    }
    if source_file is not None:
        record["source_file"] = source_file
    return record


def _section(cls: ClassLine | None, warn: _Warnings) -> Section | None:
    """``SECTION n OF m`` when it can be true (1 <= n <= m); else left out, with a warning."""
    section = cls.section if cls else None
    if section is None or 1 <= section["number"] <= section["total"]:
        return section
    warn.add(
        "impossible_section",
        f"'SECTION {section['number']} OF {section['total']}' cannot be; section left out",
    )
    return None


def _fm_station(fm: str) -> str:
    """``AMEMBASSY LA PAZ`` → ``LA PAZ``; ``SECSTATE WASHDC`` → ``STATE``."""
    if fm.upper().startswith("SECSTATE"):
        return "STATE"
    words = fm.split()
    return " ".join(words[1:]) if len(words) > 1 else fm


def _reference_id(
    cls: ClassLine | None, header: Header, year: int | None, cover_serial: int | None
) -> tuple[str, str | None]:
    station = cls.station if cls else None
    serial = cls.serial if cls else None
    de_serial = int((header.routing["serial"] if header.routing else None) or 0) or None
    if header.fm and (station is None or set(station) <= {"X", " "}):
        station = _fm_station(header.fm)  # no class line, or its station redacted
    if serial is None:
        serial = de_serial or cover_serial
    if station is None or not serial:
        raise ParseError(
            "not a cable: no station and serial number to identify it "
            "(expected e.g. 'ALMATY 000598' on the classification line)"
        )
    if year is None:
        raise ParseError(
            f"cable {station} {serial} carries no date: no date-time group, "
            "no date line and no declassification date to infer the year from"
        )
    key = _NON_LETTERS.sub("", station.upper())
    if not key and header.fm:  # a station of digits only (garbled): the FM line's post
        station = _fm_station(header.fm)
        key = _NON_LETTERS.sub("", station.upper())
    if not key:
        raise ParseError(
            f"not a cable: the station {station!r} holds no letters, so serial {serial} "
            "identifies nothing"
        )
    return f"{year % 100:02d}{key}{serial}", station


def _spliced(cls: ClassLine, header: Header) -> bool:
    """True when the class line names another cable than the routing header does."""
    de_serial = header.routing["serial"] if header.routing else None
    if not (header.fm and de_serial and cls.station and cls.serial):
        return False
    same_station = _NON_LETTERS.sub("", _fm_station(header.fm)) == _NON_LETTERS.sub("", cls.station)
    return (
        not same_station and int(de_serial) != cls.serial and set(cls.station) - {"X", " "} != set()
    )


def _foreign_station(cls: ClassLine, header: Header) -> bool:
    """True when, with no DE line to decide, the class line names a station that is not the
    FM line's (``MOSCOW`` under ``FM USINT HAVANA``; ``STATE`` under ``SECSTATE`` is the same)."""
    if (header.routing and header.routing["serial"]) or not (header.fm and cls.station):
        return False
    station = _NON_LETTERS.sub("", cls.station.upper())
    if not station.strip("X"):
        return False  # redacted
    fm = _NON_LETTERS.sub("", header.fm.upper())
    return not (fm.endswith(station) or _NON_LETTERS.sub("", _fm_station(header.fm)) == station)


# ``\b(19[6-9]\d|20[0-2]\d)\b``, with the word boundary before the year checked after its first
# digit: a pattern that opens with a literal lets the engine skip ahead (~3x faster).
_YEAR = re.compile(r"(1(?<!\w1)9[6-9]\d|2(?<!\w2)0[0-2]\d)\b")


def _infer_year(declass_date: str | None, lines: list[str]) -> int | None:
    """Declassification is usually set ten years on; else the year the text names most."""
    mentioned = Counter(int(y) for y in _YEAR.findall("\n".join(lines[:400])))
    if declass_date is not None and 1970 <= int(declass_date[:4]) - 10 <= 2030:
        guess = int(declass_date[:4]) - 10
        # a 25-year declassification: the text never reaches the ten-year guess
        if mentioned and guess > max(mentioned) + 1:
            return max(mentioned)
        return guess
    return mentioned.most_common(1)[0][0] if mentioned else None


def _caveats(cls: ClassLine | None, found: list[str]) -> list[str]:
    ordered: list[str] = []
    for word in [*(cls.caveats if cls else []), *found]:
        caveat = normalise_caveat(word.upper())
        if caveat not in ordered:
            ordered.append(caveat)
    return ordered


__all__ = ["ParseError", "full_year", "parse_cable"]
