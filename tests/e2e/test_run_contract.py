"""``cable-ingest run``'s contract with automated callers: exit codes, ``--strict``, the
``--json`` document naming every rejected, duplicate and dead-lettered input, progress while
it waits, and Ctrl-C (a real SIGINT to a real ``run``) with nothing enqueued lost."""

from __future__ import annotations

import fcntl
import os
import pty
import select
import signal
import struct
import subprocess
import sys
import termios
import time
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import orjson
import pytest
from sqlalchemy import create_engine, text

from tests.e2e.conftest import ROOT, SAMPLE, Runner
from tests.services import redis_db_url

TIMEOUT_S = 300


def _env(tmp_path: Path, **settings: str) -> dict[str, str]:
    env = {k: v for k, v in os.environ.items() if not k.startswith("CABLE_INGEST_")}
    env |= {"CABLE_INGEST_VAR_DIR": str(tmp_path / "var"), "CABLE_INGEST_LOG_FORMAT": "json"}
    env |= {f"CABLE_INGEST_{k.upper()}": v for k, v in settings.items()}
    return env


def _cli(tmp_path: Path, *args: str, **settings: str) -> subprocess.CompletedProcess[str]:
    return subprocess.run(
        [sys.executable, "-m", "worker", *args],
        env=_env(tmp_path, **settings),
        capture_output=True,
        text=True,
        timeout=TIMEOUT_S,
        check=False,
        cwd=tmp_path,
    )


@pytest.fixture
def troubled(tmp_path: Path) -> tuple[list[str], Path]:
    """The sample, then a folder with an empty file, a binary one, two distinct texts that
    are no cables and a copy of the sample, then a path that does not exist."""
    folder = tmp_path / "inputs"
    folder.mkdir()
    (folder / "binary.bin").write_bytes(bytes(range(256)) * 8)
    (folder / "copy-of-sample.txt").write_bytes(SAMPLE.read_bytes())
    (folder / "empty.txt").write_bytes(b"  \n")
    (folder / "not-a-cable-1.txt").write_text("Dear colleague, the meeting moved to Tuesday.\n")
    (folder / "not-a-cable-2.txt").write_text("Lunch is at noon; bring the minutes.\n")
    return [str(SAMPLE), str(folder), str(tmp_path / "nowhere")], folder


def test_bad_inputs_exit_65_and_every_one_is_named(
    run_cli: Runner, troubled: tuple[list[str], Path], tmp_path: Path
) -> None:
    """Rejected inputs (empty, binary, missing) and parse failures make ``run`` exit 65; the
    --json document names each rejected input with its reason, the skipped duplicate with
    the input it repeats, and each dead-lettered input with its stage, error and the ``dlq``
    command that shows it (which works); the summary for people names them too, and a
    rejection is one line of the same format as ``enqueue``'s."""
    paths, folder = troubled
    code, document, stderr = run_cli(paths)
    assert code == 65, stderr
    assert (document["version"], document["command"], document["exit_code"]) == (1, "run", 65)
    assert (document["inputs"], document["enqueued"], document["duplicates"]) == (7, 3, 1)
    rejected = {r["input"]: r["reason"] for r in document["rejected_inputs"]}
    assert rejected == {
        str(folder / "binary.bin"): "binary",
        str(folder / "empty.txt"): "empty",
        paths[2]: "missing",
    }
    assert document["duplicate_inputs"] == [
        {"input": str(folder / "copy-of-sample.txt"), "duplicate_of": str(SAMPLE)}
    ]
    assert document["stored"] == {"inserted": 1}
    dead = document["dead_lettered_inputs"]
    assert [d["input"] for d in dead] == [str(folder / f"not-a-cable-{n}.txt") for n in (1, 2)]
    assert {(d["stage"], d["error_class"]) for d in dead} == {("parse", "ParseError")}
    assert all(d["show"] == f"cable-ingest dlq show {d['dead_letter_id']}" for d in dead)
    assert document["dead_lettered"] == {"parse: ParseError": 2}
    assert document["dlq_list"].startswith("cable-ingest dlq list --since ")
    assert document["missing"] == []
    assert document["finish"] is None
    shown = _cli(tmp_path, "dlq", "show", dead[0]["dead_letter_id"])
    assert shown.returncode == 0, shown.stderr
    assert orjson.loads(shown.stdout)["message_id"] == dead[0]["message_id"]
    assert f"rejected (empty): {folder / 'empty.txt'}: input is empty" in stderr
    assert f"rejected (missing): {paths[2]}: no such file" in stderr
    assert f"duplicate: {folder / 'copy-of-sample.txt'}: same text as {SAMPLE}" in stderr
    assert "outcomes: 3/3 (stored 1, dead-lettered 2, waiting 0)" in stderr

    again = _cli(tmp_path, "run", *paths)  # the same, for people
    assert again.returncode == 65, again.stderr
    for letter in dead:
        line = f"  {letter['input']}: parse ParseError: not a cable"
        assert line in again.stdout
        assert f"(cable-ingest dlq show {letter['dead_letter_id']})" in again.stdout
    assert f"rejected (empty): {folder / 'empty.txt'}: input is empty" in again.stderr


