"""A build killed with SIGKILL part-way resumes and ends byte-identical to a clean build."""

import os
import signal
import subprocess
import sys
import time
from pathlib import Path

import pyarrow.parquet as pq
import pytest

from .helpers import plain_sample, run_build, shard_hashes

OPTIONS = {"unit_size": 64 * 1024, "shard_size": 200}
WAIT_SECONDS = 120


@pytest.fixture(scope="module")
def corpus(tmp_path_factory) -> Path:
    """About 3 MB of plain text: ~48 units, ~35 buckets."""
    directory = tmp_path_factory.mktemp("resume-corpus")
    plain = plain_sample(directory / "plain")
    text = "\n\n".join(p.read_text().strip() for p in sorted(plain.glob("*.txt")))
    (directory / "big.txt").write_text("\n\n".join([text] * 10) + "\n")
    return directory / "big.txt"


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


def kill_when(process: subprocess.Popen, records: Path, count: int) -> None:
    """SIGKILL the build once `count` completion records exist in `records`."""
    deadline = time.monotonic() + WAIT_SECONDS
    while time.monotonic() < deadline and process.poll() is None:
        if records.is_dir() and len(list(records.glob("*.json"))) >= count:
            os.kill(process.pid, signal.SIGKILL)
            process.wait()
            return
        time.sleep(0.005)
    pytest.fail("the build finished (or hung) before it could be killed part-way")


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
