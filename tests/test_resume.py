"""A build killed with SIGKILL part-way resumes and ends byte-identical to a clean build."""

import json
import subprocess
import sys
from pathlib import Path

import pyarrow.parquet as pq
import pytest

from .helpers import kill_when, repeated_sample, run_build, shard_hashes

OPTIONS = {"unit_size": 64 * 1024, "shard_size": 200}


@pytest.fixture(scope="module")
def corpus(tmp_path_factory) -> Path:
    """About 3 MB of plain text: ~48 units, ~35 buckets."""
    return repeated_sample(tmp_path_factory.mktemp("resume-corpus"), 10)


@pytest.fixture(scope="module")
def clean_hashes(corpus, tmp_path_factory) -> dict[str, str]:
    out = tmp_path_factory.mktemp("clean")
    run_build([corpus], out, **OPTIONS)
    return shard_hashes(out)


def command(corpus: Path, out: Path) -> list[str]:
    return [
        sys.executable,
        "-m",
        "mlmprep.cli",
        "build",
        str(corpus),
        str(out),
        "--quiet",
        "--workers",
        "1",
        "--unit-size",
        str(OPTIONS["unit_size"]),
        "--shard-size",
        str(OPTIONS["shard_size"]),
    ]


@pytest.mark.parametrize("phase,count", [("units", 5), ("shards", 3)])
def test_killed_build_resumes_to_identical_bytes(corpus, clean_hashes, tmp_path, phase, count):
    out = tmp_path / "out"
    process = subprocess.Popen(command(corpus, out))
    kill_when(process, out / ".mlmprep-work" / phase, count)
    assert not (out / "index.json").exists()
    for visible in out.glob("*.parquet"):  # a shard under its final name is complete
        assert pq.read_metadata(visible).num_rows > 0
    rerun = subprocess.run(command(corpus, out), capture_output=True, text=True)
    assert rerun.returncode == 0, rerun.stderr
    assert "resumed:" in rerun.stdout
    assert shard_hashes(out) == clean_hashes
    assert not (out / ".mlmprep-work").exists()


def test_units_whose_spill_files_are_gone_are_redone(corpus, clean_hashes, tmp_path):
    """Guards resume against a node-local or wiped --tmp-dir: before the fix, a unit
    recorded as done was trusted, its missing spill file raised ENOENT in the shard
    phase, and every rerun failed the same way."""
    out, spill = tmp_path / "out", tmp_path / "spill"
    process = subprocess.Popen([*command(corpus, out), "--tmp-dir", str(spill)])
    kill_when(process, out / ".mlmprep-work" / "shards", 2)
    files = sorted(spill.glob("*/unit-*.arrows"))
    assert len(files) > 3
    files[0].unlink()  # wiped
    files[1].write_bytes(files[1].read_bytes()[:100])  # cut short
    rerun = subprocess.run([*command(corpus, out), "--tmp-dir", str(spill)],
                           capture_output=True, text=True)  # fmt: skip
    assert rerun.returncode == 0, rerun.stderr
    redone = sorted(f.name.removesuffix(".arrows") for f in files[:2])
    assert f"redone: 2 units recorded as done whose spill files were missing or short " \
           f"({', '.join(redone)})" in rerun.stdout  # fmt: skip
    assert shard_hashes(out) == clean_hashes


def test_overwrite_over_a_killed_build_leaves_no_stale_shard(corpus, tmp_path):
    """Guards --overwrite: before the fix it removed only recorded shards, and a bucket's
    shards are recorded only once all are written, so shards renamed before a kill
    survived beside the new build, and the card's glob and `validate` met them."""
    out = tmp_path / "out"
    process = subprocess.Popen([*command(corpus, out), "--shard-size", "50"])
    kill_when(process, out / ".mlmprep-work" / "shards", 1)
    stale = out / "train-00999-of-01000.parquet"  # as an earlier build's naming made it
    (out / "train-00000-of-01000.parquet").write_bytes(b"renamed before the kill")
    stale.write_bytes(b"renamed before the kill")
    (out / "train-00001-of-01000.parquet.tmp-77").write_bytes(b"half-written")
    mine = out / "notes.parquet"  # a file no build names: never removed
    mine.write_bytes(b"the user's")
    args = [*command(corpus, out), "--seed", "3", "--overwrite"]
    again = subprocess.run(args, capture_output=True, text=True)
    assert again.returncode == 0, again.stderr
    index = json.loads((out / "index.json").read_text())
    named = {shard["name"] for shard in index["shards"]}
    assert {p.name for p in out.glob("*.parquet")} == named | {mine.name}
    assert not list(out.glob("*.tmp-*"))
    valid = subprocess.run([sys.executable, "-m", "mlmprep.cli", "validate", str(out)],
                           capture_output=True, text=True)  # fmt: skip
    assert valid.returncode == 0, valid.stdout + valid.stderr
