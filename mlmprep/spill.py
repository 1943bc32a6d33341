"""Spill files: each unit deals its rows round-robin into buckets; a shard gathers one bucket."""

from __future__ import annotations

import numpy as np
import pyarrow as pa
import pyarrow.ipc as ipc

from . import storage

SPLITS = ("train", "validation")
SPILL_DIR = "spill"


def bucket_dir(work_dir: str, split: str, bucket: int) -> str:
    return storage.join(work_dir, SPILL_DIR, split, f"bucket-{bucket:05d}")


class SpillWriter:
    """Deals one unit's rows round-robin into bucket files, pass by pass.

    Row j of the unit (counting over all passes) goes to bucket (offset + j) % n_buckets,
    with `offset` drawn from the unit's scatter stream, so buckets differ by at most one
    row per unit. Files are written under a temporary name and renamed on `close`.
    """

    def __init__(
        self, work_dir: str, split: str, unit_index: int, n_buckets: int, rng: np.random.Generator
    ) -> None:
        self._paths = [
            storage.join(bucket_dir(work_dir, split, b), f"unit-{unit_index:06d}.arrow")
            for b in range(n_buckets)
        ]
        self._dirs = [bucket_dir(work_dir, split, b) for b in range(n_buckets)]
        self._next_bucket = int(rng.integers(n_buckets))
        self._writers: dict[int, tuple[pa.OSFile, ipc.RecordBatchFileWriter]] = {}
        self.rows: dict[int, int] = {}

    def write(self, batch: pa.RecordBatch) -> None:
        """Deal the rows of one pass."""
        n_buckets = len(self._paths)
        for bucket in range(n_buckets):
            first = (bucket - self._next_bucket) % n_buckets
            if first >= batch.num_rows:
                continue
            part = (
                batch
                if n_buckets == 1
                else batch.take(pa.array(np.arange(first, batch.num_rows, n_buckets)))
            )
            self._writer(bucket, batch.schema).write_batch(part)
            self.rows[bucket] = self.rows.get(bucket, 0) + part.num_rows
        self._next_bucket = (self._next_bucket + batch.num_rows) % n_buckets

    def _writer(self, bucket: int, schema: pa.Schema) -> ipc.RecordBatchFileWriter:
        if bucket not in self._writers:
            storage.makedirs(self._dirs[bucket])
            sink = storage.arrow_sink(self._paths[bucket] + ".tmp")
            self._writers[bucket] = (sink, ipc.new_file(sink, schema))
        return self._writers[bucket][1]

    def close(self) -> dict[int, int]:
        """Finish every bucket file (rename into place); return rows per bucket."""
        for bucket, (sink, writer) in sorted(self._writers.items()):
            writer.close()
            sink.close()
            storage.replace(self._paths[bucket] + ".tmp", self._paths[bucket])
        self._writers.clear()
        return self.rows


def read_bucket(work_dir: str, split: str, bucket: int, schema: pa.Schema) -> pa.Table:
    """All units' rows of one bucket, in unit order (so the result is scheduling-independent)."""
    directory = bucket_dir(work_dir, split, bucket)
    tables = []
    for name in storage.listdir(directory):
        if name.endswith(".arrow"):
            with storage.arrow_source(storage.join(directory, name)) as source:
                tables.append(ipc.open_file(source).read_all())
    return pa.concat_tables(tables) if tables else schema.empty_table()


def spill_bytes(work_dir: str) -> int:
    """Bytes currently held in spill files (for the peak temporary disk figure)."""
    return storage.tree_size(storage.join(work_dir, SPILL_DIR))
