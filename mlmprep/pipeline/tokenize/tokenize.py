"""tokenize(): inputs -> one Megatron/fairseq indexed dataset, `PREFIX.bin` + `PREFIX.idx`.

Units are read, split into sentences and tokenized on the engine's workers, each into a
partial .bin/.idx in the work directory (`PREFIX.mlmprep-work/`, recorded per unit for
resume). The merge then concatenates the partials in input order, streaming: .bin block
by block, .idx one partial index at a time. The output depends only on the inputs and
options, never on the worker count or engine. `PREFIX.json` records what was made (the
identity, counts, accounting, checksums); `stats` and `validate` read it.
"""

from __future__ import annotations

import math
import os
import time
from dataclasses import asdict, dataclass

import numpy as np

from mlmprep.core import storage
from mlmprep.core.config import TRAIN, VALIDATION, BuildConfig
from mlmprep.core.errors import ConfigError, OutputError, write_failure
from mlmprep.core.files import read_json, write_json_atomically
from mlmprep.core.lease import LeaseCheck
from mlmprep.core.writer_lock import writer_lock
from mlmprep.formats.indexed_format import (
    output_paths,
    token_dtype,
)
from mlmprep.formats.manifest import UNITS_DIR, WorkState, differences, identity_of
from mlmprep.input.accounting import InputReport
from mlmprep.input.discovery import InputFile, describe_inputs, resolve_inputs
from mlmprep.pipeline.build_index import tokenizer_warnings
from mlmprep.pipeline.input_errors import no_documents, no_readable_input
from mlmprep.pipeline.output_dir import same_run
from mlmprep.pipeline.planning import Unit, expected_tasks, plan_units, worker_count
from mlmprep.pipeline.run_options import RunOptions
from mlmprep.pipeline.scheduling import make_engine, run_units, unit_tasks
from mlmprep.pipeline.sizing import WINDOW_BYTES, Sizing
from mlmprep.pipeline.tokenize.merge import merge_bins, merge_indexes
from mlmprep.pipeline.tokenize.units import (
    LEVELS,
    TokenizeCounts,
    TokenizeResult,
    TokenizeTask,
    tokenize_unit,
)
from mlmprep.pipeline.workers import start_worker_server
from mlmprep.text.encoders import encoder_for
from mlmprep.text.tokenizer_backends import DEFAULT_BACKEND

FORMATS = ("megatron",)
MAX_UNITS = 4096  # units grow past 8 MiB so a huge corpus makes at most about this many
DEFAULTS = BuildConfig()


@dataclass(frozen=True)
class TokenizeConfig:
    """What decides the bytes of a tokenize output."""

    tokenizer: str = DEFAULTS.tokenizer
    lowercase: bool | None = None
    special_tokens: str | None = None
    input_format: str = DEFAULTS.input_format
    text_field: str = DEFAULTS.text_field
    level: str = LEVELS[0]
    append_eod: bool = False
    fmt: str = FORMATS[0]

    def __post_init__(self) -> None:
        if self.level not in LEVELS:
            raise ConfigError(f"--level must be one of {', '.join(LEVELS)}, not {self.level!r}")
        if self.append_eod and self.level != "document":
            raise ConfigError("--append-eod goes with --level document")
        if self.fmt not in FORMATS:
            raise ConfigError(f"--format must be one of {', '.join(FORMATS)}")

    def build_config(self, unit_size: int = 0) -> BuildConfig:
        """The reading and tokenizing part, as the build's units take it."""
        return BuildConfig(
            tokenizer=self.tokenizer,
            lowercase=self.lowercase,
            special_tokens=self.special_tokens,
            input_format=self.input_format,
            text_field=self.text_field,
            unit_size=unit_size,
        )


def tokenize(
    inputs: list[str],
    prefix: str,
    config: TokenizeConfig,
    options: RunOptions,
    unit_size: int = 0,
) -> dict:
    """Tokenize `inputs` into `prefix`.bin/.idx (or resume, or confirm); return the
    manifest, with `already_built` True when the output already held this exact run."""
    started = time.monotonic()
    paths = output_paths(prefix)
    if options.forks_local_workers:
        start_worker_server()  # their modules load while this plans
    files, identity = _identity(inputs, paths, config, options.tokenizer_backend)
    with writer_lock(paths["lock"], prefix) as lease:
        finished = _finished(prefix, paths, identity, options.overwrite)
        if finished is not None:
            return {**finished, "already_built": True}
        storage.makedirs(storage.dirname(prefix) or ".")
        try:
            manifest = _run(inputs, paths, config, options, files, identity, unit_size, lease)
        except OSError as exc:
            raise write_failure(prefix, exc) from None
        manifest["run"]["total_seconds"] = round(time.monotonic() - started, 3)
        write_json_atomically(paths["manifest"], manifest)
        WorkState.at(paths["work"]).remove()
    return {**manifest, "already_built": False}


def _identity(
    inputs: list[str], paths: dict[str, str], config: TokenizeConfig, backend: str
) -> tuple[list[InputFile], dict]:
    """The run's input files (its own output left out) and identity."""
    ours = {os.path.normpath(path) for path in paths.values()}
    found = resolve_inputs(inputs, paths["work"])  # leaves out the work directory...
    files = describe_inputs([f for f in found if os.path.normpath(f) not in ours])  # ...and us
    encoder = encoder_for(config.build_config(), backend)
    return files, identity_of(asdict(config), encoder, files)


