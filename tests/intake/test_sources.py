"""Producer inputs expand into one item per raw input, with an error item for each one refused."""

from __future__ import annotations

import csv
import io
import tarfile
import zipfile
from pathlib import Path

import pytest

from worker.intake.envelope import admit
from worker.intake.sources import Item, count_hint, iter_inputs

SAMPLE = (Path(__file__).resolve().parents[1] / "fixtures" / "06ALMATY598.scraped.txt").read_bytes()
LIMIT = 64 * 1024


def names(items: list[Item]) -> list[str]:
    """The names of the items, in order."""
    return [item.name for item in items]


@pytest.fixture
def tree(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> Path:
    """A folder of cables with a nested folder and hidden files and folders; cwd is tmp_path."""
    monkeypatch.chdir(tmp_path)
    root = tmp_path / "cables"
    (root / "2006" / "02").mkdir(parents=True)
    (root / ".git").mkdir()
    (root / "b.txt").write_bytes(SAMPLE)
    (root / "a.txt").write_bytes(b"first")
    (root / "2006" / "02" / "06ALMATY598.txt").write_bytes(SAMPLE)
    (root / ".DS_Store").write_bytes(b"\x00\x01")
    (root / ".git" / "HEAD").write_bytes(b"ref: refs/heads/main\n")
    return root


def test_folder_is_walked_sorted_and_skips_hidden(tree: Path) -> None:
    """A folder yields its files recursively in sorted order, without hidden files or folders."""
    items = list(iter_inputs(["cables"], max_bytes=LIMIT))
    assert names(items) == ["cables/2006/02/06ALMATY598.txt", "cables/a.txt", "cables/b.txt"]
    assert items[0].data == SAMPLE
    assert items[0].metadata == {"source_file": "cables/2006/02/06ALMATY598.txt"}
    assert all(item.error is None for item in items)


def test_plain_files_keep_the_order_given(tree: Path) -> None:
    """Files named on the command line come out in the order given, bytes unchanged."""
    items = list(iter_inputs(["cables/b.txt", "cables/a.txt"], max_bytes=LIMIT))
    assert [(item.name, item.data) for item in items] == [
        ("cables/b.txt", SAMPLE),
        ("cables/a.txt", b"first"),
    ]


@pytest.mark.parametrize(
    ("pattern", "expected"),
    [
        ("cables/*.txt", ["cables/a.txt", "cables/b.txt"]),
        ("cables/**/*ALMATY*", ["cables/2006/02/06ALMATY598.txt"]),
        ("cables/200[0-9]", ["cables/2006/02/06ALMATY598.txt"]),
    ],
)
def test_glob_patterns_expand(tree: Path, pattern: str, expected: list[str]) -> None:
    """A path with * ? or [ is a glob, ** recursive, and a matched folder is walked."""
    assert names(list(iter_inputs([pattern], max_bytes=LIMIT))) == expected


def test_missing_path_and_empty_glob_become_error_items(tree: Path) -> None:
    """A path that does not exist, or a glob matching nothing, yields an item with a 'missing' error."""
    items = list(iter_inputs(["nope.txt", "cables/*.xml", "cables/a.txt"], max_bytes=LIMIT))
    assert names(items) == ["nope.txt", "cables/*.xml", "cables/a.txt"]
    for item in items[:2]:
        assert item.data is None
        assert item.error is not None
        assert item.error.reason_code == "missing"
        assert item.name in str(item.error)
    assert items[2].data == b"first"


def test_oversize_file_is_reported_not_read(tree: Path) -> None:
    """A file over the limit becomes an 'oversize' error item instead of being skipped."""
    (tree / "big.txt").write_bytes(b"x" * (LIMIT + 1))
    [item] = iter_inputs(["cables/big.txt"], max_bytes=LIMIT)
    assert item.data is None
    assert item.error is not None
    assert item.error.reason_code == "oversize"


@pytest.mark.parametrize(
    ("data", "expected"),
    [(SAMPLE, SAMPLE), (b"y" * (LIMIT + 1), None)],
)
def test_dash_reads_one_input_from_stdin(data: bytes, expected: bytes | None) -> None:
    """'-' reads stdin as one input, and refuses it as oversize past the limit."""
    [item] = iter_inputs(["-"], max_bytes=LIMIT, stdin=io.BytesIO(data))
    assert item.name == "<stdin>"
    assert item.data == expected
    assert (item.error is None) == (expected is not None)


@pytest.mark.parametrize("suffix", [".tar", ".tar.gz", ".tgz", ".tar.bz2", ".tar.xz"])
def test_tar_members_stream_as_items(tmp_path: Path, suffix: str) -> None:
    """Each regular member of a tar archive is an item 'archive:member'; oversize ones are errors."""
    archive = tmp_path / f"cables{suffix}"
    mode = {".tar": "w", ".tgz": "w:gz"}.get(suffix, "w:" + suffix.rsplit(".", 1)[-1])
    with tarfile.open(archive, mode) as tar:  # type: ignore[call-overload]
        for name, data in [
            ("06ALMATY598.txt", SAMPLE),
            ("sub/big.txt", b"z" * (LIMIT + 1)),
            ("sub/._06ALMATY598.txt", b"\x00resource fork"),
        ]:
            info = tarfile.TarInfo(name)
            info.size = len(data)
            tar.addfile(info, io.BytesIO(data))
        folder = tarfile.TarInfo("sub")
        folder.type = tarfile.DIRTYPE
        tar.addfile(folder)
    items = list(iter_inputs([str(archive)], max_bytes=LIMIT))
    assert names(items) == [f"{archive}:06ALMATY598.txt", f"{archive}:sub/big.txt"]
    assert items[0].data == SAMPLE
    assert items[0].metadata == {"source_file": f"{archive}:06ALMATY598.txt"}
    assert items[1].error is not None
    assert items[1].error.reason_code == "oversize"


def test_zip_members_are_items(tmp_path: Path) -> None:
    """Each file in a zip is an item 'archive:member'; folders and hidden members are skipped."""
    archive = tmp_path / "cables.zip"
    with zipfile.ZipFile(archive, "w", compression=zipfile.ZIP_DEFLATED) as zf:
        zf.writestr("2006/", b"")
        zf.writestr("2006/06ALMATY598.txt", SAMPLE)
        zf.writestr("2006/big.txt", b"z" * (LIMIT + 1))
        zf.writestr("__MACOSX/2006/._06ALMATY598.txt", b"\x00")
    items = list(iter_inputs([str(archive)], max_bytes=LIMIT))
    assert names(items) == [f"{archive}:2006/06ALMATY598.txt", f"{archive}:2006/big.txt"]
    assert items[0].data == SAMPLE
    assert items[1].error is not None
    assert items[1].error.reason_code == "oversize"


def test_corrupt_archive_is_an_unreadable_item(tmp_path: Path) -> None:
    """An archive that cannot be read becomes one 'unreadable' item, not a crash."""
    for name in ("broken.zip", "broken.tar.gz"):
        (tmp_path / name).write_bytes(b"this is not an archive at all")
    items = list(
        iter_inputs(
            [str(tmp_path / "broken.zip"), str(tmp_path / "broken.tar.gz")], max_bytes=LIMIT
        )
    )
    assert [item.error.reason_code if item.error else None for item in items] == [
        "unreadable",
        "unreadable",
    ]


def write_cablegate_csv(path: Path, rows: list[list[str]]) -> None:
    """Write rows the way the published cables.csv does: all quoted, quotes escaped as \\"."""
    with path.open("w", encoding="utf-8", newline="") as stream:
        writer = csv.writer(
            stream, quoting=csv.QUOTE_ALL, escapechar="\\", doublequote=False, lineterminator="\n"
        )
        writer.writerows(rows)


def test_cablegate_csv_rows_become_items(tmp_path: Path) -> None:
    """Each cables.csv row is an item of header + body, with refid, date, origin, classification."""
    text = SAMPLE.decode("utf-8")
    header, _, body = text.partition("\n\n")
    quoted = 'SUBJECT: "QUOTED" TITLE\nsecond line with a \\ backslash and "quotes"'
    rows = [
        [
            "1",
            "2/14/2006 11:33",
            "06ALMATY598",
            "Embassy Almaty",
            "CONFIDENTIAL",
            "06ALMATY77",
            header,
            body,
        ],
        [
            "2",
            "2/15/2006 9:30",
            "06ALMATY600",
            "Embassy Almaty",
            "UNCLASSIFIED",
            "",
            "HEADER",
            quoted,
        ],
        ["3", "2/16/2006 8:00", "06ALMATY601", "Embassy Almaty", "SECRET", "", "H", "x" * LIMIT],
    ]
    csv_path = tmp_path / "cables.csv"
    write_cablegate_csv(csv_path, rows)
    items = list(iter_inputs([str(csv_path)], max_bytes=LIMIT))
    assert names(items) == [
        f"{csv_path}:06ALMATY598",
        f"{csv_path}:06ALMATY600",
        f"{csv_path}:06ALMATY601",
    ]
    first, second, third = items
    assert first.data is not None
    assert admit(first.data, source="s", max_bytes=LIMIT)["text"] == text
    assert first.metadata == {
        "source_file": f"{csv_path}:06ALMATY598",
        "refid": "06ALMATY598",
        "date": "2/14/2006 11:33",
        "origin": "Embassy Almaty",
        "classification": "CONFIDENTIAL",
    }
    assert second.data == ("HEADER\n\n" + quoted).encode("utf-8")
    assert third.error is not None
    assert third.error.reason_code == "oversize"
    assert count_hint([str(csv_path)]) is None


def test_csv_with_a_header_row_and_a_short_row(tmp_path: Path) -> None:
    """A header row naming the columns is skipped; a row with the wrong column count is an error item."""
    csv_path = tmp_path / "extract.csv"
    csv_path.write_text(
        "id,date,refid,origin,classification,references,header,body\n"
        '"1","2/14/2006 11:33","06ALMATY598"\n',
        encoding="utf-8",
    )
    [item] = iter_inputs([str(csv_path)], max_bytes=LIMIT)
    assert item.error is not None
    assert item.error.reason_code == "unreadable"
    assert "expected 8 columns" in str(item.error)


def test_count_hint_counts_plain_inputs_only(tree: Path) -> None:
    """count_hint is the exact item count for files, folders, globs and stdin, None with archives."""
    paths = ["cables", "cables/*.txt", "-", "nope.txt"]
    assert count_hint(paths) == 3 + 2 + 1 + 1
    assert count_hint(paths) == len(
        list(iter_inputs(paths, max_bytes=LIMIT, stdin=io.BytesIO(b"x")))
    )
    (tree / "more.zip").write_bytes(b"")
    assert count_hint(["cables"]) is None
