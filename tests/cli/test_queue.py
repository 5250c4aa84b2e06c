"""``cable-ingest enqueue`` and ``migrate`` as real processes on the embedded broker."""

from __future__ import annotations

import csv
import io
import os
import subprocess
import sys
import tarfile
from pathlib import Path

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
    the archive) and stdin: 4 enqueued, 1 duplicate, 1 rejected as empty, in one summary."""
    done = run(tmp_path, "enqueue", *_inputs(tmp_path), stdin=_cable(4), batch_size="3")
    assert done.returncode == 0, done.stderr
    assert "enqueued:          4" in done.stderr
    assert "duplicates:        1" in done.stderr
    assert "rejected:          1" in done.stderr
    assert "rejected (empty): " in done.stderr
    assert "empty.txt" in done.stderr
    queued = sorted(p.name for p in (tmp_path / "var" / "broker" / "queue").iterdir())
    assert len(queued) == 2
    assert all(name.endswith(".intake.msg") for name in queued)


def test_enqueue_strict_fails_on_rejections(tmp_path: Path) -> None:
    """With --strict, any rejected input makes the exit code 1 (the rest is still queued)."""
    empty = tmp_path / "empty.txt"
    empty.write_bytes(b"")
    done = run(tmp_path, "enqueue", "--strict", str(SAMPLE), str(empty))
    assert done.returncode == 1
    assert "enqueued:          1" in done.stderr


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
