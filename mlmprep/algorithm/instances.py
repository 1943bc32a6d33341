"""Pure: pair spans -> flat token rows laid out by the tokenizer's template (BERT's
`[CLS] A [SEP] B [SEP]`, RoBERTa's `<s> A </s></s> B </s>`), with token types."""

from __future__ import annotations

from dataclasses import dataclass

import numpy as np

from mlmprep.algorithm.pairs import RowSpans
from mlmprep.text.special_tokens import TemplatePiece


@dataclass
class Instances:
    """Rows stored flat: row i is tokens[offsets[i]:offsets[i+1]]."""

    tokens: np.ndarray
    offsets: np.ndarray
    token_types: np.ndarray
    special_mask: np.ndarray
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
    pairs: RowSpans,
    template: tuple[TemplatePiece, ...],
    special_ids: dict[str, int],
    word_starts: np.ndarray | None = None,
) -> Instances:
    """Build every row at once from a template, e.g. `[CLS] A [SEP] B [SEP]` (BERT) or
    `<s> A </s></s> B </s>` (RoBERTa); `special_ids` maps the template's tokens to ids."""
    n = len(pairs)
    tokens_used = sorted({p.token for p in template if p.kind == "special"})
    extended = np.concatenate((ids, np.array([special_ids[t] for t in tokens_used], ids.dtype)))
    at = {token: len(ids) + i for i, token in enumerate(tokens_used)}
    one = np.ones(n, np.int64)
    segments = {"A": (pairs.a_start, pairs.a_len), "B": (pairs.b_start, pairs.b_len)}
    starts, lengths = [], []
    for piece in template:
        start, length = (
            (np.full(n, at[piece.token]), one) if piece.kind == "special" else segments[piece.kind]
        )
        starts.append(start)
        lengths.append(length)
    types = [piece.type_id for piece in template]
    specials = [int(piece.kind == "special") for piece in template]
    seg_lengths = np.stack(lengths, axis=1).ravel()
    index = gather_ranges(np.stack(starts, axis=1).ravel(), seg_lengths)
    tokens = extended[index]
    row_word_starts = None
    if word_starts is not None:
        row_word_starts = np.concatenate((word_starts, np.zeros(len(tokens_used), bool)))[index]
    token_types = np.repeat(np.tile(np.array(types, np.int8), n), seg_lengths)
    special_mask = np.repeat(np.tile(np.array(specials, np.int8), n), seg_lengths)
    row_lengths = seg_lengths.reshape(n, len(lengths)).sum(axis=1)
    offsets = np.concatenate(([0], np.cumsum(row_lengths)))
    return Instances(
        tokens, offsets, token_types, special_mask, pairs.label.copy(), row_word_starts
    )
