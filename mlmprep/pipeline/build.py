"""build(): plan units, run them on an engine, gather shards, write the manifest."""

from __future__ import annotations

import errno
import hashlib
import json
import os
import time
from dataclasses import dataclass, field

import pyarrow as pa
from tqdm import tqdm

from mlmprep.core import storage
from mlmprep.core.config import BuildConfig
from mlmprep.core.errors import ConfigError, InputError, OutputError
from mlmprep.input.accounting import InputReport
from mlmprep.pipeline.build_index import build_index, summary
from mlmprep.pipeline.card import CARD, dataset_card, written_by_mlmprep
from mlmprep.pipeline.engines.dask import DaskEngine
from mlmprep.pipeline.engines.local import LocalEngine
from mlmprep.pipeline.manifest import (
    INDEX,
    SHARDS_DIR,
    TOKENIZER_FILE,
    UNITS_DIR,
    WorkState,
    differences,
    read_index,
    remove_build,
    versions,
    write_json_atomically,
    write_text_atomically,
)
from mlmprep.pipeline.planning import (
    BINARY_REASON,
    Unit,
    describe_inputs,
    expected_tasks,
    fingerprint,
    plan_units,
    resolve_inputs,
)
from mlmprep.pipeline.scheduling import run_units, unit_tasks
from mlmprep.pipeline.schema import SCHEMA_VERSION, output_schema, with_metadata
from mlmprep.pipeline.shuffle import ShardTask, shard_tasks, write_bucket_shards
from mlmprep.pipeline.sizing import Sizing, choose_sizing, estimated_spill_bytes
from mlmprep.pipeline.spill import SPILL_DIR, SPILL_FORMAT, spill_schema
from mlmprep.pipeline.units import encoder_for, worker_init
from mlmprep.pipeline.workers import WORKER_MODULES, start_worker_server


@dataclass(frozen=True)
class RunOptions:
    """How to run a build; nothing here changes the output bytes."""

    workers: int = 1
    engine: str = "local"
    scheduler: str | None = None
    strict: bool = False
    overwrite: bool = False
    progress: bool = False
    tmp_dir: str | None = None
    storage_options: dict = field(default_factory=dict)
    tokenizer_backend: str = "auto"


def build(inputs: list[str], output_dir: str, config: BuildConfig, options: RunOptions) -> dict:
    """Build (or resume, or confirm) the output of `config` on `inputs` in `output_dir`.

    Returns the summary that the CLI prints; `summary["already_built"]` is True when
    the output directory already held this exact build.
    """
    started = time.monotonic()
    in_process = options.engine == "local" and options.workers == 1
    if not in_process and any(p.startswith("memory://") for p in [*inputs, output_dir]):
        raise ConfigError(
            "memory:// lives inside one process; use --workers 1 (local engine) with it"
        )
    if not in_process and options.engine == "local":
        start_worker_server()  # their modules load while this plans
    files = describe_inputs(resolve_inputs(inputs, output_dir))
    if options.strict:
        for file in files:
            if file.binary:
                InputReport(strict=True).skip_file(file.path, BINARY_REASON)
    encoder = encoder_for(config, options.tokenizer_backend)  # an unusable backend fails here
    identity = {
        "config": {
            **config.to_dict(),
            "tokenizer": encoder.name,
            "input_fingerprint": fingerprint(files),
        },
        "tokenizer": encoder.manifest_entry(),
        "versions": versions(),
    }
    if _prepare_output(output_dir, identity, options.overwrite):
        return summary(read_index(output_dir), already_built=True)
    try:
        return _build(inputs, output_dir, config, options, files, identity, started)
    except OSError as exc:  # from our own writes: input problems arrive as InputError
        raw = sum(f.raw_size for f in files if not f.binary)
        raise _write_error(output_dir, exc, estimated_spill_bytes(raw, config)) from None


