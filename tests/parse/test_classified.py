"""Classified By: the officer's name without titles or offices, the title, reasons, sources."""

from __future__ import annotations

import pytest

from worker.parse.classified import classified_by


@pytest.mark.parametrize(
    ("line", "name", "title"),
    [
        ("DCM Mark Asquino, reasons 1.4 (B) and (D).", "Mark Asquino", "DCM"),
        (
            "ECOPOL Counselor Andrew Erickson for reasons 1.4 (b)",
            "Andrew Erickson",
            "ECOPOL Counselor",
        ),
        ("POL/MC Josiah Rosenblatt for reaso ns 1.4(b)(d)", "Josiah Rosenblatt", "POL/MC"),
        ("M/C Joseph Y. Yun, reasons 1.4 (b/d)", "Joseph Y. Yun", "M/C"),
        ("ECONMINCOUNS Matthias Mitman, reasons 1.4 (b,d)", "Matthias Mitman", "ECONMINCOUNS"),
        ("PolMinCouns Gregory Berry, reasons 1.4 b, d", "Gregory Berry", "PolMinCouns"),
        ("GEORGE GLASS FO R REASONS 1.4 (B) AND (D)", "GEORGE GLASS", None),
        ("Ambassador Clark T. Randt, Jr. Reasons 1.4 (b/d).", "Clark T. Randt, Jr.", "Ambassador"),
        (
            "Charge d'Affaires W. Scott Reid III. Reasons 1.4 (b)",
            "W. Scott Reid III.",
            "Charge d'Affaires",
        ),
        (
            "EUR/PRA Acting Director Kathleen Morenski for reasons 1.4",
            "Kathleen Morenski",
            "EUR/PRA Acting Director",
        ),
        (
            "David Appleton, Director, INR/CCS, Reason: 1.4 (c, d).",
            "David Appleton",
            "Director, INR/CCS",
        ),
        (
            "Deputy Chief of Mission, Kevin M Johnson for reasons 1.4 b and d",
            "Kevin M Johnson",
            "Deputy Chief of Mission",
        ),
        (
            "CHARGE D'AFFAIRES, A.I. LISA KUBISKE, REASON 1.4(B) and (D)",
            "LISA KUBISKE",
            "CHARGE D'AFFAIRES, A.I.",
        ),
        (
            "Ambassador Gillian Milovanovic, Embassy Bamako, for reas ons 1.4 (b) (d).",
            "Gillian Milovanovic",
            "Ambassador, Embassy Bamako",
        ),
        (
            "Interagency Provincial Affairs Deputy Coordinator Hoyt Y ee for reasons 1.4",
            "Hoyt Yee",
            "Interagency Provincial Affairs Deputy Coordinator",
        ),
        ("PAS Couselor Denise Urs for reasons 1.4 b,d", "Denise Urs", "PAS Couselor"),
        ("Ambassador Wayne for reasons 1.4 (b) & (d).", "Wayne", "Ambassador"),
        ("Ambassador, reason 1.4 (b,d)", None, "Ambassador"),
        ("Charge d'Affaires, for reasons 1.4 (b) and (d)", None, "Charge d'Affaires"),
        (
            "ROBERT A. POLLARD, Minister-Counselor for Economics Affa irs, for Reasons 1.4",
            "ROBERT A. POLLARD",
            "Minister-Counselor for Economics Affa irs",
        ),
    ],
)
def test_name_and_title(line: str, name: str | None, title: str | None) -> None:
    """The officer's name keeps its spelling and suffix; roles and offices go to the title."""
    parsed = classified_by(line)
    assert (parsed["name"], parsed["title"]) == (name, title)
    assert parsed["text"] == line


@pytest.mark.parametrize(
    ("line", "reasons"),
    [
        ("Ambassador Eric Edelman; reasons: 1.5 (b,d).", ["1.5(b)", "1.5(d)"]),
        ("Ambassador Christopher W. Dell under Section 1.4b/d", ["1.4(b)", "1.4(d)"]),
        (
            "S/CT DAS, Susan F. Burk, Reason: 1/4 (B), (D), (E), and (G)",
            ["1.4(b)", "1.4(d)", "1.4(e)", "1.4(g)"],
        ),
        ('D/Political Advisor A. "Hoot" Baez. Reasons: 1.4 (b) an d (d).', ["1.4(b)", "1.4(d)"]),
    ],
)
def test_reasons_normalised(line: str, reasons: list[str]) -> None:
    """Reasons come out as 1.4(x) codes whatever the spacing, separators and typos."""
    assert classified_by(line)["reasons"] == reasons


def test_derived_from_names_no_person() -> None:
    """A line citing a guide or sources names no one: the guide goes to derived_from."""
    for line, source in (
        ("Derived from Multiple Sources", "Multiple Sources"),
        ("Derived from DSCG 05-01, b and d", "DSCG 05-01"),
    ):
        parsed = classified_by(line)
        assert (parsed["name"], parsed["derived_from"]) == (None, source)
