"""Measure what a build makes per raw byte of input: a share of SAMPLE_BYTES of every
input file (at most SAMPLE_FILES files spread over the list; pieces cut at document
boundaries, spread over a file of up to SPREAD_LIMIT bytes, else its start) is run
through the build's own unit processing, with the chosen config, tokenizer and backend,
into a temporary directory."""

from __future__ import annotations

import contextlib
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
SAMPLE_FILES = 64  # files sampled at most, spread over the sorted list
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


def measure_sample(
    files: list[InputFile],
    config: BuildConfig,
    sizing: Sizing,
    backend: str,
    storage_options: dict,
) -> SampleRates:
    """Build the sample of `files` as one unit and return its rates per raw byte; URLs
    are read with `storage_options`."""
    with tempfile.TemporaryDirectory(prefix="mlmprep-plan-") as scratch:
        sources = sample_sources(files, config, scratch)
        sampled = sum(storage.size(s.path) for s in sources)
        unit = Unit(0, tuple(sources), sampled)
        return measure_unit(unit, config, sizing, backend, storage_options, scratch)


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


def sample_sources(files: list[InputFile], config: BuildConfig, scratch: str) -> list[Source]:
    """The sample of `files`, written into `scratch`: the start of each of at most
    SAMPLE_FILES files spread over the list, whole documents, decompressed, about
    SAMPLE_BYTES in all. Its files' sizes are raw bytes of the same kind as the inputs'
    `raw_size` (a Parquet sample is a Parquet file), so rates scale by their ratio."""
    readable = [f for f in files if not f.skipped]
    step = max(1, len(readable) / SAMPLE_FILES)
    chosen = [readable[int(i * step)] for i in range(min(len(readable), SAMPLE_FILES))]
    budget = max(MIN_FILE_SAMPLE, SAMPLE_BYTES // max(len(chosen), 1))
    return [
        source
        for n, file in enumerate(chosen)
        for source in _sample_file(file, config, budget, Path(scratch), n)
    ]


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