def _write_error(output_dir: str, exc: OSError, spill_bytes: float) -> OutputError:
    where = f" ({exc.filename})" if exc.filename else ""
    if exc.errno == errno.ENOSPC:
        return OutputError(
            f"{output_dir}: no space left on device{where}; this build needs about "
            f"{spill_bytes / 1e6:,.0f} MB of temporary space for spill files (see `mlmprep "
            "plan`; --tmp-dir puts them elsewhere); free some space and run the same command "
            "again to resume"
        )
    return OutputError(
        f"{output_dir}: cannot write ({exc.strerror or exc}){where}; check the output "
        "directory, then run the same command again to resume"
    )


def _build(
    inputs: list[str],
    output_dir: str,
    config: BuildConfig,
    options: RunOptions,
    files: list,
    identity: dict,
    started: float,
) -> dict:
    encoder = encoder_for(config, options.tokenizer_backend)
    work = WorkState(output_dir)
    if not work.exists():
        work.start(_plan(files, config, inputs, identity))
    plan = work.plan()
    units = [Unit.from_dict(u) for u in plan["units"]]
    sizing = Sizing.from_dict(plan["sizing"])
    facts = {
        "schema_version": SCHEMA_VERSION,
        "tokenizer": identity["tokenizer"],
        "versions": identity["versions"],
        "config": {k: v for k, v in identity["config"].items() if k != "input_fingerprint"},
    }
    schema = with_metadata(output_schema(config), facts)
    spill_dir = _spill_dir(output_dir, work, identity, options.tmp_dir)
    storage.makedirs(spill_dir)
    done_before = work.records(UNITS_DIR)
    done = set(done_before)
    tasks = unit_tasks(
        units,
        config,
        sizing,
        spill_dir,
        options.strict,
        done,
        options.storage_options,
        options.tokenizer_backend,
    )
    # never more processes than there is work for: idle workers cost startup time
    work_items = max(expected_tasks(units, sizing.unit_size), sum(sizing.buckets.values()))
    workers = min(options.workers, work_items)
    timings = {}
    with _engine(options, workers) as engine:
        processed = run_units(
            engine,
            work,
            tasks,
            sum(u.raw_bytes for u in units),
            sum(r["raw_bytes"] for r in done_before.values()),
            options.progress,
        )
        timings["units_seconds"] = round(time.monotonic() - started, 3)
        results = sorted(work.records(UNITS_DIR).values(), key=lambda r: (r["unit"], r["part"]))
        if not any(r["accounting"]["documents"]["used"] for r in results):
            work.remove()
            storage.rmtree(spill_dir)
            raise _no_documents(inputs, results)
        peak_spill = sum(r["spill"]["bytes"] for r in results)
        tasks_of_shards = shard_tasks(
            results,
            sizing.buckets,
            config,
            output_dir,
            schema,
            spill_schema(schema, encoder.vocab_size),
            options.storage_options,
        )
        _run_shards(engine, work, tasks_of_shards, options.progress)
    timings["total_seconds"] = round(time.monotonic() - started, 3)
    resumed = {"units_done_before": len(done), "bytes_processed": processed}
    run = {
        "engine": options.engine,
        **timings,
        **resumed,
        "peak_spill_bytes": peak_spill,
        "workers": workers,
    }
    shards = work.records(SHARDS_DIR)
    index = build_index(identity, results, shards, files, options.tokenizer_backend, run)
    index["plan"] = {"units": len(units), "tasks": len(results), **sizing.to_dict()}
    write_text_atomically(storage.join(output_dir, TOKENIZER_FILE), encoder.json)
    _write_card(output_dir, index, output_schema(config))
    write_json_atomically(storage.join(output_dir, INDEX), index)
    shard_names = tuple(shard["name"] + ".tmp-" for shard in index["shards"])
    for name in storage.listdir(output_dir):  # temp files of workers that died mid-write
        if name.startswith(shard_names):
            storage.remove(storage.join(output_dir, name))
    storage.rmtree(spill_dir)
    work.remove()
    return summary(index, already_built=False)


def _write_card(output_dir: str, index: dict, schema: pa.Schema) -> None:
    """The dataset card, unless the directory holds a README.md of the user's own."""
    path = storage.join(output_dir, CARD)
    if storage.exists(path) and not written_by_mlmprep(output_dir):
        return
    write_text_atomically(path, dataset_card(index, schema))


