"""The build summary tells the truth: skipped files and documents, repaired lines and
cut sentences with their reasons, problems past the first few counted, and settings
that waste data warned about (in the text, in --json and in stats)."""

import gzip
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
    assert warnings[0] == f"warning: {corpus / 'program.txt'}: binary file (NUL bytes)"
    assert len(warnings) == 7  # the file, five documents, then the count of the rest
    assert warnings[-1] == (
        "warning: ... and 4 more documents like these (see index.json accounting)"
    )
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


def test_every_skipped_file_is_named_and_each_kind_counted_on_its_own(tmp_path):
    """Before, skipped files took the places of document examples ('... and 8 more like
    these' lumped files with documents) and only five problems were named anywhere."""
    corpus = tmp_path / "corpus"
    corpus.mkdir()
    shutil.copy(SAMPLE_DIR / "kjv.txt.gz", corpus)
    binaries = [corpus / f"prog{i}.txt" for i in range(5)]
    for path in binaries:
        path.write_bytes(b"\x7fELF\x00\x00" * 50)
    damaged = [corpus / f"cut{i}.txt.gz" for i in range(2)]
    for path in damaged:
        path.write_bytes(gzip.compress(b"Some text. More of it.\n\n" * 400)[:-40])
    result = CliRunner().invoke(main, ["build", str(corpus), str(tmp_path / "out")])
    assert result.exit_code == 0, result.output
    assert "7 skipped (5 binary file (NUL bytes), 2 corrupt or truncated data)" in result.stdout
    warnings = [line for line in result.stderr.splitlines() if line.startswith("warning: ")]
    assert warnings[:6] == [
        *(f"warning: {p}: binary file (NUL bytes)" for p in binaries[:3]),
        "warning: ... and 2 more files: binary file (NUL bytes) "
        "(every one is named in index.json accounting)",
        *(f"warning: {p}: corrupt or truncated data" for p in damaged),
    ]
    index = json.loads((tmp_path / "out" / "index.json").read_text())
    assert index["accounting"]["files"]["named"] == {
        "binary file (NUL bytes)": sorted(map(str, binaries)),
        "corrupt or truncated data": sorted(map(str, damaged)),
    }
