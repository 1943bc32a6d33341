"""The units phase: which unit tasks remain, streamed files cut into parts as the build
runs, and each result recorded as it arrives (for resume)."""

from __future__ import annotations

import dataclasses
from collections.abc import Callable, Iterator
from typing import TypeVar

from tqdm import tqdm

from mlmprep.core import storage
from mlmprep.core.config import BuildConfig
from mlmprep.core.engines.dask import DaskEngine
from mlmprep.core.engines.engine import Engine
from mlmprep.core.engines.local import LocalEngine
from mlmprep.core.engines.ray import RayEngine
from mlmprep.core.lease import LeaseCheck
from mlmprep.formats.manifest import UNITS_DIR, WorkState, worker_environment
from mlmprep.input.compressed_parts import cut_parts
from mlmprep.pipeline.planning import Unit
from mlmprep.pipeline.run_options import RunOptions
from mlmprep.pipeline.sizing import Sizing
from mlmprep.pipeline.unit_result import UnitRecord, UnitResult
from mlmprep.pipeline.units import UnitTask, unit_name, worker_init
from mlmprep.pipeline.workers import WORKER_MODULES

PARTS_DIR = "parts"
Task = TypeVar("Task")
Record = TypeVar("Record", bound=UnitRecord)


def unit_tasks(
    units: list[Unit],
    config: BuildConfig,
    sizing: Sizing,
    spill_dir: str,
    options: RunOptions,
    done_before: list[UnitResult],
    lease: LeaseCheck | None = None,
) -> Iterator[UnitTask]:
    """Tasks for every unit (or part of a streamed file) without a completion record.

    Lazy: a streamed file is decompressed as its parts are asked for, so only the parts
    the engine holds in flight exist on disk at a time.
    """
    done = {result.name for result in done_before}
    for unit in units:
        task = UnitTask(
            unit,
            config,
            spill_dir,
            sizing.buckets,
            sizing.window_size,
            options.strict,
            storage_options=options.storage_options,
            tokenizer_backend=options.tokenizer_backend,
            lease=lease,
            group_buckets=sizing.group_buckets,
        )
        if not unit.streamed:
            if task.name not in done:
                yield task
            continue

        def part_path(part: int, index: int = unit.index) -> str:
            return storage.join(spill_dir, PARTS_DIR, f"{unit_name(index, part)}.part")

        def part_done(part: int, index: int = unit.index) -> bool:
            return unit_name(index, part) in done

        storage.makedirs(storage.join(spill_dir, PARTS_DIR))
        for part in cut_parts(unit.sources[0], sizing.unit_size, part_path, part_done):
            if part.source is not None:
                yield dataclasses.replace(task, part=part.index, part_source=part.source)


def make_engine(options: RunOptions, workers: int) -> Engine:
    """The engine `options` ask for, with `workers` processes."""
    if options.engine == "dask":
        return DaskEngine(workers, options.scheduler, worker_init, worker_environment)
    if options.engine == "ray":
        return RayEngine(workers, options.scheduler, worker_init, worker_environment)
    return LocalEngine(workers, worker_init, WORKER_MODULES)


def resumable_units(
    work: WorkState, spill_needed: bool = True
) -> tuple[list[UnitResult], list[str]]:
    """The unit records of earlier runs whose spill files are still whole, and the names
    of those whose spill file is missing or short (a node-local or wiped --tmp-dir):
    their records are removed, so that those units run again. Once every group of a
    two-level shuffle is written, the units' spill files are gone and not `spill_needed`."""
    usable, redone = [], []
    for name, record in work.records(UNITS_DIR).items():
        result = UnitResult.from_dict(record)
        spill = result.spill.path
        if not spill_needed or (
            storage.exists(spill) and storage.size(spill) >= result.spill.bytes
        ):
            usable.append(result)
        else:
            work.forget(UNITS_DIR, name)
            redone.append(name)
    return usable, redone


def run_units(
    engine: Engine,
    work: WorkState,
    tasks: Iterator[Task],
    units: list[Unit],
    done_before: list[Record],
    progress: bool,
    process: Callable[[Task], Record],
) -> list[Record]:
    """Run `process` on the tasks (UnitTask for a build, TokenizeTask for tokenize),
    record each result as it arrives and delete its part file; return the results of
    this run (`done_before` were processed by earlier runs)."""
    results = []
    total_bytes = sum(unit.raw_bytes for unit in units)
    done_bytes = sum(result.raw_bytes for result in done_before)
    bar = tqdm(
        total=max(total_bytes, done_bytes),
        initial=done_bytes,
        unit="B",
        unit_scale=True,
        desc="units",
        disable=not progress,
        dynamic_ncols=True,
    )
    with bar:
        for result in engine.map_unordered(process, tasks):
            work.record(UNITS_DIR, result.name, result.to_dict())
            if result.part_source:
                storage.remove(result.part_source)
            results.append(result)
            bar.update(result.raw_bytes)
    return results
