"""The generator: distinct cables, each parsing to the reference id it was given."""

from __future__ import annotations

import hashlib
from pathlib import Path

import pytest

from tests.e2e.conftest import CORPUS, SAMPLE
from worker.cli import main
from worker.errors import CableIngestError
from worker.intake.generate import generate, load_templates, template
from worker.parse import parse_cable


def test_copies_of_the_sample_are_distinct_and_parse_to_their_ids() -> None:
    """500 copies of one cable: 500 reference ids, 500 texts, each parsed back to its id,
    with the template's own serial (598) skipped and the size kept within a few digits."""
    made = template(SAMPLE.read_text(encoding="utf-8"))
    assert made is not None
    cables = list(generate([made], 500))
    ids = [reference_id for reference_id, _ in cables]
    assert len(set(ids)) == 500
    assert len({hashlib.sha256(text.encode()).digest() for _, text in cables}) == 500
    assert "06ALMATY598" not in ids
    assert ids[:3] == ["06ALMATY1", "06ALMATY2", "06ALMATY3"]
    size = len(SAMPLE.read_text(encoding="utf-8"))
    for reference_id, text in cables:
        assert parse_cable(text)["reference_id"] == reference_id
        assert abs(len(text) - size) <= 12  # serials are zero-padded to their old width


def test_every_place_the_serial_is_written_is_renumbered() -> None:
    """The DE line, the classification line and the continuation markers change together."""
    made = template(SAMPLE.read_text(encoding="utf-8"))
    assert made is not None
    text = made.renumbered(4321)
    assert "#4321/01" in text
    assert "ALMATY 004321" in text
    assert "0598" not in text.replace("00000598", "")  # nothing of the old serial is left
    assert len(made.widths) >= 3


def test_what_cannot_be_a_template_is_refused(tmp_path: Path) -> None:
    """Text that is not a cable is counted, not used; no template at all is an error."""
    (tmp_path / "note.txt").write_text("Dear colleague, lunch moved to noon.\n")
    templates, refused = load_templates([tmp_path / "note.txt", SAMPLE])
    assert (len(templates), refused) == (1, 1)
    with pytest.raises(CableIngestError, match="no template"):
        list(generate([], 1))


@pytest.mark.skipif(not CORPUS.is_dir(), reason=f"real cables not found at {CORPUS}")
def test_generated_from_the_corpus_keep_its_size_distribution() -> None:
    """Three rounds over the corpus: unique ids, and the mean size of the copies is the mean
    size of the templates (each template is used three times)."""
    templates, refused = load_templates(sorted(CORPUS.glob("*.txt")))
    assert len(templates) >= 900, refused
    cables = list(generate(templates, 3 * len(templates)))
    assert len({reference_id for reference_id, _ in cables}) == len(cables)
    template_mean = sum(len(t.renumbered(t.serial)) for t in templates) / len(templates)
    copies_mean = sum(len(text) for _, text in cables) / len(cables)
    assert copies_mean == pytest.approx(template_mean, rel=0.001)
    for reference_id, text in cables[:: len(cables) // 200]:
        assert parse_cable(text)["reference_id"] == reference_id


def test_generate_command_writes_files(tmp_path: Path, capsys: pytest.CaptureFixture[str]) -> None:
    """`cable-ingest generate OUT --count N --from DIR` writes N files named by reference id."""
    out = tmp_path / "out"
    assert main(["generate", str(out), "--count", "25", "--from", str(SAMPLE.parent)]) == 0
    files = sorted(out.iterdir())
    assert len(files) == 25
    assert all(parse_cable(f.read_text())["reference_id"] == f.stem for f in files)
    assert "wrote 25 cables" in capsys.readouterr().err
