"""One writer per output: a second build, tokenize or export into the same place exits 1
at once, naming the holder, and touches nothing; a killed holder blocks nobody."""

import os
import signal
import subprocess
import sys
import time

import pytest
from click.testing import CliRunner

from mlmprep.cli.main import main
from mlmprep.core.lock_holder import BusyError
from mlmprep.core.writer_lock import writer_lock

from .helpers import SAMPLE_DIR, plain_sample, run_build, shard_hashes

DUPE = 60  # long enough that the first build still runs while the others try
BUILD = ["-q", "--workers", "1", "--unit-size", "20000", "--dupe-factor", str(DUPE)]


def start(*args: str) -> subprocess.Popen:
    return subprocess.Popen(
        [sys.executable, "-m", "mlmprep.cli", *args],
        stdout=subprocess.DEVNULL,
        stderr=subprocess.PIPE,
        text=True,
    )


def wait_for(path, process) -> None:
    deadline = time.monotonic() + 60
    while not path.exists():
        assert process.poll() is None and time.monotonic() < deadline, "never took the lock"
        time.sleep(0.005)


@pytest.fixture(scope="module")
def corpus(tmp_path_factory):
    return plain_sample(tmp_path_factory.mktemp("lock") / "plain")


def test_a_second_build_exits_at_once_and_the_first_ends_as_a_lone_build(corpus, tmp_path):
    out = tmp_path / "out"
    first = start("build", str(corpus), str(out), *BUILD)
    wait_for(out / ".mlmprep-lock", first)
    for extra in ([], ["--overwrite"]):
        assert first.poll() is None, "the first build ended before the second could try"
        started = time.monotonic()
        second = subprocess.run(
            [sys.executable, "-m", "mlmprep.cli", "build", str(corpus), str(out), *BUILD, *extra],
            capture_output=True,
            text=True,
        )
        assert second.returncode == 1, second.stderr
        assert time.monotonic() - started < 5  # the interpreter's start included
        assert f"another mlmprep process is writing it (pid {first.pid} on" in second.stderr
        assert second.stderr.count("\n") == 1
    assert first.wait() == 0, first.stderr.read()
    lone = tmp_path / "lone"
    run_build([corpus], lone, unit_size=20000, dupe_factor=DUPE)
    assert shard_hashes(out) == shard_hashes(lone)
    assert not (out / ".mlmprep-lock").exists()


def test_a_killed_holder_blocks_nobody(corpus, tmp_path):
    out = tmp_path / "out"
    first = start("build", str(corpus), str(out), *BUILD)
    wait_for(out / ".mlmprep-work" / "plan.json", first)
    os.kill(first.pid, signal.SIGKILL)
    first.wait()
    assert (out / ".mlmprep-lock").exists()  # left behind, but no longer locked
    again = subprocess.run(
        [sys.executable, "-m", "mlmprep.cli", "build", str(corpus), str(out), *BUILD],
        capture_output=True,
        text=True,
    )
    assert again.returncode == 0, again.stderr


def test_export_and_tokenize_are_guarded_too(tmp_path):
    run_build([SAMPLE_DIR], tmp_path / "out")
    dest = tmp_path / "mds"
    with writer_lock(str(dest / ".mlmprep-lock"), str(dest)):
        result = CliRunner().invoke(main, ["export", str(tmp_path / "out"), str(dest),
                                           "--format", "mds"])  # fmt: skip
        assert result.exit_code == 1 and "another mlmprep process" in result.stderr
        assert sorted(p.name for p in dest.iterdir()) == [".mlmprep-lock"]  # nothing else
    prefix = tmp_path / "data" / "wiki"
    with writer_lock(f"{prefix}.mlmprep-lock", str(prefix)):
        result = CliRunner().invoke(main, ["tokenize", str(SAMPLE_DIR), str(prefix)])
        assert result.exit_code == 1 and f"pid {os.getpid()}" in result.stderr
        assert not (tmp_path / "data" / "wiki.bin").exists()
    held = writer_lock(str(tmp_path / "x.lock"), "x")
    with held, pytest.raises(BusyError), writer_lock(str(tmp_path / "x.lock"), "x"):
        pass  # the lock is per open file: the same process cannot take it twice


def test_an_output_that_is_a_file_is_one_line_for_every_command(tmp_path):
    taken = tmp_path / "taken"
    taken.write_text("a file, not a directory")
    run_build([SAMPLE_DIR], tmp_path / "out")
    for command in (
        ["build", str(SAMPLE_DIR), str(taken)],
        ["tokenize", str(SAMPLE_DIR), str(taken / "wiki")],
        ["export", str(tmp_path / "out"), str(taken), "--format", "mds"],
    ):
        result = CliRunner().invoke(main, command)
        assert result.exit_code == 1, command
        assert result.stderr.startswith("Error: ") and result.stderr.count("\n") == 1
        assert "Traceback" not in result.output
    assert taken.read_text() == "a file, not a directory"
