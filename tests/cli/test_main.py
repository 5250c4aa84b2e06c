"""The ``cable-ingest`` command line, run as a real process."""

from __future__ import annotations

import subprocess
import sys
from pathlib import Path

import orjson

FIXTURES = Path(__file__).resolve().parents[1] / "fixtures"
SAMPLE = FIXTURES / "06ALMATY598.scraped.txt"


def run(*args: str, stdin: bytes = b"") -> subprocess.CompletedProcess[bytes]:
    """Run ``python -m worker ARGS`` and capture its output."""
    return subprocess.run(
        [sys.executable, "-m", "worker", *args],
        input=stdin,
        capture_output=True,
        timeout=60,
        check=False,
    )


def test_parse_prints_one_record_per_line() -> None:
    """``parse FILE`` prints one JSON record and exits 0."""
    result = run("parse", str(SAMPLE))
    assert result.returncode == 0, result.stderr
    lines = result.stdout.splitlines()
    assert len(lines) == 1
    record = orjson.loads(lines[0])
    assert record["reference_id"] == "06ALMATY598"
    assert record["source_file"] == str(SAMPLE)


def test_parse_pretty_and_stdin() -> None:
    """``parse - --pretty`` reads stdin and indents the JSON."""
    result = run("parse", "-", "--pretty", stdin=SAMPLE.read_bytes())
    assert result.returncode == 0, result.stderr
    assert result.stdout.startswith(b"{\n  ")
    assert "source_file" not in orjson.loads(result.stdout)


def test_parse_directory_with_a_bad_file(tmp_path: Path) -> None:
    """A directory is walked; a bad input is reported on stderr, the rest still printed, exit 1."""
    (tmp_path / "good.txt").write_bytes(SAMPLE.read_bytes())
    (tmp_path / "empty.txt").write_bytes(b"")
    (tmp_path / "binary.bin").write_bytes(bytes(range(256)) * 40)
    result = run("parse", str(tmp_path))
    assert result.returncode == 1
    assert len(result.stdout.splitlines()) == 1
    errors = result.stderr.decode()
    assert "empty.txt: ParseError: empty input" in errors
    assert "binary.bin: ParseError: binary data" in errors


def test_validate_accepts_parse_output_and_rejects_a_broken_record(tmp_path: Path) -> None:
    """``validate`` passes what ``parse`` wrote and names the JSON pointer of a defect."""
    good = tmp_path / "good.jsonl"
    good.write_bytes(run("parse", str(SAMPLE)).stdout)
    assert run("validate", str(good)).returncode == 0
    record = orjson.loads(good.read_bytes())
    record["tags"][0]["kind"] = "weather"
    bad = tmp_path / "bad.json"
    bad.write_bytes(orjson.dumps(record))
    result = run("validate", str(bad))
    assert result.returncode == 1
    assert "/tags/0/kind" in result.stderr.decode()


def test_missing_file_is_reported() -> None:
    """A path that does not exist is an error on stderr, not a traceback."""
    result = run("parse", "no-such-file.txt")
    assert result.returncode == 1
    assert b"no-such-file.txt" in result.stderr
    assert b"Traceback" not in result.stderr


def test_unreadable_inputs_are_one_line_naming_path_and_problem(tmp_path: Path) -> None:
    """``parse`` and ``validate`` of a path that is not there: the path and the operating
    system's reason, not a FileNotFoundError repr; the other inputs are still done."""
    missing = tmp_path / "nonexistent"
    parsed = run("parse", str(missing), str(SAMPLE))
    assert parsed.returncode == 1
    assert parsed.stderr.decode().splitlines() == [
        f"{missing}: cannot read: No such file or directory"
    ]
    assert len(parsed.stdout.splitlines()) == 1
    validated = run("validate", str(missing))
    assert validated.returncode == 1
    assert validated.stderr.decode().splitlines() == [
        f"{missing}: cannot read: No such file or directory"
    ]


def test_an_unreadable_configuration_is_one_line(tmp_path: Path) -> None:
    """``--config`` naming nothing: the path and the reason, without Python's error repr."""
    missing = tmp_path / "sinks.toml"
    result = run("worker", "--config", str(missing))
    assert result.returncode == 1
    assert result.stderr.decode().splitlines() == [
        f"cable-ingest: cannot read the configuration {missing}: No such file or directory"
    ]
