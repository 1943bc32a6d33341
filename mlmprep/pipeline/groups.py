"""The second level of a two-level shuffle: one group of neighbouring buckets, gathered
from every unit's spill file, rewritten so that each bucket is one byte range.

A unit's spill file holds one record batch per bucket, in bucket order, so a group of
neighbouring buckets is one range of it: a group task reads that range from every unit
(one read each, however many buckets the group has), and writes a group file holding,
for each of its buckets in order, that bucket's batches of every unit in unit order.
The messages are copied as they are, never decoded. A bucket's shard task then reads one
range of one group file and gets the same rows, in the same order, as it would have from
one slice of every unit file: the shards are the same bytes with one level or two.
"""

from __future__ import annotations

import contextlib
import os
import tempfile
from collections.abc import Iterator
from concurrent.futures import ThreadPoolExecutor
from dataclasses import dataclass, field

import numpy as np
import pyarrow as pa
import pyarrow.ipc as ipc
from tqdm import tqdm

from mlmprep.core import storage
from mlmprep.core.config import SPLITS
from mlmprep.core.engines.engine import Engine
from mlmprep.core.files import atomic_path
from mlmprep.core.lease import LeaseCheck, commits_guarded
from mlmprep.formats.manifest import GROUPS_DIR, WorkState
from mlmprep.pipeline.sizing import Sizing
from mlmprep.pipeline.spill import (
    PARALLEL_READS,
    SPILL_COMPRESSION,
    SpillSlice,
    dealt_rows,
    empty_batch,
)
from mlmprep.pipeline.unit_result import UnitResult

END_OF_STREAM = b"\xff\xff\xff\xff\x00\x00\x00\x00"  # Arrow IPC: continuation, length 0
COPY_BYTES = 8 * 1024 * 1024  # of staged unit ranges, copied a piece at a time


def group_name(split: str, group: int) -> str:
    """The name of a group's file (and record): group-train-00012."""
    return f"group-{split}-{group:05d}"


@dataclass(frozen=True)
class UnitRange:
    """One unit's rows of a group: the byte range of the group in its spill file, and
    how the unit dealt its rows (so the rows of each bucket are known unread)."""

    path: str
    start: int
    end: int
    rows: int  # of the unit's split, all buckets
    first_bucket: int  # of its row 0 (spill.dealt_rows)

    def bucket_rows(self, buckets: range, n_buckets: int) -> np.ndarray:
        return dealt_rows(self.rows, self.first_bucket, n_buckets, buckets)


@dataclass
class GroupTask:
    """One group of one split: its buckets and every unit's range of them."""

    split: str
    group: int
    units: list[UnitRange]  # in unit order; units without rows in the group left out
    buckets: range  # the group's, of the split's
    split_buckets: int
    spill_dir: str
    schema: pa.Schema  # of the spill files
    storage_options: dict = field(default_factory=dict)  # for URLs, in the worker
    lease: LeaseCheck | None = None  # of an object-store output, checked before commits

    @property
    def name(self) -> str:
        return group_name(self.split, self.group)

    @property
    def path(self) -> str:
        return storage.join(self.spill_dir, f"{self.name}.arrows")

    def describe(self) -> str:
        """The group, for error messages."""
        first, last = self.buckets.start, self.buckets.stop - 1
        return f"{self.split} group {self.group} (buckets {first}-{last})"


@dataclass(frozen=True)
class GroupResult:
    """A written group file: per bucket of the group, the byte range of its rows."""

    name: str
    split: str
    group: int
    first_bucket: int
    path: str
    offsets: list[int]  # buckets + 1 values: bucket first_bucket + i: [offsets[i], offsets[i + 1])
    rows: list[int]  # of each bucket, over every unit
    bytes: int
    storage_retries: int = 0

    def slice_of(self, bucket: int) -> SpillSlice:
        """The range of `bucket` (one of this group's) in the group file."""
        i = bucket - self.first_bucket
        return SpillSlice(self.path, self.offsets[i], self.offsets[i + 1])

    def to_dict(self) -> dict:
        return dict(vars(self))

    @classmethod
    def from_dict(cls, data: dict) -> GroupResult:
        return cls(**data)


def group_tasks(
    results: list[UnitResult],
    sizing: Sizing,
    spill_dir: str,
    schema: pa.Schema,
    storage_options: dict,
    done: set[str],
    lease: LeaseCheck | None = None,
) -> list[GroupTask]:
    """A task for every group of every split not in `done`, in split and group order."""
    results = sorted(results, key=lambda r: r.order)
    tasks = []
    for split in SPLITS:
        n_buckets = sizing.buckets[split]
        for group, buckets in enumerate(sizing.groups(split)):
            if group_name(split, group) in done:
                continue
            units = [
                UnitRange(
                    r.spill.path,
                    r.spill.offsets[split][group],
                    r.spill.offsets[split][group + 1],
                    sum(r.rows[split]),
                    r.first_buckets[split],
                )
                for r in results
                if r.rows[split][group]
            ]
            tasks.append(
                GroupTask(
                    split,
                    group,
                    units,
                    buckets,
                    n_buckets,
                    spill_dir,
                    schema,
                    storage_options,
                    lease,
                )
            )
    return tasks


