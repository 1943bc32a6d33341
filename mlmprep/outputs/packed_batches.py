"""Batches of a fixed token budget packed from rows of any length, for trainers that do
not pad (ModernBERT, Ettin, mmBERT).

`PackedBatchSampler` is a `torch.utils.data` batch sampler for a map-style dataset:
batches of at most `batch_tokens` tokens, chosen by greedy best-fit over a buffer of
rows in a seeded order (`algorithm/batch_packing.py`). `PackedIterableDataset` streams
the same kind of batches from the shards row group by row group, for splits that do not
fit in memory. With `MlmCollator(unpadded=True)` every step is one flat sequence of
nearly `batch_tokens` tokens, with `cu_seqlens`.

An epoch is planned from the rows' lengths alone (the build's `num_tokens` column,
2 bytes a row), identically in every rank and DataLoader worker, so the batches depend
on the seed, the epoch and the number of ranks, never on the number of workers.
"""

from __future__ import annotations

import hashlib
import warnings
from collections.abc import Iterator

import numpy as np
import pyarrow as pa
from torch.utils.data import IterableDataset, Sampler

from mlmprep.algorithm.batch_packing import (
    PackedBatches,
    fill,
    pack_batches,
    split_to_multiple,
)
from mlmprep.core import random_streams, storage
from mlmprep.core.config import TRAIN
from mlmprep.outputs.finished_build import FinishedBuild
from mlmprep.outputs.torch import dataloader_worker, distributed_rank

DEFAULT_BUFFER_SIZE = 1024  # rows waiting to be packed: fill >= 0.99 on real builds
LENGTH_COLUMN = "num_tokens"
STATE_KEYS = ("seed", "shuffle", "batch_tokens", "buffer_size", "world_size")


