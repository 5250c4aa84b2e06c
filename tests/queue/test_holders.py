"""On Redis every unacknowledged message has a named holder (the connection name of the channel
that took it): a holder Redis no longer lists is gone, and only its messages are put back.
Consumers here are real processes, killed with SIGKILL."""

from __future__ import annotations

import threading
import time
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import orjson
import pytest
import redis

from tests.holders import consumer, sigkill
from tests.services import redis_db_url
from worker.ops.status import collect_status
from worker.queue import broker
from worker.queue.app import create_app, publish
from worker.queue.brokers import broker_for
from worker.queue.names import INTAKE_QUEUE
from worker.settings import Settings

VISIBILITY_S = 3600
@pytest.fixture
def settings(tmp_path: Path) -> Iterator[Settings]:
    """The test Redis database, an hour of visibility timeout (nothing returns by itself)."""
    with redis_db_url() as url:
        yield Settings(broker_url=url, var_dir=tmp_path / "var", visibility_timeout=VISIBILITY_S)


def _lost_within(settings: Settings, count: int, seconds: float = 10) -> list[Any]:
    """The held groups once ``count`` messages are held by lost consumers (Redis notices a
    closed connection at once; the loop only absorbs scheduling)."""
    app = create_app(settings)
    deadline = time.monotonic() + seconds
    while True:
        held = broker_for(settings).snapshot(app, [INTAKE_QUEUE]).held
        if sum(h.messages for h in held if h.alive is False) == count:
            return held
        assert time.monotonic() < deadline, held
        time.sleep(0.05)


def test_only_the_messages_of_a_killed_holder_are_put_back(settings: Settings) -> None:
    """Two consumers each take a message. While both live nothing is put back. One killed
    with SIGKILL: its message is held by a lost consumer, back at taken + visibility timeout;
    put_back returns it (flagged redelivered) and leaves the other's; a second put_back finds
    nothing: each message is on its queue or held, exactly once."""
    app = create_app(settings)
    for n in range(2):
        publish(app, "tests.noop", [n], queue=INTAKE_QUEUE)
    first, second = consumer(settings.broker_url), consumer(settings.broker_url)
    client = redis.Redis.from_url(settings.broker_url)
    try:
        snapshot = broker_for(settings).snapshot(app, [INTAKE_QUEUE])
        assert [(h.alive, h.messages) for h in snapshot.held] == [(True, 1), (True, 1)]
        assert snapshot.queues[0].lost == 0
        assert broker_for(settings).put_back() == 0
        assert client.llen(INTAKE_QUEUE) == 0

        started = time.time()
        sigkill(first)
        held = _lost_within(settings, 1)
        [lost] = [h for h in held if h.alive is False]
        assert lost.holder is not None
        assert (broker.parse_name(lost.holder) or ("?",))[0] == "client"  # not a worker's
        assert lost.taken_at is not None
        assert lost.taken_at <= started
        assert lost.returns_at == lost.taken_at + VISIBILITY_S

        assert broker_for(settings).put_back() == 1
        assert client.llen(INTAKE_QUEUE) == 1
        back = orjson.loads(client.lindex(INTAKE_QUEUE, 0) or b"{}")
        assert back["properties"]["delivery_info"]["redelivered"] is True
        assert client.hlen("unacked") == client.hlen(broker.HOLDERS_KEY) == 1
        assert broker_for(settings).put_back() == 0
        [alive] = broker_for(settings).snapshot(app, [INTAKE_QUEUE]).held
        assert (alive.alive, alive.messages) == (True, 1)
    finally:
        sigkill(first)
        sigkill(second)
        client.close()


def test_an_acknowledged_message_leaves_no_holder(settings: Settings) -> None:
    """Taking a message records its holder with kombu's own record; acknowledging it removes
    both."""
    app = create_app(settings)
    publish(app, "tests.noop", [0], queue=INTAKE_QUEUE)
    client = redis.Redis.from_url(settings.broker_url)
    try:
        with app.connection_for_read() as connection:
            channel: Any = connection.default_channel
            message = channel.basic_get(INTAKE_QUEUE, no_ack=False)
            [(tag, raw)] = client.hgetall(broker.HOLDERS_KEY).items()
            holder, _exchange, routing_key, taken = orjson.loads(raw)
            assert tag == message.delivery_tag.encode()
            assert holder == channel.holder
            assert routing_key == INTAKE_QUEUE
            assert client.zscore("unacked_index", tag) == pytest.approx(taken)
            names = {c["name"] for c in client.client_list()}
            assert holder in names  # the channel's connections carry its name
            message.ack()
        assert client.hlen(broker.HOLDERS_KEY) == client.hlen("unacked") == 0
    finally:
        client.close()


def test_status_reads_the_broker_in_one_multi(settings: Settings) -> None:
    """Every command ``status`` sends to read the queues, the unacknowledged messages, their
    holders and the workers runs inside one MULTI/EXEC (Redis MONITOR): one instant, not
    figures from different moments (issue 17: "8 waiting, 2 unacked" beside "LAST 60S 995")."""
    app = create_app(settings)
    publish(app, "tests.noop", [0], queue=INTAKE_QUEUE)
    taker = consumer(settings.broker_url)
    seen: list[tuple[str, str]] = []
    ready = threading.Event()
    watcher = redis.Redis.from_url(settings.broker_url)

    def watch() -> None:
        with watcher.monitor() as monitor:  # type: ignore[no-untyped-call]  # redis-py's own
            ready.set()
            for event in monitor.listen():
                command = str(event.get("command", ""))
                if command.startswith("SET") and "stop-monitor" in command:
                    return
                seen.append((str(event.get("client_port")), command))

    thread = threading.Thread(target=watch, daemon=True)
    thread.start()
    assert ready.wait(10)
    try:
        status = collect_status(settings, app)
        redis.Redis.from_url(settings.broker_url).set("stop-monitor", "1")
        thread.join(10)
    finally:
        sigkill(taker)
        watcher.close()
    assert [q.unacked for q in status.queues if q.name == INTAKE_QUEUE] == [1]
    reads = ("LLEN", "LINDEX", "HKEYS", "ZRANGE", "HGETALL", "CLIENT LIST", "PUBLISH")
    broker_reads = [(port, c) for port, c in seen if c.upper().startswith(reads)]
    assert broker_reads, seen
    ports = {port for port, _ in broker_reads}
    assert len(ports) == 1, broker_reads  # one connection
    [port] = ports
    mine = [c.upper() for p, c in seen if p == port]
    begin, end = mine.index("MULTI"), mine.index("EXEC")
    assert mine.count("MULTI") == 1
    assert all(begin < mine.index(c.upper()) < end for _, c in broker_reads)
    assert not any(c.upper().startswith("PUBLISH") for _, c in seen)  # no broadcast to wait for
