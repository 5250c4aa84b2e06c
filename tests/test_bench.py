"""`make bench` keeps working: the pipeline benchmark on a few hundred cables prints its rows
(figures are not checked: tests never assert on time)."""

from __future__ import annotations

import pytest

from bench import pipeline, run_exit
from tests.services import redis_db_url


def test_pipeline_benchmark_prints_every_row(capsys: pytest.CaptureFixture[str]) -> None:
    """The no-op baseline and the labelled end-to-end row, with latency, memory and CPU, and
    the steady-load and ratio lines that follow it."""
    with redis_db_url():  # skips, or fails in CI, without Redis
        pass
    only = "parse,no-op task redis,end-to-end redis+sqlite"
    assert pipeline.main(["--cables", "300", "--runs", "1", "--only", only]) == 0
    out = capsys.readouterr().out
    assert "parse+validate, one core" in out
    assert "no-op task redis" in out
    row = next(line for line in out.splitlines() if "end-to-end redis+sqlite " in line)
    assert "cables/s" in row
    assert "p99" in row
    assert "peak RSS" in row
    assert "worker CPU" in row
    assert "steady load redis+sqlite" in out
    assert "end-to-end redis+sqlite / (2 x one-core parse+validate)" in out


def test_run_exit_benchmark_prints_its_rows(
    capsys: pytest.CaptureFixture[str], monkeypatch: pytest.MonkeyPatch
) -> None:
    """`run`'s exit after its last outcome, and an idle worker's stop, on both brokers."""
    with redis_db_url() as url:
        monkeypatch.setattr(pipeline, "REDIS_URL", url)
        assert run_exit.main(["--runs", "1"]) == 0
    out = capsys.readouterr().out
    for broker in ("embedded", "redis"):
        assert f"run {broker}+sqlite: exit after the last outcome" in out
        assert f"idle worker {broker}: SIGTERM to exit" in out
