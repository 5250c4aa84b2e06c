"""`make chaos` keeps working: its quickest scenario, end to end (own redis-server, a worker
with the poison plugin, the reconciliation), and its table."""

from __future__ import annotations

import shutil

import pytest

from chaos.__main__ import main
from chaos.scenarios import poison, write_hostile
from tests.services import unavailable


def test_poison_scenario_reconciles_exactly(capsys: pytest.CaptureFixture[str]) -> None:
    """501 cables, one of which kills its process whenever parsed: 500 stored, the poison
    dead-lettered after the redelivery cap, nothing lost or written twice."""
    if shutil.which("redis-server") is None:
        unavailable("redis-server is not installed: the chaos suite runs its own")
    row = poison()
    assert (row.outcome.sent, row.outcome.stored, row.outcome.dead_lettered) == (501, 500, 1)
    assert row.outcome.lost == []
    assert row.outcome.duplicated == 0


def test_table_has_a_row_per_scenario(capsys: pytest.CaptureFixture[str]) -> None:
    """The command prints the header and the scenario's row, and exits 0 when it reconciles."""
    if shutil.which("redis-server") is None:
        unavailable("redis-server is not installed: the chaos suite runs its own")
    assert main(["poison"]) == 0
    lines = capsys.readouterr().out.splitlines()
    assert lines[0].split()[:3] == ["scenario", "sent", "stored"]
    assert lines[1].startswith("poison cable kills its process every time")


def test_hostile_inputs_are_distinct(tmp_path: pytest.TempPathFactory) -> None:
    """Every hostile input differs from every other, so none is skipped as a duplicate."""
    folder = tmp_path / "inputs"  # type: ignore[operator]
    assert write_hostile(folder, 300) == 300
    contents = {path.read_bytes() for path in folder.iterdir()}
    assert len(contents) == 300
