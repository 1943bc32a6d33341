"""Object storage for real: a local S3-compatible server (moto's ThreadedMotoServer on
127.0.0.1) reached through s3fs over HTTP, no mocked client."""

import hashlib
import json
import logging
import os
import re
import signal
import socket
import subprocess
import sys
import time

import pytest

moto_server = pytest.importorskip("moto.server", reason="moto[server] is not installed")
s3fs = pytest.importorskip("s3fs", reason="s3fs (mlmprep[s3]) is not installed")

from click.testing import CliRunner  # noqa: E402

from mlmprep.cli.main import main  # noqa: E402

from .fault_proxy import FaultProxy, Faults  # noqa: E402
from .helpers import plain_sample, run_build, shard_hashes  # noqa: E402

OPTIONS = ["--unit-size", "65536", "--shard-size", "300", "--dupe-factor", "2"]
WAIT_SECONDS = 120


class RequestCounter(logging.Handler):
    """Counts the HTTP requests the server logs, by method."""

    def __init__(self) -> None:
        super().__init__()
        self.counts: dict[str, int] = {}

    def emit(self, record: logging.LogRecord) -> None:
        message = record.getMessage()
        for method in ("GET", "PUT", "POST", "HEAD", "DELETE"):
            if f'"{method} ' in message:
                self.counts[method] = self.counts.get(method, 0) + 1


@pytest.fixture(scope="module")
def endpoint(tmp_path_factory):
    with socket.socket() as probe:
        probe.bind(("127.0.0.1", 0))
        port = probe.getsockname()[1]
    server = moto_server.ThreadedMotoServer(ip_address="127.0.0.1", port=port, verbose=False)
    server.start()
    yield f"http://127.0.0.1:{port}"
    server.stop()


@pytest.fixture(autouse=True)
def credentials(monkeypatch):
    for name, value in {
        "AWS_ACCESS_KEY_ID": "testing",
        "AWS_SECRET_ACCESS_KEY": "testing",
        "AWS_DEFAULT_REGION": "us-east-1",
    }.items():
        monkeypatch.setenv(name, value)


@pytest.fixture(scope="module")
def corpus(tmp_path_factory):
    directory = tmp_path_factory.mktemp("s3-corpus")
    return plain_sample(directory / "plain")


@pytest.fixture
def bucket(endpoint, corpus, request):
    fs = s3fs.S3FileSystem(endpoint_url=endpoint, key="testing", secret="testing")
    name = "".join(c if c.isalnum() else "-" for c in request.node.name)[-40:].strip("-").lower()
    fs.mkdir(name)
    for path in sorted(corpus.iterdir()):
        fs.pipe(f"{name}/corpus/{path.name}", path.read_bytes())
    return fs, name


@pytest.fixture(scope="module")
def local_build(corpus, tmp_path_factory):
    out = tmp_path_factory.mktemp("local")
    options = dict(zip(OPTIONS[::2], OPTIONS[1::2]))
    run_build(
        [corpus],
        out,
        unit_size=int(options["--unit-size"]),
        shard_size=int(options["--shard-size"]),
        dupe_factor=int(options["--dupe-factor"]),
    )
    return out


@pytest.fixture(scope="module")
def local_hashes(local_build):
    return shard_hashes(local_build)


def command(name: str, endpoint: str, tmp_dir, workers: int = 2, **storage) -> list[str]:
    tmp = ["--tmp-dir", str(tmp_dir)] if tmp_dir else []
    return [
        sys.executable,
        "-m",
        "mlmprep.cli",
        "build",
        f"s3://{name}/corpus",
        f"s3://{name}/out",
        "--storage-options",
        json.dumps({"endpoint_url": endpoint, **storage}),
        *tmp,
        "--workers",
        str(workers),
        "--quiet",
        *OPTIONS,
    ]


