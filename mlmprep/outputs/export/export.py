"""`mlmprep export`: a finished build in the format a trainer already reads.

Each split is cut into `--num-files` files of balanced row ranges, in the build's order
(see files.py). Each file is written under a temporary name and renamed, with a
completion record: a rerun of the same export skips finished files and writes the same
bytes. Files are written by `run.workers` processes (a local pool, or a Dask cluster),
each planning the export again (the plan depends only on the build and the options), so
any worker count and engine writes the same bytes; the format's index files are written
once all files are. `export.json` in DEST describes the export last; the formats are in
the writers' modules (reference.py, mds.py, lddl.py), listed in formats.py.
"""

from __future__ import annotations

import functools
import hashlib
from collections.abc import Iterable, Iterator
from dataclasses import dataclass, field

import pyarrow as pa
from tqdm import tqdm

from mlmprep.core import storage
from mlmprep.core.config import SPLITS
from mlmprep.core.engines.dask import DaskEngine
from mlmprep.core.engines.engine import Engine
from mlmprep.core.engines.local import LocalEngine, worker_context
from mlmprep.core.engines.ray import RayEngine
from mlmprep.core.errors import ConfigError, OutputError, write_failure
from mlmprep.core.files import atomic_path, read_json, write_json_atomically
from mlmprep.core.writer_lock import writer_lock
from mlmprep.formats.manifest import WorkState, versions
from mlmprep.outputs.export.destination import LOCK_FILE, SUMMARY_FILE, clear_destination
from mlmprep.outputs.export.files import ExportFile, default_file_count, split_files
from mlmprep.outputs.export.formats import FORMATS
from mlmprep.outputs.export.split_rows import SplitRows, bin_counts
from mlmprep.outputs.export.writer import ExportOptions, ExportRun, ExportWriter
from mlmprep.outputs.finished_build import FinishedBuild

EXPORTED = "exported"


@dataclass
class ExportPlan:
    """The files of an export, where their rows come from, and the rows a format cannot
    hold (by split)."""

    files: list[ExportFile] = field(default_factory=list)
    sources: dict[tuple[str, int | None], SplitRows] = field(default_factory=dict)
    left_out: dict[str, int] = field(default_factory=dict)
    counts: dict[str, int] = field(default_factory=dict)  # files per split (per bin)

    def rows(self, file: ExportFile) -> Iterator[pa.RecordBatch]:
        return self.sources[file.split, file.length_bin].read(file.start, file.stop)


def make_writer(build: FinishedBuild, options: ExportOptions) -> ExportWriter:
    """The writer of `options.fmt` for this build; refuses options that do not apply."""
    if options.fmt not in FORMATS:
        raise ConfigError(f"--format must be one of {', '.join(FORMATS)}, not {options.fmt!r}")
    writers = {name: entry.writer_class() for name, entry in FORMATS.items()}
    writer = writers[options.fmt]
    if options.gzip and not writer.takes_gzip:
        takers = [name for name, w in writers.items() if w.takes_gzip]
        raise ConfigError(f"--gzip applies to --format {' or '.join(takers)} only")
    if options.compression and options.compression not in writer.compressions:
        if writer.compressions:
            raise ConfigError(f"--compression must be one of {', '.join(writer.compressions)}")
        takers = [name for name, w in writers.items() if w.compressions]
        raise ConfigError(f"--compression applies to --format {' or '.join(takers)} only")
    if options.num_files is not None and options.num_files < 1:
        raise ConfigError("--num-files must be 1 or more")
    return writer(build, options)


def plan_export(build: FinishedBuild, writer: ExportWriter, num_files: int | None) -> ExportPlan:
    """Which rows of which split (and bin) go into which file."""
    plan = ExportPlan()
    for split in SPLITS:
        shards = build.shards(split)
        rows = sum(shard["rows"] for shard in shards)
        if not rows:
            continue
        if num_files and num_files > rows:
            raise ConfigError(
                f"--num-files {num_files} is more than the {rows} rows of the {split} split; "
                "give at most that many"
            )
        count = num_files or default_file_count(rows, len(shards))
        plan.counts[split] = count
        if writer.by_length_bin and build.config.get("bin_size"):
            for number, (length_bin, counts) in enumerate(bin_counts(build, split).items()):
                source = SplitRows(build, split, length_bin, counts)
                plan.sources[split, length_bin] = source
                fields = {"length_bin": length_bin, "bin_number": number}
                _plan_files(plan, writer, split, source, count, fields)
        else:
            plan.sources[split, None] = SplitRows(build, split)
            _plan_files(plan, writer, split, plan.sources[split, None], count, {})
    return plan


