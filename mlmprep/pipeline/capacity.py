"""`mlmprep plan`: what a build would make and need, computed without building."""

from __future__ import annotations

import math
from dataclasses import asdict, dataclass

from mlmprep.core.config import BuildConfig
from mlmprep.input.discovery import describe_inputs, resolve_inputs
from mlmprep.pipeline.planning import expected_tasks, plan_units
from mlmprep.pipeline.sizing import (
    Sizing,
    choose_sizing,
    estimated_instances,
    estimated_spill_bytes,
    split_shares,
)

RECORD_FILES = 1  # plan.json
WORK_DIR_SLACK = 64  # temporary names and parts in flight


@dataclass(frozen=True)
class PlanEstimate:
    """The plan of a build and its estimated output and costs."""

    files: int
    raw_bytes: int
    sizing: Sizing
    units: int
    tasks: int
    shards: dict[str, int]
    rows: int
    tokens: int
    spill_bytes: int
    work_dir_files: int
    object_store_writes: int
    object_store_reads: int
    slice_bytes: int

    def to_dict(self) -> dict:
        return asdict(self)


def estimate_plan(
    inputs: list[str], output_dir: str, config: BuildConfig, input_bytes: int | None = None
) -> PlanEstimate:
    """The plan of `inputs`, or of a corpus of `input_bytes` raw bytes in many files.

    Rows and tokens are upper estimates (about 3 bytes of text per token)."""
    if input_bytes is None:
        files = describe_inputs(resolve_inputs(inputs, output_dir))
        raw = sum(f.raw_size for f in files if not f.skipped)
        sizing = choose_sizing(raw, config)
        units = plan_units(files, config, sizing.unit_size)
        n_files, n_units = len(files), len(units)
        tasks = expected_tasks(units, sizing.unit_size)
    else:
        raw = input_bytes
        sizing = choose_sizing(raw, config)
        n_files = 0
        n_units = tasks = max(1, math.ceil(raw / sizing.unit_size))
    shares = split_shares(config)
    shards = {}
    for split, buckets in sizing.buckets.items():
        if buckets:
            rows_per_bucket = estimated_instances(raw * shares[split], config) / buckets
            shards[split] = buckets * max(1, math.ceil(rows_per_bucket / config.shard_size))
    rows = int(estimated_instances(raw, config))
    spill = int(estimated_spill_bytes(raw, config))
    buckets = sum(sizing.buckets.values())
    n_shards = sum(shards.values())
    return PlanEstimate(
        files=n_files,
        raw_bytes=raw,
        sizing=sizing,
        units=n_units,
        tasks=tasks,
        shards=shards,
        rows=rows,
        tokens=int(rows * config.max_seq_length * 0.9),
        spill_bytes=spill,
        work_dir_files=2 * tasks + n_shards + RECORD_FILES + WORK_DIR_SLACK,
        # spill files and unit records, shards and their records, index and tokenizer
        object_store_writes=2 * tasks + 2 * n_shards + 2,
        object_store_reads=tasks * buckets,
        slice_bytes=spill // max(1, tasks * buckets),
    )
