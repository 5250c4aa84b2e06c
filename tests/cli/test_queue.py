"""``cable-ingest enqueue`` and ``migrate`` as real processes on the embedded broker."""

from __future__ import annotations

import csv
import errno
import io
import json
import os
import signal
import subprocess
import sys
import tarfile
import time
from collections.abc import Iterator
from contextlib import contextmanager
from pathlib import Path
from typing import TextIO

FIXTURES = Path(__file__).resolve().parents[1] / "fixtures"
SAMPLE = FIXTURES / "06ALMATY598.scraped.txt"


def run(
    tmp_path: Path, *args: str, stdin: bytes = b"", **env: str
) -> subprocess.CompletedProcess[str]:
    """Run ``python -m worker ARGS`` with its var folder under ``tmp_path``."""
    environ = {k: v for k, v in os.environ.items() if not k.startswith("CABLE_INGEST_")}
    environ["CABLE_INGEST_VAR_DIR"] = str(tmp_path / "var")
    environ.update({f"CABLE_INGEST_{k.upper()}": v for k, v in env.items()})
    done = subprocess.run(
        [sys.executable, "-m", "worker", *args],
        input=stdin,
        capture_output=True,
        timeout=60,
        check=False,
        env=environ,
    )
    return subprocess.CompletedProcess(
        done.args, done.returncode, done.stdout.decode(), done.stderr.decode()
    )


def _cable(n: int) -> bytes:
    return SAMPLE.read_bytes().replace(b"000598", f"{n:06d}".encode(), 1)


def _inputs(tmp_path: Path) -> list[str]:
    archive = tmp_path / "cables.tar.gz"
    with tarfile.open(archive, "w:gz") as tar:
        for name, data in [("a.txt", _cable(1)), ("b.txt", _cable(2)), ("empty.txt", b"")]:
            info = tarfile.TarInfo(name)
            info.size = len(data)
            tar.addfile(info, io.BytesIO(data))
    table = tmp_path / "cables.csv"
    with table.open("w", newline="", encoding="utf-8") as out:
        writer = csv.writer(out, escapechar="\\", doublequote=False)
        for refid, data in [("06ALMATY3", _cable(3)), ("06ALMATY1", _cable(1))]:
            header, _, body = data.decode().partition("\n\n")
            writer.writerow(["1", "2006-02-14", refid, "Embassy Almaty", "C", "", header, body])
    return [str(archive), str(table), "-"]


def test_enqueue_reports_every_input(tmp_path: Path) -> None:
    """A tar.gz (two cables, one empty member), a cables.csv (a new cable and a copy of one in
    the archive) and stdin: 4 enqueued, 1 duplicate, 1 rejected as empty, in one summary; the
    rejected member and the skipped copy are each named on a line of their own; exit 65."""
    done = run(tmp_path, "enqueue", *_inputs(tmp_path), stdin=_cable(4), batch_size="3")
    assert done.returncode == 65, done.stderr
    assert "enqueued:          4" in done.stderr
    assert "duplicates:        1" in done.stderr
    assert "rejected:          1" in done.stderr
    archive, table = tmp_path / "cables.tar.gz", tmp_path / "cables.csv"
    assert f"rejected (empty): {archive}:empty.txt: input is empty" in done.stderr
    assert f"duplicate: {table}:06ALMATY1: same text as {archive}:a.txt; skipped" in done.stderr
    queued = sorted(p.name for p in (tmp_path / "var" / "broker" / "queue").iterdir())
    assert len(queued) == 2
    assert all(name.endswith(".intake.msg") for name in queued)


def _bad_folder(tmp_path: Path) -> Path:
    folder = tmp_path / "inputs"
    folder.mkdir()
    (folder / "a-cable.txt").write_bytes(_cable(1))
    (folder / "b-copy.txt").write_bytes(_cable(1))
    (folder / "c-empty.txt").write_bytes(b" \n")
    (folder / "d-binary.bin").write_bytes(bytes(range(256)) * 4)
    (folder / "e-cable.txt").write_bytes(_cable(2))
    return folder


def test_enqueue_json_names_every_rejection_and_duplicate(tmp_path: Path) -> None:
    """--json: one versioned document on stdout naming each rejected input (name, reason
    code, message) and each skipped duplicate with the input it repeats; exit 65."""
    folder = _bad_folder(tmp_path)
    missing = str(tmp_path / "nowhere.txt")
    done = run(tmp_path, "enqueue", "--json", str(folder), missing)
    assert done.returncode == 65, done.stderr
    document = json.loads(done.stdout)
    assert (document["version"], document["command"], document["exit_code"]) == (1, "enqueue", 65)
    assert (document["inputs"], document["enqueued"], document["duplicates"]) == (6, 2, 1)
    assert document["rejected"] == {"empty": 1, "binary": 1, "missing": 1}
    assert document["stopped"] is None
    rejected = {r["input"]: (r["reason"], r["message"]) for r in document["rejected_inputs"]}
    assert rejected == {
        str(folder / "c-empty.txt"): ("empty", "input is empty (2 bytes of whitespace)"),
        str(folder / "d-binary.bin"): ("binary", rejected[str(folder / "d-binary.bin")][1]),
        missing: ("missing", "no such file, folder or glob match"),
    }
    assert "binary" in rejected[str(folder / "d-binary.bin")][1]
    assert document["duplicate_inputs"] == [
        {"input": str(folder / "b-copy.txt"), "duplicate_of": str(folder / "a-cable.txt")}
    ]
    assert document["dlq_list"].startswith("cable-ingest dlq list --since ")
    assert "parse failures:    later, in the workers: cable-ingest dlq list --since " in done.stderr


