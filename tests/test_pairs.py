import numpy as np
import pytest
from hypothesis import given, settings
from hypothesis import strategies as st

from mlmprep.algorithm.corpus import Corpus, EncodedDocument, make_corpus
from mlmprep.algorithm.pairs import NspBalancer, RowSpans, build_pairs, truncate_pairs


def document_of_token(corpus: Corpus, token_index: np.ndarray) -> np.ndarray:
    """Document index of each token offset, from the corpus's two offset arrays."""
    sentence = np.searchsorted(corpus.sentence_starts, token_index, side="right") - 1
    return np.searchsorted(corpus.document_starts, sentence, side="right") - 1


def corpus_of(docs: list[list[int]], max_num_tokens: int = 1000) -> Corpus:
    """docs[d][s] = token count of sentence s of document d; token ids encode (d, s, k)."""
    documents = []
    for d, lengths in enumerate(docs):
        ids = [d * 10_000 + s * 100 + k for s, n in enumerate(lengths) for k in range(n)]
        documents.append(EncodedDocument(np.array(ids, np.int32), np.array(lengths, np.int64)))
    return make_corpus(documents, max_num_tokens)[0]


def segments(corpus: Corpus, pairs: RowSpans, i: int) -> tuple[list[int], list[int]]:
    a = corpus.ids[pairs.a_start[i] : pairs.a_start[i] + pairs.a_len[i]].tolist()
    b = corpus.ids[pairs.b_start[i] : pairs.b_start[i] + pairs.b_len[i]].tolist()
    return a, b


def test_make_corpus_cuts_long_sentences_and_drops_empty_ones():
    documents = [
        EncodedDocument(np.arange(7, dtype=np.int32), np.array([0, 7], np.int64)),
        EncodedDocument(np.arange(2, dtype=np.int32), np.array([2], np.int64)),
    ]
    corpus, cut = make_corpus(documents, max_num_tokens=3)
    assert cut == 1
    assert corpus.sentence_starts.tolist() == [0, 3, 6, 7, 9]
    assert corpus.document_starts.tolist() == [0, 3, 4]


def test_single_document_pairs_are_true_continuations_exactly():
    # One document of three 2-token sentences, target never reached: one chunk of 3 sentences.
    corpus = corpus_of([[2, 2, 2]])
    pairs = build_pairs(
        corpus, max_num_tokens=100, short_seq_prob=0.0, rng=np.random.default_rng(0)
    )
    assert len(pairs) == 1
    a, b = segments(corpus, pairs, 0)
    assert pairs.label.tolist() == [0]  # no other document: B stays the true continuation
    assert a + b == corpus.ids.tolist()
    assert len(a) in (2, 4)


def sentence_of(token_id: int) -> tuple[int, int]:
    """(document, sentence) of a token id made by `corpus_of`."""
    return token_id // 10_000, token_id // 100 % 100


def test_chunks_close_at_target_length():
    # Sentences of 3 tokens, target 5: a chunk closes at its second sentence (6 >= 5), so
    # a true pair is exactly sentence s as A and sentence s+1 as B, cut by one token (the
    # reference cuts B on a tie) from B's front or back.
    corpus = corpus_of([[3] * 8, [3] * 8])
    pairs = build_pairs(corpus, max_num_tokens=5, short_seq_prob=0.0, rng=np.random.default_rng(1))
    true_pairs = np.flatnonzero(pairs.label == 0)
    assert len(true_pairs) > 0
    for i in true_pairs:
        a, b = segments(corpus, pairs, i)
        document, sentence = sentence_of(a[0])
        first = document * 10_000 + sentence * 100
        assert a == [first, first + 1, first + 2]
        following = [first + 100, first + 101, first + 102]
        assert b in (following[:2], following[1:])