class PackedBatchSampler(Sampler[list[int]]):
    """Yields lists of row indices whose lengths sum to at most `batch_tokens`.

    Each epoch the rows are put in an order drawn from (seed, epoch) (or kept in order
    with `shuffle=False`) and packed by greedy best-fit over `buffer_size` rows; a row is
    never split and every row is in exactly one batch of the epoch, over all ranks.
    With `group_rows` (the rows of each row group, in order) the row groups are shuffled
    and then the rows inside each, so that nearby batches share row groups (streaming).

    Rank r of W takes the r-th of W equal runs of the epoch's batches. So that every
    rank takes the same number of steps (DDP never waits on a rank that ran out), the
    epoch's last batches of two or more rows are cut in two until the count divides by
    W: at most W - 1 extra, smaller batches; no row is repeated or dropped.

    `state_dict()` / `load_state_dict()` resume in the middle of an epoch at the next
    batch. The sampler counts the batches it has handed out; a DataLoader with workers
    asks for some ahead of training, so pass the trainer's own count as
    `state_dict(batches_done=step)` there.
    """

    def __init__(
        self,
        lengths: np.ndarray,
        batch_tokens: int,
        buffer_size: int = DEFAULT_BUFFER_SIZE,
        seed: int = 0,
        shuffle: bool = True,
        rank: int | None = None,
        world_size: int | None = None,
        fingerprint: str | None = None,
        group_rows: np.ndarray | None = None,
    ) -> None:
        lengths = np.asarray(lengths, dtype=np.int64)
        _check_options(lengths, batch_tokens, buffer_size)
        default_rank, default_world = distributed_rank()
        self.rank = default_rank if rank is None else rank
        self.world_size = default_world if world_size is None else world_size
        if not 0 <= self.rank < self.world_size:
            raise ValueError(f"rank must be in [0, {self.world_size}), got {self.rank}")
        self.lengths, self.batch_tokens, self.buffer_size = lengths, batch_tokens, buffer_size
        self.seed, self.shuffle, self.epoch = seed, shuffle, 0
        self.group_rows = None if group_rows is None else np.asarray(group_rows, np.int64)
        self.fingerprint = fingerprint or hashlib.sha256(lengths.tobytes()).hexdigest()
        self._plan: tuple[int, PackedBatches, np.ndarray] | None = None
        self._handed_out = 0
        self._resume: tuple[int, int] | None = None  # (epoch, batches done)

    @classmethod
    def from_build(
        cls,
        output_dir: str,
        batch_tokens: int,
        split: str = TRAIN,
        by_row_group: bool = False,
        **options,
    ) -> PackedBatchSampler:
        """A sampler over the rows of one split of a build, in the order `MlmprepDataset`
        numbers them (a local path or a URL); `by_row_group`: shuffle row groups, then
        rows within each; `options` as for the constructor."""
        build = FinishedBuild(output_dir)
        shards = build.shards(split)
        files = [build.parquet(shard) for shard in shards]
        columns = [build.read_columns(shard, [LENGTH_COLUMN]) for shard in shards]
        lengths = (
            pa.concat_tables(columns).column(LENGTH_COLUMN).to_numpy()
            if columns
            else np.zeros(0, np.int64)
        )
        groups = [f.metadata.row_group(g).num_rows for f in files for g in range(f.num_row_groups)]
        identity = hashlib.sha256("".join(shard["sha256"] for shard in shards).encode())
        return cls(
            lengths,
            batch_tokens,
            fingerprint=identity.hexdigest(),
            group_rows=np.array(groups, np.int64) if by_row_group else None,
            **options,
        )

    def set_epoch(self, epoch: int) -> None:
        """Plan epoch `epoch` (a different order); call before each epoch."""
        self.epoch = epoch

    def fill(self) -> float:
        """This epoch's tokens over what its batches could hold (1.0: no room wasted)."""
        return fill(self.lengths, self._batches()[1], self.batch_tokens)

    def __len__(self) -> int:
        return len(self._batches()[1]) // self.world_size

    def __iter__(self) -> Iterator[list[int]]:
        _, packed, order = self._batches()
        start = self._start()
        self._handed_out = start
        for index in self._rank_range(start):
            self._handed_out += 1
            yield order[packed.batch(index)].tolist()
        self._resume = None

    def rank_batches(self) -> list[np.ndarray]:
        """This rank's batches of the epoch (row indices), from the resume point on."""
        _, packed, order = self._batches()
        return [order[packed.batch(index)] for index in self._rank_range(self._start())]

    def state_dict(self, batches_done: int | None = None) -> dict:
        """Where this rank is: its epoch and how many of its batches are done (the ones
        handed out, or `batches_done`), with what makes the batches what they are."""
        state = {name: getattr(self, name) for name in STATE_KEYS}
        done = self._handed_out if batches_done is None else batches_done
        return {**state, "epoch": self.epoch, "batches_done": done, "fingerprint": self.fingerprint}

    def load_state_dict(self, state: dict) -> None:
        """Resume where `state` was saved: the next iteration of its epoch starts at its
        next batch."""
        if state.get("fingerprint") != self.fingerprint:
            raise ValueError(
                "load_state_dict: the state was saved over other rows (another build or "
                "split); resume with the build and split it came from"
            )
        for name in STATE_KEYS:
            if state.get(name) != getattr(self, name):
                raise ValueError(
                    f"load_state_dict: the state was saved with {name}={state.get(name)!r}, "
                    f"this one has {name}={getattr(self, name)!r}; they must match to "
                    "resume the same batches"
                )
        self.epoch = state["epoch"]
        self._resume = (self.epoch, min(int(state["batches_done"]), len(self)))

    def _start(self) -> int:
        """The first batch to hand out: the resume point in the epoch it was saved in."""
        return self._resume[1] if self._resume and self._resume[0] == self.epoch else 0

    def _rank_range(self, start: int) -> range:
        per_rank = len(self)
        first = self.rank * per_rank
        return range(first + start, first + per_rank)

    def _batches(self) -> tuple[int, PackedBatches, np.ndarray]:
        """This epoch's batches over all ranks (planned once per epoch)."""
        if self._plan is None or self._plan[0] != self.epoch:
            order = self._order()
            packed = pack_batches(self.lengths[order], self.batch_tokens, self.buffer_size)
            self._plan = (self.epoch, split_to_multiple(packed, self.world_size), order)
        return self._plan

    def _order(self) -> np.ndarray:
        """The epoch's row order before packing."""
        count = len(self.lengths)
        if not self.shuffle:
            return np.arange(count)
        rng = random_streams.rng_for(self.seed, random_streams.PACKED_BATCHES, self.epoch)
        if self.group_rows is None:
            return rng.permutation(count)
        firsts = np.cumsum(self.group_rows) - self.group_rows
        parts = [
            firsts[g] + rng.permutation(self.group_rows[g]) for g in rng.permutation(len(firsts))
        ]
        return np.concatenate(parts) if parts else np.arange(0)


