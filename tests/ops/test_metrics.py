"""Prometheus metrics: sums across forked processes, the names' contract, scrape-time gauges,
and ``cable-ingest metrics`` serving them over HTTP."""

from __future__ import annotations

import os
import subprocess
import sys
import time
import urllib.request
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import pytest
from prometheus_client.parser import text_string_to_metric_families

from tests.holders import consumer, sigkill, stuck_worker
from tests.services import redis_db_url
from worker import telemetry
from worker.intake.producer import Producer
from worker.ops import metrics
from worker.queue.app import create_app, prepare_broker
from worker.settings import Settings
from worker.storage import DeadLetterStore, upgrade

SAMPLE = Path(__file__).resolve().parents[1] / "fixtures" / "06ALMATY598.scraped.txt"

# The worker's shape: the main process prepares the folder and counts a little, then forks
# two children that count (each to its own file) and exit through the shutdown hook.
FORKING_WORKER = """
import multiprocessing, os, sys
from pathlib import Path
from worker import telemetry

telemetry.prepare_metrics_dir(Path(sys.argv[1]))
telemetry.received(1)

def child(n):
    telemetry.received(n)
    telemetry.parsed(n)
    telemetry.stored("storage", n)
    telemetry.dead_lettered("parse")
    telemetry.sink_outcomes("alerts", ["delivered"] * n + ["withheld"], notifies=True)
    telemetry.redelivered("cable_ingest.ingest")
    telemetry.observe("parse", 0.002)
    telemetry.observe("deliver:alerts", 0.3)
    telemetry.mark_process_dead(os.getpid())

processes = [multiprocessing.get_context("fork").Process(target=child, args=(n,)) for n in (3, 4)]
for process in processes:
    process.start()
for process in processes:
    process.join()
sys.exit(max(process.exitcode or 0 for process in processes))
"""


def _samples(text: bytes) -> dict[tuple[str, tuple[tuple[str, str], ...]], float]:
    """Every sample of a scrape, by name and sorted labels."""
    return {
        (sample.name, tuple(sorted(sample.labels.items()))): sample.value
        for family in text_string_to_metric_families(text.decode())
        for sample in family.samples
    }


def _texts(n: int) -> list[str]:
    text = SAMPLE.read_text(encoding="utf-8")
    return [text.replace("000598", f"{i + 2000:06d}", 1) for i in range(n)]


@pytest.fixture
def settings(tmp_path: Path) -> Settings:
    """Embedded broker and SQLite under a fresh folder, batches of 2."""
    return Settings(var_dir=tmp_path / "var", batch_size=2)


def test_counters_of_forked_processes_add_up(settings: Settings, tmp_path: Path) -> None:
    """Counters bumped by a main process and two forked children are summed from their files."""
    folder = tmp_path / "metrics"
    folder.mkdir()
    (folder / "counter_999999.db").write_bytes(b"stale")  # a previous run's: wiped at start
    environ = {k: v for k, v in os.environ.items() if k != telemetry.MULTIPROC_ENV}
    done = subprocess.run(
        [sys.executable, "-c", FORKING_WORKER, str(folder)],
        capture_output=True, text=True, timeout=60, check=False, env=environ,
    )  # fmt: skip
    assert done.returncode == 0, done.stderr
    assert len(list(folder.glob("counter_*.db"))) == 3  # one per process, the stale one gone
    samples = _samples(metrics.render_metrics(settings, metrics_dir=folder))
    assert samples["cable_ingest_cables_received_total", ()] == 1 + 3 + 4
    assert samples["cable_ingest_cables_parsed_total", ()] == 7
    assert (
        samples["cable_ingest_cables_stored_total", (("outcome", "inserted"), ("sink", "storage"))]
        == 7
    )
    assert samples["cable_ingest_dead_letters_total", (("stage", "parse"),)] == 2
    assert samples["cable_ingest_notifications_delivered_total", (("sink", "alerts"),)] == 7
    assert samples["cable_ingest_notifications_withheld_total", (("sink", "alerts"),)] == 2
    task = (("task", "cable_ingest.ingest"),)
    assert samples["cable_ingest_redeliveries_total", task] == 2
    parse = ("stage", "parse")
    assert samples["cable_ingest_stage_duration_seconds_count", (parse,)] == 2
    assert samples["cable_ingest_stage_duration_seconds_bucket", (("le", "0.001"), parse)] == 0
    assert samples["cable_ingest_stage_duration_seconds_bucket", (("le", "0.0025"), parse)] == 2
    assert samples["cable_ingest_stage_duration_seconds_sum", (("stage", "deliver:alerts"),)] == (
        pytest.approx(0.6)
    )


