"""Pure: NSP rows as spans (segment A, segment B, label) cut from a Corpus, after
Devlin et al. 2018; `RowSpans`, the spans every objective returns; NSP balancing.

Segments are contiguous runs of whole sentences, so an instance is four token offsets
into the flat id array of its unit plus a label. All randomness comes from the `rng`
argument.
"""

from __future__ import annotations

from bisect import bisect_left
from dataclasses import dataclass, field

import numpy as np

from mlmprep.algorithm.chunking import UniformDraws, chunk_documents
from mlmprep.algorithm.corpus import Corpus
from mlmprep.core.counts import PairCounts

NSP_TARGET = 0.5


@dataclass
class RowSpans:
    """Rows as spans into Corpus.ids: A = ids[a_start:a_start+a_len], likewise B, and a
    label. An NSP or SOP row has two segments; a packed row (--objective none) has an
    empty B and label 0."""

    a_start: np.ndarray
    a_len: np.ndarray
    b_start: np.ndarray
    b_len: np.ndarray
    label: np.ndarray
    counts: PairCounts = field(default_factory=PairCounts)

    def __len__(self) -> int:
        return len(self.label)

    def select(self, keep: np.ndarray) -> RowSpans:
        """The rows where `keep` is true, in order, with the same counts."""
        return RowSpans(
            self.a_start[keep],
            self.a_len[keep],
            self.b_start[keep],
            self.b_len[keep],
            self.label[keep],
            self.counts,
        )

    @classmethod
    def from_spans(
        cls,
        a_start: list[int],
        a_end: list[int],
        b_start: list[int],
        b_end: list[int],
        labels: list[int],
    ) -> RowSpans:
        """Spans from token offsets collected in Python lists."""
        a0, b0 = np.array(a_start, np.int64), np.array(b_start, np.int64)
        return cls(
            a0,
            np.array(a_end, np.int64) - a0,
            b0,
            np.array(b_end, np.int64) - b0,
            np.array(labels, np.int8),
        )


class NspBalancer:
    """Coin for multi-sentence chunks so that random pairs make 50% of each unit's pass.

    Single-sentence chunks must take a random B. With `f` their recent share (an
    exponential moving average, since documents of one unit differ), a multi-sentence
    chunk takes a random B with probability (0.5 - f) / (1 - f), nudged by the running
    surplus or deficit of random pairs so the unit's total lands on 50%. Once f >= 0.5
    the base probability is 0: multi-sentence chunks keep their true continuation
    unless the running deficit alone asks for a random B.
    """

    SMOOTHING = 0.02
    GAIN = 0.1

    def __init__(self) -> None:
        self.single_share = 0.0
        self.chunks = 0
        self.random = 0

    def probability(self) -> float:
        f = self.single_share
        base = (NSP_TARGET - f) / (1.0 - f) if f < NSP_TARGET else 0.0
        deficit = NSP_TARGET * self.chunks - self.random
        return min(1.0, max(0.0, base + self.GAIN * deficit))

    def record(self, single_sentence: bool, is_random: bool) -> None:
        self.single_share += self.SMOOTHING * (single_sentence - self.single_share)
        self.chunks += 1
        self.random += is_random


def build_pairs(
    corpus: Corpus, max_num_tokens: int, short_seq_prob: float, rng: np.random.Generator
) -> RowSpans:
    """One pass over all documents: chunk, split into A/B, pick NSP negatives, truncate."""
    starts = corpus.sentence_starts.tolist()
    doc_starts = corpus.document_starts.tolist()
    n_docs = corpus.num_documents
    a_start: list[int] = []
    a_end: list[int] = []
    b_start: list[int] = []
    b_end: list[int] = []
    labels: list[int] = []
    single = lone = 0  # one-sentence chunks paired at random; those of a lone document
    balancer = NspBalancer()
    draws = UniformDraws(rng)

    def take(document: int, first: int, last: int, target: int) -> int:
        nonlocal single, lone
        if first == last:
            if n_docs == 1:
                lone += 1
                return last + 1
            single += 1
            split, is_random = last + 1, True
        else:
            split = first + draws.integer(1, last - first + 1)
            is_random = n_docs > 1 and draws.random() < balancer.probability()
        balancer.record(first == last, is_random)
        a0, a1 = starts[first], starts[split]
        a_start.append(a0)
        a_end.append(a1)
        labels.append(is_random)
        if is_random:
            b0, b1 = _random_segment(
                draws, document, n_docs, doc_starts, starts, target - (a1 - a0)
            )
            b_start.append(b0)
            b_end.append(b1)
            return split  # unused sentences start the next chunk
        b_start.append(a1)
        b_end.append(starts[last + 1])
        return last + 1

    chunk_documents(starts, doc_starts, draws, max_num_tokens, short_seq_prob, 1, take)
    pairs = RowSpans.from_spans(a_start, a_end, b_start, b_end, labels)
    pairs.counts = PairCounts(
        chunks=len(pairs),
        single_sentence_chunks=single,
        forced_random=single,
        random_next=int(pairs.label.sum()),
        skipped_single_sentence_no_partner=lone,
    )
    truncate_pairs(pairs, max_num_tokens, rng)
    return pairs


def _random_segment(
    draws: UniformDraws,
    doc: int,
    n_docs: int,
    doc_starts: list,
    starts: list,
    target_b: int,
) -> tuple[int, int]:
    """Token span of sentences from another document, from a random sentence on: at least
    one sentence, then up to the first that makes it reach target_b or the document end."""
    other = draws.integer(0, n_docs - 1)
    if other >= doc:
        other += 1
    end = doc_starts[other + 1]
    first = draws.integer(doc_starts[other], end)
    return starts[first], starts[bisect_left(starts, starts[first] + target_b, first + 1, end)]


def truncate_pairs(pairs: RowSpans, max_num_tokens: int, rng: np.random.Generator) -> None:
    """Cut each pair to max_num_tokens in place, as the reference does token by token.

    The reference drops one token from the longer segment (B on a tie), from the front or
    the back with p=0.5, until the pair fits. The final lengths follow in closed form and
    the number of front drops of each segment is Binomial(drops, 0.5).
    """
    la, lb = pairs.a_len, pairs.b_len
    excess = np.maximum(la + lb - max_num_tokens, 0)
    first_a = np.where(la > lb, np.minimum(excess, la - lb), 0)
    first_b = np.where(lb > la, np.minimum(excess, lb - la), 0)
    rest = excess - first_a - first_b
    drop_a = first_a + rest // 2
    drop_b = first_b + (rest + 1) // 2
    front_a = rng.binomial(drop_a, 0.5)
    front_b = rng.binomial(drop_b, 0.5)
    pairs.a_start += front_a
    pairs.a_len -= drop_a
    pairs.b_start += front_b
    pairs.b_len -= drop_b
