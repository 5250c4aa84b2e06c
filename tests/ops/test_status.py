"""``cable-ingest status``: queues, workers, throughput and dead letters, on both brokers."""

from __future__ import annotations

import os
import signal
import subprocess
import sys
import threading
import time
import uuid
from collections.abc import Iterator
from dataclasses import replace
from datetime import UTC, datetime
from pathlib import Path
from typing import Any

import orjson
import pytest
import redis

from tests.services import postgres_schema_url, redis_db_url
from worker.intake.producer import Producer
from worker.ops.inspect import BrokerUnavailableError, QueueInfo, inspect_queues
from worker.ops.status import collect_status, human_age, render
from worker.parse import parse_cable
from worker.queue.app import INTAKE_QUEUE, PUBLISHED_AT, create_app, sink_queue
from worker.settings import Settings
from worker.storage import CableStore, DeadLetterStore, Receipt, ReceiptStore, upgrade

SAMPLE = Path(__file__).resolve().parents[1] / "fixtures" / "06ALMATY598.scraped.txt"
CONFIG = '[sinks.alerts]\ntype = "file"\noptions = {{ directory = "{folder}" }}\n'
SEP = "\x06\x16"  # kombu's separator of a priority sub-queue's name


def _texts(n: int) -> list[str]:
    text = SAMPLE.read_text(encoding="utf-8")
    return [text.replace("000598", f"{i + 7000:06d}", 1) for i in range(n)]


def _enqueue(settings: Settings, n: int) -> None:
    with Producer(settings) as producer:
        producer.enqueue_many(_texts(n), source="tests")


def _queue(queues: list[QueueInfo], name: str) -> QueueInfo:
    return next(q for q in queues if q.name == name)


def _environ(var: Path, **env: str) -> dict[str, str]:
    environ = {k: v for k, v in os.environ.items() if not k.startswith("CABLE_INGEST_")}
    environ["CABLE_INGEST_VAR_DIR"] = str(var)
    environ.update({f"CABLE_INGEST_{k.upper()}": v for k, v in env.items()})
    return environ


def _cli(var: Path, *args: str, **env: str) -> subprocess.CompletedProcess[str]:
    return subprocess.run(
        [sys.executable, "-m", "worker", "status", *args],
        capture_output=True,
        text=True,
        timeout=60,
        check=False,
        env=_environ(var, **env),
    )


def _fill_database(settings: Settings) -> None:
    """Two cables stored (receipts ``inserted``), one withheld from ``alerts``, and dead letters:
    a parse failure now, a validate failure in 2024, an ``alerts`` failure now."""
    upgrade(settings.database_url)
    record = parse_cable(SAMPLE.read_text(encoding="utf-8"), source_file=SAMPLE.name)
    store = CableStore(settings.database_url)
    store.write_batch([record, {**record, "reference_id": "06ALMATY599"}], ["m1", "m2"])
    store.close()
    receipts = ReceiptStore(settings.database_url)
    receipts.add_many([Receipt("m1", "alerts", "06ALMATY598", "withheld")])
    receipts.close()
    now = datetime.now(UTC).isoformat()
    letter = {"error_class": "ParseError", "reason": "no header", "payload": {}}
    letters = DeadLetterStore(settings.database_url)
    letters.add({**letter, "stage": "parse", "message_id": "m3", "last_seen": now})
    letters.add({**letter, "stage": "validate", "message_id": "m4", "first_seen": "2024-05-01"})
    letters.add({**letter, "stage": "sink:alerts", "message_id": "m1", "last_seen": now})
    letters.close()


@pytest.fixture
def embedded(tmp_path: Path) -> Settings:
    """Embedded broker and SQLite under tmp_path, with a storage and a file sink."""
    config = tmp_path / "sinks.toml"
    config.write_text(CONFIG.format(folder=tmp_path / "drop"), encoding="utf-8")
    return Settings(var_dir=tmp_path / "var", batch_size=2, config_file=config)


def test_embedded_queues_without_worker(embedded: Settings) -> None:
    """Five cables in batches of two wait as three intake messages, nothing on the sinks."""
    _enqueue(embedded, 5)
    status = collect_status(embedded)
    intake = _queue(status.queues, INTAKE_QUEUE)
    assert (intake.depth, intake.unacked) == (3, 0)
    assert intake.oldest_age_s is not None
    assert 0 <= intake.oldest_age_s < 30
    assert _queue(status.queues, sink_queue("storage")) == QueueInfo("sink.storage", 0, 0, None, 0)
    assert status.workers is None
    assert status.dead_letters is None
    assert status.intake_settled_last_window is None
    screen = "\n".join(render(status, 120))
    assert "workers   n/a" in screen
    assert any(line.split()[:3] == ["sink.storage", "0", "0"] for line in render(status))
    assert "no tables yet" in screen


