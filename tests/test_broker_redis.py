"""The Redis transport's gap between taking a message and recording it as unacknowledged:
a message whose recording fails (Redis went away) is put back on its queue, not dropped."""

from __future__ import annotations

from collections.abc import Iterator
from typing import Any

import pytest
import redis
from kombu import Connection
from kombu.transport import redis as kombu_redis

from tests.services import redis_db_url
from worker import broker
from worker.app import create_app
from worker.settings import Settings


@pytest.fixture
def url() -> Iterator[str]:
    """The flushed test Redis database."""
    with redis_db_url() as value:
        yield value


def test_the_app_uses_the_safe_transport(url: str) -> None:
    """redis:// URLs resolve to worker.broker.RedisTransport."""
    app = create_app(Settings(broker_url=url))
    with app.connection_for_read() as connection:
        assert isinstance(connection.transport, broker.RedisTransport)


def test_a_message_taken_but_not_recorded_is_put_back(
    url: str, monkeypatch: pytest.MonkeyPatch
) -> None:
    """kombu pops the message, then fails to write its unacked record (Redis gone): the
    message goes back on its queue, flagged redelivered, and the error still surfaces."""
    with Connection(url) as connection:
        queue = connection.SimpleQueue("put-back")
        queue.put({"cable": "06ALMATY598"})
        failures = iter([redis.ConnectionError("Redis went away")])

        def append_once(self: Any, message: Any, delivery_tag: str) -> None:
            if (error := next(failures, None)) is not None:
                raise error

        monkeypatch.setattr(kombu_redis.QoS, "append", append_once)
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
