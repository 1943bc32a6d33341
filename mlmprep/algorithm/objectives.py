"""Pure: spans for the other objectives — sentence order (ALBERT) and FULL-SENTENCES
packing for MLM only (RoBERTa).

`make_spans` dispatches between NSP (in `pairs.py`) and SOP, which share the chunker of
`chunking.py`; `pack_sentences` fills rows for "none".
"""

from __future__ import annotations

from dataclasses import dataclass

import numpy as np

from mlmprep.algorithm.chunking import UniformDraws, chunk_documents
from mlmprep.algorithm.corpus import Corpus
from mlmprep.algorithm.pairs import RowSpans, build_pairs, truncate_pairs
from mlmprep.core.counts import PairCounts

SWAP_PROBABILITY = 0.5


def make_spans(
    objective: str,
    corpus: Corpus,
    max_num_tokens: int,
    short_seq_prob: float,
    rng: np.random.Generator,
) -> RowSpans:
    """Pair spans of one pass for "nsp" or "sop" ("none" packs rows: `pack_sentences`)."""
    builder = {"nsp": build_pairs, "sop": build_sop_pairs}
    return builder[objective](corpus, max_num_tokens, short_seq_prob, rng)


def build_sop_pairs(
    corpus: Corpus, max_num_tokens: int, short_seq_prob: float, rng: np.random.Generator
) -> RowSpans:
    """Sentence Order Prediction: B is always the true continuation of A; the two are
    swapped with p=0.5 (label 1). A chunk closes once it reaches the target length and
    holds at least two sentences; sentences beyond `max_num_tokens` start the next chunk
    rather than being truncated. One-sentence documents are skipped and counted."""
    starts = corpus.sentence_starts.tolist()
    draws = UniformDraws(rng)
    spans: tuple[list[int], ...] = ([], [], [], [], [])

    def take(document: int, first: int, last: int, target: int) -> int:
        # sentences past the row's budget go back to the next chunk instead of being
        # truncated away (two sentences stay together whatever their length)
        while last > first + 1 and starts[last + 1] - starts[first] > max_num_tokens:
            last -= 1
        split = starts[first + draws.integer(1, last - first + 1)]
        a, b = (starts[first], split), (split, starts[last + 1])
        swapped = draws.random() < SWAP_PROBABILITY
        if swapped:
            a, b = b, a
        for values, value in zip(spans, (*a, *b, int(swapped))):
            values.append(value)
        return last + 1

    totals = chunk_documents(
        starts,
        corpus.document_starts.tolist(),
        draws,
        max_num_tokens,
        short_seq_prob,
        2,
        take,
    )
    pairs = RowSpans.from_spans(*spans)
    truncate_pairs(pairs, max_num_tokens, rng)
    pairs.counts = PairCounts(
        chunks=len(pairs),
        swapped=int(pairs.label.sum()),
        skipped_single_sentence_documents=totals.skipped_documents,
        unpaired_sentences=totals.unused_sentences,
    )
    return pairs


@dataclass(frozen=True)
class PackedRows:
    """FULL-SENTENCES rows: spans into `ids`, the corpus with a separator after each
    document (and `word_starts` to match)."""

    ids: np.ndarray
    word_starts: np.ndarray | None
    pairs: RowSpans
    separators: np.ndarray  # per row: separators between documents inside it


def pack_sentences(
    corpus: Corpus, budget: int, cross_documents: bool, separator: int
) -> PackedRows:
    """MLM only, RoBERTa's FULL-SENTENCES: each row is filled with whole sentences, in
    order, up to `budget` tokens; a row that crosses into the next document holds one
    separator between them. With `cross_documents` false (DOC-SENTENCES) a row ends
    with its document. Nothing is truncated or left out: sentences longer than a row
    were already cut by `make_corpus`. Deterministic; no random draws.
    """
    n_docs = corpus.num_documents
    doc_ends = corpus.sentence_starts[corpus.document_starts[1:]]
    ids = np.insert(corpus.ids, doc_ends, separator)  # ids[doc_end + d] is the separator
    word_starts = corpus.word_starts
    if word_starts is not None:
        word_starts = np.insert(word_starts, doc_ends, False)
    starts = corpus.sentence_starts.tolist()
    doc_starts = corpus.document_starts.tolist()
    row_starts: list[int] = []
    row_ends: list[int] = []
    row_separators: list[int] = []
    used = 0
    for document in range(n_docs):
        for sentence in range(doc_starts[document], doc_starts[document + 1]):
            begin, length = starts[sentence] + document, starts[sentence + 1] - starts[sentence]
            joins = used and sentence == doc_starts[document]  # a separator comes first
            if used and used + length + joins <= budget:
                row_ends[-1], used = begin + length, used + length + joins
                row_separators[-1] += joins
                continue
            row_starts.append(begin)
            row_ends.append(begin + length)
            row_separators.append(0)
            used = length
        if not cross_documents:
            used = 0
    pairs = RowSpans.from_spans(row_starts, row_ends, row_ends, row_ends, [0] * len(row_starts))
    pairs.counts = PairCounts(chunks=len(pairs))
    return PackedRows(ids, word_starts, pairs, np.array(row_separators, np.int64))