def finished_run(
    inputs: list[str], prefix: str, config: TokenizeConfig, backend: str = DEFAULT_BACKEND
) -> dict | None:
    """The manifest of a finished, intact run of exactly `inputs` and `config` at
    `prefix`, else None (nothing there, another run, unfinished, damaged); reads only."""
    paths = output_paths(prefix)
    if not storage.exists(paths["manifest"]):
        return None
    try:
        manifest = read_json(paths["manifest"])
    except (OSError, ValueError):
        return None
    _, identity = _identity(inputs, paths, config, backend)
    if not isinstance(manifest, dict) or differences(manifest.get("identity", {}), identity):
        return None
    return manifest if _files_intact(paths, manifest) else None


def _finished(prefix: str, paths: dict[str, str], identity: dict, overwrite: bool) -> dict | None:
    """The manifest of a finished identical run; None when there is work to do. Another
    run's files are refused, or removed with --overwrite (whatever they hold); an
    identical run whose .bin or .idx is missing or of the wrong size is made again."""
    manifest_path = paths["manifest"]
    work = WorkState.at(paths["work"])
    if storage.exists(manifest_path) and not overwrite:
        try:
            manifest = read_json(manifest_path)
            if not isinstance(manifest, dict):
                raise ValueError("not an object")
        except (UnicodeDecodeError, ValueError):
            raise OutputError(
                f"{manifest_path}: unreadable (not the JSON tokenize writes); pass "
                "--overwrite to make the output again"
            ) from None
        same_run(prefix, manifest.get("identity", {}), identity, finished=True, overwrite=False)
        if _files_intact(paths, manifest):
            return manifest
        overwrite = True  # made again after damage
    elif work.exists() and not overwrite:  # resumed when identical, else refused
        same_run(prefix, work.plan()["identity"], identity, finished=False, overwrite=False)
    if overwrite:
        for key in ("manifest", "bin", "idx"):
            if storage.exists(paths[key]):
                storage.remove(paths[key])
        if storage.exists(work.path):
            work.remove()
    return None


def _files_intact(paths: dict[str, str], manifest: dict) -> bool:
    """Both files present at the sizes the manifest records (`validate` checks more)."""
    return all(
        storage.exists(paths[key]) and storage.size(paths[key]) == manifest["files"][key]["bytes"]
        for key in ("bin", "idx")
    )


def _run(
    inputs: list[str],
    paths: dict[str, str],
    config: TokenizeConfig,
    options: RunOptions,
    files: list[InputFile],
    identity: dict,
    unit_size: int,
    lease: LeaseCheck | None,
) -> dict:
    work = WorkState.at(paths["work"])
    if not work.exists():
        work.start(_plan(inputs, files, config, identity, unit_size), (UNITS_DIR,))
    plan = work.plan()
    units = [Unit.from_dict(u) for u in plan["units"]]
    sizing = Sizing(
        plan["unit_size"], min(plan["unit_size"], WINDOW_BYTES), {TRAIN: 0, VALIDATION: 0}
    )
    done_before = [TokenizeResult.from_dict(r) for r in work.records(UNITS_DIR).values()]
    build_config = config.build_config(plan["unit_size"])
    workers = worker_count(options.workers, expected_tasks(units, plan["unit_size"]))
    with make_engine(options, workers) as engine:
        tasks = (
            TokenizeTask(task, config.level, config.append_eod, work.path)
            for task in unit_tasks(
                units, build_config, sizing, work.path, options, done_before, lease
            )
        )
        new = run_units(engine, work, tasks, units, done_before, options.progress, tokenize_unit)
    results = sorted([*done_before, *new], key=lambda r: r.order)
    if not any(r.documents_used for r in results):
        work.remove()
        raise no_documents(inputs, results)
    dtype = token_dtype(identity["tokenizer"]["vocab_size"])
    partials = [storage.join(work.path, r.name) for r in results]
    files = {
        "bin": merge_bins(partials, paths["bin"]),
        "idx": merge_indexes(partials, paths["idx"], dtype),
    }
    run = {
        "engine": options.engine,
        "workers": workers,
        "units": len(units),
        "units_done_before": len(done_before),
        "bytes_processed": sum(r.raw_bytes for r in new),
    }
    return _manifest(config, identity, dtype, results, files, run)


def _manifest(
    config: TokenizeConfig,
    identity: dict,
    dtype: np.dtype,
    results: list[TokenizeResult],
    files: dict,
    run: dict,
) -> dict:
    """PREFIX.json: what was made, from what, with which checksums, and how."""
    counts, report = TokenizeCounts(), InputReport()
    for result in results:
        counts.add(result.counts)
        report.merge_dict(result.accounting, result.examples)
    return {
        "kind": "mlmprep-tokenize",
        "format": config.fmt,
        "identity": identity,
        "dtype": dtype.name,
        "counts": counts.to_dict(),
        "input_bytes": sum(r.raw_bytes for r in results),  # raw bytes read, all runs
        "accounting": report.to_dict(),
        "warnings": [*report.warnings(), *tokenizer_warnings(config.build_config())],
        "files": files,
        "run": run,
    }


def _plan(
    inputs: list[str],
    files: list[InputFile],
    config: TokenizeConfig,
    identity: dict,
    unit_size: int,
) -> dict:
    """Units from the inputs only: 8 MiB, or larger so that there are at most MAX_UNITS."""
    raw = sum(f.raw_size for f in files if not f.skipped)
    size = unit_size or max(WINDOW_BYTES, math.ceil(raw / MAX_UNITS))
    units = plan_units(files, config.build_config(size), size)
    if not units:
        raise no_readable_input(inputs)
    return {"identity": identity, "unit_size": size, "units": [u.to_dict() for u in units]}
