"""The Redis transport's gap between taking a message and recording it as unacknowledged:
a message whose recording fails (Redis went away) is put back on its queue, not dropped."""

from __future__ import annotations

from collections.abc import Iterator
from datetime import UTC, datetime
from decimal import Decimal
from typing import Any

import pytest
import redis
from kombu import Connection
from kombu.transport import redis as kombu_redis
from kombu.utils import json as kombu_json

from tests.services import redis_db_url
from worker.queue import broker
from worker.queue.app import create_app
from worker.settings import Settings


@pytest.fixture
def url() -> Iterator[str]:
    """The flushed test Redis database."""
    with redis_db_url() as value:
        yield value


def test_the_app_uses_the_safe_transport(url: str) -> None:
    """redis:// URLs resolve to worker.queue.broker.RedisTransport."""
    app = create_app(Settings(broker_url=url))
    with app.connection_for_read() as connection:
        assert isinstance(connection.transport, broker.RedisTransport)


def test_a_message_taken_but_not_recorded_is_put_back(
    url: str, monkeypatch: pytest.MonkeyPatch
) -> None:
    """kombu pops the message, then fails to write its unacked record (Redis gone): the
    message goes back on its queue, flagged redelivered, and the error still surfaces."""
    create_app(Settings(broker_url=url))  # registers this project's Redis transport
    with Connection(url) as connection:
        queue = connection.SimpleQueue("put-back")
        queue.put({"cable": "06ALMATY598"})
        failures = iter([redis.ConnectionError("Redis went away")])

        def append_once(self: Any, message: Any, delivery_tag: str) -> None:
            if (error := next(failures, None)) is not None:
                raise error

        monkeypatch.setattr(broker.RedisQoS, "_record", append_once)
        with pytest.raises(redis.ConnectionError):
            queue.get(timeout=1)
        client = redis.Redis.from_url(url)
        try:
            assert client.llen("put-back") == 1
        finally:
            client.close()
        monkeypatch.undo()
        again = queue.get(timeout=1)
        assert again.payload == {"cable": "06ALMATY598"}
        assert again.delivery_info.get("redelivered") is True
        again.ack()
        queue.close()


@pytest.mark.parametrize(
    "value",
    [
        {"body": '[[{"raw": "C O N F I D E N T I A L \\"quoted\\"\\n"}], {}, {}]', "n": 1},
        {"eta": datetime(2026, 11, 29, 5, 0, tzinfo=UTC), "raw": b"\xff\x00", "d": Decimal("1.5")},
        {"big": 2**70, "text": 'a "__type__" inside a string is only text'},
    ],
)
def test_transport_json_reads_back_what_kombu_would(value: dict[str, Any]) -> None:
    """The orjson transport JSON: kombu's reader gets the same values from it, and it reads
    kombu's own text (typed values included) the same way kombu does."""
    ours, kombus = broker.dumps(value), kombu_json.dumps(value)
    assert isinstance(ours, bytes)  # what Redis stores, without a decode and an encode
    assert kombu_json.loads(ours) == kombu_json.loads(kombus)
    assert broker.loads(kombus) == kombu_json.loads(kombus)
    assert broker.loads(ours) == broker.loads(memoryview(ours)) == broker.loads(ours.decode())
    assert getattr(kombu_redis, "dumps") is broker.dumps  # noqa: B009  # untyped module global
    assert getattr(kombu_redis, "loads") is broker.loads  # noqa: B009
