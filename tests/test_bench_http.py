"""`make bench`'s HTTP rows keep working: a small run prints every row and both verdicts
(figures are not checked: tests never assert on time)."""

from __future__ import annotations

import pytest

from bench import http
from tests.services import redis_db_url


def test_http_benchmark_prints_every_row(capsys: pytest.CaptureFixture[str]) -> None:
    """The producer baseline, single POSTs (closed loop and half rate), NDJSON batches, and
    the two target lines; every POST was answered 202 (the bench raises otherwise)."""
    with redis_db_url():  # skips, or fails in CI, without Redis
        pass
    assert http.main(["--requests", "300", "--runs", "1", "--connections", "8"]) == 0
    out = capsys.readouterr().out
    for row in ("Python producer enqueue", "single POSTs, max rate, 8 conns",
                "single POSTs at fixed 500/s (half the target)", "single POSTs at half the max",
                "NDJSON batches of 100", "batches / producer", "p99 < 50 ms at 500/s"):  # fmt: skip
        assert row in out
    for line in out.splitlines():
        if "single POSTs at" in line:
            assert "p50" in line, line
            assert "p99" in line, line
