"""`make bench`'s reparse row keeps working: a few hundred cables stored end to end, then
re-derived from their originals (figures are not checked: tests never assert on time)."""

from __future__ import annotations

import pytest

from bench import pipeline
from tests.services import redis_db_url


@pytest.mark.timeout(600)
def test_reparse_row_follows_the_end_to_end_row(capsys: pytest.CaptureFixture[str]) -> None:
    """The reparse scenario's row, and the line giving its rate against end-to-end ingest
    measured in the same run."""
    with redis_db_url():  # skips, or fails in CI, without Redis
        pass
    only = "end-to-end redis+sqlite,reparse redis+sqlite"
    assert pipeline.main(["--cables", "300", "--runs", "1", "--only", only]) == 0
    out = capsys.readouterr().out
    row = next(line for line in out.splitlines() if "reparse of 300 stored cables" in line)
    assert "cables/s" in row
    assert "worker CPU" in row
    assert "/ end-to-end redis+sqlite" in row
    assert "(target 80%)" in row
