"""The files that mark a directory as mlmprep's own output, so that input discovery
leaves earlier builds and exports inside a corpus alone."""

from __future__ import annotations

import json
from collections.abc import Callable

BUILD_INDEX = "index.json"  # a finished build's manifest
EXPORT_SUMMARY = "export.json"  # a finished export's summary
WORK_DIR = ".mlmprep-work"  # a build or export under way
MARKER_KEYS = {BUILD_INDEX: {"schema_version", "shards"}, EXPORT_SUMMARY: {"format", "source"}}


def is_mlmprep_output(names: set[str], read: Callable[[str], bytes]) -> bool:
    """True when a directory holding `names` (files and directories) is an mlmprep
    build or export, finished or under way; `read(name)` gives a file's bytes."""
    if WORK_DIR in names:
        return True
    for marker, keys in MARKER_KEYS.items():
        if marker in names:
            try:
                data = json.loads(read(marker))
            except (OSError, ValueError):
                continue
            if isinstance(data, dict) and keys <= data.keys():
                return True
    return False
