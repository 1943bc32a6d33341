"""Shard file names, `<split>-<index>-of-<total>.parquet`: made and read back here only."""

from __future__ import annotations

import re
from dataclasses import dataclass

from mlmprep.core.config import SPLITS

_PATTERN = re.compile(rf"^({'|'.join(SPLITS)})-(\d{{5,}})-of-(\d{{5,}})\.parquet$")


@dataclass(frozen=True)
class ShardName:
    """Shard `index` (from 0) of the `total` shards of a split."""

    split: str
    index: int
    total: int

    def __str__(self) -> str:
        return f"{self.split}-{self.index:05d}-of-{self.total:05d}.parquet"

    @classmethod
    def parse(cls, name: str) -> ShardName | None:
        """The parts of a shard file's name; None for any other file name."""
        match = _PATTERN.match(name)
        return cls(match[1], int(match[2]), int(match[3])) if match else None
