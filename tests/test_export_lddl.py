"""`mlmprep export --format lddl`: NVIDIA's `lddl.torch.get_bert_pretrain_data_loader`
(installed with --no-deps) yields rows equal to the build's Parquet rows: tokens,
segments, NSP labels and static-mask labels; for one process and for two ranks of a CPU
gloo process group."""

import json
import socket
import subprocess
import sys
from collections import Counter
from pathlib import Path

import pyarrow.parquet as pq
import pytest
from click.testing import CliRunner

from mlmprep.cli.main import main
from mlmprep.text.vocab import train_vocab

from .helpers import SAMPLE_DIR, run_build

pytest.importorskip("lddl.torch", reason="lddl is not installed (make test installs it)")

READER = Path(__file__).resolve().parent / "readers" / "read_lddl.py"
IGNORED = -1  # LDDL's label for tokens that are not predicted


def export(build, dest, *options):
    result = CliRunner().invoke(
        main, ["export", str(build), str(dest), "--format", "lddl", "-q", *options]
    )
    assert "Traceback" not in result.output
    return result


def read(dest, *rank_args) -> list[dict]:
    result = subprocess.run(
        [sys.executable, str(READER), str(dest / "train"), str(dest / "vocab.txt"), *rank_args],
        capture_output=True,
        text=True,
        timeout=300,
    )
    assert result.returncode == 0, result.stderr[-3000:]
    return [json.loads(line) for line in result.stdout.splitlines()]


def expected_rows(build) -> list[dict]:
    """The build's rows as LDDL's loader yields them: labels are the original ids at the
    masked positions, IGNORED elsewhere."""
    rows = []
    for path in sorted(build.glob("train-*.parquet")):
        for row in pq.read_table(path).to_pylist():
            labels = [IGNORED] * len(row["input_ids"])
            for position, original in zip(row["masked_lm_positions"], row["masked_lm_ids"]):
                labels[position] = original
            rows.append(
                {
                    "input_ids": row["input_ids"],
                    "token_type_ids": row["token_type_ids"],
                    "labels": labels,
                    "next_sentence_label": row["next_sentence_label"],
                }
            )
    return rows


def key(row: dict) -> str:
    return json.dumps(row, sort_keys=True)


def assert_loader_rows_are_build_rows(loaded: list[dict], build, dest) -> None:
    """Every yielded row is a build row; each yields at most once; the count is LDDL's
    (files x the smallest file); and the files hold every build row but those the export
    reports left out."""
    expected = Counter(key(row) for row in expected_rows(build))
    got = Counter(key(row) for row in loaded)
    assert got - expected == Counter()
    counts = json.loads((dest / "train" / ".num_samples.json").read_text())
    smallest = {}
    for name, rows in counts.items():
        group = name.rsplit(".parquet", 1)[1]
        smallest[group] = min(rows, smallest.get(group, rows))
    files = Counter(name.rsplit(".parquet", 1)[1] for name in counts)
    assert sum(got.values()) == sum(files[g] * smallest[g] for g in files)
    left_out = json.loads((dest / "export.json").read_text())["left_out"].get("train", 0)
    assert left_out <= len(files)  # at most one row of a bin, when the count divides it
    assert sum(counts.values()) + left_out == sum(expected.values())
    for group in files:
        sizes = {rows for name, rows in counts.items() if name.endswith(f".parquet{group}")}
        assert sizes == {smallest[group], smallest[group] + 1}  # LDDL's n / n+1 rule


@pytest.fixture(scope="module")
def static_build(tmp_path_factory):
    build = tmp_path_factory.mktemp("lddl") / "out"
    run_build([SAMPLE_DIR], build)
    return build


def test_one_process_reads_every_static_row_as_built(static_build, tmp_path):
    assert export(static_build, tmp_path / "lddl", "--num-files", "4").exit_code == 0
    loaded = read(tmp_path / "lddl")
    assert len(loaded) > 600
    assert_loader_rows_are_build_rows(loaded, static_build, tmp_path / "lddl")


