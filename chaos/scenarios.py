"""The chaos scenarios: each runs real workers against its own services, injects its faults,
waits for every cable to have an outcome, and reconciles exactly."""

from __future__ import annotations

import contextlib
import os
import random
import threading
import time
from collections.abc import Callable, Iterator
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
from worker.generate import Template, generate, load_templates
from worker.health import check_health
from worker.intake import enqueue_paths
from worker.producer import Producer
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


def _setup(folder: Path, broker_url: str, **extra: str) -> tuple[dict[str, str], Settings]:
    env = environment(folder, broker_url=broker_url, **extra)
    settings = Settings.from_env(env)
    upgrade(settings.database_url)
    return env, settings


def kill_workers() -> Row:
    """kill -9 of a pool process, three times, then of the whole worker; twice over, while
    6,000 cables go through. Messages of a killed worker come back after the visibility
    timeout (10 s here)."""
    with scratch("kill") as folder:
        server = RedisServer(folder)
        server.start()
        env, settings = _setup(folder, server.url, visibility_timeout="10")
        workers = Workers(env, folder / "worker.log")
        workers.start()
        try:
            sent = _enqueue(settings, cables(6_000))
            for _ in range(2):
                for _ in range(3):
                    time.sleep(1.5)
                    workers.kill_child()
                time.sleep(1.5)
                workers.kill_all()
                time.sleep(1.0)
                workers.start()
            calm = time.monotonic()
            done = wait_for_outcomes(settings.database_url, sent, alive=workers)
            return Row("kill -9 worker child x6, whole worker x2", reconcile(
                settings.database_url, sent), done - calm)  # fmt: skip
        finally:
            workers.stop()
            server.stop()


def restart_redis() -> Row:
    """Redis shut down and started again mid-run while the producer is still sending; the
    workers reconnect and resume, and readiness says so."""
    with scratch("redis") as folder:
        server = RedisServer(folder)
        server.start()
        env, settings = _setup(folder, server.url, visibility_timeout="10")
        workers = Workers(env, folder / "worker.log")
        workers.start()
        sent: list[str] = []
        producing = threading.Thread(
            target=lambda: _enqueue(settings, _paced(cables(4_000), 800), sent)
        )
        try:
            producing.start()
            time.sleep(2.0)
            server.stop()
            time.sleep(3.0)
            server.start()
            calm = time.monotonic()
            producing.join()
            done = wait_for_outcomes(settings.database_url, sent, alive=workers)
            outcome = reconcile(settings.database_url, sent)
            health = check_health(settings)
            if not health.ready:
                outcome.notes.append("not ready after recovery: " + "; ".join(health.reasons))
            return Row("Redis restarted mid-run", outcome, done - calm)
        finally:
            workers.stop()
            server.stop()


def stop_postgres() -> Row:
    """PostgreSQL (storage and dead letters) stopped for 30 s mid-run: deliveries retry with
    backoff, then drain."""
    with scratch("postgres") as folder:
        server, database = RedisServer(folder), PostgresCluster(folder / "pg")
        server.start()
        database.start()
        env, settings = _setup(
            folder, server.url, database_url=database.url, visibility_timeout="10"
        )
        workers = Workers(env, folder / "worker.log")
        workers.start()
        try:
            sent = _enqueue(settings, cables(3_000))
            time.sleep(1.5)
            database.stop()
            time.sleep(30)
            database.start()
            calm = time.monotonic()
            done = wait_for_outcomes(settings.database_url, sent, alive=workers)
            return Row("PostgreSQL stopped for 30 s", reconcile(settings.database_url, sent),
                       done - calm)  # fmt: skip
        finally:
            workers.stop()
            database.stop()
            server.stop()


