"""A broker or a database that does not answer, and databases a reader must not change: every
command run as a real process against a real port nobody listens on, a real redis-server that
is killed mid-enqueue, real SQLite files and PostgreSQL schemas."""

from __future__ import annotations

import io
import os
import shutil
import subprocess
import sys
import tarfile
import time
from pathlib import Path

import pytest
import redis
from sqlalchemy import create_engine, inspect, text

from chaos.harness import RedisServer
from tests.services import closed_port, postgres_schema_url, unavailable
from worker.storage import upgrade
from worker.storage.migrations import latest_revision

SAMPLE = Path(__file__).resolve().parents[1] / "fixtures" / "06ALMATY598.scraped.txt"
WAIT_S = "2"  # CABLE_INGEST_CONNECT_WAIT_S: pauses of 1 s and 1 s, three attempts
TIMEOUT_S = 90  # the old code hung for minutes: the test only needs to see it return


def _env(var: Path, **settings: str) -> dict[str, str]:
    environ = {k: v for k, v in os.environ.items() if not k.startswith("CABLE_INGEST_")}
    environ["CABLE_INGEST_VAR_DIR"] = str(var)
    environ["CABLE_INGEST_CONNECT_WAIT_S"] = WAIT_S
    environ.update({f"CABLE_INGEST_{k.upper()}": v for k, v in settings.items()})
    return environ


def _cli(var: Path, *args: str, **settings: str) -> subprocess.CompletedProcess[str]:
    return subprocess.run(
        [sys.executable, "-m", "worker", *args],
        capture_output=True,
        text=True,
        timeout=TIMEOUT_S,
        check=False,
        env=_env(var, **settings),
        stdin=subprocess.DEVNULL,
    )


def _assert_waited_then_69(done: subprocess.CompletedProcess[str], problem: str) -> None:
    """Retry lines naming ``problem``, then one final line, exit 69, no traceback."""
    assert "Traceback" not in done.stderr, done.stderr
    assert done.returncode == 69, done.stderr
    lines = [line for line in done.stderr.splitlines() if problem in line]
    assert [line.rpartition(";")[2] for line in lines] == [
        " retrying in 1 s (1/3)",
        " retrying in 1 s (2/3)",
        " gave up after 3 attempts in 2 s (CABLE_INGEST_CONNECT_WAIT_S=2)",
    ], done.stderr
    assert all(line.startswith(f"cable-ingest: {problem}") for line in lines)
    assert done.stderr.rstrip("\n").endswith(lines[-1])


def _cable(n: int) -> bytes:
    return SAMPLE.read_bytes().replace(b"000598", f"{n + 1000:06d}".encode(), 1)


@pytest.mark.parametrize(
    "args",
    [
        ("enqueue", str(SAMPLE)),
        ("run", str(SAMPLE)),
        ("status",),
        ("worker", "-c", "1"),
    ],
    ids=["enqueue", "run", "status", "worker"],
)
def test_a_broker_that_does_not_answer_is_retried_then_exit_69(
    tmp_path: Path, args: tuple[str, ...]
) -> None:
    """Redis on a closed port: one line per attempt, a last line, exit 69, within the wait
    (the old code: enqueue and run silent for 220 s, then a 100-line traceback)."""
    url = f"redis://:secret@127.0.0.1:{closed_port()}/0"
    done = _cli(tmp_path / "var", *args, broker_url=url)
    shown = url.replace(":secret@", ":***@")
    _assert_waited_then_69(done, f"broker {shown} does not answer (Connection refused)")
    assert "secret" not in done.stderr


@pytest.mark.parametrize(
    "args",
    [
        ("show", "06ALMATY598"),
        ("search", "kazakhstan"),
        ("dlq", "list"),
        ("dlq", "show", "dl-1"),
        ("migrate",),
        ("export",),
        ("worker", "-c", "1"),
        ("run", str(SAMPLE)),
    ],
    ids=["show", "search", "dlq-list", "dlq-show", "migrate", "export", "worker", "run"],
)
def test_a_database_that_does_not_answer_is_retried_then_exit_69(
    tmp_path: Path, args: tuple[str, ...]
) -> None:
    """PostgreSQL on a closed port: the same retries and exit 69 (the old code: one line about
    a failed schema migration, even for show, and exit 1)."""
    url = f"postgresql+psycopg://cables:secret@127.0.0.1:{closed_port()}/cables"
    done = _cli(tmp_path / "var", *args, database_url=url)
    shown = url.replace(":secret@", ":***@")
    _assert_waited_then_69(done, f"database {shown} does not answer (Connection refused)")
    assert "secret" not in done.stderr
    assert "migrat" not in done.stderr


