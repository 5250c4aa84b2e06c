"""The sink protocol and the item every sink takes."""

from __future__ import annotations

from collections.abc import Mapping, Sequence
from dataclasses import dataclass
from typing import Any, Protocol

from worker.core.validate import validate
from worker.errors import ConfigurationError, ValidationError


def check_options(kind: str, name: str, options: Mapping[str, Any]) -> None:
    """Check a sink's options against ``schemas/sinks/<kind>.schema.json``; raise
    ConfigurationError naming every key at fault (``sinks.<name>.options.port: …``)."""
    try:
        validate(f"sinks/{kind}", options)
    except ValidationError as exc:
        where = f"sinks.{name}.options"
        problems = [f"{where}{_dotted(v.path)}: {v.message}" for v in exc.violations]
        raise ConfigurationError("; ".join(problems)) from None


def _dotted(pointer: str) -> str:
    """A JSON pointer (``/to/0``) as the TOML key suffix (``.to.0``)."""
    parts = [p.replace("~1", "/").replace("~0", "~") for p in pointer.split("/") if p]
    return "".join("." + part for part in parts)


@dataclass(frozen=True, slots=True)
class Delivery:
    """One record for a sink, and the id of the envelope it came from.

    ``record`` is a :class:`~worker.record.CableRecord` when the ingest task made the delivery,
    but JSON read back from a sink's queue (:meth:`from_message`: a routed record, a replayed
    dead letter's payload, a hand-made message) that nothing validates again: so a mapping,
    and sinks check the shape of what they read.

    ``arrival`` (storage sinks only) is the envelope's original text and provenance in the
    JSON form of :class:`worker.storage.provenance.Arrival`; notification sinks never get it.
    """

    message_id: str
    record: Mapping[str, Any]
    rule: str | None = None  # the routing rule that sent it (notification sinks)
    arrival: Mapping[str, Any] | None = None

    def as_message(self) -> dict[str, Any]:
        """The JSON form that travels on a sink's queue."""
        message: dict[str, Any] = {"message_id": self.message_id, "record": self.record}
        if self.rule is not None:
            message["rule"] = self.rule
        if self.arrival is not None:
            message["arrival"] = self.arrival
        return message

    @classmethod
    def from_message(cls, message: Mapping[str, Any]) -> Delivery:
        """Read the JSON form back."""
        rule = message.get("rule")
        return cls(
            str(message["message_id"]), message["record"], rule or None, message.get("arrival")
        )


class Sink(Protocol):
    """What every sink does."""

    name: str

    def write_batch(self, deliveries: Sequence[Delivery]) -> list[str]:
        """Write the batch idempotently; return one outcome word per delivery, in order."""
        ...

    def close(self) -> None:
        """Release connections held by this process."""
        ...


class Notifier(Protocol):
    """What a notification sink (webhook, Redis Streams, e-mail, MQTT, files) does with one
    notification document (``schemas/notification.schema.json``).

    ``key`` is the delivery key (``<message id>:<sink name>``), the same on every redelivery of
    the same notification: peers that can deduplicate get it (an Idempotency-Key header, a
    message property, a file name). Raise TransientSinkError when trying again later may work
    (timeouts, 5xx, connection refused; ``retry_after`` when the peer says when) and
    PermanentSinkError when it cannot (4xx, a refused address).
    """

    def send(self, notification: Mapping[str, Any], key: str) -> None:
        """Deliver one notification."""
        ...

    def close(self) -> None:
        """Release connections held by this process."""
        ...
