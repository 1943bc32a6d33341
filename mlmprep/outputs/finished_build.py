"""Open a finished build: its index.json (read once), its tokenizer, its shards by split,
and their rows in batches. Every command that reads a build goes through here."""

from __future__ import annotations

import functools
from collections.abc import Iterator

import pyarrow as pa
import pyarrow.parquet as pq

from mlmprep.core import storage
from mlmprep.core.config import BuildConfig
from mlmprep.core.errors import ConfigError, OutputError
from mlmprep.formats.manifest import TOKENIZER_FILE, read_index, shard_damage
from mlmprep.text.special_tokens import SpecialTokens, from_manifest
from mlmprep.text.tokenization import TokenEncoder

BATCH_ROWS = 8192  # rows read at a time when streaming over a shard


class FinishedBuild:
    """A build's output directory, opened through its index.json."""

    def __init__(self, output_dir: str) -> None:
        self.output_dir = output_dir
        self.index = read_index(output_dir)

    @property
    def config(self) -> dict:
        """The build's options as recorded (index.json's `config`)."""
        return self.index["config"]

    def build_config(self) -> BuildConfig:
        """The recorded options as a BuildConfig (keys it does not know are left out)."""
        fields = BuildConfig.__dataclass_fields__
        return BuildConfig(**{k: v for k, v in self.config.items() if k in fields})

    @property
    def special_tokens(self) -> SpecialTokens:
        """The roles and row layout the build used."""
        return from_manifest(self.index["tokenizer"])

    @functools.cached_property
    def tokenizer(self) -> TokenEncoder:
        """The tokenizer copied into the output, with the roles index.json records."""
        path = storage.join(self.output_dir, TOKENIZER_FILE)
        if not storage.exists(path):
            raise OutputError(f"{path}: missing; rebuild the output with 'mlmprep build'")
        roles = self.index["tokenizer"].get("layout", {}).get("roles")
        return TokenEncoder(path, special_tokens=roles)

    def shards(self, split: str | None = None) -> list[dict]:
        """index.json's entries (name, split, rows, bytes, sha256) of one split, or all."""
        return [s for s in self.index["shards"] if split is None or s["split"] == split]

    def split_shards(self, split: str) -> list[dict]:
        """The shards of a split asked for by name: a split without rows is refused
        (`--split validation` of a build made without --validation-fraction)."""
        shards = self.shards(split)
        if not any(shard["rows"] for shard in shards):
            held = sorted({s["split"] for s in self.shards() if s["rows"]}) or ["none"]
            raise ConfigError(
                f"--split {split}: {self.output_dir} has no {split} rows (its splits: "
                f"{', '.join(held)}; a validation split needs --validation-fraction)"
            )
        return shards

    def path(self, shard: dict) -> str:
        return storage.join(self.output_dir, shard["name"])

    def check_shards(self) -> None:
        """Refuse a build with a missing or truncated shard, naming the first in order
        (before work that reads the shards in parallel, whose first failure could be any)."""
        for shard in self.shards():
            self._check(shard)

    def _check(self, shard: dict) -> None:
        damage = shard_damage(self.output_dir, shard)
        if damage:
            raise OutputError(f"{self.path(shard)}: {damage}; {self.repair_advice}")

    def parquet(self, shard: dict) -> pq.ParquetFile:
        """One shard, opened; a missing, truncated or unreadable one is a one-line error
        naming it and saying how to repair it."""
        path = self.path(shard)
        self._check(shard)
        try:
            return storage.parquet_file(path)
        except (OSError, pa.ArrowException) as exc:
            raise self._unreadable(shard, exc) from None

    @property
    def repair_advice(self) -> str:
        """What to do about a damaged shard (the build's rerun with --verify rewrites it)."""
        return (
            f"`mlmprep validate {self.output_dir}` lists the damage; run the same `mlmprep "
            "build` command again with --verify to repair it"
        )

    def batches(self, shard: dict, batch_rows: int = BATCH_ROWS) -> Iterator[pa.RecordBatch]:
        """The rows of one shard, in stored order, `batch_rows` at a time; data that does
        not decode is a one-line error naming the shard."""
        batches = self.parquet(shard).iter_batches(batch_size=batch_rows)
        while True:
            try:
                batch = next(batches)
            except StopIteration:
                return
            except (OSError, pa.ArrowException) as exc:
                raise self._unreadable(shard, exc) from None
            yield batch

    def read_columns(self, shard: dict, columns: list[str] | None = None) -> pa.Table:
        """Some columns (or all) of one shard, whole (decoding errors as in `batches`)."""
        try:
            return self.parquet(shard).read(columns=columns)
        except (OSError, pa.ArrowException) as exc:
            raise self._unreadable(shard, exc) from None

    def _unreadable(self, shard: dict, exc: Exception) -> OutputError:
        return OutputError(f"{self.path(shard)}: unreadable ({exc}); {self.repair_advice}")
