"""The Ray engine runs the same functions and writes the same bytes as the local one, on a
local Ray instance (`ray.init(num_cpus=2)` inside the engine, no network)."""

import json
import os
import signal
import subprocess
import sys
import threading
import time
from pathlib import Path

import pytest

pytest.importorskip("ray", reason="the ray extra is not installed")

from mlmprep.core.config import BuildConfig
from mlmprep.core.errors import ConfigError
from mlmprep.pipeline.build import RunOptions, build

from .helpers import plain_sample, shard_hashes

CONFIG = BuildConfig(unit_size=32 * 1024, shard_size=300)


@pytest.fixture(scope="module")
def corpus(tmp_path_factory) -> Path:
    return plain_sample(tmp_path_factory.mktemp("ray") / "plain")


@pytest.fixture(scope="module")
def local_build(corpus, tmp_path_factory) -> Path:
    out = tmp_path_factory.mktemp("local")
    build([str(corpus)], str(out), CONFIG, RunOptions(workers=1))
    return out


def test_a_ray_build_on_two_levels_writes_the_local_bytes(corpus, local_build, tmp_path):
    out = tmp_path / "out"
    build([str(corpus)], str(out), CONFIG, RunOptions(workers=2, engine="ray", shuffle_groups=2))
    index = json.loads((out / "index.json").read_text())
    assert index["run"]["engine"] == "ray" and index["plan"]["groups"] == 2
    assert shard_hashes(out) == shard_hashes(local_build)
    assert len(shard_hashes(out)) > 1


def ray_worker_pids() -> list[int]:
    """The processes running mlmprep's tasks (Ray names a worker ray::<its function>)."""
    pids = []
    for entry in Path("/proc").iterdir():
        if entry.name.isdigit():
            try:
                command = (entry / "cmdline").read_bytes().split(b"\0")[0]
            except OSError:
                continue
            if command == b"ray::_run_on_worker":
                pids.append(int(entry.name))
    return pids


def test_a_ray_worker_killed_mid_build_is_retried_to_the_same_bytes(corpus, local_build, tmp_path):
    out = tmp_path / "out"
    killed = threading.Event()

    def kill_a_worker_once_units_run():
        units = out / ".mlmprep-work" / "units"
        deadline = time.monotonic() + 120
        while time.monotonic() < deadline and not killed.is_set():
            busy = ray_worker_pids()
            if units.is_dir() and len(list(units.glob("*.json"))) >= 2 and busy:
                os.kill(busy[0], signal.SIGKILL)
                killed.set()
            time.sleep(0.005)

    killer = threading.Thread(target=kill_a_worker_once_units_run)
    killer.start()
    build([str(corpus)], str(out), CONFIG, RunOptions(workers=2, engine="ray"))
    killer.join()
    assert killed.is_set(), "the build finished before a Ray worker could be killed"
    assert shard_hashes(out) == shard_hashes(local_build)


def test_an_export_and_a_tokenize_on_ray_write_the_bytes_of_one_process(local_build, tmp_path):
    cli = [sys.executable, "-m", "mlmprep.cli"]
    for engine, dest in (("local", "one"), ("ray", "ray")):
        workers = "1" if engine == "local" else "2"
        for command in (
            ["export", str(local_build), str(tmp_path / f"mds-{dest}"), "--format", "mds"],
            ["tokenize", str(local_build.parent), str(tmp_path / f"tok-{dest}" / "data")],
        ):
            if command[0] == "tokenize":
                command[1] = str(plain_sample(tmp_path / "plain"))
            run = subprocess.run(
                [*cli, *command, "--engine", engine, "--workers", workers, "--quiet"],
                capture_output=True,
                text=True,
            )
            assert run.returncode == 0, run.stderr
    for kind in ("mds", "tok"):
        one, ray = tmp_path / f"{kind}-one", tmp_path / f"{kind}-ray"
        files = sorted(p.relative_to(one) for p in one.rglob("*") if p.is_file())
        assert files and files == sorted(p.relative_to(ray) for p in ray.rglob("*") if p.is_file())
        for name in files:  # export.json and tokenize's data.json also record the run
            if name.suffix != ".json" or name.name == "index.json":
                assert (one / name).read_bytes() == (ray / name).read_bytes(), name
        assert any(name.suffix in (".mds", ".bin") for name in files)


def test_an_unreachable_ray_address_is_one_line_and_writes_nothing(corpus, tmp_path):
    out = tmp_path / "out"
    started = time.monotonic()
    run = subprocess.run(
        [sys.executable, "-m", "mlmprep.cli", "build", str(corpus), str(out),
         "--engine", "ray", "--scheduler", "127.0.0.1:1"],
        capture_output=True, text=True,
    )  # fmt: skip
    assert run.returncode == 2
    assert "--scheduler 127.0.0.1:1: cannot reach the Ray cluster" in run.stderr
    assert len(run.stderr.strip().splitlines()) == 1
    assert time.monotonic() - started < 60
    assert not out.exists()


def test_ray_not_installed_names_the_extra(corpus, tmp_path, monkeypatch):
    monkeypatch.setitem(sys.modules, "ray", None)  # import ray raises ImportError
    with pytest.raises(ConfigError, match=r"--engine ray needs Ray: pip install 'mlmprep\[ray\]'"):
        build([str(corpus)], str(tmp_path / "out"), CONFIG, RunOptions(workers=2, engine="ray"))
    assert not (tmp_path / "out").exists()
