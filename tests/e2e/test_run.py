"""``cable-ingest run`` end to end: real worker processes, the embedded broker or Redis,
SQLite or PostgreSQL; every input gets exactly one outcome and a second run adds nothing."""

from __future__ import annotations

from collections.abc import Iterator
from pathlib import Path
from typing import Any

import pytest
from sqlalchemy import create_engine, text

from tests.e2e.conftest import Inputs, Runner
from tests.services import postgres_schema_url, redis_db_url


def _rows(database_url: str, table: str) -> int:
    engine = create_engine(database_url)
    try:
        with engine.connect() as conn:
            return int(conn.execute(text(f"SELECT count(*) FROM {table}")).scalar_one())
    finally:
        engine.dispose()


@pytest.fixture(params=["filesystem+sqlite", "redis+sqlite", "redis+postgresql"])
def services(request: pytest.FixtureRequest, tmp_path: Path) -> Iterator[dict[str, str]]:
    """Broker and database settings for one combination of the real services."""
    broker, database = request.param.split("+")
    settings = {"database_url": f"sqlite:///{tmp_path / 'var' / 'cable-ingest.db'}"}
    if database == "postgresql":
        with postgres_schema_url() as url:
            settings["database_url"] = url
            yield from _with_broker(broker, settings)
        return
    yield from _with_broker(broker, settings)


def _with_broker(broker: str, settings: dict[str, str]) -> Iterator[dict[str, str]]:
    if broker == "redis":
        with redis_db_url() as url:
            yield {**settings, "broker_url": url}
        return
    yield {**settings, "broker_url": "filesystem://localhost/"}


def _check_reconciles(summary: dict[str, Any], inputs: Inputs) -> None:
    assert summary["inputs"] == inputs.files
    assert summary["rejected"] == inputs.rejected
    assert summary["enqueued"] == inputs.enqueued
    assert summary["duplicates"] == inputs.files - inputs.enqueued - 3
    assert summary["missing"] == []
    settled = sum(summary["stored"].values()) + sum(summary["dead_lettered"].values())
    assert settled == summary["enqueued"]


def test_every_input_has_one_outcome_and_a_rerun_adds_nothing(
    run_cli: Runner, inputs: Inputs, services: dict[str, str]
) -> None:
    """Inputs = rejected + duplicates + stored + dead-lettered, on every broker and database;
    the text that is no cable is a parse dead letter; running again stores nothing new."""
    code, first, stderr = run_cli(inputs.paths, batch_size="50", **services)
    assert code == 0, stderr
    _check_reconciles(first, inputs)
    assert first["dead_lettered"].get("parse: ParseError", 0) >= 1
    assert "rejected (" not in stderr or "empty" in stderr
    database = services["database_url"]
    cables, letters = _rows(database, "cables"), _rows(database, "dead_letters")
    assert _rows(database, "receipts") == sum(first["stored"].values())
    assert letters == sum(first["dead_lettered"].values())

    code, second, stderr = run_cli(inputs.paths, batch_size="50", **services)
    assert code == 0, stderr
    _check_reconciles(second, inputs)
    assert second["stored"] == {"unchanged": sum(first["stored"].values())}
    assert second["dead_lettered"] == first["dead_lettered"]
    assert (_rows(database, "cables"), _rows(database, "dead_letters")) == (cables, letters)
