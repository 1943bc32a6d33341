"""Measure what a build makes per raw byte of input: about SAMPLE_BYTES of the inputs,
each input format's share in proportion to its raw bytes (at most SAMPLE_FILES files in
all, spread over each format's list; pieces cut at document boundaries, spread over a
file of up to SPREAD_LIMIT bytes, else its start), is run through the build's own unit
processing, with the chosen config, tokenizer and backend, into a temporary directory;
each format's rates are weighted by its share of the input."""

from __future__ import annotations

import contextlib
import dataclasses
import os
import resource
import tempfile
import time
from dataclasses import asdict, dataclass
from pathlib import Path

import pyarrow as pa
import pyarrow.parquet as pq

from mlmprep.core import storage
from mlmprep.core.config import BuildConfig
from mlmprep.formats.schema import output_schema
from mlmprep.input.compressed_parts import cut_parts
from mlmprep.input.discovery import InputFile, Source
from mlmprep.input.readers import detect_format
from mlmprep.pipeline.phase_input import PhaseUnit
from mlmprep.pipeline.planning import Unit
from mlmprep.pipeline.sizing import Sizing
from mlmprep.pipeline.spill import spill_overhead, spill_schema
from mlmprep.pipeline.units import UnitTask, process_unit
from mlmprep.text.encoders import encoder_for

SAMPLE_BYTES = 4 << 20  # of raw text in all
SAMPLE_FILES = 256  # files sampled at most, spread over each format's sorted list
MIN_FILE_SAMPLE = 64 << 10
SPREAD_PIECES = 4  # pieces of a file's sample, spread over it...
SPREAD_LIMIT = 64 << 20  # ...when it has at most this many raw bytes (read through)


@dataclass(frozen=True)
class SampleRates:
    """What the sample made, per raw byte of input (rows by split); `spill_bytes` counts
    rows only, without the per-bucket overhead of each spill file (`spill_overhead`)."""

    sampled_bytes: int
    rows: dict[str, float]
    tokens: float  # of text, before pairing
    spill_bytes: float
    seconds: float  # one process, from reading to the spill file written
    process_rss: int  # of this process, imports and tokenizer loaded, before the sample
    empty_spill_file: int  # bytes of a spill file without rows
    bucket_batch: int  # bytes each bucket adds to every spill file, rows aside

    def spill_file_overhead(self, buckets: int) -> int:
        return self.empty_spill_file + buckets * self.bucket_batch

    def to_dict(self) -> dict:
        return asdict(self)


def mixed_rates(parts: list[tuple[SampleRates, float]]) -> SampleRates:
    """The rates of an input made of parts with these rates, in these shares (weights,
    normalized here): per-byte figures are the weighted mean; the process's memory is
    the smallest measured, the one before any part was processed."""
    total = sum(weight for _, weight in parts) or 1.0

    def mean(rate_of) -> float:
        return sum(rate_of(rates) * weight for rates, weight in parts) / total

    splits = sorted({split for rates, _ in parts for split in rates.rows})
    return dataclasses.replace(
        parts[0][0],
        sampled_bytes=sum(rates.sampled_bytes for rates, _ in parts),
        rows={split: mean(lambda r, s=split: r.rows.get(s, 0.0)) for split in splits},
        tokens=mean(lambda r: r.tokens),
        spill_bytes=mean(lambda r: r.spill_bytes),
        seconds=mean(lambda r: r.seconds),
        process_rss=min(rates.process_rss for rates, _ in parts),
    )


@dataclass(frozen=True)
class SampleGroup:
    """The sample of the inputs of one format: its files (in the scratch directory), their
    bytes, and the raw bytes of the inputs it stands for."""

    fmt: str
    sources: list[Source]
    sampled_bytes: int
    input_bytes: int


def measure_sample(
    files: list[InputFile],
    config: BuildConfig,
    sizing: Sizing,
    backend: str,
    storage_options: dict,
) -> SampleRates:
    """Build the sample of each input format of `files` as one unit and return the rates
    per raw byte, each format's weighted by its raw bytes; URLs are read with
    `storage_options`."""
    with tempfile.TemporaryDirectory(prefix="mlmprep-plan-") as scratch:
        parts = []
        for n, group in enumerate(sample_groups(files, config, scratch)):
            unit = Unit(0, tuple(group.sources), group.sampled_bytes)
            spill_dir = os.path.join(scratch, f"spill-{n}")
            os.makedirs(spill_dir)
            rates = measure_unit(unit, config, sizing, backend, storage_options, spill_dir)
            parts.append((rates, group.input_bytes))
        return mixed_rates(parts)


def measure_unit(
    unit: Unit | PhaseUnit,
    config: BuildConfig,
    sizing: Sizing,
    backend: str,
    storage_options: dict,
    scratch: str,
) -> SampleRates:
    """Process `unit` (its spill file into `scratch`) as a build's worker does and return
    what it made per raw byte of its input (`unit.raw_bytes`)."""
    buckets = {split: min(n, 1) for split, n in sizing.buckets.items()}
    task = UnitTask(
        unit,
        config,
        scratch,
        buckets,
        sizing.window_size,
        tokenizer_backend=backend,
        storage_options=storage_options,
    )
    encoder = encoder_for(config, backend)  # loaded before the clock starts, as in a build
    process_rss = current_rss()
    started = time.monotonic()
    result = process_unit(task)
    seconds = time.monotonic() - started
    schema = spill_schema(output_schema(config), encoder.vocab_size)
    empty_file = spill_overhead(schema, 0)
    bucket_batch = spill_overhead(schema, 1) - empty_file
    rows_spill = result.spill.bytes - empty_file - sum(buckets.values()) * bucket_batch
    per_byte = 1 / max(unit.raw_bytes, 1)
    return SampleRates(
        sampled_bytes=unit.raw_bytes,
        rows={split: sum(rows) * per_byte for split, rows in result.rows.items()},
        tokens=sum(c.tokens for c in result.counts.values()) * per_byte,
        spill_bytes=max(rows_spill, 0) * per_byte,
        process_rss=process_rss,
        empty_spill_file=empty_file,
        bucket_batch=bucket_batch,
        seconds=seconds * per_byte,
    )


