"""`make fuzz`: coverage-guided fuzzing of the parser with atheris (libFuzzer) for a fixed time.

Every input must end in a valid record or a ParseError; anything else (another exception, an
invalid record) is a crash that libFuzzer reports with the input that caused it, saved as
``crash-*`` in the working folder. The seed corpus is the project's sample cable.

    python -m chaos.fuzz -max_total_time=60 [libFuzzer options] [CORPUS_DIR …]
"""

from __future__ import annotations

import sys

import atheris

with atheris.instrument_imports():
    from worker.core.validate import validate_record
    from worker.errors import ParseError
    from worker.parse import parse_cable


def test_one_input(data: bytes) -> None:
    """Parse the bytes as text (as the door would decode them, invalid UTF-8 replaced)."""
    text = data.decode("utf-8", errors="replace")
    try:
        record = parse_cable(text)
    except ParseError:
        return
    validate_record(record)


def main() -> None:
    """Hand the command line to libFuzzer."""
    atheris.Setup(sys.argv, test_one_input)
    atheris.Fuzz()


if __name__ == "__main__":
    main()
