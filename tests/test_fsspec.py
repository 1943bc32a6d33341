"""Inputs and outputs as fsspec URLs: the same bytes as with local paths."""

import bz2
import gzip
import hashlib
import lzma

import pytest

fsspec = pytest.importorskip("fsspec", reason="fsspec is not installed")

from mlmprep.core.config import BuildConfig  # noqa: E402
from mlmprep.outputs.stats import compute_stats  # noqa: E402
from mlmprep.outputs.validate import validate  # noqa: E402
from mlmprep.pipeline.build import RunOptions, build  # noqa: E402

from .helpers import SAMPLE_DIR, run_build, shard_hashes  # noqa: E402

CONFIG = BuildConfig(shard_size=300)


@pytest.fixture(scope="module")
def local_build(tmp_path_factory):
    out = tmp_path_factory.mktemp("local")
    build([str(SAMPLE_DIR)], str(out), CONFIG, RunOptions(workers=1))
    return out


def url_hashes(url: str) -> dict[str, str]:
    fs, path = fsspec.core.url_to_fs(url)
    return {
        name.rsplit("/", 1)[-1]: hashlib.sha256(fs.cat_file(name)).hexdigest()
        for name in sorted(fs.ls(path, detail=False))
        if name.endswith(".parquet")
    }


def test_memory_urls_in_and_out(local_build):
    memory = fsspec.filesystem("memory")
    for path in sorted(SAMPLE_DIR.glob("*.txt.gz")):
        memory.pipe(f"/corpus/{path.name}", path.read_bytes())
    summary = build(["memory://corpus"], "memory://out", CONFIG, RunOptions(workers=1))
    assert summary["documents"] == 37 and summary["shards"] >= 2
    assert url_hashes("memory://out") == shard_hashes(local_build)
    assert validate("memory://out")["ok"]
    assert compute_stats("memory://out")["instances"] == summary["instances"]
    assert not memory.exists("/out/.mlmprep-work")
    again = build(["memory://corpus"], "memory://out", CONFIG, RunOptions(workers=1))
    assert again["already_built"]


def test_file_urls_with_worker_processes(local_build, tmp_path):
    corpus = f"file://{SAMPLE_DIR}"
    out = f"file://{tmp_path / 'out'}"
    build([corpus], out, CONFIG, RunOptions(workers=2))
    assert shard_hashes(tmp_path / "out") == shard_hashes(local_build)
    assert validate(out)["ok"]


def test_missing_url_is_a_clear_error(tmp_path):
    from mlmprep.core.errors import InputError

    with pytest.raises(InputError, match="memory://nothing-here: no such file or directory"):
        run_build(["memory://nothing-here"], tmp_path / "out")


def test_memory_urls_need_one_process():
    from mlmprep.core.errors import ConfigError

    with pytest.raises(ConfigError, match="memory:// lives inside one process"):
        build(["memory://corpus"], "memory://out2", CONFIG, RunOptions(workers=2))


def test_a_file_url_output_inside_the_input_directory_is_not_read(tmp_path):
    corpus = tmp_path / "corpus"
    corpus.mkdir()
    for path in SAMPLE_DIR.glob("*.txt.gz"):
        (corpus / path.name).write_bytes(path.read_bytes())
    out = f"file://{corpus / 'out'}"
    first = build([str(corpus)], out, CONFIG, RunOptions(workers=1))
    again = build([str(corpus)], out, CONFIG, RunOptions(workers=1))
    assert again["already_built"] and again["documents"] == first["documents"] == 37


@pytest.mark.parametrize("suffix,compress", [(".gz", gzip.compress), (".bz2", bz2.compress),
                                             (".xz", lzma.compress)])  # fmt: skip
def test_a_compressed_url_closes_the_file_it_reads(suffix, compress, monkeypatch):
    """Guards open handles: before the fix the gzip, bz2 and xz readers of a URL left the
    fsspec file they wrapped open (one per file read, held until collected)."""
    from mlmprep.core import storage
    from mlmprep.input.readers import open_binary

    fsspec = pytest.importorskip("fsspec")
    path = f"memory://closing/docs.txt{suffix}"
    with fsspec.open(path, "wb") as handle:
        handle.write(compress(b"one document.\n\nanother.\n"))
    closed = []
    real_open = storage.open_file

    def spied_open(*args):
        handle = real_open(*args)
        real_close = handle.close
        handle.close = lambda: closed.append(handle) or real_close()
        return handle

    monkeypatch.setattr(storage, "open_file", spied_open)
    with open_binary(path) as stream:
        assert stream.read() == b"one document.\n\nanother.\n"
    assert closed
