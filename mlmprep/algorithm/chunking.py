"""Pure: the one chunker every objective uses — each document's sentences grouped into
chunks that reach a target length.

Per document a target is drawn (usually `max_num_tokens`, with `short_seq_prob` a random
length in [2, max]); whole sentences accumulate until the chunk holds at least
`min_sentences` and reaches the target or the document ends. The objective decides what
a chunk becomes and where the next chunk starts (NSP gives unused sentences back).
"""

from __future__ import annotations

from bisect import bisect_left
from collections.abc import Callable
from dataclasses import dataclass

import numpy as np


class UniformDraws:
    """Uniform draws taken from a generator in blocks: per-call numpy overhead dominates
    the pair loop otherwise. Deterministic for a given generator state."""

    BLOCK = 4096

    def __init__(self, rng: np.random.Generator) -> None:
        self._rng = rng
        self._pending: list[float] = []  # the block's unused draws, last one first

    def random(self) -> float:
        """A float in [0, 1)."""
        if not self._pending:
            self._pending = self._rng.random(self.BLOCK).tolist()[::-1]
        return self._pending.pop()

    def integer(self, low: int, high: int) -> int:
        """An integer in [low, high)."""
        return low + int(self.random() * (high - low))


def document_target(draws: UniformDraws, max_num_tokens: int, short_seq_prob: float) -> int:
    """A document's target length: usually the maximum, sometimes random in [2, max]."""
    if draws.random() < short_seq_prob:
        return draws.integer(2, max_num_tokens + 1)
    return max_num_tokens


@dataclass(frozen=True)
class ChunkingTotals:
    """What the chunker left out: short documents and sentences after the last chunk."""

    skipped_documents: int
    unused_sentences: int


ChunkHandler = Callable[[int, int, int, int], int]
"""Called as handler(document, first, last, target) for the chunk of sentences first..last
(inclusive, indices into the corpus) of one document; turns it into spans and returns the
sentence where the next chunk starts. Four ints rather than an object: it runs per row."""


def chunk_documents(
    sentence_starts: list[int],
    document_starts: list[int],
    draws: UniformDraws,
    max_num_tokens: int,
    short_seq_prob: float,
    min_sentences: int,
    take: ChunkHandler,
) -> ChunkingTotals:
    """Chunk every document in order, calling `take` for each chunk.

    `sentence_starts` are the token offsets of the sentences (one more than sentences).
    A document with fewer than `min_sentences` sentences is skipped before its target is
    drawn. A chunk closes once it holds `min_sentences` and its tokens reach the target,
    or at the document's last sentence; sentences that never complete a chunk are unused.
    """
    skipped = unused = 0
    for document in range(len(document_starts) - 1):
        first, end = document_starts[document], document_starts[document + 1]
        if end - first < min_sentences:
            skipped += 1
            continue
        target = document_target(draws, max_num_tokens, short_seq_prob)
        chunk_first = first
        while chunk_first + min_sentences <= end:
            # the first sentence whose end reaches the target, else the document's last
            reach = sentence_starts[chunk_first] + target
            closing = bisect_left(sentence_starts, reach, chunk_first + min_sentences, end)
            chunk_first = take(document, chunk_first, closing - 1, target)
        unused += end - chunk_first
    return ChunkingTotals(skipped, unused)
