"""Cut the described input files into work units.

The units depend only on the sorted input files (paths, sizes, and for a large
uncompressed file the document starts near each cut) and the config; never on the
worker count or the engine.
"""

from __future__ import annotations

import itertools
import math
import re
from dataclasses import asdict, dataclass

from mlmprep.core import storage
from mlmprep.core.config import BuildConfig
from mlmprep.input.discovery import InputFile, Source
from mlmprep.input.readers import detect_format, split_suffixes

SPLITTABLE_FORMATS = ("text", "jsonl", "sentences")
_BLANK_LINES = re.compile(rb"\n(?:[ \t\r]*\n)+")
SCAN_BLOCK = 1 << 20


@dataclass(frozen=True)
class Unit:
    """A group of whole small files, or a range of whole documents of a large file.

    A `streamed` unit is one large compressed file: it cannot be cut by byte range, so
    while the build runs it is decompressed once and cut into parts of about the unit
    size at document boundaries; each part is processed like a unit of its own.
    """

    index: int
    sources: tuple[Source, ...]
    raw_bytes: int
    streamed: bool = False

    def describe(self) -> str:
        return ", ".join(s.path for s in self.sources)

    def to_dict(self) -> dict:
        return asdict(self)

    @classmethod
    def from_dict(cls, data: dict) -> Unit:
        sources = tuple(Source(**s) for s in data["sources"])
        return cls(data["index"], sources, data["raw_bytes"], data.get("streamed", False))


def plan_units(files: list[InputFile], config: BuildConfig, unit_size: int) -> list[Unit]:
    """Cut the inputs into units of about `unit_size` raw bytes: small files are grouped,
    large uncompressed ones cut at document boundaries, large compressed ones streamed."""
    units: list[Unit] = []
    group: list[Source] = []
    group_bytes = 0

    def close_group() -> None:
        nonlocal group, group_bytes
        if group:
            units.append(Unit(len(units), tuple(group), group_bytes))
            group, group_bytes = [], 0

    for file in files:
        if file.skipped:
            continue
        fmt = detect_format(file.path, config.input_format)
        _, compression = split_suffixes(file.path)
        large = file.raw_size > unit_size and fmt in SPLITTABLE_FORMATS
        if large and compression is None:
            close_group()
            bounds = _range_bounds(file.path, file.size, fmt, unit_size)
            for start, end in itertools.pairwise(bounds):
                units.append(Unit(len(units), (Source(file.path, fmt, start, end),), end - start))
            continue
        if large:
            close_group()
            units.append(Unit(len(units), (Source(file.path, fmt),), file.raw_size, streamed=True))
            continue
        group.append(Source(file.path, fmt))
        group_bytes += file.raw_size
        if group_bytes >= unit_size:
            close_group()
    close_group()
    return units


def expected_tasks(units: list[Unit], unit_size: int) -> int:
    """Tasks the units make: a streamed unit makes about raw_bytes / unit_size parts."""
    return sum(math.ceil(u.raw_bytes / unit_size) if u.streamed else 1 for u in units)


def worker_count(requested: int, unit_tasks: int, later_tasks: int = 0) -> int:
    """Never more processes than there are tasks for (idle workers cost start-up time):
    the units' tasks (`expected_tasks`), or the tasks of a later phase (buckets)."""
    return max(1, min(requested, max(unit_tasks, later_tasks)))


def _range_bounds(path: str, size: int, fmt: str, unit_size: int) -> list[int]:
    """Document starts near every multiple of unit_size, plus 0 and the file size."""
    bounds = [0]
    with storage.open_file(path, "rb") as handle:
        for k in range(1, math.ceil(size / unit_size)):
            start = max(k * unit_size, bounds[-1] + 1)
            if start >= size:
                break
            boundary = _next_document_start(handle, start, fmt, size)
            if boundary < size and boundary > bounds[-1]:
                bounds.append(boundary)
    bounds.append(size)
    return bounds


def _next_document_start(handle, offset: int, fmt: str, size: int) -> int:
    """First document start at or after `offset`, found by scanning in blocks."""
    pattern = re.compile(rb"\n") if fmt == "jsonl" else _BLANK_LINES
    handle.seek(offset - 1)
    carried = b""
    base = offset - 1
    while True:
        block = handle.read(SCAN_BLOCK)
        if not block:
            return size
        buffer = carried + block
        match = pattern.search(buffer)
        if match and match.end() < len(buffer):
            return base + match.end()
        cut = buffer.rfind(b"\n")
        cut = 0 if cut < 0 else cut
        base += cut
        carried = buffer[cut:]
