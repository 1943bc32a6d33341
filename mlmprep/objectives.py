"""Pure: spans for the other objectives — sentence order (ALBERT) and single segments.

`make_spans` dispatches on the objective; NSP lives in `pairs.py`.
"""

from __future__ import annotations

import numpy as np

from .pairs import Corpus, Pairs, UniformDraws, build_pairs, document_target, truncate_pairs

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
    lengths = np.diff(corpus.sentence_starts).tolist()
    starts = corpus.sentence_starts.tolist()
    doc_starts = corpus.document_starts.tolist()
    spans: tuple[list, ...] = ([], [], [], [], [])
    skipped_documents = unpaired = 0
    draws = UniformDraws(rng)
    for d in range(corpus.num_documents):
        first, end = doc_starts[d], doc_starts[d + 1]
        if end - first < 2:
            skipped_documents += 1
            continue
        target = document_target(draws, max_num_tokens, short_seq_prob)
        chunk_first, chunk_tokens = first, 0
        for i in range(first, end):
            chunk_tokens += lengths[i]
            n_chunk = i - chunk_first + 1
            if n_chunk >= 2 and (i == end - 1 or chunk_tokens >= target):
                split = starts[chunk_first + draws.integer(1, n_chunk)]
                a, b = (starts[chunk_first], split), (split, starts[i + 1])
                swapped = draws.random() < SWAP_PROBABILITY
                if swapped:
                    a, b = b, a
                for values, value in zip(spans, (a[0], a[1], b[0], b[1], int(swapped))):
                    values.append(value)
                chunk_first, chunk_tokens = i + 1, 0
        unpaired += end - chunk_first
    pairs = Pairs.from_spans(*spans)
    truncate_pairs(pairs, max_num_tokens, rng)
    pairs.counts = {
        "chunks": len(pairs),
        "swapped": int(pairs.label.sum()),
        "skipped_single_sentence_documents": skipped_documents,
        "unpaired_sentences": unpaired,
    }
    return pairs


def build_single_segments(
    corpus: Corpus, max_num_tokens: int, short_seq_prob: float, rng: np.random.Generator
) -> Pairs:
    """MLM only (RoBERTa-style): whole sentences of one document fill `[CLS] A [SEP]` up to
    the target length; B is empty and there is no label."""
    lengths = np.diff(corpus.sentence_starts).tolist()
    starts = corpus.sentence_starts.tolist()
    doc_starts = corpus.document_starts.tolist()
    a_start: list[int] = []
    a_end: list[int] = []
    draws = UniformDraws(rng)
    for d in range(corpus.num_documents):
        first, end = doc_starts[d], doc_starts[d + 1]
        target = document_target(draws, max_num_tokens, short_seq_prob)
        chunk_first, chunk_tokens = first, 0
        for i in range(first, end):
            chunk_tokens += lengths[i]
            if i == end - 1 or chunk_tokens >= target:
                a_start.append(starts[chunk_first])
                a_end.append(starts[i + 1])
                chunk_first, chunk_tokens = i + 1, 0
    pairs = Pairs.from_spans(a_start, a_end, a_end, a_end, [0] * len(a_start))
    truncate_pairs(pairs, max_num_tokens, rng)
    pairs.counts = {"chunks": len(pairs)}
    return pairs