def test_embedded_missing_queue_is_empty(embedded: Settings) -> None:
    """A queue nobody ever used (and a queue folder that does not exist) reads as 0, no age."""
    found = inspect_queues(create_app(embedded), embedded, ["nowhere"])
    assert found == [QueueInfo("nowhere", 0, 0, None)]


def test_embedded_age_falls_back_to_mtime(embedded: Settings) -> None:
    """A message file without ``published_at`` is as old as its file; hidden files (being
    written) are not messages."""
    folder = embedded.var_dir / "broker" / "queue"
    folder.mkdir(parents=True)
    message = folder / f"1_{uuid.uuid4()}.{INTAKE_QUEUE}.msg"
    message.write_bytes(orjson.dumps({"body": "", "headers": {}, "properties": {}}))
    os.utime(message, (time.time() - 300, time.time() - 300))
    (folder / f".tmp-2_{uuid.uuid4()}.{INTAKE_QUEUE}.msg").write_bytes(b"{")
    (intake,) = inspect_queues(create_app(embedded), embedded, [INTAKE_QUEUE])
    assert intake.depth == 1
    assert intake.oldest_age_s is not None
    assert 300 <= intake.oldest_age_s < 330


@pytest.fixture(params=["sqlite", "postgresql"])
def with_database(request: pytest.FixtureRequest, embedded: Settings) -> Iterator[Settings]:
    """The embedded settings on SQLite under tmp_path, or on a fresh PostgreSQL schema."""
    if request.param == "sqlite":
        yield embedded
        return
    with postgres_schema_url() as url:
        yield replace(embedded, database_url=url)


def test_database_figures(with_database: Settings) -> None:
    """Throughput, last successes and dead letters come from receipts and dead letters."""
    _fill_database(with_database)
    status = collect_status(with_database)
    assert status.dead_letters == {"parse": 1, "validate": 1, "sink:alerts": 1}
    assert status.intake_settled_last_window == 3  # two stored, one parse failure
    assert status.intake_dead_letters == 2
    storage, alerts = status.sinks
    assert (storage.name, storage.receipts_last_window, storage.dead_letters) == ("storage", 2, 0)
    assert storage.last_success is not None
    assert 0 <= (status.at - storage.last_success).total_seconds() < 30
    assert (alerts.name, alerts.receipts_last_window, alerts.dead_letters) == ("alerts", 1, 1)
    assert alerts.last_success is None  # withheld is no delivery
    rows = {line.split()[0]: line.split() for line in render(status) if line.startswith(("i", "s"))}
    assert rows["intake"][1:] == ["0", "0", "0", "-", "3", "-", "2"]
    assert rows["sink.alerts"][1:] == ["0", "0", "0", "-", "1", "never", "1"]
    assert rows["sink.storage"][-2:] == ["ago", "0"]
    assert "parse 1, validate 1, sink:alerts 1  (total 3)" in "\n".join(render(status))


def test_cli_json_has_the_numbers(embedded: Settings) -> None:
    """``status --json`` prints one JSON document with the same queue and database figures."""
    _enqueue(embedded, 5)
    _fill_database(embedded)
    done = _cli(embedded.var_dir, "--json", batch_size="2", config=str(embedded.config_file))
    assert done.returncode == 0, done.stderr
    document: dict[str, Any] = orjson.loads(done.stdout)
    assert document["queues"][0] == {**document["queues"][0], "name": "intake", "depth": 3}
    assert 0 <= document["queues"][0]["oldest_age_s"] < 60
    assert document["queues"][1] == {
        "name": "sink.storage",
        "depth": 0,
        "unacked": 0,
        "oldest_age_s": None,
        "lost": 0,
    }
    assert document["workers"] is None
    assert document["intake"] == {"settled_last_window": 3, "dead_letters": 2}
    assert document["dead_letters"] == {"parse": 1, "validate": 1, "sink:alerts": 1}
    storage, alerts = document["sinks"]
    assert storage["last_success"].endswith("Z")
    assert alerts["last_success"] is None
    assert document["at"].endswith("Z")


def test_cli_json_on_an_empty_var_dir(tmp_path: Path) -> None:
    """On a var folder where nothing happened yet the command still answers, exit 0."""
    done = _cli(tmp_path / "var", "--json")
    assert done.returncode == 0, done.stderr
    assert orjson.loads(done.stdout)["queues"][0]["depth"] == 0