class PackedIterableDataset(IterableDataset):
    """Token-budget batches of one split, streamed row group by row group.

    The batches are those of `PackedBatchSampler.from_build(..., by_row_group=True)`:
    row groups shuffled per epoch, then rows inside each, packed by greedy best-fit.
    DataLoader worker w of a rank yields that rank's batches w, w + workers, ... and
    the DataLoader takes one from each worker in turn, so a rank sees the same batches
    in the same order whatever `num_workers`. A worker keeps a row group only until its
    last batch that needs it. Yields lists of rows: use
    `DataLoader(dataset, batch_size=None, collate_fn=collator)`.
    """

    def __init__(self, output_dir: str, batch_tokens: int, split: str = TRAIN, **options) -> None:
        build = FinishedBuild(output_dir)
        files = [(build.path(shard), build.parquet(shard)) for shard in build.shards(split)]
        self.row_groups = [(path, g) for path, f in files for g in range(f.num_row_groups)]
        self.sampler = PackedBatchSampler.from_build(
            output_dir, batch_tokens, split, by_row_group=True, **options
        )
        rows = self.sampler.group_rows
        self.group_firsts = np.cumsum(rows) - rows

    def set_epoch(self, epoch: int) -> None:
        self.sampler.set_epoch(epoch)

    def state_dict(self, batches_done: int) -> dict:
        """The state after the trainer's `batches_done` steps of this epoch."""
        return self.sampler.state_dict(batches_done=batches_done)

    def load_state_dict(self, state: dict) -> None:
        self.sampler.load_state_dict(state)

    def __len__(self) -> int:
        return len(self.sampler)

    def __iter__(self) -> Iterator[list[dict]]:
        worker, workers = dataloader_worker()
        mine = self.sampler.rank_batches()[worker::workers]
        groups = [np.searchsorted(self.group_firsts, batch, side="right") - 1 for batch in mine]
        last_use = {int(g): k for k, batch_groups in enumerate(groups) for g in batch_groups}
        held: dict[int, list[dict]] = {}
        for k, (batch, batch_groups) in enumerate(zip(mine, groups, strict=True)):
            rows = []
            for row, group in zip(batch.tolist(), batch_groups.tolist(), strict=True):
                if group not in held:
                    path, index = self.row_groups[group]
                    held[group] = storage.parquet_file(path).read_row_group(index).to_pylist()
                rows.append(held[group][row - int(self.group_firsts[group])])
            yield rows
            for group in set(batch_groups.tolist()):
                if last_use[group] == k:
                    del held[group]


def _check_options(lengths: np.ndarray, batch_tokens: int, buffer_size: int) -> None:
    if buffer_size < 1:
        raise ValueError(f"buffer_size must be a positive number of rows, got {buffer_size}")
    longest = int(lengths.max()) if len(lengths) else 0
    if batch_tokens < max(longest, 1):
        raise ValueError(
            f"batch_tokens={batch_tokens} is smaller than the longest row ({longest} tokens); "
            f"pass batch_tokens of at least {max(longest, 1)}"
        )
    if len(lengths) > 1 and longest == int(lengths.min()):
        warnings.warn(
            f"every row has {longest} tokens: packing buys nothing over a plain batch size "
            f"of {batch_tokens // longest} rows",
            stacklevel=3,
        )
