"""Spill files: one file per unit, its rows grouped by bucket; a shard reads one bucket.

A unit deals its rows round-robin into the buckets of each split. Pass batches are staged
on local disk, sorted by bucket; when the unit ends, its spill file is written as an Arrow
IPC stream holding one record batch per (split, bucket), in that order, and the byte
range of each batch is returned. The shard writer of bucket b then reads b's slice of
every unit file with one range read each, in unit order, so the rows it gathers do not
depend on scheduling. Files: O(units); open handles per worker: O(1).

Spilled rows keep token ids and in-row positions in 16 bits where they fit
(`spill_schema`), which halves what is sorted, compressed and read back; the shard
writer casts them back to the output schema.
"""

from __future__ import annotations

import contextlib
import os
import tempfile
from collections.abc import Iterator
from concurrent.futures import ThreadPoolExecutor
from dataclasses import dataclass

import numpy as np
import pyarrow as pa
import pyarrow.ipc as ipc

from mlmprep.core import storage
from mlmprep.core.files import atomic_path

SPILL_DIR = "spill"
SPILL_COMPRESSION = "lz4"
SPILL_FORMAT = 2  # 2: ids and positions in 16 bits (spill_schema); 1: the output schema
PARALLEL_READS = 8  # concurrent range reads of one bucket from object storage
ID_COLUMNS = ("input_ids", "masked_lm_ids")  # below the vocabulary size
POSITION_COLUMNS = ("masked_lm_positions", "word_ids")  # below the row length, or -1


@dataclass(frozen=True)
class SpillSlice:
    """Bytes [start, end) of a spill file: one bucket's rows from one unit."""

    path: str
    start: int
    end: int


def spill_schema(schema: pa.Schema, vocab_size: int) -> pa.Schema:
    """The output schema (without metadata) as spilled: in-row positions as int16 lists
    (rows are at most 8,192 tokens), token ids as uint16 lists when the vocabulary fits."""
    narrow = {name: pa.list_(pa.int16()) for name in POSITION_COLUMNS}
    if vocab_size <= 2**16:
        narrow.update({name: pa.list_(pa.uint16()) for name in ID_COLUMNS})
    return pa.schema(
        pa.field(f.name, narrow.get(f.name, f.type), nullable=f.nullable)
        for f in schema.remove_metadata()
    )


def cast_batch(batch: pa.RecordBatch, schema: pa.Schema) -> pa.RecordBatch:
    """The batch's columns cast to `schema`'s types (checked: a value that does not fit
    raises)."""
    columns = [column.cast(f.type) for column, f in zip(batch.columns, schema)]
    return pa.RecordBatch.from_arrays(columns, schema=schema)


class BucketDealer:
    """Deals one split's rows round-robin into buckets, staging pass batches on local disk.

    Row j of the unit (counting over all passes and windows) goes to bucket
    (offset + j) % n_buckets, with `offset` drawn from the unit's scatter stream, so
    buckets differ by at most one row per unit.
    """

    def __init__(
        self, n_buckets: int, rng: np.random.Generator, staging_path: str, schema: pa.Schema
    ) -> None:
        self.n_buckets = n_buckets
        self.schema = schema  # the spill schema that staged rows are cast to
        self.rows = np.zeros(n_buckets, np.int64)
        self.first_bucket = int(rng.integers(n_buckets))  # of the unit's row 0
        self._next_bucket = self.first_bucket
        self._staging_path = staging_path
        self._sink: pa.OSFile | None = None
        self._writer: ipc.RecordBatchStreamWriter | None = None
        self._counts: list[np.ndarray] = []  # rows per bucket of each staged batch

    def write(self, batch: pa.RecordBatch) -> None:
        """Stage one pass batch in the spill schema, its rows sorted by bucket (stable)."""
        if batch.num_rows == 0:
            return
        batch = cast_batch(batch, self.schema)
        bucket = (self._next_bucket + np.arange(batch.num_rows)) % self.n_buckets
        self._next_bucket = (self._next_bucket + batch.num_rows) % self.n_buckets
        counts = np.bincount(bucket, minlength=self.n_buckets)
        if self.n_buckets > 1:
            batch = batch.take(pa.array(np.argsort(bucket, kind="stable")))
        if self._writer is None:
            self._sink = pa.OSFile(self._staging_path, "wb")
            self._writer = ipc.new_stream(self._sink, self.schema)
        self._writer.write_batch(batch)
        self._counts.append(counts)
        self.rows += counts

    def discard(self) -> None:
        """Close and remove the staging file (the unit failed)."""
        if self._writer is not None:
            with contextlib.suppress(OSError, pa.ArrowException):  # the error raised says more
                self._writer.close()
                self._sink.close()
        with contextlib.suppress(FileNotFoundError):
            os.remove(self._staging_path)

    def bucket_batches(self) -> Iterator[pa.RecordBatch]:
        """One batch per bucket, in bucket order (empty where the unit has no rows)."""
        schema = self.schema
        if self._writer is None:
            for _ in range(self.n_buckets):
                yield empty_batch(schema)
            return
        self._writer.close()
        self._sink.close()
        with pa.memory_map(self._staging_path) as source:
            staged = list(ipc.open_stream(source))
            starts = [np.concatenate(([0], np.cumsum(c))) for c in self._counts]
            for bucket in range(self.n_buckets):
                parts = [
                    batch.slice(start[bucket], count[bucket])
                    for batch, start, count in zip(staged, starts, self._counts)
                    if count[bucket]
                ]
                yield _one_batch(parts, schema)
            staged.clear()  # no buffer may outlive the memory map
        os.remove(self._staging_path)


