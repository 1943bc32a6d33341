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
        assert buckets > 1 and units >= 128
    if sizing.unit_size > 8 * MiB and not sizing.group_buckets:  # one level: ~256 units
        assert spill / (units * buckets) >= MiB
        assert units <= 257
    if sizing.group_buckets:  # two levels: sqrt(spill / 1 MiB) units, slices per group
        assert units >= math.isqrt(int(spill // MiB)) - 1
        assert spill / (units * sizing.group_count) >= 0.99 * MiB
        assert sizing.unit_size <= 4 * 1024 * MiB


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
    units = math.isqrt(10**12 * 18 // 10 // MiB)  # sqrt(spill / 1 MiB): 1310
    unit_mb = math.ceil(10**12 / units) / 1e6
    assert f"units:            {units} of about {unit_mb:.1f} MB" in result.stdout
    assert re.search(r"shuffle: +two levels, [\d,]+ groups of \d+ neighbouring", result.stdout)
    assert re.search(r"time: +about [\d.]+ h with 2 workers", result.stdout)


def plan_json(*args: str) -> dict:
    result = CliRunner().invoke(main, ["plan", str(SAMPLE_DIR), "out", "--json", *args])
    assert result.exit_code == 0, result.output
    return json.loads(result.stdout)


def test_the_plan_at_8_tb_on_1000_workers_keeps_every_worker_busy():
    """Web scale: at least 1,000 unit tasks of at most 4 GB, and the units phase within
    1.3x of the input spread evenly over the workers at the sample's rate."""
    for options in (
        ["--dupe-factor", "5"],
        ["--objective", "none", "--masking", "dynamic", "--max-seq-length", "1024"],
    ):
        plan = plan_json("--input-bytes", "8e12", "--workers", "1000", *options)
        phases = {phase["name"]: phase for phase in plan["resources"]["phases"]}
        assert list(phases) == ["units", "groups", "shards", "export"]
        assert phases["units"]["tasks"] == plan["tasks"] >= 1000
        assert plan["raw_bytes"] / plan["tasks"] <= 4e9
        ideal = 8e12 * plan["sample"]["seconds"] / 1000
        assert ideal <= phases["units"]["seconds"] <= 1.3 * ideal
        assert phases["groups"]["tasks"] >= 1000
        # a phase is no faster than its largest task, nor than its tasks spread evenly
        for phase in phases.values():
            assert phase["seconds"] >= phase["largest_task_seconds"]
        build = sum(p["seconds"] for name, p in phases.items() if name != "export")
        assert abs(plan["resources"]["seconds"] - build) < 1


def test_the_plan_counts_the_second_level_in_disk_and_requests():
    one = plan_json("--input-bytes", "1TB", "--shuffle-groups", "0")
    two = plan_json("--input-bytes", "1TB")
    groups = two["sizing"]["group_buckets"] and math.ceil(
        two["sizing"]["buckets"]["train"] / two["sizing"]["group_buckets"]
    )
    assert groups > 1 and not one["sizing"]["group_buckets"]
    assert two["spill_bytes"] == 2 * one["spill_bytes"]  # the groups copy the units' files
    assert two["object_store_reads"] == two["tasks"] * groups + two["sizing"]["buckets"]["train"]
    assert one["object_store_reads"] == one["tasks"] * one["sizing"]["buckets"]["train"]
    # a read of the first level is one unit's range of a group, not of a bucket
    assert abs(two["slice_bytes"] - one["spill_bytes"] / (two["tasks"] * groups)) <= 1
    assert (
        two["slice_bytes"] > one["slice_bytes"] * (two["sizing"]["buckets"]["train"] / groups) * 0.9
    )


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