def s3_hashes(fs, name: str) -> dict[str, str]:
    return {
        path.rsplit("/", 1)[-1]: hashlib.sha256(fs.cat_file(path)).hexdigest()
        for path in sorted(fs.ls(f"{name}/out", detail=False))
        if path.endswith(".parquet")
    }


@pytest.mark.parametrize(
    "local_tmp,levels",
    [(True, []), (False, []), (False, ["--shuffle-groups", "2"])],
    ids=["local-tmp-dir", "spill-on-s3", "two-levels-on-s3"],
)
def test_s3_to_s3_is_byte_identical(bucket, endpoint, tmp_path, local_hashes, local_tmp, levels):
    fs, name = bucket
    counter = RequestCounter()
    logging.getLogger("werkzeug").addHandler(counter)
    logging.getLogger("werkzeug").setLevel(logging.INFO)
    tmp_dir = tmp_path if local_tmp else None
    try:
        build = [*command(name, endpoint, tmp_dir), *levels]
        done = subprocess.run(build, capture_output=True, text=True)
    finally:
        logging.getLogger("werkzeug").removeHandler(counter)
    assert done.returncode == 0, done.stderr
    assert s3_hashes(fs, name) == local_hashes
    assert not fs.exists(f"{name}/out/.mlmprep-work")
    assert list(tmp_path.iterdir()) == []  # spill files removed
    fs.invalidate_cache()
    print(f"requests to the S3 server: {dict(sorted(counter.counts.items()))}")
    assert counter.counts.get("PUT", 0) > 0


LEASE_SECONDS = 4  # short, so that a killed holder's lease runs out within the test


def leased() -> dict:
    return {**os.environ, "MLMPREP_LEASE_SECONDS": str(LEASE_SECONDS)}


def lease_record(fs, name: str) -> dict | None:
    fs.invalidate_cache()
    path = f"{name}/out/.mlmprep-lock"
    return json.loads(fs.cat_file(path)) if fs.exists(path) else None


def test_s3_build_killed_and_run_again_ends_identical(bucket, endpoint, tmp_path, local_hashes):
    fs, name = bucket
    process = subprocess.Popen(command(name, endpoint, tmp_path), stderr=subprocess.PIPE)
    records = f"{name}/out/.mlmprep-work/units"
    deadline = time.monotonic() + WAIT_SECONDS
    while process.poll() is None and time.monotonic() < deadline:
        fs.invalidate_cache()
        if fs.exists(records) and sum(p.endswith(".json") for p in fs.ls(records)) >= 3:
            os.kill(process.pid, signal.SIGKILL)
            break
        time.sleep(0.05)
    process.wait()
    assert process.returncode == -signal.SIGKILL, "the build ended before it could be killed"
    fs.invalidate_cache()
    assert not fs.exists(f"{name}/out/index.json")
    assert lease_record(fs, name)["pid"] == process.pid  # the killed build's lease
    # on the same host a lease whose process is gone is taken over at once
    rerun = subprocess.run(
        [*command(name, endpoint, tmp_path), "--json"], capture_output=True, text=True
    )
    assert rerun.returncode == 0, rerun.stderr
    assert json.loads(rerun.stdout)["resumed_units"] >= 3
    fs.invalidate_cache()
    assert s3_hashes(fs, name) == local_hashes
    assert lease_record(fs, name) is None  # released at the end


def test_a_lease_from_another_host_is_taken_over_once_it_runs_out(bucket, endpoint, tmp_path):
    fs, name = bucket
    heartbeat = time.time()
    record = {"pid": 1, "host": "elsewhere", "since": heartbeat - 60, "owner": "x",
              "heartbeat": heartbeat, "lease_seconds": LEASE_SECONDS}  # fmt: skip
    fs.pipe_file(f"{name}/out/.mlmprep-lock", json.dumps(record).encode())
    refused = subprocess.run(command(name, endpoint, tmp_path), capture_output=True, text=True)
    if time.time() < heartbeat + LEASE_SECONDS:  # it asked before the lease ran out
        assert refused.returncode == 1, refused.stderr
        assert "pid 1 on elsewhere" in refused.stderr and "lease runs out" in refused.stderr
        fs.invalidate_cache()
        assert not fs.exists(f"{name}/out/.mlmprep-work")  # it touched nothing
    time.sleep(max(0.0, heartbeat + LEASE_SECONDS - time.time()) + 0.1)  # the lease's end
    taken = subprocess.run(command(name, endpoint, tmp_path), capture_output=True, text=True)
    assert taken.returncode == 0, taken.stderr
    assert lease_record(fs, name) is None


