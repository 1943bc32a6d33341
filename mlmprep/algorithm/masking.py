"""Pure: static masked-LM masking of flat token rows (80% [MASK], 10% random, 10% kept)."""

from __future__ import annotations

from dataclasses import dataclass

import numpy as np

MASK_SHARE = 0.8
RANDOM_SHARE = 0.1
BLOCK_ROWS = 4096
BLOCK_TOKENS = BLOCK_ROWS * 512  # a block's padded 2-D arrays stay this size for long rows
NEVER = 2**32 - 1  # the key of positions that must not be chosen (special tokens, padding)


@dataclass(frozen=True)
class MaskingRule:
    """How many positions a row gets and what replaces them: round(len x
    `masked_lm_prob`), at least 1, at most `max_predictions`; 80% `mask_id`, 10% an id
    drawn from `random_pool`, 10% kept."""

    masked_lm_prob: float
    max_predictions: int
    random_pool: np.ndarray
    mask_id: int

    def count(self, lengths: np.ndarray) -> np.ndarray:
        """Positions to mask in rows of these lengths (before capping by content)."""
        return num_to_mask(lengths, self.masked_lm_prob, self.max_predictions)


@dataclass
class Masked:
    """Masked tokens plus, per row, sorted positions and original ids (flat, with offsets)."""

    tokens: np.ndarray
    positions: np.ndarray
    original_ids: np.ndarray
    offsets: np.ndarray


def block_rows(offsets: np.ndarray) -> int:
    """Rows per block: BLOCK_ROWS for rows up to 512 tokens, fewer for longer rows, so
    masking 8,192-token rows takes no more memory than 512-token ones."""
    longest = int(np.diff(offsets).max()) if len(offsets) > 1 else 1
    return max(1, min(BLOCK_ROWS, BLOCK_TOKENS // max(longest, 1)))


def num_to_mask(lengths: np.ndarray, masked_lm_prob: float, max_predictions: int) -> np.ndarray:
    """min(max_predictions, max(1, round(len * p))) with Python's round-half-to-even."""
    return np.minimum(max_predictions, np.maximum(1, np.rint(lengths * masked_lm_prob))).astype(
        np.int64
    )


def mask_tokens(
    tokens: np.ndarray,
    offsets: np.ndarray,
    special_mask: np.ndarray,
    rule: MaskingRule,
    rng: np.random.Generator,
) -> Masked:
    """Choose positions uniformly among non-special tokens of each row and replace them."""
    lengths = np.diff(offsets)
    n_rows = len(lengths)
    row_of_token = np.repeat(np.arange(n_rows, dtype=np.int32), lengths)
    candidates = lengths - np.bincount(row_of_token[special_mask.astype(bool)], minlength=n_rows)
    del row_of_token
    wanted = np.minimum(rule.count(lengths), candidates)
    step = block_rows(offsets)
    chosen = np.concatenate(
        [np.zeros(0, np.int64)]
        + [
            _choose_block(offsets, special_mask, wanted, first, step, rule.max_predictions, rng)
            for first in range(0, n_rows, step)
        ]
    )
    return replace_chosen(tokens, offsets, chosen, rng.random(len(chosen)), rule, rng)


def replace_chosen(
    tokens: np.ndarray,
    offsets: np.ndarray,
    positions: np.ndarray,
    outcome: np.ndarray,
    rule: MaskingRule,
    rng: np.random.Generator,
) -> Masked:
    """Apply 80/10/10 to the chosen flat `positions` (sorted) given a uniform `outcome`
    per position: [MASK] below 0.8, a random id from the pool below 0.9, else kept."""
    masked = tokens.copy()
    masked[positions[outcome < MASK_SHARE]] = rule.mask_id
    to_random = positions[(outcome >= MASK_SHARE) & (outcome < MASK_SHARE + RANDOM_SHARE)]
    pool = rule.random_pool
    masked[to_random] = pool[rng.integers(len(pool), size=len(to_random))]
    row = np.searchsorted(offsets, positions, side="right") - 1
    counts = np.bincount(row, minlength=len(offsets) - 1)
    return Masked(
        masked,
        positions - offsets[row],
        tokens[positions],
        np.concatenate(([0], np.cumsum(counts))),
    )


def _choose_block(
    offsets: np.ndarray,
    special_mask: np.ndarray,
    wanted: np.ndarray,
    first: int,
    step: int,
    max_predictions: int,
    rng: np.random.Generator,
) -> np.ndarray:
    """Sorted flat positions chosen in rows [first, first + step).

    Each non-special token gets a uniform integer key below 2**32 - 1; a row keeps its
    `wanted` smallest keys, a uniform sample without replacement. The key's low 32 bits
    hold the column, so no two keys tie and the choice is exact on every CPU. Special
    tokens and padding get the top key. Rows are laid out padded in a 2-D array so one
    `argpartition` serves them all; blocks of rows keep that array small.
    """
    last = min(first + step, len(offsets) - 1)
    base = offsets[first]
    local = offsets[first : last + 1] - base
    lengths = np.diff(local)
    n_rows, width = last - first, int(lengths.max())
    drawn = rng.integers(0, NEVER, size=local[-1], dtype=np.uint64)
    drawn[special_mask[base : base + local[-1]].astype(bool)] = NEVER
    keys = np.full((n_rows, width), NEVER, dtype=np.uint64)
    keys[np.arange(width) < lengths[:, None]] = drawn  # row-major: the flat token order
    keys <<= np.uint64(32)
    keys |= np.arange(width, dtype=np.uint64)
    k = min(max_predictions, width)
    # keys are unique, so the k smallest in order are the same however they are found;
    # their low 32 bits are the columns
    smallest = np.sort(np.partition(keys, k - 1, axis=1)[:, :k], axis=1)
    ranked = (smallest & np.uint64(0xFFFFFFFF)).astype(np.int64)
    keep = np.arange(k)[None, :] < wanted[first:last, None]
    # rows are disjoint and in order: sorting the kept columns within each row (the rest
    # pushed to the end) sorts the block
    columns = np.sort(np.where(keep, ranked, width), axis=1)
    return (offsets[first:last, None] + columns)[keep]
