"""The output directory before a build: is it writable, what does it already hold (this
build finished, an unfinished one to resume, another build), and --overwrite."""

from __future__ import annotations

import contextlib
import os
from dataclasses import dataclass

from mlmprep.core import storage
from mlmprep.core.errors import OutputError
from mlmprep.core.files import TEMPORARY_MARK
from mlmprep.formats.manifest import (
    INDEX,
    SHARDS_DIR,
    TOKENIZER_FILE,
    UNITS_DIR,
    WorkState,
    differences,
    read_index,
    shard_damage,
)
from mlmprep.formats.shard_names import ShardName
from mlmprep.pipeline.card import CARD, written_by_mlmprep
from mlmprep.pipeline.spill import SPILL_FORMAT


@dataclass(frozen=True)
class OutputState:
    """What the output directory holds for this build."""

    finished: bool = False  # this exact build, finished
    damaged: tuple[str, ...] = ()  # its shards that are missing or differ from index.json


def prepare_output(
    output_dir: str, identity: dict, overwrite: bool, verify: bool = False
) -> OutputState:
    """Check the output directory: does it hold this exact build, finished (and which of
    its shards are damaged: sizes, and with `verify` checksums)?

    An unfinished build with the same identity is left to resume; anything else of
    mlmprep's there is removed with --overwrite and refused without it.
    """
    _check_writable(output_dir)
    work = WorkState(output_dir)
    if storage.exists(storage.join(output_dir, INDEX)):
        if overwrite:  # whatever it holds, even an unreadable index.json
            remove_build(output_dir)
            return OutputState()
        index = read_index(output_dir)
        same_run(output_dir, index, identity, finished=True, overwrite=False)
        return OutputState(finished=True, damaged=damaged_shards(output_dir, index, verify))
    elif work.exists() and _nothing_done(work):  # a failed or killed start: no build yet
        remove_build(output_dir)
    elif work.exists():
        plan = work.plan()
        same = same_run(output_dir, plan["identity"], identity, finished=False, overwrite=overwrite)
        # spill files of an earlier spill format cannot be read back: start again
        stale = plan.get("spill_format") != SPILL_FORMAT
        if not same or overwrite or stale:
            remove_build(output_dir)
    return OutputState()


def discard_failed_start(output_dir: str) -> None:
    """After a run failed: if it finished no unit or shard of a build not yet finished,
    its work directory goes, so that the corrected command starts afresh."""
    work = WorkState(output_dir)
    finished = storage.exists(storage.join(output_dir, INDEX))
    if not finished and work.exists() and _nothing_done(work):
        work.remove()


def remove_if_empty(output_dir: str) -> None:
    """Remove a local output directory that a failed start left empty."""
    if not storage.is_url(output_dir):
        with contextlib.suppress(OSError):
            os.rmdir(output_dir)


def _nothing_done(work: WorkState) -> bool:
    return not work.names(UNITS_DIR) and not work.names(SHARDS_DIR)


def same_run(where: str, recorded: dict, identity: dict, finished: bool, overwrite: bool) -> bool:
    """Whether what `where` holds (finished, or not yet) was made with `identity`, the
    rule of build and tokenize alike: another run's output is refused in one line unless
    --overwrite is given (then False: the caller removes it)."""
    diffs = differences(recorded, identity)
    if not diffs or overwrite:
        return not diffs
    if finished:
        raise OutputError(
            f"{where}: holds a different output ({'; '.join(diffs)} differ); pass "
            "--overwrite to replace it, or choose another output"
        )
    raise OutputError(
        f"{where}: holds an unfinished run with other settings ({'; '.join(diffs)} differ); "
        "rerun the command that started it to finish it, or pass --overwrite to discard it"
    )


def damaged_shards(output_dir: str, index: dict, verify: bool) -> tuple[str, ...]:
    """Shards of a finished build that are missing, of another size than index.json says,
    or (with `verify`) of another sha256."""
    return tuple(s["name"] for s in index["shards"] if shard_damage(output_dir, s, verify))


def _check_writable(output_dir: str) -> None:
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


def remove_build(output_dir: str) -> None:
    """--overwrite: delete only what mlmprep wrote: every file the build's shard naming
    rule could have made (a killed build renames a bucket's shards before it records
    them) and their temporary files, the manifest, the tokenizer, our dataset card and
    the work directory."""
    names = [INDEX, TOKENIZER_FILE]
    if written_by_mlmprep(output_dir):
        names.append(CARD)
    for name in storage.listdir(output_dir):
        final = name.split(TEMPORARY_MARK)[0]
        if ShardName.parse(final) or final in names:
            storage.remove(storage.join(output_dir, name))
    WorkState(output_dir).remove()
