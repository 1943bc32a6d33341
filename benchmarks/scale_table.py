"""The plan at 1 GB to 8 TB on 1 to 1,000 workers: how the time splits between units, the
groups of a two-level shuffle, shards and the export, as a Markdown table.

Plans en-tech from the shared corpora (else the bundled sample) with `--input-bytes` for
each size and worker count, for NSP at dupe 5 and for MLM only at 1,024 tokens with
dynamic masking (`mlmprep plan --json`; nothing is built but each plan's sample).

    python benchmarks/scale_table.py
"""

from __future__ import annotations

import json
import subprocess
import sys
from pathlib import Path

ROOT = Path(__file__).resolve().parents[1]
SHARED = ROOT.parent / "shared" / "corpora"
CORPUS = SHARED / "en-tech" if (SHARED / "en-tech").is_dir() else ROOT / "mlmprep/data/sample"
SIZES = {"1 GB": "1e9", "100 GB": "1e11", "1 TB": "1e12", "8 TB": "8e12"}
WORKERS = (1, 16, 100, 1000)
PHASES = ("units", "groups", "shards")
CONFIGS = {
    "NSP, dupe 5": ["--dupe-factor", "5"],
    "MLM, 1,024 tokens, dynamic": [
        "--objective", "none", "--masking", "dynamic", "--max-seq-length", "1024",
    ],
}  # fmt: skip


def plan(size: str, workers: int, options: list[str]) -> dict:
    command = [sys.executable, "-m", "mlmprep.cli", "plan", str(CORPUS), "out", "--json"]
    command += ["--input-bytes", size, "--workers", str(workers), *options]
    return json.loads(subprocess.run(command, check=True, capture_output=True).stdout)


def duration(seconds: float) -> str:
    if seconds < 120:
        return f"{seconds:.0f} s"
    if seconds < 7200:
        return f"{seconds / 60:.0f} min"
    return f"{seconds / 3600:.1f} h"


def cell(phases: dict[str, dict], name: str) -> str:
    """A phase's time and tasks, or "one level" for the groups of a one-level shuffle."""
    if name not in phases:
        return "one level"
    phase = phases[name]
    return f"{duration(phase['seconds'])} ({phase['tasks']:,})"


def main() -> None:
    for name, options in CONFIGS.items():
        print(f"\n{name} ({CORPUS.name}):\n")
        print("| raw text | workers | units (tasks) | groups (tasks) | shards (tasks) | build "
              "| units / ideal | export (MDS) |")  # fmt: skip
        print("|---|---:|---:|---:|---:|---:|---:|---:|")
        for label, size in SIZES.items():
            for workers in WORKERS:
                result = plan(size, workers, options)
                phases = {p["name"]: p for p in result["resources"]["phases"]}
                ideal = result["raw_bytes"] * result["sample"]["seconds"] / workers

                units, groups, shards = (cell(phases, name) for name in PHASES)
                print(
                    f"| {label} | {workers:,} | {units} | {groups} | "
                    f"{shards} | {duration(result['resources']['seconds'])} | "
                    f"{phases['units']['seconds'] / ideal:.2f} | "
                    f"{duration(phases['export']['seconds'])} |"
                )


if __name__ == "__main__":
    main()
