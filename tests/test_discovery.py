"""Input discovery: mlmprep's own outputs inside a corpus are left out (and said so),
and an output directory that is an input is refused."""

import shutil

import fsspec
from click.testing import CliRunner

from mlmprep.cli.main import main
from mlmprep.input.discovery import discover_inputs

from .helpers import SAMPLE_DIR, shard_hashes


def corpus_in(directory):
    directory.mkdir()
    for path in sorted(SAMPLE_DIR.glob("*.gz")):
        shutil.copy(path, directory / path.name)
    return directory


def build(*args):
    return CliRunner().invoke(main, ["build", *map(str, args)])


def test_an_earlier_build_inside_the_corpus_is_left_out_and_named(tmp_path):
    corpus = corpus_in(tmp_path / "c")
    assert build(corpus, corpus / "run1").exit_code == 0
    assert CliRunner().invoke(main, ["export", str(corpus / "run1"), str(corpus / "mds"),
                                     "--format", "mds", "-q"]).exit_code == 0  # fmt: skip
    second = build(corpus, corpus / "run512", "--max-seq-length", "512")
    assert second.exit_code == 0, second.output
    warning = "left out 2 mlmprep output(s) found among the inputs: "
    assert f"{warning}{corpus / 'mds'}, {corpus / 'run1'}" in second.stderr
    alone = build(SAMPLE_DIR, tmp_path / "alone", "--max-seq-length", "512")
    assert shard_hashes(corpus / "run512") == shard_hashes(tmp_path / "alone")
    found = discover_inputs([str(corpus)], str(corpus / "run512"))
    assert found.files == [str(p) for p in sorted(corpus.glob("*.gz"))] and alone.exit_code == 0


def test_a_build_under_way_is_left_out_too(tmp_path):
    corpus = corpus_in(tmp_path / "c")
    (corpus / "half" / ".mlmprep-work").mkdir(parents=True)
    (corpus / "half" / "train-00000-of-00001.parquet").write_bytes(b"partial")
    found = discover_inputs([str(corpus)], str(tmp_path / "out"))
    assert found.outputs_left_out == [str(corpus / "half")] and len(found.files) == 2


def test_an_index_json_of_the_users_own_is_read_as_input(tmp_path):
    corpus = corpus_in(tmp_path / "c")
    (corpus / "notes").mkdir()
    (corpus / "notes" / "index.json").write_text('{"title": "not a build"}')
    (corpus / "notes" / "a.txt").write_text("One sentence here. Another one there.\n")
    found = discover_inputs([str(corpus)], str(tmp_path / "out"))
    assert str(corpus / "notes" / "a.txt") in found.files and not found.outputs_left_out


def test_an_output_that_is_an_input_is_refused(tmp_path):
    corpus = corpus_in(tmp_path / "c")
    (corpus / "more").mkdir()
    (corpus / "more" / "a.txt").write_text("One sentence here. Another one there.\n")
    before = sorted(p.relative_to(corpus) for p in corpus.rglob("*"))
    for inputs, output in (([corpus], corpus), ([corpus / "more"], corpus)):
        result = build(*inputs, output)
        assert result.exit_code in (1, 2) and "Traceback" not in result.output
        assert f"{output}: the output directory is an input or holds one" in result.stderr
        assert result.stderr.count("\n") == 1
    assert sorted(p.relative_to(corpus) for p in corpus.rglob("*")) == before


def test_a_corpus_of_only_a_build_says_so(tmp_path):
    assert build(SAMPLE_DIR, tmp_path / "run1").exit_code == 0
    result = build(tmp_path / "run1", tmp_path / "run2")
    assert result.exit_code != 0
    assert f"it holds only mlmprep outputs ({tmp_path / 'run1'})" in result.stderr


def test_outputs_on_object_storage_are_left_out(tmp_path):
    fs = fsspec.filesystem("memory")
    for path in sorted(SAMPLE_DIR.glob("*.gz")):
        fs.pipe(f"/disc/c/{path.name}", path.read_bytes())
    fs.pipe("/disc/c/run1/index.json", b'{"schema_version": 1, "shards": []}')
    fs.pipe("/disc/c/run1/train-00000-of-00001.parquet", b"rows")
    found = discover_inputs(["memory://disc/c"], "memory://disc/out")
    assert found.outputs_left_out == [fs.unstrip_protocol("/disc/c/run1")]
    assert [f.rsplit("/", 1)[-1] for f in found.files] == [
        p.name for p in sorted(SAMPLE_DIR.glob("*.gz"))
    ]
    refused = CliRunner().invoke(
        main, ["build", "memory://disc/c", "memory://disc/c", "--workers", "1"]
    )
    assert "the output directory is an input or holds one" in refused.stderr
