"""``cable-ingest show``, ``search`` and ``dlq list|show|replay|purge``, run in-process against a
real SQLite database and the embedded (filesystem) broker under ``tmp_path``."""

from __future__ import annotations

import copy
import io
import os
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import orjson
import pytest

from worker.cli import main
from worker.core.pipeline import Failure, dead_letter
from worker.intake.envelope import make_envelope
from worker.parse import parse_cable
from worker.record import CableRecord
from worker.storage import CableStore, DeadLetterStore, upgrade

SAMPLE = Path(__file__).resolve().parents[1] / "fixtures" / "06ALMATY598.scraped.txt"


@dataclass(frozen=True)
class Env:
    """The test's database URL, broker queue folder and the ids of the stored dead letters."""

    url: str
    queue: Path
    intake_id: str
    parse_id: str
    sink_id: str

    def messages(self, queue: str) -> list[Path]:
        """The message files waiting on ``queue`` in the embedded broker."""
        if not self.queue.is_dir():
            return []
        return sorted(self.queue.glob(f"*.{queue}.msg"))

    def letter(self, dead_letter_id: str) -> dict[str, Any]:
        """The stored dead letter with this id (it must exist)."""
        letters = DeadLetterStore(self.url)
        try:
            found = letters.get(dead_letter_id)
        finally:
            letters.close()
        assert found is not None
        return found

    def remaining(self) -> set[str]:
        """The ids of every stored dead letter."""
        letters = DeadLetterStore(self.url)
        try:
            return {letter["id"] for letter in letters.list(limit=1000)}
        finally:
            letters.close()


def _record() -> CableRecord:
    return parse_cable(SAMPLE.read_text(encoding="utf-8"), source_file=SAMPLE.name)


def _letters(record: CableRecord) -> list[dict[str, Any]]:
    intake = make_envelope("not a cable at all", source="feed-a")
    intake["sha256"] = "0" * 64
    parse = make_envelope("SUBJECT: nothing else", source="feed-b")
    reason = f"sha256 {'0' * 64} does not match the text"
    return [
        dead_letter(
            Failure("intake", "IntegrityError", reason, intake), now="2024-05-01T09:00:00Z"
        ),
        dead_letter(
            Failure("parse", "ParseError", "no classification line found", parse),
            now="2024-05-02T09:00:00Z",
        ),
        dead_letter(
            Failure(
                "sink:storage",
                "TransientSinkError",
                "database is locked",
                record,
                reference_id=record["reference_id"],
            ),
            now="2024-05-03T09:00:00.500Z",
            message_id="m-sink-1",
        ),
    ]


