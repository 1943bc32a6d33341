"""build(): plan units, run them on an engine, gather shards, write the manifest."""

from __future__ import annotations

import dataclasses
import errno
import functools
import hashlib
import json
import time
from dataclasses import dataclass, field

import pyarrow as pa
from tqdm import tqdm

from mlmprep.core import storage
from mlmprep.core.config import BuildConfig
from mlmprep.core.engines.engine import Engine
from mlmprep.core.errors import ConfigError, MlmprepError, OutputError
from mlmprep.core.files import is_temporary_of, write_json_atomically, write_text_atomically
from mlmprep.core.lease import LeaseCheck
from mlmprep.core.writer_lock import LOCK_SUFFIX, writer_lock
from mlmprep.formats.manifest import (
    INDEX,
    SHARDS_DIR,
    TOKENIZER_FILE,
    UNITS_DIR,
    WorkState,
    identity_of,
    read_index,
)
from mlmprep.formats.schema import SCHEMA_VERSION, output_schema, with_metadata
from mlmprep.input.accounting import InputReport
from mlmprep.input.discovery import (
    InputFile,
    describe_inputs,
    discover_inputs,
)
from mlmprep.pipeline.build_index import build_index, left_out_warnings, summary, tokenizer_warnings
from mlmprep.pipeline.card import CARD, dataset_card, written_by_mlmprep
from mlmprep.pipeline.groups import GroupResult, group_tasks, recorded_groups, run_groups
from mlmprep.pipeline.input_errors import no_documents, no_readable_input
from mlmprep.pipeline.output_dir import discard_failed_start, prepare_output, remove_if_empty
from mlmprep.pipeline.phase_input import PhaseInput, PhaseUnit, unit_from_dict
from mlmprep.pipeline.planning import Unit, expected_tasks, plan_units, worker_count
from mlmprep.pipeline.run_options import RunOptions
from mlmprep.pipeline.scheduling import make_engine, resumable_units, run_units, unit_tasks
from mlmprep.pipeline.shuffle import ShardTask, shard_tasks, write_bucket_shards
from mlmprep.pipeline.sizing import (
    OUTPUT_BYTES_PER_SPILL_BYTE,
    Sizing,
    choose_sizing,
    estimated_spill_bytes,
)
from mlmprep.pipeline.spill import SPILL_DIR, SPILL_FORMAT, spill_schema
from mlmprep.pipeline.unit_result import UnitResult
from mlmprep.pipeline.units import process_unit
from mlmprep.pipeline.workers import start_worker_server
from mlmprep.text.encoders import encoder_for
from mlmprep.text.tokenization import TokenEncoder

LOCK_FILE = LOCK_SUFFIX  # in the output directory: out/.mlmprep-lock


def build(inputs: list[str], output_dir: str, config: BuildConfig, options: RunOptions) -> dict:
    """Build (or resume, or confirm) the output of `config` on `inputs` in `output_dir`.

    Returns the summary that the CLI prints; `summary["already_built"]` is True when
    the output directory already held this exact build.
    """
    started = time.monotonic()
    if not options.in_process and any(p.startswith("memory://") for p in [*inputs, output_dir]):
        raise ConfigError(
            "memory:// lives inside one process; use --workers 1 (local engine) with it"
        )
    if options.forks_local_workers:
        start_worker_server()  # their modules load while this plans
    found = discover_inputs(inputs, output_dir)
    files = describe_inputs(found.files)
    if options.strict:
        for file in files:
            if file.skipped:
                InputReport(strict=True).skip_file(file.path, file.skip_reason)
    encoder = encoder_for(config, options.tokenizer_backend)  # an unusable backend fails here
    left_out = found.outputs_left_out
    existed = storage.exists(output_dir)
    try:
        return run_build(
            BuildJob(
                inputs, output_dir, config, options, files, encoder, started, left_out=left_out
            )
        )
    except MlmprepError:
        if not existed:
            remove_if_empty(output_dir)
        raise


