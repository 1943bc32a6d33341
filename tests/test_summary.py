"""The build summary tells the truth: skipped files and documents, repaired lines and
cut sentences with their reasons, problems past the first few counted, and settings
that waste data warned about (in the text, in --json and in stats)."""

import json
import shutil

from click.testing import CliRunner

from mlmprep.cli.main import main

from .helpers import SAMPLE_DIR


def corpus_with_problems(directory):
    directory.mkdir()
    for path in SAMPLE_DIR.iterdir():
        shutil.copy(path, directory / path.name)
    (directory / "program.txt").write_bytes(b"\x7fELF\x00\x00" * 500)  # binary: skipped
    bad = b"".join(b"Line %d has a bad byte \xff here.\n\n" % i for i in range(9))
    (directory / "bad.txt").write_bytes(bad)  # nine repaired lines
    (directory / "empty.txt").write_text("\n\n   \n")  # no document at all
    return directory


def test_the_summary_names_every_kind_of_problem_and_counts_the_rest(tmp_path):
    corpus = corpus_with_problems(tmp_path / "corpus")
    result = CliRunner().invoke(main, ["build", str(corpus), str(tmp_path / "out")])
    assert result.exit_code == 0, result.output
    assert "files:     4 read, 1 skipped (1 binary file (NUL bytes))" in result.stdout
    assert "repaired:  9 lines (9 invalid_utf8)" in result.stdout
    warnings = [line for line in result.stderr.splitlines() if line.startswith("warning: ")]
    assert len(warnings) == 6  # five examples, then the count of the rest
    assert warnings[-1] == "warning: ... and 5 more like these (see index.json accounting)"
    stats = CliRunner().invoke(main, ["stats", str(tmp_path / "out")]).stdout
    assert "files:                4 read, skipped 1 (1 binary file (NUL bytes))" in stats
    assert "lines repaired:       9 (9 invalid_utf8)" in stats


def test_degenerate_settings_are_warned_about(tmp_path):
    result = CliRunner().invoke(
        main,
        [
            "build",
            str(SAMPLE_DIR),
            str(tmp_path / "tiny"),
            "--max-seq-length",
            "10",
            "--json",
        ],
    )
    warnings = json.loads(result.stdout)["warnings"]
    assert any(w.startswith("--max-seq-length 10 leaves rows of a few tokens") for w in warnings)
    assert any("of the text's tokens are in no row" in w for w in warnings)
    assert any("of the sentences were longer than a row's text" in w for w in warnings)
    assert any(w.startswith("NSP labels are ") for w in warnings)
    normal = CliRunner().invoke(main, ["build", str(SAMPLE_DIR), str(tmp_path / "ok"), "--json"])
    assert json.loads(normal.stdout)["warnings"] == []
