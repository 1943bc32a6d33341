"""The Dask engine runs the same functions and writes the same bytes as the local one."""

import json
import os
import signal
import socket
import subprocess
import sys
import threading
import time
from pathlib import Path

import pytest

distributed = pytest.importorskip("distributed", reason="the dask extra is not installed")

from mlmprep.core.config import BuildConfig  # noqa: E402
from mlmprep.pipeline.build import RunOptions, build  # noqa: E402

from .helpers import plain_sample, shard_hashes  # noqa: E402

CONFIG = BuildConfig(unit_size=32 * 1024, shard_size=300)
SECTIONS = ("config", "tokenizer", "versions", "shards", "accounting")


@pytest.fixture(scope="module")
def corpus(tmp_path_factory) -> Path:
    return plain_sample(tmp_path_factory.mktemp("dask") / "plain")


@pytest.fixture(scope="module")
def local_build(corpus, tmp_path_factory) -> Path:
    out = tmp_path_factory.mktemp("local")
    build([str(corpus)], str(out), CONFIG, RunOptions(workers=2))
    return out


def sections(out: Path) -> dict:
    index = json.loads((out / "index.json").read_text())
    config = {k: v for k, v in index["config"].items() if k != "input_fingerprint"}
    return {**{key: index[key] for key in SECTIONS}, "config": config}


def test_local_cluster_writes_the_same_bytes(corpus, local_build, tmp_path):
    out = tmp_path / "out"
    build([str(corpus)], str(out), CONFIG, RunOptions(workers=2, engine="dask"))
    assert shard_hashes(out) == shard_hashes(local_build)
    assert len(shard_hashes(out)) > 1
    assert sections(out) == sections(local_build)
    assert json.loads((out / "index.json").read_text())["run"]["engine"] == "dask"


def test_a_two_level_shuffle_on_dask_writes_the_same_bytes(corpus, local_build, tmp_path):
    out = tmp_path / "out"
    run = RunOptions(workers=2, engine="dask", shuffle_groups=2)
    build([str(corpus)], str(out), CONFIG, run)
    assert json.loads((out / "index.json").read_text())["plan"]["groups"] == 2
    assert shard_hashes(out) == shard_hashes(local_build)


def free_port() -> int:
    with socket.socket() as sock:
        sock.bind(("127.0.0.1", 0))
        return sock.getsockname()[1]


def start_scheduler(port: int) -> subprocess.Popen:
    """A real `dask scheduler` on 127.0.0.1."""
    command = [sys.executable, "-m", "distributed.cli.dask_scheduler", "--host", "127.0.0.1"]
    return subprocess.Popen(
        [*command, "--port", str(port), "--no-dashboard"],
        stdout=subprocess.DEVNULL,
        stderr=subprocess.DEVNULL,
    )


def start_worker(address: str, *extra: str) -> subprocess.Popen:
    """A real `dask worker` process (one thread per worker process)."""
    command = [sys.executable, "-m", "distributed.cli.dask_worker", address, "--nthreads", "1"]
    return subprocess.Popen(
        [*command, "--no-dashboard", *extra],
        stdout=subprocess.DEVNULL,
        stderr=subprocess.DEVNULL,
    )


def stop(*processes: subprocess.Popen) -> None:
    for process in processes:
        process.terminate()
        try:
            process.wait(timeout=20)
        except subprocess.TimeoutExpired:
            process.kill()
            process.wait()


@pytest.fixture
def cluster():
    """A real `dask scheduler` and `dask worker` (2 processes) on 127.0.0.1."""
    port = free_port()
    address = f"tcp://127.0.0.1:{port}"
    scheduler = start_scheduler(port)
    worker = start_worker(address, "--nworkers", "2")
    try:
        with distributed.Client(address, timeout="60s") as client:
            client.wait_for_workers(2, timeout=60)
        yield address
    finally:
        stop(worker, scheduler)


def test_real_scheduler_and_workers_write_the_same_bytes(corpus, local_build, tmp_path, cluster):
    out = tmp_path / "out"
    build([str(corpus)], str(out), CONFIG, RunOptions(workers=2, engine="dask", scheduler=cluster))
    assert shard_hashes(out) == shard_hashes(local_build)
    assert sections(out) == sections(local_build)


def test_a_worker_killed_mid_build_changes_nothing(corpus, local_build, tmp_path, cluster):
    out = tmp_path / "out"
    with distributed.Client(cluster) as client:
        pids = list(client.run(os.getpid).values())
    killed = threading.Event()

    def kill_when_units_finish():
        units = out / ".mlmprep-work" / "units"
        deadline = time.monotonic() + 60
        while time.monotonic() < deadline:
            if units.is_dir() and len(list(units.glob("*.json"))) >= 2:
                os.kill(pids[0], signal.SIGKILL)
                killed.set()
                return
            time.sleep(0.005)

    killer = threading.Thread(target=kill_when_units_finish)
    killer.start()
    build([str(corpus)], str(out), CONFIG, RunOptions(workers=2, engine="dask", scheduler=cluster))
    killer.join()
    assert killed.is_set(), "the build finished before a worker could be killed"
    assert shard_hashes(out) == shard_hashes(local_build)
    assert not list(out.glob("*.tmp*"))


def test_unreachable_scheduler_is_a_clear_error(corpus, tmp_path, monkeypatch):
    from mlmprep.core.errors import ConfigError

    monkeypatch.setattr("mlmprep.core.engines.dask.CONNECT_TIMEOUT", "2s")
    address = f"tcp://127.0.0.1:{free_port()}"
    options = RunOptions(workers=1, engine="dask", scheduler=address)
    with pytest.raises(ConfigError, match="cannot reach the Dask scheduler"):
        build([str(corpus)], str(tmp_path / "out"), CONFIG, options)


