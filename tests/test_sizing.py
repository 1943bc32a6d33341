import json
import math
import re

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
    assert plan["sample"]["sampled_bytes"] > 0.9 * plan["raw_bytes"]  # all of a small corpus
    rows = sum(s["rows"] for s in index["shards"])
    assert abs(plan["rows"] / rows - 1) < 0.05
    assert abs(plan["spill_bytes"] / index["run"]["peak_spill_bytes"] - 1) < 0.1  # small units
    assert sum(plan["shards"].values()) == len(index["shards"])
    assert plan["work_dir_files"] >= 2 * index["plan"]["tasks"] + len(index["shards"])


def test_plan_text_for_an_assumed_size(tmp_path):
    result = CliRunner().invoke(
        main,
        ["plan", str(SAMPLE_DIR), str(tmp_path), "--input-bytes", str(10**12), "--workers", "2"],
    )
    assert result.exit_code == 0, result.output
    assert "input:            1.0 TB of text (assumed, like the inputs; 309.3 KB built" in (
        result.stdout
    )
    assert "units:            255 of about 3.9 GB" in result.stdout  # 1 TB / 255
    assert re.search(r"time: +about [\d.]+ h with 2 workers", result.stdout)


def _without_measured_time(plan: dict) -> dict:
    """A plan without what depends on how fast this machine ran the sample, and on the
    memory of the process that planned it."""
    measured = {"resources", "cores_for_target"}
    sample = {k: v for k, v in plan["sample"].items() if k not in ("seconds", "process_rss")}
    return {**{k: v for k, v in plan.items() if k not in measured}, "sample": sample}


def test_plan_takes_every_build_option_and_the_run_options_change_nothing(tmp_path):
    base = ["plan", str(SAMPLE_DIR), str(tmp_path / "out"), "--dupe-factor", "2", "--json"]
    run_only = ["--engine", "local", "--tmp-dir", str(tmp_path), "--strict",
                "--overwrite", "-q", "--tokenizer-backend", "hf", "--verify"]  # fmt: skip
    plain = CliRunner().invoke(main, [*base, "--workers", "2"])
    with_run = CliRunner().invoke(main, [*base, *run_only, "--workers", "2"])
    assert plain.exit_code == with_run.exit_code == 0, with_run.output
    plain_plan, run_plan = json.loads(plain.stdout), json.loads(with_run.stdout)
    assert _without_measured_time(run_plan) == _without_measured_time(plain_plan)
    assert run_plan["resources"]["seconds"] > 0 and run_plan["workers"] == plain_plan["workers"]
