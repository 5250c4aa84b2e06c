"""The cable record as types: what :func:`worker.parse.parse_cable` makes and every consumer reads.

Written by hand beside ``schemas/cable.schema.json``, the contract at run time;
``tests/test_record.py`` walks both and fails when a field, its nullability or whether it is
required differ. The types are total: a value that may be absent is ``None`` (or an empty
list), never a missing key, except where marked ``NotRequired``.
"""

# no `from __future__ import annotations`: Python 3.11 reads NotRequired only from real
# annotations when it computes a TypedDict's required keys
from typing import Literal, NotRequired, TypedDict

Precedence = Literal["FLASH", "NIACT IMMEDIATE", "IMMEDIATE", "PRIORITY", "ROUTINE"]
TagKind = Literal["subject", "country", "organisation", "person"]


class Section(TypedDict):
    """``SECTION 01 OF 02``."""

    number: int
    total: int


class Routing(TypedDict):
    """The routing header above the date-time group."""

    transmission_id: str | None
    prosigns: str | None
    routing_indicators: list[str]
    station: str | None
    serial: str | None
    section: int | None
    julian_day: int | None
    time: str | None
    security: str | None


class Recipient(TypedDict):
    """A TO, INFO or XMT addressee."""

    routing_code: str | None
    name: str
    precedence: Precedence | None
    serial: str | None


class Downgrade(TypedDict):
    """A downgrade instruction (``DNG: CO 01/26/2021``), kept apart from declassification."""

    to: str | None
    on: str | None
    text: str


class Tag(TypedDict):
    """A TAGS entry, with its kind."""

    code: str
    kind: TagKind


class Reference(TypedDict):
    """A REF item; ``id`` when it names a cable."""

    label: str | None
    raw: str
    id: NotRequired[str]


class ClassifiedBy(TypedDict):
    """The ``Classified By`` line: the person, their title, the reasons, or the guide."""

    name: str | None
    title: str | None
    reasons: list[str]
    derived_from: str | None
    text: str


class Paragraph(TypedDict):
    """A body paragraph with its classification marking."""

    number: int | None
    classification: str | None
    heading: str | None
    text: str


class ParseWarning(TypedDict):
    """Something odd about this rendering of the cable."""

    code: str
    message: str


class CableRecord(TypedDict):
    """One cable as parsed (``schemas/cable.schema.json``)."""

    schema_version: str
    parser_version: str
    reference_id: str
    date: str | None
    precedence: Precedence | None
    origin: str | None
    fm: str | None
    classification: str | None
    caveats: list[str]
    section: Section | None
    routing: Routing | None
    to: list[Recipient]
    info: list[Recipient]
    xmt: list[Recipient]
    declassify_on: str | None
    declassification: str | None
    downgrade: Downgrade | None
    tags: list[Tag]
    subject: str | None
    references: list[Reference]
    classified_by: ClassifiedBy | None
    summary: str | None
    paragraphs: list[Paragraph]
    signature: str | None
    warnings: list[ParseWarning]
    source_file: NotRequired[str]