def test_workers_with_other_versions_are_refused():
    from mlmprep.core.engines.dask import DaskEngine
    from mlmprep.core.errors import ConfigError
    from mlmprep.formats.manifest import versions, worker_environment

    class Client:
        def run(self, function):
            return {"tcp://10.0.0.7:4000": {**versions(), "pyarrow": "0.0.1"}}

    engine = DaskEngine(workers=1, environment=worker_environment)
    engine._client = Client()
    with pytest.raises(ConfigError, match=r"tcp://10.0.0.7:4000 has pyarrow 0.0.1 \(client"):
        engine._check_versions()


def test_workers_with_other_tokenizer_backends_are_refused(monkeypatch):
    """A worker without the client's kitoken would encode at another speed and could not
    fall back the same way: the set of backends must match too."""
    from mlmprep.core.engines import dask as engine
    from mlmprep.core.errors import ConfigError
    from mlmprep.formats import manifest

    monkeypatch.setattr(manifest, "backend_versions", lambda: {"kitoken": "0.11.1"})

    class Client:
        def run(self, function):
            return {"tcp://10.0.0.8:4000": {**manifest.versions(), "kitoken": "absent"}}

    dask_engine = engine.DaskEngine(workers=1, environment=manifest.worker_environment)
    dask_engine._client = Client()
    with pytest.raises(ConfigError, match=r"10.0.0.8:4000 has kitoken absent \(client 0\.11\.1"):
        dask_engine._check_versions()


def test_a_failing_unit_names_its_file_on_the_client(tmp_path):
    import gzip

    from mlmprep.core.errors import InputError

    bad = tmp_path / "corpus" / "bad.txt.gz"
    bad.parent.mkdir()
    bad.write_bytes(gzip.compress(b"Some text. More text.\n" * 50_000)[:-100])
    (tmp_path / "corpus" / "good.txt").write_text("Fine text here. And more.\n")
    with pytest.raises(InputError, match=r"bad\.txt\.gz: corrupt or truncated data"):
        build(
            [str(tmp_path / "corpus")],
            str(tmp_path / "out"),
            CONFIG,
            RunOptions(workers=2, engine="dask"),
        )


def test_every_task_checks_its_workers_versions(monkeypatch):
    """A task refuses to run on a worker with other versions, so a worker that joins
    after the build connected is refused too (the connect-time check cannot see it)."""
    from mlmprep.core.engines.checks import run_checked
    from mlmprep.core.errors import ConfigError
    from mlmprep.formats import manifest

    client = manifest.worker_environment()
    assert run_checked(len, manifest.worker_environment, client, "Dask", [1, 2]) == 2
    monkeypatch.setattr(manifest, "versions", lambda: {**client, "pyarrow": "0.0.1"})
    with pytest.raises(ConfigError, match=r"a Dask worker has pyarrow 0\.0\.1 \(client"):
        run_checked(len, manifest.worker_environment, client, "Dask", [1, 2])


def test_a_lost_scheduler_is_a_cluster_error_and_the_build_resumes(corpus, local_build, tmp_path):
    port = free_port()
    address = f"tcp://127.0.0.1:{port}"
    scheduler, worker = start_scheduler(port), None
    out = tmp_path / "out"
    try:
        worker = start_worker(address, "--nworkers", "2")
        with distributed.Client(address, timeout="60s") as client:
            client.wait_for_workers(2, timeout=60)
        command = [sys.executable, "-m", "mlmprep.cli", "build", str(corpus), str(out), "-q"]
        command += ["--unit-size", str(CONFIG.unit_size), "--shard-size", str(CONFIG.shard_size)]
        dask = ["--engine", "dask", "--scheduler", address]
        process = subprocess.Popen([*command, *dask], stderr=subprocess.PIPE, text=True)
        units = out / ".mlmprep-work" / "units"
        deadline = time.monotonic() + 60
        while process.poll() is None and time.monotonic() < deadline:
            if units.is_dir() and len(list(units.glob("*.json"))) >= 2:
                stop(scheduler)
                break
            time.sleep(0.005)
        _, stderr = process.communicate(timeout=120)
        assert process.returncode == 1, stderr
        assert stderr.startswith("Error: lost the Dask cluster") and stderr.count("\n") == 1
        assert "run the same command again to resume" in stderr
    finally:
        stop(*[p for p in (worker, scheduler) if p is not None])
    rerun = subprocess.run([*command, "--workers", "2"], capture_output=True, text=True)
    assert rerun.returncode == 0, rerun.stderr
    assert shard_hashes(out) == shard_hashes(local_build)


@pytest.mark.parametrize("fmt", ["mds", "tfrecord"])
def test_an_export_on_dask_writes_the_bytes_of_one_process(local_build, tmp_path, fmt):
    """Each file a Dask task, on a local cluster of two workers."""
    from click.testing import CliRunner

    from mlmprep.cli.main import main

    digests = []
    for engine in (["--workers", "1"], ["--engine", "dask", "--workers", "2"]):
        dest = tmp_path / engine[1]
        command = ["export", str(local_build), str(dest), "--format", fmt, "--num-files", "3"]
        result = CliRunner().invoke(main, [*command, "-q", *engine])
        assert result.exit_code == 0, result.output
        files = sorted(p for p in dest.rglob("*") if p.is_file() and p.name != "export.json")
        digests.append({str(p.relative_to(dest)): p.read_bytes() for p in files})
    assert len(digests[0]) >= 3 and digests[0] == digests[1]
