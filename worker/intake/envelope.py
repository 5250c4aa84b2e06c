"""Envelopes, and the checks every raw input passes at the door before it becomes one.

:func:`admit` is the door: it turns what a producer received (bytes, or text) into an envelope
as ``schemas/envelope.schema.json`` describes it, or raises :class:`IntakeError` with a
``reason_code`` and a message that gives sizes and offsets, never content. It reads the text
once: encoded once, hashed once, decoded only when it came as bytes (a cable is ~10 KB, and each
pass over it costs about as much as the rest of the door). :func:`make_envelope` wraps text
that needs no checks (benchmarks, tests).

Decoding: UTF-8 first (a leading byte order mark is dropped: it is an encoding artefact, not
text). Bytes that are not UTF-8 are decoded as cp1252 (a superset of the printable part of
latin-1, the usual encoding of old scraped copies), strictly: the five bytes cp1252 leaves
undefined (0x81, 0x8D, 0x8F, 0x90, 0x9D) make the input undecodable, since they appear in neither
real cp1252 nor latin-1 text. UTF-16 and UTF-32 (recognised by their byte order mark) are refused
with a message saying so, rather than as binary.
"""

from __future__ import annotations

import hashlib
import math
from collections.abc import Mapping
from datetime import UTC, datetime
from typing import Any, Literal

from uuid_utils import uuid7

from worker.errors import CableIngestError

ReasonCode = Literal["empty", "oversize", "binary", "undecodable", "missing", "unreadable"]
Scalar = str | int | float | bool | None

MAX_CONTROL_RATIO = 0.05
"""Largest share of control bytes (other than tab, newlines, form feed) that text may hold."""

MAX_SOURCE_CHARS = 200
"""The envelope schema's limit on ``source``; longer names keep their end, the specific part."""

_WHITESPACE_CONTROLS = b"\t\n\v\f\r"
_CONTROL_BYTES = bytes(b for b in [*range(0x20), 0x7F] if b not in _WHITESPACE_CONTROLS)
_UTF8_BOM = "\ufeff".encode()
_WIDE_BOMS = {
    b"\xff\xfe\x00\x00": "UTF-32",
    b"\x00\x00\xfe\xff": "UTF-32",
    b"\xff\xfe": "UTF-16",
    b"\xfe\xff": "UTF-16",
}


class IntakeError(CableIngestError, ValueError):
    """A raw input was refused at the door; ``reason_code`` says why in one word.

    Codes: ``empty`` (nothing but whitespace), ``oversize`` (over the byte limit), ``binary``
    (NUL bytes or too many control bytes), ``undecodable`` (neither UTF-8 nor cp1252),
    ``missing`` (no such path), ``unreadable`` (the path or archive could not be read).
    """

    def __init__(self, reason_code: ReasonCode, message: str) -> None:
        super().__init__(message)
        self.reason_code: ReasonCode = reason_code


def _check_bytes(data: bytes, max_bytes: int) -> None:
    """The checks made on the bytes: size, emptiness, wide encodings, binary content."""
    if len(data) > max_bytes:
        raise IntakeError(
            "oversize", f"input is {len(data):,} bytes, over the limit of {max_bytes:,} bytes"
        )
    if not data or data.isspace():
        raise IntakeError("empty", f"input is empty ({len(data):,} bytes of whitespace)")
    for bom, encoding in _WIDE_BOMS.items():
        if data.startswith(bom):
            raise IntakeError("undecodable", f"input is {encoding}; only UTF-8 is accepted")
    nul = data.find(b"\x00")
    if nul >= 0:
        raise IntakeError("binary", f"input holds a NUL byte at offset {nul}: binary, not text")
    controls = len(data) - len(data.translate(None, _CONTROL_BYTES))
    if controls > MAX_CONTROL_RATIO * len(data):
        raise IntakeError(
            "binary",
            f"{controls:,} of {len(data):,} bytes are control characters "
            f"(more than {MAX_CONTROL_RATIO:.0%}): binary, not text",
        )


def _check_text(text: str) -> None:
    if not text or text.isspace():  # Unicode whitespace too (no-break, ideographic spaces)
        raise IntakeError("empty", "input holds nothing but whitespace")


def _decoded(data: bytes) -> tuple[str, bytes]:
    """(the text of ``data``, that text's UTF-8 bytes)."""
    try:
        text = data.decode("utf-8")
    except UnicodeDecodeError as utf8_error:
        try:
            text = data.decode("cp1252")
        except UnicodeDecodeError as cp1252_error:
            bad = data[cp1252_error.start]
            raise IntakeError(
                "undecodable",
                f"input is not UTF-8 (invalid byte 0x{data[utf8_error.start]:02X} at offset "
                f"{utf8_error.start}) nor cp1252 (byte 0x{bad:02X} at offset "
                f"{cp1252_error.start} has no cp1252 character)",
            ) from None
        return text, text.encode("utf-8")
    if text.startswith("\ufeff"):
        return text[1:], data[len(_UTF8_BOM) :]
    return text, data