def dealt_rows(total: int, first_bucket: int, n_buckets: int, buckets: range) -> np.ndarray:
    """Rows that a BucketDealer starting at `first_bucket` gave each of `buckets` out of
    `total` rows: row j went to bucket (first_bucket + j) % n_buckets."""
    places = (np.arange(buckets.start, buckets.stop) - first_bucket) % n_buckets
    return total // n_buckets + (places < total % n_buckets).astype(np.int64)


def empty_batch(schema: pa.Schema) -> pa.RecordBatch:
    return pa.record_batch([pa.array([], type=field.type) for field in schema], schema=schema)


def _one_batch(parts: list[pa.RecordBatch], schema: pa.Schema) -> pa.RecordBatch:
    if not parts:
        return empty_batch(schema)
    if len(parts) == 1:
        return parts[0]
    return pa.Table.from_batches(parts, schema=schema).combine_chunks().to_batches()[0]


def spill_overhead(schema: pa.Schema, batches: int) -> int:
    """Bytes of a spill file of `batches` empty bucket batches: what a unit's spill file
    holds beyond its rows (a few hundred bytes per bucket)."""
    sink = pa.BufferOutputStream()
    options = ipc.IpcWriteOptions(compression=SPILL_COMPRESSION)
    with ipc.new_stream(sink, schema, options=options) as writer:
        for _ in range(batches + 1):  # write_spill's leading header batch, then the buckets
            writer.write_batch(empty_batch(schema))
    return sink.tell()


def spill_path(spill_dir: str, unit_name: str) -> str:
    return storage.join(spill_dir, f"{unit_name}.arrows")


def staging_path(spill_dir: str, unit_name: str, split: str) -> str:
    """Where a unit stages one split's pass batches: beside its spill file when that is
    on local disk, else in the system's temporary directory (staging is local I/O)."""
    directory = tempfile.gettempdir() if storage.is_url(spill_dir) else spill_dir
    os.makedirs(directory, exist_ok=True)
    return os.path.join(directory, f"{unit_name}-{split}-{os.getpid()}.staging")


def write_spill(
    path: str, dealers: dict[str, BucketDealer], schema: pa.Schema
) -> dict[str, list[int]]:
    """Write the unit's spill file in the spill `schema` of its dealers (temporary name,
    then rename); return, per split, the byte offsets of its bucket batches (n_buckets + 1
    values)."""
    offsets: dict[str, list[int]] = {}
    options = ipc.IpcWriteOptions(compression=SPILL_COMPRESSION)
    with (
        atomic_path(path) as tmp,
        storage.arrow_sink(tmp) as sink,
        ipc.new_stream(sink, schema, options=options) as writer,
    ):
        writer.write_batch(empty_batch(schema))  # the schema and a header: slices start after
        for split, dealer in dealers.items():
            ends = [sink.tell()]
            for batch in dealer.bucket_batches():
                writer.write_batch(batch)
                ends.append(sink.tell())
            offsets[split] = ends
    return offsets


def read_slices(slices: list[SpillSlice], schema: pa.Schema) -> pa.Table:
    """The rows of the given slices, concatenated in the order given (unit order)."""
    if not slices:
        return schema.empty_table()
    if storage.is_url(slices[0].path):
        with ThreadPoolExecutor(PARALLEL_READS) as pool:
            pieces = list(pool.map(lambda s: _read_slice(s, schema), slices))
    else:
        pieces = [_read_slice(s, schema) for s in slices]
    return pa.Table.from_batches([b for batches in pieces for b in batches], schema=schema)


def _read_slice(piece: SpillSlice, schema: pa.Schema) -> list[pa.RecordBatch]:
    """The batches in one slice: one of a unit's spill file, one per unit of a group
    file (groups.py)."""
    data = pa.py_buffer(storage.read_range(piece.path, piece.start, piece.end))
    reader = pa.BufferReader(data)
    batches = []
    while reader.tell() < data.size:
        batches.append(ipc.read_record_batch(ipc.read_message(reader), schema))
    return batches
