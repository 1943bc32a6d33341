"""build(): plan units, run them on an engine, gather shards, write the manifest."""

from __future__ import annotations

import math
import os
import time
from collections import Counter
from dataclasses import dataclass

from tqdm import tqdm

from .config import BuildConfig
from .engines.local import LocalEngine
from .errors import InputError, OutputError
from .manifest import (
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
)
from .planning import describe_inputs, estimate_buckets, fingerprint, plan_units, resolve_inputs
from .readers import InputReport
from .schema import SCHEMA_VERSION, output_schema, with_metadata
from .shuffle import ShardTask, shard_name, write_bucket_shards
from .spill import SPLITS, spill_bytes
from .units import STREAM_SHUFFLE, UnitTask, encoder_for, process_unit, worker_init


@dataclass(frozen=True)
class RunOptions:
    """How to run a build; nothing here changes the output bytes."""

    workers: int = 1
    strict: bool = False
    overwrite: bool = False
    progress: bool = False


def build(inputs: list[str], output_dir: str, config: BuildConfig, options: RunOptions) -> dict:
    """Build (or resume, or confirm) the output of `config` on `inputs` in `output_dir`.

    Returns the summary that the CLI prints; `summary["already_built"]` is True when
    the output directory already held this exact build.
    """
    started = time.monotonic()
    files = describe_inputs(resolve_inputs(inputs, output_dir))
    encoder = encoder_for(config)
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
        return _summary(read_index(output_dir), already_built=True)
    units = plan_units(files, config)
    if not units:
        raise InputError(
            f"{', '.join(inputs)}: no readable input (every file is binary); "
            "pass text, jsonl or parquet files"
        )
    fraction = config.validation_fraction
    buckets = {
        "train": estimate_buckets(files, config, 1 - fraction),
        "validation": estimate_buckets(files, config, fraction) if fraction else 0,
    }
    work = WorkState(output_dir)
    if not work.exists():
        work.start(
            {"identity": identity, "buckets": buckets, "units": [u.to_dict() for u in units]}
        )
    facts = {
        "schema_version": SCHEMA_VERSION,
        "tokenizer": identity["tokenizer"],
        "versions": identity["versions"],
        "config": {k: v for k, v in identity["config"].items() if k != "input_fingerprint"},
    }
    schema = with_metadata(output_schema(config), facts)

    done = work.records(UNITS_DIR)
    todo = [
        UnitTask(u, config, work.path, buckets, options.strict)
        for u in units
        if _unit_name(u.index) not in done
    ]
    timings = {}
    with LocalEngine(options.workers, worker_init) as engine:
        total_bytes = sum(u.raw_bytes for u in units)
        with tqdm(
            total=total_bytes,
            initial=total_bytes - sum(t.unit.raw_bytes for t in todo),
            unit="B",
            unit_scale=True,
            desc="units",
            disable=not options.progress,
            dynamic_ncols=True,
        ) as bar:
            for result in engine.map_unordered(process_unit, todo):
                work.record(UNITS_DIR, _unit_name(result["unit"]), result)
                bar.update(result["raw_bytes"])
        timings["units_seconds"] = round(time.monotonic() - started, 3)
        results = list(work.records(UNITS_DIR).values())
        peak_spill = spill_bytes(work.path)
        shard_tasks = _shard_tasks(results, buckets, config, output_dir, work, schema)
        finished = work.records(SHARDS_DIR)
        pending = [t for t in shard_tasks if not all(n in finished for n in t.names)]
        with tqdm(
            total=len(shard_tasks),
            initial=len(shard_tasks) - len(pending),
            unit="bucket",
            desc="shards",
            disable=not options.progress,
            dynamic_ncols=True,
        ) as bar:
            for shards in engine.map_unordered(write_bucket_shards, pending):
                for shard in shards:
                    work.record(SHARDS_DIR, shard["name"], shard)
                bar.update(1)
    finished = work.records(SHARDS_DIR)
    timings["total_seconds"] = round(time.monotonic() - started, 3)
    index = _index(identity, results, finished, files, options, timings, peak_spill)
    with open(os.path.join(output_dir, TOKENIZER_FILE + ".tmp"), "w", encoding="utf-8") as handle:
        handle.write(encoder.json)
    os.replace(
        os.path.join(output_dir, TOKENIZER_FILE + ".tmp"), os.path.join(output_dir, TOKENIZER_FILE)
    )
    write_json_atomically(os.path.join(output_dir, INDEX), index)
    work.remove()
    return _summary(index, already_built=False)