def _no_documents(inputs: list[str], results: list[dict]) -> InputError:
    report = InputReport()
    for result in results:
        report.merge_dict(result["accounting"], result["examples"])
    skipped = dict(report.documents_skipped) or "none"
    return InputError(
        f"{', '.join(inputs)}: no documents found ({report.files_read} files read, documents "
        f"skipped: {skipped}); check the files, --input-format and --text-field"
    )


def _engine(options: RunOptions, workers: int) -> LocalEngine | DaskEngine:
    if options.engine == "dask":
        return DaskEngine(workers, options.scheduler, worker_init)
    return LocalEngine(workers, worker_init, WORKER_MODULES)


def _plan(files: list, config: BuildConfig, inputs: list[str], identity: dict) -> dict:
    """Sizes and units: from the inputs and config only, never the worker count."""
    sizing = choose_sizing(sum(f.raw_size for f in files if not f.binary), config)
    units = plan_units(files, config, sizing.unit_size)
    if not units:
        raise InputError(
            f"{', '.join(inputs)}: no readable input (every file is binary); "
            "pass text, jsonl or parquet files"
        )
    return {
        "identity": identity,
        "spill_format": SPILL_FORMAT,
        "sizing": sizing.to_dict(),
        "units": [u.to_dict() for u in units],
    }


def _progress(total: int, initial: int, unit: str, desc: str, enabled: bool) -> tqdm:
    return tqdm(
        total=total,
        initial=initial,
        unit=unit,
        unit_scale=unit == "B",
        desc=desc,
        disable=not enabled,
        dynamic_ncols=True,
    )


def _run_shards(
    engine: LocalEngine | DaskEngine, work: WorkState, tasks: list[ShardTask], progress: bool
) -> None:
    """Write the shards of every bucket not recorded as finished yet."""
    finished = work.records(SHARDS_DIR)
    pending = [t for t in tasks if not all(name in finished for name in t.names)]
    with _progress(len(tasks), len(tasks) - len(pending), "bucket", "shards", progress) as bar:
        for _ in engine.map_unordered(write_bucket_shards, pending):
            bar.update(1)


def _spill_dir(output_dir: str, work: WorkState, identity: dict, tmp_dir: str | None) -> str:
    """Where spill files go: the work directory, or a directory of this build (stable
    across reruns, for resume) under --tmp-dir."""
    if tmp_dir is None:
        return storage.join(work.path, SPILL_DIR)
    key = json.dumps([output_dir, identity], sort_keys=True).encode()
    return storage.join(tmp_dir, f"mlmprep-spill-{hashlib.sha256(key).hexdigest()[:16]}")


def _prepare_output(output_dir: str, identity: dict, overwrite: bool) -> bool:
    """Check the output directory; True when it already holds this exact, finished build."""
    if storage.exists(output_dir) and not storage.isdir(output_dir):
        raise OutputError(f"{output_dir}: exists and is not a directory; choose another output")
    try:
        storage.makedirs(output_dir)
        probe = storage.join(output_dir, f".mlmprep-probe-{os.getpid()}")
        with storage.open_file(probe, "wb"):
            pass
        storage.remove(probe)
    except OSError as exc:
        raise OutputError(
            f"{output_dir}: output directory not writable ({exc.strerror}); "
            "choose another output or fix its permissions"
        ) from None
    work = WorkState(output_dir)
    if storage.exists(storage.join(output_dir, INDEX)):
        diffs = differences(read_index(output_dir), identity)
        if not diffs and not overwrite:
            return True
        if diffs and not overwrite:
            raise OutputError(
                f"{output_dir}: holds a different build ({'; '.join(diffs)} differ); "
                "pass --overwrite to replace it, or choose another directory"
            )
        remove_build(output_dir)
    elif work.exists():
        plan = work.plan()
        diffs = differences(plan["identity"], identity)
        if diffs and not overwrite:
            raise OutputError(
                f"{output_dir}: holds an unfinished build with other settings "
                f"({'; '.join(diffs)} differ); pass --overwrite to discard it"
            )
        # spill files of an earlier spill format cannot be read back: start again
        stale = plan.get("spill_format") != SPILL_FORMAT
        if diffs or overwrite or stale:
            remove_build(output_dir)
    return False