def test_all_accepted_and_stored_exits_0(run_cli: Runner) -> None:
    """Every input stored: exit 0 and nothing named."""
    code, document, stderr = run_cli([str(SAMPLE)])
    assert code == 0, stderr
    assert document["exit_code"] == 0
    assert document["rejected_inputs"] == document["dead_lettered_inputs"] == []


def test_strict_stops_at_the_first_rejected_input(tmp_path: Path) -> None:
    """``run --strict``: the first rejected input stops the reading; what was enqueued before
    it is still waited for and stored, nothing after it is read; exit 65."""
    folder = tmp_path / "inputs"
    folder.mkdir()
    (folder / "a.txt").write_bytes(SAMPLE.read_bytes())
    (folder / "b-empty.txt").write_bytes(b"")
    (folder / "c.txt").write_bytes(SAMPLE.read_bytes().replace(b"000598", b"000599", 1))
    done = _cli(tmp_path, "run", "--strict", "--json", str(folder))
    assert done.returncode == 65, done.stderr
    document = orjson.loads(done.stdout)
    assert (document["stopped"], document["exit_code"]) == ("strict", 65)
    assert (document["inputs"], document["enqueued"]) == (2, 1)
    assert document["stored"] == {"inserted": 1}
    assert [r["input"] for r in document["rejected_inputs"]] == [str(folder / "b-empty.txt")]


def test_progress_is_a_live_line_on_a_terminal(tmp_path: Path) -> None:
    """With stderr on a terminal, ``run`` shows a live line while it waits for outcomes:
    how many are stored, dead-lettered and waiting."""
    leader, follower = pty.openpty()
    fcntl.ioctl(follower, termios.TIOCSWINSZ, struct.pack("HHHH", 24, 100, 0, 0))
    process = subprocess.Popen(
        [sys.executable, "-m", "worker", "run", str(SAMPLE)],
        env=_env(tmp_path),
        stdout=subprocess.DEVNULL,
        stderr=follower,
        cwd=tmp_path,
    )
    os.close(follower)
    shown = b""
    try:
        while True:
            ready, _, _ = select.select([leader], [], [], TIMEOUT_S)
            if not ready:
                break
            try:
                chunk = os.read(leader, 4096)
            except OSError:  # the terminal closed: every writer has exited
                break
            if not chunk:
                break
            shown += chunk
    finally:
        os.close(leader)
        process.wait(TIMEOUT_S)
    assert process.returncode == 0, shown.decode(errors="replace")
    screen = shown.decode(errors="replace")
    assert "outcomes:" in screen
    assert "stored 1, dead-lettered 0, waiting 0" in screen
    assert "\r" in screen  # redrawn in place


def _cables(tmp_path: Path, count: int) -> Path:
    """``count`` distinct cables renumbered from the sample (``cable-ingest generate``)."""
    out = tmp_path / "cables"
    done = _cli(tmp_path, "generate", str(out), "--count", str(count), "--from", str(SAMPLE.parent))
    assert done.returncode == 0, done.stderr
    return out


@pytest.fixture
def broker(request: pytest.FixtureRequest) -> Iterator[str]:
    """The embedded broker, or a fresh Redis database."""
    if request.param == "redis":
        with redis_db_url() as url:
            yield url
        return
    yield "filesystem://localhost/"


