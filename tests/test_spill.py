import resource
import subprocess
import sys

import numpy as np
import pyarrow as pa
import pytest
from hypothesis import given, settings
from hypothesis import strategies as st

from mlmprep.core.config import BuildConfig
from mlmprep.formats.schema import output_schema
from mlmprep.pipeline.spill import (
    BucketDealer,
    SpillSlice,
    cast_batch,
    dealt_rows,
    read_slices,
    spill_schema,
    write_spill,
)

from .helpers import SAMPLE_DIR, shard_hashes

SCHEMA = pa.schema([pa.field("row", pa.int64()), pa.field("ids", pa.list_(pa.int32()))])


def batch_of(rows: range) -> pa.RecordBatch:
    return pa.record_batch(
        [pa.array(list(rows), pa.int64()), pa.array([[r] * (r % 4) for r in rows])],
        schema=SCHEMA,
    )


def deal(tmp_path, seed: int, n_buckets: int) -> list[list[int]]:
    """Rows 0..29, written as two passes, as the unit's spill file holds them per bucket."""
    staging = str(tmp_path / f"staging-{seed}")
    dealer = BucketDealer(n_buckets, np.random.default_rng(seed), staging, SCHEMA)
    dealer.write(batch_of(range(0, 13)))
    dealer.write(batch_of(range(13, 30)))
    path = str(tmp_path / f"unit-{seed}.arrows")
    offsets = write_spill(path, {"train": dealer}, SCHEMA)["train"]
    assert len(offsets) == n_buckets + 1 and offsets == sorted(offsets)
    assert not (tmp_path / f"staging-{seed}").exists()
    buckets = []
    for bucket in range(n_buckets):
        table = read_slices([SpillSlice(path, offsets[bucket], offsets[bucket + 1])], SCHEMA)
        rows = table.column("row").to_pylist()
        assert table.column("ids").to_pylist() == [[r] * (r % 4) for r in rows]
        buckets.append(rows)
    assert dealer.rows.tolist() == [len(rows) for rows in buckets]
    return buckets


def test_a_unit_file_holds_each_bucket_as_one_slice_dealt_round_robin(tmp_path):
    buckets = deal(tmp_path, seed=0, n_buckets=5)
    first = next(b for b, rows in enumerate(buckets) if 0 in rows)
    for bucket, rows in enumerate(buckets):
        assert rows == list(range((bucket - first) % 5, 30, 5))  # in order, every fifth row


def test_the_first_bucket_is_drawn_from_the_units_stream(tmp_path):
    firsts = {
        next(b for b, rows in enumerate(deal(tmp_path, seed, 5)) if 0 in rows) for seed in range(40)
    }
    assert firsts == set(range(5))


