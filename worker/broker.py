"""The embedded broker: kombu's filesystem transport, with messages written atomically.

kombu's own ``_put`` writes the message file in place, under its final name; a consumer on
another process can list and move it before the write ends and read half a message. Here each
message is written to a hidden temporary name (which consumers skip: it does not end in
``.<queue>.msg``), flushed to disk, then renamed: consumers see whole messages or none.
A consumer claims a message by renaming it into the processed folder (one rename wins), reads
it and deletes it; kombu's own would keep every processed message, or move it to the temp
folder, which may be another file system (a copy, which two consumers can both make).
The filesystem transport has no acknowledgements: a worker killed between claiming and
finishing a message loses it (``cable-ingest run`` reports it as without outcome). Redis
redelivers; the embedded broker is for one machine and small runs.
Registered as the ``filesystem`` transport when :mod:`worker.app` is imported.
"""

from __future__ import annotations

import os
import uuid
from queue import Empty
from time import monotonic
from typing import Any

from kombu.exceptions import ChannelError
from kombu.transport import TRANSPORT_ALIASES, filesystem
from kombu.utils.json import dumps, loads


class Channel(filesystem.Channel):
    """Filesystem channel whose messages appear in the queue folder only when complete."""

    def _put(self, queue: str, payload: dict[str, Any], **kwargs: Any) -> None:  # type: ignore[override]  # the stubs of kombu disagree with themselves
        name = f"{round(monotonic() * 1000)}_{uuid.uuid4()}.{queue}.msg"
        folder = self.data_folder_out
        temporary = os.path.join(folder, f".tmp-{name}")
        try:
            with open(temporary, "wb") as file:
                file.write(dumps(payload).encode("utf-8"))
                file.flush()
                os.fsync(file.fileno())
            os.replace(temporary, os.path.join(folder, name))
        except OSError as exc:
            raise ChannelError(f"cannot add a message to {folder!r}: {exc}") from exc

    def _get(self, queue: str, timeout: float | None = None) -> Any:
        wanted = f"{queue}.msg"
        for name in sorted(os.listdir(self.data_folder_in)):
            if name.partition(".")[2] != wanted:
                continue
            claimed = os.path.join(self.processed_folder, name)
            try:
                os.rename(os.path.join(self.data_folder_in, name), claimed)
            except OSError:
                continue  # another consumer claimed it first
            try:
                with open(claimed, "rb") as file:
                    payload = file.read()
                os.unlink(claimed)
            except OSError as exc:
                raise ChannelError(f"cannot read message {claimed!r}: {exc}") from exc
            return loads(payload.decode("utf-8"))
        raise Empty()


class Transport(filesystem.Transport):
    """kombu's filesystem transport with :class:`Channel`."""

    Channel = Channel


def register() -> None:
    """Make ``filesystem://`` URLs use this transport."""
    TRANSPORT_ALIASES["filesystem"] = f"{__name__}:Transport"
