"""The MQTT sink against the real Mosquitto on 127.0.0.1:1883, and a scripted fake broker.

Mosquitto here lets anyone in, so what it cannot show (a refused password, a broker that never
acknowledges, a connection dropped mid-publish) is shown by :class:`FakeBroker`, a few dozen
lines of MQTT 3.1.1 on a local socket that answer CONNECT and PUBLISH as each test scripts.
"""

from __future__ import annotations

import os
import queue
import secrets
import socket
import struct
import threading
import time
from collections.abc import Callable, Iterator
from dataclasses import dataclass, field
from typing import Any

import orjson
import paho.mqtt.client as mqtt
import pytest
from paho.mqtt.enums import CallbackAPIVersion

from tests.services import closed_port, unavailable
from worker.errors import ConfigurationError, PermanentSinkError, TransientSinkError
from worker.routing.notification import build_notification
from worker.sinks.mqtt import MqttNotifier, build, slug, topic_for

HOST = os.environ.get("CABLE_INGEST_TEST_MQTT_HOST", "127.0.0.1")
PORT = int(os.environ.get("CABLE_INGEST_TEST_MQTT_PORT", "1883"))
PASSWORD = "Mq-pa55word-test-only"
PASSWORD_ENV = "CABLE_INGEST_TEST_MQTT_PASSWORD"

Make = Callable[..., MqttNotifier]


def _notification(classification: str | None, origin: str | None) -> dict[str, Any]:
    """A notification with a message id no other run uses."""
    record: dict[str, Any] = {
        "reference_id": "06ALMATY598",
        "date": "2006-02-14T11:33:00Z",
        "subject": "S",
    }
    record |= {"origin": origin, "classification": classification, "tags": []}
    message_id = f"m-{secrets.token_hex(6)}"
    return build_notification(record, message_id=message_id, sink="bus", rule="everything")


@pytest.fixture
def make() -> Iterator[Make]:
    """Build notifiers of sink ``bus`` from option overrides; closed at teardown."""
    built: list[MqttNotifier] = []

    def factory(**overrides: Any) -> MqttNotifier:
        notifier = build("bus", {"host": HOST, "port": PORT, "timeout_s": 5, **overrides})
        built.append(notifier)
        return notifier

    yield factory
    for notifier in built:
        notifier.close()


class Subscriber:
    """A paho client subscribed (QoS 1) to one topic filter, keeping what arrives."""

    def __init__(self, topic: str) -> None:
        self.messages: queue.Queue[mqtt.MQTTMessage] = queue.Queue()
        connected, subscribed = threading.Event(), threading.Event()
        self.client = mqtt.Client(
            callback_api_version=CallbackAPIVersion.VERSION2,
            client_id=f"cable-ingest-test-{secrets.token_hex(4)}",
        )
        self.client.on_connect = lambda _c, _u, _f, _r, _p: connected.set()
        self.client.on_subscribe = lambda _c, _u, _m, _r, _p: subscribed.set()
        self.client.on_message = lambda _c, _u, message: self.messages.put(message)
        self.client.connect(HOST, PORT)
        self.client.loop_start()
        assert connected.wait(5), "no CONNACK from Mosquitto"
        self.client.subscribe(topic, qos=1)
        assert subscribed.wait(5), "no SUBACK from Mosquitto"

    def wait_for(self, delivery_key: str, timeout: float = 5) -> mqtt.MQTTMessage:
        """The message whose document has ``delivery_key`` (others, e.g. retained, skipped)."""
        deadline = time.monotonic() + timeout
        while (left := deadline - time.monotonic()) > 0:
            try:
                message = self.messages.get(timeout=left)
            except queue.Empty:
                break
            if orjson.loads(message.payload or b"{}").get("delivery_key") == delivery_key:
                return message
        raise AssertionError(f"{delivery_key} did not arrive within {timeout} s")

    def close(self) -> None:
        """Disconnect and stop the network thread."""
        self.client.disconnect()
        self.client.loop_stop()


