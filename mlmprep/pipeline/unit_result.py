"""What processing one unit (or part) made: its record, written to the work directory as
JSON when it arrives, read back by the shard phase, the index and a resumed build."""

from __future__ import annotations

from dataclasses import dataclass, field

from mlmprep.core.counts import SplitCounts


class UnitRecord:
    """What every task result of the units phase has, build (UnitResult) or tokenize
    (TokenizeResult): the record's name, what it read, its place in input order, and
    its JSON form (the subclasses are dataclasses holding these fields)."""

    unit: int
    part: int
    name: str
    raw_bytes: int
    part_source: str | None  # the part file cut from a streamed file, deleted once recorded
    accounting: dict  # InputReport.to_dict()
    examples: list[str]  # InputReport.examples

    @property
    def order(self) -> tuple[int, int]:
        """Results are read in unit order, then part order, whatever order they came in."""
        return self.unit, self.part

    @property
    def documents_used(self) -> int:
        return self.accounting["documents"]["used"]

    def to_dict(self) -> dict:
        raise NotImplementedError


@dataclass(frozen=True)
class SpillFile:
    """A unit's spill file: its size and, per split, the byte offsets of its bucket
    batches (buckets + 1 values: bucket b is [offsets[b], offsets[b + 1])); with a
    two-level shuffle, of its groups' ranges instead (groups + 1 values)."""

    path: str
    bytes: int  # where its last bucket batch ends (the stream's end marker follows)
    offsets: dict[str, list[int]]


@dataclass(frozen=True)
class UnitResult(UnitRecord):
    """Counts, accounting and spilled rows of one unit, or of one part of a streamed file."""

    unit: int
    part: int
    name: str  # of the spill file and of this record
    accounting: dict  # InputReport.to_dict()
    examples: list[str]  # InputReport.examples
    counts: dict[str, SplitCounts]  # by split
    rows: dict[str, list[int]]  # rows per bucket (two-level shuffle: per group), by split
    spill: SpillFile
    raw_bytes: int
    part_source: str | None  # the part file cut from a streamed file, deleted once recorded
    tokenizer_backend: dict  # BackendUsage.to_dict()
    storage_retries: int = 0  # S3 requests retried while it ran (storage.take_retries)
    first_buckets: dict[str, int] = field(default_factory=dict)  # two levels: each split's
    # bucket of row 0 (rows per bucket follow: spill.dealt_rows); empty with one level

    def to_dict(self) -> dict:
        return {
            **{k: v for k, v in vars(self).items() if k not in ("counts", "spill")},
            "counts": {split: c.to_dict() for split, c in self.counts.items()},
            "spill": vars(self.spill).copy(),
        }

    @classmethod
    def from_dict(cls, data: dict) -> UnitResult:
        return cls(
            **{k: v for k, v in data.items() if k not in ("counts", "spill")},
            counts={split: SplitCounts.from_dict(c) for split, c in data["counts"].items()},
            spill=SpillFile(**data["spill"]),
        )
