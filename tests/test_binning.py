import pyarrow.parquet as pq
import pytest

from mlmprep.outputs.validate import validate

from .helpers import SAMPLE_DIR, run_build


@pytest.fixture(scope="module")
def builds(tmp_path_factory):
    root = tmp_path_factory.mktemp("binning")
    run_build([SAMPLE_DIR], root / "plain", short_seq_prob=0.5)
    run_build([SAMPLE_DIR], root / "binned", short_seq_prob=0.5, bin_size=32)
    return root


def test_length_bin_column_and_one_bin_per_row_group(builds):
    shard = next((builds / "binned").glob("train-*.parquet"))
    parquet = pq.ParquetFile(shard)
    assert parquet.schema_arrow.names[-2:] == ["length_bin", "num_tokens"]
    bins_seen = []
    for group in range(parquet.num_row_groups):
        table = parquet.read_row_group(group, columns=["length_bin", "num_tokens"])
        bins = set(table.column("length_bin").to_pylist())
        assert len(bins) == 1, "each row group holds one length bin"
        (length_bin,) = bins
        assert all((n - 1) // 32 == length_bin for n in table.column("num_tokens").to_pylist())
        bins_seen.append(length_bin)
    assert len(set(bins_seen)) >= 3
    assert validate(str(builds / "binned"))["ok"]


def test_binning_only_reorders_rows(builds):
    def rows(name):
        table = pq.read_table(next((builds / name).glob("train-*.parquet")))
        return sorted(map(tuple, table.column("input_ids").to_pylist()))

    assert rows("plain") == rows("binned")


def test_iterable_dataset_batches_stay_in_one_bin(builds):
    pytest.importorskip("torch", reason="the torch extra is not installed")
    from mlmprep.torch import MlmprepIterableDataset

    batches = list(MlmprepIterableDataset(str(builds / "binned"), batch_size=32))
    assert (
        sum(len(b) for b in batches)
        == pq.read_metadata(next((builds / "binned").glob("train-*.parquet"))).num_rows
    )
    for batch in batches:
        assert len(batch) <= 32
        assert len({row["length_bin"] for row in batch}) == 1