@settings(max_examples=60, deadline=None)
@given(
    sizes=st.lists(st.integers(0, 40), min_size=1, max_size=5),
    n_buckets=st.integers(1, 12),
    seed=st.integers(0, 1000),
)
def test_the_rows_of_each_bucket_follow_from_the_first_bucket(
    tmp_path_factory, sizes, n_buckets, seed
):
    """What a two-level shuffle's unit records rely on: a unit's rows per bucket are
    known from its row count and first bucket alone."""
    staging = str(tmp_path_factory.mktemp("deal") / "staging")
    dealer = BucketDealer(n_buckets, np.random.default_rng(seed), staging, SCHEMA)
    start = 0
    for size in sizes:
        dealer.write(batch_of(range(start, start + size)))
        start += size
    dealer.discard()
    counted = dealt_rows(start, dealer.first_bucket, n_buckets, range(n_buckets))
    assert counted.tolist() == dealer.rows.tolist()
    part = range(n_buckets // 3, n_buckets)
    assert (
        dealt_rows(start, dealer.first_bucket, n_buckets, part).tolist()
        == counted[part.start :].tolist()
    )


def test_slices_are_concatenated_in_the_order_given(tmp_path):
    files = []
    for unit in range(3):
        dealer = BucketDealer(1, np.random.default_rng(unit), str(tmp_path / f"s{unit}"), SCHEMA)
        dealer.write(batch_of(range(unit * 10, unit * 10 + 4)))
        path = str(tmp_path / f"unit-{unit}.arrows")
        offsets = write_spill(path, {"train": dealer}, SCHEMA)["train"]
        files.append(SpillSlice(path, offsets[0], offsets[1]))
    table = read_slices(files, SCHEMA)
    assert table.column("row").to_pylist() == [0, 1, 2, 3, 10, 11, 12, 13, 20, 21, 22, 23]


@pytest.mark.parametrize("masking", ["static", "dynamic"])
def test_spilled_ids_take_16_bits_only_when_the_vocabulary_fits(masking):
    schema = output_schema(BuildConfig(masking=masking, whole_word_mask=True))
    fits, too_big = spill_schema(schema, 2**16), spill_schema(schema, 2**16 + 1)
    assert fits.names == too_big.names == schema.names
    for name in schema.names:
        wide, narrow = schema.field(name).type, fits.field(name).type
        if name in ("input_ids", "masked_lm_ids"):
            assert narrow == pa.list_(pa.uint16()) and too_big.field(name).type == wide
        elif name in ("masked_lm_positions", "word_ids"):  # word ids of specials are -1
            assert narrow == too_big.field(name).type == pa.list_(pa.int16())
        else:
            assert narrow == too_big.field(name).type == wide


def test_a_value_the_spill_schema_cannot_hold_is_an_error_not_a_wrap():
    schema = pa.schema([pa.field("input_ids", pa.list_(pa.int32()))])
    spilled = spill_schema(schema, 30522)
    ids = [[101, 65535, 102]]
    batch = pa.record_batch([pa.array(ids)], schema=schema)
    assert cast_batch(batch, spilled).column(0).to_pylist() == ids
    with pytest.raises(pa.ArrowInvalid):
        cast_batch(pa.record_batch([pa.array([[101, 65536]])], schema=schema), spilled)


def limit_open_files() -> None:
    resource.setrlimit(resource.RLIMIT_NOFILE, (64, 64))


def test_hundreds_of_buckets_under_a_64_file_limit(tmp_path):
    """--shard-size 4 on the sample makes about 175 buckets; before, every unit held one
    open writer per bucket and failed with 'Too many open files'."""
    outputs = []
    for workers in ("1", "2"):
        out = tmp_path / f"out-{workers}"
        command = [sys.executable, "-m", "mlmprep.cli", "build", str(SAMPLE_DIR), str(out)]
        command += ["--shard-size", "4", "--unit-size", "100000", "--workers", workers, "-q"]
        done = subprocess.run(command, capture_output=True, text=True, preexec_fn=limit_open_files)
        assert done.returncode == 0, done.stderr
        outputs.append(shard_hashes(out))
    assert len(outputs[0]) > 150
    assert outputs[0] == outputs[1]


def test_a_failed_unit_leaves_no_staging_file_in_the_system_temp_dir(tmp_path, monkeypatch):
    """Guards the system's temporary directory: a unit whose spill directory is a URL
    stages its rows there, and before the fix a failure left those files behind."""
    import tempfile

    from mlmprep.core.errors import OutputError
    from mlmprep.pipeline.build import RunOptions, build

    system_tmp = tmp_path / "system-tmp"
    system_tmp.mkdir()
    monkeypatch.setattr(tempfile, "tempdir", str(system_tmp))
    staged = []

    def failing_spill(path, dealers, schema):
        staged.extend(system_tmp.iterdir())
        raise OSError(28, "No space left on device")

    monkeypatch.setattr("mlmprep.pipeline.units.write_spill", failing_spill)
    with pytest.raises(OutputError, match="no space left"):
        build([str(SAMPLE_DIR)], "memory://staging-test/out", BuildConfig(), RunOptions())
    assert staged  # the unit had staged rows there
    assert list(system_tmp.iterdir()) == []