@pytest.mark.parametrize("args", [("migrate",), ("show", "06ALMATY598")], ids=["migrate", "show"])
def test_a_sqlite_folder_that_cannot_be_made_is_retried_then_exit_69(
    tmp_path: Path, args: tuple[str, ...]
) -> None:
    """A file where the SQLite folder should be: the writer cannot create it, the reader finds
    that it can never be there; both retry, then exit 69."""
    blocker = tmp_path / "a-file"
    blocker.write_text("not a folder")
    url = f"sqlite:///{blocker / 'db' / 'cables.db'}"
    done = _cli(tmp_path / "var", *args, database_url=url)
    _assert_waited_then_69(done, f"database {url}")


def test_wait_zero_fails_at_once_in_one_line(tmp_path: Path) -> None:
    """CONNECT_WAIT_S=0: one attempt, one line, exit 69."""
    url = f"redis://127.0.0.1:{closed_port()}/0"
    done = _cli(tmp_path / "var", "enqueue", str(SAMPLE), broker_url=url, connect_wait_s="0")
    assert done.returncode == 69
    assert done.stderr.splitlines() == [
        f"cable-ingest: broker {url} does not answer (Connection refused);"
        " not retried (CABLE_INGEST_CONNECT_WAIT_S=0)"
    ]


def test_a_broker_killed_mid_enqueue_ends_in_69_naming_what_was_sent(tmp_path: Path) -> None:
    """A redis-server of the test's own answers the first two batches (10 cables), then is
    killed while ``enqueue`` reads a tar archive from a pipe: retry lines, exit 69, and a line
    saying that 10 inputs were enqueued, up to which one, and none after (the old code:
    minutes of silence, then a traceback)."""
    if shutil.which("redis-server") is None:
        unavailable("redis-server is not installed: the test runs its own")
    first = io.BytesIO()
    with tarfile.open(fileobj=first, mode="w") as archive:
        for n in range(10):
            _add(archive, f"cable-{n:02d}.txt", _cable(n))
        # a hidden member (skipped by intake) that ends the part on a whole tar record, so
        # that the streaming reader has read all ten cables before it waits for more
        filler = (-(first.tell() + tarfile.BLOCKSIZE)) % tarfile.RECORDSIZE
        _add(archive, ".filler", b"\0" * filler)
        end = first.tell()  # what closing adds (the end-of-archive blocks) is not sent
    head = first.getvalue()[:end]
    assert len(head) % tarfile.RECORDSIZE == 0
    rest = io.BytesIO()
    with tarfile.open(fileobj=rest, mode="w") as archive:
        for n in range(10, 20):
            _add(archive, f"cable-{n:02d}.txt", _cable(n))
    fifo = tmp_path / "cables.tar"
    os.mkfifo(fifo)
    server = RedisServer(tmp_path)
    server.start()
    try:
        env = _env(tmp_path / "var", broker_url=server.url, batch_size="5")
        command = [sys.executable, "-m", "worker", "enqueue", str(fifo)]
        with subprocess.Popen(
            command, env=env, stdout=subprocess.PIPE, stderr=subprocess.PIPE, text=True
        ) as process:
            with fifo.open("wb") as pipe:
                pipe.write(head)
                pipe.flush()
                client = redis.Redis(port=server.port, socket_connect_timeout=1)
                deadline = time.monotonic() + 60
                while client.llen("intake") < 2 and time.monotonic() < deadline:
                    time.sleep(0.05)
                assert client.llen("intake") == 2
                assert server.process is not None
                server.process.kill()
                server.process.wait(30)
                pipe.write(rest.getvalue())
            _out, err = process.communicate(timeout=TIMEOUT_S)
    finally:
        server.stop()
    assert "Traceback" not in err, err
    assert process.returncode == 69, err
    assert "retrying in 1 s (1/3)" in err
    last = err.strip().splitlines()[-1]
    assert last.startswith(f"cable-ingest: broker {server.url} does not answer")
    assert last.endswith(
        f". 10 inputs were enqueued before (the last: {fifo}:cable-09.txt); none after that was"
    )


