"""What an export's destination may hold: nothing, the same export unfinished (resumed),
or, with --overwrite, an earlier export's files (removed first). Anything else is
refused, so two exports never mix: a trainer reads every file of a folder."""

from __future__ import annotations

import os
import re
import shutil

from mlmprep.core.errors import OutputError
from mlmprep.core.files import TEMPORARY_MARK
from mlmprep.core.output_markers import EXPORT_SUMMARY
from mlmprep.core.writer_lock import LOCK_SUFFIX
from mlmprep.formats.manifest import WORK_DIR
from mlmprep.outputs.export.formats import FORMATS

SUMMARY_FILE = EXPORT_SUMMARY
LOCK_FILE = LOCK_SUFFIX  # DEST/.mlmprep-lock, held while an export writes
SPLIT_DIRS = ("train", "validation")


def export_name_pattern() -> re.Pattern:
    """Any name an export writes: the summary, or a file of one of the formats."""
    patterns = [f.writer_class().file_pattern for f in FORMATS.values()]
    return re.compile("|".join([re.escape(SUMMARY_FILE), *patterns]))


def clear_destination(dest: str, overwrite: bool) -> None:
    """Make sure `dest` holds nothing but what this export will write: refuse other files,
    or with `overwrite` remove those an earlier export wrote (and only those)."""
    if not os.path.isdir(dest):
        return
    found = [(p, ours) for p, ours in _export_files(dest) if os.path.basename(p) != LOCK_FILE]
    foreign = [path for path, ours in found if not ours]
    if foreign:
        raise OutputError(
            f"{dest}: holds files no export wrote ({_names(foreign, dest)}); export into an "
            "empty directory"
        )
    if found and not overwrite:
        raise OutputError(
            f"{dest}: holds another export ({_names([p for p, _ in found], dest)}); export "
            "into an empty directory, or pass --overwrite to remove those files first"
        )
    for path, _ in found:
        if os.path.isdir(path):
            shutil.rmtree(path)
        else:
            os.remove(path)
    for split in SPLIT_DIRS:
        if os.path.isdir(os.path.join(dest, split)):
            os.rmdir(os.path.join(dest, split))  # empty now: every file in it was ours


def _export_files(dest: str) -> list[tuple[str, bool]]:
    """Every entry of `dest` (and of its split directories) with whether an export
    writes such a file."""
    found = []
    for name in sorted(os.listdir(dest)):
        path = os.path.join(dest, name)
        if name in SPLIT_DIRS and os.path.isdir(path):
            found += [
                (os.path.join(path, inner), _ours(inner)) for inner in sorted(os.listdir(path))
            ]
        else:
            found.append((path, name == WORK_DIR or _ours(name)))
    return found


def _ours(name: str) -> bool:
    """An export's file, or one being written when an export died (NAME.tmp-PID)."""
    final = name.split(TEMPORARY_MARK, 1)[0]
    return bool(export_name_pattern().fullmatch(final))


def _names(paths: list[str], dest: str) -> str:
    shown = [os.path.relpath(p, dest) for p in paths[:3]]
    more = f" and {len(paths) - 3} more" if len(paths) > 3 else ""
    return ", ".join(shown) + more
