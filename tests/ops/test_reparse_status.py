"""A reparse on the status screen: each unfinished run's progress, and the reparse queue's
settled items in the last minute; a finished run is no longer shown."""

from __future__ import annotations

import hashlib
from collections.abc import Iterator
from dataclasses import replace
from pathlib import Path

import pytest

from tests.services import postgres_schema_url
from worker.ops.status import collect_status, render
from worker.parse import parse_cable
from worker.settings import Settings
from worker.storage import CableStore, upgrade
from worker.storage.provenance import Arrival
from worker.storage.reparse import ReparseStore, Selection

SAMPLE = Path(__file__).resolve().parents[1] / "fixtures" / "06ALMATY598.scraped.txt"


@pytest.fixture(params=["sqlite", "postgresql"])
def settings(request: pytest.FixtureRequest, tmp_path: Path) -> Iterator[Settings]:
    """The embedded broker, and a migrated SQLite file or PostgreSQL schema."""
    values = Settings(var_dir=tmp_path / "var")
    if request.param == "sqlite":
        upgrade(values.database_url)
        yield values
        return
    with postgres_schema_url() as url:
        upgrade(url)
        yield replace(values, database_url=url)


def _store(settings: Settings) -> None:
    """Three cables with originals, one stored before originals were kept."""
    record = parse_cable(SAMPLE.read_text(encoding="utf-8"))
    records = [{**record, "reference_id": f"06ALMATY{n}"} for n in range(4)]
    texts = [f"original {n}\n" for n in range(3)]
    arrivals: list[Arrival | None] = [
        Arrival(f"m{n}", text, hashlib.sha256(text.encode()).hexdigest())
        for n, text in enumerate(texts)
    ]
    store = CableStore(settings.database_url)
    try:
        store.write_batch(records, arrivals=[*arrivals, None])
    finally:
        store.close()


def test_an_unfinished_run_is_shown_with_its_progress(settings: Settings) -> None:
    """Two of four settled (one unchanged, the one without original): the run's line, the
    reparse row's LAST 60S and the JSON say so; once finished, the run is gone."""
    _store(settings)
    ledger = ReparseStore(settings.database_url)
    try:
        run_id = ledger.start(Selection(everything=True)).progress.run_id
        ledger.mark(run_id, ["06ALMATY0"], "unchanged")
        status = collect_status(settings)
        [run] = status.reparse or []
        assert (run.run_id, run.total, run.done, run.done_since) == (run_id, 4, 2, 2)
        lines = render(status)
        [line] = [line for line in lines if line.startswith(f"reparse {run_id[:8]}")]
        assert line.startswith(f"reparse {run_id[:8]} (all): 2/4 done (50%): unchanged 1,")
        assert "no original 1; last settled" in line
        [row] = [line.split() for line in lines if line.split()[:2] == ["reparse", "0"]]
        assert row == ["reparse", "0", "0", "0", "-", "2", "-", "-"]
        [shown] = status.as_dict()["reparse"]
        assert (shown["run_id"], shown["pending"], shown["settled_last_window"]) == (run_id, 2, 2)

        ledger.mark(run_id, ["06ALMATY1", "06ALMATY2"], "revised")
        assert ledger.finish(run_id)
        status = collect_status(settings)
        assert status.reparse == []
        assert not any(line.startswith(f"reparse {run_id[:8]}") for line in render(status))
    finally:
        ledger.close()
