"""Train the zstd dictionary that compresses stored originals (``make dictionary``).

A cable is ~10 KB; alone, zstd finds little to reuse in it (2.2x on the dev corpus). A
dictionary of the telegram's recurring text (routing lines, caveats, E.O. lines, page markers)
lifts that to ~2.7x on cables it was not trained on. The dictionary is written to
``worker/storage/dictionaries/originals-<id>.zdict``; zstd records its id in every frame, so a
new dictionary is added beside the old ones, never in place of them. The held-out figure below
(trained on one half of the corpus, measured on the other) is what to expect of unseen cables.
"""

from __future__ import annotations

import argparse
import sys

import zstandard

from bench.corpus import corpus_files
from worker.storage.originals import DICTIONARY_DIR, LEVEL

SIZE = 112_640  # zstd's default dictionary size (110 KiB)


def _ratio(
    dictionary: zstandard.ZstdCompressionDict, texts: list[bytes | bytearray | memoryview]
) -> float:
    compressor = zstandard.ZstdCompressor(level=LEVEL, dict_data=dictionary)
    return sum(map(len, texts)) / sum(len(compressor.compress(t)) for t in texts)


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--size", type=int, default=SIZE, help="dictionary size in bytes")
    args = parser.parse_args(argv)
    texts: list[bytes | bytearray | memoryview] = [path.read_bytes() for path in corpus_files()]
    if len(texts) < 100:
        print("train_dictionary: the dev corpus is needed (../shared/cables/corpus)")
        return 1
    held_out = _ratio(zstandard.train_dictionary(args.size, texts[::2]), texts[1::2])
    dictionary = zstandard.train_dictionary(args.size, texts)
    path = DICTIONARY_DIR / f"originals-{dictionary.dict_id()}.zdict"
    path.write_bytes(dictionary.as_bytes())
    print(f"{path.name}: {len(dictionary.as_bytes()):,} bytes from {len(texts)} cables")
    print(
        f"ratio at level {LEVEL}: {_ratio(dictionary, texts):.2f}x on the corpus,"
        f" {held_out:.2f}x held out (trained on half, measured on the other half)"
    )
    return 0


if __name__ == "__main__":
    sys.exit(main())
