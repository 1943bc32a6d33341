"""Pure: whole-word masking. A word is a word-start token and the continuations after it
(by the tokenizer family's rule: WordPiece's '##' pieces continue a word, byte-level BPE
and SentencePiece tokens without 'Ġ' / '▁' do; or by a segmenter's word starts); words are
chosen uniformly until the token budget is met (a word that would overflow it is
skipped), and ONE 80/10/10 draw applies to all sub-tokens of a word (the reference
draws per sub-token)."""

from __future__ import annotations

import numpy as np

from mlmprep.algorithm.instances import gather_ranges
from mlmprep.algorithm.masking import Masked, MaskingRule, block_rows, replace_chosen


def word_starts(
    tokens: np.ndarray, special_mask: np.ndarray, continuation: np.ndarray
) -> np.ndarray:
    """True at each token that starts a word: a non-special token that is not a
    `continuation` (by id) of the non-special token before it."""
    content = ~special_mask.astype(bool)
    after_content = np.concatenate(([False], content[:-1]))
    return content & ~(continuation[tokens] & after_content)


def segmented_word_starts(boundaries: np.ndarray, special_mask: np.ndarray) -> np.ndarray:
    """Word starts from a segmenter's boundaries (one flag per token), made consistent
    with the rows: never on special tokens, always right after one (truncation may have
    cut a word's front)."""
    content = ~special_mask.astype(bool)
    after_content = np.concatenate(([False], content[:-1]))
    return content & (boundaries.astype(bool) | ~after_content)


def word_ids(
    tokens: np.ndarray, offsets: np.ndarray, starts: np.ndarray, special_mask: np.ndarray
) -> np.ndarray:
    """Index of the word of each token within its row; -1 for special tokens."""
    running = np.cumsum(starts)
    row = np.repeat(np.arange(len(offsets) - 1), np.diff(offsets))
    before_row = np.concatenate(([0], running))[offsets[:-1]]
    ids = running - 1 - before_row[row]
    return np.where(special_mask.astype(bool), -1, ids).astype(np.int32)


def mask_whole_words(
    tokens: np.ndarray,
    offsets: np.ndarray,
    special_mask: np.ndarray,
    starts: np.ndarray,
    rule: MaskingRule,
    rng: np.random.Generator,
) -> Masked:
    """Static whole-word masking of flat rows; `starts` flags the first token of each word
    (from `word_starts` or `segmented_word_starts`)."""
    n_rows = len(offsets) - 1
    lengths = np.diff(offsets)
    budget = rule.count(lengths)
    first = np.flatnonzero(starts)
    content_word = np.cumsum(starts)[~special_mask.astype(bool)] - 1
    length = np.bincount(content_word, minlength=len(first))
    row = np.searchsorted(offsets, first, side="right") - 1
    step = block_rows(offsets)
    chosen = np.concatenate(
        [np.zeros(0, np.int64)]
        + [
            _choose_words(row, length, budget, lo, min(lo + step, n_rows), rng)
            for lo in range(0, n_rows, step)
        ]
    )
    chosen_length = length[chosen]
    positions = gather_ranges(first[chosen], chosen_length).astype(np.int64)
    outcome = np.repeat(rng.random(len(chosen)), chosen_length)  # one draw per word
    return replace_chosen(tokens, offsets, positions, outcome, rule, rng)


def _choose_words(
    row: np.ndarray,
    length: np.ndarray,
    budget: np.ndarray,
    lo: int,
    hi: int,
    rng: np.random.Generator,
) -> np.ndarray:
    """Sorted indices of the words chosen in rows [lo, hi).

    Words of a row are visited in a uniformly random order; a word is taken if it still
    fits the row's budget. Rows are laid out padded in 2-D so each step of that visit is
    one numpy operation over all rows of the block.
    """
    words = np.flatnonzero((row >= lo) & (row < hi))
    if len(words) == 0:
        return words
    local_row = row[words] - lo
    per_row = np.bincount(local_row, minlength=hi - lo)
    column = np.arange(len(words)) - np.concatenate(([0], np.cumsum(per_row)))[local_row]
    width = int(per_row.max())
    keys = np.full((hi - lo, width), 2.0, dtype=np.float32)
    keys[local_row, column] = rng.random(len(words), dtype=np.float32)
    order = np.argsort(keys, axis=1, kind="stable")
    lengths = np.zeros((hi - lo, width), np.int64)
    lengths[local_row, column] = length[words]
    lengths = np.take_along_axis(lengths, order, axis=1)
    taken = np.zeros((hi - lo, width), bool)
    count = np.zeros(hi - lo, np.int64)
    room = budget[lo:hi]
    for k in range(width):
        fits = (lengths[:, k] > 0) & (count + lengths[:, k] <= room)
        taken[:, k] = fits
        count += np.where(fits, lengths[:, k], 0)
    index = np.full((hi - lo, width), -1, np.int64)
    index[local_row, column] = words
    return np.sort(np.take_along_axis(index, order, axis=1)[taken])
