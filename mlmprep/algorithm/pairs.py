"""Pure: tokenized documents -> (segment A, segment B, NSP label) spans (Devlin et al. 2018).

Segments are contiguous runs of whole sentences, so an instance is four token offsets
into the flat id array of its unit plus a label. All randomness comes from the `rng`
argument.
"""

from __future__ import annotations

from bisect import bisect_left
from dataclasses import dataclass, field

import numpy as np

from mlmprep.algorithm.chunking import UniformDraws, chunk_documents
from mlmprep.core.counts import PairCounts

NSP_TARGET = 0.5


@dataclass(frozen=True)
class Corpus:
    """Token ids of many documents, flat: ids, sentence offsets, document offsets (in sentences)."""

    ids: np.ndarray
    sentence_starts: np.ndarray
    document_starts: np.ndarray
    word_starts: np.ndarray | None = None

    @property
    def num_documents(self) -> int:
        return len(self.document_starts) - 1

    def document_of_token(self, token_index: np.ndarray) -> np.ndarray:
        """Document index of each token offset (for tests and checks)."""
        sentence = np.searchsorted(self.sentence_starts, token_index, side="right") - 1
        return np.searchsorted(self.document_starts, sentence, side="right") - 1


@dataclass(frozen=True)
class EncodedDocument:
    """One tokenized document: all its ids, the token count of each sentence and, for
    segmenter-based whole words, a word-start flag per token."""

    ids: np.ndarray
    sentence_lengths: np.ndarray
    word_starts: np.ndarray | None = None


def make_corpus(documents: list[EncodedDocument], max_num_tokens: int) -> tuple[Corpus, int]:
    """Flatten documents into a Corpus.

    Empty sentences are dropped; a sentence longer than `max_num_tokens` is cut into
    pieces of that length. Returns the corpus and the number of sentences cut.
    Documents must have at least one token.
    """
    ids = np.concatenate([d.ids for d in documents]) if documents else np.zeros(0, np.int32)
    lengths = [d.sentence_lengths[d.sentence_lengths > 0] for d in documents]
    counts = np.array([len(x) for x in lengths], dtype=np.int64)
    flat = np.concatenate(lengths) if lengths else np.zeros(0, np.int64)
    pieces = np.maximum(1, -(-flat // max_num_tokens))
    cut = int(np.count_nonzero(pieces > 1))
    if cut:
        owner = np.repeat(np.arange(len(flat)), pieces)
        first = np.concatenate(([0], np.cumsum(pieces)[:-1]))
        piece_index = np.arange(len(owner)) - first[owner]
        remaining = flat[owner] - piece_index * max_num_tokens
        flat = np.minimum(remaining, max_num_tokens)
        doc_of_sentence = np.repeat(np.arange(len(counts)), counts)
        counts = np.bincount(doc_of_sentence[owner], minlength=len(counts)).astype(np.int64)
    sentence_starts = np.concatenate(([0], np.cumsum(flat))).astype(np.int64)
    document_starts = np.concatenate(([0], np.cumsum(counts))).astype(np.int64)
    word_starts = None
    if documents and documents[0].word_starts is not None:
        word_starts = np.concatenate([d.word_starts for d in documents])
    return Corpus(ids, sentence_starts, document_starts, word_starts), cut


@dataclass
class Pairs:
    """Instances as spans into Corpus.ids: A = ids[a_start:a_start+a_len], likewise B."""

    a_start: np.ndarray
    a_len: np.ndarray
    b_start: np.ndarray
    b_len: np.ndarray
    label: np.ndarray
    counts: PairCounts = field(default_factory=PairCounts)

    def __len__(self) -> int:
        return len(self.label)

    @classmethod
    def from_spans(
        cls,
        a_start: list[int],
        a_end: list[int],
        b_start: list[int],
        b_end: list[int],
        labels: list[int],
    ) -> Pairs:
        """Pairs from token offsets collected in Python lists."""
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
) -> Pairs:
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
    pairs = Pairs.from_spans(a_start, a_end, b_start, b_end, labels)
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


def truncate_pairs(pairs: Pairs, max_num_tokens: int, rng: np.random.Generator) -> None:
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
