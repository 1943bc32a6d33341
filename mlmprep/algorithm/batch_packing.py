"""Greedy best-fit packing of rows into batches of a fixed token budget.

Rows arrive in a given order and wait in a buffer of `buffer_size` rows. A batch is
filled by taking, again and again, the longest buffered row that still fits what is
left of its budget (the oldest of that length first), refilling the buffer from the
stream after each take; when no buffered row fits, the batch is closed. A row is never
split, and every row is packed, since every row fits an empty batch. This is the
greedy best-fit that ModernBERT's sequence packer uses, without its dependencies.
"""

from __future__ import annotations

from bisect import bisect_right, insort
from collections import deque
from dataclasses import dataclass
from itertools import islice

import numpy as np


@dataclass(frozen=True)
class PackedBatches:
    """Batches as positions into the packed order: batch i is
    `rows[offsets[i]:offsets[i + 1]]`."""

    rows: np.ndarray  # int64 positions into the order given to `pack_batches`
    offsets: np.ndarray  # int64, len(batches) + 1

    def __len__(self) -> int:
        return len(self.offsets) - 1

    def batch(self, index: int) -> np.ndarray:
        return self.rows[self.offsets[index] : self.offsets[index + 1]]


def pack_batches(lengths: np.ndarray, budget: int, buffer_size: int) -> PackedBatches:
    """Pack rows of `lengths` (in stream order, each at most `budget`) into batches of at
    most `budget` tokens by greedy best-fit over a buffer of `buffer_size` rows."""
    sizes = lengths.tolist()
    count = len(sizes)
    waiting: dict[int, deque[int]] = {}  # length -> buffered rows of that length, oldest first
    present: list[int] = []  # the lengths in `waiting`, sorted
    taken: list[int] = []
    ends: list[int] = [0]

    def admit(row: int) -> None:
        size = sizes[row]
        queue = waiting.get(size)
        if queue is None:
            waiting[size] = deque((row,))
            insort(present, size)
        else:
            queue.append(row)

    arrived = min(buffer_size, count)
    for row in range(arrived):
        admit(row)
    while present:
        left = budget
        while True:
            slot = bisect_right(present, left) - 1
            if slot < 0:
                break
            size = present[slot]
            queue = waiting[size]
            taken.append(queue.popleft())
            if not queue:
                del waiting[size], present[slot]
            left -= size
            if arrived < count:
                admit(arrived)
                arrived += 1
        ends.append(len(taken))
    return PackedBatches(np.array(taken, np.int64), np.array(ends, np.int64))


def split_to_multiple(packed: PackedBatches, multiple: int) -> PackedBatches:
    """The same rows in a number of batches divisible by `multiple`: the last batches of
    two or more rows are cut in two (each part under the budget, like its whole), so
    every row stays in exactly one batch. Fewer rows than `multiple`: ValueError."""
    short = -len(packed) % multiple
    if not short:
        return packed
    if len(packed.rows) < len(packed) + short:
        raise ValueError(
            f"{len(packed.rows)} rows cannot make {len(packed) + short} batches "
            f"(a multiple of {multiple}): every rank needs at least one row"
        )
    batches = [packed.batch(i) for i in range(len(packed))]
    while short:
        latest = (i for i in reversed(range(len(batches))) if len(batches[i]) >= 2)
        for index in list(islice(latest, short)):  # from the end, so indices stay valid
            whole = batches[index]
            batches[index : index + 1] = [whole[: len(whole) // 2], whole[len(whole) // 2 :]]
            short -= 1
    ends = np.cumsum([0] + [len(batch) for batch in batches])
    return PackedBatches(np.concatenate(batches), ends.astype(np.int64))


def fill(lengths: np.ndarray, packed: PackedBatches, budget: int) -> float:
    """Tokens in batches over the tokens the batches could hold."""
    return float(lengths.sum()) / (len(packed) * budget) if len(packed) else 0.0