def make_envelope(
    text: str,
    *,
    source: str,
    metadata: Mapping[str, Scalar] | None = None,
    received_at: datetime | None = None,
) -> dict[str, Any]:
    """Wrap ``text`` in a queue envelope: id, source, received_at, sha256, text, metadata.

    The id is a UUID of version 7 (RFC 9562): its first 48 bits are the time in milliseconds,
    so ids made later sort later, and the indexes keyed by message id (accepted, arrivals,
    receipts) grow at their end. With random (version 4) ids, every group of 100 recorded by
    the HTTP intake dirtied ~100 scattered pages of a table that never stops growing (make
    bench: NDJSON batches after 18,000 single POSTs 11,850 -> 12,670-12,950 cables/s).

    ``received_at`` defaults to now and must be timezone-aware; it is written in UTC with a Z.
    A ``source`` longer than the schema allows keeps its last characters behind an ellipsis.
    ``metadata`` must be flat: string keys, scalar values, finite numbers. It is omitted when
    None.
    """
    stamp = format_utc(received_at or datetime.now(UTC))
    return _wrap(text, _encoded(text), source, metadata, stamp)


def admit(
    data: bytes | str,
    *,
    source: str,
    max_bytes: int,
    metadata: Mapping[str, Scalar] | None = None,
    received_at: datetime | str | None = None,
) -> dict[str, Any]:
    """The envelope of ``data`` (bytes as received, or text), or :class:`IntakeError` saying
    why it is refused.
    ``received_at`` may also be a time :func:`format_utc` already wrote (one per request)."""
    if isinstance(data, str):
        text = data.removeprefix("\ufeff")
        encoded = text.encode("utf-8", "surrogatepass")  # the size is checked before Unicode
        _check_bytes(encoded, max_bytes)
        if b"\xed" in encoded:  # the lead byte of an encoded surrogate (and of Hangul)
            _encoded(text)
    else:
        _check_bytes(data, max_bytes)
        text, encoded = _decoded(data)
    _check_text(text)
    if not isinstance(received_at, str):
        received_at = format_utc(received_at or datetime.now(UTC))
    return _wrap(text, encoded, source, metadata, received_at)


def _encoded(text: str) -> bytes:
    try:
        return text.encode("utf-8")
    except UnicodeEncodeError as exc:
        raise IntakeError(
            "undecodable", f"text holds a lone surrogate at offset {exc.start}: not Unicode"
        ) from None


def _wrap(
    text: str, encoded: bytes, source: str, metadata: Mapping[str, Scalar] | None, stamp: str
) -> dict[str, Any]:
    if not source:
        raise ValueError("source must be a non-empty string")
    if len(source) > MAX_SOURCE_CHARS:
        source = "…" + source[-(MAX_SOURCE_CHARS - 1) :]
    envelope: dict[str, Any] = {
        "id": str(uuid7()),
        "source": source,
        "received_at": stamp,
        "sha256": hashlib.sha256(encoded).hexdigest(),
        "text": text,
    }
    if metadata is not None:
        envelope["metadata"] = _plain_metadata(metadata)
    return envelope


def format_utc(moment: datetime) -> str:
    """Return ``moment`` as ISO 8601 in UTC with a Z ("2024-05-01T09:30:00.123456Z")."""
    if moment.tzinfo is None or moment.utcoffset() is None:
        raise ValueError(f"received_at must be timezone-aware, got naive {moment.isoformat()}")
    utc = moment.astimezone(UTC).replace(tzinfo=None)
    return utc.isoformat(timespec="microseconds" if utc.microsecond else "seconds") + "Z"


def _plain_metadata(metadata: Mapping[str, Scalar]) -> dict[str, Scalar]:
    plain: dict[str, Scalar] = {}
    for key, value in metadata.items():
        if not isinstance(key, str):
            raise TypeError(f"metadata keys must be strings, got {type(key).__name__} {key!r}")
        if value is not None and not isinstance(value, str | int | float | bool):
            kind = type(value).__name__
            raise TypeError(f"metadata[{key!r}] must be a str, number, bool or None, got {kind}")
        if isinstance(value, float) and not math.isfinite(value):
            raise ValueError(f"metadata[{key!r}] must be a finite number, got {value}")
        plain[key] = value
    return plain