def test_two_gloo_ranks_read_disjoint_halves_of_the_static_rows(static_build, tmp_path):
    assert export(static_build, tmp_path / "lddl", "--num-files", "4").exit_code == 0
    with socket.socket() as probe:
        probe.bind(("127.0.0.1", 0))
        port = str(probe.getsockname()[1])
    ranks = [
        subprocess.Popen(
            [
                sys.executable,
                str(READER),
                str(tmp_path / "lddl" / "train"),
                str(tmp_path / "lddl" / "vocab.txt"),
                str(rank),
                "2",
                port,
            ],
            stdout=subprocess.PIPE,
            stderr=subprocess.PIPE,
            text=True,
        )
        for rank in range(2)
    ]
    outputs = [process.communicate(timeout=300) for process in ranks]
    assert [p.returncode for p in ranks] == [0, 0], outputs[0][1][-2000:] + outputs[1][1][-2000:]
    per_rank = [[json.loads(line) for line in out.splitlines()] for out, _ in outputs]
    assert len(per_rank[0]) == len(per_rank[1]) > 0  # two files each, n rows per file
    assert not {key(r) for r in per_rank[0]} & {key(r) for r in per_rank[1]}
    assert_loader_rows_are_build_rows(per_rank[0] + per_rank[1], static_build, tmp_path / "lddl")


def test_length_bins_become_lddl_bins(tmp_path):
    build = tmp_path / "out"
    run_build([SAMPLE_DIR], build, bin_size=32)
    assert export(build, tmp_path / "lddl", "--num-files", "2").exit_code == 0
    names = sorted(p.name for p in (tmp_path / "lddl" / "train").glob("*.parquet_*"))
    bins = sorted({int(name.rsplit("_", 1)[1]) for name in names})
    assert bins == list(range(len(bins))) and len(bins) >= 2  # LDDL wants 0..K-1
    assert_loader_rows_are_build_rows(read(tmp_path / "lddl"), build, tmp_path / "lddl")


def test_dynamic_rows_unmask_to_the_built_tokens(tmp_path):
    build = tmp_path / "out"
    run_build([SAMPLE_DIR], build, masking="dynamic")
    assert export(build, tmp_path / "lddl", "--num-files", "2").exit_code == 0
    built = Counter()
    for path in sorted(build.glob("train-*.parquet")):
        for row in pq.read_table(path).to_pylist():
            built[json.dumps([row["input_ids"], row["token_type_ids"]])] += 1
    loaded = read(tmp_path / "lddl")
    assert any(label != IGNORED for row in loaded for label in row["labels"])  # masked
    for row in loaded:
        original = [
            label if label != IGNORED else token
            for token, label in zip(row["input_ids"], row["labels"])
        ]
        assert built[json.dumps([original, row["token_type_ids"]])] > 0


def test_a_split_the_file_count_divides_leaves_one_row_out_and_says_so(tmp_path):
    build = tmp_path / "out"
    run_build([SAMPLE_DIR], build, dupe_factor=2)
    rows = json.loads((build / "index.json").read_text())["shards"][0]["rows"]
    divisor = next(d for d in range(2, rows + 1) if rows % d == 0)
    result = export(build, tmp_path / "lddl", "--num-files", str(divisor))
    assert result.exit_code == 0
    assert "note: 1 train row(s) left out" in result.stdout
    summary = json.loads((tmp_path / "lddl" / "export.json").read_text())
    assert summary["left_out"] == {"train": 1} and summary["rows"] == rows - 1


def test_other_tokenizers_and_unpaired_builds_are_refused_in_one_line(tmp_path):
    run_build([SAMPLE_DIR], tmp_path / "none", objective="none")
    bpe = tmp_path / "roberta.json"
    train_vocab([str(SAMPLE_DIR)], str(bpe), 3000, model="bpe", recipe_name="roberta")
    run_build([SAMPLE_DIR], tmp_path / "roberta", tokenizer=str(bpe))
    for name, reason in (("none", "no pairs"), ("roberta", "BERT WordPiece")):
        result = export(tmp_path / name, tmp_path / f"x-{name}")
        assert result.exit_code == 2, result.output
        assert reason in result.stderr and result.stderr.count("\n") == 1
    result = export(tmp_path / "none", tmp_path / "y", "--num-files", "1")
    assert result.exit_code == 2
