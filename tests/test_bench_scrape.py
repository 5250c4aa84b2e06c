"""`make bench`'s scrape row keeps working: a small situation scraped a few times over HTTP
(figures are not checked: tests never assert on time)."""

from __future__ import annotations

import pytest

from bench import scrape
from tests.services import redis_db_url


@pytest.mark.timeout(600)
def test_scrape_row(capsys: pytest.CaptureFixture[str], monkeypatch: pytest.MonkeyPatch) -> None:
    """One row per database with p50, p99 and the target's verdict."""
    with redis_db_url() as url:  # skips, or fails in CI, without Redis
        monkeypatch.setattr(scrape, "REDIS_URL", url)
        argv = ["--dead-letters", "500", "--receipts", "500", "--scrapes", "3"]
        assert scrape.main([*argv, "--databases", "sqlite"]) == 0
    row = next(line for line in capsys.readouterr().out.splitlines() if "redis+sqlite" in line)
    assert "p50" in row
    assert "p99" in row
    assert "target p99 < 100 ms" in row
