"""The chaos scenarios: each runs real workers against its own services, injects its faults,
waits for every cable to have an outcome, and reconciles exactly."""

from __future__ import annotations

import contextlib
import os
import random
import threading
import time
from collections.abc import Callable, Iterator, Sequence
from dataclasses import dataclass
from pathlib import Path

import orjson

from bench.corpus import corpus_files
from chaos.harness import (
    Outcome,
    PostgresCluster,
    Receiver,
    RedisServer,
    Workers,
    environment,
    reconcile,
    scratch,
    wait_for_outcomes,
)
from chaos.poison import MARKER
from chaos.reparse import Plan, killed_during_reparse
from worker.intake.enqueue import enqueue_paths
from worker.intake.generate import Template, generate, load_templates
from worker.intake.producer import Producer
from worker.ops.health import check_health
from worker.settings import Settings
from worker.storage import upgrade

_templates: list[Template] = []


def cables(count: int) -> Iterator[str]:
    """``count`` distinct real-looking cables (the dev corpus, renumbered)."""
    if not _templates:
        _templates.extend(load_templates(corpus_files())[0])
    return (text for _, text in generate(_templates, count))


@dataclass
class Row:
    """One line of the table."""

    scenario: str
    outcome: Outcome
    recover_s: float


def _enqueue(settings: Settings, texts: Iterator[str], sent: list[str] | None = None) -> list[str]:
    """Enqueue ``texts``; their message ids, appended to ``sent`` as they go."""
    sent = [] if sent is None else sent
    with Producer(settings) as producer:
        for text in texts:
            sent.append(producer.enqueue(text, source="chaos"))
    return sent


@dataclass
class Stage:
    """One scenario's world: its folder, its own Redis, settings, and a running worker."""

    folder: Path
    server: RedisServer | None  # None: the embedded broker
    env: dict[str, str]
    settings: Settings
    workers: Workers


@contextlib.contextmanager
def _stage(
    name: str,
    *,
    plugins: Sequence[str] = (),
    config: str = "",
    embedded: bool = False,
    **settings: str,
) -> Iterator[Stage]:
    """A scratch folder, a redis-server of its own (or the embedded broker in the folder),
    migrated storage and a running worker (visibility timeout 10 s unless given; ``config``:
    a sinks file's text)."""
    with scratch(name) as folder:
        server = None if embedded else RedisServer(folder)
        if server is not None:
            server.start()
            settings["broker_url"] = server.url
        try:
            if config:
                (folder / "sinks.toml").write_text(config, encoding="utf-8")
                settings["config"] = str(folder / "sinks.toml")
            settings.setdefault("visibility_timeout", "10")
            env = environment(folder, **settings)
            values = Settings.from_env(env)
            upgrade(values.database_url)
            workers = Workers(env, folder / "worker.log", plugins=plugins)
            workers.start()
            try:
                yield Stage(folder, server, env, values, workers)
            finally:
                workers.stop()
        finally:
            if server is not None:
                server.stop()


def _settle(stage: Stage, sent: list[str], since: float, notify: str | None = None) -> float:
    """Wait for every outcome; seconds from ``since`` (monotonic) until then."""
    done = wait_for_outcomes(stage.settings.database_url, sent, notify=notify, alive=stage.workers)
    return done - since


def kill_workers(embedded: bool = False) -> Row:
    """kill -9 of a pool process, three times, then of the whole worker; twice over, while
    6,000 cables go through. On Redis the messages of a killed worker come back after the
    visibility timeout (10 s here); on the embedded broker as soon as a consumer finds that
    the one holding them is gone (its lock let go)."""
    with _stage("kill", embedded=embedded) as stage:
        sent = _enqueue(stage.settings, cables(6_000))
        for _ in range(2):
            for _ in range(3):
                time.sleep(1.5)
                stage.workers.kill_child()
            time.sleep(1.5)
            stage.workers.kill_all()
            time.sleep(1.0)
            stage.workers.start()
        recovered = _settle(stage, sent, time.monotonic())
        outcome = reconcile(stage.settings.database_url, sent)
        broker = "embedded" if embedded else "redis"
        return Row(f"kill -9 child x6, whole worker x2 ({broker})", outcome, recovered)