def break_webhook() -> Row:
    """The webhook peer answers 500 for 8 s, then hangs past the sink's timeout for 8 s, then
    recovers; storage is not held up, and every notification arrives once (or is withheld
    above the sink's clearance)."""
    with scratch("webhook") as folder:
        server, receiver = RedisServer(folder), Receiver()
        server.start()
        config = folder / "sinks.toml"
        config.write_text(
            '[sinks.hook]\ntype = "webhook"\nmax_classification = "CONFIDENTIAL"\n'
            f'options = {{ url = "{receiver.url}", secret_env = "CHAOS_HOOK_SECRET",'
            " timeout_s = 1 }\n"
            '[[rules]]\nname = "everything"\nsinks = ["hook"]\n',
            encoding="utf-8",
        )
        env, settings = _setup(folder, server.url, config=str(config), visibility_timeout="10")
        env["CHAOS_HOOK_SECRET"] = os.environ["CHAOS_HOOK_SECRET"] = "chaos-secret"
        workers = Workers(env, folder / "worker.log")
        workers.start()
        try:
            receiver.mode = "fail"
            sent = _enqueue(settings, cables(1_000))
            time.sleep(8)
            receiver.mode = "hang"
            time.sleep(8)
            receiver.mode = "ok"
            calm = time.monotonic()
            done = wait_for_outcomes(settings.database_url, sent, notify="hook", alive=workers)
            outcome = reconcile(settings.database_url, sent, notify="hook")
            outcome.duplicated += receiver.duplicated
            delivered = len(receiver.accepted)
            outcome.notes.append(
                f"webhook: {delivered} delivered, {outcome.withheld} withheld,"
                f" {receiver.requests} requests"
            )
            return Row("webhook 500s, then timeouts, then back", outcome, done - calm)
        finally:
            workers.stop()
            server.stop()
            receiver.close()


def poison() -> Row:
    """A cable whose parsing kills the pool process every time: after MAX_DELIVERIES (3 here)
    it is a dead letter, and the 500 cables around it are stored."""
    with scratch("poison") as folder:
        server = RedisServer(folder)
        server.start()
        env, settings = _setup(folder, server.url, visibility_timeout="10", max_deliveries="3")
        workers = Workers(env, folder / "worker.log", plugins=["chaos.poison"])
        workers.start()
        try:
            texts = list(cables(501))
            texts[250] = texts[250].replace("\n\n", f"\n\n{MARKER}\n\n", 1)
            sent = _enqueue(settings, iter(texts))
            started = time.monotonic()
            done = wait_for_outcomes(settings.database_url, sent, alive=workers)
            outcome = reconcile(settings.database_url, sent)
            outcome.notes.append(f"poison dead-lettered: {outcome.dead_lettered == 1}")
            return Row("poison cable kills its process every time", outcome, done - started)
        finally:
            workers.stop()
            server.stop()


def hostile() -> Row:
    """10,000 hostile inputs through the door and the workers: each is rejected with a reason,
    stored, or dead-lettered; none is lost and no parse runs away."""
    with scratch("hostile") as folder:
        server = RedisServer(folder)
        server.start()
        inputs = folder / "inputs"
        written = write_hostile(inputs, 10_000)
        env, settings = _setup(folder, server.url, visibility_timeout="60")
        workers = Workers(env, folder / "worker.log")
        workers.start()
        try:
            with Producer(settings) as producer:
                summary = enqueue_paths([str(inputs)], producer)
            sent = summary.message_ids
            started = time.monotonic()
            done = wait_for_outcomes(settings.database_url, sent, alive=workers)
            outcome = reconcile(settings.database_url, sent)
            outcome.duplicated = 0  # truncated copies of one cable are revisions, by design
            outcome.sent = written
            outcome.rejected = sum(summary.rejected.values())
            duplicates = summary.duplicates
            if duplicates:
                outcome.notes.append(f"{duplicates} identical inputs skipped at the door")
            outcome.notes.append(
                "rejected: " + ", ".join(f"{k} {v}" for k, v in sorted(summary.rejected.items()))
            )
            slowest = slowest_parse(folder / "worker.log")
            outcome.notes.append(f"slowest parse of a stored input: {slowest:,.0f} ms")
            return Row("10,000 hostile inputs", outcome, done - started)
        finally:
            workers.stop()
            server.stop()


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


SCENARIOS: dict[str, Callable[[], Row]] = {
    "kill": kill_workers,
    "redis": restart_redis,
    "postgres": stop_postgres,
    "webhook": break_webhook,
    "poison": poison,
    "hostile": hostile,
}


def _paced(texts: Iterator[str], rate: float) -> Iterator[str]:
    """``texts`` at ``rate`` per second (so that the run lasts through the fault)."""
    started = time.monotonic()
    for n, text in enumerate(texts):
        if (ahead := started + n / rate - time.monotonic()) > 0:
            time.sleep(ahead)
        yield text
