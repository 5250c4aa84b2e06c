"""TAGS: codes, written-out tags and person tags kept whole, each with its kind."""

from __future__ import annotations

import pytest

from worker.parse.tags import parse_tags


@pytest.mark.parametrize(
    ("line", "tags"),
    [
        (
            "TAGS PINR, KCRM, BU, Organized Crime",
            [
                ("PINR", "subject"),
                ("KCRM", "subject"),
                ("BU", "country"),
                ("ORGANIZED CRIME", "subject"),
            ],
        ),
        (
            "TAGS: PGOV PTER EUN USEU BRUSSELS",
            [
                ("PGOV", "subject"),
                ("PTER", "subject"),
                ("EUN", "organisation"),
                ("USEU BRUSSELS", "subject"),
            ],
        ),
        (
            "TAGS: OVIP CLINTON HILLARY PREL",
            [("OVIP", "subject"), ("CLINTON, HILLARY", "person"), ("PREL", "subject")],
        ),
        (
            "TAGS: OVIP CLINTON, HILLARY PREL",
            [("OVIP", "subject"), ("CLINTON, HILLARY", "person"), ("PREL", "subject")],
        ),
        (
            "TAGS OVIP (STEINBERG, JAMES B.), PREL, CH",
            [
                ("OVIP", "subject"),
                ("STEINBERG, JAMES B.", "person"),
                ("PREL", "subject"),
                ("CH", "country"),
            ],
        ),
        (
            "TAGS PGOV, PREL, IS, COUNTERTERRORISM, GOI EXTERNAL",
            [
                ("PGOV", "subject"),
                ("PREL", "subject"),
                ("IS", "country"),
                ("COUNTERTERRORISM", "subject"),
                ("GOI EXTERNAL", "subject"),
            ],
        ),
        (
            "TAGS: OVIP BIDEN JOSEPH UAE",
            [("OVIP", "subject"), ("BIDEN, JOSEPH", "person"), ("UAE", "subject")],
        ),
    ],
)
def test_tags_kept_whole(line: str, tags: list[tuple[str, str]]) -> None:
    """Multi-word and person tags are one tag each, and every tag has its kind."""
    parsed, _ = parse_tags(line)
    assert [(t["code"], t["kind"]) for t in parsed] == tags


def test_ru_is_read_as_russia() -> None:
    """RU is no code of the TAGS list: it is read as RS, once, with a note."""
    parsed, notes = parse_tags("TAGS: PREL RU RS UK")
    assert [t["code"] for t in parsed] == ["PREL", "RS", "UK"]
    assert any("'RU'" in note for note in notes)


def test_repair_only_what_is_no_code() -> None:
    """A valid code is kept (KACT); a misspelling is repaired (PGOF → PGOV) unless the repair
    would only repeat a tag written beside it (EREL beside PREL)."""
    assert [t["code"] for t in parse_tags("TAGS: KACT PGOF")[0]] == ["KACT", "PGOV"]
    assert [t["code"] for t in parse_tags("TAGS EFIN, EREL, PREL")[0]] == ["EFIN", "EREL", "PREL"]