def sample_groups(files: list[InputFile], config: BuildConfig, scratch: str) -> list[SampleGroup]:
    """The sample of `files`, written into `scratch`, by input format: about SAMPLE_BYTES
    in all, each format's share in proportion to its raw bytes (at least MIN_FILE_SAMPLE),
    whole documents, decompressed. A format's files are taken in an order spread over its
    sorted list, each given an even share of what is still to take, so that many small
    files fill the budget as well as a few large ones. Sample files' sizes are raw bytes
    of the same kind as the inputs' `raw_size` (a Parquet sample is a Parquet file)."""
    by_format: dict[str, list[InputFile]] = {}
    for file in files:
        if not file.skipped:
            by_format.setdefault(detect_format(file.path, config.input_format), []).append(file)
    total = sum(f.raw_size for group in by_format.values() for f in group) or 1
    groups, named = [], 0
    for fmt, members in sorted(by_format.items()):
        raw = sum(f.raw_size for f in members)
        budget = max(MIN_FILE_SAMPLE, round(SAMPLE_BYTES * raw / total))
        order = spread_order(len(members), max(1, round(SAMPLE_FILES * raw / total)))
        sources: list[Source] = []
        taken = 0
        for done, index in enumerate(order):
            if taken >= budget:
                break
            share = max(MIN_FILE_SAMPLE, (budget - taken) // (len(order) - done))
            sample = _sample_file(members[index], config, share, Path(scratch), named)
            named += 1
            taken += sum(storage.size(s.path) for s in sample)
            sources += sample
        groups.append(SampleGroup(fmt, sources, taken, raw))
    return groups


def sample_sources(files: list[InputFile], config: BuildConfig, scratch: str) -> list[Source]:
    """The sample files of every format of `files` (`sample_groups`), in one list."""
    return [s for group in sample_groups(files, config, scratch) for s in group.sources]


def spread_order(n: int, k: int) -> list[int]:
    """k of the indices 0..n-1, evenly spaced, in an order whose every prefix is spread
    over the whole range (van der Corput): taking the first few still samples the start,
    middle and end of a list."""
    k = min(n, k)
    evenly = [int((i + 0.5) * n / k) for i in range(k)]
    return [evenly[i] for i in sorted(range(k), key=_radical_inverse)]


def _radical_inverse(i: int) -> float:
    """i's binary digits mirrored after the point: 1 -> 0.5, 2 -> 0.25, 3 -> 0.75."""
    value, scale = 0.0, 0.5
    while i:
        value += (i & 1) * scale
        i >>= 1
        scale /= 2
    return value


def current_rss() -> int:
    """This process's resident memory now (Linux), or its peak so far elsewhere."""
    try:
        with open("/proc/self/statm") as statm:
            return int(statm.read().split()[1]) * os.sysconf("SC_PAGE_SIZE")
    except OSError:
        return resource.getrusage(resource.RUSAGE_SELF).ru_maxrss * 1024


def _sample_file(
    file: InputFile, config: BuildConfig, budget: int, scratch: Path, n: int
) -> list[Source]:
    """About `budget` bytes of `file`'s text as files of their own in `scratch`, whole
    documents, decompressed: SPREAD_PIECES pieces spread over a file of at most
    SPREAD_LIMIT raw bytes (its documents may change along it), else its start."""
    fmt = detect_format(file.path, config.input_format)
    if fmt == "parquet":
        return [_parquet_sample(file.path, config.text_field, budget, scratch / f"{n}.parquet")]
    pieces = SPREAD_PIECES if budget < file.raw_size <= SPREAD_LIMIT else 1
    size = budget // pieces
    last = max(0, file.raw_size // size - 1)  # the file's last part, about
    wanted = {round(i * last / max(pieces - 1, 1)) for i in range(pieces)}
    parts = cut_parts(
        Source(file.path, fmt), size, lambda i: str(scratch / f"{n}-{i}"), lambda i: i not in wanted
    )
    sources = []
    with contextlib.closing(parts):  # the parts after the last wanted are never read
        for part in parts:
            if part.source is not None:
                sources.append(Source(part.source.path, fmt))
            if part.index >= max(wanted):
                break
    return sources


def _parquet_sample(path: str, text_field: str, budget: int, sample: Path) -> Source:
    """The first rows of a Parquet file, about `budget` bytes of text."""
    batches, taken = [], 0
    for batch in storage.parquet_file(path).iter_batches(batch_size=256, columns=[text_field]):
        batches.append(batch)
        taken += batch.column(0).nbytes
        if taken >= budget:
            break
    table = (
        pa.Table.from_batches(batches)
        if batches
        else pa.table({text_field: pa.array([], pa.string())})
    )
    pq.write_table(table, sample)
    return Source(str(sample), "parquet")
