"""How an export cuts a split into files: how many, and which rows each holds.

Rows are cut into contiguous, balanced ranges (sizes n or n+1) in the build's stored
order, which the build has already shuffled. Trainers that read one file at a time
(NVIDIA's HDF5 trainer skips the last file of its shuffled list each epoch) need at
least two files, so the default never gives fewer unless a split has a single row.
"""

from __future__ import annotations

from dataclasses import dataclass

MIN_DEFAULT_FILES = 2  # a default export never leaves a trainer with one file
MAX_DEFAULT_FILES = 8  # beyond the build's shard count, more files only up to this
ROWS_PER_EXTRA_FILE = 64  # ...and only while each keeps a few batches' worth of rows


@dataclass(frozen=True)
class ExportFile:
    """One file an export writes: rows start..stop-1 of a split (or of one length bin)."""

    split: str
    number: int  # 0-based, within the split (and bin)
    count: int  # files of the split (and bin)
    start: int
    stop: int
    length_bin: int | None = None  # the build's bin the rows come from
    bin_number: int | None = None  # its number in the export (bins are renumbered 0..)

    @property
    def rows(self) -> int:
        return self.stop - self.start

    @property
    def key(self) -> str:
        """A name for the file's completion record."""
        where = self.split if self.bin_number is None else f"{self.split}-bin{self.bin_number}"
        return f"{where}-{self.number:05d}-of-{self.count:05d}"


def default_file_count(rows: int, shards: int) -> int:
    """Files for a split when the user gives no --num-files: one per build shard, at least
    two, and up to MAX_DEFAULT_FILES while each keeps ROWS_PER_EXTRA_FILE rows."""
    wanted = max(shards, MIN_DEFAULT_FILES, min(MAX_DEFAULT_FILES, rows // ROWS_PER_EXTRA_FILE))
    return max(1, min(wanted, rows))


def balanced_ranges(rows: int, count: int) -> list[tuple[int, int]]:
    """`count` contiguous ranges covering 0..rows-1, sizes n+1 first, then n."""
    size, extra = divmod(rows, count)
    ranges, start = [], 0
    for number in range(count):
        stop = start + size + (number < extra)
        ranges.append((start, stop))
        start = stop
    return ranges


def split_files(split: str, rows: int, count: int, **bin_fields: int) -> list[ExportFile]:
    """The files of one split (or bin): `count` balanced ranges over its `rows`."""
    return [
        ExportFile(split, number, count, start, stop, **bin_fields)
        for number, (start, stop) in enumerate(balanced_ranges(rows, count))
    ]
