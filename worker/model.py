"""Shared constants of the record and the queue documents."""

from __future__ import annotations

from typing import Final

SCHEMA_VERSION: Final = "2.0.0"

PARSER_VERSION: Final = "2.0.0"
"""The parser that derived a record (``parser_version``); raised with every change to what it
derives, so that ``cable-ingest reparse --older-than`` finds the records it would change."""

# Published classifications, lowest to highest: routing compares positions in this tuple.
CLASSIFICATIONS: Final = (
    "UNCLASSIFIED",
    "UNCLASSIFIED//FOR OFFICIAL USE ONLY",
    "CONFIDENTIAL",
    "CONFIDENTIAL//NOFORN",
    "SECRET",
    "SECRET//NOFORN",
    "TOP SECRET",
    "TOP SECRET//NOFORN",
)

TOKEN_SCOPES: Final = ("ingest", "read", "operate")
"""What an API token of ``cable-ingest serve`` may do: post cables, read records, operate."""

PRECEDENCES: Final = ("FLASH", "NIACT IMMEDIATE", "IMMEDIATE", "PRIORITY", "ROUTINE")
