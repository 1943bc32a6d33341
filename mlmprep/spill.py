"""Spill files: each unit deals its rows round-robin into buckets; a shard gathers one bucket."""

from __future__ import annotations

import os

import numpy as np
import pyarrow as pa
import pyarrow.ipc as ipc

SPLITS = ("train", "validation")
SPILL_DIR = "spill"


def bucket_dir(work_dir: str, split: str, bucket: int) -> str:
    return os.path.join(work_dir, SPILL_DIR, split, f"bucket-{bucket:05d}")


def write_spill(
    table: pa.Table,
    work_dir: str,
    split: str,
    unit_index: int,
    n_buckets: int,
    rng: np.random.Generator,
) -> dict[int, int]:
    """Deal rows j -> bucket (offset + j) % n_buckets from a seeded offset; write one
    Arrow IPC file per non-empty bucket (tmp name + rename). Returns rows per bucket."""
    offset = int(rng.integers(n_buckets))
    rows = {}
    for bucket in range(n_buckets):
        indices = np.arange((bucket - offset) % n_buckets, table.num_rows, n_buckets)
        if len(indices) == 0:
            continue
        directory = bucket_dir(work_dir, split, bucket)
        os.makedirs(directory, exist_ok=True)
        path = os.path.join(directory, f"unit-{unit_index:06d}.arrow")
        tmp = path + ".tmp"
        part = table if n_buckets == 1 else table.take(pa.array(indices))
        with pa.OSFile(tmp, "wb") as sink, ipc.new_file(sink, table.schema) as writer:
            writer.write_table(part)
        os.replace(tmp, path)
        rows[bucket] = len(indices)
    return rows


def read_bucket(work_dir: str, split: str, bucket: int, schema: pa.Schema) -> pa.Table:
    """All units' rows of one bucket, in unit order (so the result is scheduling-independent)."""
    directory = bucket_dir(work_dir, split, bucket)
    names = (
        sorted(n for n in os.listdir(directory) if n.endswith(".arrow"))
        if os.path.isdir(directory)
        else []
    )
    tables = []
    for name in names:
        with pa.OSFile(os.path.join(directory, name)) as source:
            tables.append(ipc.open_file(source).read_all())
    return pa.concat_tables(tables) if tables else schema.empty_table()


def spill_bytes(work_dir: str) -> int:
    """Bytes currently held in spill files (for the peak temporary disk figure)."""
    total = 0
    for root, _, names in os.walk(os.path.join(work_dir, SPILL_DIR)):
        total += sum(os.path.getsize(os.path.join(root, n)) for n in names)
    return total
