"""Envelopes validate against their schema, and bad raw input is refused at the door with a reason."""

from __future__ import annotations

import hashlib
from datetime import UTC, datetime, timedelta, timezone
from pathlib import Path

import pytest

from worker.core.validate import validate_envelope
from worker.errors import CableIngestError
from worker.intake.envelope import IntakeError, admit, format_utc, make_envelope

SAMPLE = (Path(__file__).resolve().parents[1] / "fixtures" / "06ALMATY598.scraped.txt").read_text(
    encoding="utf-8"
)
LIMIT = 1024 * 1024


def test_envelope_validates_and_hashes_the_utf8_text() -> None:
    """A real cable's envelope satisfies the schema and its sha256 is that of the UTF-8 bytes."""
    text = SAMPLE + "\nNAZAROV — Zürich\n"
    envelope = make_envelope(text, source="feeds/almaty", metadata={"refid": "06ALMATY598"})
    validate_envelope(envelope)
    assert envelope["sha256"] == hashlib.sha256(text.encode("utf-8")).hexdigest()
    assert envelope["text"] == text
    assert envelope["metadata"] == {"refid": "06ALMATY598"}
    assert envelope["source"] == "feeds/almaty"


def test_envelopes_get_distinct_ids_and_no_metadata_key_by_default() -> None:
    """Each envelope has its own id; metadata is left out when none is given."""
    first, second = (make_envelope(SAMPLE, source="s") for _ in range(2))
    assert first["id"] != second["id"]
    assert "metadata" not in first


@pytest.mark.parametrize(
    ("moment", "expected"),
    [
        (datetime(2006, 2, 14, 11, 33, tzinfo=UTC), "2006-02-14T11:33:00Z"),
        (datetime(2006, 2, 14, 11, 33, 0, 250_000, tzinfo=UTC), "2006-02-14T11:33:00.250000Z"),
        (
            datetime(2006, 2, 14, 17, 33, tzinfo=timezone(timedelta(hours=6))),
            "2006-02-14T11:33:00Z",
        ),
    ],
)
def test_received_at_is_utc_with_z(moment: datetime, expected: str) -> None:
    """received_at is converted to UTC and written with a Z, as the schema's pattern requires."""
    envelope = make_envelope(SAMPLE, source="s", received_at=moment)
    assert envelope["received_at"] == expected
    validate_envelope(envelope)


def test_naive_received_at_is_refused() -> None:
    """A naive datetime has no known offset, so it is refused rather than guessed."""
    with pytest.raises(ValueError, match="timezone-aware"):
        format_utc(datetime(2006, 2, 14, 11, 33))


def test_long_source_keeps_its_end_and_validates() -> None:
    """A source longer than the schema's 200 characters is cut from the left and still validates."""
    source = "a/" * 150 + "06ALMATY598.txt"
    envelope = make_envelope(SAMPLE, source=source)
    validate_envelope(envelope)
    assert envelope["source"].endswith("06ALMATY598.txt")
    assert len(envelope["source"]) == 200


@pytest.mark.parametrize(
    ("metadata", "error"),
    [
        ({"nested": {"a": 1}}, TypeError),
        ({"items": [1, 2]}, TypeError),
        ({"score": float("nan")}, ValueError),
    ],
)
def test_metadata_must_be_flat_json_scalars(
    metadata: dict[str, object], error: type[Exception]
) -> None:
    """Nested values and non-finite numbers are refused before they reach the queue."""
    with pytest.raises(error):
        make_envelope(SAMPLE, source="s", metadata=metadata)  # type: ignore[arg-type]


def _text(data: bytes | str) -> str:
    """The text ``admit`` puts in the envelope of ``data``, checked against its sha256."""
    envelope = admit(data, source="s", max_bytes=LIMIT)
    assert envelope["sha256"] == hashlib.sha256(envelope["text"].encode()).hexdigest()
    return str(envelope["text"])


def test_admit_keeps_utf8_text_unchanged() -> None:
    """Valid UTF-8 (bytes or text) is the envelope's text exactly; a leading byte order mark
    is dropped, from the text and from what is hashed."""
    data = SAMPLE.encode("utf-8")
    assert _text(data) == _text(SAMPLE) == SAMPLE
    assert _text(b"\xef\xbb\xbf" + data) == _text("\ufeff" + SAMPLE) == SAMPLE


@pytest.mark.parametrize(
    ("data", "reason_code", "message"),
    [
        (b"", "empty", "empty"),
        (b"  \r\n\t\n ", "empty", "whitespace"),
        (b"\xef\xbb\xbf \n", "empty", "whitespace"),
        (b"x" * (LIMIT + 1), "oversize", "1,048,577 bytes, over the limit of 1,048,576"),
        (b"%PDF-1.4\n\x00\x01\x02binary", "binary", "NUL byte at offset 9"),
        (b"text" + bytes(range(1, 9)) * 3, "binary", "control characters"),
        ("UTF-16 cable".encode("utf-16"), "undecodable", "UTF-16"),
        (b"caf\xc3 \x81\x9d", "undecodable", "not UTF-8 (invalid byte 0xC3 at offset 3)"),
    ],
)
def test_bad_input_is_refused_with_a_reason(data: bytes, reason_code: str, message: str) -> None:
    """Each class of bad input raises IntakeError with its reason code and a clear message."""
    with pytest.raises(IntakeError) as caught:
        admit(data, source="s", max_bytes=LIMIT)
    assert caught.value.reason_code == reason_code
    assert message in str(caught.value)


def test_oversize_is_checked_before_decoding() -> None:
    """Input over the limit is refused as oversize even when it is not text at all."""
    with pytest.raises(IntakeError) as caught:
        admit(b"\x00" * 11, source="s", max_bytes=10)
    assert caught.value.reason_code == "oversize"


def test_latin1_falls_back_to_cp1252() -> None:
    """A latin-1 or cp1252 scrape that is not UTF-8 is decoded as cp1252."""
    text = "SUBJECT: CAFÉ MÜLLER \N{EN DASH} \N{LEFT DOUBLE QUOTATION MARK}QUOTES\N{RIGHT DOUBLE QUOTATION MARK}\n"
    assert _text(text.encode("cp1252")) == text
    assert _text("Genève, São Paulo".encode("latin-1")) == "Genève, São Paulo"


def test_intake_error_sits_in_the_hierarchy() -> None:
    """IntakeError is both a CableIngestError and a ValueError, like its siblings."""
    error = IntakeError("empty", "input is empty")
    assert isinstance(error, CableIngestError)
    assert isinstance(error, ValueError)
