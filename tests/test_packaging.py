"""The built wheel carries the JSON Schemas inside the package, and finds them once installed."""

from __future__ import annotations

import subprocess
import sys
import zipfile
from pathlib import Path

import pytest

ROOT = Path(__file__).resolve().parent.parent


@pytest.fixture(scope="module")
def wheel(tmp_path_factory: pytest.TempPathFactory) -> Path:
    """The project's wheel, built once for the module."""
    dist = tmp_path_factory.mktemp("dist")
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
            str(dist),
            str(ROOT),
        ],
        check=True,
        timeout=300,
        capture_output=True,
    )
    (built,) = dist.glob("cable_ingest-*.whl")
    return built


def test_wheel_ships_schemas_and_console_script(wheel: Path) -> None:
    """The schemas sit under worker/schemas/ and ``cable-ingest`` is declared."""
    archive = zipfile.ZipFile(wheel)
    names = archive.namelist()
    for schema in ("cable", "envelope", "dead-letter"):
        assert f"worker/schemas/{schema}.schema.json" in names
    entry_points = next(n for n in names if n.endswith("entry_points.txt"))
    assert "cable-ingest = worker.cli:main" in archive.read(entry_points).decode()


def test_installed_package_finds_its_schemas(wheel: Path, tmp_path: Path) -> None:
    """Installed from the wheel (not the checkout), the package loads schemas from itself."""
    site = tmp_path / "site"
    subprocess.run(
        [
            sys.executable,
            "-m",
            "pip",
            "install",
            "--no-deps",
            "-q",
            "--target",
            str(site),
            str(wheel),
        ],
        check=True,
        timeout=300,
        capture_output=True,
    )
    probe = (
        "import sys; sys.path.insert(0, sys.argv[1]);"
        "from worker.core.schemas import schema_path; from worker.core.validate import violations;"
        "print(schema_path('cable')); print(len(violations('cable', {})))"
    )
    result = subprocess.run(
        [sys.executable, "-c", probe, str(site)],
        cwd=tmp_path,
        check=True,
        timeout=60,
        capture_output=True,
        text=True,
    )
    path, count = result.stdout.split()
    assert Path(path).is_relative_to(site)
    assert int(count) > 0
