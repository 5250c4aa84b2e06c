"""The file sink on the real file system (pytest's tmp_path)."""

from __future__ import annotations

import os
from collections.abc import Callable
from datetime import UTC, datetime
from pathlib import Path
from typing import Any

import orjson
import pytest

from worker.errors import ConfigurationError, PermanentSinkError, TransientSinkError
from worker.routing.notification import build_notification
from worker.sinks.file import FileNotifier, build, relative_path

KEY_HASH = "a84930dbada638b3"  # the first 16 hex digits of sha256("m-1:files")


@pytest.fixture
def notification(minimal_record: dict[str, Any]) -> dict[str, Any]:
    """A notification for a cable dated 1 March 2006 (delivery key m-1:files)."""
    record = minimal_record | {"date": "2006-03-01T10:00:00Z", "subject": "KAZAKHSTAN: GOK"}
    return build_notification(record, message_id="m-1", sink="files", rule=None)


@pytest.fixture
def make(tmp_path: Path) -> Callable[..., FileNotifier]:
    """Build file notifiers writing under tmp_path/out, from option overrides."""

    def factory(**options: Any) -> FileNotifier:
        return build("files", {"directory": str(tmp_path / "out")} | options)

    return factory


def _files(root: Path) -> list[str]:
    """Every file under ``root`` (hidden ones included), relative, sorted."""
    return sorted(str(p.relative_to(root)) for p in root.rglob("*") if p.is_file())


def _today() -> str:
    return f"{datetime.now(UTC):%Y-%m-%d}"


def test_writes_the_document_under_the_cable_date(
    make: Callable[..., FileNotifier], notification: dict[str, Any], tmp_path: Path
) -> None:
    """A notification lands at YYYY/MM/DD/<reference>--<key hash>.json with the document in it."""
    make().send(notification, "m-1:files")
    name = f"2006/03/01/06ALMATY598--{KEY_HASH}.json"
    assert _files(tmp_path / "out") == [name]
    written = (tmp_path / "out" / name).read_bytes()
    assert orjson.loads(written) == notification
    assert written.startswith(b'{\n  "')  # indented, one document


def test_write_leaves_no_temporary_file(
    make: Callable[..., FileNotifier], notification: dict[str, Any], tmp_path: Path
) -> None:
    """After several writes only the final files exist: no temp file is left in the folder."""
    notifier = make(fsync=False)
    for index in range(5):
        notifier.send(notification, f"m-{index}:files")
    names = _files(tmp_path / "out")
    assert len(names) == 5
    assert not [name for name in names if name.endswith(".tmp") or "/." in name]


def test_same_key_twice_is_one_file_with_the_same_content(
    make: Callable[..., FileNotifier], notification: dict[str, Any], tmp_path: Path
) -> None:
    """A redelivery replaces the file under the same name with equal content."""
    notifier = make()
    notifier.send(notification, "m-1:files")
    (path,) = (tmp_path / "out").rglob("*.json")
    first = path.read_bytes()
    notifier.send(notification, "m-1:files")
    make().send(notification, "m-1:files")  # another process, same key
    assert _files(tmp_path / "out") == [str(path.relative_to(tmp_path / "out"))]
    assert path.read_bytes() == first


def test_undated_notification_goes_to_undated(
    make: Callable[..., FileNotifier], notification: dict[str, Any], tmp_path: Path
) -> None:
    """A cable without a date (or with an unreadable one) is written under undated/."""
    make().send(notification | {"date": None}, "m-1:files")
    make().send(notification | {"date": "garbled"}, "m-2:files")
    names = _files(tmp_path / "out")
    assert [name.split("/")[0] for name in names] == ["undated", "undated"]


def test_date_with_an_offset_is_filed_under_its_utc_day() -> None:
    """The folder is the UTC day: 23:30 at -05:00 on 1 March is 2 March in UTC."""
    document = {"reference_id": "06X/1 ..", "date": "2006-03-01T23:30:00-05:00"}
    assert relative_path(document, "k").startswith("2006/03/02/06X_1_..--")


def test_jsonl_appends_each_key_once(
    make: Callable[..., FileNotifier], notification: dict[str, Any], tmp_path: Path
) -> None:
    """In JSON Lines mode each key is one line of today's file, even when sent again."""
    other = notification | {"delivery_key": "m-2:files", "message_id": "m-2"}
    notifier = make(jsonl=True)
    for document in (notification, other, notification):
        notifier.send(document, document["delivery_key"])
    make(jsonl=True).send(other, "m-2:files")  # a new process reads the keys from the file
    assert _files(tmp_path / "out") == [f"{_today()}.jsonl"]
    lines = (tmp_path / "out" / f"{_today()}.jsonl").read_bytes().splitlines()
    assert [orjson.loads(line) for line in lines] == [notification, other]


def test_jsonl_after_a_torn_line_starts_clean(
    make: Callable[..., FileNotifier], notification: dict[str, Any], tmp_path: Path
) -> None:
    """A last line cut short by a crash does not swallow the next line."""
    day_file = tmp_path / "out" / f"{_today()}.jsonl"
    day_file.parent.mkdir()
    day_file.write_bytes(b'{"delivery_key": "m-0:fi')
    make(jsonl=True).send(notification, "m-1:files")
    assert orjson.loads(day_file.read_bytes().splitlines()[-1]) == notification


@pytest.mark.skipif(os.geteuid() == 0, reason="root ignores permission bits")
def test_read_only_directory_is_permanent(
    make: Callable[..., FileNotifier], notification: dict[str, Any], tmp_path: Path
) -> None:
    """A directory the worker may not write to is a PermanentSinkError."""
    (tmp_path / "out").mkdir(mode=0o555)
    try:
        with pytest.raises(PermanentSinkError, match="Permission denied"):
            make().send(notification, "m-1:files")
    finally:
        (tmp_path / "out").chmod(0o755)


def test_directory_below_a_regular_file_is_permanent(
    notification: dict[str, Any], tmp_path: Path
) -> None:
    """A directory path that runs through a regular file (ENOTDIR) is a PermanentSinkError."""
    (tmp_path / "taken").write_text("not a folder")
    notifier = build("files", {"directory": str(tmp_path / "taken" / "out")})
    with pytest.raises(PermanentSinkError, match="Not a directory"):
        notifier.send(notification, "m-1:files")


def test_full_disk_is_transient(
    make: Callable[..., FileNotifier], notification: dict[str, Any], tmp_path: Path
) -> None:
    """ENOSPC (today's JSON Lines file pointing at /dev/full) is a TransientSinkError."""
    if not os.path.exists("/dev/full"):
        pytest.skip("no /dev/full on this system")
    (tmp_path / "out").mkdir()
    (tmp_path / "out" / f"{_today()}.jsonl").symlink_to("/dev/full")
    with pytest.raises(TransientSinkError, match="No space left"):
        make(jsonl=True).send(notification, "m-1:files")


@pytest.mark.parametrize(
    "options",
    [{}, {"directory": ""}, {"directory": "x", "jsonl": "yes"}, {"directory": "x", "mode": "a"}],
)
def test_invalid_options_are_a_configuration_error(options: dict[str, Any]) -> None:
    """Options outside the schema are refused when the sink is built, naming the sink."""
    with pytest.raises(ConfigurationError, match=r"sinks\.files\.options"):
        build("files", options)


def test_build_touches_nothing(tmp_path: Path) -> None:
    """Building the sink creates no folder; the first send does."""
    notifier = build("files", {"directory": str(tmp_path / "later")})
    notifier.close()
    assert not (tmp_path / "later").exists()
