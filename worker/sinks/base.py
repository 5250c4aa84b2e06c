"""The sink protocol and the item every sink takes."""

from __future__ import annotations

from collections.abc import Mapping, Sequence
from dataclasses import dataclass
from typing import Any, Protocol


@dataclass(frozen=True, slots=True)
class Delivery:
    """One record for a sink, and the id of the envelope it came from."""

    message_id: str
    record: Mapping[str, Any]

    def as_message(self) -> dict[str, Any]:
        """The JSON form that travels on a sink's queue."""
        return {"message_id": self.message_id, "record": self.record}

    @classmethod
    def from_message(cls, message: Mapping[str, Any]) -> Delivery:
        """Read the JSON form back."""
        return cls(str(message["message_id"]), message["record"])


class Sink(Protocol):
    """What every sink does."""

    name: str

    def write_batch(self, deliveries: Sequence[Delivery]) -> list[str]:
        """Write the batch idempotently; return one outcome word per delivery, in order."""
        ...

    def close(self) -> None:
        """Release connections held by this process."""
        ...
