"""``cable-ingest reparse`` end to end: real worker processes on the embedded broker (and on
Redis with PostgreSQL), cables stored with their originals, records changed in the database
the way a newer parser would see them, a CLI killed mid-run and resumed."""

from __future__ import annotations

import os
import signal
import subprocess
import sys
import time
from collections import Counter
from collections.abc import Iterator, Mapping
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import orjson
import psutil
import pytest
from sqlalchemy import create_engine, func, select, update

from tests.e2e.conftest import SAMPLE
from tests.services import postgres_schema_url, redis_db_url
from worker.core import pipeline
from worker.intake.envelope import make_envelope
from worker.intake.generate import generate, load_templates
from worker.model import PARSER_VERSION
from worker.parse import parse_cable
from worker.settings import Settings
from worker.storage import CableStore, DeadLetterStore, content_hash, upgrade
from worker.storage.provenance import Arrival
from worker.storage.schema import cable_revisions, cables, reparse_items

RUN_TIMEOUT_S = 300
NOT_A_CABLE = "Dear colleague, the meeting moved to Tuesday.\n"


@dataclass(frozen=True)
class World:
    """Settings of one test's broker and database, and the environment of its commands."""

    settings: Settings
    env: dict[str, str]
    folder: Path


def _world(tmp_path: Path, **values: str) -> World:
    env = {k: v for k, v in os.environ.items() if not k.startswith("CABLE_INGEST_")}
    env |= {"CABLE_INGEST_VAR_DIR": str(tmp_path / "var"), "CABLE_INGEST_LOG_FORMAT": "json"}
    env |= {f"CABLE_INGEST_{name.upper()}": value for name, value in values.items()}
    settings = Settings.from_env(env)
    upgrade(settings.database_url)
    return World(settings, env, tmp_path)


@pytest.fixture
def world(tmp_path: Path) -> World:
    """The embedded broker and SQLite under the test's folder."""
    return _world(tmp_path)


@pytest.fixture(params=["filesystem+sqlite", "redis+postgresql"])
def any_world(request: pytest.FixtureRequest, tmp_path: Path) -> Iterator[World]:
    """The embedded broker with SQLite, or Redis with PostgreSQL."""
    if request.param == "filesystem+sqlite":
        yield _world(tmp_path)
        return
    with redis_db_url() as broker, postgres_schema_url() as database:
        yield _world(tmp_path, broker_url=broker, database_url=database)


def _store(world: World, count: int, *, with_originals: bool = True) -> list[str]:
    """Store ``count`` distinct cables (the sample renumbered) as the ingest task would:
    records and, unless told otherwise, their originals and arrivals."""
    templates, _ = load_templates([SAMPLE])
    start = _count(world)
    texts = [text for _, text in generate(templates, start + count)][start:]
    envelopes = [make_envelope(text, source="tests/reparse") for text in texts]
    records = [parse_cable(text) for text in texts]
    arrivals = [Arrival.from_envelope(e) for e in envelopes] if with_originals else None
    store = CableStore(world.settings.database_url)
    try:
        store.write_batch(records, [str(e["id"]) for e in envelopes], arrivals=arrivals)
    finally:
        store.close()
    return [str(r["reference_id"]) for r in records]


def _count(world: World) -> int:
    store = CableStore(world.settings.database_url)
    try:
        return store.count()
    finally:
        store.close()


def _store_not_a_cable(world: World, reference_id: str, record: Mapping[str, Any]) -> None:
    """A stored record whose original no longer parses (as if the parser got stricter)."""
    envelope = make_envelope(NOT_A_CABLE, source="tests/reparse")
    store = CableStore(world.settings.database_url)
    try:
        store.write_batch(
            [{**record, "reference_id": reference_id}], arrivals=[Arrival.from_envelope(envelope)]
        )
    finally:
        store.close()


def _change(world: World, reference_ids: list[str], **values: Any) -> None:
    """Rewrite stored records: with ``subject``, the content a former parser derived (its
    content hash with it); with ``parser_version``, the parser that derived it."""
    engine = create_engine(
        world.settings.database_url, json_serializer=lambda v: orjson.dumps(v).decode()
    )
    try:
        with engine.begin() as conn:
            for reference_id in reference_ids:
                record = dict(
                    conn.execute(
                        select(cables.c.record).where(cables.c.reference_id == reference_id)
                    ).scalar_one()
                )
                record.update(values)
                changes: dict[str, Any] = {"record": record, "content_hash": content_hash(record)}
                changes |= {k: v for k, v in values.items() if k in ("subject", "parser_version")}
                conn.execute(
                    update(cables).where(cables.c.reference_id == reference_id).values(**changes)
                )
    finally:
        engine.dispose()


