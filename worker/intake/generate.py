"""Synthetic cables at any scale: real cables renumbered, so that each copy is a distinct cable.

A template is a real cable whose serial number the generator can find where the parser reads it
(the ``DE`` line's ``#0598``, the classification line's ``ALMATY 000598`` and the continuation
markers ``ALMATY 00000598 002 OF 002``). Copy *k* of a template is the same text with a new
serial in those places, so it has its own reference id and content hash while keeping the
template's size, structure and parse cost: 250,000 cables drawn from the 995 of the dev corpus
have the corpus's size distribution. New serials count up per year and station from 1, skipping
every serial a template already uses, so copies never collide with each other or with the
originals. Each template is checked once (a copy must parse to the reference id it was given);
the others are left out and counted.
"""

from __future__ import annotations

import itertools
import re
from collections import defaultdict
from collections.abc import Iterable, Iterator
from dataclasses import dataclass
from pathlib import Path

from worker.errors import CableIngestError, ParseError
from worker.parse import parse_cable

MAX_SERIAL = 999_999  # six digits: the widest a classification line writes
_REFERENCE = re.compile(r"^(\d{2})(.+?)(\d+)$")


class GenerateError(CableIngestError):
    """No usable template, or more cables asked than the serial numbers allow."""


@dataclass(frozen=True, slots=True)
class Template:
    """A real cable and where its serial number is written."""

    year: str  # two digits, as in the reference id
    station: str  # as in the reference id: ``ALMATY``, ``RIODEJANEIRO``
    serial: int
    pieces: tuple[str, ...]  # the text cut where the serial is written
    widths: tuple[int, ...]  # the width of each written serial (zero-padded), between pieces

    @classmethod
    def cut(cls, text: str, year: str, station: str, serial: int) -> Template:
        """Find every place ``serial`` is written in ``text``: ``#0598`` on the DE line,
        ``ALMATY 000598`` (the station's letters, spaced or not) elsewhere."""
        letters = r"[ ]?".join(map(re.escape, station))
        number = rf"(?P<number>0*{serial})(?!\d)"
        places = re.compile(rf"(?:(?<=\n)DE [A-Z]+ #|(?<![A-Z]){letters}[ ]+){number}")
        pieces, widths, at = [], [], 0
        for match in places.finditer(text):
            start, end = match.span("number")
            pieces.append(text[at:start])
            widths.append(end - start)
            at = end
        pieces.append(text[at:])
        return cls(year, station, serial, tuple(pieces), tuple(widths))

    def renumbered(self, serial: int) -> str:
        """The text with ``serial`` written in every place, each zero-padded as before."""
        digits = str(serial)
        out = [self.pieces[0]]
        for width, piece in zip(self.widths, self.pieces[1:], strict=True):
            out += (digits.zfill(width), piece)
        return "".join(out)


def template(text: str) -> Template | None:
    """``text`` as a template, or None when its reference id cannot be renumbered."""
    try:
        reference_id = parse_cable(text)["reference_id"]
    except ParseError:
        return None
    match = _REFERENCE.match(reference_id)
    if match is None:
        return None
    year, station, serial = match[1], match[2], int(match[3])
    made = Template.cut(text, year, station, serial)
    probe = MAX_SERIAL if serial != MAX_SERIAL else MAX_SERIAL - 1
    try:
        renumbered = parse_cable(made.renumbered(probe))["reference_id"]
    except ParseError:
        return None
    return made if renumbered == f"{year}{station}{probe}" else None


def load_templates(paths: Iterable[Path]) -> tuple[list[Template], int]:
    """Templates from the cable files ``paths``, and how many files could not be one."""
    made: list[Template] = []
    refused = 0
    for path in paths:
        found = template(path.read_text(encoding="utf-8", errors="replace"))
        if found is None:
            refused += 1
        else:
            made.append(found)
    return made, refused


def generate(templates: list[Template], count: int) -> Iterator[tuple[str, str]]:
    """``count`` distinct cables as (reference id, text), the templates taken in turn."""
    if not templates:
        raise GenerateError("no template: no cable whose serial number could be renumbered")
    taken: dict[tuple[str, str], set[int]] = defaultdict(set)
    for made in templates:
        taken[made.year, made.station].add(made.serial)
    following: dict[tuple[str, str], Iterator[int]] = {}
    for made in itertools.islice(itertools.cycle(templates), count):
        key = (made.year, made.station)
        serials = following.setdefault(key, (n for n in itertools.count(1) if n not in taken[key]))
        serial = next(serials)
        if serial > MAX_SERIAL:
            raise GenerateError(
                f"more than {MAX_SERIAL:,} cables of {made.year}{made.station}: use more templates"
            )
        yield f"{made.year}{made.station}{serial}", made.renumbered(serial)


def write_cables(templates: list[Template], count: int, folder: Path) -> int:
    """Write ``count`` generated cables to ``folder`` as ``<reference id>.txt``; return count."""
    folder.mkdir(parents=True, exist_ok=True)
    written = 0
    for reference_id, text in generate(templates, count):
        (folder / f"{reference_id}.txt").write_text(text, encoding="utf-8")
        written += 1
    return written