def test_names_follow_the_contract_without_multiprocess_mode(settings: Settings) -> None:
    """Without a metrics folder the functions count in this process, under the agreed names,
    types, labels and buckets (0.1 ms to 10 s)."""
    before = _samples(metrics.render_metrics(settings))
    telemetry.received(2)
    telemetry.parsed()
    telemetry.observe("validate", 0.00005)
    telemetry.stored("storage", 2)
    telemetry.dead_lettered("validate")
    telemetry.delivered("alerts")
    telemetry.withheld("alerts")
    telemetry.redelivered("cable_ingest.deliver")
    families = {
        family.name: family
        for family in text_string_to_metric_families(metrics.render_metrics(settings).decode())
    }
    expected = {
        "cable_ingest_cables_received": ("counter", set()),
        "cable_ingest_cables_parsed": ("counter", set()),
        "cable_ingest_cables_stored": ("counter", {"sink", "outcome"}),
        "cable_ingest_dead_letters": ("counter", {"stage"}),
        "cable_ingest_notifications_delivered": ("counter", {"sink"}),
        "cable_ingest_notifications_withheld": ("counter", {"sink"}),
        "cable_ingest_redeliveries": ("counter", {"task"}),
        "cable_ingest_stage_duration_seconds": ("histogram", {"stage", "le"}),
    }
    for name, (kind, labels) in expected.items():
        assert families[name].type == kind, name
        suffix = "_total" if kind == "counter" else "_bucket"
        sample = next(s for s in families[name].samples if s.name == name + suffix)
        assert set(sample.labels) == labels, name
    buckets = [s.labels["le"] for s in families["cable_ingest_stage_duration_seconds"].samples
               if s.name.endswith("_bucket") and s.labels["stage"] == "validate"]  # fmt: skip
    assert (buckets[0], buckets[-2], buckets[-1]) == ("0.0001", "10.0", "+Inf")
    after = _samples(metrics.render_metrics(settings))
    received = ("cable_ingest_cables_received_total", ())
    assert after[received] - before.get(received, 0) == 2


def test_queue_depth_and_dead_letter_gauges(
    settings: Settings, minimal_dead_letter: dict[str, Any]
) -> None:
    """Five cables in batches of two are three intake messages; a stored dead letter counts
    under its stage; no workers_online gauge on the embedded broker."""
    upgrade(settings.database_url)
    DeadLetterStore(settings.database_url).add(minimal_dead_letter)
    with Producer(settings) as producer:
        producer.enqueue_many(_texts(5), source="tests")
    samples = _samples(metrics.render_metrics(settings))
    assert samples["cable_ingest_queue_depth", (("queue", "intake"),)] == 3
    assert samples["cable_ingest_queue_depth", (("queue", "sink.storage"),)] == 0
    assert samples["cable_ingest_dead_letters_stored", (("stage", "parse"),)] == 1
    assert not any(name == "cable_ingest_workers_online" for name, _ in samples)


def test_queue_depth_and_workers_online_on_redis(tmp_path: Path) -> None:
    """On Redis the depth comes from the broker and the workers are the worker processes
    connected to it (none here)."""
    with redis_db_url() as url:
        settings = Settings(broker_url=url, var_dir=tmp_path / "var", batch_size=2)
        app = create_app(settings)
        with Producer(settings, app=app) as producer:
            producer.enqueue_many(_texts(3), source="tests")
        samples = _samples(metrics.render_metrics(settings, app))
    assert samples["cable_ingest_queue_depth", (("queue", "intake"),)] == 2
    assert samples["cable_ingest_workers_online", ()] == 0


