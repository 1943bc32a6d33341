"""What every export format provides; the defaults suit a format that writes plain files."""

from __future__ import annotations

from collections.abc import Iterable
from dataclasses import dataclass

import pyarrow as pa

from mlmprep.outputs.export.files import ExportFile
from mlmprep.outputs.finished_build import FinishedBuild


@dataclass(frozen=True)
class ExportOptions:
    """What `mlmprep export` was asked for."""

    fmt: str
    num_files: int | None = None  # per split (and per bin); None: default_file_count
    gzip: bool = False  # formats whose writer takes_gzip
    compression: str | None = None  # one of the writer's compressions
    overwrite: bool = False  # remove an earlier export's files from the destination


@dataclass(frozen=True)
class ExportRun:
    """How an export runs (never its bytes): processes, engine, progress bar."""

    workers: int = 1
    engine: str = "local"  # or "dask", "ray"
    scheduler: str | None = None  # a Dask scheduler's or Ray head's address; None: local
    progress: bool = False


class ExportWriter:
    """One export format. `export` plans the files, then calls `write` for each file not
    yet done (at a temporary path it renames), then `finish` once with all of them."""

    by_length_bin = False  # True: each length bin of the build gets files of its own
    takes_gzip = False  # --gzip applies
    compressions: tuple[str, ...] = ()  # what --compression may be
    # every name the format writes in DEST or in a split directory (a regex): what
    # --overwrite may remove, and what marks a destination as another export
    file_pattern = ""

    def __init__(self, build: FinishedBuild, options: ExportOptions) -> None:
        """Refuse a build the format cannot hold (ConfigError naming what to do)."""

    def check_installed(self) -> None:
        """Raise ConfigError naming the extra to install, when one is missing."""

    def plan_rows(self, rows: int, count: int) -> int:
        """How many of `rows` rows go into `count` files (all of them, unless the format
        cannot hold that split; the rest are reported as left out)."""
        return rows

    def warnings(self, counts: dict[str, int]) -> list[str]:
        """Warnings about the file count of each split (`counts`), printed by the CLI."""
        return []

    def file_name(self, file: ExportFile) -> str:
        raise NotImplementedError

    def write(
        self, batches: Iterable[pa.RecordBatch], rows: int, path: str, file: ExportFile
    ) -> dict:
        """Write `file` at `path`; return its record (at least `rows`, as written)."""
        raise NotImplementedError

    def finish(self, dest: str, files: list[tuple[ExportFile, dict]]) -> None:
        """Write what lists the files (index files), once every file is written."""

    def summary(self) -> dict:
        """Facts about the export for export.json and the CLI."""
        return {}
