"""The local engine's process pool."""

from __future__ import annotations

import importlib
import os
import signal
import subprocess
import sys
import time

import pytest

from mlmprep.core.engines.local import LocalEngine

from .helpers import plain_sample

VARIABLE = "MLMPREP_TEST_ENGINE_VARIABLE"


def environment_variable(name: str) -> str | None:
    return os.environ.get(name)


def test_workers_see_the_environment_of_the_process_that_made_the_pool(monkeypatch):
    monkeypatch.delenv(VARIABLE, raising=False)
    with LocalEngine(2) as engine:  # starts the fork server, if not already running
        assert list(engine.map_unordered(environment_variable, [VARIABLE])) == [None]
    monkeypatch.setenv(VARIABLE, "set later")
    with LocalEngine(2) as engine:
        values = list(engine.map_unordered(environment_variable, [VARIABLE] * 4))
    assert values == ["set later"] * 4


def test_every_task_result_arrives_once():
    with LocalEngine(2) as engine:
        results = sorted(engine.map_unordered(abs, range(-5, 5)))
    assert results == sorted(abs(n) for n in range(-5, 5))


def test_the_fork_server_preloads_the_modules_of_the_build_task_functions():
    """WORKER_MODULES names modules as strings (the CLI must not import them early): a
    module that moves or is renamed must not silently drop out of the preload."""
    from mlmprep.pipeline.shuffle import write_bucket_shards
    from mlmprep.pipeline.tokenize.units import tokenize_unit
    from mlmprep.pipeline.units import process_unit
    from mlmprep.pipeline.workers import WORKER_MODULES

    for name in WORKER_MODULES:
        importlib.import_module(name)
    task_functions = (process_unit, write_bucket_shards, tokenize_unit)
    assert {function.__module__ for function in task_functions} <= set(WORKER_MODULES)


def descendants(root: int) -> set[int]:
    """Every living process below `root`, from /proc."""
    children: dict[int, list[int]] = {}
    for entry in os.listdir("/proc"):
        if entry.isdigit():
            try:
                with open(f"/proc/{entry}/stat") as handle:
                    parent = int(handle.read().rsplit(")", 1)[1].split()[1])
            except OSError:
                continue
            children.setdefault(parent, []).append(int(entry))
    found, stack = set(), [root]
    while stack:
        for child in children.get(stack.pop(), []):
            found.add(child)
            stack.append(child)
    return found


def test_no_process_outlives_a_build_killed_with_sigkill(tmp_path):
    """As the OOM killer would: SIGKILL of the main process alone. Its fork server and
    workers end within 5 seconds."""
    corpus = plain_sample(tmp_path / "plain")
    command = [sys.executable, "-m", "mlmprep.cli", "build", str(corpus), str(tmp_path / "out"),
               "-q", "--workers", "2", "--unit-size", "20000", "--dupe-factor", "20"]  # fmt: skip
    errors = open(tmp_path / "stderr", "w")  # noqa: SIM115 (held open by the child)
    main = subprocess.Popen(command, stdout=subprocess.DEVNULL, stderr=errors)
    deadline = time.monotonic() + 60
    while time.monotonic() < deadline and main.poll() is None:
        below = descendants(main.pid)
        if len(below) >= 3:  # the fork server and both workers
            break
        time.sleep(0.01)
    else:
        pytest.fail("the build ended (or never started its workers) before it could be killed")
    time.sleep(0.3)  # the workers are busy with units
    below = descendants(main.pid)
    os.kill(main.pid, signal.SIGKILL)
    main.wait()
    deadline = time.monotonic() + 5
    while time.monotonic() < deadline and any(os.path.exists(f"/proc/{p}") for p in below):
        time.sleep(0.05)
    left = [p for p in below if os.path.exists(f"/proc/{p}")]
    for pid in left:  # leave nothing behind, even when the test fails
        os.kill(pid, signal.SIGKILL)
    assert not left, f"{len(left)} of {len(below)} processes outlived the build"
    errors.close()
    # multiprocessing's resource tracker, among those processes, no longer warns of the
    # semaphores it removes after the kill ("leaked semaphore objects")
    assert "leaked" not in (tmp_path / "stderr").read_text()


def test_a_folder_named_mlmprep_in_the_working_directory_does_not_shadow_the_package(tmp_path):
    """Guards the fork server's sys.path: it runs `python -c`, which put the working
    directory first, so a corpus folder called `mlmprep/` there (no __init__.py) became
    the package in every worker and a parallel build died with an ImportError."""
    corpus = plain_sample(tmp_path / "mlmprep" / "data")
    done = subprocess.run(
        [
            str(os.path.join(os.path.dirname(sys.executable), "mlmprep")),
            "build",
            str(corpus),
            "out",
            "--workers",
            "2",
            "--unit-size",
            "16384",
            "-q",
        ],
        cwd=tmp_path,
        capture_output=True,
        text=True,
    )
    assert done.returncode == 0, done.stderr[-2000:]
    assert (tmp_path / "out" / "index.json").exists()


@pytest.mark.parametrize(
    "task_type",
    ["pipeline.units.UnitTask", "pipeline.groups.GroupTask", "pipeline.shuffle.ShardTask",
     "pipeline.tokenize.units.TokenizeTask", "outputs.export.export.FileTask"],
)  # fmt: skip
def test_every_task_a_cluster_runs_names_itself_for_errors(task_type):
    """A task's unexpected error reaches the client as "<task.describe()>: failed on a
    Ray (or Dask) worker": before, tokenize and export tasks had no describe()."""
    import importlib

    module, name = task_type.rsplit(".", 1)
    assert callable(getattr(importlib.import_module(f"mlmprep.{module}"), name).describe)


def test_a_tasks_unexpected_error_is_named_with_the_task():
    from mlmprep.core.engines.checks import task_error
    from mlmprep.core.errors import MlmprepError
    from mlmprep.outputs.export.export import ExportOptions, FileTask

    task = FileTask("out", "mds", ExportOptions(fmt="mds"), "train-00003", {})
    error = task_error(task, ValueError("bad\nvalue"), "Ray")
    assert isinstance(error, MlmprepError)
    assert str(error) == (
        "mds: file train-00003 of the export of out: failed on a Ray worker: ValueError: bad value"
    )
    full = OSError(28, "No space left on device")
    assert task_error(task, full, "Dask") is full  # reported by the caller, with its path