@pytest.fixture
def subscribe() -> Iterator[Callable[[str], Subscriber]]:
    """Subscribe to a topic filter on Mosquitto (skipped, or failed in CI, when it is down)."""
    try:
        socket.create_connection((HOST, PORT), timeout=2).close()
    except OSError:
        unavailable(f"Mosquitto not reachable at {HOST}:{PORT}")
    made: list[Subscriber] = []

    def factory(topic: str) -> Subscriber:
        made.append(Subscriber(topic))
        return made[-1]

    yield factory
    for subscriber in made:
        subscriber.close()


@pytest.mark.parametrize(
    ("classification", "origin", "topic"),
    [
        ("CONFIDENTIAL//NOFORN", "Embassy Almaty", "cables/confidential-noforn/embassy-almaty"),
        (
            "SECRET//REL TO USA, GBR",
            "Embassy Bogotá",
            "cables/secret-rel-to-usa-gbr/embassy-bogota",
        ),
        (None, None, "cables/unknown/unknown"),
    ],
)
def test_subscriber_receives_the_document_on_its_topic(
    make: Make, subscribe: Callable[[str], Subscriber], classification: str, origin: str, topic: str
) -> None:
    """A subscriber on cables/# receives the JSON document, at QoS 1 and not retained, on the
    topic made of the classification's and the origin's slugs."""
    subscriber = subscribe("cables/#")
    notification = _notification(classification, origin)
    make().send(notification, notification["delivery_key"])
    message = subscriber.wait_for(notification["delivery_key"])
    assert message.topic == topic
    assert orjson.loads(message.payload) == notification
    assert (message.qos, message.retain) == (1, False)


def test_retained_notification_reaches_a_later_subscriber(
    make: Make, subscribe: Callable[[str], Subscriber]
) -> None:
    """With retain, a subscriber that arrives after the publish still gets the notification."""
    prefix = f"cable-ingest-test/{secrets.token_hex(4)}"
    topic = f"{prefix}/unclassified/embassy-almaty"
    helper = subscribe(f"{prefix}/nothing")  # its client clears the retained message afterwards
    notification = _notification("UNCLASSIFIED", "Embassy Almaty")
    try:
        make(topic_prefix=prefix, retain=True).send(notification, notification["delivery_key"])
        message = subscribe(f"{prefix}/#").wait_for(notification["delivery_key"])
        assert (message.topic, message.retain) == (topic, True)
    finally:  # an empty retained payload deletes the retained message
        helper.client.publish(topic, b"", qos=1, retain=True).wait_for_publish(5)


def test_close_stops_the_network_thread(make: Make, subscribe: Callable[[str], Subscriber]) -> None:
    """After close no paho network thread of the notifier is left, and the next send reconnects."""
    subscribe("cables/#")  # only to skip when Mosquitto is down
    notifier = make(client_id_prefix="close-test")
    notifier.send(_notification("SECRET", "Embassy Almaty"), "m1:bus")
    notifier.close()
    assert not [t for t in threading.enumerate() if "close-test" in t.name]
    notifier.send(_notification("SECRET", "Embassy Almaty"), "m2:bus")


def test_closed_port_is_transient(make: Make) -> None:
    """Nothing listening is a TransientSinkError, raised on send (build connects nothing)."""
    notifier = make(port=closed_port())
    with pytest.raises(TransientSinkError, match="ConnectionRefusedError"):
        notifier.send(_notification("SECRET", "Embassy Almaty"), "m1:bus")


