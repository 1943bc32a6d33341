"""How close `mlmprep plan` comes to the build it plans: rows, shards, temporary disk,
peak RSS of all processes and wall time, predicted against measured, as ratios.

    python benchmarks/plan_accuracy.py                    # sample, en-tech, zh-mixed; dupe 1, 5
    python benchmarks/plan_accuracy.py --workers 1 2 --corpora en-tech

Each corpus is planned, then built with the same arguments (a subprocess, its process
tree's RSS sampled every 20 ms). tests/test_plan_accuracy.py asserts the same comparison.
"""

from __future__ import annotations

import argparse
import json
import subprocess
import sys
import tempfile
import time
from dataclasses import dataclass
from pathlib import Path

from process_rss import RssSampler

ROOT = Path(__file__).resolve().parents[1]
SHARED = ROOT.parent / "shared" / "corpora"
MLMPREP = Path(sys.executable).with_name("mlmprep")
CORPORA = {
    "sample": [str(ROOT / "mlmprep" / "data" / "sample")],
    "en-tech": [str(SHARED / "en-tech")],
    "zh-mixed": [
        str(SHARED / "zh-mixed"),
        "--tokenizer",
        str(SHARED / "vocab" / "bert-base-chinese-vocab.txt"),
    ],
}
MEASURES = ("rows", "shards", "spill_bytes", "peak_rss", "seconds")


@dataclass(frozen=True)
class Comparison:
    """One build's planned and measured figures, by MEASURES."""

    corpus: str
    arguments: list[str]
    planned: dict[str, float]
    measured: dict[str, float]

    def ratio(self, measure: str) -> float:
        return self.planned[measure] / self.measured[measure]


def corpus_available(name: str) -> bool:
    return Path(CORPORA[name][0]).exists()


def compare(name: str, arguments: list[str], scratch: Path) -> Comparison:
    """Plan corpus `name` with `arguments`, build it the same way, and compare."""
    source, *tokenizer = CORPORA[name]
    out = scratch / f"{name}-{len(list(scratch.iterdir()))}"
    command = [source, str(out), *tokenizer, *arguments]
    plan = json.loads(_run(["plan", *command, "--json"]))
    started = time.monotonic()
    process = subprocess.Popen([str(MLMPREP), "build", *command, "-q"], stdout=subprocess.DEVNULL)
    sampler = RssSampler(process.pid, interval=0.02)
    if process.wait() != 0:
        raise RuntimeError(f"mlmprep build {' '.join(command)} failed")
    seconds, peak = time.monotonic() - started, sampler.stop()
    index = json.loads((out / "index.json").read_text())
    planned = {
        "rows": plan["rows"],
        "shards": sum(plan["shards"].values()),
        "spill_bytes": plan["spill_bytes"],
        "peak_rss": plan["resources"]["total_rss"],
        "seconds": plan["resources"]["seconds"],
    }
    measured = {
        "rows": sum(shard["rows"] for shard in index["shards"]),
        "shards": len(index["shards"]),
        "spill_bytes": index["run"]["peak_spill_bytes"],
        "peak_rss": peak,
        "seconds": seconds,
    }
    return Comparison(name, arguments, planned, measured)


def _run(arguments: list[str]) -> str:
    return subprocess.run(
        [str(MLMPREP), *arguments], check=True, capture_output=True, text=True
    ).stdout


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("--corpora", nargs="+", default=list(CORPORA), choices=list(CORPORA))
    parser.add_argument("--dupe-factors", nargs="+", type=int, default=[1, 5])
    parser.add_argument("--workers", nargs="+", type=int, default=[2])
    args = parser.parse_args()
    print(f"{'corpus':10} {'dupe':>4} {'workers':>7}  " + "  ".join(f"{m:>11}" for m in MEASURES))
    with tempfile.TemporaryDirectory() as scratch:
        for name in (c for c in args.corpora if corpus_available(c)):
            for dupe in args.dupe_factors:
                for workers in args.workers:
                    arguments = ["--dupe-factor", str(dupe), "--workers", str(workers)]
                    result = compare(name, arguments, Path(scratch))
                    ratios = "  ".join(f"{result.ratio(m):>11.2f}" for m in MEASURES)
                    print(f"{name:10} {dupe:>4} {workers:>7}  {ratios}", flush=True)
    print("(planned / measured; 1.00 is exact)")


if __name__ == "__main__":
    main()
