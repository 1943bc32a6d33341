"""Build a fixed set of configurations and print one sha256 per build over its shards.

A change that must keep the output bytes is checked by running this at the old and the
new commit and comparing the two outputs line by line:

    python benchmarks/output_hashes.py --checkout /path/to/old > old.txt
    python benchmarks/output_hashes.py > new.txt && diff old.txt new.txt

Each build runs `python -m mlmprep.cli` from the checkout given (default: this one), so
the code under test is the checkout's, not the one installed. Configurations that need
the shared corpora are skipped, with a line saying so, when they are absent.
"""

from __future__ import annotations

import argparse
import gzip
import hashlib
import json
import subprocess
import sys
import tempfile
from dataclasses import dataclass
from pathlib import Path

ROOT = Path(__file__).resolve().parents[1]
SHARED = ROOT.parent / "shared" / "corpora"
SAMPLE = "mlmprep/data/sample"


@dataclass(frozen=True)
class Configuration:
    """One build: a name, its inputs (None: made by `large_corpus`) and its options."""

    name: str
    inputs: str | None
    options: tuple[str, ...]


CHINESE = ("--tokenizer", str(SHARED / "vocab" / "bert-base-chinese-vocab.txt"))
CONFIGURATIONS = (
    Configuration("sample nsp, 2 workers", SAMPLE, ("--workers", "2")),
    Configuration("sample sop", SAMPLE, ("--objective", "sop")),
    Configuration("sample objective none", SAMPLE, ("--objective", "none")),
    Configuration("sample whole-word dupe 2", SAMPLE, ("--whole-word-mask", "--dupe-factor", "2")),
    Configuration(
        "sample dynamic whole-word", SAMPLE, ("--whole-word-mask", "--masking", "dynamic")
    ),
    Configuration("sample validation split", SAMPLE, ("--validation-fraction", "0.1")),
    Configuration(
        "sample unit-size 100000, 2 workers", SAMPLE, ("--unit-size", "100000", "--workers", "2")
    ),
    Configuration("en-tech 512 tokens", str(SHARED / "en-tech"), ("--max-seq-length", "512")),
    Configuration(
        "60 MB en-tech dupe 5, 2 workers", None, ("--dupe-factor", "5", "--workers", "2")
    ),
    Configuration("zh-mixed, Chinese vocabulary", str(SHARED / "zh-mixed"), CHINESE),
    Configuration(
        "zh-mixed, units of 4 MB (several windows)",
        str(SHARED / "zh-mixed"),
        (*CHINESE, "--unit-size", "4000000"),
    ),
)


def large_corpus(directory: Path, size_mb: int = 60, files: int = 8) -> Path:
    """About size_mb of en-tech documents, repeated in order, as `files` .jsonl.gz files."""
    texts = []
    for path in sorted((SHARED / "en-tech").glob("*.jsonl.gz")):
        for line in gzip.decompress(path.read_bytes()).decode().splitlines():
            texts.append(json.loads(line)["text"])
    documents, size = [], 0
    while size < size_mb * 1_000_000:
        documents.append(texts[len(documents) % len(texts)])
        size += len(documents[-1].encode()) + 1
    directory.mkdir(parents=True)
    per_file = -(-len(documents) // files)
    for index in range(files):
        chunk = documents[index * per_file : (index + 1) * per_file]
        data = "".join(json.dumps({"text": text}) + "\n" for text in chunk).encode()
        (directory / f"part-{index:05d}.jsonl.gz").write_bytes(gzip.compress(data, mtime=0))
    return directory


def shards_digest(output: Path) -> str:
    """One sha256 over every shard's name and bytes, in name order."""
    digest = hashlib.sha256()
    for path in sorted(output.rglob("*.parquet")):
        digest.update(str(path.relative_to(output)).encode())
        digest.update(hashlib.sha256(path.read_bytes()).digest())
    return digest.hexdigest()


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--checkout", type=Path, default=ROOT, help="The code to build with.")
    parser.add_argument("--only", default="", help="Run the configurations whose name has this.")
    args = parser.parse_args()
    with tempfile.TemporaryDirectory() as scratch:
        for configuration in CONFIGURATIONS:
            if args.only not in configuration.name:
                continue
            if not (SHARED / "en-tech").is_dir() and configuration.inputs != SAMPLE:
                print(f"{configuration.name}: skipped, {SHARED} is absent")
                continue
            inputs = configuration.inputs or str(large_corpus(Path(scratch) / "large"))
            output = Path(scratch) / "out"
            command = [sys.executable, "-m", "mlmprep.cli", "build", inputs, str(output)]
            command += [*configuration.options, "--overwrite", "--quiet"]
            subprocess.run(command, cwd=args.checkout, check=True, stdout=subprocess.DEVNULL)
            print(f"{configuration.name}: {shards_digest(output)}", flush=True)


if __name__ == "__main__":
    main()
