"""`mlmprep export`: HDF5 and TFRecord files read back row by row equal the Parquet rows
after padding, and their statistics equal `mlmprep stats` exactly."""

import gzip
import hashlib
import json
import random
import struct

import numpy as np
import pyarrow.parquet as pq
import pytest
from click.testing import CliRunner

h5py = pytest.importorskip("h5py", reason="h5py (mlmprep[hdf5]) is not installed")
crc32c = pytest.importorskip("crc32c", reason="crc32c (mlmprep[tfrecord]) is not installed")
example_pb2 = pytest.importorskip("tfrecord.example_pb2", reason="mlmprep[tfrecord] missing")

from mlmprep.cli.main import main  # noqa: E402
from mlmprep.outputs.stats import compute_stats  # noqa: E402

from .helpers import SAMPLE_DIR, run_build  # noqa: E402

MASK_ID = 103


@pytest.fixture(scope="module")
def build_dir(tmp_path_factory):
    out = tmp_path_factory.mktemp("export-build")
    run_build([SAMPLE_DIR], out, shard_size=300)
    return out


def export(build, dest, *options):
    result = CliRunner().invoke(main, ["export", str(build), str(dest), "-q", *options])
    assert "Traceback" not in result.output
    return result


def parquet_rows(path) -> list[dict]:
    """Rows of a shard padded by hand, as the reference generators pad them."""
    rows = []
    for row in pq.read_table(path).to_pylist():
        n, k = len(row["input_ids"]), len(row["masked_lm_positions"])
        rows.append(
            {
                "input_ids": row["input_ids"] + [0] * (128 - n),
                "input_mask": [1] * n + [0] * (128 - n),
                "segment_ids": row["token_type_ids"] + [0] * (128 - n),
                "masked_lm_positions": row["masked_lm_positions"] + [0] * (20 - k),
                "masked_lm_ids": row["masked_lm_ids"] + [0] * (20 - k),
                "masked_lm_weights": [1.0] * k + [0.0] * (20 - k),
                "next_sentence_labels": [row["next_sentence_label"]],
            }
        )
    return rows


def masked_crc(data: bytes) -> int:
    crc = crc32c.crc32c(data)
    return (((crc >> 15) | (crc << 17)) + 0xA282EAD8) & 0xFFFFFFFF


def read_tfrecords(path) -> list[dict]:
    """Records parsed with the protobuf library, framing and CRCs checked here."""
    data = (gzip.decompress if str(path).endswith(".gz") else bytes)(path.read_bytes())
    rows, at = [], 0
    while at < len(data):
        header = data[at : at + 8]
        (length,) = struct.unpack("<Q", header)
        assert struct.unpack("<I", data[at + 8 : at + 12])[0] == masked_crc(header)
        record = data[at + 12 : at + 12 + length]
        assert struct.unpack("<I", data[at + 12 + length : at + 16 + length])[0] == (
            masked_crc(record)
        )
        features = example_pb2.Example.FromString(record).features.feature
        rows.append(
            {
                name: list(
                    feature.float_list.value
                    if name == "masked_lm_weights"
                    else feature.int64_list.value
                )
                for name, feature in features.items()
            }
        )
        at += 16 + length
    return rows


def all_parquet_rows(build) -> list[dict]:
    """The padded rows of every train shard, in the build's order."""
    index = json.loads((build / "index.json").read_text())
    return [row for shard in index["shards"] for row in parquet_rows(build / shard["name"])]


def hdf5_rows(path) -> list[dict]:
    with h5py.File(path) as f:
        assert {name: f[name].dtype.str for name in f} == {
            "input_ids": "<i4",
            "input_mask": "|i1",
            "segment_ids": "|i1",
            "masked_lm_positions": "<i4",
            "masked_lm_ids": "<i4",
            "next_sentence_labels": "|i1",
        }
        assert all(f[name].compression == "gzip" for name in f)
        columns = {name: f[name][:].tolist() for name in f}
    columns["next_sentence_labels"] = [[v] for v in columns["next_sentence_labels"]]
    return [dict(zip(columns, values)) for values in zip(*columns.values())]


