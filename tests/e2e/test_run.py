"""``cable-ingest run`` end to end: real worker processes, the embedded broker or Redis,
SQLite or PostgreSQL; every input gets exactly one outcome and a second run adds nothing."""

from __future__ import annotations

from collections.abc import Iterator
from pathlib import Path
from typing import Any

import orjson
import pytest
from prometheus_client import CollectorRegistry, generate_latest
from prometheus_client.multiprocess import MultiProcessCollector
from prometheus_client.parser import text_string_to_metric_families
from sqlalchemy import create_engine, text

from tests.e2e.conftest import SAMPLE, Inputs, Runner
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


def _counters(metrics_dir: Path) -> dict[str, float]:
    """The worker processes' counters (summed over their labels), as Prometheus would scrape."""
    registry = CollectorRegistry()
    MultiProcessCollector(registry, path=str(metrics_dir))  # type: ignore[no-untyped-call]
    totals: dict[str, float] = {}
    for family in text_string_to_metric_families(generate_latest(registry).decode()):
        for sample in family.samples:
            if sample.name.endswith("_total"):
                totals[sample.name] = totals.get(sample.name, 0) + sample.value
    return totals


def test_every_input_has_one_outcome_and_a_rerun_adds_nothing(
    run_cli: Runner, inputs: Inputs, services: dict[str, str], tmp_path: Path
) -> None:
    """Inputs = rejected + duplicates + stored + dead-lettered, on every broker and database;
    the text that is no cable is a parse dead letter; the workers' metrics agree with the
    summary the moment ``run`` returns; running again stores nothing new. Rejected and
    dead-lettered inputs make the exit code 65."""
    code, first, stderr = run_cli(inputs.paths, batch_size="50", **services)
    assert code == 65, stderr
    _check_reconciles(first, inputs)
    counted = _counters(tmp_path / "var" / "metrics")
    assert counted["cable_ingest_cables_received_total"] == first["enqueued"]
    assert counted["cable_ingest_cables_stored_total"] == sum(first["stored"].values())
    assert counted["cable_ingest_dead_letters_total"] == sum(first["dead_lettered"].values())
    assert first["dead_lettered"].get("parse: ParseError", 0) >= 1
    assert "rejected (" not in stderr or "empty" in stderr
    database = services["database_url"]
    cables, letters = _rows(database, "cables"), _rows(database, "dead_letters")
    assert _rows(database, "receipts") == sum(first["stored"].values())
    assert letters == sum(first["dead_lettered"].values())

    code, second, stderr = run_cli(inputs.paths, batch_size="50", **services)
    assert code == 65, stderr
    _check_reconciles(second, inputs)
    assert second["stored"] == {"unchanged": sum(first["stored"].values())}
    assert second["dead_lettered"] == first["dead_lettered"]
    assert (_rows(database, "cables"), _rows(database, "dead_letters")) == (cables, letters)


def test_chain_of_custody_is_in_the_worker_log(
    run_cli: Runner, inputs: Inputs, tmp_path: Path
) -> None:
    """The JSON log tells each cable's story in order (received, parsed, validated, delivered:
    storage is written by the ingest task itself; or received, dead_lettered with the stage)
    and never holds a cable's body."""
    code, summary, stderr = run_cli(inputs.paths)
    assert code == 65, stderr
    lines = (tmp_path / summary["worker_log"]).read_text(encoding="utf-8").splitlines()
    events = [orjson.loads(line) for line in lines if line.startswith("{")]
    by_message: dict[str, list[dict[str, Any]]] = {}
    for event in events:
        if "message_id" in event:
            by_message.setdefault(event["message_id"], []).append(event)

    stored = [m for m, story in by_message.items() if story[-1]["event"] == "delivered"]
    assert len(stored) == sum(summary["stored"].values())
    story = by_message[stored[0]]
    assert [e["event"] for e in story] == ["received", "parsed", "validated", "delivered"]
    assert {e["sha256"] for e in story if "sha256" in e} != set()
    assert story[-1]["sink"] == "storage"
    assert story[-1]["outcome"] == "inserted"
    assert story[-1]["inline"] is True
    assert all(e["reference_id"] == story[-1]["reference_id"] for e in story[1:])
    assert all(isinstance(e.get("duration_ms"), float) for e in story[1:3])

    [rejected] = [
        s for s in by_message.values() if s[0].get("source", "").endswith("not-a-cable.txt")
    ]
    assert [e["event"] for e in rejected] == ["received", "dead_lettered"]
    assert rejected[-1]["stage"] == "parse"
    assert "not a cable" in rejected[-1]["reason"]

    body = SAMPLE.read_text(encoding="utf-8").splitlines()
    sentence = max(body, key=len)  # the longest line of the sample's body
    log_text = "\n".join(lines)
    assert sentence not in log_text
    assert "the meeting moved to Tuesday" not in log_text