def test_a_second_writer_on_s3_is_refused_at_once(bucket, endpoint, tmp_path, local_hashes):
    fs, name = bucket
    first = subprocess.Popen(  # a short lease, renewed every LEASE_SECONDS / 3
        command(name, endpoint, tmp_path / "a"), stderr=subprocess.PIPE, env=leased()
    )
    deadline = time.monotonic() + WAIT_SECONDS
    while first.poll() is None and lease_record(fs, name) is None:
        assert time.monotonic() < deadline
        time.sleep(0.02)
    started = time.monotonic()
    second = subprocess.run(command(name, endpoint, tmp_path / "b"), capture_output=True, text=True)
    refused_after = time.monotonic() - started
    still_running = first.poll() is None
    assert first.wait() == 0, first.stderr.read()
    if not still_running:
        pytest.skip("the first build ended before the second one asked for the lease")
    assert second.returncode == 1, second.stderr
    assert f"pid {first.pid} on" in second.stderr and "wait for it to end" in second.stderr
    assert len(second.stderr.strip().splitlines()) == 1
    runs_out = int(re.search(r"lease runs out (\d+) s from now", second.stderr).group(1))
    assert runs_out <= LEASE_SECONDS  # the first build's own lease, as it renews it
    # an interpreter start, the inputs described and the tokenizer loaded, then three
    # requests: about 4 s here beside the first build's two busy workers; waiting out a
    # lease period (LEASE_SECONDS, renewed) and then refusing would take longer
    assert refused_after < 2 * LEASE_SECONDS
    fs.invalidate_cache()
    assert s3_hashes(fs, name) == local_hashes


def test_commands_that_read_a_build_take_storage_options(bucket, endpoint):
    """stats and validate reach the store only through --storage-options (its endpoint)."""
    fs, name = bucket
    options = ["--storage-options", json.dumps({"endpoint_url": endpoint})]
    out = f"s3://{name}/out"
    built = subprocess.run(command(name, endpoint, None, workers=1), capture_output=True, text=True)
    assert built.returncode == 0, built.stderr
    runner = CliRunner()
    stats = runner.invoke(main, ["stats", out, "--json", *options])
    assert stats.exit_code == 0, stats.output
    index = json.loads(fs.cat_file(f"{name}/out/index.json"))
    rows, shards = index["counts"]["train"]["rows"], len(index["shards"])
    assert json.loads(stats.output)["instances"] == rows > 0
    checked = runner.invoke(main, ["validate", out, *options])
    assert checked.exit_code == 0 and checked.output == f"ok: {shards} shards, {rows} rows\n"