@pytest.fixture
def env(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> Env:
    """A database holding the sample cable and three dead letters (intake, parse, sink:storage),
    with the settings pointing at it and at an empty embedded broker."""
    for name in list(os.environ):
        if name.startswith("CABLE_INGEST_"):
            monkeypatch.delenv(name)
    url = f"sqlite:///{tmp_path / 'var' / 'cables.db'}"
    monkeypatch.setenv("CABLE_INGEST_VAR_DIR", str(tmp_path / "var"))
    monkeypatch.setenv("CABLE_INGEST_DATABASE_URL", url)
    monkeypatch.setenv("CABLE_INGEST_BROKER_URL", "filesystem://")
    upgrade(url)
    record = _record()
    cables, letters = CableStore(url), DeadLetterStore(url)
    try:
        cables.write_batch([record])
        ids = letters.add_many(_letters(record))
    finally:
        cables.close()
        letters.close()
    return Env(url, tmp_path / "var" / "broker" / "queue", *ids)


def _json_lines(text: str) -> list[dict[str, Any]]:
    return [orjson.loads(line) for line in text.splitlines()]


# --- show ---------------------------------------------------------------------------------------


def test_show_prints_the_stored_record(env: Env, capsys: pytest.CaptureFixture[str]) -> None:
    """``show REFID`` prints the stored record as one JSON line, indented with --pretty."""
    assert main(["show", "06ALMATY598"]) == 0
    out = capsys.readouterr().out
    assert out.count("\n") == 1
    assert orjson.loads(out) == _record()
    assert main(["show", "06ALMATY598", "--pretty"]) == 0
    pretty = capsys.readouterr().out
    assert pretty.startswith('{\n  "')
    assert orjson.loads(pretty) == _record()


def test_show_unknown_refid_exits_1(env: Env, capsys: pytest.CaptureFixture[str]) -> None:
    """An unknown reference id is named on stderr, nothing is printed, and the exit code is 1."""
    assert main(["show", "06NOWHERE1"]) == 1
    captured = capsys.readouterr()
    assert captured.out == ""
    assert "06NOWHERE1" in captured.err
    assert captured.err.count("\n") == 1


def test_show_revisions_lists_earlier_versions(
    env: Env, capsys: pytest.CaptureFixture[str]
) -> None:
    """With --revisions the current record comes with its revision and the earlier versions."""
    revised = copy.deepcopy(_record())
    revised["subject"] = "KAZAKHSTAN: A CORRECTED SUBJECT"
    cables = CableStore(env.url)
    try:
        cables.write_batch([revised])
    finally:
        cables.close()
    assert main(["show", "06ALMATY598", "--revisions"]) == 0
    shown = orjson.loads(capsys.readouterr().out)
    assert shown["reference_id"] == "06ALMATY598"
    assert shown["revision"] == 2
    assert shown["current"] == revised
    assert [r["revision"] for r in shown["revisions"]] == [1]
    assert shown["revisions"][0]["record"] == _record()
    assert shown["revisions"][0]["stored_at"].endswith("Z")


# --- search -------------------------------------------------------------------------------------


def test_search_hit_prints_one_aligned_line(env: Env, capsys: pytest.CaptureFixture[str]) -> None:
    """A match prints reference id, day, classification and subject on one line, exit 0."""
    assert main(["search", "refoulement", "Nazarov"]) == 0
    lines = capsys.readouterr().out.splitlines()
    assert lines == [
        "06ALMATY598  2006-02-14  CONFIDENTIAL  "
        "KAZAKHSTAN: GOK DENIES REFOULEMENT OF UZBEK REFUGEES; NAZAROV TO SWEDEN"
    ]


def test_search_json_prints_one_object_per_match(
    env: Env, capsys: pytest.CaptureFixture[str]
) -> None:
    """With --json each match is a JSON object with reference_id, date, classification, subject."""
    assert main(["search", "UNHCR", "--json", "--limit", "5"]) == 0
    hits = _json_lines(capsys.readouterr().out)
    assert hits == [
        {
            "reference_id": "06ALMATY598",
            "date": "2006-02-14T11:33:00Z",
            "classification": "CONFIDENTIAL",
            "subject": "KAZAKHSTAN: GOK DENIES REFOULEMENT OF UZBEK REFUGEES; NAZAROV TO SWEDEN",
        }
    ]


def test_search_miss_says_so_and_exits_0(env: Env, capsys: pytest.CaptureFixture[str]) -> None:
    """No match prints nothing on stdout, "no cables match" on stderr, and exits 0."""
    assert main(["search", "zanzibar", "--json"]) == 0
    captured = capsys.readouterr()
    assert captured.out == ""
    assert "no cables match 'zanzibar'" in captured.err


# --- dlq list and show --------------------------------------------------------------------------


def test_dlq_list_prints_a_table_and_a_count(env: Env, capsys: pytest.CaptureFixture[str]) -> None:
    """``dlq list`` prints a header and one row per dead letter, newest first, then a count."""
    assert main(["dlq", "list"]) == 0
    captured = capsys.readouterr()
    header, *rows = captured.out.splitlines()
    assert header.split()[:4] == ["ID", "STAGE", "ERROR", "ATTEMPTS"]
    assert [row.split()[0] for row in rows] == [env.sink_id, env.parse_id, env.intake_id]
    assert rows[0].split()[1:6] == [
        "sink:storage",
        "TransientSinkError",
        "1",
        "2024-05-03T09:00:00Z",
        "06ALMATY598",
    ]
    assert rows[0].endswith("database is locked")
    assert rows[2].split()[5] == "feed-a"
    assert captured.err == "3 dead letters\n"


@pytest.mark.parametrize(
    ("options", "expected"),
    [
        (["--stage", "parse"], ["parse"]),
        (["--sink", "storage"], ["sink"]),
        (["--reason", "CLASSIFICATION"], ["parse"]),
        (["--since", "2024-05-02"], ["sink", "parse"]),
        (["--until", "2024-05-02T09:00:00Z"], ["intake"]),
        (["--since", "2024-05-01T12:00:00+02:00", "--stage", "intake"], []),
    ],
)
def test_dlq_list_filters(
    env: Env, capsys: pytest.CaptureFixture[str], options: list[str], expected: list[str]
) -> None:
    """Each filter (stage, sink, reason substring in any case, since, until) selects its letters."""
    ids = {"intake": env.intake_id, "parse": env.parse_id, "sink": env.sink_id}
    assert main(["dlq", "list", "--json", *options]) == 0
    captured = capsys.readouterr()
    assert [letter["id"] for letter in _json_lines(captured.out)] == [ids[e] for e in expected]
    assert captured.err.startswith(f"{len(expected)} dead letter")


def test_dlq_list_json_prints_whole_dead_letters(
    env: Env, capsys: pytest.CaptureFixture[str]
) -> None:
    """With --json each line is a whole dead letter, payload included; --limit says it cut."""
    assert main(["dlq", "list", "--json", "--limit", "1"]) == 0
    captured = capsys.readouterr()
    (letter,) = _json_lines(captured.out)
    assert letter["id"] == env.sink_id
    assert letter["payload"]["reference_id"] == "06ALMATY598"
    assert letter["replayed_at"] is None
    assert "there may be more" in captured.err


def test_dlq_list_counts_by_stage(env: Env, capsys: pytest.CaptureFixture[str]) -> None:
    """``dlq list --counts --json`` prints the count per stage; with a filter it is refused."""
    assert main(["dlq", "list", "--counts", "--json"]) == 0
    captured = capsys.readouterr()
    assert orjson.loads(captured.out) == {"intake": 1, "parse": 1, "sink:storage": 1}
    assert captured.err == "3 dead letters in total\n"
    assert main(["dlq", "list", "--counts", "--stage", "parse"]) == 2
    assert "no filters" in capsys.readouterr().err


def test_dlq_show_prints_the_full_dead_letter(env: Env, capsys: pytest.CaptureFixture[str]) -> None:
    """``dlq show ID`` prints the dead letter with its payload; an unknown id exits 1."""
    assert main(["dlq", "show", env.parse_id, "--pretty"]) == 0
    shown = orjson.loads(capsys.readouterr().out)
    assert shown == env.letter(env.parse_id)
    assert shown["payload"]["text"] == "SUBJECT: nothing else"
    assert main(["dlq", "show", "no-such-id"]) == 1
    captured = capsys.readouterr()
    assert captured.out == ""
    assert "no dead letter no-such-id" in captured.err


# --- dlq replay ---------------------------------------------------------------------------------


def test_replay_by_id_sends_to_the_failed_sink_queue(
    env: Env, capsys: pytest.CaptureFixture[str]
) -> None:
    """Replaying a sink:storage dead letter puts one message on sink.storage and marks it."""
    assert main(["dlq", "replay", env.sink_id]) == 0
    assert capsys.readouterr().out == "replayed 1 dead letter: sink:storage 1\n"
    assert len(env.messages("sink.storage")) == 1
    assert env.messages("intake") == []
    replayed_at = env.letter(env.sink_id)["replayed_at"]
    assert replayed_at is not None
    assert replayed_at >= env.letter(env.sink_id)["last_seen"]
    assert env.letter(env.intake_id)["replayed_at"] is None


def test_replay_all_sends_each_where_it_failed(
    env: Env, capsys: pytest.CaptureFixture[str]
) -> None:
    """--all replays intake and parse failures to intake (one batch) and the sink failure to its
    sink's queue, and marks all three replayed."""
    assert main(["dlq", "replay", "--all"]) == 0
    out = capsys.readouterr().out
    assert out == "replayed 3 dead letters: intake 1, parse 1, sink:storage 1\n"
    assert len(env.messages("intake")) == 1
    assert len(env.messages("sink.storage")) == 1
    for letter_id in (env.intake_id, env.parse_id, env.sink_id):
        assert env.letter(letter_id)["replayed_at"] is not None


def test_replay_with_a_filter_selects_only_those(
    env: Env, capsys: pytest.CaptureFixture[str]
) -> None:
    """A filter alone is a selection: --stage intake replays the intake failure only."""
    assert main(["dlq", "replay", "--stage", "intake"]) == 0
    assert "replayed 1 dead letter: intake 1" in capsys.readouterr().out
    assert len(env.messages("intake")) == 1
    assert env.messages("sink.storage") == []
    assert env.letter(env.parse_id)["replayed_at"] is None


def test_replay_dry_run_sends_nothing(env: Env, capsys: pytest.CaptureFixture[str]) -> None:
    """--dry-run lists what would be replayed but sends nothing and marks nothing."""
    assert main(["dlq", "replay", "--all", "--dry-run"]) == 0
    out = capsys.readouterr().out
    assert env.sink_id in out
    assert "would replay 3 dead letters" in out
    assert env.messages("intake") == env.messages("sink.storage") == []
    assert env.letter(env.sink_id)["replayed_at"] is None


def test_replay_refuses_without_a_selection(env: Env, capsys: pytest.CaptureFixture[str]) -> None:
    """Neither ids nor --all nor a filter: refused with the reason, exit 2, nothing sent."""
    assert main(["dlq", "replay"]) == 2
    assert "nothing selected" in capsys.readouterr().err
    assert main(["dlq", "replay", env.sink_id, "--all"]) == 2
    assert "not both" in capsys.readouterr().err
    assert env.messages("intake") == env.messages("sink.storage") == []


def test_replay_skips_those_already_replayed_unless_again(
    env: Env, capsys: pytest.CaptureFixture[str]
) -> None:
    """A dead letter replayed after its last failure is skipped, and replayed with --again."""
    assert main(["dlq", "replay", env.sink_id]) == 0
    first = env.letter(env.sink_id)["replayed_at"]
    capsys.readouterr()
    assert main(["dlq", "replay", "--all"]) == 0
    captured = capsys.readouterr()
    assert "skipped 1 dead letter replayed since their last failure" in captured.err
    assert captured.out == "replayed 2 dead letters: intake 1, parse 1\n"
    assert len(env.messages("sink.storage")) == 1
    assert env.letter(env.sink_id)["replayed_at"] == first
    assert main(["dlq", "replay", env.sink_id, "--again"]) == 0
    assert len(env.messages("sink.storage")) == 2


def test_replay_of_an_unknown_id_exits_1(env: Env, capsys: pytest.CaptureFixture[str]) -> None:
    """An unknown id is named on stderr and makes the exit code 1; the known ids are replayed."""
    assert main(["dlq", "replay", "no-such-id", env.parse_id]) == 1
    captured = capsys.readouterr()
    assert "no dead letter no-such-id" in captured.err
    assert captured.out == "replayed 1 dead letter: parse 1\n"
    assert len(env.messages("intake")) == 1


# --- dlq purge ----------------------------------------------------------------------------------


def test_purge_with_yes_deletes(env: Env, capsys: pytest.CaptureFixture[str]) -> None:
    """``purge --stage parse --yes`` deletes the parse failure only and says how many."""
    assert main(["dlq", "purge", "--stage", "parse", "--yes"]) == 0
    assert capsys.readouterr().out == "deleted 1 dead letter\n"
    assert env.remaining() == {env.intake_id, env.sink_id}
    assert main(["dlq", "purge", "--before", "2024-05-02", "--yes"]) == 0
    assert capsys.readouterr().out == "deleted 1 dead letter\n"
    assert env.remaining() == {env.sink_id}


def test_purge_without_yes_off_a_terminal_refuses(
    env: Env, capsys: pytest.CaptureFixture[str], monkeypatch: pytest.MonkeyPatch
) -> None:
    """Without --yes and with stdin not a terminal, purge refuses (exit 2) and deletes nothing."""
    monkeypatch.setattr("sys.stdin", io.StringIO("y\n"))
    assert main(["dlq", "purge"]) == 2
    assert "refusing to delete without --yes" in capsys.readouterr().err
    assert len(env.remaining()) == 3


class _Terminal(io.StringIO):
    def isatty(self) -> bool:
        return True


@pytest.mark.parametrize(("answer", "code", "left"), [("y\n", 0, 2), ("\n", 1, 3)])
def test_purge_on_a_terminal_asks_first(
    env: Env, capsys: pytest.CaptureFixture[str], answer: str, code: int, left: int
) -> None:
    """On a terminal purge asks; "y" deletes, anything else deletes nothing and exits 1."""
    with pytest.MonkeyPatch.context() as patch:
        patch.setattr("sys.stdin", _Terminal(answer))
        assert main(["dlq", "purge", "--stage", "intake"]) == code
    assert "delete every dead letter at stage intake" in capsys.readouterr().err
    assert len(env.remaining()) == left


def test_purge_replayed_only_keeps_the_rest(env: Env, capsys: pytest.CaptureFixture[str]) -> None:
    """--replayed-only deletes dead letters replayed since their last failure, nothing else."""
    assert main(["dlq", "replay", env.intake_id]) == 0
    assert main(["dlq", "purge", "--replayed-only", "--yes"]) == 0
    assert capsys.readouterr().out.endswith("deleted 1 dead letter\n")
    assert env.remaining() == {env.parse_id, env.sink_id}


# --- bad arguments and storage errors -----------------------------------------------------------


@pytest.mark.parametrize(
    "argv",
    [
        ["dlq", "list", "--since", "yesterday"],
        ["dlq", "replay", "--all", "--until", "2024-13-01"],
        ["dlq", "purge", "--before", "soon", "--yes"],
        ["dlq", "list", "--stage", "sink"],
        ["search", "anything", "--limit", "0"],
    ],
)
def test_bad_arguments_exit_2(
    env: Env, capsys: pytest.CaptureFixture[str], argv: list[str]
) -> None:
    """A bad ISO timestamp, stage or limit is a usage error (exit 2) naming the value."""
    with pytest.raises(SystemExit) as exited:
        main(argv)
    assert exited.value.code == 2
    error = capsys.readouterr().err.splitlines()[-1]
    assert error.startswith("cable-ingest ")
    assert "error: argument" in error
    assert repr(argv[-2] if argv[-1] == "--yes" else argv[-1]) in error
    assert len(env.remaining()) == 3


def test_a_storage_error_is_one_line(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch, capsys: pytest.CaptureFixture[str]
) -> None:
    """A database that cannot be opened (not waited for: CONNECT_WAIT_S=0) is reported as one
    ``cable-ingest:`` line, exit 69."""
    for name in list(os.environ):
        if name.startswith("CABLE_INGEST_"):
            monkeypatch.delenv(name)
    monkeypatch.setenv("CABLE_INGEST_VAR_DIR", str(tmp_path / "var"))
    monkeypatch.setenv("CABLE_INGEST_CONNECT_WAIT_S", "0")
    blocker = tmp_path / "a-file"
    blocker.write_text("not a folder")
    monkeypatch.setenv("CABLE_INGEST_DATABASE_URL", f"sqlite:///{blocker / 'cables.db'}")
    assert main(["dlq", "list"]) == 69
    captured = capsys.readouterr()
    assert captured.out == ""
    assert captured.err.startswith("cable-ingest: ")
    assert captured.err.count("\n") == 1
