"""The signature: the signing name at the end of the body, never a word of the prose."""

from __future__ import annotations

import pytest

from worker.parse.body import parse_body

_TEXT = "1. (C) The ministry will reply next week.\n\n2. (C) Comment: we expect little.\n"


@pytest.mark.parametrize(
    ("ending", "signature"),
    [
        ("ORDWAY", "ORDWAY"),
        ("Timken jr", "Timken jr"),
        ("LA LIME", "LA LIME"),
        ("MANZANARES .", "MANZANARES"),
        ("KUBISKE KUBISKE", "KUBISKE"),
        ("SHANNON Shannon", "SHANNON"),
        ("MINIMIZE CONSIDERED SHANNON", "SHANNON"),
        ("CLINTON UNQUOTE CLINTON", "CLINTON"),
        ("MCFARLAND\nNNNN\n2004CARACA02200 - CONFIDENTIAL", "MCFARLAND"),
        ("MCDONALD\n CONFIDENTIAL\n>", "MCDONALD"),
        ("LEBARON\nNNNN\nEnd Cable Text", "LEBARON"),
        (
            "HELMS\n\nDeclassified/Released US Department of State EO\nSystematic Review 05 JUL 2006",
            "HELMS",
        ),
        ("Murphy\n\nBERLIN 00001176 006 OF 006\n\n", "Murphy"),
        ("TRIVELLI\n\nDANIEL ORTEGA AN...", "TRIVELLI"),
        (
            "Please visit Paris' Classified Website at:\nhttp://www.state.sgov.gov/p/eur/paris/index.c fm\n\nStapleton",
            "Stapleton",
        ),
        (
            "Visit London's Classified Website: http://www.state.sgov.gov/p/eur/london/index. cfm Tuttle",
            "Tuttle",
        ),
        (
            "*****\nVisit Embassy Rabat's Classified Website;\nhttp://www.state.sgov.gov/p/nea/rabat\n*****\n\nRILEY",
            "RILEY",
        ),
    ],
)
def test_signature_on_its_line(ending: str, signature: str) -> None:
    """A name on its own line, before trailers, stamps and the website notice, or after it."""
    body = parse_body(_TEXT + ending + "\n")
    assert body.signature == signature
    assert not body.paragraphs[-1]["text"].endswith(signature)


@pytest.mark.parametrize(
    ("last", "signature"),
    [
        ("3. (C) Europe is the answer. Edelman", "Edelman"),
        ("3. (C) It will have effects beyond. BURNS", "BURNS"),
        ("3. (C) End comment. CROCKER", "CROCKER"),
        ("3. (C) Such is the view of the U.S. PATTERSON", "PATTERSON"),
        ('3. (C) He said "it is just for show." Beyrle', "Beyrle"),
        ("3. (U) Please slug responses for ISN, NEA, and T. CLINTON", "CLINTON"),
        ("3. (C) THE MINISTRY AGREED TO ALL POINTS. KISSINGER", "KISSINGER"),
    ],
)
def test_signature_run_into_the_last_sentence(last: str, signature: str) -> None:
    """A name after the last sentence on the same line; the sentence keeps its text."""
    body = parse_body(_TEXT + last + "\n")
    assert body.signature == signature
    assert body.paragraphs[-1]["text"].endswith(last[7 : -len(signature) - 1].strip()[-12:])


@pytest.mark.parametrize(
    "ending",
    [
        "3. PLEASE CABLE CONCURRENCE. BRIDGETOWN APPRECIATES TRINIDAD'S\nASSISTANCE.",
        "3. (C) This is the end of the story. End Comment.",
        "3. (SBU) The point of contact is RSO Wendy Bashnan. Regards.",
        "3. (SBU) Comment: informed speculation. End Comment",
        "3. (C) The U.S. Embassy",
        "3. (U) Point of contact: RSO Peshawar, David J. Hazarian",
        "3. (C) He met the Secretary.\nXXXXXXXXXXXX",
    ],
)
def test_no_signature_from_prose(ending: str) -> None:
    """An unsigned cable has no signature: a word of the prose or a redaction is none."""
    assert parse_body(_TEXT + ending + "\n").signature is None
