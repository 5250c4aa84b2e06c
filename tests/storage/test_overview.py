"""What status and a scrape read without counting a table: the dead-letter counts the triggers of
migration 0007 keep stay equal to the table through adds, repeats, purges and raw SQL; a
sink's last receipt comes from the (sink, delivered_at) index. SQLite and PostgreSQL."""

from __future__ import annotations

import copy
from datetime import UTC, datetime, timedelta
from typing import Any

from sqlalchemy import create_engine, text

from worker.storage import DeadLetterStore, Receipt, ReceiptStore
from worker.storage.overview import OverviewStore

STAGES = ("intake", "parse", "validate", "sink:hook")


def _truth(url: str) -> dict[str, int]:
    """The counts by a GROUP BY over the table itself."""
    engine = create_engine(url)
    try:
        with engine.connect() as conn:
            rows = conn.execute(text("SELECT stage, count(*) FROM dead_letters GROUP BY stage"))
            return {str(stage): int(count) for stage, count in rows}
    finally:
        engine.dispose()


def _letters(base: dict[str, Any], n: int, offset: int = 0) -> list[dict[str, Any]]:
    out = []
    for i in range(offset, offset + n):
        document = copy.deepcopy(base)
        document.update(id=f"dl-{i}", stage=STAGES[i % len(STAGES)], sha256=f"{i:064x}")
        out.append(document)
    return out


def test_dead_letter_counts_follow_the_table(
    store_url: str, dead_letter_store: DeadLetterStore, minimal_dead_letter: dict[str, Any]
) -> None:
    """2,000 added, 500 of them again (a repeat counts no new letter), a purge of one stage, a
    purge by age and a DELETE in raw SQL: after each the counts equal a GROUP BY."""
    overview = OverviewStore(store_url)
    try:
        assert overview.gauges([]).dead_by_stage == {}
        dead_letter_store.add_many(_letters(minimal_dead_letter, 2_000))
        assert overview.gauges([]).dead_by_stage == _truth(store_url) == dict.fromkeys(STAGES, 500)
        dead_letter_store.add_many(_letters(minimal_dead_letter, 500))  # the same again
        assert overview.gauges([]).dead_by_stage == _truth(store_url)
        assert sum(_truth(store_url).values()) == 2_000
        assert dead_letter_store.purge(stage="parse") == 500
        assert overview.gauges([]).dead_by_stage == _truth(store_url)
        assert "parse" not in overview.gauges([]).dead_by_stage
        later = datetime.now(UTC) + timedelta(days=1)
        assert dead_letter_store.purge(stage="intake", before=later) == 500
        engine = create_engine(store_url)
        with engine.begin() as conn:
            conn.execute(text("DELETE FROM dead_letters WHERE stage = 'validate' AND id < 'dl-2'"))
        engine.dispose()
        assert overview.gauges([]).dead_by_stage == _truth(store_url)
        assert dead_letter_store.counts_by_stage() == _truth(store_url)
    finally:
        overview.close()


def test_last_receipt_per_sink(store_url: str) -> None:
    """The newest receipt of each sink asked about; a sink with none is absent; status's last
    success skips outcomes that are not one (withheld)."""
    receipts = ReceiptStore(store_url)
    overview = OverviewStore(store_url)
    try:
        receipts.add_many([Receipt(f"m{n}", "storage", None, "inserted") for n in range(50)])
        receipts.add_many([Receipt("w1", "hook", None, "withheld")])
        gauges = overview.gauges(["storage", "hook", "never"])
        assert set(gauges.last_receipts) == {"storage", "hook"}
        since = datetime.now(UTC) - timedelta(minutes=1)
        figures = overview.figures(since, ["storage"], ["storage", "hook"], ["parse"])
        assert set(figures.activity.last_success) == {"storage"}
        assert figures.activity.by_sink == {"storage": 50, "hook": 1}
        assert (figures.activity.stored, figures.failed_since, figures.reparse) == (50, 0, [])
        assert figures.read_at >= since
    finally:
        receipts.close()
        overview.close()
