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
    word_starts: np.ndarray | None = None

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


def assemble(
    ids: np.ndarray,
    pairs: Pairs,
    cls_id: int,
    sep_id: int,
    pair: bool = True,
    word_starts: np.ndarray | None = None,
) -> Instances:
    """Build `[CLS] A [SEP] B [SEP]` rows (or `[CLS] A [SEP]` when not `pair`) at once."""
    n = len(pairs)
    extended = np.concatenate((ids, np.array([cls_id, sep_id], dtype=ids.dtype)))
    cls_at, sep_at = len(ids), len(ids) + 1
    one = np.ones(n, np.int64)
    starts = [np.full(n, cls_at), pairs.a_start, np.full(n, sep_at)]
    lengths = [one, pairs.a_len, one]
    types, specials = [0, 0, 0], [1, 0, 1]
    if pair:
        starts += [pairs.b_start, np.full(n, sep_at)]
        lengths += [pairs.b_len, one]
        types, specials = [*types, 1, 1], [*specials, 0, 1]
    seg_lengths = np.stack(lengths, axis=1).ravel()
    index = gather_ranges(np.stack(starts, axis=1).ravel(), seg_lengths)
    tokens = extended[index]
    row_word_starts = None
    if word_starts is not None:
        row_word_starts = np.concatenate((word_starts, [False, False]))[index]
    token_types = np.repeat(np.tile(np.array(types, np.int8), n), seg_lengths)
    special = np.repeat(np.tile(np.array(specials, np.int8), n), seg_lengths)
    row_lengths = seg_lengths.reshape(n, len(lengths)).sum(axis=1)
    offsets = np.concatenate(([0], np.cumsum(row_lengths)))
    return Instances(tokens, offsets, token_types, special, pairs.label.copy(), row_word_starts)
