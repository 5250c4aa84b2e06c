"""`make chaos`'s reparse scenario keeps working, on a small plan: a worker killed twice during
the reparse, every cable settled once, reconciled exactly."""

from __future__ import annotations

import shutil

import pytest

from chaos.reparse import Plan, killed_during_reparse
from chaos.scenarios import cables
from tests.services import unavailable


@pytest.mark.timeout(600)
def test_reparse_with_a_worker_killed_twice_reconciles_exactly() -> None:
    """400 cables (3 broken, 50 rewritten, 50 of an older parser) in batches of 20: 397
    unchanged or revised, 3 dead letters, nothing lost, no revision or dead letter twice."""
    if shutil.which("redis-server") is None:
        unavailable("redis-server is not installed: the chaos suite runs its own")
    plan = Plan(cables=400, broken=3, rewritten=50, aged=50, batch_size=20)
    name, outcome, _ = killed_during_reparse(cables(plan.cables), plan)
    assert name == "worker killed x2 during 400-cable reparse"
    assert (outcome.sent, outcome.stored, outcome.dead_lettered) == (400, 397, 3)
    assert outcome.lost == []
    assert outcome.duplicated == 0
    assert outcome.failures == []
