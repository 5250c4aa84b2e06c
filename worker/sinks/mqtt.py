"""MQTT notification sink: each notification published as JSON (paho-mqtt 2.x, MQTT 3.1.1).

The topic is ``<topic_prefix>/<classification slug>/<origin slug>``, e.g.
``cables/confidential-noforn/embassy-almaty`` (see :func:`slug`); the payload is the notification
document (``schemas/notification.schema.json``) as orjson bytes, which carries the delivery key as
``delivery_key`` (MQTT 3.1.1 has no message properties to put it in).

Delivery guarantees: QoS 1 (the default) is at-least-once. ``send`` returns once the broker's
PUBACK arrives; a publish not acknowledged within ``timeout_s`` raises TransientSinkError and is
sent again by the retry, while the first copy may still reach the broker, so subscribers must
deduplicate on ``delivery_key``. QoS 2 waits for PUBCOMP but is exactly-once only within one
connection, so the same holds. QoS 0 returns once the packet is written to the socket.

One connection per process, made on the first send (a forked child makes its own): a clean
session with client id ``<client_id_prefix>-<pid>-<random hex>``, a network thread started by
``loop_start()``, no automatic reconnect (the next send reconnects). Outcomes: a refused or lost
connection, no CONNACK or no acknowledgement in time, an unavailable server are transient; a
refused user name or password, a refused client id or protocol, an unverifiable TLS certificate
are permanent. Messages name the sink and the broker, never the password.
"""

from __future__ import annotations

import os
import re
import secrets
import ssl
import threading
import time
import unicodedata
from collections.abc import Mapping
from typing import Any

import orjson
import paho.mqtt.client as mqtt
from paho.mqtt.enums import CallbackAPIVersion
from paho.mqtt.reasoncodes import ReasonCode

from worker import processes
from worker.errors import PermanentSinkError, SinkError, TransientSinkError
from worker.settings import read_secret
from worker.sinks.base import check_options

KEEPALIVE_S = 60
SLUG_MAX_CHARS = 64
PERMANENT_REFUSALS = frozenset({132, 133, 134, 135})
"""CONNACK refusals that retrying will not fix: unsupported protocol version, client identifier
not valid, bad user name or password, not authorized (paho's MQTT 5 numbers of the 3.1.1 codes)."""
_NOT_SLUG = re.compile(r"[^a-z0-9]+")


def slug(value: object) -> str:
    """``value`` as one topic level: accents dropped, lowercase, each run of other characters
    than a-z and 0-9 made one ``-``, at most 64 characters; ``unknown`` when nothing is left."""
    if value is None:
        return "unknown"
    decomposed = unicodedata.normalize("NFKD", str(value))
    text = "".join(c for c in decomposed if not unicodedata.combining(c)).lower()
    text = _NOT_SLUG.sub("-", text).strip("-")[:SLUG_MAX_CHARS].rstrip("-")
    return text or "unknown"


def topic_for(prefix: str, notification: Mapping[str, Any]) -> str:
    """The topic of ``notification``: ``<prefix>/<classification slug>/<origin slug>``."""
    classification = slug(notification.get("classification"))
    return f"{prefix}/{classification}/{slug(notification.get('origin'))}"


class _Session:
    """What the network thread reports about one connection."""

    def __init__(self) -> None:
        self.answered = threading.Event()  # a CONNACK (or the end of the connection) came
        self.up = threading.Event()  # connected and not since disconnected
        self.refusal: ReasonCode | None = None

    def on_connect(self, _c: mqtt.Client, _u: Any, _f: Any, reason: ReasonCode, _p: Any) -> None:
        """Record the broker's CONNACK."""
        if reason.is_failure:
            self.refusal = reason
        else:
            self.up.set()
        self.answered.set()

    def on_disconnect(self, _c: mqtt.Client, _u: Any, _f: Any, _r: ReasonCode, _p: Any) -> None:
        """Record the end of the connection."""
        self.up.clear()
        self.answered.set()


