"""``cable-ingest reparse``'s arguments: one selection, a version, a date; usage errors exit 2."""

from __future__ import annotations

import pytest

from worker.cli import main


@pytest.mark.parametrize(
    ("args", "said"),
    [
        ([], "give REFID…, --all, --since DATE or --older-than VERSION"),
        (["--all", "06ALMATY598"], "(one of them)"),
        (["--all", "--older-than", "1.0"], "(one of them)"),
        (["--older-than", "latest"], "expected a version such as 1.2.0, got 'latest'"),
        (["--since", "yesterday"], "expected an ISO 8601 date"),
        (["--all", "--workers", "-1"], "expected a whole number >= 0"),
    ],
)
def test_a_selection_is_exactly_one_valid_choice(
    args: list[str], said: str, capsys: pytest.CaptureFixture[str]
) -> None:
    """Nothing selected, two selections at once, a version or date that is not one, or a
    negative worker count: a usage error naming what was wrong, before anything runs."""
    with pytest.raises(SystemExit) as exited:
        main(["reparse", *args])
    assert exited.value.code == 2
    assert said in capsys.readouterr().err