def _add(archive: tarfile.TarFile, name: str, data: bytes) -> None:
    member = tarfile.TarInfo(name)
    member.size = len(data)
    archive.addfile(member, io.BytesIO(data))


def test_read_commands_create_no_sqlite_file(tmp_path: Path) -> None:
    """show, search, dlq list|show, status, export and tokens list on a machine where nothing
    was stored: the truthful answer, and neither the SQLite file nor its folder appears (the
    old code migrated, creating both)."""
    var = tmp_path / "var"
    database = f"sqlite:///{var / 'cable-ingest.db'}"
    hint = f"the database {database} has no tables yet (`cable-ingest migrate` makes them"
    show = _cli(var, "show", "06ALMATY598")
    assert (show.returncode, show.stdout) == (1, "")
    assert show.stderr.startswith(f"cable-ingest show: no cable 06ALMATY598: {hint}")
    search = _cli(var, "search", "kazakhstan")
    assert (search.returncode, search.stdout) == (0, "")
    assert search.stderr.startswith(f"no cables stored yet: {hint}")
    listed = _cli(var, "dlq", "list")
    assert (listed.returncode, listed.stdout) == (0, "")
    assert listed.stderr.startswith(f"0 dead letters: {hint}")
    shown = _cli(var, "dlq", "show", "dl-1")
    assert shown.returncode == 1
    assert shown.stderr.startswith(f"cable-ingest dlq show: no dead letter dl-1: {hint}")
    tokens = _cli(var, "tokens", "list")
    assert (tokens.returncode, tokens.stdout) == (0, "")
    status = _cli(var, "status")
    assert status.returncode == 0, status.stderr
    exported = _cli(var, "export")
    assert exported.returncode == 1
    assert "nothing to export" in exported.stderr
    for done in (show, search, listed, shown, tokens, status, exported):
        assert "Traceback" not in done.stderr
    assert not var.exists()


def test_read_commands_create_no_tables_in_postgresql(tmp_path: Path) -> None:
    """The same on an empty PostgreSQL schema: it stays empty (no alembic_version either)."""
    with postgres_schema_url() as url:
        var = tmp_path / "var"
        for args in (("show", "X"), ("search", "x"), ("dlq", "list"), ("tokens", "list")):
            done = _cli(var, *args, database_url=url)
            assert done.returncode in (0, 1), done.stderr
            assert "has no tables yet" in done.stderr
        engine = create_engine(url)
        try:
            with engine.connect() as conn:
                assert inspect(conn).get_table_names() == []
        finally:
            engine.dispose()


def test_an_older_schema_is_named_and_left_alone(tmp_path: Path) -> None:
    """Tables at an older storage revision: one line asking for `cable-ingest migrate`, exit
    1, and the database stays at that revision; a writer (dlq purge) migrates it."""
    var = tmp_path / "var"
    url = f"sqlite:///{tmp_path / 'old.db'}"
    upgrade(url, "0003")
    for args in (("show", "06ALMATY598"), ("search", "x"), ("dlq", "list")):
        done = _cli(var, *args, database_url=url)
        assert done.returncode == 1, done.stderr
        assert done.stderr.splitlines() == [
            f"cable-ingest: the database {url} is at storage revision 0003, older than this"
            f" cable-ingest's {latest_revision()}: run `cable-ingest migrate`"
        ]
    assert _revision(url) == "0003"
    purged = _cli(var, "dlq", "purge", "--yes", database_url=url)
    assert purged.returncode == 0, purged.stderr
    assert _revision(url) == latest_revision()


def _revision(url: str) -> str:
    engine = create_engine(url)
    try:
        with engine.connect() as conn:
            return str(conn.execute(text("SELECT version_num FROM alembic_version")).scalar_one())
    finally:
        engine.dispose()


def test_a_file_that_is_not_a_database_is_one_line(tmp_path: Path) -> None:
    """A reader opening a SQLite path that holds something else: one line, exit 1, no
    traceback, and the file left as it was."""
    junk = tmp_path / "cables.db"
    junk.write_bytes(b"not a database, not even close\n" * 100)
    done = _cli(tmp_path / "var", "show", "06ALMATY598", database_url=f"sqlite:///{junk}")
    assert done.returncode == 1
    assert done.stderr.splitlines() == [
        f"cable-ingest: reading the tables in sqlite:///{junk} failed:"
        " DatabaseError: file is not a database"
    ]
    assert junk.read_bytes() == b"not a database, not even close\n" * 100