def test_hdf5_rows_equal_the_padded_parquet_rows_in_balanced_files(build_dir, tmp_path):
    result = export(build_dir, tmp_path / "h5", "--format", "nvidia-hdf5", "--num-files", "5")
    assert result.exit_code == 0, result.output
    files = sorted((tmp_path / "h5").glob("*.hdf5"))
    assert [f.name for f in files] == [f"training-{i:05d}-of-00005.hdf5" for i in range(5)]
    per_file = [hdf5_rows(path) for path in files]
    expected = all_parquet_rows(build_dir)
    for row in expected:
        del row["masked_lm_weights"]  # NVIDIA's files have none: positions 0 are padding
    assert [row for rows in per_file for row in rows] == expected
    size = len(expected) // 5
    assert [len(rows) for rows in per_file] == [size + (i < len(expected) % 5) for i in range(5)]


@pytest.mark.parametrize("compress", [False, True])
def test_tfrecord_rows_equal_the_padded_parquet_rows(build_dir, tmp_path, compress):
    options = ["--format", "tfrecord", *(["--gzip"] if compress else [])]
    assert export(build_dir, tmp_path / "tf", *options).exit_code == 0
    suffix = ".tfrecord.gz" if compress else ".tfrecord"
    files = sorted((tmp_path / "tf").glob(f"train-*{suffix}"))
    assert len(files) >= 2
    got = [row for path in files for row in read_tfrecords(path)]
    assert got == all_parquet_rows(build_dir)


def test_the_default_export_trains_every_row_within_two_epochs_of_nvidias_loop(tmp_path):
    """NVIDIA's run_pretraining.py (HDF5 era), world size 1: each epoch it lists the files
    of --input_dir whose name holds "training", sorts them, shuffles them with
    random.Random(seed + epoch), trains the first and prefetches the next while training,
    and leaves the epoch when the prefetch loop ends: the last file is never trained
    (range(f_start_id + 1, len(files)) trains files 0..N-2). Seed 42 is its default."""
    build = tmp_path / "out"
    run_build([SAMPLE_DIR], build)
    assert export(build, tmp_path / "h5", "--format", "nvidia-hdf5").exit_code == 0
    trained = []
    for epoch in range(2):
        files = sorted(str(p) for p in (tmp_path / "h5").iterdir() if "training" in p.name)
        random.Random(42 + epoch).shuffle(files)
        for data_file in files[: len(files) - 1]:
            with h5py.File(data_file) as f:
                trained += [tuple(ids) for ids in f["input_ids"][:].tolist()]
    expected = {tuple(row["input_ids"]) for row in all_parquet_rows(build)}
    assert len(files) >= 2
    assert set(trained) == expected


def test_one_hdf5_file_is_written_when_asked_with_a_warning_why_not(build_dir, tmp_path):
    result = export(build_dir, tmp_path / "h5", "--format", "nvidia-hdf5", "--num-files", "1")
    assert result.exit_code == 0
    assert "warning: one training file" in result.stderr
    assert "trains on nothing" in result.stderr
    assert len(list((tmp_path / "h5").glob("*.hdf5"))) == 1