def restart_redis() -> Row:
    """Redis shut down and started again mid-run while the producer is still sending; the
    workers reconnect and resume; readiness is down during the outage and up after it."""
    with _stage("redis") as stage:
        sent: list[str] = []
        producing = threading.Thread(
            target=lambda: _enqueue(stage.settings, _paced(cables(4_000), 800), sent)
        )
        producing.start()
        time.sleep(2.0)
        assert stage.server is not None
        stage.server.stop()
        time.sleep(1.0)
        during = check_health(stage.settings)
        time.sleep(2.0)
        stage.server.start()
        calm = time.monotonic()
        producing.join()
        recovered = _settle(stage, sent, calm)
        outcome = reconcile(stage.settings.database_url, sent)
        after = check_health(stage.settings)
        log = (stage.folder / "worker.log").read_text(encoding="utf-8", errors="replace")
        outcome.notes.append(
            f"messages put back on their queue after Redis left mid-take:"
            f" {log.count('message_put_back')}"
        )
        if during.ready:
            outcome.failures.append("readiness said ready while Redis was down")
        else:
            outcome.notes.append(f"not ready during the outage: {during.reasons[0][:100]}")
        if not after.ready:
            outcome.failures.append("not ready after recovery: " + "; ".join(after.reasons))
        return Row("Redis restarted mid-run", outcome, recovered)


def stop_postgres() -> Row:
    """PostgreSQL (storage and dead letters) stopped for 30 s mid-run: deliveries retry with
    backoff, then drain."""
    with scratch("postgres-cluster") as cluster:
        database = PostgresCluster(cluster)
        database.start()
        try:
            with _stage("postgres", database_url=database.url) as stage:
                sent = _enqueue(stage.settings, cables(3_000))
                time.sleep(1.5)
                database.stop()
                time.sleep(30)
                database.start()
                recovered = _settle(stage, sent, time.monotonic())
                outcome = reconcile(stage.settings.database_url, sent)
                return Row("PostgreSQL stopped for 30 s", outcome, recovered)
        finally:
            database.stop()


def break_webhook() -> Row:
    """The webhook peer answers 500 for 8 s, then hangs past the sink's timeout for 8 s, then
    recovers; storage is not held up, and every notification arrives once (or is withheld
    above the sink's clearance)."""
    receiver = Receiver()
    os.environ["CHAOS_HOOK_SECRET"] = "chaos-secret"  # the workers inherit it
    config = (
        '[sinks.hook]\ntype = "webhook"\nmax_classification = "CONFIDENTIAL"\n'
        f'options = {{ url = "{receiver.url}", secret_env = "CHAOS_HOOK_SECRET", timeout_s = 1 }}\n'
        '[[rules]]\nname = "everything"\nsinks = ["hook"]\n'
    )
    try:
        with _stage("webhook", config=config) as stage:
            receiver.mode = "fail"
            sent = _enqueue(stage.settings, cables(1_000))
            time.sleep(8)
            receiver.mode = "hang"
            time.sleep(8)
            receiver.mode = "ok"
            recovered = _settle(stage, sent, time.monotonic(), notify="hook")
            outcome = reconcile(stage.settings.database_url, sent, notify="hook")
    finally:
        receiver.close()
    outcome.duplicated += receiver.duplicated
    delivered = len(receiver.accepted)
    outcome.notes.append(
        f"webhook: {delivered} delivered once, {outcome.withheld} withheld,"
        f" {receiver.requests} requests"
    )
    if delivered + outcome.withheld != len(sent):
        missing = len(sent) - delivered - outcome.withheld
        outcome.failures.append(f"{missing} notifications neither delivered nor withheld")
    return Row("webhook 500s, then timeouts, then back", outcome, recovered)


def poison() -> Row:
    """A cable whose parsing kills the pool process every time: after MAX_DELIVERIES (3 here)
    it is a dead letter, and the 500 cables around it are stored."""
    with _stage("poison", plugins=["chaos.poison"], max_deliveries="3") as stage:
        texts = list(cables(501))
        texts[250] = texts[250].replace("\n\n", f"\n\n{MARKER}\n\n", 1)
        started = time.monotonic()
        sent = _enqueue(stage.settings, iter(texts))
        recovered = _settle(stage, sent, started)
        outcome = reconcile(stage.settings.database_url, sent)
    if outcome.dead_lettered != 1:
        outcome.failures.append(f"{outcome.dead_lettered} dead letters; expected the poison")
    return Row("poison cable kills its process every time", outcome, recovered)


