"""`mlmprep plan`: what a build would make and need, measured on a sample of its inputs
(`plan/sample.py`) and scaled to the whole input, then sized like the build sizes it."""

from __future__ import annotations

import math
from dataclasses import asdict, dataclass

from mlmprep.core.config import BuildConfig
from mlmprep.input.discovery import describe_inputs, resolve_inputs
from mlmprep.pipeline.plan.resources import (
    BuildLoad,
    ResourceEstimate,
    cores_for,
    estimate_resources,
)
from mlmprep.pipeline.plan.sample import SampleRates, measure_sample
from mlmprep.pipeline.planning import Unit, expected_tasks, plan_units, worker_count
from mlmprep.pipeline.run_options import RunOptions
from mlmprep.pipeline.sizing import OUTPUT_BYTES_PER_SPILL_BYTE, Sizing, choose_sizing

RECORD_FILES = 1  # plan.json
WORK_DIR_SLACK = 64  # temporary names and parts in flight


@dataclass(frozen=True)
class PlanEstimate:
    """The plan of a build and its estimated output and costs."""

    files: int
    raw_bytes: int
    sample: SampleRates
    sizing: Sizing
    units: int
    tasks: int
    workers: int
    shards: dict[str, int]
    rows: int
    tokens: int
    spill_bytes: int
    output_bytes: int
    resources: ResourceEstimate
    cores_for_target: int | None  # with --target-minutes: workers needed (None: none do)
    work_dir_files: int
    object_store_writes: int
    object_store_reads: int
    slice_bytes: int

    def to_dict(self) -> dict:
        return asdict(self)


@dataclass(frozen=True)
class PlanScope:
    """What a plan covers: the input's files and raw bytes, and the units it makes."""

    files: int  # 0: a corpus assumed like the inputs (--input-bytes), or a recipe phase
    raw_bytes: int
    units: int
    tasks: int
    largest_task_bytes: int


def estimate_plan(
    inputs: list[str],
    output_dir: str,
    config: BuildConfig,
    options: RunOptions,
    input_bytes: int | None = None,
    target_minutes: float | None = None,
) -> PlanEstimate:
    """The plan of `inputs`, or of a corpus like them of `input_bytes` raw bytes in many
    files: measured on a sample of `inputs`, scaled, sized as the build sizes it."""
    files = describe_inputs(resolve_inputs(inputs, output_dir))
    raw = sum(f.raw_size for f in files if not f.skipped)
    sizing = choose_sizing(input_bytes or raw, config, options.shuffle_groups)
    sample = measure_sample(
        files, config, sizing, options.tokenizer_backend, options.storage_options
    )
    if input_bytes is None:
        units = plan_units(files, config, sizing.unit_size)
        largest = max((_task_bytes(u, sizing) for u in units), default=0)
        scope = PlanScope(
            len(files), raw, len(units), expected_tasks(units, sizing.unit_size), largest
        )
    else:
        tasks = max(1, math.ceil(input_bytes / sizing.unit_size))
        scope = PlanScope(0, input_bytes, tasks, tasks, sizing.unit_size)
    return scale_plan(scope, sizing, sample, config, options, target_minutes)


def scale_plan(
    scope: PlanScope,
    sizing: Sizing,
    sample: SampleRates,
    config: BuildConfig,
    options: RunOptions,
    target_minutes: float | None = None,
) -> PlanEstimate:
    """The plan of `scope`, its sample's rates per raw byte scaled to its raw bytes."""
    raw, tasks = scope.raw_bytes, scope.tasks
    split_rows = {split: rate * raw for split, rate in sample.rows.items()}
    bucket_rows = {s: split_rows[s] / n for s, n in sizing.buckets.items() if n and s in split_rows}
    shards = {
        split: sizing.buckets[split] * max(1, math.ceil(rows / config.shard_size))
        for split, rows in bucket_rows.items()
    }
    buckets, groups = sum(sizing.buckets.values()), sizing.group_count
    spill = sample.spill_bytes * raw + tasks * sample.spill_file_overhead(buckets)
    n_shards = sum(shards.values())
    load = BuildLoad(
        workers=worker_count(options.workers, tasks, buckets),
        pool=options.workers > 1 and options.engine == "local",
        tasks=tasks,
        largest_task_bytes=scope.largest_task_bytes,
        window_bytes=min(sizing.window_size, scope.largest_task_bytes),
        raw_bytes=raw,
        rows=round(sum(split_rows.values())),
        buckets=buckets,
        largest_bucket_rows=math.ceil(max(bucket_rows.values(), default=0)),
        groups=groups,
        spill_bytes=spill,
        shards=n_shards,
        tokens_per_byte=sample.tokens,
        spill_per_byte=sample.spill_bytes,  # rows: what is read back into memory
        seconds_per_byte=sample.seconds,
        process_rss=sample.process_rss,
    )
    # a unit's file is read once per bucket, or once per group and the groups' once per bucket
    reads = tasks * groups + buckets if groups else tasks * buckets
    return PlanEstimate(
        files=scope.files,
        raw_bytes=raw,
        sample=sample,
        sizing=sizing,
        units=scope.units,
        tasks=tasks,
        workers=load.workers,
        shards=shards,
        rows=load.rows,
        tokens=round(sample.tokens * raw),
        spill_bytes=int(spill * (2 if groups else 1)),  # groups copy the units' files
        output_bytes=int(spill * OUTPUT_BYTES_PER_SPILL_BYTE),
        resources=estimate_resources(load),
        cores_for_target=cores_for(load, target_minutes) if target_minutes else None,
        work_dir_files=2 * (tasks + groups) + n_shards + RECORD_FILES + WORK_DIR_SLACK,
        # spill and group files and their records, shards and their records, index, tokenizer
        object_store_writes=2 * (tasks + groups) + 2 * n_shards + 2,
        object_store_reads=reads,
        slice_bytes=int(spill // max(1, tasks * (groups or buckets))),
    )


def _task_bytes(unit: Unit, sizing: Sizing) -> int:
    """Raw bytes of a unit's largest task (a streamed file's part is about a unit)."""
    return min(unit.raw_bytes, sizing.unit_size) if unit.streamed else unit.raw_bytes