def test_tokenize_s3_to_s3_is_byte_identical_to_a_local_run(bucket, endpoint, corpus, tmp_path):
    fs, name = bucket
    local = tmp_path / "local"
    local_run = [sys.executable, "-m", "mlmprep.cli", "tokenize", str(corpus), str(local), "-q",
                 "--unit-size", "65536", "--workers", "1"]  # fmt: skip
    assert subprocess.run(local_run, capture_output=True).returncode == 0
    remote = [
        sys.executable, "-m", "mlmprep.cli", "tokenize", f"s3://{name}/corpus",
        f"s3://{name}/data/wiki", "--storage-options", json.dumps({"endpoint_url": endpoint}),
        "--unit-size", "65536", "--workers", "2", "-q",
    ]  # fmt: skip
    done = subprocess.run(remote, capture_output=True, text=True)
    assert done.returncode == 0, done.stderr
    fs.invalidate_cache()
    for suffix in (".bin", ".idx"):
        assert (
            fs.cat_file(f"{name}/data/wiki{suffix}") == (tmp_path / f"local{suffix}").read_bytes()
        )
    assert not fs.exists(f"{name}/data/wiki.mlmprep-work")
    stats = subprocess.run(
        [sys.executable, "-m", "mlmprep.cli", "validate", f"s3://{name}/data/wiki",
         "--storage-options", json.dumps({"endpoint_url": endpoint})],
        capture_output=True, text=True,
    )  # fmt: skip
    assert stats.returncode == 0 and stats.stdout.startswith("ok:"), stats.stderr


def file_digests(directory) -> dict[str, str]:
    return {
        str(p.relative_to(directory)): hashlib.sha256(p.read_bytes()).hexdigest()
        for p in sorted(directory.rglob("*"))
        if p.is_file() and p.name != "export.json"
    }


def test_faults_are_survived_byte_identical(bucket, endpoint, local_build, local_hashes, tmp_path):
    """Through a proxy that answers 5% of requests with 503 SlowDown, cuts 3% mid-body and
    delays 3%: an s3:// -> s3:// build and an export from it end as without faults."""
    fs, name = bucket
    faults = Faults(slow_down=0.05, cut=0.03, delayed=0.03, seed=7)
    with FaultProxy(endpoint, faults) as proxy:
        done = subprocess.run(
            [*command(name, proxy, None), "--json"], capture_output=True, text=True
        )
        assert done.returncode == 0, done.stderr
        exported = subprocess.run(
            [sys.executable, "-m", "mlmprep.cli", "export", f"s3://{name}/out",
             str(tmp_path / "mds"), "--format", "mds", "-q",
             "--storage-options", json.dumps({"endpoint_url": proxy})],
            capture_output=True, text=True,
        )  # fmt: skip
        assert exported.returncode == 0, exported.stderr
    assert faults.counts["503"] and faults.counts["cut"] and faults.counts["delayed"]
    retries = json.loads(done.stdout)["storage_retries"]
    # each 503 is retried by botocore; a cut body is retried by s3fs (not counted)
    assert 0 < retries <= faults.counts["503"] + faults.counts["cut"], (retries, faults.counts)
    fs.invalidate_cache()
    assert s3_hashes(fs, name) == local_hashes
    export_local = CliRunner().invoke(
        main, ["export", str(local_build), str(tmp_path / "mds-local"), "--format", "mds"]
    )
    assert export_local.exit_code == 0
    assert file_digests(tmp_path / "mds") == file_digests(tmp_path / "mds-local")


def test_a_store_that_goes_down_ends_in_one_line_and_the_rerun_resumes(
    bucket, endpoint, local_hashes
):
    fs, name = bucket
    few_retries = {"config_kwargs": {"retries": {"max_attempts": 2}}}  # a user's own: it wins
    with FaultProxy(endpoint, Faults(fail_after=150)) as proxy:
        started = time.monotonic()
        failing = command(name, proxy, None, **few_retries)
        failed = subprocess.run(failing, capture_output=True, text=True)
        seconds = time.monotonic() - started
    assert failed.returncode == 1
    assert failed.stderr.startswith("Error: ") and failed.stderr.count("\n") == 1, failed.stderr
    assert "run the same command again to resume" in failed.stderr
    assert seconds < 60  # retries with backoff, then it gives up
    rerun = subprocess.run(command(name, endpoint, None), capture_output=True, text=True)
    assert rerun.returncode == 0, rerun.stderr
    assert "resumed:" in rerun.stdout  # the units done before the store went down
    fs.invalidate_cache()
    assert s3_hashes(fs, name) == local_hashes