@settings(max_examples=60, deadline=None)
@given(
    docs=st.lists(st.lists(st.integers(1, 40), min_size=1, max_size=12), min_size=2, max_size=8),
    max_num_tokens=st.integers(5, 60),
    short=st.floats(0, 1),
    seed=st.integers(0, 2**32 - 1),
)
def test_pair_invariants(docs, max_num_tokens, short, seed):
    corpus = corpus_of(docs, max_num_tokens)
    pairs = build_pairs(corpus, max_num_tokens, short, np.random.default_rng(seed))
    assert np.all(pairs.a_len >= 1) and np.all(pairs.b_len >= 1)
    assert np.all(pairs.a_len + pairs.b_len <= max_num_tokens)
    doc_a = document_of_token(corpus, pairs.a_start)
    doc_b = document_of_token(corpus, pairs.b_start)
    doc_b_end = document_of_token(corpus, pairs.b_start + pairs.b_len - 1)
    assert np.array_equal(doc_b, doc_b_end), "a segment never spans two documents"
    random = pairs.label == 1
    assert np.all(doc_a[random] != doc_b[random]), "random B comes from another document"
    assert np.all(doc_a[~random] == doc_b[~random])
    a_end = pairs.a_start + pairs.a_len
    b_end = pairs.b_start + pairs.b_len
    assert np.all(pairs.b_start[~random] >= a_end[~random])
    # an untruncated true pair is whole sentences, B starting where A ends
    whole = ~random & (pairs.a_len + pairs.b_len < max_num_tokens)
    starts = set(corpus.sentence_starts.tolist())
    for i in np.flatnonzero(whole):
        assert pairs.b_start[i] == a_end[i]
        assert pairs.a_start[i] in starts and b_end[i] in starts
    # every one-sentence chunk had to take a random B (there are >= 2 documents)
    assert pairs.counts.forced_random == pairs.counts.single_sentence_chunks
    assert pairs.counts.chunks == len(pairs)


def reference_truncation(la: int, lb: int, max_num_tokens: int) -> tuple[int, int]:
    """Google's truncate_seq_pair, token by token (lengths only)."""
    while la + lb > max_num_tokens:
        if la > lb:
            la -= 1
        else:
            lb -= 1
    return la, lb


@given(st.integers(1, 300), st.integers(1, 300), st.integers(2, 200), st.integers(0, 1000))
def test_truncation_matches_reference_lengths(la, lb, max_num_tokens, seed):
    pairs = RowSpans(
        np.array([1000], np.int64),
        np.array([la], np.int64),
        np.array([5000], np.int64),
        np.array([lb], np.int64),
        np.array([0], np.int8),
    )
    truncate_pairs(pairs, max_num_tokens, np.random.default_rng(seed))
    assert (pairs.a_len[0], pairs.b_len[0]) == reference_truncation(la, lb, max_num_tokens)
    # the kept window lies inside the original segment
    assert pairs.a_start[0] >= 1000 and pairs.a_start[0] + pairs.a_len[0] <= 1000 + la
    assert pairs.b_start[0] >= 5000 and pairs.b_start[0] + pairs.b_len[0] <= 5000 + lb


def test_truncation_drops_front_and_back_evenly():
    n = 20_000
    pairs = RowSpans(
        np.zeros(n, np.int64),
        np.full(n, 100, np.int64),
        np.zeros(n, np.int64),
        np.full(n, 10, np.int64),
        np.zeros(n, np.int8),
    )
    truncate_pairs(pairs, 50, np.random.default_rng(3))
    assert np.all(pairs.a_len == 40)
    assert abs(pairs.a_start.mean() - 30) < 0.2  # 60 drops, half from the front


def balance_stream(single_share: float, chunks: int, seed: int) -> tuple[float, int]:
    """Feed a balancer chunks of which `single_share` are single-sentence (those must take
    a random B); return the share of random pairs, and how many multi-sentence chunks
    took one once its moving average had settled (after 300 chunks)."""
    rng = np.random.default_rng(seed)
    balancer = NspBalancer()
    random_pairs = random_multi = 0
    for chunk in range(chunks):
        single = rng.random() < single_share
        is_random = single or rng.random() < balancer.probability()
        balancer.record(single, is_random)
        random_pairs += is_random
        random_multi += is_random and not single and chunk >= 300
    return random_pairs / chunks, random_multi


@pytest.mark.parametrize("single_share", [0.0, 0.1, 0.3, 0.45])
def test_the_balancer_lands_on_half_random_pairs(single_share):
    share, _ = balance_stream(single_share, 5_000, seed=int(single_share * 100))
    assert abs(share - 0.5) < 0.01


def test_with_most_chunks_single_the_others_keep_their_true_continuation():
    share, random_multi = balance_stream(0.7, 5_000, seed=7)
    assert random_multi == 0 and 0.65 < share < 0.75


@pytest.mark.parametrize("seed", [0, 1, 2])
def test_nsp_balance_on_20000_pairs(seed):
    rng = np.random.default_rng(seed)
    docs = [rng.integers(1, 60, size=rng.integers(1, 30)).tolist() for _ in range(4500)]
    corpus = corpus_of(docs, 125)
    pairs = build_pairs(corpus, 125, 0.1, np.random.default_rng(seed))
    assert len(pairs) >= 20_000
    single_share = pairs.counts.single_sentence_chunks / pairs.counts.chunks
    assert 0.05 < single_share < 0.5  # forced random pairs exist and are compensated
    assert abs(pairs.label.mean() - 0.5) <= 0.01
