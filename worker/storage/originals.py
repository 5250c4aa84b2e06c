"""Originals: the exact text a feed sent, kept once per sha256 and compressed with zstd.

A cable is ~10 KB of telegram text. Alone, zstd finds little to reuse in it; with a dictionary
of the telegram's recurring text (routing and E.O. lines, caveats, page markers) it compresses
it 2.7x on cables it was not trained on, against 2.2x without and 1.5x for LZ4 (dev corpus,
``bench/train_dictionary.py``). Compressing takes ~0.05 ms a cable at level 3; reading one back
~0.02 ms. zstd writes the dictionary's id in each frame, so frames made with a dictionary that
has since been replaced still read: every dictionary ever shipped stays in ``dictionaries/``.

The text is stored as its UTF-8 bytes (lone surrogates kept, as the envelope's sha256 counts
them), and every read checks the sha256 before the text is handed out.
"""

from __future__ import annotations

import functools
import hashlib
import threading
from dataclasses import dataclass
from pathlib import Path

import zstandard

from worker.errors import IntegrityError

CODEC = "zstd"
LEVEL = 3
DICTIONARY_DIR = Path(__file__).resolve().parent / "dictionaries"


@dataclass(frozen=True, slots=True)
class Original:
    """One original as stored: its sha256, size in bytes, codec and compressed bytes."""

    sha256: str
    size: int
    codec: str
    data: bytes


def text_bytes(text: str) -> bytes:
    """The bytes a text's sha256 is taken over (UTF-8, lone surrogates kept)."""
    return text.encode("utf-8", errors="surrogatepass")


def sha256_hex(raw: bytes) -> str:
    """The sha256 of ``raw`` in hex."""
    return hashlib.sha256(raw).hexdigest()


@functools.cache
def _dictionaries() -> dict[int, zstandard.ZstdCompressionDict]:
    found = {}
    for path in sorted(DICTIONARY_DIR.glob("originals-*.zdict")):
        dictionary = zstandard.ZstdCompressionDict(path.read_bytes())
        found[dictionary.dict_id()] = dictionary
    return found


def _newest() -> zstandard.ZstdCompressionDict | None:
    dictionaries = _dictionaries()
    return dictionaries[max(dictionaries)] if dictionaries else None


_local = threading.local()  # a zstd context serves one thread at a time


def _compressor() -> zstandard.ZstdCompressor:
    compressor: zstandard.ZstdCompressor | None = getattr(_local, "compressor", None)
    if compressor is None:
        compressor = zstandard.ZstdCompressor(level=LEVEL, dict_data=_newest())
        _local.compressor = compressor
    return compressor


def _decompressor(
    dict_id: int, dictionary: zstandard.ZstdCompressionDict | None
) -> zstandard.ZstdDecompressor:
    cache: dict[int, zstandard.ZstdDecompressor] = _local.__dict__.setdefault("decompressors", {})
    if dict_id not in cache:
        cache[dict_id] = zstandard.ZstdDecompressor(dict_data=dictionary)
    return cache[dict_id]


def compress(text: str, sha256: str | None = None) -> Original:
    """The original of ``text``; ``sha256`` (the envelope's) is checked when given."""
    raw = text_bytes(text)
    digest = sha256_hex(raw)
    if sha256 is not None and sha256 != digest:
        raise IntegrityError(f"original: sha256 {sha256} does not match the text ({digest})")
    return Original(digest, len(raw), CODEC, _compressor().compress(raw))


def decompress(original: Original) -> bytes:
    """The exact bytes of an original; IntegrityError when they do not hash to its sha256."""
    if original.codec != CODEC:
        raise IntegrityError(f"original {original.sha256}: unknown codec {original.codec!r}")
    try:
        dict_id = zstandard.get_frame_parameters(original.data).dict_id
        dictionary = _dictionaries().get(dict_id) if dict_id else None
        if dict_id and dictionary is None:
            raise IntegrityError(
                f"original {original.sha256}: compressed with zstd dictionary {dict_id},"
                f" which is not in {DICTIONARY_DIR.name}/"
            )
        raw = _decompressor(dict_id, dictionary).decompress(original.data)
    except zstandard.ZstdError as error:
        raise IntegrityError(f"original {original.sha256}: not a zstd frame ({error})") from None
    if sha256_hex(raw) != original.sha256:
        raise IntegrityError(
            f"original {original.sha256}: the stored bytes hash to {sha256_hex(raw)}; damaged"
        )
    return raw


def decode(raw: bytes) -> str:
    """The text of an original's bytes (the inverse of :func:`text_bytes`)."""
    return raw.decode("utf-8", errors="surrogatepass")