class MqttNotifier:
    """Publishes notifications to one MQTT broker (``schemas/sinks/mqtt.schema.json``)."""

    def __init__(
        self,
        name: str,
        host: str,
        *,
        port: int = 1883,
        username: str | None = None,
        password: str | None = None,
        tls: bool = False,
        topic_prefix: str = "cables",
        qos: int = 1,
        retain: bool = False,
        timeout_s: float = 10.0,
        client_id_prefix: str = "cable-ingest",
    ) -> None:
        self.name, self.host, self.port, self.tls = name, host, int(port), tls
        self.username, self.topic_prefix = username, topic_prefix
        self.qos, self.retain, self.timeout_s = int(qos), retain, float(timeout_s)
        self.client_id_prefix = client_id_prefix
        self._password = password
        self._client: mqtt.Client | None = None
        self._session = _Session()
        processes.track(self)

    def __repr__(self) -> str:
        return f"MqttNotifier(name={self.name!r}, host={self.host!r}, port={self.port})"

    def _fail(self, kind: type[SinkError], what: str) -> SinkError:
        if self._password:
            what = what.replace(self._password, "***")
        scheme = "mqtts" if self.tls else "mqtt"
        return kind(f"mqtt sink {self.name} ({scheme}://{self.host}:{self.port}): {what}")

    def _connected(self) -> mqtt.Client:
        """This process's connected client, (re)connecting when there is none or it was lost."""
        if self._client is not None and self._session.up.is_set():
            return self._client
        self.close()
        session, client_id = _Session(), f"{self.client_id_prefix}-{os.getpid()}-"
        client = mqtt.Client(
            callback_api_version=CallbackAPIVersion.VERSION2,
            client_id=client_id + secrets.token_hex(4),
            clean_session=True,
            protocol=mqtt.MQTTv311,
            reconnect_on_failure=False,
        )
        client.on_connect, client.on_disconnect = session.on_connect, session.on_disconnect
        client.connect_timeout = self.timeout_s
        if self.username is not None:
            client.username_pw_set(self.username, self._password)
        if self.tls:
            client.tls_set_context(ssl.create_default_context())
        try:
            client.connect(self.host, self.port, keepalive=KEEPALIVE_S)
        except ssl.SSLCertVerificationError as exc:
            raise self._fail(PermanentSinkError, f"TLS certificate refused: {exc}") from None
        except OSError as exc:  # refused, unreachable, DNS, timeout, TLS handshake
            raise self._fail(TransientSinkError, f"{type(exc).__name__}: {exc}") from None
        self._client, self._session = client, session
        client.loop_start()
        if not session.answered.wait(self.timeout_s):
            self.close()
            raise self._fail(TransientSinkError, f"no CONNACK within {self.timeout_s:g} s")
        if not session.up.is_set():
            self.close()
            code = session.refusal
            if code is None:
                raise self._fail(TransientSinkError, "connection closed before it was usable")
            kind = PermanentSinkError if code.value in PERMANENT_REFUSALS else TransientSinkError
            raise self._fail(kind, f"connection refused: {code}")
        return client

    def send(self, notification: Mapping[str, Any], key: str) -> None:
        """Publish one notification and wait for the broker's acknowledgement (QoS 1 and 2)."""
        document = notification if isinstance(notification, dict) else dict(notification)
        topic, payload = topic_for(self.topic_prefix, document), orjson.dumps(document)
        client = self._connected()
        session = self._session
        deadline = time.monotonic() + self.timeout_s
        try:
            info = client.publish(topic, payload, qos=self.qos, retain=self.retain)
            while not info.is_published():
                if not session.up.is_set():
                    raise self._fail(TransientSinkError, f"connection lost, {key} unacknowledged")
                left = deadline - time.monotonic()
                if left <= 0:
                    what = f"{key} not acknowledged within {self.timeout_s:g} s"
                    raise self._fail(TransientSinkError, what)
                info.wait_for_publish(min(left, 0.2))
        except (ValueError, RuntimeError) as exc:  # paho: not queued, or not sent
            raise self._fail(TransientSinkError, f"publish of {key} failed: {exc}") from None

    def close(self) -> None:
        """Disconnect and stop the network thread."""
        client, self._client = self._client, None
        self._session.up.clear()
        if client is not None:
            client.disconnect()
            client.loop_stop()

    def after_fork(self) -> None:
        """In a forked child: the parent's connection and network thread are not ours."""
        self._client, self._session = None, _Session()


def build(name: str, options: Mapping[str, Any]) -> MqttNotifier:
    """The MQTT notifier of sink ``name``: options checked, password read, nothing connected.

    Raises ConfigurationError naming the key (``sinks.<name>.options.port: …``).
    """
    check_options("mqtt", name, options)
    where = f"sinks.{name}.options"
    password: str | None = None
    if "password_env" in options:
        password = read_secret(env=options["password_env"], what=f"{where}.password_env")
    elif "password_file" in options:
        password = read_secret(file=options["password_file"], what=f"{where}.password_file")
    return MqttNotifier(
        name,
        str(options["host"]),
        port=options.get("port", 1883),
        username=options.get("username"),
        password=password,
        tls=options.get("tls", False),
        topic_prefix=options.get("topic_prefix", "cables"),
        qos=options.get("qos", 1),
        retain=options.get("retain", False),
        timeout_s=options.get("timeout_s", 10),
        client_id_prefix=options.get("client_id_prefix", "cable-ingest"),
    )
