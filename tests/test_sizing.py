import json
import math

from click.testing import CliRunner

from mlmprep.cli.main import main
from mlmprep.core.config import BuildConfig
from mlmprep.pipeline.sizing import WINDOW_BYTES, choose_sizing

from .helpers import SAMPLE_DIR, run_build

MiB = 1024 * 1024


def test_small_corpora_keep_8_mib_units_and_buckets_of_one_shard():
    sizing = choose_sizing(50_000_000, BuildConfig())
    instances = 50_000_000 / (3.0 * 125 * 0.9)
    assert sizing.unit_size == sizing.window_size == WINDOW_BYTES
    assert sizing.buckets == {"train": math.ceil(instances / 100_000), "validation": 0}


def test_large_corpora_grow_units_so_slices_stay_one_mib():
    raw = 100 * 10**9
    sizing = choose_sizing(raw, BuildConfig())
    spill = raw * 1.8
    buckets = math.ceil(spill / (256 * MiB))
    units = int(spill // (buckets * MiB))
    assert sizing.buckets["train"] == buckets == 671
    assert sizing.unit_size == math.ceil(raw / units)
    assert sizing.window_size == WINDOW_BYTES
    assert spill / (math.ceil(raw / sizing.unit_size) * buckets) >= MiB


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