@dataclass
class FakeBroker:
    """A scripted MQTT 3.1.1 broker: answers CONNECT with CONNACK ``connack`` (None: silence),
    then each PUBLISH per ``publish``: ``ack`` (PUBACK), ``ignore`` or ``close`` the connection."""

    connack: int | None = 0
    publish: str = "ack"
    connects: list[bytes] = field(default_factory=list)
    publishes: list[bytes] = field(default_factory=list)
    _stop: threading.Event = field(default_factory=threading.Event, init=False)

    def __post_init__(self) -> None:
        self.server = socket.create_server(("127.0.0.1", 0))
        self.server.settimeout(0.05)
        self.port: int = self.server.getsockname()[1]
        self.options = {"host": "127.0.0.1", "port": self.port}
        self.thread = threading.Thread(target=self._serve, daemon=True)
        self.thread.start()

    def _read(self, conn: socket.socket, size: int) -> bytes | None:
        data = b""
        while len(data) < size and not self._stop.is_set():
            try:
                chunk = conn.recv(size - len(data))
            except TimeoutError:
                continue
            if not chunk:
                return None
            data += chunk
        return data if len(data) == size else None

    def _packet(self, conn: socket.socket) -> tuple[int, bytes] | None:
        header = self._read(conn, 1)
        length, shift = 0, 0
        while header is not None and (byte := self._read(conn, 1)) is not None:
            length, shift = length | (byte[0] & 0x7F) << shift, shift + 7
            if not byte[0] & 0x80:
                body = self._read(conn, length)
                return None if body is None else (header[0] >> 4, body)
        return None

    def _serve(self) -> None:
        while not self._stop.is_set():
            try:
                conn, _ = self.server.accept()
            except TimeoutError:
                continue
            with conn:
                conn.settimeout(0.05)
                self._talk(conn)

    def _talk(self, conn: socket.socket) -> None:
        while (packet := self._packet(conn)) is not None:
            kind, body = packet
            if kind == 1:  # CONNECT
                self.connects.append(body)
                if self.connack is not None:
                    conn.sendall(bytes([0x20, 2, 0, self.connack]))
            elif kind == 3:  # PUBLISH (QoS 1: topic, packet id, payload)
                self.publishes.append(body)
                if self.publish == "close":
                    return
                topic_length = struct.unpack("!H", body[:2])[0]
                if self.publish == "ack":
                    conn.sendall(bytes([0x40, 2]) + body[2 + topic_length : 4 + topic_length])
            elif kind == 14:  # DISCONNECT
                return

    def stop(self) -> None:
        """Stop serving and close the socket."""
        self._stop.set()
        self.thread.join(5)
        self.server.close()


@pytest.fixture
def fake() -> Iterator[Callable[..., FakeBroker]]:
    """Start fake brokers; stopped at teardown."""
    started: list[FakeBroker] = []

    def factory(**script: Any) -> FakeBroker:
        started.append(FakeBroker(**script))
        return started[-1]

    yield factory
    for broker in started:
        broker.stop()


def _user_and_password(connect: bytes) -> tuple[bytes | None, bytes | None]:
    """The user name and password fields of a CONNECT body (no will)."""
    flags, at = connect[7], 10
    fields: list[bytes] = []
    while at < len(connect):
        size = struct.unpack("!H", connect[at : at + 2])[0]
        fields.append(connect[at + 2 : at + 2 + size])
        at += 2 + size
    user = fields[1] if flags & 0x80 else None
    return user, (fields[2] if flags & 0x40 else None)


def test_qos1_waits_for_the_puback(make: Make, fake: Callable[..., FakeBroker]) -> None:
    """A QoS 1 publish the broker never acknowledges is a TransientSinkError after timeout_s."""
    broker = fake(publish="ignore")
    notifier = make(**broker.options, timeout_s=0.5)
    with pytest.raises(TransientSinkError, match=r"m1:bus not acknowledged within 0\.5 s"):
        notifier.send(_notification("SECRET", "Embassy Almaty"), "m1:bus")
    assert len(broker.publishes) == 1


def test_qos0_does_not_wait(make: Make, fake: Callable[..., FakeBroker]) -> None:
    """With qos 0 a send returns once written, with no acknowledgement from the broker."""
    broker = fake(publish="ignore")
    make(**broker.options, qos=0).send(_notification("SECRET", "Embassy Almaty"), "m1:bus")


def test_lost_connection_is_transient_and_the_next_send_reconnects(
    make: Make, fake: Callable[..., FakeBroker]
) -> None:
    """A connection dropped before the PUBACK is a TransientSinkError; the next send connects
    again and, once acknowledged, succeeds."""
    broker = fake(publish="close")
    notifier = make(**broker.options)
    # paho notices the drop either while waiting for the PUBACK or before it sends
    with pytest.raises(TransientSinkError, match=r"connection lost|not currently connected"):
        notifier.send(_notification("SECRET", "Embassy Almaty"), "m1:bus")
    broker.publish = "ack"
    notifier.send(_notification("SECRET", "Embassy Almaty"), "m1:bus")
    assert len(broker.connects) == 2