def test_statistics_of_the_exported_files_equal_mlmprep_stats(build_dir, tmp_path):
    export(build_dir, tmp_path / "h5", "--format", "nvidia-hdf5")
    lengths, masked, labels, split = [], 0, [], np.zeros(3, np.int64)
    for path in sorted((tmp_path / "h5").glob("*.hdf5")):
        with h5py.File(path) as f:
            ids, weights = f["input_ids"][:], f["masked_lm_positions"][:]
            positions, originals = f["masked_lm_positions"][:], f["masked_lm_ids"][:]
            lengths += f["input_mask"][:].sum(axis=1).tolist()
            labels += f["next_sentence_labels"][:].tolist()
            for row in range(len(ids)):
                real = np.flatnonzero(weights[row] > 0)  # position 0 is [CLS], never masked
                now = ids[row, positions[row, real]]
                is_mask = now == MASK_ID
                kept = (now == originals[row, real]) & ~is_mask
                split += [is_mask.sum(), (~is_mask & ~kept).sum(), kept.sum()]
                masked += len(real)
    stats = compute_stats(str(build_dir))
    assert stats["instances"] == len(lengths)
    assert stats["mean_tokens"] == round(sum(lengths) / len(lengths), 3)
    assert stats["frac_shorter_than_max"] == round(sum(n < 128 for n in lengths) / len(lengths), 4)
    assert stats["mean_masked"] == round(masked / len(lengths), 3)
    assert stats["masked_per_token"] == round(masked / sum(lengths), 4)
    assert stats["nsp_random_fraction"] == round(sum(labels) / len(labels), 4)
    names = ("mask", "random", "kept")
    assert stats["mask_split"] == {n: round(v / split.sum(), 4) for n, v in zip(names, split)}


def test_builds_that_do_not_map_are_refused_in_one_line(tmp_path):
    run_build([SAMPLE_DIR], tmp_path / "dynamic", masking="dynamic")
    run_build([SAMPLE_DIR], tmp_path / "none", objective="none")
    for name, reason in (("dynamic", "rebuild with --masking static"), ("none", "--objective")):
        result = export(tmp_path / name, tmp_path / f"x-{name}", "--format", "nvidia-hdf5")
        assert result.exit_code == 2
        assert result.stderr.startswith(f"Error: {tmp_path / name}: ") and reason in result.stderr
        assert result.stderr.count("\n") == 1


def test_an_sop_build_writes_its_order_label_and_says_so(tmp_path):
    run_build([SAMPLE_DIR], tmp_path / "sop", objective="sop")
    result = export(tmp_path / "sop", tmp_path / "h5", "--format", "nvidia-hdf5")
    assert result.exit_code == 0
    assert "label column holds its sentence_order_label" in result.stdout
    table = pq.read_table(next((tmp_path / "sop").glob("*.parquet")))
    labels = []
    for path in sorted((tmp_path / "h5").glob("*.hdf5")):
        with h5py.File(path) as f:
            labels += f["next_sentence_labels"][:].tolist()
    assert labels == table["sentence_order_label"].to_pylist()


def test_a_failed_export_resumes_and_skips_finished_files(build_dir, tmp_path, monkeypatch):
    from mlmprep.outputs.export.reference import Hdf5Writer

    original = Hdf5Writer.write
    calls = []

    def fail_on_second(self, batches, rows, path, file):
        calls.append(path)
        if len(calls) == 2:
            raise OSError(28, "No space left on device", path)
        return original(self, batches, rows, path, file)

    monkeypatch.setattr(Hdf5Writer, "write", fail_on_second)  # in this process: one worker
    result = export(build_dir, tmp_path / "h5", "--format", "nvidia-hdf5", "--workers", "1")
    assert result.exit_code == 1 and "run the same command again to resume" in result.stderr
    first = sorted((tmp_path / "h5").glob("*.hdf5"))
    assert len(first) == 1
    written_at = first[0].stat().st_mtime_ns
    monkeypatch.undo()  # the rest on two workers
    resumed = export(build_dir, tmp_path / "h5", "--format", "nvidia-hdf5", "--workers", "2")
    assert resumed.exit_code == 0
    assert first[0].stat().st_mtime_ns == written_at  # not written again
    summary = json.loads((tmp_path / "h5" / "export.json").read_text())
    assert len(list((tmp_path / "h5").glob("*.hdf5"))) == len(summary["files"]) >= 2
    assert not (tmp_path / "h5" / ".mlmprep-work").exists()