STAGES = ("intake", "parse", "validate", "sink:storage")


def test_gauges_with_a_lost_holder_and_many_dead_letters(
    tmp_path: Path, minimal_dead_letter: dict[str, Any]
) -> None:
    """On Redis, with 3,000 dead letters (then a stage purged), a message held by a consumer
    killed with SIGKILL and a worker process connected: depth, unacked and lost per queue,
    one worker online (the consumer, no worker, never counted), and dead letters per stage
    equal to the table's own counts."""
    with redis_db_url() as url:
        settings = Settings(broker_url=url, var_dir=tmp_path / "var", batch_size=2)
        upgrade(settings.database_url)
        letters = DeadLetterStore(settings.database_url)
        documents = []
        for i in range(3_000):
            document = dict(minimal_dead_letter, id=f"dl-{i}", stage=STAGES[i % 4])
            documents.append(document | {"sha256": f"{i:064x}"})
        letters.add_many(documents)
        assert letters.purge(stage="validate") == 750
        letters.close()
        app = create_app(settings)
        with Producer(settings, app=app) as producer:
            producer.enqueue_many(_texts(3), source="tests")  # two messages
        taker, worker = consumer(url), stuck_worker(url)
        try:
            sigkill(taker)
            deadline = time.monotonic() + 10
            while True:
                samples = _samples(metrics.render_metrics(settings, app))
                lost = samples.get(("cable_ingest_queue_unacked_lost", (("queue", "intake"),)))
                if lost == 1 or time.monotonic() > deadline:
                    break
                time.sleep(0.05)
        finally:
            sigkill(worker)
    intake = (("queue", "intake"),)
    assert samples["cable_ingest_queue_depth", intake] == 1
    assert samples["cable_ingest_queue_unacked", intake] == 1
    assert samples["cable_ingest_queue_unacked_lost", intake] == 1
    assert samples["cable_ingest_queue_unacked_lost", (("queue", "sink.storage"),)] == 0
    assert samples["cable_ingest_workers_online", ()] == 1
    stored = {
        dict(labels)["stage"]: value
        for (name, labels), value in samples.items()
        if name == "cable_ingest_dead_letters_stored"
    }
    assert stored == {"intake": 750, "parse": 750, "sink:storage": 750}


@pytest.fixture
def server(settings: Settings) -> Iterator[str]:
    """``cable-ingest metrics --port 0`` as a child process; yields its base URL."""
    prepare_broker(settings)
    upgrade(settings.database_url)
    environ = {k: v for k, v in os.environ.items() if not k.startswith("CABLE_INGEST_")}
    environ["CABLE_INGEST_VAR_DIR"] = str(settings.var_dir)
    process = subprocess.Popen(
        [sys.executable, "-m", "worker", "metrics", "--port", "0"],
        stderr=subprocess.PIPE, stdout=subprocess.DEVNULL, text=True, env=environ,
    )  # fmt: skip
    try:
        assert process.stderr is not None
        line = ""
        while "serving http://" not in line:
            line = process.stderr.readline()
            assert line, f"the server exited with code {process.wait()}"
        yield line.split()[1].removesuffix("/metrics")
    finally:
        process.terminate()
        process.wait(10)
        if process.stderr is not None:
            process.stderr.close()


def _get(url: str) -> tuple[int, str, bytes]:
    with urllib.request.urlopen(url, timeout=10) as response:
        return response.status, response.headers["Content-Type"], response.read()


def test_metrics_command_serves_metrics_and_probes(server: str) -> None:
    """The command serves /metrics in the text format, /healthz "ok" and /readyz 200 with JSON;
    the port it chose (--port 0) is printed on stderr."""
    status, content_type, body = _get(server + "/metrics")
    assert (status, content_type) == (200, metrics.CONTENT_TYPE)
    assert _samples(body)["cable_ingest_queue_depth", (("queue", "intake"),)] == 0
    assert _get(server + "/healthz")[::2] == (200, b"ok\n")
    status, content_type, body = _get(server + "/readyz")
    assert (status, content_type) == (200, "application/json")
    assert b'"ready": true' in body
