"""PackedBatchSampler: batches of a fixed token budget packed from rows of any length.

For trainers that do not pad (ModernBERT, Ettin, mmBERT): a `torch.utils.data` batch
sampler whose batches hold at most `batch_tokens` tokens, chosen by greedy best-fit over
a buffer of rows in a seeded order (`algorithm/batch_packing.py`). Give it to a
`DataLoader` as `batch_sampler=` with `MlmCollator(unpadded=True)` and every step is
one flat sequence of nearly `batch_tokens` tokens, with `cu_seqlens`.

The whole epoch is planned from the rows' lengths alone (the build's `num_tokens`
column, 2 bytes a row), in the process that owns the sampler, so DataLoader workers
only fetch rows: the batches depend on the seed, the epoch and the number of ranks,
never on the number of workers.
"""

from __future__ import annotations

import hashlib
import warnings
from collections.abc import Iterator

import numpy as np
import pyarrow as pa
from torch.utils.data import Sampler

from mlmprep.algorithm.batch_packing import (
    PackedBatches,
    fill,
    pack_batches,
    split_to_multiple,
)
from mlmprep.core import random_streams
from mlmprep.core.config import TRAIN
from mlmprep.outputs.finished_build import FinishedBuild
from mlmprep.outputs.torch import distributed_rank

DEFAULT_BUFFER_SIZE = 1024  # rows waiting to be packed: fill >= 0.99 on real builds
LENGTH_COLUMN = "num_tokens"


class PackedBatchSampler(Sampler[list[int]]):
    """Yields lists of row indices whose lengths sum to at most `batch_tokens`.

    Each epoch the rows are put in an order drawn from (seed, epoch) (or kept in order
    with `shuffle=False`) and packed by greedy best-fit over `buffer_size` rows; a row is
    never split and every row is in exactly one batch of the epoch, over all ranks.
    Batch i goes to rank i % world_size. So that every rank takes the same number of
    steps (DDP never waits on a rank that ran out), the epoch's last batches of two or
    more rows are cut in two until the count divides by the world size: at most
    world_size - 1 extra, smaller batches; no row is repeated or dropped.

    `state_dict()` / `load_state_dict()` resume in the middle of an epoch at the next
    batch. The sampler counts the batches it has handed out; a DataLoader with workers
    asks for some ahead of training, so pass the trainer's own count as
    `state_dict(batches_done=step)` there (torchdata's StatefulDataLoader needs neither).
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
        self.fingerprint = fingerprint or hashlib.sha256(lengths.tobytes()).hexdigest()
        self._plan: tuple[int, PackedBatches, np.ndarray] | None = None
        self._handed_out = 0
        self._resume_at = 0

    @classmethod
    def from_build(
        cls, output_dir: str, batch_tokens: int, split: str = TRAIN, **options
    ) -> PackedBatchSampler:
        """A sampler over the rows of one split of a build, in the order `MlmprepDataset`
        numbers them (local or any fsspec URL); `options` as for the constructor."""
        build = FinishedBuild(output_dir)
        shards = build.shards(split)
        columns = [build.parquet(shard).read(columns=[LENGTH_COLUMN]) for shard in shards]
        lengths = (
            pa.concat_tables(columns).column(LENGTH_COLUMN).to_numpy()
            if columns
            else np.zeros(0, np.int64)
        )
        identity = hashlib.sha256("".join(shard["sha256"] for shard in shards).encode())
        return cls(lengths, batch_tokens, fingerprint=identity.hexdigest(), **options)

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
        start, self._resume_at = self._resume_at, 0
        self._handed_out = start
        for index in range(self.rank + start * self.world_size, len(packed), self.world_size):
            self._handed_out += 1
            yield order[packed.batch(index)].tolist()

    def state_dict(self, batches_done: int | None = None) -> dict:
        """Where this rank is: its epoch and how many of its batches are done (the ones
        handed out, or `batches_done`), with what makes the batches what they are."""
        return {
            "epoch": self.epoch,
            "batches_done": self._handed_out if batches_done is None else batches_done,
            "seed": self.seed,
            "shuffle": self.shuffle,
            "batch_tokens": self.batch_tokens,
            "buffer_size": self.buffer_size,
            "world_size": self.world_size,
            "rows": len(self.lengths),
            "fingerprint": self.fingerprint,
        }

    def load_state_dict(self, state: dict) -> None:
        """Resume where `state` was saved: the next iteration starts at its next batch."""
        if state.get("fingerprint") != self.fingerprint:
            raise ValueError(
                "load_state_dict: the state was saved over other rows (another build, "
                "split or epoch of data); resume with the sampler of the build it came from"
            )
        for name in ("seed", "shuffle", "batch_tokens", "buffer_size", "world_size"):
            if state.get(name) != getattr(self, name):
                raise ValueError(
                    f"load_state_dict: the state was saved with {name}={state.get(name)!r}, "
                    f"this sampler has {name}={getattr(self, name)!r}; they must match to "
                    "resume the same batches"
                )
        self.epoch = state["epoch"]
        self._resume_at = min(int(state["batches_done"]), len(self))

    def _batches(self) -> tuple[int, PackedBatches, np.ndarray]:
        """This epoch's batches over all ranks (planned once per epoch)."""
        if self._plan is None or self._plan[0] != self.epoch:
            count = len(self.lengths)
            if self.shuffle:
                rng = random_streams.rng_for(self.seed, random_streams.PACKED_BATCHES, self.epoch)
                order = rng.permutation(count)
            else:
                order = np.arange(count)
            packed = pack_batches(self.lengths[order], self.batch_tokens, self.buffer_size)
            self._plan = (self.epoch, split_to_multiple(packed, self.world_size), order)
        return self._plan


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
