"""Peak memory and wall time of a build, from the measured sample rates and the sizing.

The memory model was fitted on Linux (Python 3.11, local engine) to builds of 0.3 to
90 MB at dupe 1 and 5 with one and two workers (`benchmarks/plan_accuracy.py` measures it
again). A worker's peak is a base, plus, while it processes units, the tokens of one
window (the tokenizer's encodings) and the window's spill rows, plus, while it shuffles,
its bucket read into memory (about 3 bytes per spill byte). One worker runs in the
building process itself; more run as processes forked from a server, beside it.

Every process's base moves with what importing mlmprep and loading the tokenizer cost
on this machine: the planning process measures that (`process_rss`) and the difference
from the fit's REFERENCE_PROCESS_RSS is added to each process (35 MB more was seen on a
fresh CI machine than where the model was fitted).
"""

from __future__ import annotations

import math
from dataclasses import asdict, dataclass, replace

MB = 1 << 20
REFERENCE_PROCESS_RSS = 96 * MB  # the planning process, imports and tokenizer loaded
MAIN_PROCESS = 100 * MB  # the building process with more than one worker
SERIAL_BASE = 210 * MB  # the building process when it runs the work itself
POOL_PROCESSES = 91 * MB  # the fork server and the resource tracker
UNIT_WORKER_BASE = 175 * MB  # a worker that processes units
SHUFFLE_WORKER_BASE = 125 * MB  # a worker that only shuffles buckets
BYTES_PER_WINDOW_TOKEN = 32
BUCKET_BYTES_PER_SPILL_BYTE = 3.0
SHUFFLE_ROWS_PER_SECOND = 150_000  # per worker: read the slices, shuffle, write Parquet
GROUP_BYTES_PER_SECOND = 150e6  # per worker: a group's spill read, staged and written again
EXPORT_ROWS_PER_SECOND = 66_000  # per worker, MDS (the slowest format; export_bench.py)
STARTUP_SECONDS = 0.5  # interpreter, imports, reading the inputs' sizes, the pool


@dataclass(frozen=True)
class BuildLoad:
    """What one build asks of its machine, from the sample rates scaled up."""

    workers: int  # processes that do the work (never more than there is work for)
    pool: bool  # workers run beside the building process (more than one asked for)
    tasks: int
    largest_task_bytes: int
    window_bytes: int  # of the largest window
    raw_bytes: int
    rows: int
    buckets: int
    largest_bucket_rows: int
    groups: int  # of a two-level shuffle; 0: one level
    spill_bytes: float  # of every unit's spill file: what the groups copy
    shards: int
    tokens_per_byte: float
    spill_per_byte: float
    seconds_per_byte: float  # of unit processing, one process
    process_rss: int  # of the planning process before its sample: the machine's base


@dataclass(frozen=True)
class PhaseTime:
    """One phase of a build (or the export after it): its tasks, the time of its largest
    task, and its wall time on the workers."""

    name: str
    tasks: int
    largest_task_seconds: float
    seconds: float


@dataclass(frozen=True)
class ResourceEstimate:
    """Peak RSS (the building process, each worker, all processes), the build's wall
    time, and its phases' times (the export's last: it is a command of its own)."""

    main_rss: int
    worker_rss: int
    total_rss: int
    seconds: float
    phases: list[PhaseTime]

    def to_dict(self) -> dict:
        return asdict(self)


def estimate_resources(load: BuildLoad) -> ResourceEstimate:
    """Peak memory and wall time of `load` (see the module docstring)."""
    window_tokens = load.window_bytes * load.tokens_per_byte
    window_spill = load.window_bytes * load.spill_per_byte
    unit_work = BYTES_PER_WINDOW_TOKEN * window_tokens + window_spill
    bucket_spill = (
        load.spill_per_byte * load.raw_bytes * load.largest_bucket_rows / max(load.rows, 1)
    )
    shuffle_work = BUCKET_BYTES_PER_SPILL_BYTE * bucket_spill
    offset = load.process_rss - REFERENCE_PROCESS_RSS  # per process, this machine's base
    pool = POOL_PROCESSES + offset if load.pool else 0
    phases = phase_times(load)
    seconds = round(_seconds(load), 1)
    if load.workers == 1:
        main = int(SERIAL_BASE + offset + unit_work + shuffle_work)
        return ResourceEstimate(main, main, main + pool, seconds, phases)
    # the first workers both process units and shuffle; the rest do one of the two
    unit_workers, shufflers = min(load.workers, load.tasks), min(load.workers, load.buckets)
    both = min(unit_workers, shufflers)
    worker = UNIT_WORKER_BASE + offset + unit_work + shuffle_work
    main = MAIN_PROCESS + offset
    total = (
        main
        + pool
        + both * worker
        + (unit_workers - both) * (UNIT_WORKER_BASE + offset + unit_work)
        + (shufflers - both) * (SHUFFLE_WORKER_BASE + offset + shuffle_work)
    )
    return ResourceEstimate(main, int(worker), int(total), seconds, phases)


def phase_times(load: BuildLoad) -> list[PhaseTime]:
    """Units, the groups of a two-level shuffle, shards (one task per bucket), and the
    export (one task per shard): each phase's tasks run in rounds on the workers."""
    unit_seconds = load.raw_bytes * load.seconds_per_byte
    phases = [
        _phase(
            "units",
            load.tasks,
            unit_seconds,
            load.largest_task_bytes * load.seconds_per_byte,
            load.workers,
        ),
    ]
    if load.groups:
        group_seconds = load.spill_bytes / GROUP_BYTES_PER_SECOND
        phases.append(
            _phase("groups", load.groups, group_seconds, group_seconds / load.groups, load.workers)
        )
    shuffle_seconds = load.rows / SHUFFLE_ROWS_PER_SECOND
    largest_bucket = load.largest_bucket_rows / SHUFFLE_ROWS_PER_SECOND
    phases.append(_phase("shards", load.buckets, shuffle_seconds, largest_bucket, load.workers))
    export_seconds = load.rows / EXPORT_ROWS_PER_SECOND
    shards = max(1, load.shards)
    phases.append(_phase("export", shards, export_seconds, export_seconds / shards, load.workers))
    return phases


def _phase(name: str, tasks: int, seconds: float, largest: float, workers: int) -> PhaseTime:
    """`tasks` taking `seconds` in all on `workers`: whole rounds of the mean task, and
    never less than the largest."""
    tasks = max(1, tasks)
    rounds = math.ceil(tasks / max(1, min(workers, tasks)))
    return PhaseTime(name, tasks, largest, max(largest, rounds * seconds / tasks))


def _seconds(load: BuildLoad) -> float:
    """The build's phases one after the other (the export is a command of its own)."""
    return STARTUP_SECONDS + sum(p.seconds for p in phase_times(load) if p.name != "export")


def cores_for(load: BuildLoad, minutes: float) -> int | None:
    """The fewest workers that finish `load` within `minutes`, or None if no number does
    (the largest unit or bucket alone takes longer)."""

    def fits(workers: int) -> bool:
        return _seconds(replace(load, workers=workers, pool=workers > 1)) <= minutes * 60

    low, high = 1, max(load.tasks, load.buckets, load.groups)  # time falls as workers grow
    if not fits(high):
        return None
    while low < high:
        middle = (low + high) // 2
        low, high = (low, middle) if fits(middle) else (middle + 1, high)
    return low