def test_password_env_is_sent_as_the_password(
    make: Make, fake: Callable[..., FakeBroker], monkeypatch: pytest.MonkeyPatch
) -> None:
    """username and the password named by password_env are what the CONNECT carries."""
    monkeypatch.setenv(PASSWORD_ENV, PASSWORD)
    broker = fake()
    notifier = make(**broker.options, username="cables", password_env=PASSWORD_ENV)
    notifier.send(_notification("SECRET", "Embassy Almaty"), "m1:bus")
    assert _user_and_password(broker.connects[0]) == (b"cables", PASSWORD.encode())


@pytest.mark.parametrize(
    ("code", "error"),
    [(4, PermanentSinkError), (5, PermanentSinkError), (3, TransientSinkError)],
)
def test_connack_refusal(
    make: Make,
    fake: Callable[..., FakeBroker],
    monkeypatch: pytest.MonkeyPatch,
    code: int,
    error: type[Exception],
) -> None:
    """A refused user name or password (4) or authorisation (5) is permanent, an unavailable
    server (3) transient, and the message never quotes the password."""
    monkeypatch.setenv(PASSWORD_ENV, PASSWORD)
    broker = fake(connack=code)
    notifier = make(**broker.options, username="cables", password_env=PASSWORD_ENV)
    with pytest.raises(error, match="connection refused") as caught:
        notifier.send(_notification("SECRET", "Embassy Almaty"), "m1:bus")
    assert PASSWORD not in str(caught.value)


def test_no_connack_is_transient(make: Make, fake: Callable[..., FakeBroker]) -> None:
    """A server that accepts the connection but never answers CONNECT is a TransientSinkError."""
    broker = fake(connack=None)
    with pytest.raises(TransientSinkError, match=r"no CONNACK within 0\.3 s"):
        make(**broker.options, timeout_s=0.3).send(_notification("SECRET", "X"), "m1:bus")


@pytest.mark.parametrize(
    ("value", "expected"),
    [
        ("CONFIDENTIAL//NOFORN", "confidential-noforn"),
        ("UNCLASSIFIED//FOR OFFICIAL USE ONLY", "unclassified-for-official-use-only"),
        ("  Embassy  Almaty ", "embassy-almaty"),
        ("Embassy Bogotá", "embassy-bogota"),
        ("Mission/Geneva+#", "mission-geneva"),
        ("USUN New York", "usun-new-york"),
        ("北京", "unknown"),
        ("--", "unknown"),
        ("", "unknown"),
        (None, "unknown"),
        ("Embassy " + "x" * 70, "embassy-" + "x" * 56),
        ("a" * 63 + " b", "a" * 63),
    ],
)
def test_slug(value: str | None, expected: str) -> None:
    """Odd classifications and origins become one safe topic level: no /, + or #."""
    assert slug(value) == expected


def test_topic_for_uses_the_prefix() -> None:
    """The topic is prefix, classification slug and origin slug joined by /."""
    notification = {"classification": "SECRET//NOFORN", "origin": "Consulate Ho Chi Minh City"}
    assert topic_for("agency/cables", notification) == (
        "agency/cables/secret-noforn/consulate-ho-chi-minh-city"
    )


@pytest.mark.parametrize(
    ("options", "message"),
    [
        ({"port": 0}, r"sinks\.bus\.options\.port: "),
        ({"qos": 3}, r"options\.qos: "),
        ({"topic_prefix": "cables/#"}, r"options\.topic_prefix: "),
        ({"topic_prefix": "cables/"}, r"options\.topic_prefix: "),
        ({"password_env": PASSWORD_ENV}, r"username"),
        ({"username": "u", "password_env": "CABLE_INGEST_UNSET_X"}, r"unset"),
    ],
)
def test_bad_options_name_the_key(options: dict[str, Any], message: str) -> None:
    """Malformed options or a missing password are a ConfigurationError naming the key."""
    with pytest.raises(ConfigurationError, match=message):
        build("bus", {"host": "127.0.0.1", **options})
