"""The contract every notification sink keeps, run on each against its real peer: a batch
arrives once, a redelivered batch sends nothing, a cable above the sink's clearance is never
sent, and a peer that is down or refuses raises the right kind of error without a receipt."""

from __future__ import annotations

import http.server
import secrets
import socket
import threading
import time
from collections.abc import Callable, Iterator
from contextlib import ExitStack
from dataclasses import dataclass
from email import policy
from email.parser import BytesParser
from pathlib import Path
from typing import Any

import orjson
import paho.mqtt.client as mqtt
import pytest
import redis
from aiosmtpd.controller import Controller
from aiosmtpd.smtp import SMTP, Envelope, Session
from paho.mqtt.enums import CallbackAPIVersion

from tests.services import closed_port, redis_db_url, unavailable
from worker.errors import PermanentSinkError, SinkError, TransientSinkError
from worker.routing.config import SinkConfig
from worker.sinks import build_notifier
from worker.sinks.base import Delivery
from worker.sinks.notify import NotificationSink
from worker.storage import ReceiptStore, upgrade

SECRET = "contract-secret"


@dataclass
class Peer:
    """A sink type with a live peer: options that work, options that fail, what arrived."""

    kind: str
    options: dict[str, Any]
    failing: dict[str, Any]
    failure: type[SinkError]
    arrived: Callable[[], list[str]]  # the delivery keys the peer holds
    stop: Callable[[], None] = lambda: None


def _webhook(tmp_path: Path) -> Peer:
    keys: list[str] = []

    class Handler(http.server.BaseHTTPRequestHandler):
        def do_POST(self) -> None:
            self.rfile.read(int(self.headers.get("Content-Length", "0")))
            keys.append(self.headers["Idempotency-Key"])
            self.send_response(200)
            self.send_header("Content-Length", "0")
            self.end_headers()

        def log_message(self, *args: object) -> None:
            pass

    server = http.server.ThreadingHTTPServer(("127.0.0.1", 0), Handler)
    threading.Thread(target=server.serve_forever, daemon=True).start()

    def stop() -> None:
        server.shutdown()
        server.server_close()

    url = f"http://127.0.0.1:{server.server_address[1]}/hook"
    dead = f"http://127.0.0.1:{closed_port()}/hook"
    return Peer(
        "webhook",
        {"url": url, "secret_env": "CONTRACT_SECRET", "timeout_s": 2},
        {"url": dead, "secret_env": "CONTRACT_SECRET", "timeout_s": 2},
        TransientSinkError,
        lambda: list(keys),
        stop,
    )


def _file(tmp_path: Path) -> Peer:
    folder = tmp_path / "drop"
    blocker = tmp_path / "not-a-folder"
    blocker.write_text("a file where a folder should be")

    def arrived() -> list[str]:
        return [orjson.loads(p.read_bytes())["delivery_key"] for p in folder.rglob("*.json")]

    return Peer(
        "file",
        {"directory": str(folder)},
        {"directory": str(blocker / "sub")},
        PermanentSinkError,
        arrived,
    )


def _email(tmp_path: Path) -> Peer:
    keys: list[str] = []

    class Collector:
        async def handle_DATA(self, server: SMTP, session: Session, envelope: Envelope) -> str:
            assert isinstance(envelope.content, bytes)
            message = BytesParser(policy=policy.default).parsebytes(envelope.content)
            for part in message.walk():
                if part.get_filename() == "notification.json":
                    payload = part.get_payload(decode=True)
                    assert isinstance(payload, bytes)
                    keys.append(orjson.loads(payload)["delivery_key"])
            return "250 OK"

    port = closed_port()
    controller = Controller(Collector(), hostname="127.0.0.1", port=port)
    controller.start()
    common = {"starttls": False, "from": "cables@example.org", "to": ["desk@example.org"]}
    return Peer(
        "email",
        {"host": "127.0.0.1", "port": port, **common},
        {"host": "127.0.0.1", "port": closed_port(), "timeout_s": 2, **common},
        TransientSinkError,
        lambda: list(keys),
        controller.stop,
    )


def _redis_stream(tmp_path: Path) -> Peer:
    stack = ExitStack()
    url = stack.enter_context(redis_db_url())
    client = stack.enter_context(redis.Redis.from_url(url))

    def arrived() -> list[str]:
        return [fields[b"key"].decode() for _, fields in client.xrange("contract-stream")]

    return Peer(
        "redis-stream",
        {"url": url, "stream": "contract-stream"},
        {"url": f"redis://127.0.0.1:{closed_port()}/0", "stream": "s", "timeout_s": 2},
        TransientSinkError,
        arrived,
        stack.close,
    )


