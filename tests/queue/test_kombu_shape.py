"""kombu's internals that worker/queue/broker.py overrides or calls keep the shape it relies on
(kombu is pinned to the tested minor version; this fails first when a new one changes them)."""

from __future__ import annotations

import inspect

import pytest
from kombu.transport import filesystem, virtual
from kombu.transport import redis as kombu_redis


@pytest.mark.parametrize(
    ("function", "parameters"),
    [
        pytest.param(filesystem.Channel._put, ["self", "queue", "payload", "kwargs"], id="fs-put"),
        pytest.param(filesystem.Channel._get, ["self", "queue"], id="fs-get"),
        pytest.param(virtual.Channel._restore, ["self", "message"], id="virtual-restore"),
        pytest.param(
            virtual.Channel.basic_consume,
            ["self", "queue", "no_ack", "callback", "consumer_tag", "kwargs"],
            id="virtual-basic-consume",
        ),
        pytest.param(virtual.QoS.ack, ["self", "delivery_tag"], id="qos-ack"),
        pytest.param(virtual.QoS.reject, ["self", "delivery_tag", "requeue"], id="qos-reject"),
        pytest.param(kombu_redis.QoS.append, ["self", "message", "delivery_tag"], id="redis-append"),
        pytest.param(
            kombu_redis.Channel._do_restore_message,  # type: ignore[attr-defined]
            ["self", "payload", "exchange", "routing_key", "pipe", "leftmost"],
            id="redis-restore-message",
        ),
    ],
)
def test_overridden_and_called_functions_keep_their_parameters(
    function: object, parameters: list[str]
) -> None:
    """Each kombu function the embedded and Redis brokers override or call takes the same
    parameters as in the tested kombu version."""
    assert list(inspect.signature(function).parameters) == parameters  # type: ignore[arg-type]


def test_the_redis_transport_still_serialises_through_module_globals() -> None:
    """kombu's Redis channel reads dumps and loads as module globals, which register() swaps."""
    source = inspect.getsource(kombu_redis.Channel)
    assert callable(kombu_redis.dumps)  # type: ignore[attr-defined]
    assert callable(kombu_redis.loads)  # type: ignore[attr-defined]
    assert "dumps(" in source
    assert "loads(" in source


def test_the_virtual_message_keeps_its_raw_payload() -> None:
    """The embedded broker puts messages back from ``Message._raw``, kombu's received payload."""
    source = inspect.getsource(virtual.Message.__init__)
    assert "self._raw = payload" in source
