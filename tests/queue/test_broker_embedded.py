"""The embedded broker holds what it delivered until it is acknowledged, and gives back the
messages of a consumer that died, flagged redelivered."""

from __future__ import annotations

import os
import subprocess
import sys
import time
from collections.abc import Iterator
from pathlib import Path
from typing import Any, cast

import pytest
from kombu import Connection, Exchange, Queue

from worker.queue import broker
from worker.queue.brokers import broker_for
from worker.settings import Settings

broker.register()


@pytest.fixture
def settings(tmp_path: Path) -> Settings:
    """Settings whose embedded broker lives in a fresh folder."""
    values = Settings(var_dir=tmp_path / "var")
    broker_for(values).prepare()
    return values


@pytest.fixture
def connection(settings: Settings) -> Iterator[Connection]:
    """A kombu connection to the embedded broker (kombu keeps the filesystem transport's
    declarations process-wide: each test starts from none, as a new process would)."""
    broker.Transport.global_state.clear()
    with Connection(
        settings.broker_url, transport_options=broker_for(settings).transport_options()
    ) as conn:
        yield conn


QUEUE = Queue("intake", Exchange("intake", type="direct"), routing_key="intake")


def publish(connection: Connection, *bodies: str) -> None:
    """Put messages on the intake queue."""
    with connection.Producer() as producer:
        for body in bodies:
            producer.publish(body, exchange=QUEUE.exchange, routing_key="intake", declare=[QUEUE])


def channel_of(connection: Connection) -> broker.Channel:
    """The connection's default channel: the embedded broker's."""
    return cast(broker.Channel, connection.default_channel)


def held(settings: Settings) -> list[str]:
    """The messages consumers hold."""
    root = os.path.join(broker_for(settings).transport_options()["processed_folder"], broker.HELD)
    return broker.held_messages(root)


def waiting(settings: Settings) -> list[str]:
    """The messages waiting on the queue folder."""
    folder = broker_for(settings).transport_options()["data_folder_in"]
    return [n for n in os.listdir(folder) if n.endswith(".intake.msg")]


def test_a_delivered_message_is_held_until_acknowledged(
    connection: Connection, settings: Settings
) -> None:
    """Taking a message moves it to the consumer's folder; acknowledging it deletes it."""
    publish(connection, "one")
    message = channel_of(connection).basic_get("intake")
    assert message is not None
    assert message.payload == "one"
    assert (len(waiting(settings)), len(held(settings))) == (0, 1)
    message.ack()
    assert (len(waiting(settings)), len(held(settings))) == (0, 0)


def test_a_rejected_message_goes_back_flagged_redelivered(
    connection: Connection, settings: Settings
) -> None:
    """A message rejected with requeue is back on its queue, flagged redelivered."""
    publish(connection, "one")
    channel = channel_of(connection)
    first = channel.basic_get("intake")
    assert first is not None
    assert not first.delivery_info.get("redelivered")
    first.reject(requeue=True)
    assert (len(waiting(settings)), len(held(settings))) == (1, 0)
    again = channel.basic_get("intake")
    assert again is not None
    assert again.payload == "one"
    assert again.delivery_info["redelivered"] is True


def test_closing_the_channel_gives_back_what_it_did_not_acknowledge(
    connection: Connection, settings: Settings
) -> None:
    """A consumer that closes puts its unacknowledged messages back and leaves no folder."""
    publish(connection, "one", "two")
    channel = cast(broker.Channel, connection.channel())
    taken = [channel.basic_get("intake") for _ in range(2)]
    assert all(m is not None for m in taken)
    channel.close()
    assert (len(waiting(settings)), len(held(settings))) == (2, 0)


CONSUME_AND_DIE = """
import os, sys
from kombu import Connection
from worker.queue import broker
from worker.queue.brokers import broker_for
from worker.settings import Settings
broker.register()
from pathlib import Path
settings = Settings(var_dir=Path(sys.argv[1]))
from worker.queue.brokers import broker_for
conn = Connection(settings.broker_url, transport_options=broker_for(settings).transport_options())
message = conn.default_channel.basic_get("intake")
assert message is not None
print(message.payload, flush=True)
os._exit(0)  # gone without acknowledging or closing, as after kill -9
"""


def test_the_messages_of_a_consumer_that_died_come_back_redelivered(
    connection: Connection, settings: Settings
) -> None:
    """A process that took a message and died holds it no longer: the next consumer puts it
    back on its queue, flagged redelivered, and nothing is lost or doubled."""
    publish(connection, "one", "two")
    died = subprocess.run(
        [sys.executable, "-c", CONSUME_AND_DIE, str(settings.var_dir)],
        check=True,
        capture_output=True,
        text=True,
    )
    taken = died.stdout.strip()  # the messages' order on disk is not their publishing order
    assert (len(waiting(settings)), len(held(settings))) == (1, 1)
    options: dict[str, Any] = broker_for(settings).transport_options()
    root = os.path.join(options["processed_folder"], broker.HELD)
    assert broker.reclaim(root, options["data_folder_in"]) == 1
    assert broker.reclaim(root, options["data_folder_in"]) == 0
    channel = channel_of(connection)
    bodies = {}
    for _ in range(2):
        message = channel.basic_get("intake")
        assert message is not None
        bodies[message.payload] = bool(message.delivery_info.get("redelivered"))
        message.ack()
    assert bodies == {"one": taken == "one", "two": taken == "two"}
    assert taken in bodies
    assert channel.basic_get("intake") is None


def test_a_living_consumer_keeps_what_it_holds(connection: Connection, settings: Settings) -> None:
    """Another consumer's sweep leaves alone the messages of a consumer that is alive."""
    publish(connection, "one")
    assert channel_of(connection).basic_get("intake") is not None
    options: dict[str, Any] = broker_for(settings).transport_options()
    root = os.path.join(options["processed_folder"], broker.HELD)
    assert broker.reclaim(root, options["data_folder_in"]) == 0
    assert (len(waiting(settings)), len(held(settings))) == (0, 1)


def test_the_snapshot_tells_a_dead_holder_from_a_live_one(
    connection: Connection, settings: Settings
) -> None:
    """With no worker running to reclaim them, the messages of two consumers that died show
    as lost (their locks are free), that of a live one as held; looking reclaims nothing, and
    put_back returns the dead ones' only."""
    publish(connection, "one", "two", "three")
    quietly = CONSUME_AND_DIE.replace(  # no sweep first: the other dead one's stays held
        "message = conn.default_channel.basic_get",
        "conn.default_channel._reclaimed_at = 1e18\nmessage = conn.default_channel.basic_get",
    )
    for _ in range(2):
        subprocess.run(
            [sys.executable, "-c", quietly, str(settings.var_dir)],
            check=True, capture_output=True, text=True,
        )  # fmt: skip
    channel = channel_of(connection)
    channel._reclaimed_at = time.monotonic()  # its next take does not sweep (no worker runs)
    assert channel.basic_get("intake") is not None  # this process holds one
    found = broker_for(settings).snapshot(cast(Any, None), ["intake"])
    assert sorted((h.alive, h.messages) for h in found.held) == [(False, 1), (False, 1), (True, 1)]
    assert (found.queues[0].unacked, found.queues[0].lost, found.workers) == (3, 2, None)
    assert len(held(settings)) == 3
    assert broker_for(settings).put_back() == 2
    assert (len(waiting(settings)), len(held(settings))) == (2, 1)
