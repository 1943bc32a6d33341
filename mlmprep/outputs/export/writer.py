"""What every export format provides; the defaults suit a format that writes plain files."""

from __future__ import annotations

from collections.abc import Iterable

import pyarrow as pa

from mlmprep.outputs.export.files import ExportFile


class ExportWriter:
    """One export format. `export` plans the files, then calls `write` for each file not
    yet done (at a temporary path it renames), then `finish` once with all of them."""

    by_length_bin = False  # True: each length bin of the build gets files of its own

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