def hostile() -> Row:
    """10,000 hostile inputs through the door and the workers: each is rejected with a reason,
    stored, or dead-lettered; none is lost and no parse runs away."""
    with _stage("hostile", visibility_timeout="60") as stage:
        inputs = stage.folder / "inputs"
        written = write_hostile(inputs, 10_000)
        started = time.monotonic()
        with Producer(stage.settings) as producer:
            summary = enqueue_paths([str(inputs)], producer)
        sent = summary.message_ids
        recovered = _settle(stage, sent, started)
        # truncated copies of one cable share its reference id: revisions, not duplicates
        outcome = reconcile(stage.settings.database_url, sent, revisions_expected=True)
        slowest = slowest_parse(stage.folder / "worker.log")
    outcome.sent, outcome.rejected = written, sum(summary.rejected.values())
    if summary.duplicates:
        outcome.failures.append(f"{summary.duplicates} inputs were not distinct")
    outcome.notes.append(
        "rejected: " + ", ".join(f"{k} {v}" for k, v in sorted(summary.rejected.items()))
    )
    outcome.notes.append(f"slowest parse of a stored input: {slowest:,.0f} ms")
    return Row("10,000 hostile inputs", outcome, recovered)


def slowest_parse(log: Path) -> float:
    """The longest ``parsed`` event's duration in a worker's JSON log, in milliseconds."""
    slowest = 0.0
    with log.open("rb") as lines:
        for line in lines:
            if b'"parsed"' in line:
                with contextlib.suppress(orjson.JSONDecodeError):
                    slowest = max(slowest, float(orjson.loads(line).get("duration_ms", 0)))
    return slowest


def write_hostile(folder: Path, count: int) -> int:
    """Write ``count`` distinct hostile inputs (a few of each kind) into ``folder``."""
    folder.mkdir(parents=True)
    base = next(cables(1))
    rng = random.Random(7)
    kinds: list[Callable[[int], bytes]] = [
        lambda n: b" " * n if n % 2 else b"\n" * n,  # empty: only white space
        lambda n: (b"UNCLAS " * 8_000_000)[: 50 * 2**20 + n] if n < 30 else b"x" * (2**20 + n),
        lambda n: rng.randbytes(4096) + n.to_bytes(4, "big"),
        lambda n: b"\xff\xfe\xc3\x28" * 500 + str(n).encode(),
        lambda n: (base[:2000] + "\x00" * 500 + str(n)).encode(),
        lambda n: ("C O N F I D E N T I A L ALMATY 000598 " + "A" * 500_000 + str(n)).encode(),
        lambda n: ("FM AMEMBASSY ALMATY\n" * 20_000 + str(n)).encode(),
        lambda n: ("C O N F I D E N T I A L\nREF: A. " + "(" * 200_000 + f"{n}").encode(),
        lambda n: ("TAGS: " + "ABCD, " * 50_000 + f"\n{n}").encode(),
        lambda n: (f"<html><body>{n}" + "<p>hello &amp; world</p>\n" * 2000).encode(),
        lambda n: f'{{"reference_id": "06ALMATY{n}", "classification": "SECRET"}}'.encode(),
        lambda n: base[: rng.randrange(1, len(base))].encode() + f"\n{n}".encode(),
        lambda n: ("1. (C) " * 100_000 + str(n)).encode(),
    ]
    for n in range(count):
        (folder / f"input-{n:05d}.txt").write_bytes(kinds[n % len(kinds)](n))
    return count


def reparse_killed() -> Row:
    """A worker killed twice during a 5,000-cable reparse (:mod:`chaos.reparse`)."""
    plan = Plan()
    name, outcome, recovered = killed_during_reparse(cables(plan.cables), plan)
    return Row(name, outcome, recovered)


SCENARIOS: dict[str, Callable[[], Row]] = {
    "kill": kill_workers,
    "kill-embedded": lambda: kill_workers(embedded=True),
    "redis": restart_redis,
    "postgres": stop_postgres,
    "webhook": break_webhook,
    "poison": poison,
    "hostile": hostile,
    "reparse": reparse_killed,
}


def _paced(texts: Iterator[str], rate: float) -> Iterator[str]:
    """``texts`` at ``rate`` per second (so that the run lasts through the fault)."""
    started = time.monotonic()
    for n, text in enumerate(texts):
        if (ahead := started + n / rate - time.monotonic()) > 0:
            time.sleep(ahead)
        yield text
