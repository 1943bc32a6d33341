"""Pure: static masked-LM masking of flat token rows (80% [MASK], 10% random, 10% kept)."""

from __future__ import annotations

from dataclasses import dataclass

import numpy as np

MASK_SHARE = 0.8
RANDOM_SHARE = 0.1


@dataclass
class Masked:
    """Masked tokens plus, per row, sorted positions and original ids (flat, with offsets)."""

    tokens: np.ndarray
    positions: np.ndarray
    original_ids: np.ndarray
    offsets: np.ndarray


def num_to_mask(lengths: np.ndarray, masked_lm_prob: float, max_predictions: int) -> np.ndarray:
    """min(max_predictions, max(1, round(len * p))) with Python's round-half-to-even."""
    return np.minimum(max_predictions, np.maximum(1, np.rint(lengths * masked_lm_prob))).astype(
        np.int64
    )


def mask_tokens(
    tokens: np.ndarray,
    offsets: np.ndarray,
    special: np.ndarray,
    masked_lm_prob: float,
    max_predictions: int,
    random_pool: np.ndarray,
    mask_id: int,
    rng: np.random.Generator,
) -> Masked:
    """Choose positions uniformly among non-special tokens of each row and replace them."""
    lengths = np.diff(offsets)
    n_rows = len(lengths)
    candidates = lengths - np.bincount(
        np.repeat(np.arange(n_rows), lengths), weights=special, minlength=n_rows
    ).astype(np.int64)
    wanted = np.minimum(num_to_mask(lengths, masked_lm_prob, max_predictions), candidates)
    width = int(lengths.max()) if n_rows else 0
    keys = np.full((n_rows, width), 2.0, dtype=np.float32)
    row = np.repeat(np.arange(n_rows), lengths)
    column = np.arange(len(tokens)) - offsets[row]
    drawn = rng.random(len(tokens), dtype=np.float32)
    keys[row, column] = np.where(special.astype(bool), np.float32(2.0), drawn)
    k = min(max_predictions, width)
    smallest = np.argpartition(keys, k - 1, axis=1)[:, :k] if k else np.zeros((n_rows, 0), int)
    order = np.argsort(np.take_along_axis(keys, smallest, axis=1), axis=1, kind="stable")
    ranked = np.take_along_axis(smallest, order, axis=1)
    keep = np.arange(k)[None, :] < wanted[:, None]
    chosen_rows = np.broadcast_to(np.arange(n_rows)[:, None], keep.shape)[keep]
    chosen = np.sort(offsets[chosen_rows] + ranked[keep])
    masked = tokens.copy()
    original = tokens[chosen]
    outcome = rng.random(len(chosen))
    to_mask = outcome < MASK_SHARE
    to_random = (outcome >= MASK_SHARE) & (outcome < MASK_SHARE + RANDOM_SHARE)
    masked[chosen[to_mask]] = mask_id
    masked[chosen[to_random]] = random_pool[
        rng.integers(len(random_pool), size=int(to_random.sum()))
    ]
    row_of_chosen = np.searchsorted(offsets, chosen, side="right") - 1
    mask_offsets = np.concatenate(([0], np.cumsum(np.bincount(row_of_chosen, minlength=n_rows))))
    return Masked(masked, chosen - offsets[row_of_chosen], original, mask_offsets)