def test_cli_watch_without_tty_prints_screens_apart(tmp_path: Path) -> None:
    """``--watch`` on a pipe prints plain screens a blank line apart; Ctrl-C ends it with 0."""
    process = subprocess.Popen(
        [sys.executable, "-m", "worker", "status", "--watch", "0.2"],
        stdout=subprocess.PIPE,
        stderr=subprocess.PIPE,
        text=True,
        env=_environ(tmp_path / "var"),
    )
    assert process.stdout is not None
    watchdog = threading.Timer(60, process.kill)  # a hung command fails the test, not CI
    watchdog.start()
    seen: list[str] = []
    for line in iter(process.stdout.readline, ""):
        seen.append(line)
        if sum("cable-ingest status at" in s for s in seen) == 3:
            break
    process.send_signal(signal.SIGINT)
    _out, err = process.communicate(timeout=30)
    watchdog.cancel()
    assert process.returncode == 0, err
    text = "".join(seen)
    assert "\x1b[" not in text
    assert "\n\ncable-ingest status at" in text


def test_unreachable_broker_is_one_line(tmp_path: Path) -> None:
    """A Redis broker that refuses connections: BrokerUnavailableError, and (not waited for:
    CONNECT_WAIT_S=0) exit 69 in one line."""
    closed = "redis://127.0.0.1:1/0"
    with pytest.raises(BrokerUnavailableError, match=r"127\.0\.0\.1:1/0"):
        collect_status(Settings(broker_url=closed, var_dir=tmp_path / "var"))
    done = _cli(tmp_path / "var", broker_url=closed, connect_wait_s="0")
    assert done.returncode == 69
    assert done.stderr.startswith("cable-ingest: broker redis://127.0.0.1:1/0 does not answer")
    assert len(done.stderr.strip().splitlines()) == 1


def test_human_age() -> None:
    """Ages read as seconds, minutes and seconds, hours and minutes, days and hours."""
    assert [human_age(s) for s in (0, 59.9, 252, 3725, 90061)] == [
        "0s",
        "59s",
        "4m 12s",
        "1h 2m",
        "1d 1h",
    ]


def _unacked_entry(client: redis.Redis, exchange: str, routing_key: str) -> None:
    """What kombu's QoS.append writes for a delivered message: the index and the hash entry
    ``[message, exchange, routing_key]`` under the message's delivery tag."""
    message = orjson.loads(client.lindex(INTAKE_QUEUE, -1) or b"{}")
    tag = str(uuid.uuid4())
    message["properties"]["delivery_tag"] = tag
    message["properties"]["delivery_info"] = {"exchange": exchange, "routing_key": routing_key}
    client.zadd("unacked_index", {tag: time.time()})
    client.hset("unacked", tag, orjson.dumps([message, exchange, routing_key]))


def test_redis_queues(tmp_path: Path) -> None:
    """On Redis: depth over the priority sub-queues, the oldest of them, and unacked entries
    counted for the queue kombu would restore them to."""
    with redis_db_url() as url:
        settings = Settings(broker_url=url, var_dir=tmp_path / "var", batch_size=2)
        _enqueue(settings, 5)
        client = redis.Redis.from_url(url)
        status = collect_status(settings)
        intake = _queue(status.queues, INTAKE_QUEUE)
        assert (intake.depth, intake.unacked) == (3, 0)
        assert intake.oldest_age_s is not None
        assert 0 <= intake.oldest_age_s < 30
        assert _queue(status.queues, "sink.storage") == QueueInfo("sink.storage", 0, 0, None, 0)
        assert status.workers == []

        old: dict[str, Any] = orjson.loads(client.lindex(INTAKE_QUEUE, 0) or b"{}")
        old["headers"][PUBLISHED_AT] = time.time() - 600
        old["properties"]["priority"] = 3
        client.lpush(f"{INTAKE_QUEUE}{SEP}3", orjson.dumps(old))
        _unacked_entry(client, "", INTAKE_QUEUE)
        _unacked_entry(client, "sink.storage", "sink.storage")
        bare = {"body": "", "headers": {}, "properties": {}}
        client.lpush(f"sink.storage{SEP}6", orjson.dumps(bare))
        app = create_app(settings)
        intake, storage = inspect_queues(app, settings, [INTAKE_QUEUE, "sink.storage"])
        assert (intake.depth, intake.unacked) == (4, 1)
        assert intake.oldest_age_s is not None
        assert 600 <= intake.oldest_age_s < 630
        assert (storage.depth, storage.unacked, storage.oldest_age_s) == (1, 1, None)

        with app.connection_for_read() as connection:  # kombu's own unacked entry
            channel: Any = connection.default_channel  # the stubs lack basic_get
            assert channel.basic_get(INTAKE_QUEUE, no_ack=False) is not None
            intake = inspect_queues(app, settings, [INTAKE_QUEUE])[0]
            assert (intake.depth, intake.unacked) == (3, 2)
        client.close()