def _plan_files(
    plan: ExportPlan, writer: ExportWriter, split: str, source: SplitRows, count: int, fields: dict
) -> None:
    kept = writer.plan_rows(len(source), count)
    if kept < len(source):
        plan.left_out[split] = plan.left_out.get(split, 0) + len(source) - kept
    plan.files += split_files(split, kept, count, **fields)


def export_build(
    output_dir: str, dest: str, options: ExportOptions, run: ExportRun | None = None
) -> dict:
    """Write a build as `options.fmt` files in `dest`, run as `run` says (default: in
    this process); return the export's summary."""
    run = run or ExportRun()
    if run.workers < 1:
        raise ConfigError(f"--workers must be at least 1, got {run.workers}")
    if run.engine == "local" and run.workers > 1 and options.fmt in FORMATS:
        worker_context(_worker_modules(options))  # the workers' server imports meanwhile
    try:
        return _export(output_dir, dest, options, run)
    except OSError as exc:
        raise write_failure(dest, exc) from None


def _export(output_dir: str, dest: str, options: ExportOptions, run: ExportRun) -> dict:
    if storage.is_url(dest):
        raise ConfigError(f"{dest}: export writes local files; give a local directory")
    build = FinishedBuild(output_dir)
    build.check_shards()
    writer = make_writer(build, options)
    writer.check_installed()
    plan = plan_export(build, writer, options.num_files)
    identity = source_identity(build)
    request = {
        "source": identity,
        "format": options.fmt,
        "gzip": options.gzip,
        "compression": options.compression,
        "files": [file.key for file in plan.files],
    }
    with writer_lock(storage.join(dest, LOCK_FILE), dest):
        earlier = _earlier_export(dest, request)
        if earlier is not None and not options.overwrite and _files_present(dest, earlier):
            return {**earlier, "already_exported": True}
        # the same export with a file lost is written again over its own files
        work = _resume_or_start(dest, request, options.overwrite or earlier is not None)
        written = _write_files(build, writer, plan, work, dest, options, run)
        return _finish_export(build, writer, plan, written, work, dest, options, request)


def _write_files(
    build: FinishedBuild,
    writer: ExportWriter,
    plan: ExportPlan,
    work: WorkState,
    dest: str,
    options: ExportOptions,
    run: ExportRun,
) -> list[tuple[ExportFile, dict]]:
    """Write every file not done yet (on the run's engine when it has several workers or
    is a cluster), each recorded as it is done; return every file with its record."""
    done = work.records(EXPORTED)
    todo = [file for file in plan.files if file.key not in done]
    rows = {file.key: file.rows for file in plan.files}
    total = sum(rows.values())
    with tqdm(total=total, unit="row", desc="export", disable=not run.progress) as bar:
        bar.update(sum(rows[key] for key in done))
        if (run.workers > 1 or run.engine != "local") and len(todo) > 1:
            given = storage.options()  # the build may be on object storage
            tasks = [FileTask(build.output_dir, dest, options, file.key, given) for file in todo]
            with _engine(run, options, len(todo)) as engine:
                for key, record in engine.map_unordered(write_file_task, tasks):
                    done[key] = record
                    work.record(EXPORTED, key, record)
                    bar.update(rows[key])
        else:
            for file in todo:
                done[file.key] = _write_file(writer, plan.rows(file), dest, file)
                work.record(EXPORTED, file.key, done[file.key])
                bar.update(file.rows)
    return [(file, done[file.key]) for file in plan.files]


def _engine(run: ExportRun, options: ExportOptions, files: int) -> Engine:
    """The pool the files are written on; a cluster's workers must hold the versions that
    decide the bytes, and see the build and DEST (a shared filesystem)."""
    if run.engine == "dask":
        return DaskEngine(min(run.workers, files), run.scheduler, environment=versions)
    if run.engine == "ray":
        return RayEngine(min(run.workers, files), run.scheduler, environment=versions)
    return LocalEngine(min(run.workers, files), preload=_worker_modules(options))


def _worker_modules(options: ExportOptions) -> tuple[str, ...]:
    """What a local export worker imports: this module and the format's writer."""
    return (__name__, FORMATS[options.fmt].module)


