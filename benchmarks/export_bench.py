"""Exports in parallel: rows/s of `mlmprep export` at 1 and 2 workers, and the speedup.

Builds en-tech from the shared corpora (else the bundled sample) at `--dupe-factor 5`,
then exports it to each format with `--num-files 8` on 1 and on 2 workers (the median
of 3 runs each, the whole command timed, start-up included), and checks that both wrote
the same bytes.

    python benchmarks/export_bench.py [--megabytes 200] [--dupe-factor 1] [--formats mds]

With --megabytes N the build is of en-tech's text copied to about N MB (as
benchmarks/cluster_plan_check.py makes it), where start-up weighs less.
"""

from __future__ import annotations

import argparse
import hashlib
import json
import shutil
import statistics
import subprocess
import sys
import tempfile
import time
from pathlib import Path

from cluster_plan_check import make_corpus

ROOT = Path(__file__).resolve().parents[1]
SHARED = ROOT.parent / "shared" / "corpora"
CORPUS = SHARED / "en-tech" if (SHARED / "en-tech").is_dir() else ROOT / "mlmprep/data/sample"
FORMATS = ("mds", "lddl", "nvidia-hdf5", "tfrecord")
WORKERS = (1, 2)
RUNS = 3


def mlmprep(*arguments: str) -> None:
    command = [sys.executable, "-m", "mlmprep.cli", *arguments]
    subprocess.run(command, check=True, stdout=subprocess.DEVNULL)


def digest(directory: Path) -> str:
    """One sha256 over every file's name and bytes (export.json aside: it names DEST)."""
    total = hashlib.sha256()
    for path in sorted(p for p in directory.rglob("*") if p.is_file()):
        if path.name != "export.json":
            total.update(str(path.relative_to(directory)).encode() + path.read_bytes())
    return total.hexdigest()


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--megabytes", type=int, default=0, help="0: en-tech as it is")
    parser.add_argument("--dupe-factor", default="5")
    parser.add_argument("--formats", nargs="+", default=list(FORMATS), choices=FORMATS)
    args = parser.parse_args()
    with tempfile.TemporaryDirectory() as scratch:
        corpus = CORPUS
        if args.megabytes:
            corpus = make_corpus(Path(scratch) / "corpus", args.megabytes)
        build = Path(scratch) / "build"
        mlmprep("build", str(corpus), str(build), "--dupe-factor", args.dupe_factor, "--quiet")
        rows = sum(s["rows"] for s in json.loads((build / "index.json").read_text())["shards"])
        size = f"{args.megabytes} MB of " if args.megabytes else ""
        print(f"{size}{CORPUS.name} at dupe {args.dupe_factor}: {rows:,} rows")
        print(f"{'format':12} " + " ".join(f"{w} worker(s) rows/s".rjust(22) for w in WORKERS)
              + "   speedup  same bytes")  # fmt: skip
        for fmt in args.formats:
            rates, digests = [], set()
            for workers in WORKERS:
                seconds = []
                for _ in range(RUNS):
                    dest = Path(scratch) / f"{fmt}-{workers}"
                    shutil.rmtree(dest, ignore_errors=True)
                    started = time.perf_counter()
                    mlmprep("export", str(build), str(dest), "--format", fmt, "--num-files",
                            "8", "--workers", str(workers), "--quiet")  # fmt: skip
                    seconds.append(time.perf_counter() - started)
                digests.add(digest(dest))
                rates.append(rows / statistics.median(seconds))
            cells = " ".join(f"{rate:>22,.0f}" for rate in rates)
            print(f"{fmt:12} {cells}   {rates[1] / rates[0]:>7.2f}  {len(digests) == 1}")


if __name__ == "__main__":
    main()