def _unit_name(index: int) -> str:
    return f"unit-{index:06d}"


def _prepare_output(output_dir: str, identity: dict, overwrite: bool) -> bool:
    """Check the output directory; True when it already holds this exact, finished build."""
    if os.path.exists(output_dir) and not os.path.isdir(output_dir):
        raise OutputError(f"{output_dir}: exists and is not a directory; choose another output")
    try:
        os.makedirs(output_dir, exist_ok=True)
        probe = os.path.join(output_dir, f".mlmprep-probe-{os.getpid()}")
        with open(probe, "w"):
            pass
        os.remove(probe)
    except OSError as exc:
        raise OutputError(
            f"{output_dir}: output directory not writable ({exc.strerror}); "
            "choose another output or fix its permissions"
        ) from None
    work = WorkState(output_dir)
    if os.path.exists(os.path.join(output_dir, INDEX)):
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
        diffs = differences(work.plan()["identity"], identity)
        if diffs and not overwrite:
            raise OutputError(
                f"{output_dir}: holds an unfinished build with other settings "
                f"({'; '.join(diffs)} differ); pass --overwrite to discard it"
            )
        if diffs or overwrite:
            remove_build(output_dir)
    return False


def _shard_tasks(
    results: list[dict],
    buckets: dict[str, int],
    config: BuildConfig,
    output_dir: str,
    work: WorkState,
    schema,
) -> list[ShardTask]:
    """Name every shard: a bucket becomes ceil(rows / shard_size) shards."""
    tasks = []
    for split in SPLITS:
        rows = Counter()
        for result in results:
            rows.update({int(b): n for b, n in result["rows"].get(split, {}).items()})
        parts = [math.ceil(rows[b] / config.shard_size) for b in range(buckets[split])]
        total = sum(parts)
        index = 0
        for bucket, count in enumerate(parts):
            if count == 0:
                continue
            names = [shard_name(split, index + i, total) for i in range(count)]
            index += count
            seed = (
                [config.seed, STREAM_SHUFFLE, bucket]
                if split == "train"
                else [config.seed, STREAM_SHUFFLE, bucket, 1]
            )
            tasks.append(ShardTask(split, bucket, names, output_dir, work.path, schema, seed))
    return tasks


def _index(
    identity: dict,
    results: list[dict],
    shards: dict[str, dict],
    files: list,
    options: RunOptions,
    timings: dict,
    peak_spill: int,
) -> dict:
    report = InputReport()
    counts: Counter = Counter()
    for result in sorted(results, key=lambda r: r["unit"]):
        report.merge_dict(result["accounting"], result["examples"])
        counts.update(result["counts"])
    for file in files:
        if file.binary:
            report.skip_file(file.path, "binary file (NUL bytes)")
    split_rows = Counter()
    for name, shard in shards.items():
        split_rows[name.split("-")[0]] += shard["rows"]
    return {
        "schema_version": SCHEMA_VERSION,
        **identity,
        "shards": [{"split": name.split("-")[0], **shards[name]} for name in sorted(shards)],
        "accounting": report.to_dict(),
        "counts": {**dict(sorted(counts.items())), "rows": dict(sorted(split_rows.items()))},
        "warnings": report.examples,
        "run": {
            "engine": "local",
            "workers": options.workers,
            "input_bytes": sum(r["raw_bytes"] for r in results),
            "units": len(results),
            "peak_spill_bytes": peak_spill,
            **timings,
        },
    }


def _summary(index: dict, already_built: bool) -> dict:
    """The build summary: what the CLI prints (and `--json` emits)."""
    run = index["run"]
    seconds = max(run["total_seconds"], 1e-9)
    counts = index["counts"]
    return {
        "already_built": already_built,
        "documents": index["accounting"]["documents"]["used"],
        "sentences": counts.get("sentences", 0),
        "instances": sum(counts["rows"].values()),
        "rows": counts["rows"],
        "shards": len(index["shards"]),
        "input_bytes": run["input_bytes"],
        "seconds": run["total_seconds"],
        "mb_per_s": round(run["input_bytes"] / 1e6 / seconds, 3),
        "instances_per_s": round(sum(counts["rows"].values()) / seconds, 1),
        "peak_spill_bytes": run["peak_spill_bytes"],
        "accounting": index["accounting"],
        "warnings": index["warnings"],
    }
