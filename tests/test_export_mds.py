"""`mlmprep export --format mds`: mosaicml-streaming's own StreamingDataset and
LocalDataset (in a separate cached environment, tests/reader_envs.py) read every row equal
to the build's Parquet row, in order."""

import hashlib
import json

import pyarrow.parquet as pq
import pytest
from click.testing import CliRunner

from mlmprep.cli.main import main

from .helpers import SAMPLE_DIR, large_vocabulary, run_build, write_text
from .reader_envs import reader_python, run_reader

STREAMING = ["mosaicml-streaming==0.13.0"]


@pytest.fixture(scope="module")
def mds_python():
    return reader_python("mds", STREAMING)


def export(build, dest, *options) -> dict:
    result = CliRunner().invoke(
        main, ["export", str(build), str(dest), "--format", "mds", "-q", *options]
    )
    assert result.exit_code == 0, result.output
    return json.loads((dest / "export.json").read_text())


def parquet_rows(build, split="train") -> list[dict]:
    index = json.loads((build / "index.json").read_text())
    rows = []
    for shard in index["shards"]:
        if shard["split"] == split:
            rows += pq.read_table(build / shard["name"]).to_pylist()
    return rows


def assert_rows_equal(read: list[dict], expected: list[dict], id_dtype: str) -> None:
    assert len(read) == len(expected)
    for got, row in zip(read, expected):
        assert set(got) == {"input_ids", *(k for k in got if k in row)}
        for name, value in got.items():
            if isinstance(value, dict):
                assert value["values"] == row[name], name
                wanted = {"token_type_ids": "uint8", "masked_lm_positions": "uint16"}
                assert value["dtype"] == wanted.get(name, id_dtype), name
            else:
                assert value == row[name], name


@pytest.mark.parametrize("reader", ["streaming", "local"])
def test_a_static_nsp_build_reads_back_row_for_row(tmp_path, mds_python, reader):
    build = tmp_path / "out"
    run_build([SAMPLE_DIR], build, shard_size=300, validation_fraction=0.1)
    summary = export(build, tmp_path / "mds")
    assert summary["input_ids_dtype"] == "uint16"
    assert set(summary["columns"]) == {
        "input_ids",
        "token_type_ids",
        "next_sentence_label",
        "masked_lm_positions",
        "masked_lm_ids",
    }
    for split in ("train", "validation"):
        read = run_reader(mds_python, "read_mds.py", str(tmp_path / "mds"), split, reader)
        assert_rows_equal(read, parquet_rows(build, split), "uint16")


def test_a_dynamic_build_without_objective_carries_input_ids_only(tmp_path, mds_python):
    build = tmp_path / "out"
    run_build([SAMPLE_DIR], build, objective="none", masking="dynamic")
    summary = export(build, tmp_path / "mds", "--num-files", "3")
    assert list(summary["columns"]) == ["input_ids"]
    assert [f["rows"] for f in summary["files"]] == balanced(len(parquet_rows(build)), 3)
    read = run_reader(mds_python, "read_mds.py", str(tmp_path / "mds"), "train", "streaming")
    assert [r["input_ids"]["values"] for r in read] == [r["input_ids"] for r in parquet_rows(build)]


def test_a_vocabulary_over_65536_ids_gives_uint32_and_keeps_every_id(tmp_path, mds_python):
    vocab, high_words = large_vocabulary(tmp_path)
    corpus = write_text(
        tmp_path / "corpus.txt",
        [[f"The {w} went to {high_words[-1 - i]} again." for i, w in enumerate(high_words)]] * 4,
    )
    build = tmp_path / "out"
    run_build([corpus], build, tokenizer=str(vocab), dupe_factor=2)
    rows = parquet_rows(build)
    assert max(max(r["input_ids"]) for r in rows) > 65535  # the test means something
    summary = export(build, tmp_path / "mds", "--compression", "zstd")
    assert summary["input_ids_dtype"] == "uint32"
    read = run_reader(mds_python, "read_mds.py", str(tmp_path / "mds"), "train", "streaming")
    assert_rows_equal(read, rows, "uint32")


def test_a_rerun_after_a_lost_file_writes_the_same_bytes(tmp_path):
    build = tmp_path / "out"
    run_build([SAMPLE_DIR], build)
    dest = tmp_path / "mds"
    export(build, dest, "--compression", "zstd")
    before = {p.name: hashlib.sha256(p.read_bytes()).hexdigest() for p in dest.rglob("*.*")}
    (dest / "train" / "shard.00001.mds.zstd").unlink()
    export(build, dest, "--compression", "zstd")
    after = {p.name: hashlib.sha256(p.read_bytes()).hexdigest() for p in dest.rglob("*.*")}
    assert after == before


def balanced(rows: int, files: int) -> list[int]:
    return [rows // files + (i < rows % files) for i in range(files)]