def run_build(job: BuildJob) -> dict:
    """Build, resume, repair or confirm `job` under the output's writer lock."""
    output_dir, options = job.output_dir, job.options
    with writer_lock(storage.join(output_dir, LOCK_FILE), output_dir) as lease:
        job.lease = lease
        state = prepare_output(output_dir, job.identity, options.overwrite, options.verify)
        work = WorkState(output_dir)
        if state.finished and not state.damaged:
            if storage.exists(work.path):  # left by a run killed after it finished
                work.remove()
            return summary(read_index(output_dir), already_built=True)
        if state.damaged:
            _start_repair(job, work, state.damaged)
        try:
            return {**_build(job), "repaired_shards": list(state.damaged)}
        except MlmprepError:
            discard_failed_start(output_dir)
            raise
        except OSError as exc:  # from our own writes: input problems arrive as InputError
            raise _write_error(output_dir, exc, _space_needed(job, work)) from None


@dataclass
class BuildJob:
    """One build as it runs: what it reads, where it writes, how, and its identity."""

    inputs: list[str]
    output_dir: str
    config: BuildConfig
    options: RunOptions
    files: list[InputFile]
    encoder: TokenEncoder
    started: float
    phase: PhaseInput | None = None  # a recipe phase: documents drawn, not text files
    lease: LeaseCheck | None = None  # on object storage: workers check it before commits
    left_out: list[str] = field(default_factory=list)  # mlmprep outputs among the inputs

    @functools.cached_property
    def identity(self) -> dict:
        """What decides the output bytes: a rerun with another identity is refused."""
        config = self.config.to_dict()
        if self.phase is not None:
            config["mixture"] = self.phase.fingerprint
        return identity_of(config, self.encoder, self.files)

    @property
    def raw_bytes(self) -> int:
        """Raw input bytes: of the text files, or of the source text a phase draws."""
        if self.phase is not None:
            return self.phase.raw_bytes
        return sum(f.raw_size for f in self.files if not f.skipped)

    def schema(self) -> pa.Schema:
        """The output schema with the build's facts in its metadata."""
        facts = {
            "schema_version": SCHEMA_VERSION,
            "tokenizer": self.identity["tokenizer"],
            "versions": self.identity["versions"],
            "config": {
                k: v for k, v in self.identity["config"].items() if k != "input_fingerprint"
            },
        }
        return with_metadata(output_schema(self.config), facts)


@dataclass(frozen=True)
class SpaceNeeded:
    """The disk a build needs: its spill files at peak and its shards."""

    spill_bytes: float
    measured: bool  # on the units done so far; else the sizing's upper estimate

    @property
    def output_bytes(self) -> float:
        return self.spill_bytes * OUTPUT_BYTES_PER_SPILL_BYTE


def _space_needed(job: BuildJob, work: WorkState) -> SpaceNeeded:
    """Spill and shard bytes, scaled from the units done so far as `mlmprep plan` scales
    its sample; before any unit is done, the sizing's upper estimate."""
    raw = job.raw_bytes
    done = [UnitResult.from_dict(r) for r in work.records(UNITS_DIR).values()]
    done_raw = sum(r.raw_bytes for r in done)
    if not done_raw:
        return SpaceNeeded(estimated_spill_bytes(raw, job.config), measured=False)
    return SpaceNeeded(sum(r.spill.bytes for r in done) / done_raw * raw, measured=True)


def _write_error(output_dir: str, exc: OSError, space: SpaceNeeded) -> OutputError:
    """One line for an OSError of the build's own files, saying what happened to which."""
    where = f" ({exc.filename})" if exc.filename else ""
    again = "run the same command again to resume"
    if exc.errno == errno.ENOSPC:
        basis = "measured on the units done" if space.measured else "at most; see `mlmprep plan`"
        return OutputError(
            f"{output_dir}: no space left on device{where}; this build needs about "
            f"{space.spill_bytes / 1e6:,.0f} MB of temporary space for spill files and "
            f"{space.output_bytes / 1e6:,.0f} MB for its shards ({basis}; --tmp-dir puts "
            f"the spill files elsewhere); free some space and {again}"
        )
    if exc.errno == errno.ENOENT:
        return OutputError(
            f"{output_dir}: a file of the build disappeared while it ran{where}; was another "
            f"process writing to the same output, or was it deleted? {again.capitalize()}"
        )
    if exc.errno in (errno.EACCES, errno.EPERM, errno.EROFS):
        return OutputError(
            f"{output_dir}: cannot write ({exc.strerror}){where}; fix the permissions of the "
            f"output (or --tmp-dir), then {again}"
        )
    return OutputError(f"{output_dir}: {exc.strerror or exc}{where}; {again}")


