"""Pure: spans for the other objectives — sentence order (ALBERT) and single segments.

`make_spans` dispatches on the objective; NSP lives in `pairs.py`. All three share the
chunker of `chunking.py`.
"""

from __future__ import annotations

import numpy as np

from .chunking import Chunk, UniformDraws, chunk_documents
from .counts import PairCounts
from .pairs import Corpus, Pairs, build_pairs, truncate_pairs

SWAP_PROBABILITY = 0.5


def make_spans(
    objective: str,
    corpus: Corpus,
    max_num_tokens: int,
    short_seq_prob: float,
    rng: np.random.Generator,
) -> Pairs:
    """Spans of one pass for `objective` (B is empty for "none")."""
    builder = {"nsp": build_pairs, "sop": build_sop_pairs, "none": build_single_segments}
    return builder[objective](corpus, max_num_tokens, short_seq_prob, rng)


def build_sop_pairs(
    corpus: Corpus, max_num_tokens: int, short_seq_prob: float, rng: np.random.Generator
) -> Pairs:
    """Sentence Order Prediction: B is always the true continuation of A; the two are
    swapped with p=0.5 (label 1). A chunk closes once it reaches the target length and
    holds at least two sentences; one-sentence documents are skipped and counted."""
    starts = corpus.sentence_starts.tolist()
    draws = UniformDraws(rng)
    spans: tuple[list[int], ...] = ([], [], [], [], [])

    def take(chunk: Chunk) -> int:
        split = starts[chunk.first + draws.integer(1, chunk.num_sentences)]
        a, b = (starts[chunk.first], split), (split, starts[chunk.last + 1])
        swapped = draws.random() < SWAP_PROBABILITY
        if swapped:
            a, b = b, a
        for values, value in zip(spans, (*a, *b, int(swapped))):
            values.append(value)
        return chunk.last + 1

    totals = chunk_documents(
        np.diff(corpus.sentence_starts).tolist(),
        corpus.document_starts.tolist(),
        draws,
        max_num_tokens,
        short_seq_prob,
        2,
        take,
    )
    pairs = Pairs.from_spans(*spans)
    truncate_pairs(pairs, max_num_tokens, rng)
    pairs.counts = PairCounts(
        chunks=len(pairs),
        swapped=int(pairs.label.sum()),
        skipped_single_sentence_documents=totals.skipped_documents,
        unpaired_sentences=totals.unused_sentences,
    )
    return pairs


def build_single_segments(
    corpus: Corpus, max_num_tokens: int, short_seq_prob: float, rng: np.random.Generator
) -> Pairs:
    """MLM only (RoBERTa-style): whole sentences of one document fill `[CLS] A [SEP]` up to
    the target length; B is empty and there is no label."""
    starts = corpus.sentence_starts.tolist()
    a_start: list[int] = []
    a_end: list[int] = []

    def take(chunk: Chunk) -> int:
        a_start.append(starts[chunk.first])
        a_end.append(starts[chunk.last + 1])
        return chunk.last + 1

    chunk_documents(
        np.diff(corpus.sentence_starts).tolist(),
        corpus.document_starts.tolist(),
        UniformDraws(rng),
        max_num_tokens,
        short_seq_prob,
        1,
        take,
    )
    pairs = Pairs.from_spans(a_start, a_end, a_end, a_end, [0] * len(a_start))
    truncate_pairs(pairs, max_num_tokens, rng)
    pairs.counts = PairCounts(chunks=len(pairs))
    return pairs
