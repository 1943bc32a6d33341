"""Helpers shared by the tests: the bundled sample, the shared corpora (optional), builds."""

from __future__ import annotations

import gzip
import hashlib
import os
import signal
import subprocess
import time
from importlib import resources
from pathlib import Path

import pytest

from mlmprep.core.config import BuildConfig
from mlmprep.pipeline.build import RunOptions, build

SAMPLE_DIR = Path(str(resources.files("mlmprep.data").joinpath("sample")))
SHARED = Path(__file__).resolve().parents[1].parent / "shared" / "corpora"
WAIT_SECONDS = 120  # for a build to reach the point where a test kills it


def shared_corpus(relative: str) -> Path:
    """A file of ../shared/corpora; skip the test when the corpora are absent, fail it
    when they are present but lack the file (a skip would hide a broken test)."""
    path = SHARED / relative
    if not SHARED.exists():
        pytest.skip(f"{SHARED} is absent (shared corpora are only on developer machines)")
    if not path.exists():
        pytest.fail(f"{path} is missing although {SHARED} is present")
    return path


def shard_hashes(output_dir: Path) -> dict[str, str]:
    """sha256 of every Parquet file in an output directory."""
    return {
        p.name: hashlib.sha256(p.read_bytes()).hexdigest()
        for p in sorted(output_dir.glob("*.parquet"))
    }


def run_build(inputs, output_dir, workers: int = 1, **options) -> dict:
    """Build with the library API and return the summary."""
    config = BuildConfig(**options)
    return build([str(p) for p in inputs], str(output_dir), config, RunOptions(workers=workers))


def write_text(path: Path, documents: list[list[str]]) -> Path:
    """Write blank-line-separated documents, one paragraph per line."""
    path.write_text("\n\n".join("\n".join(d) for d in documents) + "\n", encoding="utf-8")
    return path


def plain_sample(directory: Path) -> Path:
    """The bundled sample decompressed, so large files can be split into byte-range units."""
    directory.mkdir(parents=True, exist_ok=True)
    for path in sorted(SAMPLE_DIR.glob("*.txt.gz")):
        (directory / path.name[:-3]).write_bytes(gzip.decompress(path.read_bytes()))
    return directory


def repeated_sample(directory: Path, copies: int) -> Path:
    """One plain text file of the bundled sample's documents, `copies` times over."""
    plain = plain_sample(directory / "plain")
    text = "\n\n".join(p.read_text().strip() for p in sorted(plain.glob("*.txt")))
    (directory / "big.txt").write_text("\n\n".join([text] * copies) + "\n")
    return directory / "big.txt"


def training_batches(output_dir, steps: int, batch_size: int = 8):
    """`steps` shuffled batches of a build through mlmprep.torch, starting over when the
    data runs out (for the tiny-model training tests; needs torch)."""
    import torch

    from mlmprep.torch import MlmCollator, MlmprepDataset

    loader = torch.utils.data.DataLoader(
        MlmprepDataset(str(output_dir)),
        batch_size=batch_size,
        shuffle=True,
        collate_fn=MlmCollator.from_build(str(output_dir)),
        generator=torch.Generator().manual_seed(0),
    )
    batches = iter(loader)
    for _ in range(steps):
        try:
            yield next(batches)
        except StopIteration:
            batches = iter(loader)
            yield next(batches)


TINY_MODEL = {  # a transformer small enough to train for a few steps in a test
    "hidden_size": 64,
    "num_hidden_layers": 2,
    "num_attention_heads": 2,
    "intermediate_size": 128,
}


def large_vocabulary(directory: Path, extra: int = 40_000) -> tuple[Path, list[str]]:
    """The bundled BERT vocabulary plus `extra` whole-word tokens, so ids pass 65,535;
    returns the vocab.txt and a few of the added words with the highest ids."""
    base = (SAMPLE_DIR.parent / "bert-base-uncased-vocab.txt").read_text(encoding="utf-8")
    words = [f"zzq{i}" for i in range(extra)]
    path = directory / "large-vocab.txt"
    path.write_text(base.rstrip("\n") + "\n" + "\n".join(words) + "\n", encoding="utf-8")
    return path, words[-8:]


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