def test_enqueue_all_accepted_exits_0(tmp_path: Path) -> None:
    """Every input accepted: exit 0, and the --json document names nothing."""
    done = run(tmp_path, "enqueue", "--json", str(SAMPLE))
    assert done.returncode == 0, done.stderr
    document = json.loads(done.stdout)
    assert (document["exit_code"], document["enqueued"]) == (0, 1)
    assert document["rejected_inputs"] == document["duplicate_inputs"] == []


def test_enqueue_strict_stops_at_the_first_rejection(tmp_path: Path) -> None:
    """With --strict the first rejected input stops the reading: what came before it is
    queued, nothing after it is read; exit 65."""
    folder = _bad_folder(tmp_path)
    done = run(tmp_path, "enqueue", "--strict", "--json", str(folder), batch_size="1")
    assert done.returncode == 65, done.stderr
    document = json.loads(done.stdout)
    assert document["stopped"] == "strict"
    assert (document["inputs"], document["enqueued"], document["duplicates"]) == (3, 1, 1)
    assert [r["reason"] for r in document["rejected_inputs"]] == ["empty"]
    assert "stopped:           at the first rejected input (--strict)" in done.stderr
    queued = list((tmp_path / "var" / "broker" / "queue").iterdir())
    assert len(queued) == 1


@contextmanager
def _writer(fifo: Path, reader: subprocess.Popen[str]) -> Iterator[TextIO]:
    """The FIFO opened for writing once ``reader`` has opened it (an error if it exits first)."""
    while True:
        try:
            fd = os.open(fifo, os.O_WRONLY | os.O_NONBLOCK)
            break
        except OSError as error:  # ENXIO: no reader yet
            if error.errno != errno.ENXIO or reader.poll() is not None:
                raise AssertionError(
                    f"enqueue exited ({reader.returncode}), FIFO unread"
                ) from error
            time.sleep(0.05)
    os.set_blocking(fd, True)
    with open(fd, "w", newline="", encoding="utf-8") as writer:
        yield writer


def test_enqueue_ctrl_c_reports_what_was_sent(tmp_path: Path) -> None:
    """SIGINT while enqueue waits for more input (a cables.csv fed through a FIFO): exit 130
    with the summary so far: the two rows already sent are counted as enqueued."""
    feed = tmp_path / "feed.csv"
    os.mkfifo(feed)
    environ = {k: v for k, v in os.environ.items() if not k.startswith("CABLE_INGEST_")}
    environ |= {"CABLE_INGEST_VAR_DIR": str(tmp_path / "var"), "CABLE_INGEST_BATCH_SIZE": "1"}
    command = [sys.executable, "-m", "worker", "enqueue", "--json", str(feed)]
    process = subprocess.Popen(
        command, stdout=subprocess.PIPE, stderr=subprocess.PIPE, env=environ, text=True
    )
    try:
        with _writer(feed, process) as writer:
            rows = csv.writer(writer, escapechar="\\", doublequote=False)
            for n in (1, 2):
                header, _, body = _cable(n).decode().partition("\n\n")
                rows.writerow(
                    [str(n), "2006-02-14", f"06ALMATY{n}", "Almaty", "C", "", header, body]
                )
                writer.flush()
            queue = tmp_path / "var" / "broker" / "queue"
            deadline = time.monotonic() + 30
            while time.monotonic() < deadline:
                if queue.is_dir() and len(list(queue.glob("*.intake.msg"))) == 2:
                    break
                time.sleep(0.05)
            process.send_signal(signal.SIGINT)
            stdout, stderr = process.communicate(timeout=30)
    finally:
        if process.poll() is None:
            process.kill()
            process.wait()
    assert process.returncode == 130, stderr
    document = json.loads(stdout)
    assert (document["exit_code"], document["stopped"]) == (130, "interrupted")
    assert (document["enqueued"], document["unsent"]) == (2, 0)
    assert "enqueued:          2" in stderr
    assert "stopped:           interrupted (Ctrl-C)" in stderr


def test_bad_setting_is_one_line_without_traceback(tmp_path: Path) -> None:
    """A malformed variable stops the command with a line naming it, and no traceback."""
    done = run(tmp_path, "enqueue", str(SAMPLE), batch_size="many")
    assert done.returncode == 1
    assert done.stderr.startswith("cable-ingest: CABLE_INGEST_BATCH_SIZE: expected a positive")
    assert "Traceback" not in done.stderr


def test_migrate_creates_the_tables(tmp_path: Path) -> None:
    """``migrate`` creates the SQLite database under the var folder and can run again."""
    for _ in range(2):
        done = run(tmp_path, "migrate")
        assert done.returncode == 0, done.stderr
        assert "schema is current" in done.stdout
    assert (tmp_path / "var" / "cable-ingest.db").is_file()
