"""The plan's model against real cluster runs: a 200 MB corpus planned, then built on a
2-worker Dask cluster and a 2-CPU Ray instance (both started by the build), the predicted
tasks and wall time printed next to the measured ones.

The corpus is en-tech from the shared corpora (else the bundled sample) repeated to about
200 MB of text; the build runs on one level and, with --shuffle-groups, on two.

    python benchmarks/cluster_plan_check.py [--megabytes 200] [--engines dask ray]
"""

from __future__ import annotations

import argparse
import gzip
import importlib.util
import json
import subprocess
import sys
import tempfile
import time
from pathlib import Path

ROOT = Path(__file__).resolve().parents[1]
SHARED = ROOT.parent / "shared" / "corpora"
SOURCE = SHARED / "en-tech" if (SHARED / "en-tech").is_dir() else ROOT / "mlmprep/data/sample"
TOLERANCE = 0.25  # planned against measured wall time


def mlmprep(*arguments: str) -> dict:
    command = [sys.executable, "-m", "mlmprep.cli", *arguments, "--json"]
    return json.loads(subprocess.run(command, check=True, capture_output=True).stdout)


def make_corpus(directory: Path, megabytes: int) -> Path:
    """Copies of the source files' text as plain .jsonl/.txt files, to `megabytes` MB."""
    directory.mkdir()
    texts = []
    for path in sorted(p for p in SOURCE.iterdir() if p.is_file()):
        opener = gzip.open if path.suffix == ".gz" else open
        with opener(path, "rb") as handle:
            texts.append((path.name.removesuffix(".gz"), handle.read()))
    written, copy = 0, 0
    while written < megabytes * 1e6:
        for name, data in texts:
            (directory / f"{copy:03d}-{name}").write_bytes(data)
            written += len(data)
        copy += 1
    return directory


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--megabytes", type=int, default=200)
    parser.add_argument("--engines", nargs="+", default=["dask", "ray"])
    args = parser.parse_args()
    with tempfile.TemporaryDirectory() as scratch:
        corpus = make_corpus(Path(scratch) / "corpus", args.megabytes)
        size = sum(p.stat().st_size for p in corpus.iterdir()) / 1e6
        print(f"{SOURCE.name}, copied to {size:.0f} MB")
        print(f"{'engine':6} {'shuffle':8} {'tasks plan/run':>15} {'seconds plan/run':>17} ratio")
        for engine in args.engines:
            if importlib.util.find_spec({"dask": "distributed"}.get(engine, engine)) is None:
                print(f"{engine:6} not installed (mlmprep[{engine}])")
                continue
            for groups in ("0", "2"):
                options = ["--engine", engine, "--workers", "2", "--shuffle-groups", groups]
                plan = mlmprep("plan", str(corpus), "out", *options)
                out = Path(scratch) / f"out-{engine}-{groups}"
                started = time.perf_counter()
                summary = mlmprep("build", str(corpus), str(out), *options, "--quiet")
                seconds = time.perf_counter() - started
                index = json.loads((out / "index.json").read_text())
                planned = plan["resources"]["seconds"]
                ratio = planned / seconds
                verdict = "ok" if abs(ratio - 1) <= TOLERANCE else f"outside ±{TOLERANCE:.0%}"
                print(
                    f"{engine:6} {'2 levels' if groups != '0' else '1 level':8} "
                    f"{plan['tasks']:>7}/{index['plan']['tasks']:<7} "
                    f"{planned:>8.1f}/{seconds:<8.1f} {ratio:>6.2f} {verdict}"
                    f"  (cluster start-up within; build says {summary['seconds']:.1f} s)"
                )


if __name__ == "__main__":
    main()
