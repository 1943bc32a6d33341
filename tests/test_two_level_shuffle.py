"""The two-level shuffle (pipeline/groups.py) writes the shards of the one-level shuffle,
for any group count and worker count, and resumes after SIGKILL in any phase; the sizing
takes it only where one level runs out of units."""

import json
import math
import subprocess
import sys
from pathlib import Path

import pytest

from mlmprep.core.config import BuildConfig
from mlmprep.pipeline.build import RunOptions, build
from mlmprep.pipeline.sizing import choose_sizing

from .helpers import kill_when, repeated_sample, shard_hashes

OPTIONS = {"unit_size": 32 * 1024, "shard_size": 150}
MiB = 1 << 20


@pytest.fixture(scope="module")
def corpus(tmp_path_factory) -> Path:
    """About 1.2 MB of plain text: ~37 units, 25 buckets of one shard."""
    return repeated_sample(tmp_path_factory.mktemp("groups-corpus"), 4)


def make(corpus: Path, out: Path, workers: int = 1, groups: int | None = None, **extra) -> dict:
    config = BuildConfig(**{**OPTIONS, **extra})
    build([str(corpus)], str(out), config, RunOptions(workers=workers, shuffle_groups=groups))
    return json.loads((out / "index.json").read_text())


@pytest.fixture(scope="module")
def one_level(corpus, tmp_path_factory) -> dict[str, str]:
    out = tmp_path_factory.mktemp("one-level")
    index = make(corpus, out)
    assert index["plan"]["groups"] == 0
    assert index["plan"]["buckets"]["train"] > 20
    return shard_hashes(out)


@pytest.mark.parametrize("workers,groups", [(1, 1), (2, 4), (3, 7), (2, 1000)])
def test_groups_write_the_shards_of_one_level(corpus, one_level, tmp_path, workers, groups):
    out = tmp_path / "out"
    buckets = len(one_level)  # one shard per bucket at this size
    groups = min(groups, buckets)
    index = make(corpus, out, workers, groups)
    per_group = math.ceil(buckets / groups)
    assert index["plan"]["group_buckets"] == per_group
    assert index["plan"]["groups"] == math.ceil(buckets / per_group)
    assert shard_hashes(out) == one_level
    assert not (out / ".mlmprep-work").exists()


def test_groups_of_both_splits(corpus, tmp_path):
    plain, grouped = tmp_path / "plain", tmp_path / "grouped"
    make(corpus, plain, validation_fraction=0.2)
    index = make(corpus, grouped, 2, 5, validation_fraction=0.2)
    assert index["plan"]["buckets"]["validation"] >= 2
    assert index["counts"]["validation"]["instances"] > 0
    hashes = shard_hashes(grouped)
    assert any(name.startswith("validation-") for name in hashes)
    assert hashes == shard_hashes(plain)


def command(corpus: Path, out: Path, *extra: str) -> list[str]:
    return [
        sys.executable, "-m", "mlmprep.cli", "build", str(corpus), str(out), "--quiet",
        "--workers", "1", "--unit-size", str(OPTIONS["unit_size"]),
        "--shard-size", str(OPTIONS["shard_size"]), "--shuffle-groups", "12", *extra,
    ]  # fmt: skip


@pytest.mark.parametrize("phase,count", [("units", 4), ("groups", 2), ("shards", 3)])
def test_killed_in_any_phase_resumes_to_the_same_bytes(corpus, one_level, tmp_path, phase, count):
    out = tmp_path / "out"
    process = subprocess.Popen(command(corpus, out))
    kill_when(process, out / ".mlmprep-work" / phase, count)
    if phase == "groups":  # killed in the second level, before every group was written
        plan = json.loads((out / ".mlmprep-work" / "plan.json").read_text())
        groups = math.ceil(plan["sizing"]["buckets"]["train"] / plan["sizing"]["group_buckets"])
        assert len(list((out / ".mlmprep-work" / "groups").glob("*.json"))) < groups
    rerun = subprocess.run(command(corpus, out), capture_output=True, text=True)
    assert rerun.returncode == 0, rerun.stderr
    assert "resumed:" in rerun.stdout
    assert shard_hashes(out) == one_level


