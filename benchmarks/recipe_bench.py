"""A two-phase recipe beside the plain builds it replaces, same run.

The recipe mixes two sources (en-books and en-tech of the shared corpora, else the
bundled sample's two files) in two phases, each one epoch of their tokens (alpha 1):
an NSP phase at 128 and an MLM-only phase at 512. The baseline is two plain builds of
the same inputs with the same options, one per phase, each tokenizing the text again.
Prints seconds, peak RSS of each process tree and the ratio of the recipe to the two
builds (under 1: tokenizing once pays for the draws).

    python benchmarks/recipe_bench.py --workers 2
"""

from __future__ import annotations

import argparse
import subprocess
import sys
import tempfile
import time
from pathlib import Path

from process_rss import RssSampler

ROOT = Path(__file__).resolve().parents[1]
SHARED = ROOT.parent / "shared" / "corpora"
SAMPLE = ROOT / "mlmprep" / "data" / "sample"
PHASES = {
    "pretrain": ["--max-seq-length", "128", "--objective", "nsp"],
    "extension": ["--max-seq-length", "512", "--objective", "none"],
}


def sources() -> dict[str, str]:
    if (SHARED / "en-books").is_dir():
        return {"books": str(SHARED / "en-books"), "tech": str(SHARED / "en-tech")}
    return {"austen": str(SAMPLE / "austen.txt.gz"), "kjv": str(SAMPLE / "kjv.txt.gz")}


def recipe_text(inputs: dict[str, str]) -> str:
    lines = ["[build]", "seed = 1"]
    for name, path in inputs.items():
        lines += [f"[sources.{name}]", f"inputs = [{path!r}]"]
    for name, options in PHASES.items():
        lines += ["[[phases]]", f'name = "{name}"', "alpha = 1.0"]
        lines += [f"{options[i][2:].replace('-', '_')} = {_toml(options[i + 1])}" for i in (0, 2)]
    return "\n".join(lines) + "\n"


def _toml(value: str) -> str:
    return value if value.isdigit() else f'"{value}"'


def timed(command: list[str]) -> tuple[float, int]:
    started = time.monotonic()
    process = subprocess.Popen(command, stdout=subprocess.DEVNULL)
    sampler = RssSampler(process.pid)
    if process.wait() != 0:
        sys.exit(f"failed: {' '.join(command)}")
    return time.monotonic() - started, sampler.stop()


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("--workers", type=int, default=2)
    args = parser.parse_args()
    mlmprep = str(Path(sys.executable).with_name("mlmprep"))
    inputs = sources()
    workers = ["--workers", str(args.workers), "--quiet"]
    with tempfile.TemporaryDirectory(prefix="mlmprep-recipe-bench-") as scratch:
        recipe = Path(scratch) / "recipe.toml"
        recipe.write_text(recipe_text(inputs))
        recipe_seconds, recipe_rss = timed(
            [mlmprep, "build", "--recipe", str(recipe), f"{scratch}/mix", *workers]
        )
        plain_seconds, plain_rss = 0.0, 0
        for name, options in PHASES.items():
            output = f"{scratch}/{name}"
            seconds, rss = timed(
                [mlmprep, "build", *inputs.values(), output, "--seed", "1", *options, *workers]
            )
            plain_seconds += seconds
            plain_rss = max(plain_rss, rss)
    print(f"sources: {', '.join(inputs)}; {args.workers} workers")
    print(
        f"recipe (2 phases, each tokenized once): {recipe_seconds:.1f} s, peak RSS "
        f"{recipe_rss / 1e6:.0f} MB"
    )
    print(
        f"two plain builds:                       {plain_seconds:.1f} s, peak RSS "
        f"{plain_rss / 1e6:.0f} MB"
    )
    print(f"ratio recipe / two plain builds:        {recipe_seconds / plain_seconds:.2f}")


if __name__ == "__main__":
    main()
