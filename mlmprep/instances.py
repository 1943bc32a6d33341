"""Pure: pair spans -> flat `[CLS] A [SEP] B [SEP]` token rows with token types."""

from __future__ import annotations

from dataclasses import dataclass

import numpy as np

from .pairs import Pairs


@dataclass
class Instances:
    """Rows stored flat: row i is tokens[offsets[i]:offsets[i+1]]."""

    tokens: np.ndarray
    offsets: np.ndarray
    token_types: np.ndarray
    special: np.ndarray
    labels: np.ndarray

    def __len__(self) -> int:
        return len(self.offsets) - 1

    @property
    def lengths(self) -> np.ndarray:
        return np.diff(self.offsets)


def gather_ranges(starts: np.ndarray, lengths: np.ndarray) -> np.ndarray:
    """Concatenation of arange(s, s + n) for each (s, n), without a Python loop."""
    total = int(lengths.sum())
    if total == 0:
        return np.zeros(0, np.int64)
    # int32 where it fits: these arrays are as long as all tokens of a unit pass
    dtype = np.int32 if max(total, int(starts.max()) + int(lengths.max())) < 2**31 else np.int64
    ends = np.cumsum(lengths)
    shift = np.repeat((starts - (ends - lengths)).astype(dtype), lengths)
    return np.arange(total, dtype=dtype) + shift


def assemble(ids: np.ndarray, pairs: Pairs, cls_id: int, sep_id: int) -> Instances:
    """Build `[CLS] A [SEP] B [SEP]` rows for all pairs at once."""
    n = len(pairs)
    extended = np.concatenate((ids, np.array([cls_id, sep_id], dtype=ids.dtype)))
    cls_at, sep_at = len(ids), len(ids) + 1
    one = np.ones(n, np.int64)
    seg_starts = np.stack(
        [np.full(n, cls_at), pairs.a_start, np.full(n, sep_at), pairs.b_start, np.full(n, sep_at)],
        axis=1,
    ).ravel()
    seg_lengths = np.stack([one, pairs.a_len, one, pairs.b_len, one], axis=1).ravel()
    tokens = extended[gather_ranges(seg_starts, seg_lengths)]
    seg_types = np.tile(np.array([0, 0, 0, 1, 1], np.int8), n)
    token_types = np.repeat(seg_types, seg_lengths)
    seg_special = np.tile(np.array([1, 0, 1, 0, 1], np.int8), n)
    special = np.repeat(seg_special, seg_lengths)
    offsets = np.concatenate(([0], np.cumsum(pairs.a_len + pairs.b_len + 3)))
    return Instances(tokens, offsets, token_types, special, pairs.label.copy())