def write_group(task: GroupTask) -> GroupResult:
    """Gather the group's range of every unit and write its group file."""
    with commits_guarded(task.lease):
        storage.configure(task.storage_options)
        with _staged(task) as staged:
            offsets = _write_group_file(task, staged)
        rows = sum(
            (u.bucket_rows(task.buckets, task.split_buckets) for u in task.units),
            np.zeros(len(task.buckets), np.int64),
        )
        return GroupResult(
            task.name,
            task.split,
            task.group,
            task.buckets.start,
            task.path,
            offsets,
            rows.tolist(),
            offsets[-1],
            storage.take_retries(),
        )


@contextlib.contextmanager
def _staged(task: GroupTask) -> Iterator[str]:
    """A local file holding every unit's range of the group, one after the other (one
    read per unit); removed afterwards."""
    directory = tempfile.gettempdir() if storage.is_url(task.spill_dir) else task.spill_dir
    path = os.path.join(directory, f"{task.name}-{os.getpid()}.staging")
    try:
        with open(path, "wb") as staging:
            for data in _read_in_order(task):
                staging.write(data)
        yield path
    finally:
        with contextlib.suppress(FileNotFoundError):
            os.remove(path)


def _read_in_order(task: GroupTask) -> Iterator[bytes]:
    """Each unit's range of the group, in unit order; on object storage several reads
    are in flight, and no more than a few wait to be written."""
    ranges = [(u.path, u.start, u.end) for u in task.units]
    if not storage.is_url(task.spill_dir):
        for path, start, end in ranges:
            yield storage.read_range(path, start, end)
        return
    with ThreadPoolExecutor(PARALLEL_READS) as pool:
        for begin in range(0, len(ranges), 4 * PARALLEL_READS):
            batch = ranges[begin : begin + 4 * PARALLEL_READS]
            yield from pool.map(lambda r: storage.read_range(*r), batch)


def _write_group_file(task: GroupTask, staged: str) -> list[int]:
    """The group file: an Arrow IPC stream of the spill schema whose messages are, for
    each bucket, its batches of every unit (copied from `staged`); the buckets' offsets."""
    units = _bucket_bounds(task, staged)
    with atomic_path(task.path) as tmp, storage.arrow_sink(tmp) as sink:
        sink.write(_stream_header(task.schema))
        offsets = [sink.tell()]
        with open(staged, "rb") as source:
            for i in range(len(task.buckets)):
                for bounds in units:
                    _copy(source, bounds[i], bounds[i + 1] - bounds[i], sink)
                offsets.append(sink.tell())
        sink.write(END_OF_STREAM)
    return offsets


def _bucket_bounds(task: GroupTask, staged: str) -> list[list[int]]:
    """Per unit, where each of the group's bucket batches begins in the staging file (and
    where the last ends), found from the messages' framing: a unit's range holds one
    message per bucket of the group, in bucket order."""
    bounds, position = [], 0
    with pa.memory_map(staged) as source:
        for unit in task.units:
            end = position + unit.end - unit.start
            source.seek(position)
            starts = [position]
            while source.tell() < end:
                ipc.read_message(source)
                starts.append(source.tell())
            if len(starts) != len(task.buckets) + 1 or starts[-1] != end:
                raise OSError(f"{unit.path}: the spill file's group range is damaged")
            bounds.append(starts)
            position = end
    return bounds


def _copy(source, start: int, length: int, sink: pa.NativeFile) -> None:
    source.seek(start)
    while length > 0:
        data = source.read(min(length, COPY_BYTES))
        sink.write(data)
        length -= len(data)


def _stream_header(schema: pa.Schema) -> bytes:
    """The schema message and an empty batch, as a spill file begins (write_spill)."""
    buffer = pa.BufferOutputStream()
    options = ipc.IpcWriteOptions(compression=SPILL_COMPRESSION)
    with ipc.new_stream(buffer, schema, options=options) as writer:
        writer.write_batch(empty_batch(schema))
    stream = buffer.getvalue().to_pybytes()
    return stream.removesuffix(END_OF_STREAM)


def recorded_groups(work: WorkState) -> list[GroupResult]:
    """The group records of earlier runs whose files are still whole (a group whose file
    is missing or short is forgotten, and runs again)."""
    usable = []
    for name, record in work.records(GROUPS_DIR).items():
        result = GroupResult.from_dict(record)
        if storage.exists(result.path) and storage.size(result.path) >= result.bytes:
            usable.append(result)
        else:
            work.forget(GROUPS_DIR, name)
    return usable


def run_groups(
    engine: Engine, work: WorkState, tasks: list[GroupTask], progress: bool
) -> list[GroupResult]:
    """Write every group of `tasks`, recording each as it arrives (for resume)."""
    results = []
    bar = tqdm(
        total=len(tasks), unit="group", desc="groups", disable=not progress, dynamic_ncols=True
    )
    with bar:
        for result in engine.map_unordered(write_group, tasks):
            work.record(GROUPS_DIR, result.name, result.to_dict())
            results.append(result)
            bar.update(1)
    return results
