"""Gather one bucket from every unit's spill file, shuffle it with its own seeded RNG, and
write its shard(s) atomically."""

from __future__ import annotations

import math
from collections.abc import Sequence
from dataclasses import dataclass, field

import numpy as np
import pyarrow as pa
import pyarrow.parquet as pq

from mlmprep.core import storage
from mlmprep.core.config import SPLITS, BuildConfig
from mlmprep.core.files import atomic_path, sha256_file
from mlmprep.core.lease import LeaseCheck, commits_guarded
from mlmprep.core.random_streams import SHARD_SHUFFLE, rng_for
from mlmprep.formats.manifest import SHARDS_DIR, WorkState
from mlmprep.formats.schema import COMPRESSION
from mlmprep.formats.shard_names import ShardName
from mlmprep.pipeline.groups import GroupResult
from mlmprep.pipeline.spill import SpillSlice, read_slices
from mlmprep.pipeline.unit_result import UnitResult

ROW_GROUP_ROWS = 8192
ROW_GROUP_TOKENS = ROW_GROUP_ROWS * 512  # long rows: fewer rows per group, same memory


def row_group_rows(max_seq_length: int) -> int:
    """Rows per Parquet row group: 8,192 up to 512 tokens per row, fewer beyond."""
    return max(64, min(ROW_GROUP_ROWS, ROW_GROUP_TOKENS // max_seq_length))


@dataclass
class ShardTask:
    """One bucket of one split and the final names of the shards it becomes."""

    split: str
    bucket: int
    names: list[str]
    output_dir: str
    slices: list[SpillSlice]  # the bucket's rows in each unit's spill file, in unit order
    schema: pa.Schema  # of the shards
    spill_schema: pa.Schema  # of the spill files (spill.spill_schema)
    rng_seed: list[int]
    storage_options: dict = field(default_factory=dict)  # for URLs, in the worker
    group_rows: int = ROW_GROUP_ROWS
    lease: LeaseCheck | None = None  # of an object-store output, checked before commits
    done: frozenset[str] = frozenset()  # of `names`, recorded already (a repair or resume)

    def describe(self) -> str:
        """The shards this task writes, for error messages."""
        return f"{self.split} bucket {self.bucket} ({', '.join(self.names)})"


def shard_tasks(
    results: list[UnitResult],
    buckets: dict[str, int],
    config: BuildConfig,
    output_dir: str,
    schema: pa.Schema,
    spilled: pa.Schema,
    storage_options: dict,
    lease: LeaseCheck | None = None,
    groups: Sequence[GroupResult] = (),
) -> list[ShardTask]:
    """Name every shard (a bucket becomes ceil(rows / shard_size) shards) and list where
    each bucket's rows are: one slice per unit with rows in it, in unit order, or, after
    a two-level shuffle (`groups`), the bucket's one range of its group file."""
    results = sorted(results, key=lambda r: r.order)
    group_of = {
        (g.split, bucket): g
        for g in groups
        for bucket in range(g.first_bucket, g.first_bucket + len(g.offsets) - 1)
    }
    tasks = []
    for split_index, split in enumerate(SPLITS):
        if not buckets[split]:
            continue
        rows = np.zeros(buckets[split], np.int64)
        if group_of:
            for g in groups:
                if g.split == split:
                    rows[g.first_bucket : g.first_bucket + len(g.rows)] += g.rows
        else:
            for result in results:
                rows += np.asarray(result.rows[split], np.int64)
        parts = [math.ceil(int(n) / config.shard_size) for n in rows]
        total = sum(parts)
        index = 0
        for bucket, count in enumerate(parts):
            if count == 0:
                continue
            names = [str(ShardName(split, index + i, total)) for i in range(count)]
            index += count
            if group_of:
                slices = [group_of[split, bucket].slice_of(bucket)]
            else:
                slices = [
                    SpillSlice(r.spill.path, offsets[bucket], offsets[bucket + 1])
                    for r in results
                    if r.rows[split][bucket]
                    for offsets in [r.spill.offsets[split]]
                ]
            seed = [config.seed, SHARD_SHUFFLE, bucket] + ([1] if split_index else [])
            tasks.append(
                ShardTask(
                    split,
                    bucket,
                    names,
                    output_dir,
                    slices,
                    schema,
                    spilled,
                    seed,
                    storage_options,
                    row_group_rows(config.max_seq_length),
                    lease,
                )
            )
    return tasks


@dataclass(frozen=True)
class BucketResult:
    """The shard records a bucket wrote, and the S3 requests it retried."""

    shards: list[dict]
    storage_retries: int


def write_bucket_shards(task: ShardTask) -> BucketResult:
    """Shuffle the bucket and cut it into len(task.names) near-equal shards; write those
    not done yet."""
    with commits_guarded(task.lease):
        return _write_bucket_shards(task)


def _write_bucket_shards(task: ShardTask) -> BucketResult:
    storage.configure(task.storage_options)
    # one chunk per column: `take` from many small chunks is ~1.5x slower
    table = read_slices(task.slices, task.spill_schema).combine_chunks()
    rng = rng_for(*task.rng_seed)
    order = rng.permutation(table.num_rows)
    bounds = np.linspace(0, table.num_rows, len(task.names) + 1).round().astype(int)
    work = WorkState(task.output_dir)
    shards = [
        write_parquet_atomically(
            table,
            order[start:end],
            task.schema,
            storage.join(task.output_dir, name),
            task.group_rows,
        )
        for name, start, end in zip(task.names, bounds, bounds[1:])
        if name not in task.done
    ]
    for shard in shards:
        work.record(SHARDS_DIR, shard["name"], shard)
    del table
    pa.default_memory_pool().release_unused()
    return BucketResult(shards, storage.take_retries())


def row_groups(
    table: pa.Table, rows: np.ndarray, group_rows: int = ROW_GROUP_ROWS
) -> list[np.ndarray]:
    """Row groups of at most `group_rows` rows, in the given order; with a `length_bin`
    column, each bin gets row groups of its own (the order inside a bin is kept)."""
    if "length_bin" in table.column_names and len(rows):
        bins = table.column("length_bin").to_numpy()[rows]
        order = np.argsort(bins, kind="stable")
        rows, bins = rows[order], bins[order]
        cuts = np.flatnonzero(np.diff(bins)) + 1
        runs = np.split(rows, cuts)
    else:
        runs = [rows]
    return [run[i : i + group_rows] for run in runs for i in range(0, len(run), group_rows)]


def write_parquet_atomically(
    table: pa.Table,
    rows: np.ndarray,
    schema: pa.Schema,
    path: str,
    group_rows: int = ROW_GROUP_ROWS,
) -> dict:
    """Write table rows `rows` (in that order) one row group at a time, cast to `schema`,
    to a temporary name, then rename into place; return name, rows, bytes, sha256."""
    with atomic_path(path) as tmp:
        with (
            storage.arrow_sink(tmp) as sink,
            pq.ParquetWriter(sink, schema, compression=COMPRESSION) as writer,
        ):
            for group in row_groups(table, rows, group_rows):
                part = table.take(pa.array(group)).cast(schema)
                writer.write_table(part, row_group_size=group_rows)
        digest = sha256_file(tmp)
    return {
        "name": storage.basename(path),
        "rows": len(rows),
        "bytes": storage.size(path),
        "sha256": digest,
    }