@pytest.mark.parametrize(
    ("fmt", "options"),
    [
        ("nvidia-hdf5", []),
        ("tfrecord", ["--gzip"]),
        ("mds", ["--compression", "zstd"]),
        ("lddl", ["--num-files", "3"]),
    ],
)
def test_every_format_writes_the_same_bytes_again_and_after_a_lost_file(
    build_dir, tmp_path, fmt, options
):
    def digests(dest):
        return {
            str(p.relative_to(dest)): hashlib.sha256(p.read_bytes()).hexdigest()
            for p in sorted(dest.rglob("*"))
            if p.is_file()
        }

    first, second = tmp_path / "first", tmp_path / "second"
    for dest in (first, second):
        assert export(build_dir, dest, "--format", fmt, *options).exit_code == 0
    assert digests(first) == digests(second)
    data_files = [p for p in first.rglob("*") if p.is_file() and p.suffix != ".json"]
    victim = sorted(data_files)[1]
    victim.unlink()
    assert export(build_dir, first, "--format", fmt, *options).exit_code == 0
    assert digests(first) == digests(second)


def test_exports_never_mix_in_one_destination(build_dir, tmp_path):
    other = tmp_path / "other"
    run_build([SAMPLE_DIR], other, dupe_factor=2)
    dest = tmp_path / "h5"
    assert export(build_dir, dest, "--format", "nvidia-hdf5", "--num-files", "3").exit_code == 0
    for fmt in ("nvidia-hdf5", "tfrecord"):
        refused = export(other, dest, "--format", fmt)
        assert refused.exit_code == 1 and "holds another export" in refused.stderr
        assert "--overwrite" in refused.stderr and refused.stderr.count("\n") == 1
    assert len(list(dest.glob("*.hdf5"))) == 3  # untouched
    assert export(other, dest, "--format", "nvidia-hdf5", "--overwrite").exit_code == 0
    summary = json.loads((dest / "export.json").read_text())
    assert sorted(p.name for p in dest.glob("*.hdf5")) == sorted(
        f["name"] for f in summary["files"]
    )
    assert sum(f["rows"] for f in summary["files"]) == sum(
        s["rows"] for s in json.loads((other / "index.json").read_text())["shards"]
    )


def test_files_no_export_wrote_are_never_removed(build_dir, tmp_path):
    dest = tmp_path / "h5"
    dest.mkdir()
    (dest / "notes.txt").write_text("mine")
    result = export(build_dir, dest, "--format", "nvidia-hdf5", "--overwrite")
    assert result.exit_code == 1 and "notes.txt" in result.stderr
    assert [p.name for p in dest.iterdir()] == ["notes.txt"]


def test_the_same_export_again_does_nothing(build_dir, tmp_path):
    dest = tmp_path / "h5"
    assert export(build_dir, dest, "--format", "nvidia-hdf5").exit_code == 0
    times = {p.name: p.stat().st_mtime_ns for p in dest.iterdir()}
    again = export(build_dir, dest, "--format", "nvidia-hdf5")
    assert again.exit_code == 0 and "already holds this export; nothing to do" in again.stdout
    assert {p.name: p.stat().st_mtime_ns for p in dest.iterdir()} == times


@pytest.mark.parametrize("fmt", ["mds", "lddl", "nvidia-hdf5", "tfrecord"])
def test_any_worker_count_writes_the_same_bytes(build_dir, tmp_path, fmt):
    """Each file is one task; the format's index files are merged at the end. TFRecord's
    features were written in hash order, so before the fix two one-process runs differed."""
    found = {}
    for workers in ("1", "1", "3"):
        dest = tmp_path / f"{fmt}-{workers}-{len(found)}"
        result = export(build_dir, dest, "--format", fmt, "--num-files", "4", "--workers", workers)
        assert result.exit_code == 0, result.output
        found[dest.name] = {
            str(p.relative_to(dest)): hashlib.sha256(p.read_bytes()).hexdigest()
            for p in sorted(dest.rglob("*"))
            if p.is_file() and p.name != "export.json"
        }
    first, *others = found.values()
    assert len(first) >= 4 and all(other == first for other in others)