def _build(job: BuildJob) -> dict:
    work = WorkState(job.output_dir)
    if not work.exists():
        work.start(_plan(job))
    plan = work.plan()
    units = [unit_from_dict(u) for u in plan["units"]]
    sizing = Sizing.from_dict(plan["sizing"])
    spill_dir = _spill_dir(job, work)
    storage.makedirs(spill_dir)
    groups_before = recorded_groups(work) if sizing.group_buckets else []
    spill_needed = not sizing.group_buckets or len(groups_before) < sizing.group_count
    done_before, redone = resumable_units(work, spill_needed)
    tasks_of_units = expected_tasks(units, sizing.unit_size)
    workers = worker_count(job.options.workers, tasks_of_units, sum(sizing.buckets.values()))
    with make_engine(job.options, workers) as engine:
        tasks = unit_tasks(
            units, job.config, sizing, spill_dir, job.options, done_before, job.lease
        )
        new = run_units(engine, work, tasks, units, done_before, job.options.progress, process_unit)
        units_seconds = time.monotonic() - job.started
        results = sorted([*done_before, *new], key=lambda r: r.order)
        if not any(r.documents_used for r in results):
            work.remove()
            storage.rmtree(spill_dir)
            raise no_documents(job.inputs, results)
        groups_started = time.monotonic()
        groups = _run_groups(job, engine, work, results, sizing, spill_dir, groups_before)
        groups_seconds = time.monotonic() - groups_started
        shard_retries = _run_shards(
            engine, work, _shard_tasks(job, results, sizing, groups), job.options.progress
        )
    unit_retries = sum(r.storage_retries for r in new) + sum(g.storage_retries for g in groups)
    run = {
        "engine": job.options.engine,
        "units_seconds": round(units_seconds, 3),
        "groups_seconds": round(groups_seconds, 3),  # a two-level shuffle's second level
        "total_seconds": round(time.monotonic() - job.started, 3),
        "units_done_before": len(done_before),
        "units_redone": redone,  # recorded, but their spill files were missing or short
        "bytes_processed": sum(r.raw_bytes for r in new),
        "peak_spill_bytes": sum(r.spill.bytes for r in results) + sum(g.bytes for g in groups),
        "workers": workers,
        # S3 requests botocore retried in this run (those that then succeeded)
        "storage_retries": unit_retries + shard_retries + storage.take_retries(),
    }
    index = build_index(
        job.identity,
        results,
        work.records(SHARDS_DIR),
        job.files,
        job.options.tokenizer_backend,
        run,
    )
    index["plan"] = {
        "units": len(units),
        "tasks": len(results),
        "groups": sizing.group_count,
        **sizing.to_dict(),
    }
    index["warnings"] = [
        *left_out_warnings(job.left_out),
        *index["warnings"],
        *tokenizer_warnings(job.config),
    ]
    _finish(job, index)
    storage.rmtree(spill_dir)
    work.remove()
    return summary(index, already_built=False)


def _start_repair(job: BuildJob, work: WorkState, damaged: tuple[str, ...]) -> None:
    """Make a finished build's damaged shards again: the same plan (it depends only on
    the inputs and config), every unit run again (a bucket gathers rows from all of
    them), and the intact shards recorded as done, so only the damaged are written."""
    if not work.exists():
        work.start(_plan(job))
    for shard in read_index(job.output_dir)["shards"]:
        if shard["name"] not in damaged:
            record = {k: v for k, v in shard.items() if k != "split"}
            work.record(SHARDS_DIR, shard["name"], record)


