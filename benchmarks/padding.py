"""Padding in batches of 32 from the torch dataset, with and without --bin-size.

    python benchmarks/padding.py CORPUS [--bin-size 32] [--batch-size 32]

Builds CORPUS twice (plain and with --bin-size) and prints, for each, the share of
padding tokens in batches read with `MlmprepIterableDataset` (binned: batches from one
row group, i.e. one length bin).
"""

from __future__ import annotations

import argparse
import tempfile
from pathlib import Path

from mlmprep.core.config import BuildConfig
from mlmprep.pipeline.build import RunOptions, build
from mlmprep.torch import MlmprepIterableDataset


def padding_share(batches) -> tuple[float, int]:
    padded = real = count = 0
    for batch in batches:
        width = max(len(row["input_ids"]) for row in batch)
        real += sum(len(row["input_ids"]) for row in batch)
        padded += width * len(batch)
        count += 1
    return 1 - real / padded, count


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("corpus", nargs="+")
    parser.add_argument("--bin-size", type=int, default=32)
    parser.add_argument("--batch-size", type=int, default=32)
    parser.add_argument("--input-format", default="auto")
    args = parser.parse_args()
    work = Path(tempfile.mkdtemp(prefix="mlmprep-padding-"))
    for bin_size in (0, args.bin_size):
        out = work / f"bin-{bin_size}"
        config = BuildConfig(bin_size=bin_size, input_format=args.input_format)
        build(args.corpus, str(out), config, RunOptions(workers=2))
        if bin_size:
            dataset = MlmprepIterableDataset(str(out), seed=0, batch_size=args.batch_size)
            batches = list(dataset)
        else:
            rows = list(MlmprepIterableDataset(str(out), seed=0))
            batches = [rows[i : i + args.batch_size] for i in range(0, len(rows), args.batch_size)]
        share, count = padding_share(batches)
        label = f"--bin-size {bin_size}" if bin_size else "no binning"
        print(f"{label:<16} padding {share:.4f} of tokens in {count} batches of {args.batch_size}")


if __name__ == "__main__":
    main()