@dataclass(frozen=True)
class FileTask:
    """One file of an export, for a worker process: what it needs to plan it again."""

    output_dir: str
    dest: str
    options: ExportOptions
    key: str
    storage_options: dict

    def describe(self) -> str:
        """The file, for error messages (a cluster engine names the task that failed)."""
        return f"{self.dest}: file {self.key} of the export of {self.output_dir}"


def write_file_task(task: FileTask) -> tuple[str, dict]:
    """Write one planned file (in a worker); its key and record."""
    storage.configure(task.storage_options)
    writer, plan = _planned(task.output_dir, task.options)
    file = next(f for f in plan.files if f.key == task.key)
    return task.key, _write_file(writer, plan.rows(file), task.dest, file)


@functools.lru_cache(maxsize=2)
def _planned(output_dir: str, options: ExportOptions) -> tuple[ExportWriter, ExportPlan]:
    """A worker's writer and plan, made once per export and process."""
    build = FinishedBuild(output_dir)
    writer = make_writer(build, options)
    return writer, plan_export(build, writer, options.num_files)


def _finish_export(
    build: FinishedBuild,
    writer: ExportWriter,
    plan: ExportPlan,
    written: list[tuple[ExportFile, dict]],
    work: WorkState,
    dest: str,
    options: ExportOptions,
    request: dict,
) -> dict:
    """The format's index files, then export.json, then the work record goes."""
    writer.finish(dest, written)
    summary = {
        "format": options.fmt,
        "source": build.output_dir,
        "source_build": request["source"],
        "files": [_describe(writer, file, record) for file, record in written],
        "files_per_split": plan.counts,
        "rows": sum(record["rows"] for _, record in written),
        "left_out": plan.left_out,
        "warnings": writer.warnings(plan.counts),
        "request": request,
        **writer.summary(),
    }
    write_json_atomically(storage.join(dest, SUMMARY_FILE), summary)
    work.remove()
    return {**summary, "already_exported": False}


def source_identity(build: FinishedBuild) -> dict:
    """What names the exported build: its path, and one checksum over its shards'."""
    digest = hashlib.sha256()
    for shard in build.shards():
        digest.update(f"{shard['name']} {shard['sha256']}\n".encode())
    return {"path": build.output_dir, "shards_sha256": digest.hexdigest()}


def _earlier_export(dest: str, request: dict) -> dict | None:
    """The summary of the same export, finished earlier in `dest`."""
    path = storage.join(dest, SUMMARY_FILE)
    if not storage.exists(path):
        return None
    summary = read_json(path)
    return summary if summary.get("request") == request else None


def _files_present(dest: str, summary: dict) -> bool:
    return all(storage.exists(storage.join(dest, f["name"])) for f in summary["files"])


def _resume_or_start(dest: str, request: dict, overwrite: bool) -> WorkState:
    """The export's work record: resumed when it is the same export; otherwise the
    destination must be empty, or hold an earlier export and `overwrite` be given."""
    work = WorkState(dest)
    if work.exists() and work.plan() == request:
        return work
    if work.exists() and not overwrite:
        raise OutputError(
            f"{dest}: holds an unfinished export of another build or with other options; "
            "rerun that export to finish it, pass --overwrite to replace it, or export "
            "somewhere else"
        )
    clear_destination(dest, overwrite)
    storage.makedirs(dest)
    work.start(request, (EXPORTED,))
    return work


def _write_file(
    writer: ExportWriter, batches: Iterable[pa.RecordBatch], dest: str, file: ExportFile
) -> dict:
    """Write one file under a temporary name, check its row count against the plan, and
    rename it into place; a failed or short file never appears under its final name."""
    path = storage.join(dest, writer.file_name(file))
    storage.makedirs(storage.dirname(path))
    with atomic_path(path) as tmp:
        record = writer.write(batches, file.rows, tmp, file)
        if record["rows"] != file.rows:
            raise OutputError(
                f"{storage.basename(path)}: wrote {record['rows']} rows but the build's "
                f"index.json lists {file.rows} for them; run 'mlmprep validate' on the build"
            )
    return record


def _describe(writer: ExportWriter, file: ExportFile, record: dict) -> dict:
    entry = {"name": writer.file_name(file), "split": file.split, "rows": record["rows"]}
    if file.bin_number is not None:
        entry["bin"] = file.bin_number
    return entry
