"""File notification sink: each notification as a JSON file, or as a line of a day's JSON Lines.

By default each notification is one indented JSON document at
``<directory>/<YYYY>/<MM>/<DD>/<reference_id>--<h>.json``: the date is the cable's own (UTC;
``undated/`` when unknown) and ``h`` the first 16 hex digits of the SHA-256 of the delivery key.
It is written atomically (a temp file in the same folder, fsync, ``os.replace``, fsync of the
folder), so readers never see half a file, and a redelivery writes the same name again: it
replaces the file with an equal document (only ``sent_at``, the time it was built, may differ).

With ``jsonl`` each notification is one compact line appended to ``<directory>/<YYYY-MM-DD>.jsonl``
(the UTC day it is sent), skipped when its key is already in that file. That idempotence holds per
day file only: a redelivery on a later day is written again to that day's file. Each process reads
a day file's keys once and then remembers what it appends, so two processes racing with the same
key can both append it (the receipts of NotificationSink stop redeliveries long before that).
"""

from __future__ import annotations

import errno
import hashlib
import os
import re
import secrets
from collections.abc import Mapping
from contextlib import suppress
from datetime import UTC, datetime
from pathlib import Path
from typing import Any

import orjson

from worker import processes
from worker.errors import PermanentSinkError, SinkError, TransientSinkError
from worker.sinks.base import check_options

TRANSIENT_ERRNOS = frozenset({errno.ENOSPC, errno.EDQUOT, errno.EIO, errno.EAGAIN, errno.EINTR})
"""OS errors worth retrying: a full disk or quota, an I/O error, a busy resource."""
PERMANENT_ERRNOS = frozenset(
    {errno.EACCES, errno.EPERM, errno.EROFS, errno.ENOTDIR, errno.EISDIR, errno.ENAMETOOLONG}
)
"""OS errors retrying will not fix (permissions, a read-only file system, a wrong path); any
other errno counts as transient, so retries run out into the dead letters rather than drop."""
_UNSAFE = re.compile(r"[^A-Za-z0-9._-]")


def _day(value: object) -> str | None:
    """``YYYY/MM/DD`` of an ISO 8601 date-time (in UTC when it has an offset), or None."""
    if not isinstance(value, str):
        return None
    try:
        moment = datetime.fromisoformat(value)
    except ValueError:
        return None
    return (moment.astimezone(UTC) if moment.tzinfo else moment).strftime("%Y/%m/%d")


def relative_path(notification: Mapping[str, Any], key: str) -> str:
    """Where, under the sink's directory, the notification with delivery key ``key`` is written."""
    reference_id = _UNSAFE.sub("_", str(notification.get("reference_id") or "unknown"))[:120]
    digest = hashlib.sha256(key.encode()).hexdigest()[:16]
    return f"{_day(notification.get('date')) or 'undated'}/{reference_id}--{digest}.json"


def _fsync_dir(folder: Path) -> None:
    fd = os.open(folder, os.O_RDONLY | os.O_DIRECTORY)
    try:
        os.fsync(fd)
    finally:
        os.close(fd)


class FileNotifier:
    """Writes notifications to the local file system (``schemas/sinks/file.schema.json``)."""

    def __init__(self, name: str, directory: Path, *, jsonl: bool = False, fsync: bool = True):
        self.name, self.directory, self.jsonl, self.fsync = name, directory, jsonl, fsync
        self._keys: dict[Path, set[str]] = {}  # JSON Lines: keys of today's file, this process
        processes.track(self)

    def send(self, notification: Mapping[str, Any], key: str) -> None:
        """Write one notification (a file, or a line of today's JSON Lines file)."""
        try:
            if self.jsonl:
                self._append_line(notification, key)
            else:
                document = orjson.dumps(notification, option=orjson.OPT_INDENT_2) + b"\n"
                self._write_atomically(self.directory / relative_path(notification, key), document)
        except OSError as exc:
            raise self._error(exc) from exc

    def after_fork(self) -> None:
        """In a forked child: read the files again (another process may append to them)."""
        self._keys = {}

    def close(self) -> None:
        """Nothing to release: every file is closed when ``send`` returns."""

    def _makedirs(self, folder: Path) -> None:
        missing = []
        while not folder.exists() and folder != folder.parent:
            missing.append(folder)
            folder = folder.parent
        for created in reversed(missing):
            with suppress(FileExistsError):  # another process made it first
                created.mkdir()
            if self.fsync:
                _fsync_dir(created.parent)  # the new folder's entry survives a power cut

    def _write_atomically(self, path: Path, data: bytes) -> None:
        self._makedirs(path.parent)
        temp = path.with_name(f".{path.name}.{secrets.token_hex(6)}.tmp")
        fd = os.open(temp, os.O_WRONLY | os.O_CREAT | os.O_EXCL, 0o666)  # the umask applies
        try:
            try:
                _write_all(fd, data)
                if self.fsync:
                    os.fsync(fd)
            finally:
                os.close(fd)
            os.replace(temp, path)
        except BaseException:
            with suppress(OSError):
                temp.unlink()
            raise
        if self.fsync:
            _fsync_dir(path.parent)

    def _append_line(self, notification: Mapping[str, Any], key: str) -> None:
        path = self.directory / f"{datetime.now(UTC):%Y-%m-%d}.jsonl"
        if path not in self._keys:
            self._keys = {path: self._keys_in(path)}  # yesterday's keys are not needed any more
        keys = self._keys[path]
        if key in keys:
            return
        self._makedirs(path.parent)
        new = not path.exists()
        fd = os.open(path, os.O_WRONLY | os.O_APPEND | os.O_CREAT, 0o666)
        try:
            _write_all(fd, orjson.dumps(notification) + b"\n")
            if self.fsync:
                os.fsync(fd)
        finally:
            os.close(fd)
        keys.add(key)
        if new and self.fsync:
            _fsync_dir(path.parent)

    def _keys_in(self, path: Path) -> set[str]:
        data = path.read_bytes() if path.is_file() else b""
        keys = set()
        for line in data.splitlines():
            with suppress(orjson.JSONDecodeError, AttributeError):
                keys.add(str(orjson.loads(line).get("delivery_key")))
        if data and not data.endswith(b"\n"):  # a line torn by a crash: start the next one clean
            fd = os.open(path, os.O_WRONLY | os.O_APPEND)
            try:
                _write_all(fd, b"\n")
            finally:
                os.close(fd)
        return keys

    def _error(self, exc: OSError) -> SinkError:
        where = exc.filename or self.directory
        message = f"file sink {self.name}: {exc.strerror or exc} ({where})"
        if exc.errno in PERMANENT_ERRNOS:
            return PermanentSinkError(message)
        return TransientSinkError(message)


def _write_all(fd: int, data: bytes) -> None:
    """One ``write``; a short write (a disk filling up) is reported as ENOSPC."""
    if os.write(fd, data) != len(data):
        raise OSError(errno.ENOSPC, "short write: the disk is probably full")


def build(name: str, options: Mapping[str, Any]) -> FileNotifier:
    """The file notifier of sink ``name`` (options checked; nothing is created until a send)."""
    check_options("file", name, options)
    return FileNotifier(
        name,
        Path(options["directory"]),
        jsonl=options.get("jsonl", False),
        fsync=options.get("fsync", True),
    )