def test_a_lost_lease_stops_writing(bucket, endpoint):
    """Guards the lease: before the fix a build whose renewals failed only noted it and
    kept writing until it ended, while after LEASE_SECONDS another host could take the
    output over. Here every renewal fails once units are recorded; the build must stop
    with one line, and commit nothing once another writer could hold the lease."""
    fs, name = bucket
    faults = Faults()
    with FaultProxy(endpoint, faults) as proxy:
        args = [*command(name, proxy, None), "--dupe-factor", "12"]
        build = subprocess.Popen(args, stderr=subprocess.PIPE, text=True, env=leased())
        records = f"{name}/out/.mlmprep-work/units"
        deadline = time.monotonic() + WAIT_SECONDS
        while build.poll() is None and time.monotonic() < deadline:
            fs.invalidate_cache()
            if fs.exists(records) and fs.ls(records):
                break
            time.sleep(0.05)
        faults.blocked_puts = "/out/.mlmprep-lock"  # renewals fail from here on
        blocked_at = time.time()
        _, stderr = build.communicate(timeout=WAIT_SECONDS)
    assert build.returncode == 1, stderr
    assert stderr.startswith("Error: ") and stderr.count("\n") == 1, stderr
    assert "lost its lease" in stderr and "stopped writing" in stderr
    assert faults.counts["blocked"] > 0
    fs.invalidate_cache()
    assert not fs.exists(f"{name}/out/index.json")
    written = [
        info for info in fs.find(f"{name}/out", detail=True).values()
        if not info["name"].endswith(".mlmprep-lock")
    ]  # fmt: skip
    latest = max(info["LastModified"].timestamp() for info in written)
    # S3 keeps whole seconds: a commit after the lease could be taken over is a failure
    assert latest < blocked_at + LEASE_SECONDS + 1, (latest - blocked_at, stderr)


def test_plan_reads_object_storage_with_the_storage_options_after_its_sample(bucket, endpoint):
    """Guards `mlmprep plan` on URLs: before the fix its sample configured storage with no
    options, so cutting the inputs into units afterwards reached for AWS, not the store."""
    _, name = bucket
    planned = subprocess.run(
        [sys.executable, "-m", "mlmprep.cli", "plan", f"s3://{name}/corpus", f"s3://{name}/out",
         "--storage-options", json.dumps({"endpoint_url": endpoint}), "--json", *OPTIONS],
        capture_output=True, text=True, timeout=WAIT_SECONDS,
    )  # fmt: skip
    assert planned.returncode == 0, planned.stderr
    assert json.loads(planned.stdout)["units"] > 1  # cut by byte range: read from the store


def test_packed_batches_read_a_build_on_s3_as_a_local_one(bucket, endpoint, local_build):
    """The sampler's lengths and the streamed rows come from the store (its endpoint
    given once to the storage layer), the same batches as from the same build on disk."""
    pytest.importorskip("torch", reason="the torch extra is not installed")
    from mlmprep.core import storage
    from mlmprep.torch import PackedBatchSampler, PackedIterableDataset

    _, name = bucket
    built = subprocess.run(command(name, endpoint, None, workers=1), capture_output=True, text=True)
    assert built.returncode == 0, built.stderr
    storage.configure({"endpoint_url": endpoint})
    try:
        remote = PackedIterableDataset(f"s3://{name}/out", 1024, seed=2)
        streamed = [[row["input_ids"] for row in batch] for batch in remote]
        planned = list(PackedBatchSampler.from_build(f"s3://{name}/out", 1024, seed=2))
    finally:
        storage.configure({})
    local = PackedIterableDataset(str(local_build), 1024, seed=2)
    assert streamed == [[row["input_ids"] for row in batch] for batch in local]
    assert planned == list(PackedBatchSampler.from_build(str(local_build), 1024, seed=2))
    assert sum(map(len, streamed)) == len(local.sampler.lengths) > 0
