"""End-to-end fixtures: a folder of inputs (real cables plus hostile ones) and the command
that runs ``cable-ingest`` as a real process with its own settings."""

from __future__ import annotations

import os
import subprocess
import sys
from collections.abc import Callable
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import orjson
import pytest

ROOT = Path(__file__).resolve().parents[2]
CORPUS = ROOT.parent / "shared" / "cables" / "corpus"
SAMPLE = ROOT / "tests" / "fixtures" / "06ALMATY598.scraped.txt"
RUN_TIMEOUT_S = 600


@dataclass(frozen=True)
class Inputs:
    """Paths to ingest and what the door should make of them."""

    paths: list[str]
    files: int
    enqueued: int  # distinct texts that pass the door
    rejected: dict[str, int]


@pytest.fixture
def inputs(tmp_path: Path) -> Inputs:
    """The dev corpus (or the bundled sample) plus one input of each kind of trouble: empty,
    binary, oversize, a text that is no cable, and a second copy of a cable."""
    bad = tmp_path / "inputs"
    bad.mkdir()
    (bad / "empty.txt").write_bytes(b"  \n")
    (bad / "binary.bin").write_bytes(bytes(range(256)) * 8)
    (bad / "oversize.txt").write_bytes(b"UNCLAS " * 200_000)
    (bad / "not-a-cable.txt").write_text("Dear colleague, the meeting moved to Tuesday.\n")
    (bad / "copy-of-sample.txt").write_bytes(SAMPLE.read_bytes())
    cables = [p for p in CORPUS.iterdir() if p.is_file()] if CORPUS.is_dir() else []
    paths = [str(CORPUS)] if cables else []
    paths += [str(SAMPLE), str(bad)]
    accepted = [p.read_bytes() for p in [*cables, SAMPLE, bad / "copy-of-sample.txt"]]
    accepted.append((bad / "not-a-cable.txt").read_bytes())
    rejected = {"empty": 1, "binary": 1, "oversize": 1}
    return Inputs(paths, len(accepted) + 3, len(set(accepted)), rejected)


Runner = Callable[..., tuple[int, dict[str, Any], str]]


@pytest.fixture
def run_cli(tmp_path: Path) -> Runner:
    """Run ``cable-ingest run --json PATH…`` in a child process; return (code, summary, stderr)."""

    def run(paths: list[str], **settings: str) -> tuple[int, dict[str, Any], str]:
        env = {k: v for k, v in os.environ.items() if not k.startswith("CABLE_INGEST_")}
        env.update(
            {"CABLE_INGEST_VAR_DIR": str(tmp_path / "var"), "CABLE_INGEST_LOG_FORMAT": "json"}
        )
        env.update({f"CABLE_INGEST_{k.upper()}": v for k, v in settings.items()})
        command = [
            sys.executable,
            "-m",
            "worker",
            "run",
            "--json",
            "--stall-timeout",
            "120",
            *paths,
        ]
        done = subprocess.run(
            command, env=env, capture_output=True, timeout=RUN_TIMEOUT_S, check=False, cwd=tmp_path
        )
        stderr = done.stderr.decode(errors="replace")
        summary = orjson.loads(done.stdout) if done.stdout.strip() else {}
        return done.returncode, summary, stderr

    return run