def _reparse(world: World, *args: str) -> tuple[int, dict[str, Any], str]:
    """``cable-ingest reparse --json ARGS`` in a child process: (exit code, summary, stderr)."""
    command = [sys.executable, "-m", "worker", "reparse", "--json", "--stall-timeout", "120"]
    done = subprocess.run(
        [*command, *args], env=world.env, capture_output=True, timeout=RUN_TIMEOUT_S,
        check=False, cwd=world.folder,
    )  # fmt: skip
    stderr = done.stderr.decode(errors="replace")
    return done.returncode, orjson.loads(done.stdout) if done.stdout.strip() else {}, stderr


def _scalar(world: World, query: Any) -> Any:
    engine = create_engine(world.settings.database_url)
    try:
        with engine.connect() as conn:
            return conn.execute(query).scalar_one()
    finally:
        engine.dispose()


def _revisions(world: World) -> int:
    return int(_scalar(world, select(func.count()).select_from(cable_revisions)))


def test_stored_cables_reparse_unchanged(any_world: World) -> None:
    """Every cable stored by this parser re-derives to the same content: unchanged, no
    revision; the second run of the same selection is a new run, not a resumed one."""
    refs = _store(any_world, 25)
    workers = ["--workers", "2"]  # Redis: nobody else consumes; embedded: the default
    code, summary, stderr = _reparse(any_world, "--all", *workers)
    assert code == 0, stderr
    assert (summary["total"], summary["unchanged"], summary["revised"]) == (len(refs), len(refs), 0)
    assert (summary["failed"], summary["no_original"], summary["pending"]) == (0, [], 0)
    assert summary["resumed"] is False
    assert _revisions(any_world) == 0
    code, again, stderr = _reparse(any_world, "--all", *workers)
    assert code == 0, stderr
    assert again["resumed"] is False
    assert again["run_id"] != summary["run_id"]
    assert again["unchanged"] == len(refs)


def test_what_a_newer_parser_derives_differently_is_revised_and_older_versions_refreshed(
    world: World,
) -> None:
    """Records changed in the database (what an older parser derived) come back revised, once;
    --older-than takes only the records of an older parser, which stay unchanged but now carry
    the current parser's version."""
    refs = _store(world, 12)
    changed, aged = refs[:4], refs[4:7]
    _change(world, changed, subject="WHAT THE OLD PARSER READ")
    _change(world, aged, parser_version="0.9.0")

    code, older, stderr = _reparse(world, "--older-than", PARSER_VERSION)
    assert code == 0, stderr
    assert (older["total"], older["unchanged"], older["revised"]) == (3, 3, 0)
    versions = select(cables.c.parser_version).where(cables.c.reference_id == aged[0])
    assert _scalar(world, versions) == PARSER_VERSION

    code, summary, stderr = _reparse(world, "--all")
    assert code == 0, stderr
    assert (summary["unchanged"], summary["revised"]) == (len(refs) - 4, 4)
    assert _revisions(world) == 4
    current = select(func.max(cables.c.revision))
    assert _scalar(world, current) == 2
    subject = select(cables.c.subject).where(cables.c.reference_id == changed[0])
    assert _scalar(world, subject) != "WHAT THE OLD PARSER READ"


def test_records_without_an_original_are_counted_and_listed(world: World) -> None:
    """Cables stored before originals were kept are reported by reference id, never sent to
    the workers, and make the exit code 1; a named cable that is not stored too."""
    refs = _store(world, 3)
    bare = _store(world, 2, with_originals=False)
    code, summary, stderr = _reparse(world, "--all")
    assert code == 1, stderr
    assert summary["no_original"] == sorted(bare)
    assert (summary["unchanged"], summary["enqueued"], summary["pending"]) == (3, 3, 0)

    done = subprocess.run(
        [sys.executable, "-m", "worker", "reparse", refs[0], bare[0], "06NOWHERE1"],
        env=world.env, capture_output=True, timeout=RUN_TIMEOUT_S, check=False, cwd=world.folder,
    )  # fmt: skip
    out = done.stdout.decode()
    assert done.returncode == 1
    assert "no original:       1 (stored before originals were kept)" in out
    assert f"  {bare[0]}" in out
    assert "not stored:        1" in out
    assert "  06NOWHERE1" in out


