import json
import math

from click.testing import CliRunner
from hypothesis import given, settings
from hypothesis import strategies as st

from mlmprep.cli.main import main
from mlmprep.core.config import BuildConfig
from mlmprep.pipeline.sizing import (
    WINDOW_BYTES,
    choose_sizing,
    estimated_instances,
    estimated_spill_bytes,
)

from .helpers import SAMPLE_DIR, run_build

MiB = 1024 * 1024


def test_small_corpora_keep_8_mib_units_and_buckets_of_one_shard():
    config = BuildConfig()
    sizing = choose_sizing(50_000_000, config)
    rows = estimated_instances(50_000_000, config)
    assert sizing.unit_size == sizing.window_size == 8 * MiB
    # about one shard a bucket: enough buckets for the rows, not one more
    buckets = sizing.buckets["train"]
    assert (buckets - 1) * config.shard_size < rows <= buckets * config.shard_size
    assert sizing.buckets["validation"] == 0


@settings(max_examples=60, deadline=None)
@given(raw=st.integers(min_value=10**9, max_value=10**13), dupe=st.integers(1, 10))
def test_large_corpora_keep_buckets_under_256_mib_and_slices_over_1_mib(raw, dupe):
    config = BuildConfig(dupe_factor=dupe)
    sizing = choose_sizing(raw, config)
    spill = estimated_spill_bytes(raw, config)
    buckets = sum(sizing.buckets.values())
    units = math.ceil(raw / sizing.unit_size)
    assert sizing.window_size == 8 * MiB <= sizing.unit_size
    if sizing.unit_size > 8 * MiB:  # grown: the rule's second regime
        assert spill / buckets <= 256 * MiB
        assert spill / (units * buckets) >= MiB
        assert buckets > 1 and 128 <= units <= 257


def test_an_explicit_unit_size_is_kept():
    sizing = choose_sizing(10**12, BuildConfig(unit_size=64 * MiB, validation_fraction=0.1))
    assert sizing.unit_size == 64 * MiB and sizing.window_size == WINDOW_BYTES
    assert sizing.buckets["validation"] > 0


def test_plan_says_what_build_then_does(tmp_path):
    result = CliRunner().invoke(
        main, ["plan", str(SAMPLE_DIR), str(tmp_path / "out"), "--unit-size", "65536", "--json"]
    )
    assert result.exit_code == 0, result.output
    plan = json.loads(result.stdout)
    run_build([SAMPLE_DIR], tmp_path / "out", unit_size=65536)
    index = json.loads((tmp_path / "out" / "index.json").read_text())
    assert plan["units"] == index["plan"]["units"]
    assert plan["sizing"]["buckets"] == index["plan"]["buckets"]
    assert abs(plan["tasks"] - index["plan"]["tasks"]) <= 2  # parts of streamed files
    assert plan["rows"] >= sum(s["rows"] for s in index["shards"])  # an upper estimate
    assert plan["work_dir_files"] >= 2 * index["plan"]["tasks"] + len(index["shards"])


def test_plan_text_for_an_assumed_size():
    result = CliRunner().invoke(main, ["plan", "x", "out", "--input-bytes", str(10**12)])
    assert result.exit_code == 0, result.output
    assert "input:            1.0 TB of text (assumed)" in result.stdout
    assert "range reads of about 1.1 MB" in result.stdout  # 1 MiB slices


def test_plan_takes_every_build_option_and_the_run_options_change_nothing(tmp_path):
    base = ["plan", str(SAMPLE_DIR), str(tmp_path / "out"), "--dupe-factor", "2", "--json"]
    run_only = ["--workers", "2", "--engine", "local", "--tmp-dir", str(tmp_path), "--strict",
                "--overwrite", "-q", "--tokenizer-backend", "hf", "--verify"]  # fmt: skip
    plain = CliRunner().invoke(main, base)
    with_run = CliRunner().invoke(main, [*base, *run_only])
    assert plain.exit_code == with_run.exit_code == 0, with_run.output
    assert json.loads(with_run.stdout) == json.loads(plain.stdout)