def _mqtt(tmp_path: Path) -> Peer:
    try:
        socket.create_connection(("127.0.0.1", 1883), timeout=2).close()
    except OSError:
        unavailable("Mosquitto not reachable at 127.0.0.1:1883")
    prefix = f"contract-{secrets.token_hex(4)}"
    keys: list[str] = []
    subscribed = threading.Event()
    client = mqtt.Client(callback_api_version=CallbackAPIVersion.VERSION2)
    client.on_connect = lambda c, _u, _f, _r, _p: c.subscribe(f"{prefix}/#", qos=1)
    client.on_subscribe = lambda _c, _u, _m, _r, _p: subscribed.set()
    client.on_message = lambda _c, _u, m: keys.append(orjson.loads(m.payload)["delivery_key"])
    client.connect("127.0.0.1", 1883)
    client.loop_start()
    assert subscribed.wait(5), "no SUBACK from Mosquitto"

    def arrived() -> list[str]:
        time.sleep(0.3)  # QoS 1 is acknowledged by the broker, not yet by every subscriber
        return list(keys)

    def stop() -> None:
        client.disconnect()
        client.loop_stop()

    return Peer(
        "mqtt",
        {"host": "127.0.0.1", "port": 1883, "topic_prefix": prefix, "timeout_s": 5},
        {"host": "127.0.0.1", "port": closed_port(), "timeout_s": 2},
        TransientSinkError,
        arrived,
        stop,
    )


PEERS: dict[str, Callable[[Path], Peer]] = {
    "webhook": _webhook,
    "file": _file,
    "email": _email,
    "redis-stream": _redis_stream,
    "mqtt": _mqtt,
}


@pytest.fixture(params=sorted(PEERS))
def peer(
    request: pytest.FixtureRequest, tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> Iterator[Peer]:
    """Each sink type with its live peer."""
    monkeypatch.setenv("CONTRACT_SECRET", SECRET)
    made = PEERS[request.param](tmp_path)
    yield made
    made.stop()


@pytest.fixture
def receipts(tmp_path: Path) -> Iterator[ReceiptStore]:
    """Receipts in a fresh SQLite database."""
    url = f"sqlite:///{tmp_path / 'receipts.db'}"
    upgrade(url)
    store = ReceiptStore(url)
    yield store
    store.close()


def _sink(peer: Peer, receipts: ReceiptStore, options: dict[str, Any]) -> NotificationSink:
    config = SinkConfig("contract", peer.kind, max_classification="CONFIDENTIAL", options=options)
    return NotificationSink(config, build_notifier(peer.kind, "contract", options), receipts)


def _batch(*classifications: str) -> list[Delivery]:
    return [
        Delivery(
            f"m{n}",
            {
                "reference_id": f"06ALMATY{n}",
                "date": "2006-02-14T11:33:00Z",
                "origin": "Embassy Almaty",
                "classification": classification,
                "subject": f"SUBJECT {n}",
                "tags": [{"code": "KZ", "kind": "country"}],
            },
            "everything",
        )
        for n, classification in enumerate(classifications, start=1)
    ]


def test_a_batch_arrives_once_and_a_redelivery_sends_nothing(
    peer: Peer, receipts: ReceiptStore
) -> None:
    """Three deliveries arrive once each; the same batch again is all duplicates."""
    sink = _sink(peer, receipts, peer.options)
    batch = _batch("UNCLASSIFIED", "CONFIDENTIAL", "UNCLASSIFIED")
    try:
        assert sink.write_batch(batch) == ["delivered"] * 3
        assert sink.write_batch(batch) == ["duplicate"] * 3
    finally:
        sink.close()
    assert sorted(peer.arrived()) == ["m1:contract", "m2:contract", "m3:contract"]
    assert receipts.outcomes(["m1", "m2", "m3"], "contract") == {"delivered": 3}


def test_above_clearance_is_withheld_not_sent(peer: Peer, receipts: ReceiptStore) -> None:
    """A SECRET//NOFORN cable in a batch for a sink cleared for CONFIDENTIAL is withheld."""
    sink = _sink(peer, receipts, peer.options)
    try:
        outcomes = sink.write_batch(_batch("CONFIDENTIAL", "SECRET//NOFORN"))
    finally:
        sink.close()
    assert outcomes == ["delivered", "withheld"]
    assert peer.arrived() == ["m1:contract"]
    assert receipts.outcomes(["m2"], "contract") == {"withheld": 1}


def test_a_failing_peer_raises_its_kind_and_writes_no_receipt(
    peer: Peer, receipts: ReceiptStore
) -> None:
    """A peer that is down (or refuses) raises the transient (or permanent) error; nothing
    is recorded as delivered, so a retry or replay sends it."""
    sink = _sink(peer, receipts, peer.failing)
    try:
        with pytest.raises(peer.failure):
            sink.write_batch(_batch("UNCLASSIFIED"))
    finally:
        sink.close()
    assert receipts.received(["m1"], "contract") == set()
