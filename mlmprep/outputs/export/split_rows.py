"""The rows of one split of a build (optionally of one length bin), in stored order, read
by row range: what an export cuts into files of its own count."""

from __future__ import annotations

from collections.abc import Iterator

import numpy as np
import pyarrow as pa
import pyarrow.compute as pc

from mlmprep.outputs.finished_build import FinishedBuild

BIN_COLUMN = "length_bin"


class SplitRows:
    """Rows of `split` (only those of `length_bin` when given), numbered from 0."""

    def __init__(
        self,
        build: FinishedBuild,
        split: str,
        length_bin: int | None = None,
        shard_counts: list[int] | None = None,
    ) -> None:
        """`shard_counts`: rows of the bin in each shard (from `bin_counts`), with a bin."""
        self.build = build
        self.shards = build.shards(split)
        self.length_bin = length_bin
        counts = [s["rows"] for s in self.shards] if length_bin is None else shard_counts
        self.starts = np.concatenate([[0], np.cumsum(counts, dtype=np.int64)])

    def __len__(self) -> int:
        return int(self.starts[-1])

    def read(self, start: int, stop: int) -> Iterator[pa.RecordBatch]:
        """Rows start..stop-1 as record batches, reading only the shards that hold them."""
        for number, shard in enumerate(self.shards):
            first, end = int(self.starts[number]), int(self.starts[number + 1])
            if end <= start or first >= stop:
                continue
            at = first  # the number of the next row of this shard (of this bin)
            for batch in self.build.batches(shard):
                if self.length_bin is not None:
                    batch = batch.filter(pc.equal(batch.column(BIN_COLUMN), self.length_bin))
                lo, hi = max(start - at, 0), min(stop - at, batch.num_rows)
                if hi > lo:
                    yield batch.slice(lo, hi - lo)
                at += batch.num_rows
                if at >= stop:
                    return


def bin_counts(build: FinishedBuild, split: str) -> dict[int, list[int]]:
    """For each length bin that holds rows of `split` (in increasing order), its row count
    in each shard of the split."""
    shards = build.shards(split)
    counts: dict[int, list[int]] = {}
    for number, shard in enumerate(shards):
        bins = build.read_columns(shard, [BIN_COLUMN]).column(BIN_COLUMN).to_numpy()
        values, found = np.unique(bins, return_counts=True)
        for value, count in zip(values.tolist(), found.tolist()):
            counts.setdefault(value, [0] * len(shards))[number] = count
    return dict(sorted(counts.items()))
