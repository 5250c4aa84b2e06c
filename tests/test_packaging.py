"""The built wheel carries the JSON Schemas inside the package."""

from __future__ import annotations

import subprocess
import sys
import zipfile
from pathlib import Path

ROOT = Path(__file__).resolve().parent.parent


def test_wheel_ships_schemas_and_console_script(tmp_path: Path) -> None:
    """``pip wheel`` puts schemas under worker/schemas/ and declares ``cable-ingest``."""
    subprocess.run(
        [
            sys.executable,
            "-m",
            "pip",
            "wheel",
            "--no-deps",
            "--no-build-isolation",
            "-q",
            "-w",
            str(tmp_path),
            str(ROOT),
        ],
        check=True,
        timeout=300,
        capture_output=True,
    )
    (wheel,) = tmp_path.glob("cable_ingest-*.whl")
    names = zipfile.ZipFile(wheel).namelist()
    for schema in ("cable", "envelope", "dead-letter"):
        assert f"worker/schemas/{schema}.schema.json" in names
    entry_points = next(n for n in names if n.endswith("entry_points.txt"))
    text = zipfile.ZipFile(wheel).read(entry_points).decode()
    assert "cable-ingest = worker.cli:main" in text