def _run_groups(
    job: BuildJob,
    engine: Engine,
    work: WorkState,
    results: list[UnitResult],
    sizing: Sizing,
    spill_dir: str,
    before: list[GroupResult],
) -> list[GroupResult]:
    """The second level of a two-level shuffle (none with one level): every group not
    written yet; then the units' spill files, which only the groups read, are removed."""
    if not sizing.group_buckets:
        return []
    spilled = spill_schema(job.schema(), job.encoder.vocab_size)
    done = {g.name for g in before}
    tasks = group_tasks(
        results, sizing, spill_dir, spilled, job.options.storage_options, done, job.lease
    )
    groups = [*before, *run_groups(engine, work, tasks, job.options.progress)]
    for result in results:
        if storage.exists(result.spill.path):
            storage.remove(result.spill.path)
    return groups


def _shard_tasks(
    job: BuildJob, results: list[UnitResult], sizing: Sizing, groups: list[GroupResult]
) -> list[ShardTask]:
    schema = job.schema()
    spilled = spill_schema(schema, job.encoder.vocab_size)
    return shard_tasks(
        results,
        sizing.buckets,
        job.config,
        job.output_dir,
        schema,
        spilled,
        job.options.storage_options,
        job.lease,
        groups,
    )


def _finish(job: BuildJob, index: dict) -> None:
    """The tokenizer, the dataset card, then index.json (which marks the build finished);
    then temporary files of workers that died mid-write are removed."""
    output_dir = job.output_dir
    write_text_atomically(storage.join(output_dir, TOKENIZER_FILE), job.encoder.json)
    _write_card(output_dir, index, output_schema(job.config))
    write_json_atomically(storage.join(output_dir, INDEX), index)
    names = [shard["name"] for shard in index["shards"]]
    for name in storage.listdir(output_dir):
        if any(is_temporary_of(name, shard) for shard in names):
            storage.remove(storage.join(output_dir, name))


def _write_card(output_dir: str, index: dict, schema: pa.Schema) -> None:
    """The dataset card, unless the directory holds a README.md of the user's own."""
    path = storage.join(output_dir, CARD)
    if storage.exists(path) and not written_by_mlmprep(output_dir):
        return
    write_text_atomically(path, dataset_card(index, schema))


def _plan(job: BuildJob) -> dict:
    """Sizes and units: from the inputs and config only, never the worker count."""
    sizing = choose_sizing(job.raw_bytes, job.config, job.options.shuffle_groups)
    if job.phase is not None:
        units: list[Unit | PhaseUnit] = [*job.phase.units(sizing.unit_size)]
    else:
        units = [*plan_units(job.files, job.config, sizing.unit_size)]
    if not units:
        raise no_readable_input(job.inputs)
    return {
        "identity": job.identity,
        "spill_format": SPILL_FORMAT,
        "sizing": sizing.to_dict(),
        "units": [u.to_dict() for u in units],
    }


def _run_shards(engine: Engine, work: WorkState, tasks: list[ShardTask], progress: bool) -> int:
    """Write the shards of every bucket not recorded as finished yet (decided from one
    listing of the records' names); return the S3 requests retried meanwhile."""
    finished = work.names(SHARDS_DIR)
    pending = [
        dataclasses.replace(t, done=frozenset(finished.intersection(t.names)))
        for t in tasks
        if not finished.issuperset(t.names)
    ]
    bar = tqdm(
        total=len(tasks),
        initial=len(tasks) - len(pending),
        unit="bucket",
        desc="shards",
        disable=not progress,
        dynamic_ncols=True,
    )
    retries = 0
    with bar:
        for result in engine.map_unordered(write_bucket_shards, pending):
            retries += result.storage_retries
            bar.update(1)
    return retries


def _spill_dir(job: BuildJob, work: WorkState) -> str:
    """Where spill files go: the work directory, or a directory of this build (stable
    across reruns, for resume) under --tmp-dir."""
    if job.options.tmp_dir is None:
        return storage.join(work.path, SPILL_DIR)
    key = json.dumps([job.output_dir, job.identity], sort_keys=True).encode()
    name = f"mlmprep-spill-{hashlib.sha256(key).hexdigest()[:16]}"
    return storage.join(job.options.tmp_dir, name)
