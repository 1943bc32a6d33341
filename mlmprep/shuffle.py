"""Gather one spill bucket, shuffle it with its own seeded RNG, write its shard(s) atomically."""

from __future__ import annotations

import os
import shutil
from dataclasses import dataclass

import numpy as np
import pyarrow as pa
import pyarrow.parquet as pq

from .manifest import SHARDS_DIR, WorkState, sha256_file
from .schema import COMPRESSION
from .spill import bucket_dir, read_bucket

ROW_GROUP_ROWS = 8192


@dataclass
class ShardTask:
    """One bucket of one split and the final names of the shards it becomes."""

    split: str
    bucket: int
    names: list[str]
    output_dir: str
    work_dir: str
    schema: pa.Schema
    rng_seed: list[int]


def shard_name(split: str, index: int, total: int) -> str:
    return f"{split}-{index:05d}-of-{total:05d}.parquet"


def write_bucket_shards(task: ShardTask) -> list[dict]:
    """Shuffle the bucket and cut it into len(task.names) near-equal shards."""
    table = read_bucket(task.work_dir, task.split, task.bucket, task.schema)
    rng = np.random.Generator(np.random.PCG64(np.random.SeedSequence(task.rng_seed)))
    table = table.take(pa.array(rng.permutation(table.num_rows)))
    bounds = np.linspace(0, table.num_rows, len(task.names) + 1).round().astype(int)
    shards = []
    for name, start, end in zip(task.names, bounds, bounds[1:]):
        part = table.slice(int(start), int(end - start)).replace_schema_metadata(
            task.schema.metadata
        )
        shards.append(write_parquet_atomically(part, os.path.join(task.output_dir, name)))
    work = WorkState(task.output_dir)
    for shard in shards:
        work.record(SHARDS_DIR, shard["name"], shard)
    # only now: a rerun after a crash above still finds the bucket and redoes it
    shutil.rmtree(bucket_dir(task.work_dir, task.split, task.bucket), ignore_errors=True)
    return shards


def write_parquet_atomically(table: pa.Table, path: str) -> dict:
    """Write to a temporary name, fsync, rename into place; return name, rows, bytes, sha256."""
    tmp = f"{path}.tmp-{os.getpid()}"
    try:
        pq.write_table(table, tmp, compression=COMPRESSION, row_group_size=ROW_GROUP_ROWS)
        digest = sha256_file(tmp)
        os.replace(tmp, path)
    finally:
        if os.path.exists(tmp):
            os.remove(tmp)
    return {
        "name": os.path.basename(path),
        "rows": table.num_rows,
        "bytes": os.path.getsize(path),
        "sha256": digest,
    }
