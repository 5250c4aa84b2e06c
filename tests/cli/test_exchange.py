"""``cable-ingest export`` and ``import``, run in-process on SQLite files under ``tmp_path``, with
the broker pointed at a port nothing listens on (neither command needs it)."""

from __future__ import annotations

import gzip
import hashlib
import io
import os
import subprocess
import sys
from pathlib import Path

import orjson
import pytest
import zstandard

from tests.services import closed_port
from worker.cli import main
from worker.parse import parse_cable
from worker.storage import CableStore, upgrade
from worker.storage.provenance import Arrival

SAMPLE = Path(__file__).resolve().parents[1] / "fixtures" / "06ALMATY598.scraped.txt"


@pytest.fixture
def source(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> str:
    """A database holding the sample cable with its original and arrival, named by the
    settings; the broker URL leads nowhere."""
    for name in list(os.environ):
        if name.startswith("CABLE_INGEST_"):
            monkeypatch.delenv(name)
    url = f"sqlite:///{tmp_path / 'source.db'}"
    monkeypatch.setenv("CABLE_INGEST_DATABASE_URL", url)
    monkeypatch.setenv("CABLE_INGEST_BROKER_URL", f"redis://127.0.0.1:{closed_port()}/0")
    upgrade(url)
    text = SAMPLE.read_bytes().decode("utf-8")
    arrival = Arrival("m-1", text, hashlib.sha256(text.encode()).hexdigest(), "feed-a")
    store = CableStore(url)
    try:
        store.write_batch([parse_cable(text)], arrivals=[arrival])
    finally:
        store.close()
    return url


def _unzstd(data: bytes) -> bytes:
    return zstandard.ZstdDecompressor().stream_reader(io.BytesIO(data)).read()


def _use(monkeypatch: pytest.MonkeyPatch, url: str) -> None:
    monkeypatch.setenv("CABLE_INGEST_DATABASE_URL", url)


def test_export_writes_plain_zstd_and_gzip_by_suffix(
    source: str, tmp_path: Path, capsys: pytest.CaptureFixture[str]
) -> None:
    """``-o`` with .zst or .gz compresses (gzip without name or time); each file holds the same
    lines, and stdout too."""
    plain = tmp_path / "cables.jsonl"
    assert main(["export", "-o", str(plain), "--originals", "--provenance"]) == 0
    assert "exported 1 cables (1 revisions), 1 originals and 1 arrivals" in capsys.readouterr().err
    assert main(["export", "-o", str(tmp_path / "c.jsonl.zst"), "--originals", "--provenance"]) == 0
    assert main(["export", "-o", str(tmp_path / "c.jsonl.gz"), "--originals", "--provenance"]) == 0
    assert main(["export", "--originals", "--provenance"]) == 0
    stdout = capsys.readouterr().out
    data = plain.read_bytes()
    assert _unzstd((tmp_path / "c.jsonl.zst").read_bytes()) == data
    gzipped = (tmp_path / "c.jsonl.gz").read_bytes()
    assert gzip.decompress(gzipped) == data
    assert gzipped[3:8] == bytes(5)  # no file name, mtime 0: the same export, the same bytes
    assert stdout.encode() == data
    kinds = [orjson.loads(line)["type"] for line in data.splitlines()]
    assert kinds == ["header", "revision", "original", "arrival", "end"]
    assert not list(tmp_path.glob(".*.partial"))


@pytest.mark.parametrize("name", ["c.jsonl", "c.jsonl.zst", "c.jsonl.gz"])
def test_import_restores_an_export_that_search_then_finds(
    name: str,
    source: str,
    tmp_path: Path,
    monkeypatch: pytest.MonkeyPatch,
    capsys: pytest.CaptureFixture[str],
) -> None:
    """An export, plain or compressed, imports into a new database where search and
    show --original work, and which exports to the same bytes."""
    path = tmp_path / name
    assert main(["export", "-o", str(path), "--originals", "--provenance"]) == 0
    _use(monkeypatch, f"sqlite:///{tmp_path / 'restored' / 'cables.db'}")
    assert main(["import", str(path)]) == 0
    assert "imported 1 cables (1 revisions), 1 originals and 1 arrivals" in capsys.readouterr().err
    assert main(["search", "refoulement", "--json"]) == 0
    assert orjson.loads(capsys.readouterr().out)["reference_id"] == "06ALMATY598"
    assert main(["show", "06ALMATY598", "--original"]) == 0
    assert capsys.readouterr().out.encode() == SAMPLE.read_bytes()
    assert main(["export", "-o", str(tmp_path / "again.jsonl"), "--originals", "--provenance"]) == 0
    first = path.read_bytes()
    if name.endswith(".zst"):
        first = _unzstd(first)
    elif name.endswith(".gz"):
        first = gzip.decompress(first)
    assert (tmp_path / "again.jsonl").read_bytes() == first


def test_import_into_a_database_with_cables_fails_in_one_line(
    source: str, tmp_path: Path, capsys: pytest.CaptureFixture[str]
) -> None:
    """Importing into the database exported from is refused: exit 1, one line on stderr."""
    path = tmp_path / "c.jsonl"
    assert main(["export", "-o", str(path)]) == 0
    capsys.readouterr()
    assert main(["import", str(path)]) == 1
    err = capsys.readouterr().err
    assert err.startswith("cable-ingest: the database sqlite:///")
    assert "is not empty (cables, originals, arrivals hold rows)" in err
    assert err.count("\n") == 1


def test_a_truncated_compressed_file_is_refused_and_nothing_kept(
    source: str, tmp_path: Path, monkeypatch: pytest.MonkeyPatch, capsys: pytest.CaptureFixture[str]
) -> None:
    """A .zst cut short fails with the last line read named, and the target stays empty."""
    path = tmp_path / "c.jsonl.zst"
    assert main(["export", "-o", str(path), "--originals"]) == 0
    data = path.read_bytes()
    path.write_bytes(data[: len(data) // 2])
    target = f"sqlite:///{tmp_path / 'target.db'}"
    _use(monkeypatch, target)
    capsys.readouterr()
    assert main(["import", str(path)]) == 1
    err = capsys.readouterr().err
    assert err.startswith("cable-ingest: ")
    assert "line" in err
    assert err.count("\n") == 1
    store = CableStore(target)
    try:
        assert store.count() == 0
    finally:
        store.close()


def test_export_of_a_missing_database_creates_nothing(
    source: str, tmp_path: Path, monkeypatch: pytest.MonkeyPatch, capsys: pytest.CaptureFixture[str]
) -> None:
    """Exporting a database that is not there fails; neither it nor the output file appears."""
    _use(monkeypatch, f"sqlite:///{tmp_path / 'var' / 'none.db'}")
    out = tmp_path / "c.jsonl"
    assert main(["export", "-o", str(out)]) == 1
    assert "nothing to export" in capsys.readouterr().err
    assert not out.exists()
    assert not (tmp_path / "var").exists()
    assert not list(tmp_path.glob(".*.partial"))


def test_compress_option_and_suffix_must_agree(
    source: str, tmp_path: Path, capsys: pytest.CaptureFixture[str]
) -> None:
    """``--compress gzip -o FILE.zst`` is refused before anything is written."""
    assert main(["export", "--compress", "gzip", "-o", str(tmp_path / "c.zst")]) == 1
    assert "--compress gzip, but" in capsys.readouterr().err
    assert not (tmp_path / "c.zst").exists()


def test_export_to_a_closed_pipe_fails_in_one_line(source: str) -> None:
    """``export | head -c 100``: exit 1 and one line saying the output has no end line."""
    text = SAMPLE.read_bytes().decode("utf-8")
    record = parse_cable(text)
    store = CableStore(source)
    bodies = [f"{text}\n{serial}\n" for serial in range(100)]
    try:  # about 2 MB of export: far more than a pipe holds, so the writer meets the close
        store.write_batch(
            [{**record, "reference_id": f"06ALMATY{n}"} for n in range(100)],
            arrivals=[
                Arrival(f"m-{n}", body, hashlib.sha256(body.encode()).hexdigest())
                for n, body in enumerate(bodies)
            ],
        )
    finally:
        store.close()
    with subprocess.Popen(
        [sys.executable, "-m", "worker", "export", "--originals"],
        stdout=subprocess.PIPE,
        stderr=subprocess.PIPE,
    ) as child:
        assert child.stdout is not None
        assert child.stderr is not None
        assert child.stdout.read(100).startswith(b'{"format":"cable-ingest-export"')
        child.stdout.close()
        err = child.stderr.read().decode()
    assert child.returncode == 1
    assert err == "cable-ingest: stdout was closed before the export's end line\n"