def test_an_original_that_no_longer_parses_is_a_parse_dead_letter(world: World) -> None:
    """The failure is dead-lettered at the parse stage under the cable's reference id, with
    the original's envelope as the payload (replayable through intake), and marked failed."""
    [ref] = _store(world, 1)
    record = parse_cable(SAMPLE.read_text(encoding="utf-8"))
    _store_not_a_cable(world, "06ALMATY777", record)
    code, summary, stderr = _reparse(world, ref, "06ALMATY777")
    assert code == 1, stderr
    assert (summary["unchanged"], summary["failed"], summary["pending"]) == (1, 1, 0)
    letters = DeadLetterStore(world.settings.database_url)
    try:
        [letter] = letters.list(stage="parse")
    finally:
        letters.close()
    assert letter["reference_id"] == "06ALMATY777"
    assert letter["error_class"] == "ParseError"
    assert letter["payload"]["text"] == NOT_A_CABLE
    assert letter["payload"]["source"] == "reparse"
    assert pipeline.check(letter["payload"]) is None


def test_a_killed_reparse_resumes_and_settles_every_cable_once(world: World) -> None:
    """SIGKILL of the command mid-run (its workers stop with it); `status` shows the run
    unfinished; the same command again says it resumes, sends only what was not done, and every
    cable ends revised exactly once: one revision each, one `reparsed` event each over both
    runs' worker logs."""
    refs = _store(world, 240)
    _change(world, refs, subject="WHAT THE OLD PARSER READ")
    env = {**world.env, "CABLE_INGEST_BATCH_SIZE": "4"}
    command = [sys.executable, "-m", "worker", "reparse", "--all", "--json"]
    with (world.folder / "first.out").open("wb") as out:
        first = subprocess.Popen(command, env=env, stdout=out, stderr=subprocess.STDOUT)
    done = select(func.count()).where(reparse_items.c.outcome.is_not(None))
    deadline = time.monotonic() + RUN_TIMEOUT_S
    while _scalar(world, done) < 20 and time.monotonic() < deadline and first.poll() is None:
        time.sleep(0.1)
    workers = psutil.Process(first.pid).children(recursive=True)
    first.send_signal(signal.SIGKILL)
    first.wait()
    _, alive = psutil.wait_procs(workers, timeout=90)
    assert alive == []  # told to stop when the command died
    settled = _scalar(world, done)
    assert 0 < settled < len(refs)
    status = subprocess.run(
        [sys.executable, "-m", "worker", "status", "--json"], env=env, capture_output=True,
        timeout=RUN_TIMEOUT_S, check=True, cwd=world.folder,
    )  # fmt: skip
    [shown] = orjson.loads(status.stdout)["reparse"]  # unfinished: listed until resumed
    assert (shown["selection"], shown["total"], shown["pending"]) == (
        "all",
        len(refs),
        len(refs) - settled,
    )

    run = subprocess.run(
        command, env=env, capture_output=True, timeout=RUN_TIMEOUT_S, check=False,
        cwd=world.folder,
    )  # fmt: skip
    stderr = run.stderr.decode(errors="replace")
    assert run.returncode == 0, stderr
    assert "resuming reparse run" in stderr
    summary = orjson.loads(run.stdout)
    assert summary["resumed"] is True
    assert summary["done_before"] == settled
    assert summary["enqueued"] == len(refs) - settled
    assert (summary["revised"], summary["pending"]) == (len(refs), 0)
    assert _revisions(world) == len(refs)
    assert _scalar(world, select(func.max(cables.c.revision))) == 2
    events: Counter[str] = Counter()
    for log in (world.settings.var_dir / "logs").glob("reparse-*.log"):
        for line in log.read_bytes().splitlines():
            if line.startswith(b"{") and b'"reparsed"' in line:
                events[orjson.loads(line)["reference_id"]] += 1
    assert events == dict.fromkeys(refs, 1)


def test_without_workers_on_redis_the_run_waits_and_stays_resumable(tmp_path: Path) -> None:
    """On Redis the command relies on running workers: with none it says so, stops waiting
    after the stall timeout with every item pending (exit 1), and the next call resumes."""
    with redis_db_url() as broker:
        redis_world = _world(tmp_path, broker_url=broker)
        _store(redis_world, 3)
        command = [sys.executable, "-m", "worker", "reparse", "--all", "--json"]
        command += ["--stall-timeout", "1"]
        first = subprocess.run(command, env=redis_world.env, capture_output=True, check=False,
                               timeout=RUN_TIMEOUT_S)  # fmt: skip
        assert first.returncode == 1
        assert "no worker answered" in first.stderr.decode()
        assert orjson.loads(first.stdout)["pending"] == 3
        code, summary, stderr = _reparse(redis_world, "--all", "--workers", "1")
        assert code == 0, stderr
        assert (summary["resumed"], summary["unchanged"]) == (True, 3)
