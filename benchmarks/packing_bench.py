"""Packed batches: the fill PackedBatchSampler reaches and the rows/s it sustains.

Builds `--objective none --no-cross-documents` (DOC-SENTENCES) rows of en-tech from the
shared corpora (else the bundled sample) at 1,024 and 8,192 tokens, then packs each
epoch into batches of one and of four contexts with two buffer sizes. Prints the
batches, the fewest batches any packing needs (a lower bound), the fill (tokens in
batches / (batches x budget)) and the rows/s of a whole epoch (order, packing and the
index lists handed out) on one core, the median of 5 epochs; and the rows/s on a
million rows drawn from the 1,024 build's lengths.

    python benchmarks/packing_bench.py
"""

from __future__ import annotations

import math
import statistics
import subprocess
import sys
import tempfile
import time
from pathlib import Path

import numpy as np

from mlmprep.outputs.packed_batches import DEFAULT_BUFFER_SIZE, PackedBatchSampler

ROOT = Path(__file__).resolve().parents[1]
SHARED = ROOT.parent / "shared" / "corpora"
CORPUS = SHARED / "en-tech" if (SHARED / "en-tech").is_dir() else ROOT / "mlmprep/data/sample"
LENGTHS = (1024, 8192)
CONTEXTS = (1, 4)  # batch_tokens = contexts x max_seq_length
BUFFERS = (64, DEFAULT_BUFFER_SIZE)
EPOCHS = 5


def build(output: Path, length: int) -> None:
    command = [sys.executable, "-m", "mlmprep.cli", "build", str(CORPUS), str(output)]
    command += ["--objective", "none", "--no-cross-documents", "--masking", "dynamic"]
    command += ["--max-seq-length", str(length), "--seed", "1"]
    subprocess.run(command, check=True, stdout=subprocess.DEVNULL)


def fewest_batches(lengths: np.ndarray, budget: int) -> int:
    """No packing takes fewer: the tokens over the budget, and for each t the rows
    longer than budget / (t + 1), of which a batch holds at most t."""
    by_count = [math.ceil((lengths > budget / (t + 1)).sum() / t) for t in range(1, 64)]
    return max([math.ceil(lengths.sum() / budget), *by_count])


def epoch_rate(sampler: PackedBatchSampler) -> tuple[float, int]:
    """Rows per second over whole epochs (median) and the batches of one."""
    rates, batches = [], 0
    for epoch in range(EPOCHS):
        sampler.set_epoch(epoch)
        started = time.perf_counter()
        batches = sum(1 for _ in sampler)
        rates.append(len(sampler.lengths) / (time.perf_counter() - started))
    return statistics.median(rates), batches


def main() -> None:
    print(f"packed batches of {CORPUS.name}, DOC-SENTENCES rows, one core")
    header = "length  batch_tokens  buffer    rows  batches  bound   fill  best   rows/s"
    print(header)
    with tempfile.TemporaryDirectory() as scratch:
        for length in LENGTHS:
            output = Path(scratch) / f"rows-{length}"
            build(output, length)
            lengths = PackedBatchSampler.from_build(str(output), length).lengths
            for contexts in CONTEXTS:
                budget = contexts * length
                bound = fewest_batches(lengths, budget)
                for buffer in BUFFERS:
                    sampler = PackedBatchSampler.from_build(str(output), budget, buffer_size=buffer)
                    rate, batches = epoch_rate(sampler)
                    filled = sampler.fill()
                    best = lengths.sum() / (bound * budget)
                    print(
                        f"{length:6}  {budget:12,}  {buffer:6}  {len(lengths):6}  {batches:7}"
                        f"  {bound:5}  {filled:.3f}  {best:.3f}  {rate:8,.0f}"
                    )
            if length == LENGTHS[0]:
                drawn = np.random.default_rng(0).choice(lengths, 1_000_000)
    sampler = PackedBatchSampler(drawn, 4 * LENGTHS[0])
    rate, batches = epoch_rate(sampler)
    print(f"1,000,000 rows of the {LENGTHS[0]} build's lengths, batch_tokens {4 * LENGTHS[0]:,}, "
          f"buffer {DEFAULT_BUFFER_SIZE}: {rate:,.0f} rows/s, fill "
          f"{sampler.fill():.4f}")  # fmt: skip


if __name__ == "__main__":
    main()