@pytest.mark.timeout(TIMEOUT_S)
@pytest.mark.parametrize(
    ("broker", "presses"), [("filesystem", 1), ("redis", 2)], indirect=["broker"]
)
def test_ctrl_c_reports_what_is_left_and_nothing_is_lost(
    tmp_path: Path, broker: str, presses: int
) -> None:
    """SIGINT to ``run`` while it waits for outcomes: it stops its workers (warmly; a second
    Ctrl-C at once), prints the summary so far, what is still queued and how to finish it,
    and exits 130. A worker started afterwards then stores every enqueued cable."""
    folder = _cables(tmp_path, 1500)
    settings = {"broker_url": broker, "batch_size": "5"}
    command = [sys.executable, "-m", "worker", "run", "--json", "-c", "1", str(folder)]
    process = subprocess.Popen(
        command,
        env=_env(tmp_path, **settings),
        stdout=subprocess.PIPE,
        stderr=subprocess.PIPE,
        cwd=tmp_path,
    )
    assert process.stderr is not None
    seen = b""
    while b"outcomes: " not in seen and process.poll() is None:
        seen += process.stderr.readline()  # the first line once everything is enqueued
    process.send_signal(signal.SIGINT)
    if presses > 1:  # the next press as soon as the warm stop has begun (it takes 1-5 s)
        while b"interrupted: stopping the workers" not in seen and process.poll() is None:
            seen += process.stderr.readline()
        for _ in range(presses - 1):
            process.send_signal(signal.SIGINT)
    stdout, stderr = process.communicate(timeout=TIMEOUT_S)
    stderr = seen + stderr
    assert process.returncode == 130, stderr.decode(errors="replace")
    document: dict[str, Any] = orjson.loads(stdout)
    assert (document["stopped"], document["exit_code"]) == ("interrupted", 130)
    assert document["enqueued"] == 1500
    settled = sum(document["stored"].values())
    assert document["missing"], "the SIGINT came too late to leave anything queued"
    assert settled + len(document["missing"]) == 1500
    assert document["queued"]["intake_waiting"] * 5 >= len(document["missing"])
    assert document["finish"] == "cable-ingest worker"
    assert b"interrupted: stopping the workers" in stderr
    if presses > 1:
        assert b"stopping the workers at once" in stderr

    finisher = subprocess.Popen(
        [sys.executable, "-m", "worker", "worker", "-c", "1"],
        env=_env(tmp_path, **settings),
        stdout=subprocess.DEVNULL,
        stderr=subprocess.DEVNULL,
        cwd=tmp_path,
    )
    missing = {m["message_id"] for m in document["missing"]}
    try:
        deadline = time.monotonic() + TIMEOUT_S - 60
        while time.monotonic() < deadline and _stored(tmp_path, missing) < len(missing):
            time.sleep(0.5)
    finally:
        finisher.send_signal(signal.SIGTERM)
        finisher.wait(60)
    assert _stored(tmp_path, missing) == len(missing)
    assert _stored(tmp_path, None) == 1500


def _stored(tmp_path: Path, message_ids: set[str] | None) -> int:
    """How many of ``message_ids`` (None: of all) hold a storage receipt."""
    engine = create_engine(f"sqlite:///{tmp_path / 'var' / 'cable-ingest.db'}")
    try:
        with engine.connect() as conn:
            ids = set(conn.execute(text("SELECT message_id FROM receipts")).scalars())
    finally:
        engine.dispose()
    return len(ids) if message_ids is None else len(ids & message_ids)


def test_readme_documents_the_contract() -> None:
    """The README has the exit-code table and the --json shape under the command line."""
    readme = (ROOT / "README.md").read_text(encoding="utf-8")
    section = readme.split("## The command line", 1)[1].split("\n## ", 1)[0]
    for code in ("| 0 ", "| 65 ", "| 69 ", "| 75 ", "| 130 "):
        assert code in section, f"no exit code row {code.strip()}"
    for key in ("dead_lettered_inputs", "rejected_inputs", "duplicate_inputs", '"version"'):
        assert key in section, f"the --json shape lacks {key}"


@pytest.mark.timeout(TIMEOUT_S)
def test_a_late_ctrl_c_does_not_cut_the_json_summary(tmp_path: Path) -> None:
    """A SIGINT that lands while ``enqueue --json`` writes its summary into a full pipe (the
    reader is slow) is ignored: the document arrives whole. Before, the write broke off at the
    pipe's 64 KiB and the command exited 130 with half a document."""
    folder = tmp_path / "copies"
    folder.mkdir()
    text = SAMPLE.read_bytes()
    for number in range(3000):  # one cable, 2,999 duplicates: each is named in the summary
        (folder / f"copy-{number:05d}-of-the-same-sample-cable.txt").write_bytes(text)
    process = subprocess.Popen(
        [sys.executable, "-m", "worker", "enqueue", "--json", str(folder)],
        env=_env(tmp_path),
        stdout=subprocess.PIPE,
        stderr=subprocess.PIPE,
        cwd=tmp_path,
    )
    assert process.stderr is not None
    seen = b""
    while b"parse failures:" not in seen and process.poll() is None:
        seen += process.stderr.readline()  # the last stderr line before the JSON document
    time.sleep(1.0)  # the document fills the pipe nobody reads yet; the write waits
    process.send_signal(signal.SIGINT)
    stdout, stderr = process.communicate(timeout=TIMEOUT_S)
    assert process.returncode == 0, (seen + stderr).decode(errors="replace")
    document = orjson.loads(stdout)
    assert (document["command"], document["enqueued"]) == ("enqueue", 1)
    assert document["duplicates"] == 2999
    assert len(document["duplicate_inputs"]) == 2999
    assert len(stdout) > 65536, "the document must not fit the pipe for this test to prove it"