def test_a_lost_group_file_is_written_again_from_units_run_again(corpus, one_level, tmp_path):
    """Once every group is written, the units' spill files are removed; a group file lost
    after that (a wiped --tmp-dir) needs every unit again, and gets them."""
    out, spill = tmp_path / "out", tmp_path / "spill"
    process = subprocess.Popen(command(corpus, out, "--tmp-dir", str(spill)))
    kill_when(process, out / ".mlmprep-work" / "shards", 2)
    assert not list(spill.glob("*/unit-*.arrows"))  # only the groups read them
    # a unit's record holds a value per group, not per bucket (268,221 buckets at 8 TB)
    work = out / ".mlmprep-work"
    sizing = json.loads((work / "plan.json").read_text())["sizing"]
    groups = math.ceil(sizing["buckets"]["train"] / sizing["group_buckets"])
    assert groups < sizing["buckets"]["train"]
    record = json.loads(next((work / "units").glob("*.json")).read_text())
    assert len(record["rows"]["train"]) == groups
    assert len(record["spill"]["offsets"]["train"]) == groups + 1
    groups = sorted(spill.glob("*/group-train-*.arrows"))
    assert len(groups) > 3
    groups[1].unlink()
    rerun = subprocess.run(
        command(corpus, out, "--tmp-dir", str(spill)), capture_output=True, text=True
    )
    assert rerun.returncode == 0, rerun.stderr
    assert "redone:" in rerun.stdout
    assert shard_hashes(out) == one_level


def old_rule_units(raw: int, config: BuildConfig) -> int:
    """The unit count of the one-level rule, restated: units of 8 MiB while slices stay at
    1 MiB, else about 256 units with buckets of 256 MiB of spill."""
    spill = raw * config.dupe_factor * 1.8
    window = 8 * MiB
    instances = raw * config.dupe_factor / (3.0 * config.max_num_tokens * 0.9)
    shard_buckets = max(1, math.ceil(instances / config.shard_size))
    if spill / (max(1, math.ceil(raw / window)) * shard_buckets) >= MiB:
        return math.ceil(raw / window)
    buckets = max(1, math.ceil(spill / (256 * MiB)))
    units = max(1, int(spill // (buckets * MiB)))
    return math.ceil(raw / max(window, math.ceil(raw / units)))


@pytest.mark.parametrize("dupe", [1, 5, 10])
def test_one_level_below_a_few_gigabytes(dupe):
    """Every existing build keeps its units and one level: two levels begin only where
    one level stops adding units (7.6 GB at dupe 5, 3.8 GB at dupe 10)."""
    config = BuildConfig(dupe_factor=dupe)
    for raw in [10**k for k in range(3, 10)] + [2 * 10**9, 3 * 10**9]:
        sizing = choose_sizing(raw, config)
        assert sizing.group_buckets == 0, raw
        assert math.ceil(raw / sizing.unit_size) == old_rule_units(raw, config), raw


@pytest.mark.parametrize("dupe", [1, 5])
def test_units_and_groups_grow_with_the_input(dupe):
    config = BuildConfig(dupe_factor=dupe)
    previous = 0
    for raw in (10**11, 10**12, 8 * 10**12, 2 * 10**13):
        sizing = choose_sizing(raw, config)
        units = math.ceil(raw / sizing.unit_size)
        spill = raw * dupe * 1.8
        assert units > previous and units > old_rule_units(raw, config)
        assert sizing.unit_size <= 4 * 1024 * MiB
        assert sizing.group_count >= 2
        # a unit's slice of a group is one read of at least 1 MiB
        assert spill / (units * sizing.group_count) >= MiB * 0.99
        previous = units


@pytest.mark.parametrize(
    "args,message",
    [
        (["--units", "100000000"], "--units 100000000: this input"),
        (["--units", "4", "--unit-size", "65536"], "--units and --unit-size both size"),
        (["--units", "-2"], "Invalid value for '--units'"),
        (["--unit-size", "65536", "--shuffle-groups", "5000"], "--shuffle-groups 5000: this build"),
        (["--shuffle-groups", "-1"], "Invalid value for '--shuffle-groups'"),
    ],
)
def test_bad_sizes_are_one_line_and_write_nothing(corpus, tmp_path, args, message):
    out = tmp_path / "out"
    run = subprocess.run(
        [sys.executable, "-m", "mlmprep.cli", "build", str(corpus), str(out), *args],
        capture_output=True,
        text=True,
    )
    assert run.returncode == 2, run.stderr
    assert message in run.stderr
    assert "Traceback" not in run.stderr
    assert not out.exists()
